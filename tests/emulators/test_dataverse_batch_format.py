"""The emulator's ``$batch`` wire format, directly: parts, change sets, Content-ID, rendering, malformed bodies."""

from __future__ import annotations

import pytest

from devtools.emulators._base import Response
from devtools.emulators.dataverse.batch import BatchPart, boundary_of, parse_batch, render_http_part

BODY = (
    b"--batch_1\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"GET /api/data/v9.2/contacts?$select=firstname HTTP/1.1\r\nAccept: application/json\r\n\r\n"
    b"--batch_1\r\n"
    b"Content-Type: multipart/mixed; boundary=changeset_9\r\n\r\n"
    b"--changeset_9\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
    b'POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{"lastname":"A"}\r\n'
    b"--changeset_9\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n"
    b'PATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{"firstname":"B"}\r\n'
    b"--changeset_9--\r\n"
    b"--batch_1--\r\n"
)


def test_boundary_is_read_quoted_or_not() -> None:
    assert boundary_of('multipart/mixed; boundary="batch_1"') == "batch_1"
    assert boundary_of("multipart/mixed;boundary=batch_2") == "batch_2"
    assert boundary_of("application/json") is None


def test_parts_and_change_sets_are_parsed_in_order() -> None:
    first, changeset = parse_batch(BODY, "batch_1")
    url = "/api/data/v9.2/contacts?$select=firstname"
    assert first == BatchPart("GET", url, {"accept": "application/json"}, b"", None)
    assert isinstance(changeset, list)
    assert [(p.method, p.url, p.content_id, p.body) for p in changeset] == [
        ("POST", "/api/data/v9.2/contacts", "1", b'{"lastname":"A"}'),
        ("PATCH", "$1", "2", b'{"firstname":"B"}'),
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"no boundary here", "boundary 'batch_1' not found"),
        (b"--batch_1\r\nContent-Type: application/http\r\n\r\nGET x HTTP/1.1\r\n", "closing delimiter"),
        (b"--batch_1\r\nContent-Type: application/http\r\n\r\nGARBAGE\r\n--batch_1--\r\n", "bad request line"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_batch(body, "batch_1")


def test_a_response_part_renders_status_headers_and_body() -> None:
    rendered = render_http_part(Response(201, b"{}", [("OData-EntityId", "x")]), "7")
    assert rendered == (
        b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 7\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nOData-EntityId: x\r\n\r\n{}\r\n"
    )
