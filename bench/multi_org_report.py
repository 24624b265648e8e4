"""Figures per org for the multi-org benchmark (``bench.multi_org``), from what the emulators recorded.

Ground truth comes from the emulators, not the app: each org's Dataverse emulator's interaction log (with arrival
times) and request counters, and the Twilio emulator's accepted messages (recipient, sender, acceptance time).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.orgs import Org


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float]) -> dict[str, float | None]:
    def rounded(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "p50": rounded(percentile(values, 0.5)),
        "p95": rounded(percentile(values, 0.95)),
        "max": rounded(max(values, default=None)),
    }


def org_figures(
    org: Org, plan: list[tuple[str, int]], handed: dict[str, float], detail: dict[str, Any], started: float
) -> dict[str, Any]:
    """One org's figures: its own activities against what its emulator and the Twilio emulator recorded."""
    indexes = [i for key, i in plan if key == org.key]
    mine = {org.activity_id(i) for i in indexes}
    by_phone = {org.phone(i): org.activity_id(i) for i in indexes}
    recorded = detail["orgs"][org.key]
    n = len(indexes)
    interactions: list[tuple[str, str, float]] = [tuple(x) for x in recorded["interactions"]]  # type: ignore[misc]
    kinds = Counter(kind for _, kind, _ in interactions)
    seen = Counter((activity, kind) for activity, kind, _ in interactions)
    first: dict[tuple[str, str], float] = {}
    for activity, kind, at in interactions:
        first.setdefault((activity, kind), at)
    sms = [(to, sender, at) for to, sender, at in detail["sms"] if to in by_phone]
    accepted = {by_phone[to]: at for to, _, at in sms}
    delivered_at = [at for (activity, kind), at in first.items() if kind == "delivered" and activity in mine]
    span = (max(delivered_at) - started) if delivered_at else None
    last_sms = (max(accepted.values()) - started) if accepted else None
    return {
        "org_id": org.org_id,
        "activities": n,
        "http_requests": recorded["http_requests"],
        "operations": recorded["operations"],
        "requests_per_activity": round(recorded["http_requests"] / n, 3),
        "operations_per_activity": round(recorded["operations"] / n, 3),
        "throttled": recorded["throttled"],
        "interactions": dict(kinds),
        "sent": kinds.get("sent", 0),
        "delivered": kinds.get("delivered", 0),
        "duplicate_interactions": sum(count - 1 for count in seen.values()),
        # interactions this org's Dataverse received for activities that are not its own (the other org's)
        "cross_org_interactions": sum(1 for activity, _, _ in interactions if activity not in mine),
        "activities_without_sent": len(mine - {a for a, kind, _ in interactions if kind == "sent"}),
        "sms": len(sms),
        "duplicate_sms": len(sms) - len(accepted),
        "sms_from_another_sender": sum(1 for _, sender, _ in sms if sender != org.sender),
        "seconds_to_last_sms": None if last_sms is None else round(last_sms, 2),
        "seconds_to_last_delivered": None if span is None else round(span, 2),
        "activities_per_second": None if not span else round(n / span, 1),
        "latency_ms": {
            "handed_to_sms_accepted": _ms([at - handed[a] for a, at in accepted.items() if a in handed]),
            "handed_to_sent_reported": _ms(
                [at - handed[a] for (a, kind), at in first.items() if kind == "sent" and a in handed]
            ),
            "handed_to_delivered_reported": _ms(
                [at - handed[a] for (a, kind), at in first.items() if kind == "delivered" and a in handed]
            ),
        },
    }


HEADER = (
    "variant", "org", "N", "DV HTTP/act", "DV ops/act", "429s", "sent", "delivered", "dup", "cross-org",
    "other sender", "s to last SMS", "s to last delivered", "act/s",
    "SMS p50 ms", "SMS p95 ms", "sent p95 ms", "delivered p95 ms",
)  # fmt: skip


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _row(variant: str, key: str, o: dict[str, Any]) -> tuple[str, ...]:
    latency = o["latency_ms"]
    counts = (
        "throttled",
        "sent",
        "delivered",
        "duplicate_interactions",
        "cross_org_interactions",
        "sms_from_another_sender",
    )
    return (
        variant,
        key,
        _cell(o["activities"]),
        f"{o['requests_per_activity']:.3f}",
        f"{o['operations_per_activity']:.3f}",
        *(_cell(o[name]) for name in counts),
        _cell(o["seconds_to_last_sms"], 1),
        _cell(o["seconds_to_last_delivered"], 1),
        _cell(o["activities_per_second"], 1),
        _cell(latency["handed_to_sms_accepted"]["p50"]),
        _cell(latency["handed_to_sms_accepted"]["p95"]),
        _cell(latency["handed_to_sent_reported"]["p95"]),
        _cell(latency["handed_to_delivered_reported"]["p95"]),
    )


def table(results: list[dict[str, Any]]) -> str:
    rows = [HEADER] + [_row(r["variant"], key, o) for r in results for key, o in r["orgs"].items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.rjust(widths[i]) if i > 1 else c.ljust(widths[i]) for i, c in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for result in results:
        lines.append(
            f"{result['variant']}: {result['n']:,} activities in {result['seconds']:.1f} s "
            f"({result['activities_per_second']:.1f}/s overall), "
            f"app CPU {result['app_cpu_ms_per_activity']:.1f} ms/act, "
            f"peak {result['peak_rss_mb']:.0f} MB, poisoned {result['poisoned']}, finished {result['finished']}"
        )
    by = {r["variant"]: r for r in results}
    for variant in ("a-throttled", "a-paced"):
        if "unthrottled" in by and variant in by:
            calm, stormy = by["unthrottled"]["orgs"]["B"], by[variant]["orgs"]["B"]
            lines.append(_comparison(variant, calm, stormy, by[variant]["orgs"]["A"]))
    return "\n".join(lines)


def _comparison(variant: str, calm: dict[str, Any], stormy: dict[str, Any], throttled_a: dict[str, Any]) -> str:
    """Org B in a variant with org A throttled against org B unthrottled (ratios > 1: B got slower)."""

    def ratio(a: float | None, b: float | None) -> str:
        return "-" if not a or not b else f"{b / a:.2f}x"

    def p95(figures: dict[str, Any], latency: str) -> float | None:
        value: float | None = figures["latency_ms"][latency]["p95"]
        return value

    def seconds(key: str) -> str:
        return f"{_cell(calm[key], 1)} -> {_cell(stormy[key], 1)} s ({ratio(calm[key], stormy[key])})"

    sms, delivered = "handed_to_sms_accepted", "handed_to_delivered_reported"
    return (
        f"{variant}: org B vs unthrottled ({throttled_a['throttled']} 429s for A, {stormy['throttled']} for B): "
        f"last SMS {seconds('seconds_to_last_sms')}, last delivered report {seconds('seconds_to_last_delivered')}; "
        f"p95 from its batch's hand-off: SMS {ratio(p95(calm, sms), p95(stormy, sms))}, "
        f"delivered report {ratio(p95(calm, delivered), p95(stormy, delivered))}"
    )
