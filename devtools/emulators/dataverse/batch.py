"""``$batch``: the multipart wire format (parse / render) and its execution (change sets are atomic, ``Content-ID``
references, ``Prefer: odata.continue-on-error``, faults injected per part)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from devtools.emulators._base import DropConnection, Incoming, Response
from devtools.emulators.dataverse import errors

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

MAX_BATCH_URL_LENGTH = 65_536
MAX_BATCH_OPERATIONS = 1_000


@dataclass
class BatchPart:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None


# ---------------------------------------------------------------------------------------------------- wire format
def boundary_of(content_type: str) -> str | None:
    m = re.search(r"boundary=(\"?)([^\";]+)\1", content_type, re.IGNORECASE)
    return m.group(2).strip() if m else None


def _split_multipart(body: bytes, boundary: str) -> list[bytes]:
    delim = b"--" + boundary.encode()
    segments = body.split(delim)
    if len(segments) < 2:
        raise ValueError(f"boundary '{boundary}' not found")
    parts: list[bytes] = []
    closed = False
    for raw in segments[1:]:
        if raw.startswith(b"--"):
            closed = True
            break
        seg = raw.removeprefix(b"\r\n") if raw.startswith(b"\r\n") else raw.removeprefix(b"\n")
        seg = seg.removesuffix(b"\r\n") if seg.endswith(b"\r\n") else seg.removesuffix(b"\n")
        parts.append(seg)
    if not closed:
        raise ValueError(f"closing delimiter '--{boundary}--' missing")
    return parts


def _split_head(blob: bytes) -> tuple[dict[str, str], bytes]:
    m = re.search(rb"\r?\n\r?\n", blob)
    head, rest = (blob, b"") if m is None else (blob[: m.start()], blob[m.end() :])
    headers: dict[str, str] = {}
    for line in re.split(rb"\r?\n", head):
        if not line.strip():
            continue
        name, sep, value = line.decode("utf-8").partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers, rest


def _parse_http_part(blob: bytes) -> BatchPart:
    mime_headers, rest = _split_head(blob)
    rest = rest.lstrip(b"\r\n")
    m = re.match(rb"([^\r\n]*)\r?\n?", rest)
    request_line = m.group(1).decode("utf-8").strip() if m else ""
    after = rest[m.end() :] if m else b""
    bits = request_line.split()
    if len(bits) < 2:
        raise ValueError(f"bad request line {request_line[:80]!r}")
    method, url = bits[0].upper(), bits[1]
    if re.match(rb"\r?\n", after):
        headers: dict[str, str] = {}
        body = re.sub(rb"^\r?\n", b"", after)
    else:
        headers, body = _split_head(after)
    return BatchPart(method, url, headers, body.strip(), mime_headers.get("content-id"))


def parse_batch(body: bytes, boundary: str) -> list[BatchPart | list[BatchPart]]:
    items: list[BatchPart | list[BatchPart]] = []
    for part in _split_multipart(body, boundary):
        mime_headers, rest = _split_head(part)
        if mime_headers.get("content-type", "").lower().startswith("multipart/mixed"):
            cs_boundary = boundary_of(mime_headers["content-type"])
            if cs_boundary is None:
                raise ValueError("change set without boundary")
            items.append([_parse_http_part(p) for p in _split_multipart(rest, cs_boundary)])
        else:
            items.append(_parse_http_part(part))
    return items


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def render_http_part(response: Response, content_id: str | None) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {_phrase(response.status)}"]
    lines += [f"{k}: {v}" for k, v in response.headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + response.body + b"\r\n"


# ---------------------------------------------------------------------------------------------------- execution
def execute_batch(emu: DataverseEmulator, request: Incoming) -> Response:
    ctype = request.header("content-type")
    boundary = boundary_of(ctype)
    if not ctype.lower().startswith("multipart/mixed") or boundary is None:
        return emu.error_response(
            400, errors.ODATA, "A $batch request must have Content-Type multipart/mixed with a boundary."
        )
    try:
        items = parse_batch(request.body, boundary)
    except ValueError as exc:
        return emu.error_response(400, errors.ODATA, f"The batch request body is malformed: {exc}")
    total = sum(len(item) if isinstance(item, list) else 1 for item in items)
    if total > MAX_BATCH_OPERATIONS:
        return emu.error_response(
            400,
            errors.ODATA,
            f"The number of requests in the batch ({total}) exceeds the maximum of {MAX_BATCH_OPERATIONS}.",
        )
    prefer = request.header("prefer").lower()
    continue_on_error = "odata.continue-on-error" in prefer and "continue-on-error=false" not in prefer
    out_boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for item in items:
        if isinstance(item, list):
            failed, rendered = _run_changeset(emu, item)
            chunks.append(rendered)
        else:
            response = _run_part(emu, item, {})
            failed = response.status >= 400
            chunks.append(render_http_part(response, None))
        if failed and not continue_on_error:
            break
    body = b"".join(b"--" + out_boundary.encode() + b"\r\n" + c for c in chunks)
    body += b"--" + out_boundary.encode() + b"--\r\n"
    headers = [*emu.base_headers(), ("Content-Type", f"multipart/mixed; boundary={out_boundary}")]
    if continue_on_error:
        headers.append(("Preference-Applied", "odata.continue-on-error"))
    return Response(200, body, headers)


def _snapshot(emu: DataverseEmulator) -> tuple[Any, int, int, int]:
    return emu.store.snapshot(), len(emu.interactions), len(emu.notifications), len(emu.inbound)


def _restore(emu: DataverseEmulator, snapshot: tuple[Any, int, int, int]) -> None:
    data, n_int, n_not, n_in = snapshot
    emu.store.restore(data)
    del emu.interactions[n_int:]
    del emu.notifications[n_not:]
    del emu.inbound[n_in:]


def _run_changeset(emu: DataverseEmulator, parts: list[BatchPart]) -> tuple[bool, bytes]:
    snapshot = _snapshot(emu)
    refs: dict[str, str] = {}
    results: list[tuple[BatchPart, Response]] = []
    for part in parts:
        if part.method == "GET":
            response = emu.error_response(400, errors.ODATA, "GET requests are not allowed inside a change set.")
        else:
            response = _run_part(emu, part, refs)
        if response.status >= 400:
            _restore(emu, snapshot)
            return True, render_http_part(response, part.content_id)
        results.append((part, response))
        entity_id = response.header("OData-EntityId")
        if part.content_id and entity_id:
            refs[part.content_id] = entity_id
    cs_boundary = f"changesetresponse_{uuid.uuid4()}"
    inner = b"".join(
        b"--" + cs_boundary.encode() + b"\r\n" + render_http_part(resp, part.content_id) for part, resp in results
    )
    inner += b"--" + cs_boundary.encode() + b"--\r\n"
    head = f"Content-Type: multipart/mixed; boundary={cs_boundary}\r\n\r\n".encode()
    return False, head + inner + b"\r\n"


def _run_part(emu: DataverseEmulator, part: BatchPart, refs: dict[str, str]) -> Response:
    from devtools.emulators.dataverse.server import API_PATH_RE, API_PREFIX

    url = part.url
    ref = re.match(r"^\$(\w+)(.*)$", url)
    if ref and ref.group(1) in refs:
        url = refs[ref.group(1)] + ref.group(2)
    split = urlsplit(url)
    path = split.path
    if not path.startswith("/"):
        path = API_PREFIX + path
    target = path + ("?" + split.query if split.query else "")
    if len(target) > MAX_BATCH_URL_LENGTH:
        return emu.error_response(414, errors.BAD_URI, "The request URL inside the batch exceeds 65,536 characters.")
    fault = emu._take_fault(part.method, target)
    if fault is not None:
        response = emu._fault_response(fault)
        if response.drop:
            raise DropConnection()
        emu.operation_count += 1
        return response
    m = API_PATH_RE.match(path)
    if not m:
        emu.operation_count += 1
        return emu.error_response(404, errors.BAD_URI, f"Resource not found for the segment '{path}'.")
    resource = unquote(m.group("rest"))
    json_ctype = part.headers.get("content-type", "").lower().startswith("application/json")
    if part.body.strip() and part.method in ("POST", "PATCH", "PUT") and not json_ctype:
        emu.operation_count += 1
        return emu.error_response(
            415, errors.ODATA, "Operations with a body inside a $batch need 'Content-Type: application/json'."
        )
    if resource == "$batch":
        emu.operation_count += 1
        return emu.error_response(400, errors.ODATA, "Nested $batch requests are not supported.")
    return emu.run_operation(part.method, resource, split.query, part.headers, part.body, in_batch=True)
