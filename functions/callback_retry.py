"""Service Bus trigger on the callback queue: acknowledged callbacks that Dataverse could not take at once."""

from __future__ import annotations

import azure.functions as func

from functions.convert import queue_message

bp = func.Blueprint()


@bp.function_name("callback_retry")
@bp.service_bus_queue_trigger(arg_name="msg", connection="ServiceBusConnection", queue_name="%CALLBACK_QUEUE_NAME%")
def callback_retry(msg: func.ServiceBusMessage) -> None:
    from shared.bootstrap import get_service  # lazy: keeps the cold start of function_app small

    service = get_service()
    service.handle_queued_callback(queue_message(msg, service.config.callback_queue))
