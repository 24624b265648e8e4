"""Real-time journeys custom-channel contract: the outbound ``payload``/``response`` JSON and the send record.

Journeys call the channel's outbound custom API synchronously (20 s limit) with a ``payload`` string; a relay
plug-in posts it to our ``/api/rtj/outbound`` and copies our answer into the API's ``response`` output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.domain.errors import CallbackRejected
from shared.domain.ids import is_guid, normalize_guid

SENT = "Sent"
NOT_SENT = "NotSent"
DELIVERED = "Delivered"
NOT_DELIVERED = "NotDelivered"
KEY_PREFIX = "rtj-"  # record keys of real-time journeys sends: a delivery report is routed on it


class InvalidPayload(ValueError):
    """The payload is usable enough to answer (ids present) but cannot be sent."""


@dataclass(frozen=True)
class OutboundPayload:
    channel_definition_id: str
    request_id: str
    idempotency_id: str | None
    sender: str | None
    to: str
    message: dict[str, str]
    journey_id: str | None
    user_id: str | None
    user_entity_type: str | None
    is_test_send: bool

    @property
    def key(self) -> str:
        """Idempotency key: IdempotencyId when Journeys sends one, else RequestId (per channel definition)."""
        basis = f"{self.channel_definition_id}:{self.idempotency_id or self.request_id}"
        return KEY_PREFIX + hashlib.sha256(basis.encode()).hexdigest()[:40]

    def text(self) -> str:
        """The SMS text: the ``text`` part (SMS channels have exactly that one), else the only string part."""
        for name, value in self.message.items():
            if name.lower() == "text":
                return value
        if len(self.message) == 1:
            return next(iter(self.message.values()))
        raise InvalidPayload("Message has no 'text' part")


def _ci(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Case-insensitive view (.NET serializers differ on PascalCase vs camelCase)."""
    return {str(k).lower(): v for k, v in mapping.items()}


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def parse_outbound(body: bytes) -> tuple[str, str, OutboundPayload | InvalidPayload]:
    """Return (ChannelDefinitionId, RequestId, payload-or-why-not).

    Raises :class:`CallbackRejected` (400) when not even the ids needed for an answer are there.
    """
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise CallbackRejected(400, "payload is not JSON") from None
    if isinstance(document, str):  # the plug-in may forward the payload string JSON-encoded once more
        try:
            document = json.loads(document)
        except ValueError:
            raise CallbackRejected(400, "payload is not a JSON object") from None
    if not isinstance(document, dict):
        raise CallbackRejected(400, "payload is not a JSON object")
    data = _ci(document)
    definition = data.get("channeldefinitionid")
    request_id = data.get("requestid")
    if not is_guid(definition):
        raise CallbackRejected(400, "ChannelDefinitionId is missing or not a GUID")
    if not isinstance(request_id, str | int) or not str(request_id).strip():
        raise CallbackRejected(400, "RequestId is missing")
    definition, request_id = normalize_guid(str(definition)), str(request_id).strip()
    try:
        return definition, request_id, _payload(definition, request_id, data)
    except InvalidPayload as why:
        return definition, request_id, why


def _payload(definition: str, request_id: str, data: dict[str, Any]) -> OutboundPayload:
    to = data.get("to")
    if not isinstance(to, str) or not to.strip():
        raise InvalidPayload("To is missing")
    message = data.get("message")
    if not isinstance(message, Mapping) or not message:
        raise InvalidPayload("Message is missing or empty")
    parts = {str(k): str(v) for k, v in message.items() if isinstance(v, str | int | float)}
    context = data.get("marketingappcontext")
    ctx = _ci(context) if isinstance(context, Mapping) else {}
    return OutboundPayload(
        channel_definition_id=definition,
        request_id=request_id,
        idempotency_id=_opt_str(data.get("idempotencyid")),
        sender=_opt_str(data.get("from")),
        to=to.strip(),
        message=parts,
        journey_id=_opt_str(ctx.get("customerjourneyid")),
        user_id=_opt_str(ctx.get("userid")),
        user_entity_type=_opt_str(ctx.get("userentitytype")),
        is_test_send=ctx.get("istestsend") is True or str(ctx.get("istestsend")).lower() == "true",
    )


def response_json(
    definition: str,
    request_id: str,
    status: str,
    message_id: str | None = None,
    reason: str | None = None,
    detail: str | None = None,
) -> bytes:
    body: dict[str, Any] = {"ChannelDefinitionId": definition, "RequestId": request_id, "Status": status}
    if message_id:
        body["MessageId"] = message_id
    if status == NOT_SENT:
        body["Details"] = {"Reason": reason or "NotSent", "Message": detail or ""}
    return json.dumps(body, separators=(",", ":")).encode()


def is_rtj_key(key: str) -> bool:
    """Which contract a record key (a callback's ``activity`` hint, a message-index entry) belongs to."""
    return key.startswith(KEY_PREFIX)
