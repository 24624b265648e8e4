"""HTTP trigger for real-time journeys: ``POST /api/rtj/outbound``, called by the relay plug-in.

Anonymous at the Functions level: the request must carry the relay's Entra ID token (RTJ_AUTH_MODE=entra) or
``X-Channel-Secret`` (RTJ_AUTH_MODE=secret), checked by the use case's authorizer before the body is read.
"""

from __future__ import annotations

import azure.functions as func

from functions.convert import http_request, http_response

bp = func.Blueprint()


@bp.function_name("rtj_outbound")
@bp.route(route="rtj/outbound", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def rtj_outbound(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import get_service  # lazy: keeps the cold start of function_app small

    return http_response(get_service().handle_rtj_outbound(http_request(req)))
