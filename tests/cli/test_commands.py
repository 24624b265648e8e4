"""The ``channel`` entry point, ``--help`` on every command, the progress bar and the simulate command's tables."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main as cli_main
from cli.progress import Progress
from cli.simulate import percentile, run

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_COMMANDS = ["doctor", "send-sample", "deadletter", "simulate", "org"]


@pytest.mark.parametrize(
    "argv",
    [[c, "--help"] for c in OPERATOR_COMMANDS]
    + [
        ["deadletter", s, "--help"]
        for s in (
            "list",
            "show",
            "replay",
        )
    ]
    + [["org", s, "--help"] for s in ("add", "update", "disable", "remove", "list", "show")],
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(argv)
    assert exit_info.value.code == 0
    assert f"usage: channel {' '.join(argv[:-1])}" in capsys.readouterr().out


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["--help"]) == 0
    listing = capsys.readouterr().out
    for name in OPERATOR_COMMANDS:
        assert f"  {name}" in listing


def test_python_dash_m_cli_runs_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "doctor", "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "channel doctor" in result.stdout


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only() -> None:
    stream = Tty()
    with Progress(4, "work", stream=stream, min_interval=0) as bar:
        for _ in range(4):
            bar.advance(note="busy")
    text = stream.getvalue()
    assert text.count("\r") >= 5 and "work [" + "#" * 30 + "] 4/4" in text and "busy" in text
    assert text.endswith("\n")
    plain = io.StringIO()
    with Progress(4, "work", stream=plain) as bar:
        bar.advance()
    assert plain.getvalue() == ""
    quiet = Tty()
    with Progress(4, "work", stream=quiet, enabled=False) as bar:
        bar.advance()
    assert quiet.getvalue() == ""


def test_progress_clear_erases_the_line() -> None:
    stream = Tty()
    bar = Progress(2, "x", stream=stream, min_interval=0)
    bar.advance()
    bar.clear()
    assert stream.getvalue().endswith("\r\x1b[K")
    bar.finish()


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0 and percentile([], 50) == 0.0
    assert percentile([3.0], 95) == 3.0


def test_simulate_prints_interactions_and_timings_with_a_live_bar() -> None:
    out, err = io.StringIO(), Tty()
    counts = run(contacts=12, replies=True, verbose=False, out=out, progress=True, progress_stream=err)
    assert counts == {"sent": 10, "delivered": 10, "failed": 1, "keyword:yes": 1, "keyword:stop": 1}
    text = out.getvalue()
    assert "response type" in text and "Timings" in text
    rows = {line.split("  ")[1].strip(): line for line in text.splitlines() if line.startswith("  activity")}
    assert rows["activity processing (per message)"].split()[4] == "12"
    assert "callback handling (per request)" in text
    start_to_delivery = next(line for line in text.splitlines() if "activity start → delivery report" in line)
    assert start_to_delivery.split()[5] == "10"  # one delivery report per sent message
    assert "\ractivities [" in err.getvalue() and "12/12" in err.getvalue()
    assert "provider.accepted" not in text  # not verbose
