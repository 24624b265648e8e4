"""Use-case step: the WhatsApp template and media of a message row, rendered for one contact (issue #17).

The template columns are read in the same (cached) Dataverse read as the body; the variables' contact columns are
read with the contact. A problem (variables that do not parse, a variable that renders empty, an unknown placeholder,
a media URL that is not https) makes the activity ``failed`` with the reason: never a template with a hole in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.domain import whatsapp
from shared.domain.whatsapp import RichContent, TemplateColumns, TemplateProblem, TemplateSpec


@dataclass(frozen=True)
class MessageContent:
    """The row's template and media as configured (placeholders not yet rendered), or the problem with them."""

    spec: TemplateSpec | None = None
    media_url: str | None = None
    problem: str | None = None

    @property
    def contact_columns(self) -> list[str]:
        return whatsapp.contact_columns(self.spec)

    def render(self, values: Mapping[str, str | None]) -> RichContent | TemplateProblem | None:
        """The content to send for this contact, the problem, or None (the body alone, as before)."""
        if self.problem is not None:
            return TemplateProblem(self.problem)
        if self.spec is None and self.media_url is None:
            return None
        try:
            rendered = whatsapp.render(self.spec, values) if self.spec is not None else None
        except TemplateProblem as problem:
            return problem
        return RichContent(template=rendered, media_url=self.media_url)


def content_of(row: Mapping[str, Any], columns: TemplateColumns) -> MessageContent:
    """Parse the template columns of a message row (never raises: a problem fails only this send)."""
    try:
        spec = whatsapp.spec_from_row(row, columns)
        media = whatsapp.media_url(row.get(columns.media)) if columns.media else None
    except TemplateProblem as problem:
        return MessageContent(problem=str(problem))
    return MessageContent(spec, media)
