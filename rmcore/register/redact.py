"""What identifies a pipeline run: content hashes, DVC hashes, git commit, redacted config.

Pure helpers shared by evaluation and the registry (which alone talks to MLflow).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
