"""``{{contact.<column>}}`` personalisation, the placeholder syntax marketers know from marketing emails."""

from __future__ import annotations

import re
from collections.abc import Mapping

_CONTACT = re.compile(r"\{\{\s*contact\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ANY = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def contact_columns(template: str) -> list[str]:
    """Column logical names referenced by the template, lower-cased, in first-use order, without duplicates."""
    seen: dict[str, None] = {}
    for match in _CONTACT.finditer(template):
        seen.setdefault(match.group(1).lower(), None)
    return list(seen)


def unknown_placeholders(template: str) -> int:
    """How many ``{{...}}`` tokens are not contact placeholders (they render empty)."""
    return sum(1 for m in _ANY.finditer(template) if not _CONTACT.fullmatch(m.group(0)))


def render(template: str, values: Mapping[str, str | None]) -> str:
    """Replace every contact placeholder with its value; a missing value renders empty.

    Any other ``{{...}}`` token also renders empty, so the text sent never contains a raw placeholder.
    """
    rendered = _CONTACT.sub(lambda m: values.get(m.group(1).lower()) or "", template)
    return _ANY.sub("", rendered)
