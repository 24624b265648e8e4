"""Fuzzing the WhatsApp Cloud API webhook (issue #17): signed documents in the documented shape with every field
mutated, and the GET subscription handshake with arbitrary queries.

Properties: the provider returns (every event with an id, nothing from another phone number) or raises
``CallbackRejected`` with a 4xx status, nothing else; the handshake only ever echoes a plain challenge after the
right verify token.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import example, given
from hypothesis import strategies as st

from devtools.emulators.whatsapp import hub_signature
from shared.domain.errors import CallbackRejected
from shared.domain.models import InboundEvent, InboundHttpRequest
from tests.fuzz.conftest import FUZZ, WHATSAPP_PHONE_ID, WHATSAPP_SECRET, WHATSAPP_VERIFY, providers

PROVIDER: Any = providers()["whatsapp"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.sampled_from(["", "wamid.X", "447700900123"])
)
statuses = st.fixed_dictionaries(
    {
        "id": scalars | st.just("wamid.S1"),
        "status": st.sampled_from(["sent", "delivered", "read", "failed", "deleted", "", "READ"]) | scalars,
    },
    optional={
        "biz_opaque_callback_data": scalars,
        "errors": st.lists(st.dictionaries(st.sampled_from(["code", "title"]), scalars, max_size=2), max_size=2)
        | scalars,
        "recipient_id": scalars,
    },
)
bodies: dict[str, Any] = {
    "text": st.fixed_dictionaries({"body": scalars}) | scalars,
    "button": st.fixed_dictionaries({"payload": scalars, "text": scalars}) | scalars,
    "interactive": st.fixed_dictionaries(
        {
            "type": st.sampled_from(["button_reply", "list_reply", "nfm_reply"]) | scalars,
            "button_reply": st.fixed_dictionaries({"id": scalars, "title": scalars}) | scalars,
            "list_reply": st.fixed_dictionaries({"id": scalars, "title": scalars}) | scalars,
        }
    )
    | scalars,
}
messages = st.sampled_from([*sorted(bodies), "image", "reaction", ""]).flatmap(
    lambda kind: st.fixed_dictionaries(
        {"from": scalars | st.just("447700900123"), "id": scalars | st.just("wamid.M1"), "type": st.just(kind)},
        optional={kind: bodies.get(kind, scalars)},
    )
)
metadata = st.fixed_dictionaries(
    {
        "display_phone_number": scalars | st.just("15550783881"),
        "phone_number_id": st.sampled_from([WHATSAPP_PHONE_ID, "999"]) | scalars,
    }
)
values = st.fixed_dictionaries(
    {"metadata": metadata | scalars},
    optional={
        "statuses": st.lists(statuses, max_size=3) | scalars,
        "messages": st.lists(messages, max_size=3) | scalars,
    },
)
changes = st.fixed_dictionaries(
    {"field": st.sampled_from(["messages", "message_template_status_update"]) | scalars, "value": values | scalars}
)
documents = st.fixed_dictionaries(
    {
        "object": st.sampled_from(["whatsapp_business_account", "page"]) | scalars,
        "entry": st.lists(st.fixed_dictionaries({"changes": st.lists(changes, max_size=3) | scalars}), max_size=3)
        | scalars,
    }
)


def _post(body: bytes, signature: str) -> InboundHttpRequest:
    headers = {"content-type": "application/json", "x-hub-signature-256": signature}
    return InboundHttpRequest("POST", "/api/callbacks/whatsapp", {}, headers, body)


@FUZZ
@given(document=documents, sign=st.booleans())
@example(document={"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}, sign=True)
def test_signed_webhook_documents(document: dict[str, Any], sign: bool) -> None:
    body = json.dumps(document).encode()
    signature = hub_signature(WHATSAPP_SECRET, body) if sign else hub_signature("wrong-secret", body)
    try:
        callback = PROVIDER.handle_callback(_post(body, signature))
    except CallbackRejected as rejected:
        assert 400 <= rejected.status < 500
        assert sign or rejected.status == 403
        return
    assert sign and callback.reply.status == 200
    for event in callback.events:
        assert event.event_id and event.provider_message_id
        if isinstance(event, InboundEvent):
            assert event.sender.startswith("+") and event.recipient.startswith("+")


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge", "x"]),
        st.text(max_size=30) | st.sampled_from(["subscribe", WHATSAPP_VERIFY, "1158201444"]),
        max_size=4,
    )
)
def test_subscription_handshake(query: dict[str, str]) -> None:
    request = InboundHttpRequest("GET", "/api/callbacks/whatsapp", query, {}, b"", urlencode(query))
    try:
        reply = PROVIDER.handle_callback(request).reply
    except CallbackRejected as rejected:
        assert 400 <= rejected.status < 500
        return
    assert query.get("hub.verify_token") == WHATSAPP_VERIFY and query.get("hub.mode") == "subscribe"
    assert reply.status == 200 and reply.body == query["hub.challenge"].encode()
    assert reply.content_type == "text/plain"
