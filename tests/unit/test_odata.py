"""$batch encode/parse and the other OData wire helpers, directly (the emulator tests cover them over HTTP)."""

from __future__ import annotations

import json

import pytest

from shared.adapters.odata import BatchOperation, BatchResult, build_batch, in_filter, parse_batch_response
from shared.urls import WEB_API_PATH

CRLF = "\r\n"


def test_build_batch_writes_one_http_part_per_operation() -> None:
    ops = [BatchOperation("POST", "/msdyncrm_Action", {"A": 1}), BatchOperation("GET", "contacts(1)")]
    text = build_batch(WEB_API_PATH, ops, "batch_x").decode()
    parts = text.split("--batch_x")
    assert parts[0] == "" and parts[-1] == "--" + CRLF and len(parts) == 4
    first, second = parts[1], parts[2]
    assert "Content-Type: application/http" in first and "Content-ID: 1" in first
    assert f"POST {WEB_API_PATH}/msdyncrm_Action HTTP/1.1" in first
    assert first.rstrip().endswith(json.dumps({"A": 1}, separators=(",", ":")))
    assert f"GET {WEB_API_PATH}/contacts(1) HTTP/1.1" in second and "type=entry" not in second


def _response(*parts: str, boundary: str = "batchresponse_1") -> tuple[str, bytes]:
    body = "".join(f"--{boundary}{CRLF}{part}{CRLF}" for part in parts) + f"--{boundary}--{CRLF}"
    return f"multipart/mixed; boundary={boundary}", body.encode()


def _http(status: str, payload: str = "") -> str:
    head = f"Content-Type: application/http{CRLF}Content-Transfer-Encoding: binary{CRLF}{CRLF}HTTP/1.1 {status}"
    return head + (f"{CRLF}Content-Type: application/json{CRLF}{CRLF}{payload}" if payload else f"{CRLF}{CRLF}")


def test_parse_batch_response_maps_results_in_order_with_errors_and_change_sets() -> None:
    error = json.dumps({"error": {"code": "0x80040217", "message": "contact +447700900123 does not exist"}})
    inner_type, inner_body = _response(_http("204 No Content"), boundary="changesetresponse_2")
    change_set = f"Content-Type: {inner_type}{CRLF}{CRLF}{inner_body.decode()}"
    content_type, body = _response(
        _http("200 OK", '{"ok":true}'), _http("404 Not Found", error), change_set, _http("429 Too Many Requests")
    )
    results = parse_batch_response(content_type, body)
    assert [r.status for r in results] == [200, 404, 204, 429]
    assert results[0].ok and results[0].body == {"ok": True}
    assert results[1].code == "0x80040217" and "447700900123" not in results[1].message  # scrubbed
    assert not results[1].retryable and results[3].retryable and BatchResult(0).retryable


def test_parse_batch_response_refuses_a_body_without_boundary_and_marks_garbage_unexecuted() -> None:
    with pytest.raises(ValueError, match="boundary"):
        parse_batch_response("application/json", b"{}")
    content_type, body = _response(f"Content-Type: application/http{CRLF}{CRLF}not http at all")
    [result] = parse_batch_response(content_type, body)
    assert result.status == 0 and result.retryable


def test_in_filter_quotes_every_value() -> None:
    assert in_filter("contactid", ["a", "o'b"]) == (
        "Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['a','o''b'])"
    )
