"""rmcore: reward-model data, model, loss, training, evaluation and registry.

The library imports no orchestration; `rmcore.stages` holds the one definition of each
pipeline stage and `python -m rmcore <stage>` runs it.
"""

__version__ = "0.1.0"
