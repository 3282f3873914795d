"""Command line: `python -m rmcore <command>` (also installed as `rmpipe`, which adds `run`)."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeGuard

from rmcore import __version__
from rmcore.core.config import DEFAULT_PARAMS, SCORE_BATCH_SIZE, ConfigError, Params
from rmcore.core.procs import die_with_stage_starter

PARENT_AT_START = os.getppid()  # the parent at start-up: if it changes, it has died

STAGE_NAMES = ("ingest", "tokenize", "train", "evaluate", "register")

log = logging.getLogger("rmcore")

EXIT_CONFIG = 2  # bad params or input data: fix them; a retry alone does not help
EXIT_FILESYSTEM = 3  # the file system refused a read or write: see the message, then retry

# errno -> (what happened, what to do)
FILESYSTEM_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free disk space there, then run again"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, then run again"),
    errno.EFBIG: (
        "file size limit exceeded",
        "raise the limit (`ulimit -f`) or free space, then run again",
    ),
    errno.EACCES: (
        "permission denied",
        "fix the permissions of that path (and its directory) or choose another --root",
    ),
    errno.EPERM: (
        "operation not permitted",
        "fix the ownership or attributes of that path or choose another --root",
    ),
    errno.EROFS: (
        "read-only file system",
        "choose a writable directory with --root (or remount that file system read-write)",
    ),
    errno.ENOTDIR: (
        "part of this path is a file where a directory is expected",
        "move that file away or choose another --root",
    ),
    errno.EIO: (
        "a write failed (input/output error)",
        "check the device and its free space (`df -h`, `dmesg`), then run again",
    ),
}
PATH_ONLY = {errno.EACCES, errno.EPERM}  # reported as file-system errors only with a path


def _parser(extra: Sequence[tuple[str, str]] = ()) -> argparse.ArgumentParser:
    """The CLI; `extra` lists (command, help) handled before this parser (`rmpipe run`)."""
    parser = argparse.ArgumentParser(
        prog="rmpipe",
        description=__doc__,
        epilog=f"exit status: 0 done; 1 unexpected failure (traceback); {EXIT_CONFIG} bad params "
        f"or input data (the message names file, key or line); {EXIT_FILESYSTEM} the file "
        "system refused (disk full, quota, permissions, read-only; the message names the path)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in extra:
        sub.add_parser(name, help=text, add_help=False)
    for name in STAGE_NAMES:
        stage = sub.add_parser(name, help=f"run the {name} stage")
        _add_params_options(stage)
        if name == "ingest":
            stage.add_argument(
                "--preview",
                type=int,
                metavar="N",
                help="print each source's first N groups and its accounting; write nothing",
            )
    _add_score_parser(sub)
    shown = sub.add_parser(
        "params", help="print the effective params (YAML, defaults filled in) and check them"
    )
    _add_params_options(shown)
    sample = sub.add_parser("sample", help="regenerate the embedded synthetic dataset")
    sample.add_argument("--out", type=Path, default=Path("data/sample"))
    sample.add_argument("--seed", type=int, default=0)
    return parser


def _add_params_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--root", type=Path, default=Path("."), help="project root")
    command.add_argument(
        "--params", type=Path, default=None, help="params file (default: <root>/params.yaml)"
    )
    command.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a param for this command only, e.g. train.epochs=2 (value in YAML; "
        "+KEY=VALUE adds a key); params.yaml is not changed",
    )


def _params(args: argparse.Namespace) -> Params:
    """The params of this invocation: the file (default under --root) plus its --set."""
    from rmcore.core.overrides import load_params_with

    path = args.params if args.params is not None else args.root / DEFAULT_PARAMS
    return load_params_with(path, args.overrides)


def _show_params(args: argparse.Namespace) -> int:
    import yaml

    params = _params(args)
    print(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), sort_keys=False), end="")
    return 0


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
    score.add_argument("--batch-size", type=int, default=SCORE_BATCH_SIZE)
    score.add_argument(
        "--params", type=Path, default=None, help="default: <root>/params.yaml if any"
    )
    score.add_argument("--root", type=Path, default=Path("."), help="project root")


def _score(args: argparse.Namespace) -> int:
    from rmcore.core.paths import Layout
    from rmcore.register.score_file import register_config, score_file

    cfg = register_config(args.params, args.root)
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
        if filesystem_error(exc) is not None:
            raise  # main() reports it like any stage's
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(summary), file=sys.stderr if args.output is None else sys.stdout)
    return 0


def _run_stage(args: argparse.Namespace) -> int:
    from rmcore import stages
    from rmcore.core.paths import Layout

    summary = stages.STAGES[args.command](_params(args), Layout(args.root))
    # Indented for a person at a terminal; one line for a log (DVC, the flow, a file).
    indent = 2 if sys.stdout.isatty() else None
    print(json.dumps(summary, indent=indent, sort_keys=True, default=str))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from rmcore.data.preview import preview

    text, fine = preview(_params(args).data, args.root, args.preview)
    print(text, end="")
    return 0 if fine else EXIT_CONFIG


def main(argv: Sequence[str] | None = None, extra: Sequence[tuple[str, str]] = ()) -> int:
    """Entry point of `python -m rmcore`; `extra`: commands a caller handles (listed in --help)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = _parser(extra).parse_args(argv)
    if args.command in STAGE_NAMES and os.environ.get("DVC_STAGE"):
        # Started by `dvc repro` (or the flow through it): die with it, even when it is
        # SIGKILLed, instead of training on as an orphan (see rmcore/core/procs.py).
        die_with_stage_starter(PARENT_AT_START)
    try:
        if getattr(args, "preview", None) is not None:
            return _preview(args)
        if args.command in STAGE_NAMES:
            return _run_stage(args)
        if args.command == "params":
            return _show_params(args)
        if args.command == "score":
            return _score(args)
        if args.command == "sample":
            from rmcore.data.sample import write_sample

            print(json.dumps(write_sample(args.out, seed=args.seed), indent=2))
            return 0
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        cause = filesystem_error(exc)
        if cause is None:
            raise
        print(f"error: {filesystem_message(cause)}", file=sys.stderr)
        log.debug("file system error", exc_info=True)
        return EXIT_FILESYSTEM
    return 1


def filesystem_error(exc: BaseException) -> OSError | None:
    """The disk-full or permission OSError behind `exc` (itself, or what a library wrapped)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _is_filesystem_error(current):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _is_filesystem_error(exc: BaseException) -> TypeGuard[OSError]:
    if not isinstance(exc, OSError) or exc.errno not in FILESYSTEM_ERRORS:
        return False
    # EACCES/EPERM without a path can come from a socket, not the file system
    return exc.filename is not None or exc.errno not in PATH_ONLY


def filesystem_message(exc: OSError) -> str:
    """One line for a disk-full or permission error: the path, what happened, what to do."""
    code = int(exc.errno or 0)
    what, todo = FILESYSTEM_ERRORS[code]
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(paths) if paths else "a file under the project root (--root)"
    return f"{where}: {what} ({errno.errorcode.get(code, code)}); {todo}"


if __name__ == "__main__":
    sys.exit(main())
