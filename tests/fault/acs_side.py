"""ACS in the fault run (``--provider acs``): the SMS send API as the real ``AcsProvider`` (the SDK's pipeline over
``RequestsTransport``) sees it, with repeatability as ACS documents it, and Event Grid callbacks.

- ``POST /sms``: per recipient, a ``repeatabilityRequestId`` seen within 5 minutes (simulated time) of its
  ``repeatabilityFirstSent`` gets the original result and sends nothing; a first-sent older than that gets 412;
  faults: 500 / 503 / 504 (nothing taken), 504 and read timeouts *after* the message was taken (ambiguous);
- callbacks: ``SMSDeliveryReportReceived`` (Delivered / Failed) and ``SMSReceived`` in the Event Grid schema with the
  subscription's secret header.
"""

from __future__ import annotations

import base64
import json
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
from requests.structures import CaseInsensitiveDict

from shared.domain.models import InboundHttpRequest

if TYPE_CHECKING:
    from tests.fault.engine import Simulation

ACS_URL = "https://fault-run.communication.azure.com"
ACS_KEY = base64.b64encode(b"fault-run-acs-access-key-0123456789").decode()
ACS_SECRET = "fault-run-eventgrid-secret-0123456789"
TRACKED = timedelta(minutes=5)


@dataclass
class _Seen:
    first_sent: datetime
    result: dict[str, Any]


def _response(status: int, body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
    response.raw = types.SimpleNamespace()  # azure-core sets enforce_content_length on it
    response.encoding = "utf-8"
    return response


class AcsSession(requests.Session):
    """What ``RequestsTransport`` calls: ``session.request(...)`` for ``POST /sms``."""

    def __init__(self, sim: Simulation) -> None:
        super().__init__()
        self._sim = sim
        self.seen: dict[str, _Seen] = {}
        self.replays = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        sim = self._sim
        sim.step("provider.send")
        payload = json.loads(kwargs.get("data") or b"{}")
        [recipient] = payload["smsRecipients"]
        row_id = str(payload["smsSendOptions"]["tag"])
        truth = sim.by_row[row_id]
        rng = sim.rng
        if rng.random() < sim.rates.provider_5xx:
            kind = rng.choice(["500", "503", "504", "timeout"])
            sim.provider_faults[kind] += 1
            sim.idle(10.0 if kind in ("504", "timeout") else 0.1)
            if kind in ("504", "timeout") and truth.kind != "rejected" and rng.random() < 0.5:
                sim.provider_faults[f"{kind} although accepted"] += 1
                self._execute(recipient, payload, row_id)
            if kind == "timeout":
                raise requests.ReadTimeout("injected: no answer from ACS")
            return _response(int(kind), {"error": {"code": "ServiceError", "message": "injected"}})
        sim.idle(rng.uniform(0.05, 0.4))
        return _response(202, {"value": [self._execute(recipient, payload, row_id)]})

    def _execute(self, recipient: Mapping[str, Any], payload: Mapping[str, Any], row_id: str) -> dict[str, Any]:
        sim = self._sim
        to, request_id = str(recipient["to"]), str(recipient["repeatabilityRequestId"])
        first_sent = parsedate_to_datetime(str(recipient["repeatabilityFirstSent"]))
        if not sim.now - TRACKED <= first_sent <= sim.now + timedelta(minutes=1):
            sim.provider_faults["412 replay outside the window"] += 1
            return {"to": to, "httpStatusCode": 412, "successful": False, "repeatabilityResult": "rejected"}
        self.seen = {k: v for k, v in self.seen.items() if v.first_sent >= sim.now - TRACKED}
        if request_id in self.seen:
            self.replays += 1
            return dict(self.seen[request_id].result)
        truth = sim.by_row[row_id]
        if truth.kind == "rejected":
            truth.rejected_calls += 1
            result = {"to": to, "httpStatusCode": 400, "successful": False, "errorMessage": "Invalid To phone number."}
        else:
            sid = sim.provider_accepted(to, f"{ACS_URL}?activity={row_id}", str(payload["message"]))
            result = {"to": to, "messageId": sid, "httpStatusCode": 202, "successful": True}
        result["repeatabilityResult"] = "accepted"
        self.seen[request_id] = _Seen(first_sent, result)
        return result


def acs_statuses(statuses: list[str]) -> list[str]:
    """ACS reports only a final Delivered / Failed (no queued / sent / read)."""
    return [s for s in statuses if s in ("delivered", "undelivered")]


def event_request(payload: Mapping[str, Any], sender: str, at: datetime) -> InboundHttpRequest:
    """The Event Grid delivery of one simulated callback (a delivery report or a reply)."""
    params = dict(payload["params"])
    sid = params["MessageSid"]
    stamp = at.isoformat()
    if payload["type"] == "status":
        status = "Delivered" if payload["status"] == "delivered" else "Failed"
        kind = "Microsoft.Communication.SMSDeliveryReportReceived"
        data = {"messageId": sid, "from": sender, "to": params["To"], "deliveryStatus": status}
        data |= {"deliveryStatusDetails": "No error.", "receivedTimestamp": stamp, "tag": payload["row_id"]}
        event_id = f"{sid}:{payload['status']}"
    else:
        kind = "Microsoft.Communication.SMSReceived"
        data = {"messageId": sid, "from": params["From"], "to": sender, "message": params["Body"]}
        data["receivedTimestamp"] = stamp
        event_id = sid
    event = {"id": event_id, "topic": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Communication/c"}
    event |= {"subject": "/phonenumber/x", "eventType": kind, "data": data, "eventTime": stamp}
    event |= {"dataVersion": "1.0", "metadataVersion": "1"}
    headers = {"content-type": "application/json", "x-channel-secret": ACS_SECRET, "aeg-event-type": "Notification"}
    return InboundHttpRequest("POST", "/api/callbacks/acs", {}, headers, json.dumps([event]).encode())
