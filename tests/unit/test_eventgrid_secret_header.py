"""#11 defect 10: the Event Grid secret arrives in the ``X-Channel-Secret`` header (a static delivery attribute marked
secret); ``?secret=`` stays accepted for subscriptions made by hand. Missing → 401, wrong → 403."""

from __future__ import annotations

import pytest

from shared.domain.errors import CallbackRejected
from shared.domain.models import InboundHttpRequest
from shared.providers.eventgrid import check_secret

SECRET = "unit-eventgrid-secret-0123456789"


def request(header: str | None = None, query: str | None = None) -> InboundHttpRequest:
    headers = {} if header is None else {"x-channel-secret": header}
    params = {} if query is None else {"secret": query}
    return InboundHttpRequest("POST", "/api/callbacks/acs", params, headers, b"[]", "")


def status(req: InboundHttpRequest, expected: str = SECRET) -> int:
    try:
        check_secret(req, expected)
    except CallbackRejected as refused:
        return refused.status
    return 200


def test_the_header_is_accepted() -> None:
    assert status(request(header=SECRET)) == 200


def test_the_query_parameter_is_still_accepted() -> None:
    assert status(request(query=SECRET)) == 200


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (request(), 401),
        (request(header=""), 401),
        (request(header="wrong-secret-wrong-secret-000"), 403),
        (request(header=SECRET[:-1]), 403),
        (request(header="wrong-secret-wrong-secret-000", query=SECRET), 403),  # the header wins
        (request(header="nön-ascii-sécret"), 403),  # never a TypeError / 500
    ],
)
def test_missing_is_401_wrong_is_403(req: InboundHttpRequest, expected: int) -> None:
    assert status(req) == expected


def test_no_configured_secret_is_503_never_open() -> None:
    assert status(request(header=""), expected="") == 503
    assert status(request(), expected="") == 503
