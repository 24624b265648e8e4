"""The shared send rate benchmark still runs end to end (two processes, a few contacts; figures: scripts/bench)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.shared_rate import main, windows


def test_benchmark_runs_with_several_processes(tmp_path: Path) -> None:
    main(["--k", "2", "--limit", "10", "--n", "24", "--out", str(tmp_path)])  # exit code judges the figures
    result = json.loads((tmp_path / "shared-rate.json").read_text())
    assert result["provider_messages"] == result["sent_interactions"] == 24
    assert result["lost"] == result["duplicates"] == result["poisoned"] == 0
    assert result["workers_finished"] == 2


def test_windows_counts_the_busiest_second() -> None:
    assert windows([]) == 0
    assert windows([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # [0.5, 1.5) holds 0.5, 0.99, 1.0 and 1.2
    assert windows([0.0, 1.0, 2.0]) == 1  # a window is half-open: [t, t + 1)
    assert windows([0.0, 0.1, 0.2, 5.0]) == 3
