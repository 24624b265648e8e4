"""Service Bus trigger on the callback queue: acknowledged callbacks, reported in batches (``$batch``).

With ``CALLBACK_PROCESSING=queued`` (the default) every callback lands here; with ``inline`` only those Dataverse
could not take at once.
"""

from __future__ import annotations

import azure.functions as func

from functions.convert import queue_message

bp = func.Blueprint()


@bp.function_name("callback_retry")
@bp.service_bus_queue_trigger(
    arg_name="msgs",
    connection="ServiceBusConnection",
    queue_name="%CALLBACK_QUEUE_NAME%",
    cardinality=func.Cardinality.MANY,
)
def callback_retry(msgs: list[func.ServiceBusMessage]) -> None:
    from shared.bootstrap import get_service  # lazy: keeps the cold start of function_app small

    service = get_service()
    service.handle_queued_callbacks([queue_message(m, service.config.callback_queue) for m in msgs])
