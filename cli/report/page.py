"""The report as one self-contained HTML page: inline CSS, inline SVG charts, a few lines of inline script (no CDN,
no external request of any kind: the page works offline and under a strict Content-Security-Policy of its own)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from cli.report.analysis import Summary

BUCKETS_MS = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
_BAR = 22
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1b1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#555}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:24px}.card span{color:#555}
table{border-collapse:collapse}td,th{padding:3px 12px 3px 0;text-align:left}td.n{text-align:right}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:8px 32px}
svg text{font:12px system-ui,sans-serif}
"""
_SCRIPT = """
window.addEventListener('error',function(e){document.body.dataset.errors=(document.body.dataset.errors||'')+e.message+';'});
(function(){var data=JSON.parse(document.getElementById('report-data').textContent);
var sent=data.funnel[0][1];document.querySelectorAll('[data-share]').forEach(function(el){
var v=Number(el.getAttribute('data-share'));el.textContent=sent?(100*v/sent).toFixed(1)+'%':'-';});
document.body.dataset.ready='1';})();
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def bars(rows: Sequence[tuple[str, int]], colour: str, chart_id: str, width: int = 460) -> str:
    """A horizontal bar chart (label, value) as inline SVG; each bar carries its value in ``data-value``."""
    if not rows:
        return f'<p id="{chart_id}">none</p>'
    label_w, top = 190, max(1, *(v for _, v in rows))
    height = len(rows) * (_BAR + 6) + 4
    parts = [f'<svg id="{chart_id}" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, (label, value) in enumerate(rows):
        y = 2 + i * (_BAR + 6)
        w = round((width - label_w - 50) * value / top)
        parts.append(f'<text x="0" y="{y + 15}">{_e(label[:30])}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{_BAR}" fill="{colour}" '
            f'data-label="{_e(label)}" data-value="{value}"><title>{_e(label)}: {value}</title></rect>'
        )
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 15}">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: Sequence[float]) -> list[tuple[str, int]]:
    """Seconds into latency buckets (``< 50 ms`` … ``≥ 60 s``)."""
    counts = [0] * (len(BUCKETS_MS) + 1)
    for seconds in values:
        ms = seconds * 1000
        index = next((i for i, edge in enumerate(BUCKETS_MS) if ms < edge), len(BUCKETS_MS))
        counts[index] += 1
    labels = [f"< {_ms(edge)}" for edge in BUCKETS_MS] + [f"≥ {_ms(BUCKETS_MS[-1])}"]
    return [(label, count) for label, count in zip(labels, counts, strict=True)]


def _ms(edge: int) -> str:
    return f"{edge // 1000} s" if edge >= 1000 else f"{edge} ms"


def _card(metric: str, label: str, value: object) -> str:
    return f'<div class="card"><b data-metric="{metric}">{_e(value)}</b><span>{_e(label)}</span></div>'


def _table(rows: Sequence[tuple[str, str, object]], head: tuple[str, str]) -> str:
    body = "".join(f'<tr><td>{_e(label)}</td><td class="n" data-metric="{m}">{_e(v)}</td></tr>' for m, label, v in rows)
    return f"<table><tr><th>{_e(head[0])}</th><th>{_e(head[1])}</th></tr>{body}</table>"


def render(s: Summary, title: str = "Channel run report") -> str:
    funnel = s.funnel
    latency = s.latency()
    span = f"{s.first:%Y-%m-%d %H:%M:%S} → {s.last:%H:%M:%S} UTC" if s.first and s.last else "no lines"
    cards = "".join(
        [
            _card("activities", "activities", s.activities),
            *(_card(name, name, count) for name, count in funnel),
            _card("failed", "failed", s.interactions["failed"]),
            _card("p95-delivered-ms", "p95 to delivered (ms)", round(latency["delivered"]["p95"] * 1000)),
        ]
    )
    funnel_rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="n">{count}</td><td class="n" data-share="{count}"></td></tr>'
        for name, count in funnel
    )
    latency_rows = [
        (f"{name}-{stat}", f"to {name}, {stat}", round(row[stat] * 1000) if stat != "count" else int(row[stat]))
        for name, row in latency.items()
        for stat in ("count", "p50", "p95", "max")
    ]
    operations = [
        ("poisoned", "poisoned (poison queue)", sum(s.poisoned.values())),
        ("retries", "retries scheduled", s.retries),
        ("ambiguous", "ambiguous sends", s.ambiguous),
        ("suppressed", "suppressed (compliance)", s.suppressed),
        ("throttled", "Dataverse 429s", s.throttled),
        ("throttle-wait", "429 waits (s)", f"{s.throttle_wait_seconds:.1f}"),
        ("paced", "requests held by the pacer", s.paced),
        ("paced-wait", "pacing waits (s)", f"{s.paced_wait_seconds:.1f}"),
        ("clicks", "link clicks (all)", s.clicks),
        ("previews", "link previews (not counted)", s.previews),
        ("errors", "error log lines", s.errors),
    ]
    interactions = [(f"i-{k}", k, v) for k, v in sorted(s.interactions.items())]
    data = {"funnel": funnel, "failures": s.failures.most_common(), "interactions": dict(s.interactions)}
    payload = json.dumps(data).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="meta">{_e(span)} · {s.lines} structured log lines</p>
<div class="cards">{cards}</div>
<div class="grid">
<section><h2>Funnel: sent → delivered → clicked / replied</h2>
{bars(funnel, "#2f6fde", "chart-funnel")}
<table><tr><th>step</th><th>activities</th><th>of sent</th></tr>{funnel_rows}</table></section>
<section><h2>Failures by reason</h2>{bars(s.failures.most_common(12), "#c62828", "chart-failures")}</section>
<section><h2>Latency: activity → delivered</h2>{bars(histogram(s.to_delivered), "#2e7d32", "chart-delivered")}</section>
<section><h2>Latency: activity → sent</h2>{bars(histogram(s.to_sent), "#6a1b9a", "chart-sent")}</section>
<section><h2>Latency (ms)</h2>{_table(latency_rows, ("", "value"))}</section>
<section><h2>Interactions by response type</h2>{_table(interactions, ("response type", "count"))}</section>
<section><h2>Operations</h2>{_table(operations, ("", "count"))}</section>
</div>
<script type="application/json" id="report-data">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
