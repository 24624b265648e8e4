"""Parse a (verified) WhatsApp Cloud API webhook body into provider events (issue #17).

    {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "metadata": {"display_phone_number", "phone_number_id"},
        "statuses": [{"id", "status", "recipient_id", "biz_opaque_callback_data"?, "errors"?: [{"code", "title"}]}],
        "messages": [{"from", "id", "type": "text" | "button" | "interactive" | ..., ...}]}}]}]}

One POST may carry many entries and changes, each with many statuses and messages: every one becomes one event with
its own id (``<wamid>:<status>`` for a status, the message's wamid for a reply), so a redelivered webhook is applied
once. Changes for another phone number of the same business account are skipped. Any shape error is a 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from typing import Any

from shared.domain.errors import CallbackRejected
from shared.domain.models import InboundEvent, ProviderEvent, StatusEvent, StatusKind
from shared.domain.whatsapp import button_keyword, is_opt_out_payload

STATUS_MAP = {
    "sent": StatusKind.SENT,
    "delivered": StatusKind.DELIVERED,
    "read": StatusKind.OPENED,
    "failed": StatusKind.FAILED,
}
MAX_EVENTS = 1000


def _bad(why: str) -> CallbackRejected:
    return CallbackRejected(400, f"WhatsApp webhook: {why}")


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(f"{what} must be a list")
    return value


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{what} must be an object")
    return value


def _str(value: Any, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{what} is missing")
    return value.strip()


def _plus(number: str) -> str:
    return number if number.startswith("+") else "+" + number


def parse_webhook(
    body: bytes,
    phone_number_id: str,
    opt_out_payloads: Collection[str],
    accepts: Callable[[str], bool] | None = None,
) -> list[ProviderEvent]:
    """``accepts``: other number ids whose changes are ours too (multi-org: the registered orgs' numbers on the same
    Meta app); every other number of the business account is ignored."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad("body is not JSON") from None
    document = _obj(document, "body")
    if document.get("object") != "whatsapp_business_account":
        raise _bad("object must be whatsapp_business_account")
    events: list[ProviderEvent] = []
    for value in _values(document, phone_number_id, accepts):
        metadata = _obj(value.get("metadata"), "metadata")
        account = _str(metadata.get("phone_number_id"), "metadata.phone_number_id")
        ours = _plus(_str(metadata.get("display_phone_number"), "metadata.display_phone_number"))
        for status in _list(value.get("statuses"), "statuses"):
            events.append(_status(_obj(status, "status")))
        for message in _list(value.get("messages"), "messages"):
            event = _message(_obj(message, "message"), ours, opt_out_payloads, account)
            if event is not None:
                events.append(event)
        if len(events) > MAX_EVENTS:
            raise _bad(f"more than {MAX_EVENTS} events in one webhook")
    return events


def _values(
    document: dict[str, Any], phone_number_id: str, accepts: Callable[[str], bool] | None
) -> Iterator[dict[str, Any]]:
    for entry in _list(document.get("entry"), "entry"):
        for item in _list(_obj(entry, "entry").get("changes"), "changes"):
            change = _obj(item, "change")
            if change.get("field") != "messages":
                continue  # template status updates, account updates …: nothing for a journey
            value = _obj(change.get("value"), "value")
            metadata = _obj(value.get("metadata"), "metadata")
            number_id = _str(metadata.get("phone_number_id"), "metadata.phone_number_id")
            if number_id != phone_number_id and not (accepts is not None and accepts(number_id)):
                continue  # another number of the same business account
            yield value


def _status(status: dict[str, Any]) -> StatusEvent:
    message_id = _str(status.get("id"), "status id")
    raw = _str(status.get("status"), "status").lower()
    errors = _list(status.get("errors"), "errors")
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = first.get("code")
    hint = status.get("biz_opaque_callback_data")
    return StatusEvent(
        provider_message_id=message_id,
        kind=STATUS_MAP.get(raw, StatusKind.IGNORED),
        raw_status=raw[:40],
        activity_hint=hint if isinstance(hint, str) and hint else None,
        error_code=str(code) if isinstance(code, int | str) and not isinstance(code, bool) else None,
        detail=str(first.get("title"))[:200] if first.get("title") else None,
        event_id=f"{message_id}:{raw[:40]}",
    )


def _message(
    message: dict[str, Any], ours: str, opt_out_payloads: Collection[str], account: str | None = None
) -> InboundEvent | None:
    message_id = _str(message.get("id"), "message id")
    sender = _plus(_str(message.get("from"), "message from"))
    kind = message.get("type")
    payload: str | None = None
    if kind == "text":
        text = _str(_obj(message.get("text"), "text").get("body"), "text body")
    elif kind == "button":  # a template's quick-reply button
        button = _obj(message.get("button"), "button")
        payload = _str(button.get("payload"), "button payload")
        text = str(button.get("text") or payload)
    elif kind == "interactive":  # a reply button or list row of an interactive message
        interactive = _obj(message.get("interactive"), "interactive")
        reply_type = interactive.get("type")
        if reply_type not in ("button_reply", "list_reply"):
            return None
        reply = _obj(interactive.get(reply_type), str(reply_type))
        payload = _str(reply.get("id"), f"{reply_type} id")
        text = str(reply.get("title") or payload)
    else:
        return None  # media, reactions, locations …: nothing a journey branches on
    return InboundEvent(
        provider_message_id=message_id,
        sender=sender,
        recipient=ours,
        account=account,
        text=text,
        event_id=message_id,
        keyword=button_keyword(payload) if payload else None,
        opt_out=payload is not None and is_opt_out_payload(payload, opt_out_payloads),
    )
