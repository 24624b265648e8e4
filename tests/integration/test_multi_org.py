"""One deployment, two customer orgs (issue #15): two Dataverse emulators with different columns and senders, one
app with ``MULTI_ORG=true``, the org registry in a real table (Azurite), the functions driven like the worker does."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from devtools.emulators.dataverse import DataverseEmulator
from devtools.emulators.keyvault import KeyVaultEmulator
from devtools.emulators.twilio import TwilioEmulator, twilio_signature
from devtools.host import LocalHost
from devtools.messages import ActivitySpec, activity_message
from shared import bootstrap
from shared.adapters.org_table import org_table
from shared.app.callback_codec import encode_events
from shared.domain.models import StatusEvent, StatusKind
from shared.orgs.model import OrgRecord
from shared.orgs.registry import OrgRegistry
from shared.service import ChannelService
from shared.settings import load_settings

TOKEN = "multi-org-dataverse-token"
TWILIO_SID, TWILIO_TOKEN = "AC" + "2" * 32, "multi-org-auth-token"
ORG_A, ORG_B = "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b"
TENANT_A, TENANT_B = "aaaaaaaa-1111-4111-8111-11111111111a", "bbbbbbbb-1111-4111-8111-11111111111b"
SENDER_A, SENDER_B = "+15005550006", "+15005550007"
QUEUE, POISON = "activities", "activities-poison"
JOURNEY, ITERATION = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "6f5e4d3c-2b1a-4f0e-9d8c-7b6a5f4e3d2c"
RTJ_SECRET = "multi-org-relay-secret-0123456789"


@dataclass(frozen=True)
class Customer:
    """One emulated customer org: its own message table, body and phone columns, contact and sender."""

    org_id: str
    tenant: str
    table: str
    entity_set: str
    body_column: str
    phone_column: str
    sender: str
    contact: str
    message: str
    phone: str


CUSTOMERS = (
    Customer(ORG_A, TENANT_A, "cr123_smsmessage", "cr123_smsmessages", "cr123_body", "mobilephone", SENDER_A,
             "8d3c1f2e-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "a7b8c9d0-e1f2-4a3b-8c4d-5e6f7a8b9c0d", "+447700900123"),
    Customer(ORG_B, TENANT_B, "fab_textmessage", "fab_textmessages", "fab_text", "telephone2", SENDER_B,
             "0e3b8a8c-2f1d-4b6a-9c3e-7d5f1a2b3c4d", "9b0c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4", "+447700900456"),
)  # fmt: skip


CUSTOMER_OVERRIDES = {
    c.org_id: {
        "MESSAGE_BODY_COLUMN": c.body_column,
        "CONTACT_PHONE_COLUMN": c.phone_column,
        **({"TWILIO_FROM": c.sender} if c.sender != SENDER_A else {}),
    }
    for c in CUSTOMERS
}


def seed(dataverse: DataverseEmulator, customer: Customer) -> None:
    dataverse.add_entity(customer.table, customer.entity_set, f"{customer.table}id")
    text = f"Hello from {customer.org_id[:4]}" + (" https://fabrikam.example/offer" if customer.org_id == ORG_B else "")
    dataverse.add_row(customer.table, customer.message, {customer.body_column: text})
    dataverse.add_entity("contact", "contacts", "contactid")
    dataverse.add_columns("contact", [customer.phone_column, "donotphone", "firstname"])
    dataverse.add_row("contact", customer.contact, {customer.phone_column: customer.phone, "donotphone": False})
    dataverse.add_entity(
        "msdyncrm_customerjourneycustomchannelactivity",
        "msdyncrm_customerjourneycustomchannelactivities",
        "msdyncrm_customerjourneycustomchannelactivityid",
    )


@dataclass
class Deployment:
    host: LocalHost
    service: ChannelService
    twilio: TwilioEmulator
    orgs: dict[str, DataverseEmulator]
    registry: OrgRegistry
    callback_base: str

    def activity(self, customer: Customer, org_id: str | None = None) -> tuple[bytes, dict[str, Any], str]:
        spec = ActivitySpec(
            contact_id=customer.contact,
            journey_id=JOURNEY,
            iteration_id=ITERATION,
            entity_type=customer.table,
            entity_id=customer.message,
            organization_id=org_id or customer.org_id,
        )
        body, properties = activity_message(spec)
        return body, dict(properties), spec.row_id

    def deliver(self, *activities: tuple[bytes, dict[str, Any], str]) -> bool:
        batch = [(body, "application/json", props, uuid.uuid4().hex) for body, props, _ in activities]
        return self.host.deliver_batch(QUEUE, batch)

    def interactions(self, org_id: str) -> list[tuple[str, str]]:
        return [(str(i["ResponseType"]), str(i["EntityType"])) for i in self.orgs[org_id].interactions]


@pytest.fixture
def deployment(
    azurite_connection_string: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    extra: dict[str, str] = getattr(request, "param", {})
    orgs = {c.org_id: DataverseEmulator(token=TOKEN, organization_id=c.org_id) for c in CUSTOMERS}
    for customer in CUSTOMERS:
        seed(orgs[customer.org_id], customer)
    twilio = TwilioEmulator(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
    host = LocalHost()
    server, callback_base = host.serve_http()
    env = {
        "MULTI_ORG": "true",
        "ORG_TABLE_NAME": "orgs" + uuid.uuid4().hex[:12],
        "DATAVERSE_STATIC_TOKEN": TOKEN,  # loopback emulators only, as for one org
        "AzureWebJobsStorage": azurite_connection_string,
        "STATE_TABLE_NAME": "state" + uuid.uuid4().hex[:12],
        "ServiceBusConnection": "Endpoint=sb://unused.servicebus.windows.net/;SharedAccessKeyName=x;SharedAccessKey=y",
        "ACTIVITY_QUEUE_NAME": QUEUE,
        "POISON_QUEUE_NAME": POISON,
        "CALLBACK_QUEUE_NAME": "callbacks",
        "CHANNEL_PROVIDER": "twilio",
        "CALLBACK_BASE_URL": callback_base,
        "MESSAGE_BODY_COLUMN": "cr123_body",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM": SENDER_A,
        "TWILIO_API_BASE_URL": twilio.url,
        "DATAVERSE_MAX_RETRIES": "1",
        "RTJ_AUTH_MODE": "secret",
        "RTJ_OUTBOUND_SECRET": RTJ_SECRET,
        "CALLBACK_PROCESSING": "inline",
        "ORG_CACHE_SECONDS": "0",  # a row change is seen at once (the default 60 s: test_org_registry.py)
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    host.environ.update(env)
    settings = load_settings(env)
    registry = OrgRegistry(org_table(settings), settings)
    for customer in CUSTOMERS:
        overrides = {"MESSAGE_BODY_COLUMN": customer.body_column, "CONTACT_PHONE_COLUMN": customer.phone_column}
        if customer.sender != SENDER_A:
            overrides["TWILIO_FROM"] = customer.sender
        registry.add(OrgRecord(customer.org_id, orgs[customer.org_id].url, customer.tenant, overrides=overrides))
    service = bootstrap.build_service(settings, queue=host.queue)
    bootstrap.install(service)
    try:
        yield Deployment(host, service, twilio, orgs, registry, callback_base)
    finally:
        bootstrap.install(None)
        server.shutdown()
        server.server_close()
        twilio.stop()
        for emulator in orgs.values():
            emulator.stop()


A, B = CUSTOMERS


def test_each_org_gets_only_its_own_interactions_with_its_own_columns_and_sender(deployment: Deployment) -> None:
    assert deployment.deliver(deployment.activity(A), deployment.activity(B))
    sent = {m.to: m for m in deployment.twilio.messages}
    assert set(sent) == {A.phone, B.phone}
    assert (sent[A.phone].from_, sent[A.phone].body) == (SENDER_A, f"Hello from {ORG_A[:4]}")
    assert (sent[B.phone].from_, sent[B.phone].body) == (
        SENDER_B,
        f"Hello from {ORG_B[:4]} https://fabrikam.example/offer",
    )
    assert deployment.interactions(ORG_A) == [("sent", A.table)]
    assert deployment.interactions(ORG_B) == [("sent", B.table)]
    assert not any(B.table in r.path for r in deployment.orgs[ORG_A].requests)
    assert not any(A.table in r.path for r in deployment.orgs[ORG_B].requests)


def test_a_callback_for_org_b_is_reported_to_org_b(deployment: Deployment) -> None:
    deployment.deliver(deployment.activity(A), deployment.activity(B))
    message_b = next(m for m in deployment.twilio.messages if m.to == B.phone)
    assert deployment.twilio.send_status(message_b.sid, "delivered")[0] == 200
    assert deployment.interactions(ORG_B) == [("sent", B.table), ("delivered", B.table)]
    assert deployment.interactions(ORG_A) == [("sent", A.table)]


def test_a_reply_to_org_b_sender_is_org_b_keyword(deployment: Deployment) -> None:
    deployment.deliver(deployment.activity(A), deployment.activity(B))
    url = deployment.callback_base + "/api/callbacks/twilio"
    assert deployment.twilio.send_inbound(url, B.phone, SENDER_B, "YES please")[0] == 200
    keywords = [i["TriggerKeyword"] for i in deployment.orgs[ORG_B].interactions if i["ResponseType"] == "keyword"]
    assert keywords == ["yes"]
    assert all(i["ResponseType"] == "sent" for i in deployment.orgs[ORG_A].interactions)


@pytest.mark.parametrize("disable", [False, True])
def test_an_unknown_or_disabled_org_is_poisoned_after_one_attempt_and_nothing_is_sent(
    deployment: Deployment, disable: bool
) -> None:
    unknown = "cccccccc-0000-4000-8000-00000000000c"
    if disable:
        unknown = ORG_B
        deployment.registry.update(ORG_B, lambda r: OrgRecord(**{**r.__dict__, "enabled": False}))
    assert deployment.deliver(deployment.activity(B, org_id=unknown))
    assert deployment.twilio.messages == [] and deployment.host.invocations == 1
    (poisoned,) = deployment.host.queue.on(POISON)
    props = poisoned.application_properties or {}
    assert props["DeadLetterReason"] == "unknown_organization"
    assert unknown in props["DeadLetterErrorDescription"]
    assert ("disabled" if disable else "not registered") in props["DeadLetterErrorDescription"]
    assert all(not o.interactions for o in deployment.orgs.values())


def test_a_slow_org_a_does_not_slow_org_b(deployment: Deployment) -> None:
    deployment.orgs[ORG_A].latency = 2.0  # every request of org A takes 2 s (an org far away, or struggling)
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (deployment.deliver(deployment.activity(A), deployment.activity(B)), done.set())
    )
    worker.start()
    deadline = time.monotonic() + 5.0
    while not deployment.orgs[ORG_B].interactions and time.monotonic() < deadline:
        time.sleep(0.02)
    # B was sent and reported while A's requests were still in flight, in A's own thread: nothing of A yet
    assert deployment.interactions(ORG_B) == [("sent", B.table)]
    assert not done.is_set() and deployment.orgs[ORG_A].interactions == []
    assert [m.to for m in deployment.twilio.messages] == [B.phone]
    worker.join(60)
    assert deployment.interactions(ORG_A) == [("sent", A.table)]


def test_org_a_throttled_for_long_is_deferred_and_never_holds_the_worker(deployment: Deployment) -> None:
    deployment.orgs[ORG_A].limit(requests_per_window=0, window_seconds=60, retry_after=5.0)  # > ORG_HOLD_SECONDS
    before = datetime.now(UTC)
    assert deployment.deliver(deployment.activity(A), deployment.activity(B))
    assert deployment.interactions(ORG_B) == [("sent", B.table)]
    assert [m.to for m in deployment.twilio.messages] == [B.phone]
    assert deployment.orgs[ORG_A].throttled_count == 1  # one 429, not waited out: A's message is scheduled again
    (deferred,) = deployment.host.queue.on(QUEUE)
    props = deferred.application_properties or {}
    assert "channel-deferred-until" in props and "channel-attempt" not in props  # not a failed attempt
    assert deferred.scheduled_at is not None and deferred.scheduled_at >= before + timedelta(seconds=4.5)
    deployment.orgs[ORG_A].unlimit()
    assert deployment.host.pump(honour_schedule=True) == 0  # not due yet
    time.sleep(max(0.0, (deferred.scheduled_at - datetime.now(UTC)).total_seconds()) + 0.1)
    assert deployment.host.pump(honour_schedule=True) == 1
    assert deployment.interactions(ORG_A) == [("sent", A.table)] and deployment.host.queue.on(POISON) == []


def rtj_payload(sender: str, to: str, request_id: str = "req-1") -> bytes:
    body = {
        "ChannelDefinitionId": "0f6e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c",  # provisioned alike in every org
        "RequestId": request_id,
        "From": sender,
        "To": to,
        "Message": {"text": "Your table is booked."},
        "MarketingAppContext": {"CustomerJourneyId": JOURNEY, "UserId": B.contact, "UserEntityType": "contact"},
    }
    return json.dumps(body).encode()


def post_rtj(deployment: Deployment, raw: bytes, org: str | None, secret: str) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", "X-Channel-Secret": secret}
    if org is not None:
        headers["X-Organization-Id"] = org
    response = deployment.host.call_http(
        "POST", deployment.callback_base + "/api/rtj/outbound", headers=headers, body=raw
    )
    return response.status_code, json.loads(response.get_body())


def test_rtj_routes_by_x_organization_id_and_each_org_needs_its_own_relay_credential(
    deployment: Deployment, vault: KeyVaultEmulator
) -> None:
    raw = rtj_payload(SENDER_B, B.phone)
    status, answer = post_rtj(deployment, raw, None, RTJ_SECRET)
    assert status == 400 and "X-Organization-Id" in answer["error"]
    status, answer = post_rtj(deployment, raw, "cccccccc-0000-4000-8000-00000000000c", RTJ_SECRET)
    assert status == 403 and answer["error"].startswith("unknown_organization")
    # the deployment's shared secret never lets a relay act as an org: every customer's admin could read it
    status, answer = post_rtj(deployment, raw, ORG_B, RTJ_SECRET)
    assert status == 503 and "RTJ_OUTBOUND_SECRET_SECRET_NAME" in answer["error"]
    vault.set_secret("fabrikam-relay", RELAY_SECRET_B)
    change_org(deployment, ORG_B, secret_names={"RTJ_OUTBOUND_SECRET": "fabrikam-relay"})
    assert post_rtj(deployment, raw, ORG_B, RTJ_SECRET)[0] == 403  # the deployment's secret is not B's
    assert deployment.twilio.messages == []
    status, answer = post_rtj(deployment, raw, ORG_B.upper(), RELAY_SECRET_B)
    assert status == 200, answer
    (message,) = deployment.twilio.messages
    assert deployment.twilio.send_status(message.sid, "delivered")[0] == 200
    assert [n["OrganizationId"] for n in deployment.orgs[ORG_B].notifications] == [ORG_B]
    assert deployment.orgs[ORG_A].notifications == []
    # org B may not send from org A's configured number (replies to it would follow into B)
    change_org(deployment, ORG_A, overrides={**CUSTOMER_OVERRIDES[ORG_A], "TWILIO_FROM": "+15005550008"})
    status, answer = post_rtj(deployment, rtj_payload("+15005550008", B.phone, "req-2"), ORG_B, RELAY_SECRET_B)
    assert status == 403 and "another organization's sender" in answer["error"]


def test_rtj_replies_on_a_shared_number_go_to_the_org_that_wrote(
    deployment: Deployment, vault: KeyVaultEmulator
) -> None:
    for customer in CUSTOMERS:
        vault.set_secret(f"relay-{customer.org_id[:4]}", f"{RELAY_SECRET_B}-{customer.org_id[:4]}")
        change_org(deployment, customer.org_id, secret_names={"RTJ_OUTBOUND_SECRET": f"relay-{customer.org_id[:4]}"})
    shared = "+15005550009"  # the deployment's number, used by both orgs' channels
    for customer, contact in ((A, A.phone), (B, B.phone)):
        secret = f"{RELAY_SECRET_B}-{customer.org_id[:4]}"
        assert post_rtj(deployment, rtj_payload(shared, contact), customer.org_id, secret)[0] == 200
    url = deployment.callback_base + "/api/callbacks/twilio"
    assert deployment.twilio.send_inbound(url, A.phone, shared, "A's private reply")[0] == 200
    assert [i["Message"]["text"] for i in deployment.orgs[ORG_A].inbound] == ["A's private reply"]
    assert deployment.orgs[ORG_B].inbound == []


def test_a_reply_to_the_shared_default_number_goes_to_the_org_that_wrote_from_it(deployment: Deployment) -> None:
    contact_b = "0e3b8a8c-2f1d-4b6a-9c3e-7d5f1a2b3c4d"
    # org B writes to A's contact number too, from its own number, after A wrote from the default number
    deployment.orgs[ORG_B].add_row("contact", contact_b, {B.phone_column: A.phone, "donotphone": False})
    deployment.deliver(deployment.activity(A))
    deployment.deliver(deployment.activity(B))
    url = deployment.callback_base + "/api/callbacks/twilio"
    assert deployment.twilio.send_inbound(url, A.phone, SENDER_A, "STOP")[0] == 200  # to A's (default) number
    assert [i["TriggerKeyword"] for i in deployment.orgs[ORG_A].interactions if i["ResponseType"] == "keyword"] == [
        "stop"
    ]
    assert all(i["ResponseType"] != "keyword" for i in deployment.orgs[ORG_B].interactions)


@pytest.mark.parametrize("deployment", [{"CALLBACK_PROCESSING": "queued"}], indirect=True)
def test_queued_callbacks_are_reported_to_their_org(deployment: Deployment) -> None:
    deployment.deliver(deployment.activity(A), deployment.activity(B))
    for message in deployment.twilio.messages:
        assert deployment.twilio.send_status(message.sid, "delivered")[0] == 200
    queued = deployment.host.queue.on("callbacks")
    assert len(queued) == 2 and all("channel-org-id" not in (m.application_properties or {}) for m in queued)
    deployment.host.pump()
    assert deployment.interactions(ORG_A) == [("sent", A.table), ("delivered", A.table)]
    assert deployment.interactions(ORG_B) == [("sent", B.table), ("delivered", B.table)]


@pytest.mark.parametrize("deployment", [{"CALLBACK_PROCESSING": "queued"}], indirect=True)
def test_one_queued_callback_for_two_orgs_is_split_per_org(deployment: Deployment) -> None:
    rows = {}
    for customer in CUSTOMERS:
        body, props, row = deployment.activity(customer)
        deployment.deliver((body, props, row))
        rows[customer.org_id] = row
    sids = {m.to: m.sid for m in deployment.twilio.messages}
    events = [
        StatusEvent(sids[c.phone], StatusKind.DELIVERED, "delivered", activity_hint=rows[c.org_id]) for c in CUSTOMERS
    ]
    assert deployment.host.deliver("callbacks", encode_events("twilio", events))
    split = deployment.host.queue.on("callbacks")
    assert sorted((m.application_properties or {})["channel-org-id"] for m in split) == [ORG_A, ORG_B]
    deployment.host.pump()
    assert deployment.interactions(ORG_A)[-1] == ("delivered", A.table)
    assert deployment.interactions(ORG_B)[-1] == ("delivered", B.table)


@pytest.mark.parametrize("deployment", [{"LINK_TRACKING": "true"}], indirect=True)
def test_a_click_on_org_b_link_is_reported_to_org_b(deployment: Deployment) -> None:
    deployment.deliver(deployment.activity(A), deployment.activity(B))
    body = next(m.body for m in deployment.twilio.messages if m.to == B.phone)
    short = body.rsplit(" ", 1)[1]
    assert short.startswith(deployment.callback_base + "/api/l/")
    response = deployment.host.call_http("GET", short, headers={"User-Agent": "Mozilla/5.0 (iPhone)"})
    assert response.status_code == 302 and response.headers["Location"] == "https://fabrikam.example/offer"
    assert deployment.interactions(ORG_B) == [("sent", B.table), ("clicked", B.table)]
    assert deployment.interactions(ORG_A) == [("sent", A.table)]


def test_an_activity_id_of_another_org_is_refused(deployment: Deployment) -> None:
    body, props, row = deployment.activity(A)
    deployment.deliver((body, props, row))
    forged = body.replace(ORG_A.encode(), ORG_B.encode())  # org B's message claiming org A's activity id
    assert deployment.host.deliver(QUEUE, forged, application_properties=props)
    (poisoned,) = deployment.host.queue.on(POISON)
    assert (poisoned.application_properties or {})["DeadLetterReason"] == "activity_of_another_organization"
    assert len(deployment.twilio.messages) == 1 and deployment.orgs[ORG_B].interactions == []


OWN_SID, OWN_TOKEN = "AC" + "3" * 32, "fabrikam-own-auth-token"
RELAY_SECRET_B = "fabrikam-own-relay-secret-0123456789"


def change_org(deployment: Deployment, org: str, **changes: Any) -> None:
    deployment.registry.update(org, lambda r: OrgRecord(**{**r.__dict__, **changes}))


@pytest.fixture
def vault(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyVaultEmulator]:
    """The deployment's Key Vault (loopback emulator): org rows name secrets in it."""
    emulator = KeyVaultEmulator(token=TOKEN)
    monkeypatch.setenv("KEY_VAULT_URI", emulator.url)
    deployment.host.environ["KEY_VAULT_URI"] = emulator.url
    deployment.service = bootstrap.build_service(load_settings(deployment.host.environ), queue=deployment.host.queue)
    bootstrap.install(deployment.service)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def own_account(deployment: Deployment, vault: KeyVaultEmulator) -> Iterator[TwilioEmulator]:
    """Org B brings its own Twilio account (another region's API): its auth token is a Key Vault secret, by name."""
    twilio_b = TwilioEmulator(account_sid=OWN_SID, auth_token=OWN_TOKEN)
    vault.set_secret("fabrikam-twilio-token", OWN_TOKEN)
    overrides = {
        "MESSAGE_BODY_COLUMN": B.body_column,
        "CONTACT_PHONE_COLUMN": B.phone_column,
        "TWILIO_FROM": SENDER_B,
        "TWILIO_ACCOUNT_SID": OWN_SID,
        "TWILIO_API_BASE_URL": twilio_b.url,
    }
    change_org(deployment, ORG_B, overrides=overrides, secret_names={"TWILIO_AUTH_TOKEN": "fabrikam-twilio-token"})
    try:
        yield twilio_b
    finally:
        twilio_b.stop()


