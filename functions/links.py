"""HTTP trigger for short links (link tracking, issue #16): ``GET|HEAD /api/l/{code}``.

Anonymous on purpose: a contact's phone follows the link. The answer is a 302 to the URL the code was created for
(never to anything taken from the request), or a plain 404 page.
"""

from __future__ import annotations

import azure.functions as func

from functions.convert import http_request, http_response

bp = func.Blueprint()


@bp.function_name("short_link")
@bp.route(route="l/{code}", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
def short_link(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import get_service  # lazy: keeps the cold start of function_app small

    code = req.route_params.get("code", "")
    return http_response(get_service().handle_link(code, http_request(req)))
