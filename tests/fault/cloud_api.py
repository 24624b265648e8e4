"""The fault run's provider switch (issue #17): Meta's WhatsApp Cloud API in place of Twilio.

The real :class:`WhatsAppProvider` sends through a fake session that answers like the Graph API (accepts, refuses
with 131030, fails with 5xx / 504), and the status callbacks and replies the engine generates (as Twilio form
parameters) are posted as signed Cloud API webhooks instead.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from devtools.emulators.whatsapp import hub_signature
from shared.domain.models import InboundHttpRequest
from shared.providers.whatsapp import WhatsAppProvider

if TYPE_CHECKING:
    from tests.fault.engine import Simulation

APP_SECRET = "fault-run-whatsapp-app-secret-Lp4"
ACCESS_TOKEN = "fault-run-whatsapp-token-Vb2"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15005550006"
STATUS = {"undelivered": "failed"}  # Twilio's words the engine generates → the Cloud API's


def provider(sim: Simulation) -> WhatsAppProvider:
    return WhatsAppProvider(
        phone_number_id=PHONE_NUMBER_ID,
        access_token=ACCESS_TOKEN,
        app_secret=APP_SECRET,
        verify_token="fault-run-verify-token",
        api_base_url="https://graph.facebook.example/v21.0",
        session=_CloudApiSession(sim),  # type: ignore[arg-type]
        opt_out_payloads=frozenset({"stop"}),
        timeout=10.0,
    )


def _response(status: int, body: dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


def _error(status: int, code: int, message: str) -> requests.Response:
    return _response(status, {"error": {"message": message, "type": "OAuthException", "code": code}})


class _CloudApiSession:
    """Answers ``POST /{phone-number-id}/messages`` the way ``_TwilioSession`` answers Messages.json."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def post(self, url: str, *, json: dict[str, Any], headers: dict[str, str], timeout: Any = None) -> Any:
        from tests.fault.engine import CALLBACK_URL

        sim = self._sim
        sim.step("provider.send")
        assert headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
        row_id = str(json["biz_opaque_callback_data"])
        callback = f"{CALLBACK_URL}?activity={row_id}"  # how the engine finds the activity of an accepted send
        to = "+" + str(json["to"]).lstrip("+")
        truth = sim.by_row[row_id]
        rng = sim.rng
        if rng.random() < sim.rates.provider_5xx:
            kind = rng.choice(["500", "503", "503", "504"])
            sim.provider_faults[kind] += 1
            if kind == "504":
                sim.idle(10.0)
                if truth.kind != "rejected" and rng.random() < 0.5:  # timed out after Meta took it
                    sim.provider_faults["504 although accepted"] += 1
                    sim.provider_accepted(to, callback)
                return _error(504, 2, "Service temporarily unavailable")
            sim.idle(0.1)
            return _error(int(kind), 131000, "Something went wrong")
        sim.idle(rng.uniform(0.05, 0.4))
        if truth.kind == "rejected":
            truth.rejected_calls += 1
            return _error(400, 131030, "Recipient phone number not in allowed list")
        message_id = sim.provider_accepted(to, callback)
        return _response(200, {"messaging_product": "whatsapp", "messages": [{"id": message_id}]})


def webhook_request(params: list[tuple[str, str]], url: str) -> InboundHttpRequest:
    """The engine's Twilio-shaped callback as the signed Cloud API webhook Meta would post."""
    form = dict(params)
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
    }
    status = form.get("MessageStatus", "received")
    if status != "received":
        item: dict[str, Any] = {"id": form["MessageSid"], "status": STATUS.get(status, status)}
        query = urlsplit(url).query
        if query.startswith("activity="):
            item["biz_opaque_callback_data"] = query.removeprefix("activity=")
        if item["status"] == "failed":
            item["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
        value["statuses"] = [item]
    else:
        sender = form["From"].lstrip("+")
        value["messages"] = [{"from": sender, "id": form["MessageSid"], "type": "text", "text": {"body": form["Body"]}}]
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    body = json.dumps(document).encode()
    headers = {"content-type": "application/json", "x-hub-signature-256": hub_signature(APP_SECRET, body)}
    return InboundHttpRequest("POST", "/api/callbacks/whatsapp", {}, headers, body)
