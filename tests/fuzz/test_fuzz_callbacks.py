"""Fuzzing the provider callbacks: the Twilio form parser, the HTTP trigger (through the function app), and a
parametrised hook over every provider module in ``shared/providers``.

Properties: a provider's ``handle_callback`` returns or raises ``CallbackRejected`` with a 4xx status, nothing
else; the HTTP trigger never answers 5xx, and answers 4xx to every invalid request. Forms are signed with the
right token half of the time so the parser behind the signature check is reached too.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import shared.providers
from devtools.emulators.twilio import twilio_signature
from devtools.emulators.whatsapp import hub_signature
from devtools.host import LocalHost
from shared.domain.errors import CallbackRejected
from shared.domain.models import InboundHttpRequest
from shared.providers.loopback import sign as loopback_sign
from shared.service import ChannelService
from tests.fuzz.conftest import (
    ACS_SECRET,
    BASE,
    FUZZ,
    LOOPBACK_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_SECRET,
    providers,
)

FIELDS = [
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "MessageStatus",
    "AccountSid",
    "From",
    "To",
    "Body",
    "ErrorCode",
    "ApiVersion",
]
field_values = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            TWILIO_SID,
            "SM" + "0" * 32,
            "delivered",
            "undelivered",
            "read",
            "sent",
            "queued",
            "received",
            "+447700900123",
            "whatsapp:+447700900123",
            "STOP",
            "",
        ]
    ),
)
forms = st.lists(st.tuples(st.sampled_from(FIELDS) | st.text(max_size=10), field_values), max_size=12)
queries = st.one_of(
    st.just(""),
    st.builds(lambda v: "activity=" + quote(v, safe=""), st.text(max_size=40)),
    st.builds(lambda v: "activity=" + v, st.uuids().map(str)),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=&%-_.", max_size=40),
)
headers_extra = st.dictionaries(
    st.sampled_from(["content-type", "x-twilio-signature", "aeg-event-type", "x-loopback-signature", "x-other"]),
    st.text(max_size=40),
    max_size=3,
)


def _twilio_request(
    form: list[tuple[str, str]], query: str, signed: bool, extra: dict[str, str]
) -> tuple[str, dict[str, str], bytes]:
    url = f"{BASE}/twilio" + (f"?{query}" if query else "")
    body = urlencode(form).encode()
    headers = {"content-type": "application/x-www-form-urlencoded", **extra}
    if signed:
        headers["x-twilio-signature"] = twilio_signature(TWILIO_TOKEN, url, form)
    return url, headers, body


def _domain_request(url: str, headers: dict[str, str], body: bytes, method: str = "POST") -> InboundHttpRequest:
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    return InboundHttpRequest(
        method=method,
        path=parts.path,
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        raw_query=parts.query,
    )


TWILIO = providers()["twilio"]


@FUZZ
@given(form=forms, query=queries, signed=st.booleans(), extra=headers_extra)
@example(form=[], query="", signed=False, extra={"x-twilio-signature": "é"})
@example(form=[("MessageSid", "SM1")], query="bodySHA256=%C3%A9", signed=True, extra={})
def test_twilio_callback_parser(form: list[tuple[str, str]], query: str, signed: bool, extra: dict[str, str]) -> None:
    url, headers, body = _twilio_request(form, query, signed, extra)
    if not signed:
        headers.pop("x-twilio-signature", None) if "x-twilio-signature" not in extra else None
    try:
        callback = TWILIO.handle_callback(_domain_request(url, headers, body))  # type: ignore[attr-defined]
    except CallbackRejected as rejected:
        assert 400 <= rejected.status < 500
        return
    assert callback.reply.status == 200


HOST = LocalHost()


@FUZZ
@given(
    form=forms,
    query=queries,
    signed=st.booleans(),
    extra=headers_extra,
    raw=st.none() | st.binary(max_size=512),
    provider=st.sampled_from(["twilio", "twilio", "loopback", "acs", "pigeon", "%2e%2e"]),
)
def test_callbacks_http_trigger_never_answers_5xx(
    installed_service: ChannelService,
    form: list[tuple[str, str]],
    query: str,
    signed: bool,
    extra: dict[str, str],
    raw: bytes | None,
    provider: str,
) -> None:
    url, headers, body = _twilio_request(form, query, signed, extra)
    url = url.replace("/twilio", f"/{provider}", 1)
    if raw is not None:
        body = raw
    response = HOST.call_http("POST", url, headers=headers, body=body)
    assert response.status_code < 500, response.get_body()[:200]
    if provider not in ("twilio", "loopback", "acs"):
        assert response.status_code == 404


# --- the hook: every provider module in shared/providers -------------------------------------------------------
def _provider_modules() -> list[str]:
    names = []
    for info in pkgutil.iter_modules(shared.providers.__path__):
        module = importlib.import_module(f"shared.providers.{info.name}")
        if hasattr(module, "NAME") and any(hasattr(v, "handle_callback") for v in vars(module).values()):
            names.append(str(module.NAME))
    return sorted(names)


def _authentic(name: str, body: bytes, query: str) -> tuple[str, dict[str, str]]:
    """A request the provider authenticates (so the fuzzer reaches its parser), for known providers."""
    url = f"{BASE}/{name}" + (f"?{query}" if query else "")
    if name == "twilio":
        return url, {
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": twilio_signature(TWILIO_TOKEN, url, []),
        }
    if name == "loopback":
        return url, {"content-type": "application/json", "x-loopback-signature": loopback_sign(LOOPBACK_KEY, url, body)}
    if name == "acs":
        sep = "&" if query else "?"
        return f"{url}{sep}secret={ACS_SECRET}", {"content-type": "application/json", "aeg-event-type": "Notification"}
    if name == "whatsapp":
        return url, {"content-type": "application/json", "x-hub-signature-256": hub_signature(WHATSAPP_SECRET, body)}
    return url, {"content-type": "application/json"}


json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.floats(allow_nan=False),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "message_id",
                    "status",
                    "from",
                    "to",
                    "text",
                    "eventType",
                    "data",
                    "id",
                    "subject",
                    "specversion",
                    "MessageId",
                    "From",
                    "To",
                    "Message",
                    "DeliveryStatus",
                    "tag",
                    "activity",
                ]
            )
            | st.text(max_size=8),
            c,
            max_size=6,
        )
    ),
    max_leaves=25,
).map(lambda v: json.dumps(v).encode())


@pytest.mark.parametrize("name", _provider_modules())
def test_every_provider_module_survives_fuzzed_callbacks(name: str) -> None:
    """HOOK: picks up every module in shared/providers that defines NAME and a class with handle_callback.

    A new provider is fuzzed here automatically with generic bodies; add it to ``providers()`` and ``_authentic``
    in this package to fuzz past its authentication too."""
    known = providers()
    if name not in known:
        pytest.skip(f"provider module {name!r} has no fuzz factory yet: add it to tests/fuzz/conftest.py providers()")
    provider: Any = known[name]

    @FUZZ
    @given(body=json_bodies | st.binary(max_size=512), query=queries, authentic=st.booleans(), extra=headers_extra)
    def run(body: bytes, query: str, authentic: bool, extra: dict[str, str]) -> None:
        url, headers = _authentic(name, body, query) if authentic else (f"{BASE}/{name}?{query}", dict(extra))
        try:
            callback = provider.handle_callback(_domain_request(url, headers, body))
        except CallbackRejected as rejected:
            assert 400 <= rejected.status < 500
            return
        assert 200 <= callback.reply.status < 300

    run()
