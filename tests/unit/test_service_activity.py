"""Service-layer behaviour of the activity path, with in-memory fakes (wire formats are covered by integration)."""

from __future__ import annotations

from datetime import timedelta

from shared.app.settlement import ATTEMPT_PROPERTY
from shared.domain.errors import SendFailedTransient, SendRejected, TransientError
from shared.domain.state import ActivityState, SendStatus
from shared.ports import QueueMessage
from tests.fakes import world
from tests.helpers import CONTACT_ID, ROW_ID, activity_message, fixture_bytes


def msg(body: bytes | None = None, attempt: int | None = None, content_type: str = "application/json") -> QueueMessage:
    props = {ATTEMPT_PROPERTY: attempt} if attempt else {}
    return QueueMessage("activities", body or activity_message(), "m-1", content_type, 1, props)


def test_happy_path_sends_once_and_records_sent() -> None:
    w = world()
    outcome = w.service.handle_activity_message(msg())
    assert outcome.result == "sent"
    assert [r.body for r in w.provider.sent] == ["Hi Avery"]
    request = w.provider.sent[0]
    assert request.to == "+447700900123"
    assert request.status_callback_url == f"https://app.example/api/callbacks/fake?activity={ROW_ID}"
    assert w.dataverse.response_types() == ["sent"]
    state = w.repo.get(ROW_ID)
    assert state is not None and state.send_status is SendStatus.SENT and state.recorded == ["sent"]
    assert w.indexes.find_by_message("fake", "FK000001") == ROW_ID
    assert w.indexes.find_by_phone("+447700900123") is not None


def test_redelivered_and_duplicated_messages_send_nothing_twice() -> None:
    w = world()
    for _ in range(3):
        w.service.handle_activity_message(msg())
    assert len(w.provider.sent) == 1
    assert w.dataverse.response_types() == ["sent"]


def test_compliance_true_sends_and_records_nothing() -> None:
    w = world()
    w.dataverse.rows[("contact", CONTACT_ID)]["donotphone"] = True
    assert w.service.handle_activity_message(msg()).result == "suppressed"
    assert w.provider.sent == [] and w.dataverse.interactions == []
    assert w.service.handle_activity_message(msg()).result == "duplicate"


def test_missing_or_bad_phone_records_failed_without_sending() -> None:
    for phone in (None, "12-34"):
        w = world(phone=phone)
        assert w.service.handle_activity_message(msg()).result == "failed"
        assert w.provider.sent == []
        assert w.dataverse.response_types() == ["failed"]


def test_national_number_with_default_country() -> None:
    w = world(phone="07700 900123", default_country_code="44")
    w.service.handle_activity_message(msg())
    assert w.provider.sent[0].to == "+447700900123"


def test_provider_rejection_records_failed() -> None:
    w = world()
    w.provider.outcomes = [SendRejected("21211", "invalid 'To' number")]
    assert w.service.handle_activity_message(msg()).result == "failed"
    assert w.dataverse.response_types() == ["failed"]
    assert w.dataverse.updates == []


def test_opted_out_rejection_also_sets_compliance() -> None:
    w = world()
    w.provider.outcomes = [SendRejected("21610", "opted out", opted_out=True)]
    w.service.handle_activity_message(msg())
    assert w.dataverse.updates == [("contact", CONTACT_ID, {"donotphone": True})]


def test_transient_failure_is_rescheduled_then_sent_once() -> None:
    w = world()
    w.provider.outcomes = [SendFailedTransient("Twilio HTTP 503", retry_safe=True)]
    outcome = w.service.handle_activity_message(msg())
    assert outcome.result == "retry_scheduled"
    retry = w.queue.on("activities")[0]
    assert retry.application_properties[ATTEMPT_PROPERTY] == 2
    assert retry.scheduled_at == w.clock.now() + timedelta(seconds=30)
    assert retry.body == activity_message()
    state = w.repo.get(ROW_ID)
    assert state is not None and state.send_status is SendStatus.CLAIMED
    w.service.handle_activity_message(msg(retry.body, attempt=2))
    assert len(w.provider.sent) == 1 and w.dataverse.response_types() == ["sent"]


def test_backoff_grows_and_honours_retry_after() -> None:
    w = world()
    w.provider.outcomes = [SendFailedTransient("throttled", retry_safe=True, retry_after=600)]
    w.service.handle_activity_message(msg(attempt=2))
    retry = w.queue.on("activities")[0]
    assert retry.scheduled_at == w.clock.now() + timedelta(seconds=600)


def test_retries_exhausted_goes_to_poison_with_reason() -> None:
    w = world()
    w.provider.outcomes = [SendFailedTransient("Twilio HTTP 500", retry_safe=True)]
    outcome = w.service.handle_activity_message(msg(attempt=3))
    assert outcome.result == "poisoned"
    poison = w.queue.on("activities-poison")[0]
    assert poison.application_properties["DeadLetterReason"] == "retries_exhausted"
    assert "Twilio HTTP 500" in poison.application_properties["DeadLetterErrorDescription"]
    assert poison.body == activity_message()


def test_ambiguous_send_is_never_repeated_blindly() -> None:
    w = world()
    w.provider.outcomes = [SendFailedTransient("read timeout", retry_safe=False)]
    assert w.service.handle_activity_message(msg()).result == "ambiguous"
    # no retry of the send: only a reconciliation order, due when the provider's view is settled (issue #13)
    assert [m.application_properties.get("channel-kind") for m in w.queue.messages] == ["reconcile"]
    assert w.service.handle_activity_message(msg()).result == "duplicate"
    assert w.provider.sent == [] and w.dataverse.interactions == []


