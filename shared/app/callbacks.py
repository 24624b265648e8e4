"""Use case: one provider callback over HTTP (``POST /api/callbacks/{provider}``) → the reply for the provider.

The provider module authenticates and parses (a forged request is refused before anything is read). Then either
``queued`` (the default): every event goes onto the callback queue in one message and the callback is acknowledged
at once; or ``inline``: the events are applied and their interactions reported now, and only what Dataverse can't
take is queued. A 2xx is only returned once every event is applied or durably queued.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from shared.app.callback_codec import encode_events
from shared.app.config import Handled, Outcome
from shared.app.deps import Deps
from shared.app.events import apply_event
from shared.app.outbox import Outbox
from shared.app.reconcile_orders import ORG_PROPERTY
from shared.app.settlement import ATTEMPT_PROPERTY
from shared.domain.errors import CallbackRejected, DataverseError, TransientError
from shared.domain.models import HttpReply, InboundHttpRequest, ProviderCallback, ProviderEvent
from shared.domain.whatsapp import HANDSHAKE_PROVIDERS
from shared.log import log_event


def json_error(status: int, error: str) -> HttpReply:
    return HttpReply(status, json.dumps({"error": error}).encode(), "application/json")


def handle_callback(deps: Deps, provider_name: str, request: InboundHttpRequest) -> HttpReply:
    callback = verify(deps, provider_name, request)
    if isinstance(callback, HttpReply):
        return callback
    if not callback.events:
        return callback.reply
    if deps.config.callback_processing == "queued":
        enqueue(deps, provider_name, callback.events)  # the callback queue's batch trigger reports them together
        return callback.reply
    apply_inline(deps, provider_name, callback.events)
    return callback.reply


def verify(deps: Deps, provider_name: str, request: InboundHttpRequest) -> ProviderCallback | HttpReply:
    """The provider's authenticated, parsed callback, or the reply refusing it (nothing unauthenticated is read)."""
    provider = deps.provider_named(provider_name)
    if provider is None:
        return json_error(404, f"unknown provider '{provider_name[:40]}'")
    if request.method.upper() == "GET" and provider_name not in HANDSHAKE_PROVIDERS:  # issue #17: Meta's handshake
        return HttpReply(405, b'{"error": "callbacks are POST requests"}', "application/json", {"Allow": "POST"})
    try:
        return provider.handle_callback(request)
    except CallbackRejected as rejected:
        log_event(
            "callback.rejected", logging.WARNING, provider=provider_name, status=rejected.status, reason=rejected.detail
        )
        return json_error(rejected.status, rejected.detail)


def apply_inline(deps: Deps, provider_name: str, events: Sequence[ProviderEvent]) -> None:
    """Apply and report now (``CALLBACK_PROCESSING=inline``); what Dataverse can't take now goes on the queue."""
    outbox = Outbox(deps)
    applied: list[tuple[ProviderEvent, Handled]] = []
    for event in events:
        try:
            result = apply_event(deps, provider_name, event, outbox.hold)
        except (TransientError, DataverseError) as error:
            enqueue(deps, provider_name, [event], reason=str(error))
            continue
        outbox.add(*result.due)
        applied.append((event, result))
    failures = outbox.report()
    for event, result in applied:
        failure = next((failures[r.key] for r in result.due if r.key in failures), None)
        if failure is not None:
            enqueue(deps, provider_name, [event], reason=str(failure))


def enqueue(
    deps: Deps,
    provider_name: str,
    events: Sequence[ProviderEvent],
    *,
    reason: str | None = None,
    org_id: str | None = None,
) -> None:
    """Put acknowledged events on the callback queue (if even Service Bus is unavailable this raises, the request
    fails and the provider retries). ``reason``: why an inline callback could not be reported now. ``org_id``: the
    org they belong to when known (multi-org: the callback URL's ``org``, or the deps' own org)."""
    org = org_id or deps.org_id
    deps.queue.publish(
        deps.config.callback_queue,
        encode_events(provider_name, events),
        content_type="application/json",
        application_properties={ATTEMPT_PROPERTY: 1, **({ORG_PROPERTY: org} if org else {})},
    )
    if reason is not None:
        for event in events:
            log_event(
                "callback.queued",
                logging.WARNING,
                reason=reason,
                provider=provider_name,
                provider_message_id=event.provider_message_id,
            )


def apply_now(deps: Deps, provider_name: str, event: ProviderEvent) -> Outcome:
    """One event applied and its items reported at once (a batch of one); raises what stopped the report."""
    outbox = Outbox(deps)
    result = apply_event(deps, provider_name, event, outbox.hold)
    outbox.add(*result.due)
    failures = outbox.report()
    for record in result.due:
        if record.key in failures:
            raise failures[record.key]
    return result.outcome
