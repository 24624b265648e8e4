"""The Azure side: the state table (a probe entity is written, read and deleted) and the three queues (active and
dead-letter counts; a Listen/Send-only connection falls back to a peek)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from cli.common import SdkServiceBus, ServiceBusFactory
from cli.doctor.results import CheckResult, ok, problem
from shared.settings import Settings


def check_state_table(settings: Settings, table_client_factory: Callable[[Settings], Any] | None = None) -> CheckResult:
    name = "state-table"
    partition, row = "doctor-probe", uuid.uuid4().hex
    try:
        from azure.core.exceptions import ResourceExistsError

        table = (table_client_factory or _table_client)(settings)
        with contextlib.suppress(ResourceExistsError):
            table.create_table()
        table.upsert_entity({"PartitionKey": partition, "RowKey": row, "probe": "channel doctor"})
        entity = table.get_entity(partition_key=partition, row_key=row)
        table.delete_entity(partition_key=partition, row_key=row)
        if entity.get("probe") != "channel doctor":
            return problem(name, "the probe entity read back differently", "check the storage account")
    except Exception as exc:  # noqa: BLE001 - any storage failure is the finding
        return problem(
            name,
            f"cannot write/read table {settings.state_table_name}: {exc.__class__.__name__}: {str(exc)[:300]}",
            "check AzureWebJobsStorage (or __tableServiceUri/__accountName) and, identity-based, that the identity "
            "has 'Storage Table Data Contributor' on the account",
        )
    return ok(name, f"table {settings.state_table_name}: probe entity created, read and deleted")


def _table_client(settings: Settings) -> Any:
    from azure.data.tables import TableClient

    if settings.storage_connection:
        return TableClient.from_connection_string(settings.storage_connection, table_name=settings.state_table_name)
    from shared.adapters.tokens import default_credential

    endpoint = settings.storage_table_service_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    credential: Any = default_credential(settings.storage_client_id or settings.azure_client_id)
    return TableClient(endpoint=endpoint.rstrip("/"), table_name=settings.state_table_name, credential=credential)


def check_queues(settings: Settings, servicebus: ServiceBusFactory | None = None) -> list[CheckResult]:
    factory = servicebus or SdkServiceBus(settings)
    queues = [
        ("ACTIVITY_QUEUE_NAME", settings.activity_queue_name),
        ("CALLBACK_QUEUE_NAME", settings.callback_queue_name),
        ("POISON_QUEUE_NAME", settings.poison_queue_name),
    ]
    admin: Any = None
    client: Any = None
    results = []
    try:
        for setting, queue in queues:
            name = f"servicebus:{queue}"
            try:
                if admin is None:
                    admin = factory.admin()
                props = admin.get_queue_runtime_properties(queue)
            except Exception as exc:  # noqa: BLE001 - classified below
                kind = _sb_error_kind(exc)
                if kind == "not_found":
                    results.append(_missing_queue(name, setting, queue))
                    continue
                if kind != "unauthorized":
                    results.append(_sb_unreachable(name, exc))
                    continue
                # Listen/Send-only rules cannot read runtime properties: fall back to a peek.
                try:
                    if client is None:
                        client = factory.client()
                    with client.get_queue_receiver(queue_name=queue, max_wait_time=5) as receiver:
                        receiver.peek_messages(max_message_count=1)
                except Exception as peek_exc:  # noqa: BLE001 - classified below
                    peek_kind = _sb_error_kind(peek_exc)
                    if peek_kind == "not_found":
                        results.append(_missing_queue(name, setting, queue))
                    elif peek_kind == "unauthorized":
                        results.append(
                            problem(
                                name,
                                f"not authorized to read queue {queue}",
                                "give the connection Listen + Send on the queue (identity-based: Azure Service Bus "
                                "Data Receiver + Data Sender roles)",
                            )
                        )
                    else:
                        results.append(_sb_unreachable(name, peek_exc))
                    continue
                results.append(ok(name, "reachable (message counts need a connection with Manage rights)"))
                continue
            detail = (
                f"active {props.active_message_count}, dead-lettered {props.dead_letter_message_count}, "
                f"scheduled {props.scheduled_message_count}"
            )
            waiting = props.active_message_count if queue == settings.poison_queue_name else 0
            if props.dead_letter_message_count or waiting:
                detail += " (inspect with `channel deadletter list`)"
            results.append(ok(name, detail))
    finally:
        for handle in (admin, client):
            if handle is not None:
                handle.close()
    return results


def _sb_error_kind(exc: Exception) -> str:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"ResourceNotFoundError", "MessagingEntityNotFoundError"}:
        return "not_found"
    if names & {"ClientAuthenticationError", "ServiceBusAuthorizationError", "ServiceBusAuthenticationError"}:
        return "unauthorized"
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return "unauthorized"
    if status == 404:
        return "not_found"
    return "other"


def _missing_queue(name: str, setting: str, queue: str) -> CheckResult:
    return problem(
        name,
        f"queue {queue} does not exist in the namespace",
        f"create it (infra/main.bicep creates the three queues) or correct {setting}",
    )


def _sb_unreachable(name: str, exc: Exception) -> CheckResult:
    return problem(
        name,
        f"Service Bus unreachable: {exc.__class__.__name__}: {str(exc)[:300]}",
        "check ServiceBusConnection (or ServiceBusConnection__fullyQualifiedNamespace) and outbound AMQP/HTTPS",
    )
