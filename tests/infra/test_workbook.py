"""The operations workbook (issue #16): deployed by the Bicep, and every event name and custom dimension it queries
is one the app emits (derived from the code by devtools.log_catalog, and cross-checked with a real run's logs), so
renaming a log field breaks the build, not the dashboard."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from cli.simulate import run
from devtools.log_catalog import EVENT_NAME, catalog

REPO = Path(__file__).resolve().parents[2]
WORKBOOK = REPO / "infra" / "workbook" / "operations.workbook.json"
_DIMENSION = re.compile(r"customDimensions(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")
_STRING = re.compile(r"\"([^\"\\]*)\"|'([^'\\]*)'")


@pytest.fixture(scope="module")
def emitted() -> dict[str, set[str]]:
    return catalog(REPO)


def queries() -> dict[str, str]:
    document = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    return {item["name"]: item["content"]["query"] for item in document["items"] if item["type"] == 3}


def used(query: str) -> tuple[set[str], set[str]]:
    """(event names, custom dimensions) a KQL query refers to."""
    events = {a or b for a, b in _STRING.findall(query) if EVENT_NAME.match(a or b)}
    dimensions = {a or b for a, b in _DIMENSION.findall(query)}
    return events, dimensions


def violations(query: str, emitted: dict[str, set[str]]) -> list[str]:
    events, dimensions = used(query)
    found = [f"event {e!r} is never logged" for e in sorted(events - set(emitted))]
    scope = [emitted[e] for e in events if e in emitted] or list(emitted.values())
    for dimension in sorted(dimensions):
        if not any(dimension in fields for fields in scope):
            found.append(f"no line of {sorted(events) or 'any event'} carries {dimension!r}")
    return found


def test_every_event_and_dimension_the_workbook_queries_is_emitted(emitted: dict[str, set[str]]) -> None:
    found = {name: violations(query, emitted) for name, query in queries().items()}
    assert {name: v for name, v in found.items() if v} == {}


def test_the_workbook_covers_what_the_issue_asks(emitted: dict[str, set[str]]) -> None:
    wanted = {
        "interaction.recorded",  # interactions by response type, the funnel, delivered latency
        "provider.accepted",  # sent latency, outcomes
        "activity.not_sent",
        "provider.rejected",  # failure reasons
        "message.poisoned",
        "message.retry_scheduled",  # poison, retries
        "dataverse.retry",  # 429s and waits
        "dataverse.paced",
        "activity.ambiguous",
        "link.clicked",
    }
    seen = set().union(*(used(q)[0] for q in queries().values()))
    assert wanted <= seen
    assert {"wait_seconds", "status", "response_type", "reason", "activity_row"} <= set().union(
        *(used(q)[1] for q in queries().values())
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("customDimensions.response_type", "customDimensions.responseType", "'responseType'"),
        ('"dataverse.retry"', '"dataverse.retried"', "'dataverse.retried' is never logged"),
        ("customDimensions.wait_seconds", "customDimensions['waited']", "'waited'"),
    ],
)
def test_a_renamed_field_or_event_is_caught(emitted: dict[str, set[str]], old: str, new: str, expected: str) -> None:
    broken = [violations(q.replace(old, new), emitted) for q in queries().values() if old in q]
    assert broken and all(any(expected in v for v in found) for found in broken)


def test_the_catalog_is_read_from_the_code_and_matches_a_real_run(emitted: dict[str, set[str]]) -> None:
    assert emitted["message.poisoned"] >= {"reason", "detail", "queue", "message_id", "event"}
    assert emitted["dataverse.retry"] >= {"status", "wait_seconds", "operation"}
    assert emitted["provider.accepted"] >= {"activity_row", "journey_id", "provider_message_id"}
    log = io.StringIO()
    run(6, True, False, io.StringIO(), log_file=log, link_tracking=True)
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert len({line["event"] for line in lines}) >= 8
    for line in lines:
        fields = set(line) - {"time", "level"}
        assert line["event"] in emitted and fields <= emitted[line["event"]], line["event"]


def test_the_workbook_is_deployed_with_the_infra() -> None:
    main = (REPO / "infra" / "main.bicep").read_text(encoding="utf-8")
    module = (REPO / "infra" / "modules" / "workbook.bicep").read_text(encoding="utf-8")
    assert re.search(r"module workbook 'modules/workbook\.bicep'", main)
    assert "appInsightsId: monitoring.outputs.appInsightsId" in main
    assert "'Microsoft.Insights/workbooks@2023-06-01'" in module
    assert "loadTextContent('../workbook/operations.workbook.json')" in module
    document = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    assert document["version"] == "Notebook/1.0" and document["fallbackResourceIds"] == ["__APP_INSIGHTS_ID__"]
    assert all(i["content"].get("timeContextFromParameter") == "TimeRange" for i in document["items"] if i["type"] == 3)


def test_the_workbook_module_type_checks_against_microsofts_arm_types() -> None:
    from devtools import reference_data
    from devtools.arm_types import TypeLibrary
    from devtools.bicep_model import parse_bicep
    from devtools.bicep_typecheck import BicepTypeChecker

    checker = BicepTypeChecker(TypeLibrary(reference_data.bicep_types_dir()))
    source = (REPO / "infra" / "modules" / "workbook.bicep").read_text(encoding="utf-8")
    assert checker.check_file(parse_bicep("workbook.bicep", source)) == []
    broken = checker.check_file(parse_bicep("workbook.bicep", source.replace("    category:", "    categry:")))
    assert any("categry" in str(finding) for finding in broken)
    missing = checker.check_file(parse_bicep("workbook.bicep", source.replace("    displayName: displayName\n", "")))
    assert any("displayName" in str(finding) for finding in missing)
