"""Orchestration of the dvc.yaml pipeline with Prefect: flow, tasks, deployments."""
