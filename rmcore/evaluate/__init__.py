"""Evaluation of a saved model on the held-out split: pure metrics, plots, eval.json. Above
model; independent of training."""
