"""Command line: `python -m rmcore <stage>` (also installed as `rmpipe`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rmcore.config import DEFAULT_PARAMS, ConfigError, load_params

STAGE_NAMES = ("ingest", "tokenize", "train", "evaluate", "register")

log = logging.getLogger("rmcore")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGE_NAMES:
        stage = sub.add_parser(name, help=f"run the {name} stage")
        stage.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
        stage.add_argument("--root", type=Path, default=Path("."), help="project root")
    sample = sub.add_parser("sample", help="regenerate the embedded synthetic dataset")
    sample.add_argument("--out", type=Path, default=Path("data/sample"))
    sample.add_argument("--seed", type=int, default=0)
    return parser


def _run_stage(name: str, params_path: Path, root: Path) -> int:
    from rmcore import stages
    from rmcore.paths import Layout

    params = load_params(params_path)
    summary = stages.STAGES[name](params, Layout(root))
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rmpipe` console script."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = _parser().parse_args(argv)
    try:
        if args.command in STAGE_NAMES:
            return _run_stage(args.command, args.params, args.root)
        if args.command == "sample":
            from rmcore.data.sample import write_sample

            print(json.dumps(write_sample(args.out, seed=args.seed), indent=2))
            return 0
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
