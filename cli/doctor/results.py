"""What a check returns and how the report is printed: one line per check, fixes indented, exit 1 on any problem."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TextIO

Status = Literal["ok", "problem", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``ok`` / ``problem`` (with ``fix``) / ``skipped`` (with the reason)."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    lines: tuple[str, ...] = ()

    @property
    def is_problem(self) -> bool:
        return self.status == "problem"


def ok(name: str, detail: str, *lines: str) -> CheckResult:
    return CheckResult(name, "ok", detail, lines=lines)


def problem(name: str, detail: str, fix: str, *lines: str) -> CheckResult:
    return CheckResult(name, "problem", detail, fix, lines)


def skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "skipped", reason)


def render(results: Iterable[CheckResult], out: TextIO) -> int:
    """Print one line per check (``ok`` / ``problem`` / ``skipped``), fixes indented; returns the exit code."""
    results = list(results)
    width = max((len(r.name) for r in results), default=10) + 2
    for result in results:
        out.write(f"{result.status:<8} {result.name:<{width}}{result.detail}\n")
        for line in result.lines:
            out.write(f"{'':<{9 + width}}{line}\n")
        if result.fix:
            out.write(f"{'':<{9 + width}}fix: {result.fix}\n")
    problems = sum(r.is_problem for r in results)
    out.write(f"\n{problems} problem(s) found\n" if problems else "\nall checks passed\n")
    return 1 if problems else 0
