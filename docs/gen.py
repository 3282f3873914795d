"""Render the tables in docs/*.md that restate the code, from the code.

    python docs/gen.py          # rewrite every generated block in place
    python docs/gen.py --check  # exit 1, naming the files, if a block is out of date

A generated block sits between `<!-- BEGIN GENERATED: <name> -->` and
`<!-- END GENERATED: <name> -->`; everything outside the markers is written by hand. The code
is reached only through the imports below, so when a module moves only they change.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from rmcore.core.config import Params
from rmcore.core.formats import FORMATS, OPTIONS
from rmcore.data.records import REASONS

DOCS = Path(__file__).resolve().parent
BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.S,
)

# What each quarantine reason means, for readers; the code holds its category and its fix.
MEANINGS: dict[str, str] = {
    "malformed_json": "the line is not valid JSON",
    "not_utf8": "bytes that are not UTF-8",
    "not_an_object": "a JSON value that is not an object",
    "wrong_field_count": "a CSV row with more or fewer cells than the header",
    "missing_field": "a field the format needs is absent",
    "null_field": "a field the format needs is null",
    "wrong_type": "e.g. a boolean where a string is needed",
    "invalid_value": "a label, rank or role outside what the options allow",
    "invalid_score": "a NaN or infinite score",
    "bad_transcript": "an hh-rlhf text without `Human:`/`Assistant:` turns ending in a reply",
    "prompt_mismatch": "chosen and rejected transcripts differ before the final replies",
    "histories_differ": "conversation replies whose earlier assistant turns differ (multi-turn "
    "battles)",
    "no_match": "a templated text the regex or delimiters of `*_extract` do not match",
    "adapter_error": "a record shaped unlike its format",
    "empty_prompt": "no prompt text",
    "empty_completion": "completions removed for being empty left k < 2",
    "duplicate_completion": "identical completions removed left k < 2",
    "single_completion": "only one completion given",
    "unranked": "OpenAssistant replies removed for having no rank left k < 2",
    "deleted": "OpenAssistant replies removed as deleted left k < 2",
    "synthetic_excluded": "with `include_synthetic: false`: synthetic OpenAssistant replies "
    "removed left k < 2, or the prompt holds a synthetic message",
    "conflicting_duplicate": "the same completion with different ranks",
    "text_too_long": "a text over `data.max_chars`",
    "all_tied": "every completion ties",
    "tie": "a tie under `tie_policy: quarantine`",
    "duplicate_group": "the same prompt, completions and ranks seen before in the source",
    "no_majority": "votes without majority under `no_majority: quarantine`",
    "not_compared": "every label of the record is a `label_none` value",
    "below_min_score_ratio": "an SHP pair under `min_score_ratio`",
    "no_reply_groups": "a record with nothing to compare (an OpenAssistant tree without replies)",
    "excluded": "a record `options.where` leaves out",
}


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def quarantine_table() -> str:
    """Every quarantine reason, `malformed` ones first, with its meaning and fix."""
    missing = sorted(set(REASONS) - set(MEANINGS))
    stale = sorted(set(MEANINGS) - set(REASONS))
    if missing or stale:
        raise SystemExit(
            f"docs/gen.py MEANINGS is out of step with the quarantine reasons: add {missing}, "
            f"remove {stale}"
        )
    order = sorted(REASONS, key=lambda r: REASONS[r][0] != "malformed")  # stable: code order
    rows = [(f"`{r}`", REASONS[r][0], MEANINGS[r], REASONS[r][1]) for r in order]
    return _table(["reason", "category", "meaning", "fix (in the quarantine record)"], rows)


def _yaml(value: Any) -> str:
    """A value as it is written in params.yaml (strings bare unless they need quotes)."""
    if isinstance(value, str) and value.isprintable():
        return value
    return json.dumps(value)


def _type_name(annotation: Any) -> str:
    """A field's type as a reader of params.yaml sees it."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(f"`{_yaml(a)}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        inner = _type_name(args[0]) if args and args[0] is not Any else ""
        return f"list of {inner}s" if inner else "list"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "`null`"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    """The field's numeric or length constraints, e.g. `>= 1`."""
    parts = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                parts.append(f"{sign} {getattr(meta, attr)}")
        if getattr(meta, "min_length", None) is not None:
            parts.append(f"length >= {meta.min_length}")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    """The default as it would be written in params.yaml."""
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "the defaults below"
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    return f"`{_yaml(value)}`"


