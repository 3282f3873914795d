"""Fault injection for subprocess tests: on PYTHONPATH, Python imports it at start-up.

`RMPIPE_TEST_KILL_AFTER=mlflow.register_model` SIGKILLs the process right after MLflow
created a model version, before the registration could validate or alias it: what a machine
losing power at that moment leaves behind. Production code carries no such hook.
"""

from __future__ import annotations

import os
import signal
from typing import Any

if os.environ.get("RMPIPE_TEST_KILL_AFTER") == "mlflow.register_model":
    import mlflow

    _register_model = mlflow.register_model

    def _register_then_die(*args: Any, **kwargs: Any) -> Any:
        _register_model(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    mlflow.register_model = _register_then_die
