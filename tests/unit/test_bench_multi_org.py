"""The multi-org benchmark's bookkeeping (bench/multi_org*.py): the mixed journey and the per-org checks.

The figures are only worth something if a cross-org interaction, a duplicate or a wrong sender would show: each is
planted here in what the emulators "recorded" and must be counted.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.multi_org import journey
from bench.multi_org_report import org_figures, table
from bench.orgs import BY_KEY

A, B = BY_KEY["A"], BY_KEY["B"]


def test_the_journey_interleaves_the_split_evenly() -> None:
    plan = journey(10, 0.3)
    assert [key for key, _ in plan].count("A") == 3
    assert [i for key, i in plan if key == "B"] == list(range(7))  # each org's contacts numbered from 0
    assert journey(6, 0.5) == [("B", 0), ("A", 0), ("B", 1), ("A", 1), ("B", 2), ("A", 2)]


def _detail(a_interactions: list[tuple[str, str, float]], sms: list[tuple[str, str, float]]) -> dict[str, Any]:
    org = {"http_requests": 10, "operations": 40, "throttled": 3, "interactions": a_interactions}
    return {"orgs": {"A": org, "B": {**org, "interactions": []}}, "sms": sms}


def test_clean_figures_count_nothing_wrong() -> None:
    plan = journey(4, 0.5)  # A gets contacts 0 and 1
    handed = {A.activity_id(i): 100.0 for i in (0, 1)}
    recorded = [(A.activity_id(i), kind, 100.5 + i) for i in (0, 1) for kind in ("sent", "delivered")]
    sms = [(A.phone(0), A.sender, 100.2), (A.phone(1), A.sender, 100.4), (B.phone(0), B.sender, 100.3)]
    figures = org_figures(A, plan, handed, _detail(recorded, sms), started=99.0)
    assert (figures["sent"], figures["delivered"], figures["sms"]) == (2, 2, 2)
    assert figures["cross_org_interactions"] == figures["duplicate_interactions"] == 0
    assert figures["sms_from_another_sender"] == figures["activities_without_sent"] == 0
    assert (figures["requests_per_activity"], figures["operations_per_activity"]) == (5.0, 20.0)
    assert figures["throttled"] == 3
    assert figures["seconds_to_last_delivered"] == 2.5  # the last delivered report at 101.5, the run began at 99
    assert figures["latency_ms"]["handed_to_sms_accepted"]["max"] == pytest.approx(400.0)


def test_cross_org_interactions_duplicates_and_a_foreign_sender_are_counted() -> None:
    plan = journey(4, 0.5)
    recorded = [
        (A.activity_id(0), "sent", 1.0),
        (A.activity_id(0), "sent", 2.0),  # reported twice
        (B.activity_id(0), "sent", 3.0),  # org B's activity reported to org A's Dataverse
    ]
    sms = [(A.phone(0), B.sender, 1.0), (A.phone(1), A.sender, 1.0)]  # org A's contact texted from B's number
    figures = org_figures(A, plan, {}, _detail(recorded, sms), started=0.0)
    assert figures["duplicate_interactions"] == 1
    assert figures["cross_org_interactions"] == 1
    assert figures["activities_without_sent"] == 1  # A's second activity never reported
    assert figures["sms_from_another_sender"] == 1
    assert figures["activities_per_second"] is None  # nothing delivered


def test_the_table_compares_org_b_across_the_variants() -> None:
    plan = journey(2, 0.5)
    org = org_figures(A, plan, {}, _detail([], []), started=0.0)
    result = {"n": 2, "seconds": 1.0, "activities_per_second": 2.0, "app_cpu_ms_per_activity": 1.0}
    result |= {"peak_rss_mb": 50.0, "poisoned": 0, "finished": True, "orgs": {"A": org, "B": org}}
    text = table([{**result, "variant": "unthrottled"}, {**result, "variant": "a-throttled"}])
    assert "a-throttled: org B vs unthrottled (3 429s for A, 3 for B)" in text
