"""The C# relay plug-in, compiled under Mono against the SDK stand-in and run by its harness (rtj-relay/harness/).

Against the app's real HTTP trigger (``POST /api/rtj/outbound`` on the loopback host of devtools/host.py, the
``channel`` fixture) in both auth modes, and against a minimal scripted loopback server for what the app cannot be
made to do on demand (409, a slow answer in pieces, a recording of the exact bytes, a wrong-URL trap).
Skipped only outside CI when Mono is missing; under CI=true a missing ``mcs`` fails.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared import bootstrap
from shared.settings import load_settings
from tests.entra import AUDIENCE, CLIENT, TENANT, LoopbackTenant, token
from tests.integration.conftest import PHONE, RTJ_SECRET, Channel
from tests.integration.test_rtj import OUTBOUND, payload

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "cr123_ChannelOutbound"
URL_VAR, SCOPE_VAR, SECRET_VAR = "cr123_ChannelRelayUrl", "cr123_ChannelRelayScope", "cr123_ChannelRelaySecret"
SCOPE = AUDIENCE + "/.default"
ORG_ID = "3f2a9c1e-7b4d-4e8a-9c21-5d6e7f8a9b0c"  # the plug-in context's OrganizationId unless a test says otherwise
EMPTY_ORG_ID = "00000000-0000-0000-0000-000000000000"  # Guid.Empty
LIMIT_SECONDS = 20.0  # Journeys' limit for the whole custom API call


@pytest.fixture(scope="session")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        message = "Mono is missing: apt-get install -y mono-mcs mono-runtime libmono-system-net-http4.0-cil"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    out = tmp_path_factory.mktemp("relay")
    build = subprocess.run(  # noqa: S603 - our own build script, bash from PATH
        ["bash", str(ROOT / "rtj-relay" / "build-standin.sh"), str(out)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out / "RelayHarness.exe"


@dataclass
class Run:
    outcome: str
    elapsed_ms: int
    wall_seconds: float
    scopes: list[str]
    queries: list[str]
    response: str = ""
    message: str = ""
    trace: str = ""


def relay(
    harness: Path,
    body: bytes,
    variables: list[tuple[str, str]],
    *,
    token_value: str | None = None,
    extra: list[str] | None = None,
    message: str = MESSAGE,
    organization_id: str | None = ORG_ID,
) -> Run:
    payload_file = harness.parent / f"payload-{time.monotonic_ns()}.json"
    payload_file.write_bytes(body)
    args = ["mono", str(harness), "--message", message, "--payload-file", str(payload_file)]
    for name, value in variables:
        args += ["--var", f"{name}={value}"]
    if token_value is not None:
        args += ["--token", token_value]
    if organization_id is not None:
        args += ["--organization-id", organization_id]
    args += extra or []
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    out = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def text(key: str) -> str:
        return base64.b64decode(out.get(key, "")).decode("utf-8")

    return Run(
        outcome=out["outcome"],
        elapsed_ms=int(out["elapsed_ms"]),
        wall_seconds=wall,
        scopes=out.get("scopes", "").split(),
        queries=out.get("queries", "").split(),
        response=text("response_b64"),
        message=text("message_b64"),
        trace=text("trace_b64"),
    )


# --- a minimal scripted loopback server ---------------------------------------------------------------
@dataclass
class Scripted:
    status: int = 200
    answer: bytes = b'{"Status":"Sent"}'
    dribble_seconds: float = 0.0  # > 0: send the answer one byte per this many seconds, for ever
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    header_lines: list[list[tuple[str, str]]] = field(default_factory=list)  # per request, every header as sent
    url: str = ""


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            script.requests.append(({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)))
            script.header_lines.append(list(self.headers.items()))
            self.send_response(script.status)
            self.send_header("Content-Type", "application/json")
            if script.dribble_seconds:
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    for _ in range(100_000):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(script.dribble_seconds)
                except OSError:
                    return  # the client gave up, as it must
                return
            self.send_header("Content-Length", str(len(script.answer)))
            self.end_headers()
            self.wfile.write(script.answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}/api/rtj/outbound"
    yield script
    server.shutdown()
    server.server_close()


BODY = json.dumps(payload(Message={"text": "Café ☕ at 8pm — table for 2"}), ensure_ascii=False).encode()


# --- against the app's real HTTP trigger ---------------------------------------------------------------
def test_secret_mode_against_the_app_sends_and_writes_response(harness: Path, channel: Channel) -> None:
    variables = [(URL_VAR, channel.callback_base + OUTBOUND), (SECRET_VAR, RTJ_SECRET)]
    run = relay(harness, BODY, variables, organization_id=channel.dataverse.organization_id)
    assert run.outcome == "response", run.message
    answer = json.loads(run.response)
    sms = channel.twilio.messages[0]
    assert answer == {
        "ChannelDefinitionId": payload()["ChannelDefinitionId"],
        "RequestId": "req-1",
        "Status": "Sent",
        "MessageId": sms.sid,
    }
    assert (sms.to, sms.body) == (PHONE, "Café ☕ at 8pm — table for 2")  # the text survived both hops intact
    assert run.queries == [f"Equal:{URL_VAR}", f"Equal:{SCOPE_VAR}", f"Equal:{SECRET_VAR}"]


def test_entra_mode_against_the_app_sends_with_a_managed_identity_token(
    harness: Path, channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = LoopbackTenant()
    try:
        monkeypatch.delenv("RTJ_OUTBOUND_SECRET")
        env = {k: v for k, v in channel.env.items() if k != "RTJ_OUTBOUND_SECRET"}
        env.update(RTJ_AUTH_MODE="entra", RTJ_TOKEN_AUDIENCE=AUDIENCE, RTJ_TOKEN_TENANT_ID=TENANT)
        env.update(RTJ_TOKEN_CLIENT_ID=CLIENT, RTJ_TOKEN_AUTHORITY=tenant.url)
        monkeypatch.setenv("RTJ_AUTH_MODE", "entra")
        bootstrap.install(bootstrap.build_service(load_settings(env), queue=channel.host.queue))
        variables = [(URL_VAR, channel.callback_base + OUTBOUND), (SCOPE_VAR, SCOPE)]
        run = relay(harness, BODY, variables, token_value=token(tenant.key))
        assert run.outcome == "response", run.message
        assert json.loads(run.response)["Status"] == "Sent"
        assert run.scopes == [SCOPE]
        refused = relay(harness, BODY, variables, token_value=token(tenant.key, aud="api://other"))
        assert refused.outcome == "invalid_plugin_execution" and "HTTP 401" in refused.message
        assert len(channel.twilio.messages) == 1
    finally:
        tenant.stop()


def test_app_503_raises_invalid_plugin_execution(harness: Path, channel: Channel) -> None:
    channel.twilio.inject("POST", "Messages.json", status=503, body={"code": 20500, "message": "x"}, times=1)
    run = relay(harness, BODY, [(URL_VAR, channel.callback_base + OUTBOUND), (SECRET_VAR, RTJ_SECRET)])
    assert run.outcome == "invalid_plugin_execution" and "HTTP 503" in run.message


def test_wrong_secret_is_refused_by_the_app(harness: Path, channel: Channel) -> None:
    run = relay(harness, BODY, [(URL_VAR, channel.callback_base + OUTBOUND), (SECRET_VAR, "x" * 32)])
    assert run.outcome == "invalid_plugin_execution" and "HTTP 403" in run.message
    assert channel.twilio.messages == []


# --- against the scripted server -----------------------------------------------------------------------
def test_payload_arrives_byte_for_byte_with_the_secret(harness: Path, scripted: Scripted) -> None:
    run = relay(harness, BODY, [(URL_VAR, scripted.url), (SECRET_VAR, RTJ_SECRET)])
    assert run.outcome == "response" and run.response == '{"Status":"Sent"}'
    headers, body = scripted.requests[0]
    assert body == BODY
    assert headers["x-channel-secret"] == RTJ_SECRET and "authorization" not in headers
    assert headers["x-organization-id"] == ORG_ID
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert RTJ_SECRET not in run.trace


def test_entra_mode_attaches_the_bearer_token_only(harness: Path, scripted: Scripted) -> None:
    run = relay(harness, BODY, [(URL_VAR, scripted.url), (SCOPE_VAR, SCOPE)], token_value="eyJ.token.sig")
    assert run.outcome == "response"
    headers, body = scripted.requests[0]
    assert headers["authorization"] == "Bearer eyJ.token.sig" and "x-channel-secret" not in headers
    assert headers["x-organization-id"] == ORG_ID
    assert body == BODY and run.scopes == [SCOPE]
    assert "eyJ.token.sig" not in run.trace


MODES = pytest.mark.parametrize(
    ("variables", "token_value"),
    [([(SECRET_VAR, RTJ_SECRET)], None), ([(SCOPE_VAR, SCOPE)], "eyJ.token.sig")],
    ids=["secret", "entra"],
)


@MODES
def test_the_organization_id_header_is_the_lower_case_guid_in_both_modes(
    harness: Path, scripted: Scripted, variables: list[tuple[str, str]], token_value: str | None
) -> None:
    org = "A7C31B0E-92D4-4F6A-B1E8-0C5D9F2E3A41"  # Guid.Parse of upper case: the header must still be lower case
    run = relay(harness, BODY, [(URL_VAR, scripted.url), *variables], token_value=token_value, organization_id=org)
    assert run.outcome == "response", run.message
    sent = [value for name, value in scripted.header_lines[0] if name.lower() == "x-organization-id"]
    assert sent == ["a7c31b0e-92d4-4f6a-b1e8-0c5d9f2e3a41"]  # exactly one header, exact value
    assert "organization a7c31b0e-92d4-4f6a-b1e8-0c5d9f2e3a41" in run.trace


@MODES
def test_an_empty_organization_id_is_refused_and_nothing_is_sent(
    harness: Path, scripted: Scripted, variables: list[tuple[str, str]], token_value: str | None
) -> None:
    run = relay(
        harness, BODY, [(URL_VAR, scripted.url), *variables], token_value=token_value, organization_id=EMPTY_ORG_ID
    )
    assert run.outcome == "invalid_plugin_execution", (run.outcome, run.message)
    assert run.message.startswith("ChannelRelay: the execution context has no organization id (Guid.Empty)")
    assert "X-Organization-Id" in run.message
    assert scripted.requests == []
    assert run.queries == [] and run.scopes == []  # refused before any lookup or token request


def test_409_raises_invalid_plugin_execution(harness: Path, scripted: Scripted) -> None:
    scripted.status, scripted.answer = 409, b'{"error":"the same request is being sent right now"}'
    run = relay(harness, BODY, [(URL_VAR, scripted.url), (SECRET_VAR, RTJ_SECRET)])
    assert run.outcome == "invalid_plugin_execution"
    assert "HTTP 409" in run.message and "being sent right now" in run.message


def test_a_slow_answer_in_pieces_is_cut_by_one_deadline_under_20_seconds(harness: Path, scripted: Scripted) -> None:
    scripted.dribble_seconds = 0.5  # each piece well inside any per-read timeout; the whole never ends
    run = relay(harness, BODY, [(URL_VAR, scripted.url), (SECRET_VAR, RTJ_SECRET)])
    assert run.outcome == "invalid_plugin_execution" and "deadline" in run.message
    assert 14_000 <= run.elapsed_ms <= 16_000
    assert run.wall_seconds < LIMIT_SECONDS


def test_a_wildcard_lookalike_variable_is_not_picked(harness: Path, scripted: Scripted) -> None:
    variables = [
        ("new_LegacyChannelRelayUrl", "http://127.0.0.1:9/trap"),  # stored first: a suffix lookup would POST here
        (URL_VAR, scripted.url),
        (SECRET_VAR, RTJ_SECRET),
    ]
    run = relay(harness, BODY, variables)
    assert run.outcome == "response", run.message
    assert len(scripted.requests) == 1
    assert all(q.startswith("Equal:") for q in run.queries)


def test_the_default_value_is_used_when_there_is_no_current_value(harness: Path, scripted: Scripted) -> None:
    run = relay(harness, BODY, [(SECRET_VAR, RTJ_SECRET)], extra=["--default", f"{URL_VAR}={scripted.url}"])
    assert run.outcome == "response" and len(scripted.requests) == 1


@pytest.mark.parametrize(
    ("variables", "extra", "message", "expected"),
    [
        ([(URL_VAR, ""), (SECRET_VAR, RTJ_SECRET)], [], MESSAGE, "ChannelRelayUrl is missing or has no value"),
        ([(SECRET_VAR, RTJ_SECRET)], [], MESSAGE, "ChannelRelayUrl is missing"),
        ([(URL_VAR, "htps:/relay"), (SECRET_VAR, RTJ_SECRET)], [], MESSAGE, "is not an https URL"),
        ([(URL_VAR, "not a url"), (SECRET_VAR, RTJ_SECRET)], [], MESSAGE, "is not an https URL"),
        ([(URL_VAR, "http://relay.example.com/x"), (SECRET_VAR, RTJ_SECRET)], [], MESSAGE, "is not an https URL"),
        ([(URL_VAR, "https://relay.invalid/api"), (SECRET_VAR, RTJ_SECRET)], [], MESSAGE, "failed"),
        ([(URL_VAR, "http://127.0.0.1:9/api"), (SECRET_VAR, RTJ_SECRET)], [], MESSAGE, "failed"),
        ([(URL_VAR, "https://x/api")], [], MESSAGE, f"exactly one of the environment variables {SCOPE_VAR}"),
        ([(URL_VAR, "https://x/api"), (SECRET_VAR, "s"), (SCOPE_VAR, SCOPE)], [], MESSAGE, SECRET_VAR),
        (
            [(URL_VAR, "https://x/api"), (SECRET_VAR, "s")],
            ["--type", f"{SECRET_VAR}=100000005"],
            MESSAGE,
            "Secret (Azure Key Vault) variable",
        ),
        (
            [(URL_VAR, "https://x/api"), (SECRET_VAR, "s")],
            ["--extra-value", f"{URL_VAR}=https://y"],
            MESSAGE,
            "has 2 value records",
        ),
        ([(URL_VAR, "https://x/api"), (SECRET_VAR, "s")], [], "ChannelOutbound", "has no publisher prefix"),
        ([(URL_VAR, "https://x/api"), (SECRET_VAR, "s")], ["--no-payload"], MESSAGE, "'payload' is missing"),
        ([(URL_VAR, "https://x/api"), (SCOPE_VAR, SCOPE)], [], MESSAGE, "no managed identity service"),
        (
            [(URL_VAR, "https://x/api"), (SCOPE_VAR, SCOPE)],
            ["--token-error", "AADSTS700016"],
            MESSAGE,
            "could not get a token for scope",
        ),
    ],
    ids=[
        "empty-url",
        "missing-url",
        "mistyped-url",
        "not-a-url",
        "plain-http-remote",
        "dns-failure",
        "connection-refused",
        "neither-mode",
        "both-modes",
        "key-vault-secret-type",
        "two-values",
        "no-prefix",
        "no-payload",
        "no-managed-identity",
        "token-failure",
    ],
)
def test_every_failure_is_an_invalid_plugin_execution_exception(
    harness: Path, variables: list[tuple[str, str]], extra: list[str], message: str, expected: str
) -> None:
    run = relay(harness, BODY, variables, extra=extra, message=message)
    assert run.outcome == "invalid_plugin_execution", (run.outcome, run.message)
    assert expected in run.message
    assert run.message.startswith("ChannelRelay: ")
    assert run.wall_seconds < LIMIT_SECONDS
