"""``channel doctor`` against the loopback emulators, Azurite and a Service Bus double: one test per problem."""

from __future__ import annotations

import io
from typing import get_args

import pytest
import requests

from cli import doctor
from cli.doctor import dataverse_checks, metadata
from devtools.azurite import free_port
from devtools.emulators.dataverse import SIGNATURES
from devtools.emulators.loopback_provider import LoopbackGateway
from shared.adapters.dataverse import ACTION
from shared.settings import Settings, load_settings
from tests.cli.conftest import DATAVERSE_TOKEN, FakeServiceBus, Org, create_custom_api
from tests.unit.test_tokens import RecordingCredential


def run(env: dict[str, str], bus: FakeServiceBus, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = doctor.main(list(args), environ=env, servicebus=bus, out=out)
    return code, out.getvalue()


def lines(output: str, status: str, name: str) -> list[str]:
    return [line for line in output.splitlines() if line.split()[:2] == [status, name]]


def fix_after(output: str, status: str, name: str) -> str:
    rows = output.splitlines()
    start = rows.index(lines(output, status, name)[0])
    for row in rows[start + 1 :]:
        if row.strip().startswith("fix:"):
            return row.strip()
        if not row.startswith(" "):
            break
    raise AssertionError(f"no fix printed for {name}")


def test_a_healthy_setup_passes_every_check(org: Org, bus: FakeServiceBus) -> None:
    code, out = run(org.env, bus)
    assert code == 0, out
    for name in (
        "settings",
        "dataverse-token",
        "whoami",
        "interaction-action",
        "message-table",
        "message-body-column",
        "contact-phone-column",
        "compliance-column",
        "state-table",
        "servicebus:activities",
        "servicebus:callbacks",
        "servicebus:activities-poison",
        "provider:twilio",
    ):
        assert lines(out, "ok", name), f"{name} not ok:\n{out}"
    assert "problem" not in out
    assert "org parameters: ActivityId (Edm.String, required), CustomerJourney (mscrm.msdyncrm_customerjourney" in out
    assert "cr123_smsmessage (entity set cr123_smsmessages, from the most recent activity row" in out
    assert out.rstrip().endswith("all checks passed")


def test_wrong_dataverse_url_is_a_whoami_problem(org: Org, bus: FakeServiceBus) -> None:
    env = {**org.env, "DATAVERSE_URL": f"http://127.0.0.1:{free_port()}"}
    code, out = run(env, bus)
    assert code == 1
    [line] = lines(out, "problem", "whoami")
    assert "cannot reach Dataverse at http://127.0.0.1:" in line
    assert "check DATAVERSE_URL" in fix_after(out, "problem", "whoami")
    assert lines(out, "skipped", "interaction-action") and lines(out, "skipped", "message-body-column")


def test_a_rejected_token_is_a_whoami_problem(org: Org, bus: FakeServiceBus) -> None:
    code, out = run({**org.env, "DATAVERSE_STATIC_TOKEN": "not-the-token"}, bus)
    assert code == 1
    [line] = lines(out, "problem", "whoami")
    assert "WhoAmI failed: HTTP 401" in line
    assert "application user" in fix_after(out, "problem", "whoami")


def test_a_credential_that_yields_no_token_is_a_token_problem(org: Org, bus: FakeServiceBus) -> None:
    class NoToken:
        def get_token(self, *scopes: str) -> object:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token")

    env = {k: v for k, v in org.env.items() if k != "DATAVERSE_STATIC_TOKEN"}
    out = io.StringIO()
    code = doctor.main([], environ=env, servicebus=bus, credential=NoToken(), out=out)
    assert code == 1
    [line] = lines(out.getvalue(), "problem", "dataverse-token")
    assert "no token for http://127.0.0.1" in line and "DefaultAzureCredential failed" in line
    assert lines(out.getvalue(), "skipped", "whoami")


def test_wrong_action_signature_reports_the_orgs_real_parameter_list(org: Org, bus: FakeServiceBus) -> None:
    org.dataverse.set_signature("campaign")
    code, out = run(org.env, bus)
    assert code == 1
    [line] = lines(out, "problem", "interaction-action")
    assert "INTERACTION_ACTION_SIGNATURE=customerjourney does not match the org's" in line
    assert "the app sends CustomerJourney, which the org's action does not declare" in line
    assert "the org requires Campaign, which the app does not send" in line
    assert (
        "org parameters: ActivityId (Edm.String, required), Campaign (mscrm.campaign, required), "
        "CustomerJourneyIteration (mscrm.msdyncrm_customerjourneyiteration, required)" in out
    )
    assert "WorkflowId (Edm.String)" in out
    assert fix_after(out, "problem", "interaction-action") == (
        "fix: set INTERACTION_ACTION_SIGNATURE=campaign (it matches the org's parameter list)"
    )
    # and with the setting fixed, the check passes
    code, out = run({**org.env, "INTERACTION_ACTION_SIGNATURE": "campaign"}, bus)
    assert code == 0, out
    assert lines(out, "ok", "interaction-action")


def test_wrong_message_body_column_is_reported_missing(org: Org, bus: FakeServiceBus) -> None:
    code, out = run({**org.env, "MESSAGE_BODY_COLUMN": "cr123_text"}, bus)
    assert code == 1
    [line] = lines(out, "problem", "message-body-column")
    assert "MESSAGE_BODY_COLUMN 'cr123_text' is missing: table cr123_smsmessage has no column cr123_text" in line
    assert "set MESSAGE_BODY_COLUMN to the logical name of the text column of cr123_smsmessage" in fix_after(
        out, "problem", "message-body-column"
    )
    assert lines(out, "ok", "message-table")


def test_message_table_option_and_unknown_table(org: Org, bus: FakeServiceBus) -> None:
    code, out = run(org.env, bus, "--message-table", "cr123_smsmessage")
    assert code == 0, out
    assert "cr123_smsmessage (entity set cr123_smsmessages, from --message-table)" in out
    code, out = run(org.env, bus, "--message-table", "cr123_nosuchtable")
    assert code == 1
    [line] = lines(out, "problem", "message-table")
    assert "message table 'cr123_nosuchtable' (from --message-table) does not exist" in line
    assert lines(out, "skipped", "message-body-column")


def test_without_any_activity_row_it_asks_for_the_message_table(org: Org, bus: FakeServiceBus) -> None:
    for row in org.dataverse.rows("msdyncrm_customerjourneycustomchannelactivity"):
        org.dataverse.add_row("msdyncrm_customerjourneycustomchannelactivity", row, {"msdyncrm_name": "no type"})
    code, out = run(org.env, bus)
    assert code == 1
    [line] = lines(out, "problem", "message-table")
    assert "no Custom Channel Activity row yet" in line
    assert "pass --message-table" in fix_after(out, "problem", "message-table")


def test_wrong_contact_columns_are_reported(org: Org, bus: FakeServiceBus) -> None:
    code, out = run({**org.env, "CONTACT_PHONE_COLUMN": "telephone9", "COMPLIANCE_COLUMN": "cr123_optout"}, bus)
    assert code == 1
    assert (
        "CONTACT_PHONE_COLUMN 'telephone9' is missing: table contact has no column telephone9"
        in (lines(out, "problem", "contact-phone-column")[0])
    )
    assert "COMPLIANCE_COLUMN 'cr123_optout' is missing" in lines(out, "problem", "compliance-column")[0]


def test_a_missing_queue_is_a_service_bus_problem(org: Org, bus: FakeServiceBus) -> None:
    del bus.ns.queues["callbacks"]
    code, out = run(org.env, bus)
    assert code == 1
    [line] = lines(out, "problem", "servicebus:callbacks")
    assert "queue callbacks does not exist in the namespace" in line
    assert "correct CALLBACK_QUEUE_NAME" in fix_after(out, "problem", "servicebus:callbacks")
    assert lines(out, "ok", "servicebus:activities")


def test_queue_counts_and_dead_letters_are_shown(org: Org, bus: FakeServiceBus) -> None:
    bus.ns.add("activities")
    bus.ns.add("activities", dead=True, reason="MaxDeliveryCountExceeded")
    bus.ns.add("activities-poison", properties={"DeadLetterReason": "xml_format"})
    code, out = run(org.env, bus)
    assert code == 0, out
    assert (
        "active 1, dead-lettered 1, scheduled 0 (inspect with `channel deadletter list`)"
        in (lines(out, "ok", "servicebus:activities")[0])
    )
    assert "active 1, dead-lettered 0" in lines(out, "ok", "servicebus:activities-poison")[0]


def test_a_listen_send_connection_falls_back_to_a_peek(org: Org, bus: FakeServiceBus) -> None:
    bus.ns.admin_forbidden = True
    del bus.ns.queues["activities-poison"]
    code, out = run(org.env, bus)
    assert code == 1
    assert (
        "reachable (message counts need a connection with Manage rights)"
        in (lines(out, "ok", "servicebus:activities")[0])
    )
    assert "queue activities-poison does not exist" in lines(out, "problem", "servicebus:activities-poison")[0]


def test_an_unreachable_namespace_is_a_problem_per_queue(org: Org, bus: FakeServiceBus) -> None:
    bus.ns.unreachable = True
    code, out = run(org.env, bus)
    assert code == 1
    for queue in ("activities", "callbacks", "activities-poison"):
        assert "Service Bus unreachable: ServiceBusConnectionError" in lines(out, "problem", f"servicebus:{queue}")[0]


def test_a_bad_twilio_token_is_a_provider_problem(org: Org, bus: FakeServiceBus) -> None:
    code, out = run({**org.env, "TWILIO_AUTH_TOKEN": "rotated-long-ago"}, bus)
    assert code == 1
    [line] = lines(out, "problem", "provider:twilio")
    assert "Twilio rejected TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN (HTTP 401, Twilio error 20003)" in line
    assert "Auth Token from the Twilio console" in fix_after(out, "problem", "provider:twilio")
    assert "rotated-long-ago" not in out  # secrets never printed


def test_a_suspended_twilio_account_is_a_provider_problem(org: Org, bus: FakeServiceBus) -> None:
    org.twilio.account_status = "suspended"
    code, out = run(org.env, bus)
    assert code == 1
    assert f"Twilio account {org.env['TWILIO_ACCOUNT_SID']} is suspended" in lines(out, "problem", "provider:twilio")[0]


def test_loopback_provider_reachability_and_key(org: Org, bus: FakeServiceBus) -> None:
    gateway = LoopbackGateway(key="right-key").start()
    try:
        env = {
            **{k: v for k, v in org.env.items() if not k.startswith("TWILIO_")},
            "CHANNEL_PROVIDER": "loopback",
            "LOOPBACK_PROVIDER_URL": gateway.url,
            "LOOPBACK_SIGNING_KEY": "right-key",
        }
        code, out = run(env, bus)
        assert code == 0, out
        assert f"gateway reachable at {gateway.url}, key accepted" in lines(out, "ok", "provider:loopback")[0]
        code, out = run({**env, "LOOPBACK_SIGNING_KEY": "wrong-key"}, bus)
        assert code == 1
        assert "rejected LOOPBACK_SIGNING_KEY" in lines(out, "problem", "provider:loopback")[0]
        assert gateway.messages == []  # nothing was ever sent
    finally:
        gateway.stop()
    code, out = run(env, bus)
    assert "loopback gateway unreachable" in lines(out, "problem", "provider:loopback")[0]


def test_invalid_settings_print_each_problem_with_its_fix(bus: FakeServiceBus) -> None:
    env = {
        "DATAVERSE_URL": "http://contoso.crm.dynamics.com",
        "ACTIVITY_QUEUE_NAME": "activities",
        "CHANNEL_PROVIDER": "twilio",
        "CALLBACK_BASE_URL": "https://app.example.com",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    code, out = run(env, bus)
    assert code == 1
    problems = lines(out, "problem", "settings")
    assert len(problems) == 2 and out.count("fix: ") == 2
    assert "DATAVERSE_URL: DATAVERSE_URL must use https" in problems[0]
    assert "MESSAGE_BODY_COLUMN: required setting is missing" in problems[1]
    assert "environment URL only" in out and "logical name of the text column" in out
    assert lines(out, "skipped", "others")
    # with the fields fixed, the combination rules report the rest, each with its fix
    env.update(DATAVERSE_URL="https://contoso.crm.dynamics.com", MESSAGE_BODY_COLUMN="cr123_body")
    code, out = run(env, bus)
    assert code == 1
    texts = "\n".join(lines(out, "problem", "settings"))
    assert "ServiceBusConnection: set a connection string" in texts
    assert "TWILIO_ACCOUNT_SID: required when CHANNEL_PROVIDER=twilio" in texts
    assert "TWILIO_FROM / TWILIO_MESSAGING_SERVICE_SID: set exactly one of them" in texts
    assert out.count("fix: ") == len(lines(out, "problem", "settings")) == 4
    assert "set exactly one of TWILIO_FROM and TWILIO_MESSAGING_SERVICE_SID" in out


def test_the_signature_choices_are_the_settings_type() -> None:
    # doctor's choices come from INTERACTION_ACTION_SIGNATURE's Literal; the emulator documents the same two
    assert get_args(Settings.model_fields["interaction_action_signature"].annotation) == metadata.SIGNATURES
    assert sorted(metadata.SIGNATURES) == sorted(SIGNATURES)


@pytest.mark.parametrize("signature", metadata.SIGNATURES)
def test_each_documented_signature_matches_only_itself(signature: str) -> None:
    from devtools.emulators.dataverse import DataverseEmulator

    with DataverseEmulator() as emulator:
        emulator.set_signature(signature)
        parameters = doctor.parse_action_parameters(emulator.metadata_xml().encode())
    assert parameters is not None
    assert doctor.compare_signature(parameters, signature) == []
    other = next(s for s in metadata.SIGNATURES if s != signature)
    assert doctor.compare_signature(parameters, other)


def test_one_client_one_token_for_every_dataverse_check(org: Org, bus: FakeServiceBus) -> None:
    env = {k: v for k, v in org.env.items() if k != "DATAVERSE_STATIC_TOKEN"}
    env |= {"RTJ_AUTH_MODE": "secret", "RTJ_OUTBOUND_SECRET": "s" * 32}
    credential = RecordingCredential(DATAVERSE_TOKEN)
    api = create_custom_api(org.dataverse)
    out = io.StringIO()
    code = doctor.main(["--rtj-custom-api", api], environ=env, servicebus=bus, credential=credential, out=out)
    assert lines(out.getvalue(), "ok", "dataverse-token")[0].endswith(
        f"token acquired for {org.dataverse.url}/.default"
    )
    for name in (
        "whoami",
        "interaction-action",
        "message-body-column",
        "compliance-column",
        "rtj:msdyn_D365ChannelsInbound",
        "rtj:custom-api",
    ):
        assert lines(out.getvalue(), "ok", name), out.getvalue()
    assert code == 0, out.getvalue()
    assert credential.scopes == [(f"{org.dataverse.url}/.default",)]  # acquired once, shared by every check


def test_each_dataverse_check_runs_on_its_own_with_the_client_it_is_given(org: Org) -> None:
    settings = load_settings(org.env)
    token, client = dataverse_checks.connect(settings, None, requests.Session())
    assert token.status == "ok" and client is not None
    # no check needs another to have run: each takes what it needs as arguments
    body = dataverse_checks.check_body_column(
        client, dataverse_checks.Table("cr123_smsmessage", "cr123_smsmessages"), settings
    )
    assert body.status == "ok", body
    result, table = dataverse_checks.check_message_table(client, None)
    assert result.status == "ok" and table == dataverse_checks.Table("cr123_smsmessage", "cr123_smsmessages")
    org_actions = dataverse_checks.read_actions(client, [ACTION])
    assert isinstance(org_actions, dict)
    assert dataverse_checks.check_interaction_action(org_actions[ACTION], "campaign").is_problem
    assert dataverse_checks.check_interaction_action(org_actions[ACTION], "customerjourney").status == "ok"


def test_metadata_without_the_action_and_type_mismatches() -> None:
    xml = b'<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices/></edmx:Edmx>'
    assert doctor.parse_action_parameters(xml) is None
    params = [
        doctor.ActionParameter(p.name, "mscrm.account" if p.name == "Contact" else p.type, p.required is False)
        for p in SIGNATURES["customerjourney"]
    ]
    assert doctor.compare_signature(params, "customerjourney") == [
        "Contact: the org expects mscrm.account, the app sends mscrm.contact"
    ]


def test_render_returns_non_zero_only_on_problems() -> None:
    out = io.StringIO()
    assert doctor.render([doctor.ok("a", "fine"), doctor.skipped("b", "later")], out) == 0
    assert doctor.render([doctor.ok("a", "fine"), doctor.problem("c", "broken", "mend it", "detail")], out) == 1
    text = out.getvalue()
    assert "problem  c  broken\n" in text and "fix: mend it" in text and "1 problem(s) found" in text
