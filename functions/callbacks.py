"""HTTP trigger for provider callbacks: ``POST /api/callbacks/{provider}``.

``GET`` is only answered for WhatsApp (Meta's webhook subscription handshake); other providers answer 405.

Anonymous at the Functions level on purpose: each provider authenticates its own requests (Twilio signs them
with X-Twilio-Signature, which the provider module checks before reading anything).
"""

from __future__ import annotations

import azure.functions as func

from functions.convert import http_request, http_response

bp = func.Blueprint()


@bp.function_name("callbacks")
@bp.route(route="callbacks/{provider}", methods=["POST", "OPTIONS", "GET"], auth_level=func.AuthLevel.ANONYMOUS)
def callbacks(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import get_service  # lazy: keeps the cold start of function_app small

    provider = req.route_params.get("provider", "")
    return http_response(get_service().handle_callback(provider, http_request(req)))
