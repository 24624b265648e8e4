"""Service Bus trigger on the queue Dataverse posts Custom Channel Activity creations to.

Batch trigger (``cardinality="many"``, up to ``extensions.serviceBus.maxMessageBatchSize`` in host.json): one call
reads the batch's contacts together and reports its interactions with ``$batch``. Each message is settled by the
service (poison queue / rescheduled copy); the function raises only if that fails, and then Service Bus redelivers.
"""

from __future__ import annotations

import azure.functions as func

from functions.convert import queue_message

bp = func.Blueprint()


@bp.function_name("activity")
@bp.service_bus_queue_trigger(
    arg_name="msgs",
    connection="ServiceBusConnection",
    queue_name="%ACTIVITY_QUEUE_NAME%",
    cardinality=func.Cardinality.MANY,
)
def activity(msgs: list[func.ServiceBusMessage]) -> None:
    from shared.bootstrap import get_service  # lazy: keeps the cold start of function_app small

    service = get_service()
    service.handle_activity_batch([queue_message(m, service.config.activity_queue) for m in msgs])
