"""What identifies a pipeline run: content hashes, DVC hashes, git commit, redacted config.

Pure helpers shared by evaluation and the registry (which alone talks to MLflow).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

log = logging.getLogger(__name__)

REDACTED = "***"
# Config keys whose values are credentials. Matched per word of the key (split on `_ - .` and
# camelCase), so `hf_token`, `apiKey` and `AWS_SECRET_ACCESS_KEY` are redacted while
# `min_completion_tokens` and `tokenize` are not.
SECRET_WORDS = frozenset(
    {"token", "secret", "secrets", "password", "passwd", "key", "keys", "apikey", "credential"}
)
SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
MIN_SECRET_CHARS = 6  # shorter environment values are too common to scrub from text


SECRET_SUFFIXES = ("token", "secret", "password", "passwd", "apikey", "credentials")


def is_secret_key(key: str) -> bool:
    """Whether a config key names a credential."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())
    compact = "".join(words)
    return any(word in SECRET_WORDS for word in words) or compact.endswith(SECRET_SUFFIXES)


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like credentials."""
    environ = os.environ if environ is None else environ
    return sorted(
        {v for k, v in environ.items() if SECRET_ENV.search(k) and len(v) >= MIN_SECRET_CHARS},
        key=len,
        reverse=True,
    )


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of a secret value and URL credentials in `text`."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return re.sub(r"(\w+://)[^/@\s:]+:[^/@\s]+@", rf"\1{REDACTED}:{REDACTED}@", text)


def redact(value: Any, secrets: Iterable[str] | None = None) -> Any:
    """A copy of a config structure with credential keys, secret values and URL passwords hidden."""
    secrets = list(environment_secrets() if secrets is None else secrets)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret_key(str(k)) and v is not None else redact(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub_text(value, secrets)
    return value


def redact_uri(uri: str) -> str:
    """A URI without the password of its user part."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys to string values (`data.sources.0.path`), as MLflow params want them."""
    if isinstance(value, Mapping):
        items: Iterable[tuple[str, Any]] = value.items()
    elif isinstance(value, list | tuple):
        if not value:
            return {prefix: "[]"} if prefix else {}
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: "" if value is None else str(value)}
    out: dict[str, str] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def directory_hash(path: Path) -> str:
    """sha256 of every file's relative path and bytes under `path` (sorted, stable)."""
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}; run the train stage first")
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def groups_hash(group_ids: Iterable[str], ranks: Iterable[Iterable[int]]) -> str:
    """sha256 of the evaluated groups: their ids (hashes of source, prompt, completions) + ranks.

    Independent of the tokenizer, so two models are compared on the same data exactly when
    this hash matches.
    """
    lines = sorted(
        f"{g}\t{json.dumps([int(r) for r in rs])}" for g, rs in zip(group_ids, ranks, strict=True)
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def read_dvc_lock(root: Path) -> dict[str, Any] | None:
    """dvc.lock as YAML (rmcore does not import dvc), or None where there is none."""
    path = root / "dvc.lock"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else None


def dvc_out_md5(lock: Mapping[str, Any] | None, stage: str, out_path: str) -> str | None:
    """The md5 DVC recorded for output `out_path` of `stage` (None if not recorded)."""
    if lock is None:
        return None
    for out in lock.get("stages", {}).get(stage, {}).get("outs", []) or []:
        if isinstance(out, Mapping) and out.get("path") == out_path:
            md5 = out.get("md5")
            return str(md5) if md5 else None
    return None


def git_commit(root: Path) -> tuple[str, bool] | None:
    """(commit, dirty) of the repository holding `root`, or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        log.warning("no git commit recorded for %s: %s", root, exc)
        return None
    return commit, bool(status.strip())
