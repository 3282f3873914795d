"""Canonical ranked-group data: schema, source adapters, normalisation, split, sample."""
