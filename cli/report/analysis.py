"""What a run's structured logs say: the funnel, failures by reason, latencies, and the operational counts.

The same definitions as the Application Insights workbook (infra/modules/workbook.bicep), over JSON-lines logs:

- interactions: ``interaction.recorded`` by ``response_type`` (``keyword:<word>`` for replies);
- funnel: sent → delivered → clicked, and replied (activities with at least one keyword interaction);
- failures by reason: ``activity.not_sent`` (``reason``), ``provider.rejected`` (``code``), ``callback.status``
  reporting ``failed``/``undelivered`` (``error_code``), ``activity.ambiguous``, ``message.poisoned`` (``reason``);
- latency: from an activity's first log line (the app picking it up) to ``provider.accepted`` (sent) and to the
  ``delivered`` interaction being recorded;
- operations: poison and retries (``message.poisoned``, ``message.retry_scheduled``), Dataverse 429s and their
  waits (``dataverse.retry`` with ``status`` 429, ``wait_seconds``), pacing waits (``dataverse.paced``), ambiguous
  sends, link previews.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FAILED_STATUSES = frozenset({"failed", "undelivered"})


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Summary:
    lines: int = 0
    first: datetime | None = None
    last: datetime | None = None
    activities: int = 0
    interactions: Counter[str] = field(default_factory=Counter)
    replied: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    to_sent: list[float] = field(default_factory=list)  # seconds
    to_delivered: list[float] = field(default_factory=list)
    poisoned: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    throttled: int = 0
    throttle_wait_seconds: float = 0.0
    paced: int = 0  # requests the client-side pacer held back (dataverse.paced)
    paced_wait_seconds: float = 0.0
    ambiguous: int = 0
    suppressed: int = 0
    clicks: int = 0
    previews: int = 0
    errors: int = 0

    @property
    def funnel(self) -> list[tuple[str, int]]:
        steps = [(name, self.interactions[name]) for name in ("sent", "delivered", "clicked")]
        return [*steps, ("replied", self.replied)]

    def latency(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in (("sent", self.to_sent), ("delivered", self.to_delivered)):
            out[name] = {
                "count": len(values),
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "max": max(values, default=0.0),
            }
        return out


def _time(line: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(line["time"]))


def _failure(line: Mapping[str, Any]) -> str | None:
    event = line["event"]
    if event == "activity.not_sent":
        return f"not sent: {line.get('reason', 'unknown')}"
    if event == "provider.rejected":
        return f"provider rejected: {line.get('code', '?')}"
    if event == "callback.status" and str(line.get("status", "")).lower() in FAILED_STATUSES:
        return f"{str(line['status']).lower()}: {line.get('error_code') or 'no code'}"
    if event == "activity.ambiguous":
        return "ambiguous (never resent)"
    return None


def summarise(lines: Iterable[Mapping[str, Any]]) -> Summary:
    s = Summary()
    started: dict[str, datetime] = {}
    sent_at: dict[str, datetime] = {}
    delivered_at: dict[str, datetime] = {}
    replied: set[str] = set()
    for line in lines:
        s.lines += 1
        when = _time(line)
        s.first = when if s.first is None else min(s.first, when)
        s.last = when if s.last is None else max(s.last, when)
        event = str(line["event"])
        row = line.get("activity_row")
        if row and (row not in started or when < started[row]):
            started[str(row)] = when
        if line.get("level") in ("ERROR", "CRITICAL"):
            s.errors += 1
        reason = _failure(line)
        if reason is not None:
            s.failures[reason] += 1
        if event == "interaction.recorded":
            kind = str(line.get("response_type"))
            if kind == "keyword":
                kind = f"keyword:{line.get('keyword', '')}"
                if row:
                    replied.add(str(row))
            s.interactions[kind] += 1
            if kind == "delivered" and row:
                delivered_at.setdefault(str(row), when)
        elif event == "provider.accepted" and row:
            sent_at.setdefault(str(row), when)
        elif event == "message.poisoned":
            s.poisoned[str(line.get("reason", "unknown"))] += 1
        elif event == "message.retry_scheduled":
            s.retries += 1
        elif event == "dataverse.retry" and str(line.get("status")) == "429":
            s.throttled += 1
            s.throttle_wait_seconds += float(line.get("wait_seconds") or 0)
        elif event == "dataverse.paced":
            s.paced += 1
            s.paced_wait_seconds += float(line.get("wait_seconds") or 0)
        elif event == "activity.ambiguous":
            s.ambiguous += 1
        elif event == "activity.suppressed":
            s.suppressed += 1
        elif event == "link.clicked":
            s.clicks += 1
        elif event == "link.preview":
            s.previews += 1
    s.activities = len(started)
    s.replied = len(replied)
    s.to_sent = [(at - started[row]).total_seconds() for row, at in sent_at.items()]
    s.to_delivered = [(at - started[row]).total_seconds() for row, at in delivered_at.items()]
    return s


def text_summary(s: Summary) -> str:
    """The summary ``channel report`` prints."""
    out = [f"Run: {s.lines} log lines, {s.activities} activities", "", "Funnel"]
    top = max(s.funnel[0][1], 1)
    out += [f"  {name:<10}{count:>7}  {100 * count / top:5.1f}%" for name, count in s.funnel]
    out += ["", "Interactions by response type"]
    out += [f"  {kind:<18}{count:>7}" for kind, count in sorted(s.interactions.items())]
    out += ["", "Failures by reason"]
    out += [f"  {count:>5}  {reason}" for reason, count in s.failures.most_common()] or ["  none"]
    out += ["", f"Latency from the activity{'':<9}count      p50      p95      max"]
    for name, row in s.latency().items():
        out.append(
            f"  to {name:<28}{int(row['count']):>7}{row['p50'] * 1000:>8.0f}ms{row['p95'] * 1000:>7.0f}ms"
            f"{row['max'] * 1000:>7.0f}ms"
        )
    poisoned = sum(s.poisoned.values())
    out += [
        "",
        "Operations",
        f"  poisoned {poisoned}, retries scheduled {s.retries}, ambiguous {s.ambiguous}, suppressed {s.suppressed}",
        f"  Dataverse 429s {s.throttled} (waited {s.throttle_wait_seconds:.1f}s), paced requests {s.paced} "
        f"(waited {s.paced_wait_seconds:.1f}s), error lines {s.errors}",
        f"  link clicks {s.clicks} (first per activity: {s.interactions['clicked']}), previews {s.previews}",
    ]
    return "\n".join(out) + "\n"
