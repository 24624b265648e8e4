"""The whole loop with CHANNEL_PROVIDER=acs: activity message → emulated ACS over HTTP (SDK, HMAC) → interactions;
Event Grid deliveries (both schemas, both casings, handshakes) through the real HTTP trigger."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools.emulators.acs import AcsEmulator
from devtools.emulators.dataverse import DataverseEmulator
from devtools.host import LocalHost
from shared import bootstrap
from shared.settings import load_settings
from tests.helpers import CONTACT_ID, ROW_ID, activity_message, fixture_bytes
from tests.integration.conftest import ACTIVITY_QUEUE, PHONE, seed

ACS_FROM = "+18005550100"
SECRET = "integration-eventgrid-secret-0123456789"


@dataclass
class AcsChannel:
    host: LocalHost
    dataverse: DataverseEmulator
    acs: AcsEmulator
    callback_base: str

    @property
    def url(self) -> str:
        return f"{self.callback_base}/api/callbacks/acs?secret={SECRET}"

    def deliver(self, body: bytes) -> bool:
        return self.host.deliver(ACTIVITY_QUEUE, body)

    def response_types(self) -> list[str]:
        out = []
        for call in self.dataverse.interactions:
            kind = str(call["ResponseType"])
            out.append(f"{kind}:{call['TriggerKeyword']}" if kind == "keyword" else kind)
        return out

    def post(self, body: bytes, content_type: str = "application/json", url: str | None = None) -> tuple[int, bytes]:
        response = self.host.call_http(
            "POST", url or self.url, headers={"Content-Type": content_type, "aeg-event-type": "Notification"}, body=body
        )
        return response.status_code, response.get_body()


@pytest.fixture
def acs_channel(azurite_connection_string: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AcsChannel]:
    dataverse = DataverseEmulator(token="integration-dataverse-token")
    acs = AcsEmulator()
    seed(dataverse, body="Hi {{contact.firstname}}")
    host = LocalHost()
    server, callback_base = host.serve_http()
    env = {
        "DATAVERSE_URL": dataverse.url,
        "DATAVERSE_STATIC_TOKEN": "integration-dataverse-token",
        "AzureWebJobsStorage": azurite_connection_string,
        "STATE_TABLE_NAME": "state" + uuid.uuid4().hex[:12],
        "ServiceBusConnection": "Endpoint=sb://unused.servicebus.windows.net/;SharedAccessKeyName=x;SharedAccessKey=y",
        "ACTIVITY_QUEUE_NAME": ACTIVITY_QUEUE,
        "CALLBACK_QUEUE_NAME": "callbacks",
        "POISON_QUEUE_NAME": "activities-poison",
        "CHANNEL_PROVIDER": "acs",
        "CALLBACK_BASE_URL": callback_base,
        "MESSAGE_BODY_COLUMN": "cr123_body",
        "ACS_ENDPOINT": acs.url,
        "ACS_FROM": ACS_FROM,
        "ACS_ACCESS_KEY": str(acs.access_key),
        "ACS_EVENTGRID_SECRET": SECRET,
        "DATAVERSE_MAX_RETRIES": "2",
        "CALLBACK_PROCESSING": "inline",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    host.environ.update(env)
    bootstrap.install(bootstrap.build_service(load_settings(env), queue=host.queue))
    try:
        yield AcsChannel(host, dataverse, acs, callback_base)
    finally:
        bootstrap.install(None)
        server.shutdown()
        server.server_close()
        acs.stop()
        dataverse.stop()


def test_activity_message_sends_one_sms_and_records_sent(acs_channel: AcsChannel) -> None:
    assert acs_channel.deliver(activity_message())
    assert acs_channel.deliver(activity_message())  # redelivery: nothing twice
    [sms] = acs_channel.acs.messages
    assert (sms.to, sms.from_, sms.message, sms.auth) == (PHONE, ACS_FROM, "Hi Avery", "hmac")
    assert sms.tag == ROW_ID and sms.enable_delivery_report
    assert len([r for r in acs_channel.acs.requests if r.path == "/sms"]) == 1
    assert acs_channel.response_types() == ["sent"]


@pytest.mark.parametrize(("schema", "pascal"), [("eventgrid", False), ("eventgrid", True), ("cloudevents", False)])
def test_delivery_reports_over_http_record_once(acs_channel: AcsChannel, schema: str, pascal: bool) -> None:
    acs_channel.deliver(activity_message())
    message = acs_channel.acs.messages[0]
    event = acs_channel.acs.delivery_report(message, "Delivered", schema=schema, pascal=pascal)
    for _ in range(2):  # at-least-once delivery: the same event twice
        status, _ = acs_channel.acs.post_events(acs_channel.url, [event], schema=schema, batch=False)
        assert status == 200
    assert acs_channel.response_types() == ["sent", "delivered"]


def test_documented_samples_record_the_right_interactions(acs_channel: AcsChannel) -> None:
    acs_channel.deliver(activity_message())
    message_id = acs_channel.acs.messages[0].message_id
    sample_id = "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910"
    body = fixture_bytes("acs", "cloudevents_delivery_report.json").decode()
    body = body.replace(sample_id, message_id).replace("Optional customer-tag set in the original message", ROW_ID)
    assert acs_channel.post(body.encode(), "application/cloudevents+json; charset=utf-8")[0] == 200
    failed = fixture_bytes("acs", "eventgrid_delivery_report_pascal.json").decode().replace(sample_id, message_id)
    assert acs_channel.post(failed.replace('"Delivered"', '"Failed"').encode())[0] == 200  # late: ignored
    assert acs_channel.response_types() == ["sent", "delivered"]


def test_failed_report_without_tag_is_found_by_message_id(acs_channel: AcsChannel) -> None:
    acs_channel.deliver(activity_message())
    message = acs_channel.acs.messages[0]
    event = acs_channel.acs.delivery_report(message, "Failed", pascal=True)
    del event["data"]["Tag"]
    assert acs_channel.acs.post_events(acs_channel.url, [event])[0] == 200
    assert acs_channel.response_types() == ["sent", "failed"]


def test_validation_handshakes(acs_channel: AcsChannel) -> None:
    status, body = acs_channel.post(fixture_bytes("acs", "eventgrid_subscription_validation.json"))
    assert status == 200
    assert json.loads(body) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    status, headers = acs_channel.acs.options_handshake(acs_channel.url, origin="eventgrid.azure.net")
    assert status == 200
    assert headers["webhook-allowed-origin"] == "eventgrid.azure.net" and headers["allow"] == "POST"
    status, _ = acs_channel.acs.options_handshake(f"{acs_channel.callback_base}/api/callbacks/acs")
    assert status == 200  # no secret on a handshake: answered (it proves the endpoint exists, grants nothing)
    status, _ = acs_channel.acs.options_handshake(f"{acs_channel.callback_base}/api/callbacks/acs?secret=wrong-x")
    assert status == 403
    assert acs_channel.dataverse.interactions == []


def test_unauthenticated_posts_are_refused_and_record_nothing(acs_channel: AcsChannel) -> None:
    acs_channel.deliver(activity_message())
    event = acs_channel.acs.delivery_report(acs_channel.acs.messages[0], "Delivered")
    base = f"{acs_channel.callback_base}/api/callbacks/acs"
    assert acs_channel.acs.post_events(base, [event])[0] == 401
    assert acs_channel.acs.post_events(f"{base}?secret=wrong-wrong-wrong-wrong-wrong", [event])[0] == 403
    validation = fixture_bytes("acs", "eventgrid_subscription_validation.json")
    status, body = acs_channel.post(validation, url=f"{base}?secret=wrong-wrong-wrong-wrong-wrong")
    assert status == 403 and b"512d38b6" not in body
    assert acs_channel.response_types() == ["sent"]


def test_reply_stop_sets_compliance_and_records_keyword(acs_channel: AcsChannel) -> None:
    acs_channel.deliver(activity_message())
    batch = [
        acs_channel.acs.sms_received(PHONE, ACS_FROM, "Yes!", schema="cloudevents"),
        acs_channel.acs.sms_received(PHONE, ACS_FROM, "STOP", schema="cloudevents", pascal=True),
    ]
    assert acs_channel.acs.post_events(acs_channel.url, batch, schema="cloudevents")[0] == 200
    assert acs_channel.acs.post_events(acs_channel.url, batch, schema="cloudevents")[0] == 200  # redelivered
    assert acs_channel.response_types() == ["sent", "keyword:yes", "keyword:stop"]
    assert acs_channel.dataverse.get_row("contact", CONTACT_ID)["donotphone"] is True  # type: ignore[index]


def test_documented_sms_received_samples(acs_channel: AcsChannel) -> None:
    acs_channel.deliver(activity_message())
    for name in ("eventgrid_sms_received.json", "eventgrid_sms_received_pascal.json"):
        body = fixture_bytes("acs", name).decode().replace('"from": "15555555555"', '"from": "447700900123"')
        body = body.replace('"From": "15555555555"', '"From": "447700900123"')
        assert acs_channel.post(body.encode())[0] == 200
    assert acs_channel.response_types() == ["sent", "keyword:great"]


def test_event_grid_secret_in_the_x_channel_secret_header(acs_channel: AcsChannel) -> None:
    validation = fixture_bytes("acs", "eventgrid_subscription_validation.json")
    url = f"{acs_channel.callback_base}/api/callbacks/acs"  # no ?secret= in the URL
    for secret, expected in ((SECRET, 200), (None, 200), ("wrong-wrong-wrong-wrong-wrong", 403)):
        headers = {"Content-Type": "application/json", "aeg-event-type": "SubscriptionValidation"}
        if secret is not None:
            headers["X-Channel-Secret"] = secret
        response = acs_channel.host.call_http("POST", url, headers=headers, body=validation)
        assert response.status_code == expected