def test_lease_held_by_another_worker_retries_later() -> None:
    w = world()
    w.repo.get_or_insert(ActivityState(_activity()))
    w.repo.mutate(ROW_ID, lambda s: _sending(s, w.clock.now() + timedelta(seconds=90)))
    assert w.service.handle_activity_message(msg()).result == "retry_scheduled"
    assert w.queue.on("activities")[0].scheduled_at == w.clock.now() + timedelta(seconds=90)
    assert w.provider.sent == []


def test_worker_crash_after_provider_call_becomes_ambiguous_not_duplicate() -> None:
    w = world()
    w.repo.get_or_insert(ActivityState(_activity()))
    w.repo.mutate(ROW_ID, lambda s: _sending(s, w.clock.now() - timedelta(seconds=1)))
    assert w.service.handle_activity_message(msg()).result == "ambiguous"
    assert w.provider.sent == []


def test_dataverse_outage_during_interaction_keeps_it_due_and_never_resends() -> None:
    w = world()
    w.dataverse.fail_interactions = 1
    assert w.service.handle_activity_message(msg()).result == "retry_scheduled"
    state = w.repo.get(ROW_ID)
    assert state is not None and state.due == ["sent"] and state.send_status is SendStatus.SENT
    retry = w.queue.on("activities")[0]
    assert w.service.handle_activity_message(msg(retry.body, attempt=2)).result == "duplicate"
    assert len(w.provider.sent) == 1 and w.dataverse.response_types() == ["sent"]


def test_poison_input_goes_to_poison_queue_after_one_attempt() -> None:
    w = world()
    outcome = w.service.handle_activity_message(
        msg(fixture_bytes("dataverse", "activity_create.xml"), None, "application/xml")
    )
    assert outcome.result == "poisoned"
    poison = w.queue.on("activities-poison")[0]
    assert poison.application_properties["DeadLetterReason"] == "xml_format"
    assert "message format JSON" in poison.application_properties["DeadLetterErrorDescription"]
    assert poison.application_properties["channel-source-queue"] == "activities"
    assert w.provider.sent == [] and w.dataverse.interactions == []


def test_missing_message_row_or_contact_is_poison() -> None:
    w = world()
    w.dataverse.rows.pop(("contact", CONTACT_ID))
    assert w.service.handle_activity_message(msg()).detail == "contact_not_found"


def test_trimmed_message_reads_the_activity_row() -> None:
    w = world()
    w.dataverse.rows[("msdyncrm_customerjourneycustomchannelactivity", ROW_ID)] = {
        "msdyncrm_activityid": "c3f1a2b4-5d6e-4f70-8a9b-0c1d2e3f4a5b",
        "_msdyncrm_contact_value": CONTACT_ID,
        "_msdyncrm_customerjourney_value": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "_msdyncrm_customerjourneyiteration_value": "6f5e4d3c-2b1a-4f0e-9d8c-7b6a5f4e3d2c",
        "msdyncrm_entitytype": "cr123_smsmessage",
        "msdyncrm_entityid": "a7b8c9d0-e1f2-4a3b-8c4d-5e6f7a8b9c0d",
    }
    outcome = w.service.handle_activity_message(msg(fixture_bytes("dataverse", "activity_create_trimmed.json")))
    assert outcome.result == "sent"
    assert w.dataverse.response_types() == ["sent"]


def test_trimmed_message_for_a_deleted_row_is_poison() -> None:
    w = world()
    outcome = w.service.handle_activity_message(msg(fixture_bytes("dataverse", "activity_create_trimmed.json")))
    assert outcome.detail == "activity_not_found"


def test_personalisation_uses_formatted_values_and_blanks() -> None:
    w = world(body="{{contact.firstname}} / {{contact.gendercode}} / {{contact.nickname}}")
    w.dataverse.rows[("contact", CONTACT_ID)].update(
        {"gendercode": 2, "gendercode@OData.Community.Display.V1.FormattedValue": "Female"}
    )
    w.service.handle_activity_message(msg())
    assert w.provider.sent[0].body == "Avery / Female / "


def test_empty_text_records_failed() -> None:
    w = world(body="{{contact.nickname}}")
    assert w.service.handle_activity_message(msg()).result == "failed"
    assert w.provider.sent == []


def test_transient_dataverse_failure_while_loading_is_rescheduled() -> None:
    w = world()

    def boom(*args: object, **kwargs: object) -> dict[str, object]:
        raise TransientError("HTTP 429", retry_after=12)

    w.dataverse.get_row = boom  # type: ignore[method-assign]
    assert w.service.handle_activity_message(msg()).result == "retry_scheduled"
    assert w.queue.on("activities")[0].scheduled_at == w.clock.now() + timedelta(seconds=30)


# --- helpers ---------------------------------------------------------------------------------------
def _activity():  # type: ignore[no-untyped-def]
    from shared.domain.context import parse_activity_message

    parsed = parse_activity_message(activity_message(), "application/json")
    assert parsed.activity is not None
    return parsed.activity


def _sending(state, until):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(state, send_status=SendStatus.SENDING, lease_until=until, send_attempts=1)


def test_a_settled_activity_stays_a_duplicate_when_its_contact_is_gone() -> None:
    w = world()
    assert w.service.handle_activity_message(msg()).result == "sent"
    del w.dataverse.rows[("contact", CONTACT_ID)]
    assert w.service.handle_activity_message(msg()).result == "duplicate"
    assert w.queue.on("activities-poison") == []