def _field_rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        kind = _type_name(field.annotation)
        bounds = _bounds(field)
        kind = f"{kind}, {bounds}" if bounds else kind
        rows.append((f"`{field.alias or name}`", kind, _default(field), field.description or ""))
    return rows


def _options_table(fmt: str) -> str:
    model = OPTIONS[fmt]
    if not model.model_fields:
        return "No options.\n"
    return _table(["option", "type", "default", "meaning"], _field_rows(model))


def formats_table() -> str:
    """The source formats, what each reads, and each format's options."""
    summary = _table(
        ["format", "reads", "options"],
        [
            (
                f"`{fmt}`",
                (OPTIONS[fmt].__doc__ or "").strip(),
                ", ".join(f"`{o}`" for o in OPTIONS[fmt].model_fields) or "none",
            )
            for fmt in FORMATS
        ],
    )
    parts = [summary]
    for fmt in FORMATS:
        parts.append(f"\n#### `{fmt}` options\n\n{_options_table(fmt)}")
    return "".join(parts)


def _sections(model: type[BaseModel], prefix: str) -> list[tuple[str, type[BaseModel]]]:
    """(key, model) of `model` and of every section nested in it, depth first."""
    found = [(prefix, model)]
    for name, field in model.model_fields.items():
        key = f"{prefix}.{field.alias or name}" if prefix else field.alias or name
        annotation = field.annotation
        if typing.get_origin(annotation) is list:
            annotation, key = typing.get_args(annotation)[0], f"{key}[]"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _sections(annotation, key)
    return found


def params_reference() -> str:
    """One table per params.yaml section, from the schema's field descriptions."""
    parts = []
    for key, model in _sections(Params, "")[1:]:
        doc = (model.__doc__ or "").strip()
        intro = f"{' '.join(doc.split())}\n\n" if doc else ""
        parts.append(f"### `{key}`\n\n{intro}")
        parts.append(_table(["key", "type", "default", "meaning"], _field_rows(model)) + "\n")
    return "".join(parts).rstrip("\n") + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "quarantine": quarantine_table,
    "formats": formats_table,
    "params": params_reference,
}


def regenerate(text: str) -> str:
    """`text` with every generated block rendered afresh from the code."""

    def render(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise SystemExit(f"unknown generated block {name!r}; known: {', '.join(GENERATORS)}")
        return f"{match[1]}{GENERATORS[name]()}{match[4]}"

    return BLOCK.sub(render, text)


def doc_files(docs: Path = DOCS) -> list[Path]:
    return [docs.parent / "README.md", *sorted(docs.glob("*.md"))]


def stale(docs: Path = DOCS) -> list[Path]:
    """The files whose generated blocks differ from what the code gives now."""
    return [
        p
        for p in doc_files(docs)
        if regenerate(p.read_text(encoding="utf-8")) != p.read_text(encoding="utf-8")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    args = parser.parse_args(argv)
    used = {m["name"] for p in doc_files() for m in BLOCK.finditer(p.read_text(encoding="utf-8"))}
    if set(GENERATORS) - used:
        print(f"no block uses: {', '.join(sorted(set(GENERATORS) - used))}", file=sys.stderr)
        return 1
    out_of_date = stale()
    if args.check:
        for path in out_of_date:
            print(f"{path}: out of date; run `python docs/gen.py`", file=sys.stderr)
        return 1 if out_of_date else 0
    for path in out_of_date:
        path.write_text(regenerate(path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
