"""``channel simulate`` with quiet hours: deferred sends and segment counts in the summary and the step log."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from cli.simulate import auto_quiet_hours, run
from shared.domain.quiet_hours import parse_window


def test_simulate_shows_deferred_sends_and_segments() -> None:
    out = io.StringIO()
    counts = run(contacts=10, replies=False, verbose=True, out=out, quiet_hours="auto")
    # 10 contacts: 1 opted out, 1 without a phone, 2 in Tokyo inside the window (deferred), 6 sent and delivered
    assert counts == {"sent": 6, "delivered": 6, "failed": 1}
    text = out.getvalue()
    assert "deferred by quiet hours       2" in text
    assert "GSM-7, 1 segment               5" in text and "UCS-2, 1 segment               1" in text
    sends = [line for line in text.splitlines() if "provider.send " in line]
    assert len(sends) == 6 and all("segments=1" in line for line in sends)
    assert sum("encoding=UCS-2" in line for line in sends) == 1
    assert "message.deferred" in text and "reason=quiet_hours" in text


def test_the_auto_window_holds_the_current_time_in_tokyo() -> None:
    now = datetime(2026, 7, 1, 15, 30, tzinfo=UTC)  # 00:30 in Tokyo
    window = parse_window(auto_quiet_hours(now))
    assert window is not None and str(window) == "23:30-02:30"
