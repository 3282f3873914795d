"""The `rmpipe` console script: `rmpipe run` runs the Prefect flow, every other command is
rmcore's (`python -m rmcore <command>`).

The flow (and with it DVC and Prefect, the `pipeline` extra) is imported only for `run`, so
`rmpipe score` and the stage commands work where only the core package is installed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rmcore.__main__ import main as rmcore_main

RUN_HELP = (
    "run the whole pipeline: the Prefect flow over dvc.yaml's stages, then dvc push "
    "(`rmpipe run --help` for its options)"
)
PIPELINE_EXTRA = "rmpipe[pipeline]"


def main(argv: Sequence[str] | None = None) -> int:
    """`rmpipe run ...` -> flows.pipeline.main; anything else -> rmcore.__main__.main."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["run"]:
        return rmcore_main(args, extra=[("run", RUN_HELP)])
    try:
        from flows import pipeline
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in ("dvc", "prefect"):
            raise
        print(
            f"error: `rmpipe run` needs {missing}, which is not installed: "
            f"pip install '{PIPELINE_EXTRA}' (or `make run`, which installs it)",
            file=sys.stderr,
        )
        return 1
    return pipeline.main(args[1:], prog="rmpipe run")


if __name__ == "__main__":
    sys.exit(main())
