"""``channel report``: the summary of a run's structured logs, and its HTML page in a real headless browser
(Debian's chromium, installed by .ci/run)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from cli.report import main
from cli.report.analysis import summarise, text_summary
from cli.report.page import histogram, render
from cli.simulate import run

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
ROW_A, ROW_B, ROW_C = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002", "cccc"


def _line(t: float, event: str, level: str = "INFO", **fields: object) -> dict[str, object]:
    return {"time": f"2026-12-01T12:00:{t:09.6f}+00:00", "event": event, "level": level, **fields}


KNOWN = [
    _line(0.0, "provider.send", activity_row=ROW_A),
    _line(0.2, "provider.accepted", activity_row=ROW_A, provider_message_id="SM1"),
    _line(0.3, "interaction.recorded", activity_row=ROW_A, response_type="sent"),
    _line(1.0, "provider.send", activity_row=ROW_B),
    _line(1.5, "provider.accepted", activity_row=ROW_B, provider_message_id="SM2"),
    _line(1.6, "interaction.recorded", activity_row=ROW_B, response_type="sent"),
    _line(2.0, "interaction.recorded", activity_row=ROW_A, response_type="delivered"),
    _line(4.0, "callback.status", activity_row=ROW_B, status="undelivered", error_code="30003"),
    _line(4.1, "interaction.recorded", activity_row=ROW_B, response_type="failed"),
    _line(5.0, "link.preview", activity_row=ROW_A, method="HEAD"),
    _line(5.5, "link.clicked", activity_row=ROW_A, first="True"),
    _line(5.6, "interaction.recorded", activity_row=ROW_A, response_type="clicked"),
    _line(6.0, "link.clicked", activity_row=ROW_A, first="False"),
    _line(7.0, "interaction.recorded", activity_row=ROW_A, response_type="keyword", keyword="yes"),
    _line(8.0, "activity.not_sent", "WARNING", activity_row=ROW_C, reason="no phone number"),
    _line(9.0, "message.poisoned", "ERROR", reason="xml_format"),
    _line(9.5, "message.retry_scheduled", "WARNING"),
    _line(10.0, "dataverse.retry", "WARNING", status="429", wait_seconds="2.5"),
    _line(10.2, "dataverse.paced", wait_seconds="1.25", reason="budget"),
    _line(10.5, "activity.ambiguous", "ERROR", activity_row=ROW_C, reason="timeout"),
]


def test_summary_of_a_known_run() -> None:
    s = summarise(KNOWN)
    assert s.activities == 3 and s.lines == len(KNOWN)
    assert s.funnel == [("sent", 2), ("delivered", 1), ("clicked", 1), ("replied", 1)]
    assert dict(s.failures) == {
        "undelivered: 30003": 1,
        "not sent: no phone number": 1,
        "ambiguous (never resent)": 1,
    }
    assert s.to_sent == pytest.approx([0.2, 0.5]) and s.to_delivered == pytest.approx([2.0])
    assert (s.clicks, s.previews, s.throttled, s.throttle_wait_seconds) == (2, 1, 1, 2.5)
    assert (s.paced, s.paced_wait_seconds) == (1, 1.25)
    assert (dict(s.poisoned), s.retries, s.ambiguous, s.errors) == ({"xml_format": 1}, 1, 1, 2)
    text = text_summary(s)
    assert "clicked         1   50.0%" in text and "to delivered" in text and "Dataverse 429s 1" in text
    assert [count for _, count in histogram([0.01, 0.07, 0.07, 75.0])] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_command_writes_the_page_and_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in KNOWN), encoding="utf-8")
    assert main([str(log), "--out", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert "Funnel" in out and "HTML report:" in out
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page  # no CDN
    assert 'data-metric="sent">2<' in page


def test_bad_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(KNOWN[0]) + "\n{not json\n", encoding="utf-8")
    assert main([str(bad), "--out", str(tmp_path / "r.html")]) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err
    bad.write_text('{"event": "x"}\n', encoding="utf-8")
    assert main([str(bad), "--out", str(tmp_path / "r.html")]) == 2


def chromium(page: Path, *extra: str) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the browser console lines."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: .ci/run installs Debian's chromium (apt-get install -y chromium)"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(  # noqa: S603 - a fixed local binary and our own arguments
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def metric(dom: str, name: str) -> str:
    found = re.search(rf'data-metric="{re.escape(name)}">([^<]*)<', dom)
    assert found, f"{name} is not on the page"
    return found.group(1)


def test_the_browser_check_catches_a_broken_page(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(render(summarise(KNOWN)).replace("JSON.parse(", "JSON.parsee("), encoding="utf-8")
    dom, console = chromium(broken)
    assert any("Uncaught" in line for line in console)
    assert 'data-ready="1"' not in dom


def test_report_of_a_simulated_run_loads_without_errors_and_shows_its_numbers(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    with log.open("w", encoding="utf-8") as handle:
        printed = io.StringIO()
        counts = run(10, True, False, printed, log_file=handle, link_tracking=True)
    assert re.search(
        r"a sent text: Hi Ada, your spring offer is ready: http://127\.0\.0\.1:\d+/api/l/\w{12} ", printed.getvalue()
    )
    assert counts["clicked"] == 4 and counts["sent"] == 8  # every second of the 8 reachable contacts clicked
    page = tmp_path / "report.html"
    assert main([str(log), "--out", str(page)]) == 0
    dom, console = chromium(page)
    assert console == [] and 'data-ready="1"' in dom and "data-errors" not in dom
    for name in ("sent", "delivered", "clicked", "failed"):
        assert metric(dom, name) == str(counts.get(name, 0)), name
    assert metric(dom, "replied") == "2" and metric(dom, "activities") == "10"
    assert metric(dom, "i-keyword:yes") == "1" and metric(dom, "suppressed") == "1"
    assert re.search(r'data-share="4">50\.0%<', dom)  # the script ran: clicked as a share of sent
    assert metric(dom, "delivered-count") == str(counts["delivered"])
