"""The throughput benchmark still runs end to end (a few contacts; the figures come from scripts/bench)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.throughput import main


def test_benchmark_runs_every_configuration(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--n", "12", "--out", str(tmp_path), "--limit-requests", "200", "--limit-window", "5"]) == 0
    document = json.loads((tmp_path / "throughput-n12.json").read_text())
    results = {r["config"]: r for r in document["results"]}
    assert set(results) == {"one-at-a-time", "optimised", "paced"}
    for result in results.values():
        assert result["sent"] == result["delivered"] == 12
        assert result["duplicate_interactions"] == 0
    assert results["optimised"]["requests_per_activity"] < results["one-at-a-time"]["requests_per_activity"]
    assert "throughput ratio" in capsys.readouterr().out