def test_an_org_with_its_own_provider_account_sends_and_verifies_with_it(
    deployment: Deployment, own_account: TwilioEmulator
) -> None:
    _, _, row_b = activity_b = deployment.activity(B)
    assert deployment.deliver(deployment.activity(A), activity_b)
    ((isv_message,), (own_message,)) = deployment.twilio.messages, own_account.messages
    assert isv_message.to == A.phone and (own_message.to, own_message.from_) == (B.phone, SENDER_B)
    assert (
        own_message.status_callback == f"{deployment.callback_base}/api/callbacks/twilio?org={ORG_B}&activity={row_b}"
    )
    assert own_account.send_status(own_message.sid, "delivered")[0] == 200  # signed with the org's own token
    assert deployment.interactions(ORG_B) == [("sent", B.table), ("delivered", B.table)]
    # the same callback signed with the deployment's token is refused: only the org's secret verifies its URL
    forged = own_account.send_status(own_message.sid, "failed", signature="not-the-org-signature")
    assert forged[0] == 403
    url = deployment.callback_base + f"/api/callbacks/twilio?org={ORG_B}"
    assert own_account.send_inbound(url, B.phone, SENDER_B, "STOP")[0] == 200
    assert deployment.orgs[ORG_B].interactions[-1]["TriggerKeyword"] == "stop"
    assert deployment.interactions(ORG_A) == [("sent", A.table)]


