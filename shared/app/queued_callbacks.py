"""Use case: a batch of queued callbacks (the callback queue's trigger) → their interactions, reported together.

Each message keeps the real outcome of its events (applied, ignored, unknown, mismatch, unmatched, ...); a message
whose events could not be applied or whose interactions could not be reported is rescheduled, one that can't be
decoded goes to the poison queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.app.callback_codec import decode_events
from shared.app.config import Handled, Outcome
from shared.app.deps import Deps
from shared.app.events import apply_event
from shared.app.outbox import Outbox
from shared.app.settlement import poison, settle
from shared.domain.errors import DataverseError, TransientError
from shared.ports import QueueMessage


def handle_queued_callbacks(deps: Deps, messages: Sequence[QueueMessage]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    contributors: dict[str, list[int]] = {}  # record key → the messages whose events made its items due
    settled: set[int] = set()
    outbox = Outbox(deps)
    for index, message in enumerate(messages):
        try:
            events = decode_events(message.body)
        except (ValueError, KeyError, TypeError) as exc:
            outcomes.append(poison(deps, message, "invalid_queued_callback", f"cannot decode queued callback: {exc}"))
            settled.add(index)
            continue
        results: list[Handled] = []
        failure: Exception | None = None
        for provider_name, event in events:
            try:
                results.append(apply_event(deps, provider_name, event, outbox.hold))
            except (TransientError, DataverseError) as error:
                failure = error
                break
        for result in results:  # what was applied is reported now, even if a later event must be retried
            outbox.add(*result.due)
            for record in result.due:
                contributors.setdefault(record.key, []).append(index)
        if failure is not None:
            outcomes.append(settle(deps, message, failure))  # a throttled org's callbacks are deferred
            settled.add(index)
        else:
            outcomes.append(combined(results))
    for key, report_error in outbox.report().items():
        for index in contributors.get(key, []):
            if index not in settled:
                outcomes[index] = settle(deps, messages[index], report_error)
                settled.add(index)
    return outcomes  # each event logged its own outcome (callback.status, callback.unknown_message, ...)


def combined(results: Sequence[Handled]) -> Outcome:
    """One message's outcome: its event's own outcome, or a summary when a callback carried several."""
    if len(results) == 1:
        return results[0].outcome
    if not results:
        return Outcome("no_events")
    kinds = sorted({r.outcome.result for r in results})
    if len(kinds) == 1:
        return Outcome(kinds[0], detail=f"{len(results)} events")
    return Outcome("+".join(kinds), detail=f"{len(results)} events")
