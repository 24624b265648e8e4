"""``channel ambiguous list`` against Azurite: the ambiguous records of both contracts, read through the same state
table the app writes (issue #13)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cli import ambiguous
from shared.adapters.table_store import TableStore
from shared.domain import rtj_state, state
from shared.domain.models import ActivityRef
from shared.domain.rtj_state import RtjState
from shared.domain.state import ActivityState
from shared.records.codecs import ACTIVITIES, RTJ_SENDS
from shared.records.store import RecordStore

pytestmark = pytest.mark.azurite
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _activity(row: str) -> ActivityState:
    ref = ActivityRef(row, "act", "contact", "journey", "iteration", "cr123_smsmessage", "msg")
    claimed = state.claim(ActivityState(ref), provider="twilio", lease_until=T0, phone_masked="+*******0123")
    assert claimed is not None
    return claimed


def test_lists_the_ambiguous_sends_of_both_contracts_and_why(azurite_connection_string: str) -> None:
    name = "amb" + uuid.uuid4().hex[:10]
    env = {"AzureWebJobsStorage": azurite_connection_string, "STATE_TABLE_NAME": name}
    store = TableStore.from_settings(
        table_name=name, connection_string=azurite_connection_string, table_service_uri=None, account_name=None
    )
    activities = RecordStore(store, ACTIVITIES, lambda: T0)
    rtj = RecordStore(store, RTJ_SENDS, lambda: T0 + timedelta(minutes=1))
    waiting = state.ambiguous(_activity("row-ambiguous"), detail="Twilio gateway timeout")
    assert waiting is not None
    deferred = state.reconcile_deferred(waiting, note="unknown: Twilio Messages list answered HTTP 503")
    assert deferred is not None
    activities.insert(deferred)
    sent = state.accepted(_activity("row-sent"), provider="twilio", message_id="SM1")
    activities.insert(sent)
    relayed = rtj_state.claim(RtjState("rtj-k1", "def", "req"), provider="acs", lease_until=T0, phone_masked="+1")
    assert relayed is not None
    relayed_ambiguous = rtj_state.ambiguous(relayed)
    assert relayed_ambiguous is not None
    rtj.insert(relayed_ambiguous)

    out = io.StringIO()
    table = ambiguous.table_client(_settings(env))
    assert ambiguous.main(["list"], table=table, out=out) == 0
    text = out.getvalue()
    assert "row-ambiguous" in text and "rtj-k1" in text and "row-sent" not in text
    assert "unknown: Twilio Messages list answered HTTP 503" in text and "2 ambiguous send(s)" in text

    out = io.StringIO()
    assert ambiguous.main(["list", "--json"], table=table, out=out) == 0
    listed = {row["key"]: row for row in json.loads(out.getvalue())}
    assert listed["row-ambiguous"]["attempts"] == 1 and listed["row-ambiguous"]["contract"] == "outbound"
    assert listed["rtj-k1"]["contract"] == "rtj" and listed["rtj-k1"]["provider"] == "acs"


def test_an_empty_table_says_nothing_is_being_reconciled(azurite_connection_string: str) -> None:
    name = "amb" + uuid.uuid4().hex[:10]
    client = ambiguous.table_client(
        _settings({"AzureWebJobsStorage": azurite_connection_string, "STATE_TABLE_NAME": name})
    )
    client.create_table()
    out = io.StringIO()
    assert ambiguous.main(["list"], table=client, out=out) == 0
    assert out.getvalue() == "no ambiguous sends: nothing is being reconciled\n"


def test_missing_settings_exit_2_with_the_doctor_hint() -> None:
    err = io.StringIO()
    assert ambiguous.main(["list"], environ={}, err=err) == 2
    assert "channel doctor" in err.getvalue()


def _settings(values: dict[str, str]) -> ambiguous.Settings:
    class Minimal:
        storage_connection = values["AzureWebJobsStorage"]
        state_table_name = values["STATE_TABLE_NAME"]

    return Minimal()  # type: ignore[return-value]
