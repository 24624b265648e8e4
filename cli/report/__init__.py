"""``channel report``: the operations picture of one run from its structured logs (a JSON-lines file such as
``channel simulate --log-file`` writes): a self-contained HTML page with charts (funnel sent → delivered → clicked /
replied, failures by reason, latency distribution) and a text summary on stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.jsonlog import read_lines
from cli.report.analysis import summarise, text_summary
from cli.report.page import render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="channel report", description=__doc__)
    parser.add_argument("log_file", type=Path, help="JSON-lines structured log of a run")
    parser.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML page (default report.html)")
    parser.add_argument("--title", default="Channel run report")
    args = parser.parse_args(argv)
    if not args.log_file.is_file():
        print(f"channel report: {args.log_file}: no such file", file=sys.stderr)
        return 2
    try:
        summary = summarise(read_lines(args.log_file))
    except ValueError as exc:
        print(f"channel report: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(render(summary, args.title), encoding="utf-8")
    sys.stdout.write(text_summary(summary))
    print(f"\nHTML report: {args.out}")
    return 0
