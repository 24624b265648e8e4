"""JSON-lines logs: one object per structured log line, as Application Insights stores them (``event`` plus the
custom dimensions), with the time and level. ``channel simulate --log-file`` writes them; ``channel report`` reads
them."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO


class JsonLinesHandler(logging.Handler):
    """Writes every record that carries custom dimensions (our :func:`shared.log.log_event` lines) as one line."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        dimensions = getattr(record, "custom_dimensions", None)
        if not isinstance(dimensions, dict):
            return
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            **dimensions,
        }
        with self._write_lock:
            self.stream.write(json.dumps(line, sort_keys=True) + "\n")
            self.stream.flush()


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file; raises ValueError naming the line that is not a JSON object."""
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(value, dict) or "event" not in value or "time" not in value:
                raise ValueError(f"{path}:{number}: not a structured log line (needs 'time' and 'event')")
            yield value
