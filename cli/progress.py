"""A dependency-free progress bar: one ``\\r``-rewritten line on stderr, silent when not a terminal or ``--quiet``."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

WIDTH = 30


class Progress:
    """``with Progress(total, "replaying") as bar: bar.advance()``; ``enabled=None`` means "if stream is a TTY"."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        min_interval: float = 0.05,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self.note = ""
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = enabled if enabled is not None else bool(isatty and isatty())
        self._min_interval = min_interval
        self._last = 0.0
        self._started = time.monotonic()
        self._drawn = False
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        self.render(force=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish()

    def advance(self, step: int = 1, note: str = "") -> None:
        self.done += step
        if note:
            self.note = note
        self.render(force=self.done >= self.total)

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        if self.total:
            filled = min(WIDTH, WIDTH * self.done // self.total)
            bar = "#" * filled + "-" * (WIDTH - filled)
            head = f"{self.label} [{bar}] {self.done}/{self.total}"
        else:
            head = f"{self.label} {self.done}"
        rate = f" {self.done / elapsed:.1f}/s" if elapsed > 0 and self.done else ""
        note = f"  {self.note}" if self.note else ""
        return f"{head} {elapsed:5.1f}s{rate}{note}"

    def render(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self._min_interval:
                return
            self._last = now
            self.stream.write("\r" + self.line()[:160] + "\x1b[K")
            self.stream.flush()
            self._drawn = True

    def clear(self) -> None:
        """Erase the bar (before printing a regular line); the next ``render`` draws it again."""
        if not self.enabled:
            return
        with self._lock:
            if self._drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._drawn = False

    def finish(self) -> None:
        if self.enabled:
            self.render(force=True)
            with self._lock:
                if self._drawn:
                    self.stream.write("\n")
                    self.stream.flush()
                    self._drawn = False
