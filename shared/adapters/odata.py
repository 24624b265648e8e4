"""The OData wire format the Dataverse client speaks: ``$batch`` bodies and their per-operation results, the
``Microsoft.Dynamics.CRM.In`` filter, ``Retry-After`` and error payloads.

Pure functions (no I/O), so the encoding and the parsing are tested directly; the client sends and maps back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from shared.log import scrub

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class BatchOperation:
    method: str
    path: str  # relative to WEB_API_PATH
    body: Any = None


@dataclass(frozen=True)
class BatchResult:
    status: int  # 0 when the operation was not executed
    body: Any = None
    code: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status in (0, 429) or self.status in RETRYABLE_STATUS


def build_batch(api_path: str, operations: Sequence[BatchOperation], boundary: str) -> bytes:
    """A ``multipart/mixed`` $batch body: one ``application/http`` part per operation (no change sets)."""
    lines: list[str] = []
    for index, op in enumerate(operations, start=1):
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {index}",
            "",
            f"{op.method} {api_path}/{op.path.lstrip('/')} HTTP/1.1",
        ]
        if op.body is not None:
            lines += ["Content-Type: application/json; type=entry", "", json.dumps(op.body, separators=(",", ":"))]
        else:
            lines += [""]
        lines.append("")
    lines.append(f"--{boundary}--")
    return ("\r\n".join(lines) + "\r\n").encode()


def parse_batch_response(content_type: str, body: bytes) -> list[BatchResult]:
    """Results in request order from a ``batchresponse_…`` body (change-set parts are flattened)."""
    boundary = _boundary_of(content_type)
    if boundary is None:
        raise ValueError("the $batch response has no multipart boundary")
    results: list[BatchResult] = []
    for part in _split_parts(body, boundary):
        head, _, rest = part.partition(b"\r\n\r\n")
        head_text = head.decode("utf-8", "replace").lower()
        if "multipart/mixed" in head_text:
            inner = _boundary_of(head.decode("utf-8", "replace"))
            if inner is not None:
                for sub in _split_parts(rest, inner):
                    results.append(_parse_http_part(sub))
            continue
        results.append(_parse_http_part(part))
    return results


def _boundary_of(content_type: str) -> str | None:
    for piece in content_type.split(";"):
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip().strip('"')
    return None


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(chunk.strip(b"\r\n"))
    return parts


def _parse_http_part(part: bytes) -> BatchResult:
    _, _, http = part.partition(b"\r\n\r\n")  # skip the part's own MIME headers
    status_line, _, rest = http.partition(b"\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        return BatchResult(0, None, "", "unparseable operation response")
    _, _, payload = rest.partition(b"\r\n\r\n")
    payload = payload.strip()
    document: Any = None
    if payload:
        try:
            document = json.loads(payload)
        except ValueError:
            document = None
    if status >= 400:
        error = document.get("error", {}) if isinstance(document, dict) else {}
        return BatchResult(status, document, str(error.get("code", "")), scrub(str(error.get("message", "")))[:500])
    return BatchResult(status, document)


def in_filter(column: str, values: Sequence[str]) -> str:
    quoted = ",".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"Microsoft.Dynamics.CRM.In(PropertyName='{column}',PropertyValues=[{quoted}])"


def retry_after_of(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_of(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), scrub(str(error.get("message", "")))[:500]
    except ValueError:
        return "", scrub(response.text[:200])
