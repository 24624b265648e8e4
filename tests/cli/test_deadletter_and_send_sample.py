"""``channel send-sample`` and ``channel deadletter`` against an azure-servicebus double (same method names)."""

from __future__ import annotations

import io
import json

import pytest

from cli import deadletter, send_sample
from cli.common import plain_properties
from devtools.messages import CLAIMS
from shared.domain.context import parse_activity_message
from tests.cli.conftest import FakeServiceBus

ENV = {
    "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "ServiceBusConnection": "Endpoint=sb://fake.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v",
    "ACTIVITY_QUEUE_NAME": "activities",
    "CALLBACK_QUEUE_NAME": "callbacks",
    "POISON_QUEUE_NAME": "activities-poison",
    "CHANNEL_PROVIDER": "loopback",
    "LOOPBACK_PROVIDER_URL": "http://127.0.0.1:9",
    "LOOPBACK_SIGNING_KEY": "k",
    "CALLBACK_BASE_URL": "https://channel.example.com",
    "MESSAGE_BODY_COLUMN": "cr123_body",
}
CONTACT = "c0a80101-0000-4000-8000-000000000001"
JOURNEY = "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a01"
ITERATION = "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a02"
MESSAGE = "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51"
SAMPLE_ARGS = [
    "--contact",
    CONTACT,
    "--journey",
    JOURNEY,
    "--iteration",
    ITERATION,
    "--message-table",
    "cr123_smsmessage",
    "--message-id",
    MESSAGE,
]


