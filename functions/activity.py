"""Service Bus trigger on the queue Dataverse posts Custom Channel Activity creations to."""

from __future__ import annotations

import azure.functions as func

from functions.convert import queue_message

bp = func.Blueprint()


@bp.function_name("activity")
@bp.service_bus_queue_trigger(arg_name="msg", connection="ServiceBusConnection", queue_name="%ACTIVITY_QUEUE_NAME%")
def activity(msg: func.ServiceBusMessage) -> None:
    from shared.bootstrap import get_service  # lazy: keeps the cold start of function_app small

    service = get_service()
    service.handle_activity_message(queue_message(msg, service.config.activity_queue))
