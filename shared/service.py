"""The service layer: one entry point per trigger, each a complete use case.

- :meth:`ChannelService.handle_activity_message`: a Dataverse activity message → one provider send → interactions.
- :meth:`ChannelService.handle_callback`: a provider callback → interactions (durably queued if Dataverse is down).
- :meth:`ChannelService.handle_queued_callback`: a queued callback, retried.

Every failure is classified: poison input goes to the poison queue with a reason after one attempt; transient
failures are rescheduled with exponential backoff; nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any

from shared.domain import template
from shared.domain.context import activity_from_attributes, parse_activity_message
from shared.domain.errors import (
    CallbackRejected,
    DataverseError,
    NotFound,
    PoisonMessage,
    SendFailedTransient,
    SendRejected,
    TransientError,
)
from shared.domain.keywords import classify_reply
from shared.domain.models import (
    ACTIVITY_ENTITY,
    ActivityRef,
    Contact,
    HttpReply,
    InboundEvent,
    InboundHttpRequest,
    Interaction,
    ProviderEvent,
    ResponseType,
    SendRequest,
    StatusEvent,
    StatusKind,
)
from shared.domain.phone import normalize_e164
from shared.domain.rtj import KEY_PREFIX as RTJ_KEY_PREFIX
from shared.domain.state import (
    FINAL_SEND_STATES,
    ActivityState,
    SendStatus,
    add_due,
    interactions_for_status,
)
from shared.log import log_event, mask_phone
from shared.ports import Clock, Dataverse, Provider, QueueMessage, QueuePublisher
from shared.reporting import report_due, report_due_many
from shared.repository import StateRepository
from shared.rtj_service import RtjService

ATTEMPT_PROPERTY = "channel-attempt"
MAX_BACKOFF_SECONDS = 3600.0

ACTIVITY_COLUMNS = [
    "msdyncrm_activityid",
    "_msdyncrm_contact_value",
    "_msdyncrm_customerjourney_value",
    "_msdyncrm_customerjourneyiteration_value",
    "msdyncrm_entitytype",
    "msdyncrm_entityid",
]


@dataclass(frozen=True)
class ChannelConfig:
    provider_name: str
    callback_url: str  # <CALLBACK_BASE_URL>/api/callbacks/<provider>
    message_body_column: str
    contact_phone_column: str
    compliance_column: str
    default_country_code: str | None
    reply_window: timedelta
    opt_out_words: frozenset[str]
    activity_queue: str
    callback_queue: str
    poison_queue: str
    max_attempts: int
    retry_base_seconds: float
    send_lease: timedelta
    send_concurrency: int = 8
    callback_processing: str = "inline"  # "queued": acknowledge at once, report from the callback queue in batches


@dataclass(frozen=True)
class Outcome:
    """What happened to one message, for logs, tests and the local runner."""

    result: str  # sent | failed | suppressed | ambiguous | duplicate | poisoned | retry_scheduled | ...
    row_id: str | None = None
    detail: str | None = None


class ChannelService:
    def __init__(
        self,
        config: ChannelConfig,
        dataverse: Dataverse,
        provider: Provider,
        state: StateRepository,
        queue: QueuePublisher,
        clock: Clock,
        providers: Mapping[str, Provider] | None = None,
        rtj: RtjService | None = None,
    ) -> None:
        self.config = config
        self.dataverse = dataverse
        self.provider = provider
        self.providers = dict(providers or {provider.name: provider})
        self.state = state
        self.queue = queue
        self.clock = clock
        self.rtj = rtj
        self._deferred = threading.local()

    # ================================================================================================
    # Activity messages
    # ================================================================================================
    def handle_activity_message(self, message: QueueMessage) -> Outcome:
        """Process one activity message. Raises only when the message must be redelivered by Service Bus."""
        return self.handle_activity_batch([message])[0]

    def handle_activity_batch(self, messages: Sequence[QueueMessage]) -> list[Outcome]:
        """Process a batch of activity messages (the trigger's ``cardinality="many"``), one outcome each.

        Contacts are read with one ``Microsoft.Dynamics.CRM.In`` query per chunk, sends run with bounded
        concurrency, and the resulting interactions are reported with ``$batch``. Every message is settled on its
        own: poison → poison queue, transient → rescheduled; this raises only if even that fails (then Service Bus
        redelivers the batch, and the state records make the redelivery harmless).
        """
        outcomes: list[Outcome | None] = [None] * len(messages)
        work: dict[str, tuple[int, ActivityRef]] = {}
        for index, message in enumerate(messages):
            try:
                parsed = parse_activity_message(message.body, message.content_type, message.application_properties)
                activity = parsed.activity or self._read_activity(parsed.row_id)
            except PoisonMessage as poison:
                self._poison(message, poison.reason, poison.detail)
                outcomes[index] = Outcome("poisoned", detail=poison.reason)
                continue
            except (TransientError, DataverseError) as error:
                outcomes[index] = self._retry_later(message, error)
                continue
            if activity.row_id in work:  # the same activity twice in one batch: process it once
                outcomes[index] = Outcome("duplicate", activity.row_id, "in batch")
                continue
            work[activity.row_id] = (index, activity)

        contacts = self._prefetch_contacts([activity for _, activity in work.values()])
        deferred: dict[str, list[ActivityState]] = {}

        def run(item: tuple[int, ActivityRef]) -> tuple[int, Outcome | Exception]:
            index, activity = item
            self._deferred.states = deferred.setdefault(activity.row_id, [])
            try:
                return index, self.process_activity(activity, contacts)
            except (PoisonMessage, TransientError, DataverseError) as error:
                return index, error
            finally:
                self._deferred.states = None

        items = list(work.values())
        if len(items) > 1 and self.config.send_concurrency > 1:
            with ThreadPoolExecutor(max_workers=min(self.config.send_concurrency, len(items))) as pool:
                results = list(pool.map(run, items))
        else:
            results = [run(item) for item in items]

        by_row = {activity.row_id: index for index, activity in items}
        to_flush = [states[-1] for states in deferred.values() if states]
        flush_errors = self.flush_many(to_flush)
        for index, result in results:
            if isinstance(result, Outcome):
                outcomes[index] = result
        for row_id, failure in flush_errors.items():
            index = by_row[row_id]
            outcomes[index] = self._settle_error(messages[index], failure)
        for index, result in results:
            if isinstance(result, Exception):
                outcomes[index] = self._settle_error(messages[index], result)
        return [o if o is not None else Outcome("unknown") for o in outcomes]

    def _settle_error(self, message: QueueMessage, error: Exception) -> Outcome:
        if isinstance(error, PoisonMessage):
            self._poison(message, error.reason, error.detail)
            return Outcome("poisoned", detail=error.reason)
        return self._retry_later(message, error)

    def _prefetch_contacts(self, activities: Sequence[ActivityRef]) -> dict[str, dict[str, Any]] | None:
        """Read the contacts of a batch with one In query per chunk (None: let each activity read its own)."""
        if len(activities) < 2:
            return None  # a single activity reads its contact directly
        select: dict[str, None] = dict.fromkeys([self.config.contact_phone_column, self.config.compliance_column])
        for activity in activities:
            try:
                row = self.dataverse.get_row(
                    activity.entity_type, activity.entity_id, [self.config.message_body_column], cache=True
                )
            except (DataverseError, TransientError):
                return None  # each activity will meet (and settle) the error on its own
            select.update(dict.fromkeys(template.contact_columns(str(row.get(self.config.message_body_column) or ""))))
        try:
            rows = self.dataverse.get_rows_in(
                "contact", "contactid", [a.contact_id for a in activities], list(select), formatted=True
            )
        except (DataverseError, TransientError):
            return None
        return rows

    def _read_activity(self, row_id: str) -> ActivityRef:
        """The message was trimmed (> 192 KB, ``MessageMaxSizeExceeded``): read the row through the Web API."""
        log_event("activity.trimmed", activity_row=row_id)
        try:
            row = self.dataverse.get_row(ACTIVITY_ENTITY, row_id, ACTIVITY_COLUMNS)
        except NotFound:
            raise PoisonMessage("activity_not_found", f"activity row {row_id} does not exist any more") from None
        attributes = {
            "msdyncrm_activityid": row.get("msdyncrm_activityid"),
            "msdyncrm_contact": row.get("_msdyncrm_contact_value"),
            "msdyncrm_customerjourney": row.get("_msdyncrm_customerjourney_value"),
            "msdyncrm_customerjourneyiteration": row.get("_msdyncrm_customerjourneyiteration_value"),
            "msdyncrm_entitytype": row.get("msdyncrm_entitytype"),
            "msdyncrm_entityid": row.get("msdyncrm_entityid"),
        }
        return activity_from_attributes(row_id, attributes)

    def process_activity(self, activity: ActivityRef, contacts: Mapping[str, dict[str, Any]] | None = None) -> Outcome:
        state = self.state.get_or_create(activity)
        ids = _ids(activity)
        if state.send_status in FINAL_SEND_STATES:
            log_event("activity.duplicate", send_status=state.send_status.value, **ids)
            self.flush(state)
            return Outcome("duplicate", activity.row_id, state.send_status.value)
        if state.send_status is SendStatus.SENDING:
            now = self.clock.now()
            if state.lease_until and state.lease_until > now:
                wait = (state.lease_until - now).total_seconds()
                raise TransientError("another worker is sending this activity", retry_after=wait)
            state = self._mark_ambiguous(state, "worker stopped after calling the provider (lease expired)")
            return Outcome("ambiguous", activity.row_id, state.last_error)

        text, contact = self._load_message_and_contact(activity, contacts)
        if contact.opted_out:
            self.state.mutate(
                activity.row_id,
                lambda s: (
                    replace(s, send_status=SendStatus.SUPPRESSED) if s.send_status is SendStatus.CLAIMED else None
                ),
            )
            log_event("activity.suppressed", reason="compliance", column=self.config.compliance_column, **ids)
            return Outcome("suppressed", activity.row_id)
        phone = normalize_e164(contact.phone, self.config.default_country_code)
        if phone is None:
            reason = "no phone number" if not contact.phone else "phone number is not E.164-normalisable"
            return self._fail_without_send(activity, reason, mask_phone(contact.phone))
        if not text.strip():
            return self._fail_without_send(activity, "message text is empty after personalisation", mask_phone(phone))
        return self._send(state, phone, text)

    def _load_message_and_contact(
        self, activity: ActivityRef, contacts: Mapping[str, dict[str, Any]] | None = None
    ) -> tuple[str, Contact]:
        body_column = self.config.message_body_column
        try:
            message_row = self.dataverse.get_row(activity.entity_type, activity.entity_id, [body_column], cache=True)
        except NotFound:
            raise PoisonMessage(
                "message_not_found", f"message row {activity.entity_id} of {activity.entity_type} does not exist"
            ) from None
        except DataverseError as error:
            if error.status == 400:
                raise PoisonMessage(
                    "message_column_invalid",
                    f"cannot read MESSAGE_BODY_COLUMN '{body_column}' from {activity.entity_type}: {error.message}",
                ) from None
            raise
        raw_text = message_row.get(body_column) or ""
        if not isinstance(raw_text, str):
            raise PoisonMessage("message_column_invalid", f"MESSAGE_BODY_COLUMN '{body_column}' is not a text column")
        columns = template.contact_columns(raw_text)
        select = list(dict.fromkeys([self.config.contact_phone_column, self.config.compliance_column, *columns]))
        try:
            if contacts is not None:
                prefetched = contacts.get(activity.contact_id.lower())
                if prefetched is None:
                    raise NotFound(404, "0x80040217", f"contact With Id = {activity.contact_id} Does Not Exist", "read")
                row = prefetched
            else:
                row = self.dataverse.get_row("contact", activity.contact_id, select, formatted=True)
        except NotFound:
            raise PoisonMessage("contact_not_found", f"contact {activity.contact_id} does not exist") from None
        except DataverseError as error:
            if error.status == 400:
                raise PoisonMessage("contact_column_invalid", f"cannot read contact columns: {error.message}") from None
            raise
        values = {c: _display(row, c) for c in columns}
        contact = Contact(
            contact_id=activity.contact_id,
            phone=_as_text(row.get(self.config.contact_phone_column)),
            opted_out=row.get(self.config.compliance_column) is True,
            values=values,
        )
        if template.unknown_placeholders(raw_text):
            log_event(
                "template.unknown_placeholders",
                logging.WARNING,
                count=template.unknown_placeholders(raw_text),
                **_ids(activity),
            )
        return template.render(raw_text, values), contact

    def _fail_without_send(self, activity: ActivityRef, reason: str, phone_masked: str) -> Outcome:
        def change(s: ActivityState) -> ActivityState | None:
            if s.send_status is not SendStatus.CLAIMED:
                return None
            return add_due(
                replace(s, send_status=SendStatus.FAILED, last_error=reason, phone_masked=phone_masked),
                Interaction(ResponseType.FAILED),
            )

        state = self.state.mutate(activity.row_id, change)
        log_event("activity.not_sent", logging.WARNING, reason=reason, phone=phone_masked, **_ids(activity))
        self.flush(state)
        return Outcome("failed", activity.row_id, reason)

    def _send(self, state: ActivityState, phone: str, text: str) -> Outcome:
        activity = state.activity
        ids = _ids(activity)
        lease_until = self.clock.now() + self.config.send_lease

        def claim(s: ActivityState) -> ActivityState | None:
            if s.send_status is not SendStatus.CLAIMED:
                return None
            return replace(
                s,
                send_status=SendStatus.SENDING,
                lease_until=lease_until,
                provider=self.provider.name,
                phone_masked=mask_phone(phone),
                send_attempts=s.send_attempts + 1,
            )

        state = self.state.mutate(activity.row_id, claim)
        if state.send_status is not SendStatus.SENDING or state.lease_until != lease_until:
            return self.process_activity(activity)  # somebody else moved it on; re-evaluate from the record
        # Index the number before the provider can deliver the text: a reply (a STOP above all) must find this
        # activity even if the worker dies between the provider accepting and our state write.
        self.state.index_phone(phone, activity.row_id, self.clock.now())

        request = SendRequest(
            to=phone,
            body=text,
            activity_row_id=activity.row_id,
            status_callback_url=f"{self.config.callback_url}?activity={activity.row_id}",
            idempotency_key=activity.row_id,
        )
        log_event(
            "provider.send", provider=self.provider.name, phone=mask_phone(phone), attempt=state.send_attempts, **ids
        )
        try:
            result = self.provider.send(request)
        except SendRejected as rejected:
            reason = f"{rejected.code} {rejected.detail}"
            state = self.state.mutate(
                activity.row_id,
                lambda s: add_due(
                    replace(s, send_status=SendStatus.FAILED, lease_until=None, last_error=reason),
                    Interaction(ResponseType.FAILED),
                ),
            )
            log_event("provider.rejected", logging.WARNING, code=rejected.code, reason=rejected.detail, **ids)
            if rejected.opted_out:
                self._set_opted_out(activity, "provider reports the recipient opted out")
            self.flush(state)
            return Outcome("failed", activity.row_id, rejected.detail)
        except SendFailedTransient as transient:
            if transient.retry_safe:
                detail = transient.detail
                self.state.mutate(
                    activity.row_id,
                    lambda s: (
                        replace(s, send_status=SendStatus.CLAIMED, lease_until=None, last_error=detail)
                        if s.send_status is SendStatus.SENDING
                        else None
                    ),
                )
                log_event("provider.transient", logging.WARNING, reason=transient.detail, **ids)
                raise
            state = self._mark_ambiguous(state, transient.detail)
            return Outcome("ambiguous", activity.row_id, transient.detail)

        def accepted(s: ActivityState) -> ActivityState:
            moved = replace(
                s,
                send_status=SendStatus.SENT,
                lease_until=None,
                provider=self.provider.name,
                provider_message_id=s.provider_message_id or result.provider_message_id,
                last_error=None,
            )
            return add_due(moved, Interaction(ResponseType.SENT))

        state = self.state.mutate(activity.row_id, accepted)
        log_event("provider.accepted", provider_message_id=result.provider_message_id, status=result.status, **ids)
        self.state.index_message(self.provider.name, result.provider_message_id, activity.row_id)
        self.flush(state)
        return Outcome("sent", activity.row_id, result.provider_message_id)

    def _mark_ambiguous(self, state: ActivityState, reason: str) -> ActivityState:
        """No duplicate SMS is the priority: an uncertain send is never repeated. A later delivery report for
        it (it carries the activity id) still resolves it to sent/delivered."""
        state = self.state.mutate(
            state.row_id,
            lambda s: (
                replace(s, send_status=SendStatus.AMBIGUOUS, lease_until=None, last_error=reason)
                if s.send_status is SendStatus.SENDING
                else None
            ),
        )
        log_event(
            "activity.ambiguous",
            logging.ERROR,
            reason=reason,
            send_status=state.send_status.value,
            **_ids(state.activity),
        )
        return state

    # ================================================================================================
    # Interactions
    # ================================================================================================
    def flush(self, state: ActivityState) -> ActivityState:
        """Report every due interaction to Dataverse, in order, each once (see :func:`report_due`).

        A send and its delivery callback often race: the lease in the record keeps them from both reporting
        ``sent``; the loser defers (TransientError) instead of stranding what is due. Inside a batch the state is
        collected instead, and the batch reports all of them together (:meth:`flush_many`).
        """
        deferred = getattr(self._deferred, "states", None)
        if deferred is not None:
            deferred.append(state)
            return state

        def report(s: ActivityState, key: str) -> None:
            self.dataverse.create_interaction(s.activity, Interaction.from_key(key))

        def reported(s: ActivityState, key: str) -> None:
            interaction = Interaction.from_key(key)
            log_event(
                "interaction.recorded",
                response_type=interaction.response_type.value,
                keyword=interaction.keyword,
                provider_message_id=s.provider_message_id,
                **_ids(s.activity),
            )

        return report_due(state, lambda change: self.state.mutate(state.row_id, change), report, self.clock, reported)

    def flush_many(self, states: Sequence[ActivityState]) -> dict[str, Exception]:
        """Report the due interactions of many activities with ``$batch``; the errors, by activity row id."""
        pending = [s for s in states if s.due]
        if not pending:
            return {}

        def mutate_for(row_id: str) -> Callable[[Callable[[ActivityState], ActivityState | None]], ActivityState]:
            return lambda change: self.state.mutate(row_id, change)

        def report_many(items: Sequence[tuple[ActivityState, str]]) -> list[Exception | None]:
            calls = [(s.activity, Interaction.from_key(key)) for s, key in items]
            return self.dataverse.create_interactions(calls)

        def reported(s: ActivityState, key: str) -> None:
            interaction = Interaction.from_key(key)
            log_event(
                "interaction.recorded",
                response_type=interaction.response_type.value,
                keyword=interaction.keyword,
                provider_message_id=s.provider_message_id,
                **_ids(s.activity),
            )

        _, errors = report_due_many([(s, mutate_for(s.row_id)) for s in pending], report_many, self.clock, reported)
        return {s.row_id: e for s, e in zip(pending, errors, strict=True) if e is not None}

    def _set_opted_out(self, activity: ActivityRef, reason: str) -> None:
        self.dataverse.update_row("contact", activity.contact_id, {self.config.compliance_column: True})
        log_event("contact.opted_out", reason=reason, column=self.config.compliance_column, **_ids(activity))

    # ================================================================================================
    # Callbacks
    # ================================================================================================
    def handle_callback(self, provider_name: str, request: InboundHttpRequest) -> HttpReply:
        """Authenticate, parse and apply one provider callback. Returns the reply for the provider.

        A 2xx is only returned once every event is either applied or durably queued.
        """
        provider = self.providers.get(provider_name)
        if provider is None:
            return _json_reply(404, f"unknown provider '{provider_name[:40]}'")
        try:
            callback = provider.handle_callback(request)
        except CallbackRejected as rejected:
            log_event(
                "callback.rejected",
                logging.WARNING,
                provider=provider_name,
                status=rejected.status,
                reason=rejected.detail,
            )
            return _json_reply(rejected.status, rejected.detail)
        if self.config.callback_processing == "queued" and callback.events:
            # Acknowledge at once; the callback queue's batch trigger reports them together ($batch).
            self.queue.publish(
                self.config.callback_queue,
                encode_events(provider_name, callback.events),
                content_type="application/json",
                application_properties={ATTEMPT_PROPERTY: 1},
            )
            return callback.reply
        for event in callback.events:
            try:
                self.apply_event(provider_name, event)
            except (TransientError, DataverseError) as error:
                self._queue_event(provider_name, event, str(error))
        return callback.reply

    def handle_queued_callback(self, message: QueueMessage) -> Outcome:
        return self.handle_queued_callbacks([message])[0]

    def handle_queued_callbacks(self, messages: Sequence[QueueMessage]) -> list[Outcome]:
        """Apply queued callbacks in a batch; the interactions they make due are reported together."""
        outcomes: list[Outcome] = [Outcome("applied")] * len(messages)
        contributors: dict[str, list[int]] = {}
        latest: dict[str, ActivityState] = {}
        failed: set[int] = set()
        collected: list[ActivityState] = []
        self._deferred.states = collected
        try:
            for index, message in enumerate(messages):
                try:
                    events = decode_events(message.body)
                except (ValueError, KeyError, TypeError) as exc:
                    self._poison(message, "invalid_queued_callback", f"cannot decode queued callback: {exc}")
                    outcomes[index] = Outcome("poisoned")
                    failed.add(index)
                    continue
                try:
                    for provider_name, event in events:
                        before = len(collected)
                        self.apply_event(provider_name, event)
                        for state in collected[before:]:
                            contributors.setdefault(state.row_id, []).append(index)
                            latest[state.row_id] = state
                except (TransientError, DataverseError) as error:
                    outcomes[index] = self._retry_later(message, error)
                    failed.add(index)
        finally:
            self._deferred.states = None
        for row_id, failure in self.flush_many(list(latest.values())).items():
            for index in contributors.get(row_id, []):
                if index not in failed:
                    outcomes[index] = self._retry_later(messages[index], failure)
                    failed.add(index)
        return outcomes

    def apply_event(self, provider_name: str, event: ProviderEvent) -> Outcome:
        if isinstance(event, StatusEvent):
            return self._apply_status(provider_name, event)
        return self._apply_inbound(provider_name, event)

    def handle_rtj_outbound(self, request: InboundHttpRequest) -> HttpReply:
        """Real-time journeys outbound custom API, relayed by the plug-in (see docs/real-time-journeys.md)."""
        if self.rtj is None:
            return _json_reply(404, "real-time journeys support is not enabled")
        return self.rtj.handle_outbound(request)

    def _apply_status(self, provider_name: str, event: StatusEvent) -> Outcome:
        row_id = event.activity_hint or self.state.find_by_message(provider_name, event.provider_message_id)
        if row_id and row_id.startswith(RTJ_KEY_PREFIX) and self.rtj is not None:
            # the record says which contract the report belongs to: a real-time journeys send
            return Outcome(self.rtj.apply_status(provider_name, event, row_id).result, row_id)
        state = self.state.get(row_id) if row_id else None
        if state is None:
            log_event(
                "callback.unknown_message",
                provider=provider_name,
                provider_message_id=event.provider_message_id,
                status=event.raw_status,
            )
            return Outcome("unknown")
        ids = _ids(state.activity)
        if state.provider_message_id and state.provider_message_id != event.provider_message_id:
            log_event(
                "callback.mismatch",
                logging.WARNING,
                provider_message_id=event.provider_message_id,
                expected=state.provider_message_id,
                **ids,
            )
            return Outcome("mismatch", state.row_id)
        if event.kind is StatusKind.IGNORED:
            log_event(
                "callback.status_ignored", status=event.raw_status, provider_message_id=event.provider_message_id, **ids
            )
            return Outcome("ignored", state.row_id)

        def change(s: ActivityState) -> ActivityState | None:
            original = s
            if s.send_status in (SendStatus.SUPPRESSED, SendStatus.FAILED) and not s.provider_message_id:
                return None  # we never sent this one: a report for it is bogus
            if s.send_status in (SendStatus.SENDING, SendStatus.AMBIGUOUS, SendStatus.CLAIMED):
                # The provider evidently has the message: an uncertain send resolves to "sent".
                s = add_due(
                    replace(
                        s,
                        send_status=SendStatus.SENT,
                        lease_until=None,
                        provider=provider_name,
                        provider_message_id=event.provider_message_id,
                    ),
                    Interaction(ResponseType.SENT),
                )
            s = add_due(s, *interactions_for_status(s, event.kind))
            return None if s == original else s

        state = self.state.mutate(state.row_id, change)
        log_event(
            "callback.status",
            status=event.raw_status,
            error_code=event.error_code,
            detail=event.detail,
            provider_message_id=event.provider_message_id,
            **ids,
        )
        if state.provider_message_id:
            self.state.index_message(provider_name, state.provider_message_id, state.row_id)
        self.flush(state)
        return Outcome("applied", state.row_id)

    def _apply_inbound(self, provider_name: str, event: InboundEvent) -> Outcome:
        # A reply to a real-time journeys sender goes to msdyn_D365ChannelsInbound; one to a recent
        # outbound-marketing send becomes a keyword interaction. A number serving both contracts gets both.
        rtj = self.rtj.apply_inbound(provider_name, event) if self.rtj is not None else None
        sender = event.sender.split(":", 1)[1] if event.sender.startswith("whatsapp:") else event.sender
        phone = normalize_e164(sender, self.config.default_country_code) or sender
        found = self.state.find_by_phone(phone)
        if found is None or self.clock.now() - found[1] > self.config.reply_window:
            if rtj is not None:
                return Outcome(rtj.result)
            log_event("reply.unmatched", phone=mask_phone(phone), provider_message_id=event.provider_message_id)
            return Outcome("unmatched")
        state = self.state.get(found[0])
        if state is None:
            return Outcome("unmatched")
        ids = _ids(state.activity)
        reply = classify_reply(event.text, self.config.opt_out_words)
        if reply.opt_out:
            self._set_opted_out(state.activity, "contact replied with an opt-out word")
        if not reply.keyword:
            log_event("reply.empty", provider_message_id=event.provider_message_id, **ids)
            return Outcome("empty", state.row_id)
        keyword = Interaction(ResponseType.KEYWORD, reply.keyword)
        state = self.state.mutate(state.row_id, lambda s: add_due(s, keyword) if not s.seen(keyword.key) else None)
        log_event("reply.matched", opt_out=reply.opt_out, provider_message_id=event.provider_message_id, **ids)
        self.flush(state)
        return Outcome("applied", state.row_id, reply.keyword)

    def _queue_event(self, provider_name: str, event: ProviderEvent, reason: str) -> None:
        """Dataverse cannot take it now: keep the acknowledged callback on the callback queue (or fail the
        request so the provider retries, if even Service Bus is unavailable)."""
        self.queue.publish(
            self.config.callback_queue,
            encode_event(provider_name, event),
            content_type="application/json",
            application_properties={ATTEMPT_PROPERTY: 1},
        )
        log_event(
            "callback.queued",
            logging.WARNING,
            reason=reason,
            provider=provider_name,
            provider_message_id=event.provider_message_id,
        )

    # ================================================================================================
    # Poison and retries
    # ================================================================================================
    def _poison(self, message: QueueMessage, reason: str, detail: str) -> None:
        properties = {
            **dict(message.application_properties),
            "DeadLetterReason": reason,
            "DeadLetterErrorDescription": detail[:1000],
            "channel-source-queue": message.queue,
            "channel-original-message-id": message.message_id,
        }
        self.queue.publish(
            self.config.poison_queue,
            message.body,
            content_type=message.content_type,
            application_properties=properties,
            message_id=message.message_id or None,
        )
        log_event(
            "message.poisoned",
            logging.ERROR,
            queue=message.queue,
            message_id=message.message_id,
            reason=reason,
            detail=detail,
        )

    def _retry_later(self, message: QueueMessage, error: Exception) -> Outcome:
        attempt = _attempt(message)
        detail = str(error)
        if attempt >= self.config.max_attempts:
            self._poison(message, "retries_exhausted", f"gave up after {attempt} attempts: {detail}")
            return Outcome("poisoned", detail="retries_exhausted")
        retry_after = getattr(error, "retry_after", None)
        delay = min(self.config.retry_base_seconds * (2 ** (attempt - 1)), MAX_BACKOFF_SECONDS)
        if retry_after:
            delay = max(delay, float(retry_after))
        when = self.clock.now() + timedelta(seconds=delay)
        self.queue.publish(
            message.queue,
            message.body,
            content_type=message.content_type,
            application_properties={**dict(message.application_properties), ATTEMPT_PROPERTY: attempt + 1},
            message_id=f"{message.message_id}:retry{attempt}"[:128] if message.message_id else None,
            scheduled_at=when,
        )
        log_event(
            "message.retry_scheduled",
            logging.WARNING,
            queue=message.queue,
            message_id=message.message_id,
            attempt=attempt,
            delay_seconds=round(delay, 1),
            reason=detail[:300],
        )
        return Outcome("retry_scheduled", detail=detail)


# ---------------------------------------------------------------------------------------------------
def _ids(activity: ActivityRef) -> dict[str, str]:
    return {"activity_row": activity.row_id, "activity_id": activity.activity_id, "journey_id": activity.journey_id}


def _attempt(message: QueueMessage) -> int:
    try:
        return max(1, int(message.application_properties.get(ATTEMPT_PROPERTY, 1)))
    except (TypeError, ValueError, OverflowError):
        return 1


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _display(row: Mapping[str, Any], column: str) -> str:
    formatted = row.get(f"{column}@OData.Community.Display.V1.FormattedValue")
    if formatted is not None:
        return str(formatted)
    value = row.get(column)
    return "" if value is None else str(value)


def _json_reply(status: int, error: str) -> HttpReply:
    return HttpReply(status, json.dumps({"error": error}).encode(), "application/json")


def encode_event(provider_name: str, event: ProviderEvent) -> bytes:
    kind = "status" if isinstance(event, StatusEvent) else "inbound"
    data = asdict(event)
    if isinstance(event, StatusEvent):
        data["kind"] = event.kind.value
    return json.dumps({"provider": provider_name, "type": kind, "event": data}).encode()


def decode_event(body: bytes) -> tuple[str, ProviderEvent]:
    document = json.loads(body)
    return str(document["provider"]), _event_from(document)


def _event_from(document: Mapping[str, Any]) -> ProviderEvent:
    data = dict(document["event"])
    if document["type"] == "status":
        data["kind"] = StatusKind(data["kind"])
        return StatusEvent(**data)
    if document["type"] == "inbound":
        return InboundEvent(**data)
    raise ValueError(f"unknown queued callback type {document['type']!r}")


def encode_events(provider_name: str, events: Sequence[ProviderEvent]) -> bytes:
    """All events of one callback in one queue message."""
    items = [json.loads(encode_event(provider_name, e)) for e in events]
    return json.dumps(
        {"provider": provider_name, "events": [{"type": i["type"], "event": i["event"]} for i in items]}
    ).encode()


def decode_events(body: bytes) -> list[tuple[str, ProviderEvent]]:
    """Either format: one event (inline fallback) or all events of a callback (queued mode)."""
    document = json.loads(body)
    provider = str(document["provider"])
    if "events" in document:
        return [(provider, _event_from(item)) for item in document["events"]]
    return [(provider, _event_from(document))]
