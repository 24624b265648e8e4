"""The multi-org benchmark runs end to end (a few activities; the figures come from `scripts/bench multi-org`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.multi_org import main


def test_multi_org_benchmark_runs_every_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--n", "12", "--split", "0.5", "--out", str(tmp_path), "--limit-requests", "200", "--limit-window", "2"]
    assert main([*args, "--throttle-requests", "2", "--retry-after", "1", "--dataverse-max-retries", "10"]) == 0
    document = json.loads((tmp_path / "multi-org-n12.json").read_text())
    assert document["command"].startswith("python -m bench.multi_org --n 12")
    results = {r["variant"]: r for r in document["results"]}
    assert set(results) == {"unthrottled", "a-throttled", "a-paced"}
    for result in results.values():
        assert result["finished"] and result["poisoned"] == 0
        for org in result["orgs"].values():
            assert org["activities"] == org["sms"] == org["sent"] == org["delivered"] == 6
            assert org["duplicate_interactions"] == org["cross_org_interactions"] == 0
            assert org["sms_from_another_sender"] == org["activities_without_sent"] == 0
            assert org["requests_per_activity"] > 0
    assert results["unthrottled"]["orgs"]["A"]["throttled"] == 0
    assert results["a-throttled"]["orgs"]["A"]["throttled"] > 0  # org A really was throttled...
    assert results["a-throttled"]["orgs"]["B"]["throttled"] == 0  # ...and org B was not
    # a-paced: org A's row carries its own low budget, so its pacer keeps it under its limit
    assert results["a-paced"]["orgs"]["A"]["throttled"] < results["a-throttled"]["orgs"]["A"]["throttled"]
    assert "a-throttled: org B vs unthrottled" in capsys.readouterr().out
