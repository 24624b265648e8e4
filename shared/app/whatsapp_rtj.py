"""Use-case step: a real-time journeys message with WhatsApp template parts (issue #17).

``channel provision --rtj --whatsapp`` declares the parts next to ``text``: ``templatename``, ``templatelanguage``,
``templatevariables`` (a JSON object, personalised by Journeys before the call) and ``mediaurl``. With a template
the ``text`` part is optional; anything still holding a ``{{…}}`` placeholder, an empty variable or variables that
do not parse make the answer ``NotSent`` (``InvalidMessage``), nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.domain import whatsapp
from shared.domain.rtj import InvalidPayload, OutboundPayload
from shared.domain.whatsapp import RichContent, TemplateProblem

PART_TEMPLATE = "templatename"
PART_LANGUAGE = "templatelanguage"
PART_VARIABLES = "templatevariables"
PART_MEDIA = "mediaurl"
TEMPLATE_PARTS = (PART_TEMPLATE, PART_LANGUAGE, PART_VARIABLES, PART_MEDIA)


def _content(parts: Mapping[str, str]) -> RichContent | None:
    spec = whatsapp.spec_from_parts(parts.get(PART_TEMPLATE), parts.get(PART_LANGUAGE), parts.get(PART_VARIABLES))
    media = whatsapp.media_url(parts.get(PART_MEDIA))
    if spec is None:
        return RichContent(media_url=media) if media else None
    for key, text in spec.variables:
        if "{{" in text:  # Journeys personalises the parts: a placeholder left over is a hole
            raise TemplateProblem(f"template variable {key} still holds a placeholder")
    return RichContent(template=whatsapp.render(spec, {}), media_url=media)


def rtj_message(payload: OutboundPayload) -> tuple[str, RichContent | None]:
    """The text and the WhatsApp content of a payload; raises :class:`InvalidPayload` naming the problem."""
    parts = {name.lower(): value for name, value in payload.message.items()}
    try:
        content = _content(parts)
    except TemplateProblem as problem:
        raise InvalidPayload(str(problem)) from None
    if content is not None and content.template is not None:
        return parts.get("text", ""), content
    if content is not None:  # media with a caption: the text part is the caption
        parts = {k: v for k, v in parts.items() if k not in TEMPLATE_PARTS}
        if "text" not in parts:
            raise InvalidPayload("Message has no 'text' part")
        return parts["text"], content
    return payload.text(), None
