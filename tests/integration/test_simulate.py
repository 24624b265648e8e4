"""The README's local run: the real handlers end to end with the loopback gateway firing real HTTP callbacks."""

from __future__ import annotations

import io

from cli.simulate import run


def test_simulated_journey_reports_each_interaction_exactly_once() -> None:
    out = io.StringIO()
    counts = run(contacts=20, replies=True, verbose=True, out=out)
    # 20 contacts: 2 opted out (suppressed), 2 without a phone (failed), 16 sent and delivered
    assert counts == {"sent": 16, "delivered": 16, "failed": 2, "keyword:yes": 1, "keyword:stop": 1}
    text = out.getvalue()
    assert "provider.accepted" in text and "callback.status" in text and "interaction.recorded" in text
    assert "+1415555" not in text  # phone numbers are masked in every log line
    assert "spring offer" not in text.lower()  # the message text never reaches the logs
