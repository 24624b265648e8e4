"""Every emulator's command line goes through the one ``serve_forever``: prints its URL, serves, and stops cleanly
on Ctrl-C (exit 0)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("module", "path", "expected"),
    [
        ("devtools.emulators.dataverse", "/api/data/v9.2/WhoAmI", 401),  # no bearer token
        ("devtools.emulators.twilio", "/2010-04-01/Accounts/AC1/Messages.json", 401),  # no basic auth
        ("devtools.emulators.acs", "/sms?api-version=2021-03-07", 401),  # no HMAC / bearer
        ("devtools.emulators.loopback_provider", "/messages", 401),  # no bearer key
        ("devtools.emulators.whatsapp", "/v21.0/106540352242922/messages", 401),  # no bearer token (issue #17)
        ("devtools.emulators.keyvault", "/secrets/twilio-auth-token?api-version=7.5", 401),  # no bearer token
    ],
)
def test_command_line_prints_url_serves_and_stops_on_interrupt(module: str, path: str, expected: int) -> None:
    command = [sys.executable, "-m", module, "--port", "0"]  # module: one of the fixed names above
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)  # noqa: S603
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        method = requests.get if module.endswith(("dataverse", "keyvault")) else requests.post
        assert method(f"{url}{path}", timeout=30).status_code == expected  # generous: a loaded CI machine
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