def test_a_rotated_key_vault_secret_is_used_without_touching_the_org_row(
    deployment: Deployment, own_account: TwilioEmulator, vault: KeyVaultEmulator
) -> None:
    assert deployment.deliver(deployment.activity(B))
    vault.set_secret("fabrikam-twilio-token", "fabrikam-rotated-token")  # the customer rotates its auth token
    own_account.auth_token = "fabrikam-rotated-token"
    assert deployment.deliver(deployment.activity(B))
    assert len(own_account.messages) == 2  # the old token would be refused (401) by the account now
    assert own_account.send_status(own_account.messages[1].sid, "delivered")[0] == 200  # and verified with the new
    assert deployment.interactions(ORG_B).count(("delivered", B.table)) == 1


def test_a_report_verified_with_one_org_credentials_never_changes_another_org_record(
    deployment: Deployment, own_account: TwilioEmulator
) -> None:
    _, _, row_a = activity_a = deployment.activity(A)
    deployment.deliver(activity_a)
    (message_a,) = deployment.twilio.messages
    url = f"{deployment.callback_base}/api/callbacks/twilio?org={ORG_B}&activity={row_a}"
    params = [
        ("AccountSid", OWN_SID),
        ("MessageSid", message_a.sid),
        ("MessageStatus", "failed"),
        ("ErrorCode", "30003"),
    ]
    headers = {
        "X-Twilio-Signature": twilio_signature(OWN_TOKEN, url, params),  # org B's own, valid signature
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response = deployment.host.call_http("POST", url, headers=headers, body=urlencode(params).encode())
    assert response.status_code == 200
    assert deployment.interactions(ORG_A) == [("sent", A.table)]


def test_a_disabled_org_still_completes_what_it_had_accepted(deployment: Deployment) -> None:
    action = "msdyncrm_CustomChannelActivityCreateInteraction"
    deployment.orgs[ORG_B].inject_error("POST", action, status=503, code="0x80040216", message="busy", times=2)
    assert deployment.deliver(deployment.activity(B))  # sent; its report failed: a retry copy is scheduled
    assert deployment.interactions(ORG_B) == [] and len(deployment.twilio.messages) == 1
    change_org(deployment, ORG_B, enabled=False)
    deployment.host.pump()
    assert deployment.interactions(ORG_B) == [("sent", B.table)]  # reported, not poisoned
    assert deployment.host.queue.on(POISON) == [] and len(deployment.twilio.messages) == 1


def test_a_provider_queue_overflow_is_sent_again_in_its_org(deployment: Deployment) -> None:
    body, props, row = deployment.activity(B)
    activity = json.loads(body)["InputParameters"][0]["value"]["Attributes"]
    activity_id = next(a["value"] for a in activity if a["key"] == "msdyncrm_activityid")
    deployment.orgs[ORG_B].add_row(  # the copy sent again is trimmed: the app reads the activity row back
        "msdyncrm_customerjourneycustomchannelactivity",
        row,
        {
            "msdyncrm_activityid": activity_id,
            "_msdyncrm_contact_value": B.contact,
            "_msdyncrm_customerjourney_value": JOURNEY,
            "_msdyncrm_customerjourneyiteration_value": ITERATION,
            "msdyncrm_entitytype": B.table,
            "msdyncrm_entityid": B.message,
        },
    )
    deployment.deliver((body, props, row))
    (first,) = deployment.twilio.messages
    assert deployment.twilio.send_status(first.sid, "failed", error_code=30001)[0] == 200
    requeued = deployment.host.queue.on(QUEUE)
    assert [(m.application_properties or {}).get("channel-org-id") for m in requeued] == [ORG_B]
    deployment.host.pump()
    assert [m.to for m in deployment.twilio.messages] == [B.phone, B.phone] and deployment.host.queue.on(POISON) == []


@pytest.mark.parametrize(("retry_after", "requests"), [(0.3, 2), (5.0, 1)])
def test_an_org_client_waits_one_short_retry_after_at_most_then_defers(retry_after: float, requests: int) -> None:
    from shared.adapters.dataverse import DataverseClient
    from shared.adapters.pacing import Pacer
    from shared.adapters.tokens import StaticToken
    from shared.bootstrap_orgs import ORG_HOLD_SECONDS
    from shared.domain.deferral import Throttled

    with DataverseEmulator(token=TOKEN) as emulator:
        emulator.limit(requests_per_window=0, window_seconds=60, retry_after=retry_after)
        client = DataverseClient(emulator.url, StaticToken(TOKEN), pacer=Pacer(hold_limit=ORG_HOLD_SECONDS))
        with pytest.raises(Throttled) as caught:
            client.whoami()
        assert emulator.throttled_count == requests  # a short Retry-After is waited once; a long one not at all
        assert caught.value.until > datetime.now(UTC) + timedelta(seconds=retry_after - 0.5)
        if retry_after > ORG_HOLD_SECONDS:  # the org's pacer is paused: its next call does not even reach Dataverse
            with pytest.raises(Throttled):
                client.whoami()
            assert emulator.throttled_count == requests


def test_a_reply_to_a_messaging_service_number_goes_to_the_org_that_wrote_through_that_service(
    deployment: Deployment,
) -> None:
    service_b = "MG" + "b" * 32  # org B sends through its messaging service: Twilio picks the number from its pool
    overrides = {k: v for k, v in CUSTOMER_OVERRIDES[ORG_B].items() if k != "TWILIO_FROM"}
    change_org(deployment, ORG_B, overrides={**overrides, "TWILIO_MESSAGING_SERVICE_SID": service_b})
    contact_b = "0e3b8a8c-2f1d-4b6a-9c3e-7d5f1a2b3c4d"
    deployment.orgs[ORG_B].add_row("contact", contact_b, {B.phone_column: A.phone, "donotphone": False})
    deployment.deliver(deployment.activity(B))  # org B writes to A's contact through its service...
    deployment.deliver(deployment.activity(A))  # ...then org A, from the deployment's number
    pool_number = "+15005550042"  # a number of B's pool, configured nowhere in the registry
    url = deployment.callback_base + "/api/callbacks/twilio"
    assert deployment.twilio.send_inbound(url, A.phone, pool_number, "YES", messaging_service_sid=service_b)[0] == 200
    assert [i["TriggerKeyword"] for i in deployment.orgs[ORG_B].interactions if i["ResponseType"] == "keyword"] == [
        "yes"
    ]
    assert all(i["ResponseType"] != "keyword" for i in deployment.orgs[ORG_A].interactions)
