"""Structured, privacy-safe logging.

Every line is ``event key=value ...`` with the correlation ids (activity, journey, provider message) as fields,
and the same fields are attached as ``extra={"custom_dimensions": ...}`` so Application Insights stores them as
custom dimensions. Phone numbers are masked to their last digits, message text is never logged, and secrets are
never passed to the logger in the first place.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

LOGGER_NAME = "channel"
_logger = logging.getLogger(LOGGER_NAME)

# Fields every line logged while serving one org carries (``org_id``, multi-org: issue #15). Set by the router for
# the work it hands to one org's use cases; a context variable, so each org's worker threads keep their own.
_scope: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("log_scope", default=())

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/@+\-]*$")
_PHONE_LIKE = re.compile(r"\+?\d[\d\s\-().]{5,}\d")


def mask_phone(value: str | None, keep: int = 4) -> str:
    """``+447700900123`` → ``+*********0123``. Keeps a leading ``+``/channel prefix and the last digits."""
    if not value:
        return ""
    prefix = ""
    if ":" in value:
        prefix, value = value.split(":", 1)
        prefix += ":"
    digits = re.sub(r"\D", "", value)
    if len(digits) <= keep:
        return prefix + "*" * len(digits)
    plus = "+" if value.strip().startswith("+") else ""
    return f"{prefix}{plus}{'*' * (len(digits) - keep)}{digits[-keep:]}"


def scrub(text: str) -> str:
    """Mask anything that looks like a phone number inside free text (e.g. an upstream error message)."""
    return _PHONE_LIKE.sub(lambda m: mask_phone(m.group(0)), text)


def _fmt(value: Any) -> str:
    text = "" if value is None else str(value)
    if _SAFE_VALUE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_event(event: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log one structured line. ``None`` fields are dropped."""
    if not _logger.isEnabledFor(level):
        return
    clean: dict[str, Any] = {**dict(_scope.get()), **{k: v for k, v in fields.items() if v is not None}}
    line = " ".join([event, *(f"{k}={_fmt(v)}" for k, v in clean.items())])
    _logger.log(level, line, extra={"custom_dimensions": {"event": event, **_stringify(clean)}})


@contextmanager
def log_scope(**fields: str | None) -> Iterator[None]:
    """Every line logged inside (in this context) also carries ``fields`` (``None`` fields are dropped)."""
    token = _scope.set(tuple({**dict(_scope.get()), **{k: v for k, v in fields.items() if v is not None}}.items()))
    try:
        yield
    finally:
        _scope.reset(token)


def _stringify(fields: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in fields.items()}


def configure_logging(level: int = logging.INFO) -> None:
    """Make sure our records reach the Functions host (which captures the root logger) at INFO."""
    _logger.setLevel(level)
