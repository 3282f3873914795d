"""MLflow: the run record and lineage, the pyfunc model, the registry with its champion gate
and lock, and `rmpipe score`. The only layer that imports mlflow; the top of the library."""
