"""Translation between azure.functions types and the framework-neutral domain types."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from shared.domain.models import HttpReply, InboundHttpRequest
from shared.ports import QueueMessage


def queue_message(msg: func.ServiceBusMessage, queue: str) -> QueueMessage:
    properties: dict[str, Any] = {}
    for source in ("user_properties", "application_properties"):
        value = getattr(msg, source, None)
        if isinstance(value, dict):
            properties.update(value)
    return QueueMessage(
        queue=queue,
        body=msg.get_body(),
        message_id=msg.message_id or "",
        content_type=msg.content_type,
        delivery_count=msg.delivery_count or 1,
        application_properties=properties,
        enqueued_time=getattr(msg, "enqueued_time_utc", None),
    )


def http_request(req: func.HttpRequest) -> InboundHttpRequest:
    parts = urlsplit(req.url)
    return InboundHttpRequest(
        method=req.method,
        path=parts.path,
        query={k: v for k, v in req.params.items()},
        headers={k.lower(): v for k, v in req.headers.items()},
        body=req.get_body() or b"",
        raw_query=parts.query,
    )


def http_response(reply: HttpReply) -> func.HttpResponse:
    return func.HttpResponse(
        body=reply.body,
        status_code=reply.status,
        headers=dict(reply.headers),
        mimetype=reply.content_type,
        charset="utf-8",
    )
