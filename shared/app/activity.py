"""Use case: a batch of activity messages (the Service Bus trigger's ``cardinality="many"``), one outcome each.

Parse every message (poison → poison queue, transient → rescheduled), read the batch's contacts with one ``In``
query per chunk, process each activity (:func:`shared.app.send_activity.process_activity`, bounded concurrency),
then report every interaction that became due through one outbox (``$batch``). Each message is settled on its own;
this raises only if even settling fails (Service Bus then redelivers and the state records make that harmless).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context

from shared.app import reconcile, reconcile_orders
from shared.app.config import Handled, Outcome
from shared.app.deps import Deps
from shared.app.message import Contacts, prefetch_contacts, read_activity
from shared.app.outbox import Outbox
from shared.app.send_activity import process_activity
from shared.app.settlement import poison, retry_later, settle
from shared.domain.context import parse_activity_message
from shared.domain.errors import DataverseError, PoisonMessage, TransientError
from shared.domain.models import ActivityRef
from shared.ports import QueueMessage

Work = tuple[int, ActivityRef]  # (index of the message in the batch, its activity)


def handle_activity_batch(deps: Deps, messages: Sequence[QueueMessage]) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(messages)
    work: dict[str, Work] = {}
    orders: list[int] = []
    for index, message in enumerate(messages):
        if reconcile_orders.is_order(message):  # issue #13: a reconciliation order, settled like any activity message
            orders.append(index)
            continue
        try:
            parsed = parse_activity_message(message.body, message.content_type, message.application_properties)
            activity = parsed.activity or read_activity(deps, parsed.row_id)
        except PoisonMessage as bad:
            outcomes[index] = poison(deps, message, bad.reason, bad.detail)
            continue
        except (TransientError, DataverseError) as error:
            outcomes[index] = retry_later(deps, message, error)
            continue
        if activity.row_id in work:  # the same activity twice in one batch: process it once
            outcomes[index] = Outcome("duplicate", activity.row_id, "in batch")
            continue
        work[activity.row_id] = (index, activity)

    items = list(work.values())
    contacts = prefetch_contacts(deps, [activity for _, activity in items])
    # reconciliation orders first: a replaying provider (ACS) must be asked inside its window
    results = [_reconcile(deps, i, messages[i]) for i in orders] + _process_all(deps, items, contacts)
    outbox = Outbox(deps)
    outbox.collect(result for _, result in results if isinstance(result, Handled))
    failures = outbox.report()

    for index, result in results:
        outcomes[index] = result.outcome if isinstance(result, Handled) else settle(deps, messages[index], result)
    for index, activity in items:
        failure = failures.get(activity.row_id)
        if failure is not None:  # its interactions could not be reported: the message comes back later
            outcomes[index] = settle(deps, messages[index], failure)
    for index, result in results:  # a reconciliation order whose record's items could not be reported
        row = result.outcome.row_id if isinstance(result, Handled) and index in orders else None
        if row is not None and row in failures and row not in work:
            outcomes[index] = settle(deps, messages[index], failures[row])
    return [outcome if outcome is not None else Outcome("unknown") for outcome in outcomes]


def _reconcile(deps: Deps, index: int, message: QueueMessage) -> tuple[int, Handled | Exception]:
    try:
        return index, reconcile.handle_order(deps, message)
    except (PoisonMessage, TransientError, DataverseError) as error:
        return index, error


def _process_all(deps: Deps, items: list[Work], contacts: Contacts | None) -> list[tuple[int, Handled | Exception]]:
    def run(item: Work) -> tuple[int, Handled | Exception]:
        index, activity = item
        try:
            return index, process_activity(deps, activity, contacts)
        except (PoisonMessage, TransientError, DataverseError) as error:
            return index, error

    concurrency = min(deps.config.send_concurrency, len(items))
    if concurrency > 1:
        contexts = [copy_context() for _ in items]  # each thread logs with the caller's fields (org_id)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(lambda ctx, item: ctx.run(run, item), contexts, items))
    return [run(item) for item in items]
