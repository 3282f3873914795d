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
    _add_score_parser(sub)
    sample = sub.add_parser("sample", help="regenerate the embedded synthetic dataset")
    sample.add_argument("--out", type=Path, default=Path("data/sample"))
    sample.add_argument("--seed", type=int, default=0)
    return parser


def _add_score_parser(sub: argparse._SubParsersAction) -> None:
    score = sub.add_parser(
        "score", help="score (prompt, response) rows of a JSONL file with a registered model"
    )
    score.add_argument("--input", type=Path, required=True, help="JSONL: prompt, response")
    score.add_argument("--output", type=Path, default=None, help="JSONL out (default: stdout)")
    score.add_argument(
        "--model-uri",
        default=None,
        help="default models:/<register.model_name>@<register.champion_alias>",
    )
    score.add_argument(
        "--normalize", action="store_true", help="(reward - mean) / std of validation rewards"
    )
    score.add_argument("--batch-size", type=int, default=32)
    score.add_argument("--params", type=Path, default=None, help="default: ./params.yaml if any")
    score.add_argument("--root", type=Path, default=Path("."), help="project root")


def _score(args: argparse.Namespace) -> int:
    from rmcore.paths import Layout
    from rmcore.scoring import register_config, score_file

    cfg = register_config(args.params or DEFAULT_PARAMS, explicit=args.params is not None)
    try:
        summary = score_file(
            args.input,
            args.output,
            args.model_uri,
            cfg,
            Layout(args.root),
            normalize=args.normalize,
            batch_size=args.batch_size,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary), file=sys.stderr if args.output is None else sys.stdout)
    return 0


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
        if args.command == "score":
            return _score(args)
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