def dl(bus: FakeServiceBus, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = deadletter.main(list(args), environ=ENV, servicebus=bus, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def poison(bus: FakeServiceBus, body: bytes = b'{"a":1}', source: str | None = "activities", **extra: object) -> str:
    properties: dict[str, object] = {
        CLAIMS + "Organization": "https://contoso.crm.dynamics.com",
        "channel-attempt": 8,
        "DeadLetterReason": "retries_exhausted",
        "DeadLetterErrorDescription": "gave up after 8 attempts: Dataverse read contact: HTTP 503",
        "channel-original-message-id": "orig-1",
        **extra,
    }
    if source:
        properties["channel-source-queue"] = source
    return bus.ns.add("activities-poison", body, properties=properties, message_id="orig-1").message_id


# ------------------------------------------------------------------------------------------------- send-sample
def test_send_sample_posts_exactly_what_dataverse_posts(bus: FakeServiceBus) -> None:
    out = io.StringIO()
    row = "3b2c1d0e-4f5a-4b6c-8d7e-9f0a1b2c3d99"
    assert send_sample.main([*SAMPLE_ARGS, "--row-id", row], environ=ENV, servicebus=bus, out=out) == 0
    assert f"row id: {row}" in out.getvalue()
    [(queue, message)] = bus.ns.sent
    assert queue == "activities" and message.content_type == "application/json"
    props = dict(message.application_properties)
    assert props[CLAIMS + "EntityLogicalName"] == "msdyncrm_customerjourneycustomchannelactivity"
    assert props[CLAIMS + "RequestName"] == "Create"
    assert props[CLAIMS + "Organization"] == ENV["DATAVERSE_URL"]
    [received] = bus.ns.queues["activities"].active
    body = b"".join(received.body)
    assert b"\\/Date(" in body  # DataContractJsonSerializer shape, escaped slashes
    parsed = parse_activity_message(body, received.content_type, received.props())
    assert parsed.activity is not None
    assert (parsed.activity.row_id, parsed.activity.contact_id, parsed.activity.entity_id) == (row, CONTACT, MESSAGE)
    assert (parsed.activity.journey_id, parsed.activity.entity_type) == (JOURNEY, "cr123_smsmessage")


def test_send_sample_names_the_org_in_a_multi_org_deployment(
    bus: FakeServiceBus, capsys: pytest.CaptureFixture[str]
) -> None:
    org = "bbbbbbbb-0000-4000-8000-00000000000b"
    multi = {
        **{k: v for k, v in ENV.items() if k != "DATAVERSE_URL"},
        "MULTI_ORG": "true",
        "DATAVERSE_STATIC_TOKEN": "t",
    }
    assert send_sample.main(SAMPLE_ARGS, environ=multi, servicebus=bus) == 2
    assert "--org" in capsys.readouterr().err and bus.ns.sent == []
    assert send_sample.main([*SAMPLE_ARGS, "--org", org.upper()], environ=multi, servicebus=bus) == 0
    [(_, message)] = bus.ns.sent
    body = b"".join(message.body) if not isinstance(message.body, bytes) else message.body
    assert parse_activity_message(body, "application/json", dict(message.application_properties)).organization_id == org


def test_send_sample_prints_a_new_row_id_and_honours_queue(bus: FakeServiceBus) -> None:
    out = io.StringIO()
    assert send_sample.main([*SAMPLE_ARGS, "--queue", "callbacks"], environ=ENV, servicebus=bus, out=out) == 0
    row = out.getvalue().split("row id: ")[1].strip()
    assert len(row) == 36 and bus.ns.sent[0][0] == "callbacks"


def test_send_sample_rejects_bad_input_and_reports_send_failures(
    bus: FakeServiceBus, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        send_sample.main([*SAMPLE_ARGS[:-1], "not-a-guid"], environ=ENV, servicebus=bus)
    del bus.ns.queues["activities"]
    assert send_sample.main(SAMPLE_ARGS, environ=ENV, servicebus=bus, out=io.StringIO()) == 1
    assert "could not send to activities: MessagingEntityNotFoundError" in capsys.readouterr().err
    assert send_sample.main(SAMPLE_ARGS, environ={}, servicebus=bus) == 2


# ------------------------------------------------------------------------------------------------- list / show
def test_list_shows_broker_dead_letters_and_poison_messages_with_reasons(bus: FakeServiceBus) -> None:
    bus.ns.add(
        "activities",
        dead=True,
        message_id="broker-1",
        reason="MaxDeliveryCountExceeded",
        description="Message could not be consumed after 10 delivery attempts.",
    )
    poison(bus)
    bus.ns.add("callbacks", message_id="live-1")  # an active message is not a dead letter
    code, out, err = dl(bus, "list")
    assert code == 0 and err == ""
    rows = out.splitlines()
    broker = next(r for r in rows if "broker-1" in r)
    assert broker.startswith("activities/$deadletterqueue") and "MaxDeliveryCountExceeded" in broker
    assert broker.rstrip().endswith("activities")
    ours = next(r for r in rows if "orig-1" in r)
    assert ours.startswith("activities-poison ") and "retries_exhausted" in ours
    assert "gave up after 8 attempts" in out and "Message could not be consumed" in out
    assert "live-1" not in out
    assert "activities-poison/$deadletterqueue" in out
    assert bus.ns.completed == [] and bus.ns.abandoned == []  # peek only


def test_list_pages_through_many_messages_and_filters_sources(bus: FakeServiceBus) -> None:
    for i in range(230):
        bus.ns.add("callbacks", dead=True, message_id=f"cb-{i}")
    code, out, _ = dl(bus, "list", "--source", "callbacks")
    assert code == 0
    assert "cb-0 " in out and "cb-229" in out and "230 message(s)" in out
    assert "activities-poison" not in out
    code, out, _ = dl(bus, "list", "--source", "callbacks", "--limit", "5")
    assert "cb-4 " in out and "cb-5 " not in out


def test_show_prints_properties_and_the_pretty_body(bus: FakeServiceBus) -> None:
    poison(bus, body=b'{"MessageName":"Create","Depth":1}')
    code, out, _ = dl(bus, "show", "--message-id", "orig-1")
    assert code == 0
    assert "reason          retries_exhausted" in out
    assert "replays to      activities" in out
    assert "channel-attempt = 8" in out
    assert '"MessageName": "Create"' in out
    code, _, err = dl(bus, "show", "--message-id", "nope")
    assert code == 1 and "no dead-lettered message with id nope" in err


def test_an_unreadable_source_does_not_hide_the_others(bus: FakeServiceBus) -> None:
    del bus.ns.queues["callbacks"]
    poison(bus)
    code, out, err = dl(bus, "list")
    assert code == 0
    assert "cannot read callbacks/$deadletterqueue: MessagingEntityNotFoundError" in err
    assert "orig-1" in out


# ------------------------------------------------------------------------------------------------- replay
def test_replay_moves_a_poison_message_back_fresh(bus: FakeServiceBus) -> None:
    poison(bus, body=b'{"x":1}')
    code, out, _ = dl(bus, "replay", "--message-id", "orig-1", "--quiet")
    assert code == 0, out
    assert "replayed 1, failed 0, skipped 0, not found 0" in out
    assert bus.ns.queues["activities-poison"].active == []
    [(queue, _message)] = bus.ns.sent
    assert queue == "activities"
    [back] = bus.ns.queues["activities"].active
    props = back.props()
    assert b"".join(back.body) == b'{"x":1}' and back.content_type == "application/json"
    assert props[CLAIMS + "Organization"] == "https://contoso.crm.dynamics.com"  # Dataverse's claims kept
    for stripped in ("channel-attempt", "DeadLetterReason", "DeadLetterErrorDescription", "channel-source-queue"):
        assert stripped not in props
    assert props["channel-replay-of"] == "orig-1"
    assert back.message_id.startswith("orig-1:replay-")  # new id: duplicate detection can't swallow it


def test_replay_all_moves_broker_dead_letters_to_their_queue(bus: FakeServiceBus) -> None:
    for i in range(3):
        bus.ns.add(
            "activities",
            dead=True,
            message_id=f"dl-{i}",
            reason="MaxDeliveryCountExceeded",
            properties={"DeadLetterReason": "MaxDeliveryCountExceeded", "channel-attempt": 2},
        )
    bus.ns.add("callbacks", dead=True, message_id="cb-dead")
    code, out, _ = dl(bus, "replay", "--all", "--quiet", "--source", "activities")
    assert code == 0
    assert "replayed 3, failed 0" in out
    assert bus.ns.queues["activities"].dead == []
    assert [m.message_id.split(":")[0] for m in bus.ns.queues["activities"].active] == ["dl-0", "dl-1", "dl-2"]
    assert all(
        "DeadLetterReason" not in m.props() and "channel-attempt" not in m.props()
        for m in bus.ns.queues["activities"].active
    )
    assert [m.message_id for m in bus.ns.queues["callbacks"].dead] == ["cb-dead"]  # other source untouched


def test_replay_never_completes_a_message_it_could_not_resend(bus: FakeServiceBus) -> None:
    poison(bus)
    bus.ns.fail_sends_to.add("activities")
    code, out, _ = dl(bus, "replay", "--message-id", "orig-1", "--quiet")
    assert code == 1
    assert "replayed 0, failed 1" in out and "(left in place)" in out
    assert len(bus.ns.queues["activities-poison"].active) == 1
    assert bus.ns.completed == [] and bus.ns.abandoned == [1]


def test_replay_skips_poison_without_source_and_leaves_unchosen_messages(bus: FakeServiceBus) -> None:
    bus.ns.add("activities-poison", message_id="keep-me", properties={"channel-source-queue": "activities"})
    poison(bus, source=None)
    code, out, _ = dl(bus, "replay", "--message-id", "orig-1", "missing-id", "--quiet")
    assert code == 1
    assert "skipped activities-poison#2 orig-1: no channel-source-queue property" in out
    assert "missing missing-id: not found" in out
    assert "replayed 0, failed 0, skipped 1, not found 1" in out
    assert [m.message_id for m in bus.ns.queues["activities-poison"].active] == ["keep-me", "orig-1"]
    assert sorted(bus.ns.abandoned) == [1, 2] and bus.ns.completed == [] and bus.ns.sent == []


def test_replay_shows_a_progress_bar_on_a_terminal(bus: FakeServiceBus) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    poison(bus)
    err = Tty()
    code = deadletter.main(["replay", "--all"], environ=ENV, servicebus=bus, out=io.StringIO(), err=err)
    assert code == 0
    assert "\rreplaying [" in err.getvalue() and "1/1" in err.getvalue()


def test_received_properties_are_decoded() -> None:
    assert plain_properties({b"DeadLetterReason": b"xml_format", b"channel-attempt": 3}) == {
        "DeadLetterReason": "xml_format",
        "channel-attempt": 3,
    }
    assert json.loads(json.dumps(plain_properties(None))) == {}
