"""WhatsApp templates, media and button replies (issue #17): pure rules shared by both contracts and both providers.

A business-initiated WhatsApp message outside the 24-hour customer-service window is only delivered as a
pre-approved template. The message row may therefore name a template (a Twilio Content SID ``HX…`` or a Cloud API
template name), its language, its variables (a JSON object whose values are texts with ``{{contact.<column>}}``
placeholders) and a media URL. A template is never sent with a hole in it: a variable that renders empty, an unknown
placeholder or variables that are not a JSON object of texts is a :class:`TemplateProblem` (the send is ``failed``
with that reason, nothing is sent).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.domain import template as personalisation
from shared.domain.keywords import OPT_OUT_KEYWORD, Reply

# Providers whose callbacks route also answers GET (Meta's webhook subscription handshake); others answer 405.
HANDSHAKE_PROVIDERS = frozenset({"whatsapp"})
MAX_VARIABLES = 100
MAX_VARIABLE_LENGTH = 1024
MAX_KEYWORD_LENGTH = 100
_ANY = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_CONTACT = re.compile(r"\{\{\s*contact\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}")
_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class TemplateProblem(ValueError):
    """The template cannot be sent as configured (the reason is reported with ``failed``)."""


@dataclass(frozen=True)
class TemplateColumns:
    """The message-table columns named by MESSAGE_TEMPLATE_COLUMN, …_LANGUAGE_…, …_VARIABLES_…, MESSAGE_MEDIA_COLUMN."""

    template: str | None = None
    language: str | None = None
    variables: str | None = None
    media: str | None = None

    def select(self) -> list[str]:
        """The columns read together with the message body (one Dataverse read)."""
        return [c for c in (self.template, self.language, self.variables, self.media) if c]


NO_TEMPLATE_COLUMNS = TemplateColumns()


@dataclass(frozen=True)
class TemplateSpec:
    """A template as configured: variables still hold placeholders."""

    name: str
    language: str | None
    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TemplateMessage:
    """A template ready to send: every variable rendered and non-empty, in send order."""

    name: str
    language: str | None
    variables: tuple[tuple[str, str], ...]

    @property
    def positional(self) -> bool:
        """True when every variable is numbered (``{{1}}``, ``{{2}}`` …): sent in number order without names."""
        return all(key.isdigit() for key, _ in self.variables)

    def variables_json(self) -> str:
        """Twilio's ``ContentVariables``: a JSON object string."""
        return json.dumps(dict(self.variables), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class RichContent:
    """What a WhatsApp send carries besides the body: a rendered template and/or a media URL."""

    template: TemplateMessage | None = None
    media_url: str | None = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TemplateProblem("a template column is not a text column")
    return value.strip() or None


def parse_variables(raw: str | None) -> tuple[tuple[str, str], ...]:
    """The variables JSON object as ordered (name, text) pairs; numbered names in number order."""
    if raw is None or not raw.strip():
        return ()
    try:
        document = json.loads(raw)
    except ValueError:
        raise TemplateProblem("template variables are not valid JSON") from None
    if not isinstance(document, dict):
        raise TemplateProblem('template variables must be a JSON object such as {"1": "{{contact.firstname}}"}')
    if len(document) > MAX_VARIABLES:
        raise TemplateProblem(f"more than {MAX_VARIABLES} template variables")
    pairs: list[tuple[str, str]] = []
    for key, value in document.items():
        if not _VARIABLE_NAME.match(str(key)):
            raise TemplateProblem(f"template variable name {str(key)[:40]!r} is not a number or a simple name")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TemplateProblem(f"template variable {key} must be a text")
        pairs.append((str(key), str(value)))
    numbered = all(k.isdigit() for k, _ in pairs)
    return tuple(sorted(pairs, key=lambda p: int(p[0]))) if numbered else tuple(pairs)


def media_url(value: Any) -> str | None:
    """A public https media URL, or None; anything else is a problem (WhatsApp fetches it from the internet)."""
    url = _text(value)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in url):
        raise TemplateProblem("the media URL must be a public https URL")
    return url


def spec_from_parts(name: Any, language: Any, variables: Any) -> TemplateSpec | None:
    """A template spec from its three parts (message row columns or real-time journeys message parts)."""
    template_name = _text(name)
    if template_name is None:
        return None
    raw = variables if isinstance(variables, str) or variables is None else json.dumps(variables)
    return TemplateSpec(template_name, _text(language), parse_variables(raw))


def spec_from_row(row: Mapping[str, Any], columns: TemplateColumns) -> TemplateSpec | None:
    """The row's template, or None when the row names none (the body is sent as today)."""
    if not columns.template:
        return None
    language = row.get(columns.language) if columns.language else None
    variables = row.get(columns.variables) if columns.variables else None
    return spec_from_parts(row.get(columns.template), language, variables)


def contact_columns(spec: TemplateSpec | None) -> list[str]:
    """Contact columns the template's variables reference (read with the contact)."""
    if spec is None:
        return []
    seen: dict[str, None] = {}
    for _, text in spec.variables:
        seen.update(dict.fromkeys(personalisation.contact_columns(text)))
    return list(seen)


def render(spec: TemplateSpec, values: Mapping[str, str | None]) -> TemplateMessage:
    """Fill every variable from the contact; never a template with a hole in it."""
    rendered: list[tuple[str, str]] = []
    for key, text in spec.variables:
        unknown = [m.group(0) for m in _ANY.finditer(text) if not _CONTACT.fullmatch(m.group(0))]
        if unknown:
            raise TemplateProblem(f"template variable {key} has an unknown placeholder {unknown[0][:60]}")
        value = personalisation.render(text, values).strip()
        if not value:
            raise TemplateProblem(f"template variable {key} renders empty for this contact")
        if len(value) > MAX_VARIABLE_LENGTH:
            raise TemplateProblem(f"template variable {key} is longer than {MAX_VARIABLE_LENGTH} characters")
        rendered.append((key, value))
    return TemplateMessage(spec.name, spec.language, tuple(rendered))


def button_keyword(payload: str) -> str:
    """A button / list reply's payload as TriggerKeyword: trimmed and lower-cased, like a typed first word."""
    return " ".join(payload.split()).lower()[:MAX_KEYWORD_LENGTH]


def is_opt_out_payload(payload: str, opt_out_payloads: Collection[str]) -> bool:
    return button_keyword(payload) in opt_out_payloads


def parse_opt_out_payloads(value: str) -> frozenset[str]:
    """WHATSAPP_OPT_OUT_PAYLOADS: comma-separated payloads, compared like keywords."""
    return frozenset(button_keyword(p) for p in value.split(",") if p.strip())


def reply_for(typed: Reply, keyword: str | None, opt_out: bool) -> Reply:
    """The reply a journey sees: a button's payload replaces the typed first word; an opt-out records ``stop``."""
    if opt_out or typed.opt_out:
        return Reply(OPT_OUT_KEYWORD, True)
    if keyword:
        return Reply(keyword, False)
    return typed
