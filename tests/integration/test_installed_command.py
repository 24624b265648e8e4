"""The README's demo command works as installed: `channel simulate` from outside the repository."""

from __future__ import annotations

import subprocess
import sys
import tempfile


def test_channel_simulate_runs_from_any_directory() -> None:
    with tempfile.TemporaryDirectory() as elsewhere:
        done = subprocess.run(
            [sys.executable, "-m", "cli", "simulate", "--contacts", "3", "--quiet", "--no-replies"],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Interactions the journey received" in done.stdout
