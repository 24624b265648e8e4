"""Multi-org routing (``MULTI_ORG=true``, issue #15): each trigger's work goes to its org's use cases.

- An activity message goes to the org named by its ``OrganizationId``; one from an unregistered or disabled org is
  poisoned at once (``unknown_organization``, naming the id) and nothing is sent. The org groups of one batch run
  side by side, so a throttled or unreachable org never holds another's messages.
- A click and a reconciliation order resolve the org from their record; callbacks: :mod:`routing_callbacks`.
- The real-time journeys relay names its org in ``X-Organization-Id``.

Every line logged for an org's work carries ``org_id``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Protocol, TypeVar

from shared.app import activity as activities
from shared.app import callbacks, links, rtj_outbound
from shared.app.config import Outcome
from shared.app.deps import Deps
from shared.app.reconcile_orders import ORG_PROPERTY, is_order
from shared.app.settlement import poison, retry_later
from shared.domain.context import parse_activity_message
from shared.domain.errors import DataverseError, PoisonMessage, TransientError, UnknownOrganization
from shared.domain.links import is_code
from shared.domain.models import HttpReply, InboundHttpRequest
from shared.domain.reconcile import parse_order
from shared.log import log_event, log_scope
from shared.ports import QueueMessage

HOME = ""  # the group of work no org could be resolved for (it never reaches Dataverse: unknown message, ...)
T = TypeVar("T")


class Tenants(Protocol):
    """The registered orgs' deps (built by :mod:`shared.bootstrap_orgs`)."""

    @property
    def home(self) -> Deps:
        """The deployment's own deps: queues, the state table, the deployment's provider account; no Dataverse."""
        ...

    def deps_for(self, org_id: str, *, new_work: bool = True) -> Deps:
        """Raises :class:`UnknownOrganization` (not registered; disabled, for ``new_work``) or ``TransientError``."""
        ...

    def org_for_number(self, number: str) -> str | None:
        """The registered org whose configured sender is ``number`` (None: none, or several)."""
        ...


# --- activities -------------------------------------------------------------------------------------------------
def route_activity_batch(tenants: Tenants, messages: Sequence[QueueMessage]) -> list[Outcome]:
    home = tenants.home
    outcomes: list[Outcome | None] = [None] * len(messages)
    groups: dict[str, list[int]] = {}
    for index, message in enumerate(messages):
        try:
            groups.setdefault(_org_of_activity(home, message), []).append(index)
        except PoisonMessage as bad:  # no organization id, or a message that can never be parsed
            outcomes[index] = poison(home, message, bad.reason, bad.detail)

    def run(org: str, indexes: list[int]) -> list[Outcome]:  # in the org's own thread: its trouble stays its own
        results: dict[int, Outcome] = {}
        try:
            deps, todo = _deps_and_work(tenants, org, indexes, messages, results)
        except PoisonMessage as unknown:  # not registered
            return [poison(home, messages[i], unknown.reason, unknown.detail) for i in indexes]
        except (TransientError, DataverseError) as error:  # the org's row, secrets or token cannot be had now
            return [retry_later(home, messages[i], error) for i in indexes]
        for index, outcome in zip(
            todo, activities.handle_activity_batch(deps, [messages[i] for i in todo]), strict=True
        ):
            results[index] = outcome
        return [results[i] for i in indexes]

    for indexes, results in side_by_side(groups, run):
        for index, outcome in zip(indexes, results, strict=True):
            outcomes[index] = outcome
    return [outcome if outcome is not None else Outcome("unknown") for outcome in outcomes]


def _deps_and_work(
    tenants: Tenants, org: str, indexes: list[int], messages: Sequence[QueueMessage], results: dict[int, Outcome]
) -> tuple[Deps, list[int]]:
    """The org's deps and the messages they take. A disabled org still completes the work it had accepted (a
    reconciliation order, an activity already recorded: its reports); its new activities are poisoned."""
    try:
        return tenants.deps_for(org), indexes
    except UnknownOrganization as unknown:
        if not unknown.disabled:
            raise
        home, todo = tenants.home, []
        for index in indexes:
            try:
                accepted = _accepted(home, messages[index])
            except PoisonMessage as bad:
                results[index] = poison(home, messages[index], bad.reason, bad.detail)
                continue
            if accepted:
                todo.append(index)
            else:
                results[index] = poison(home, messages[index], unknown.reason, unknown.detail)
        return tenants.deps_for(org, new_work=False), todo


def _accepted(home: Deps, message: QueueMessage) -> bool:
    if is_order(message):
        return True
    parsed = parse_activity_message(message.body, message.content_type, message.application_properties)
    return home.records.activities.peek(parsed.row_id) is not None


def _org_of_activity(home: Deps, message: QueueMessage) -> str:
    if is_order(message):  # a reconciliation order carries its record's org (or the record does)
        org = message.application_properties.get(ORG_PROPERTY)
        if not org:
            record = home.records.activities.peek(parse_order(message.body).key)
            org = record.org_id if record is not None else None
        if not org:
            raise UnknownOrganization("", "the reconciliation order's record names no organization")
        return str(org)
    parsed = parse_activity_message(message.body, message.content_type, message.application_properties)
    org = parsed.organization_id or message.application_properties.get(ORG_PROPERTY)  # a trimmed copy of ours: ours
    if not org:
        raise UnknownOrganization("", "the message's RemoteExecutionContext carries no OrganizationId")
    return str(org)


# --- real-time journeys and links ---------------------------------------------------------------------------
def route_rtj_outbound(tenants: Tenants, request: InboundHttpRequest) -> HttpReply:
    org = (request.header("x-organization-id") or "").strip()
    if not org:
        return callbacks.json_error(
            400, "X-Organization-Id header required: with MULTI_ORG=true the relay names its org (update the plug-in)"
        )
    try:
        deps = tenants.deps_for(org)
    except UnknownOrganization as unknown:
        log_event("rtj.unknown_org", reason=unknown.detail)
        return callbacks.json_error(403, f"{unknown.reason}: {unknown.detail}")
    except TransientError:  # what is wrong was logged (org.unusable), never told an unauthenticated caller
        return callbacks.json_error(503, "organization temporarily unavailable")
    with log_scope(org_id=deps.org_id):
        refused = _foreign_sender(tenants, deps, request)
        return refused or rtj_outbound.handle_rtj_outbound(deps, request)


def _foreign_sender(tenants: Tenants, deps: Deps, request: InboundHttpRequest) -> HttpReply | None:
    """Once the relay is authenticated: a ``From`` another org is configured with is never this org's to send from
    (its replies would follow the conversation into this org)."""
    if deps.rtj is None:
        return None
    problem = deps.rtj.authorizer.authorize(request)
    if problem is not None:
        return problem
    try:
        document = json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None  # the use case answers the malformed payload
    sender = document.get("From") if isinstance(document, dict) else None
    owner = tenants.org_for_number(sender) if isinstance(sender, str) and sender else None
    if owner is None or owner == deps.org_id:
        return None
    log_event("rtj.foreign_sender", logging.WARNING, owner=owner)
    return callbacks.json_error(403, "the From number is another organization's sender")


def route_link(tenants: Tenants, code: str, request: InboundHttpRequest) -> HttpReply:
    home = tenants.home
    link = home.records.links.get(code) if is_code(code) else None
    record = home.records.activities.peek(link.activity_key) if link is not None else None
    deps = home
    if record is not None and record.org_id:
        try:
            deps = tenants.deps_for(record.org_id, new_work=False)
        except (UnknownOrganization, TransientError):
            deps = home  # the redirect still works; the click stays due in the record and is retried from the queue
    with log_scope(org_id=deps.org_id):
        return links.follow(deps, code, request)


# --- helpers ----------------------------------------------------------------------------------------------------
def deps_of(tenants: Tenants, org: str) -> Deps:
    """The deps for work already accepted for ``org`` (a disabled org's reports still go to it); HOME: the home's."""
    return tenants.deps_for(org, new_work=False) if org else tenants.home


def side_by_side(
    groups: dict[str, list[int]], run: Callable[[str, list[int]], list[T]]
) -> list[tuple[list[int], list[T]]]:
    """Each org's group in its own thread (one org's throttling or timeouts never hold another's), logged with its
    ``org_id``."""

    def one(org: str, indexes: list[int]) -> tuple[list[int], list[T]]:
        with log_scope(org_id=org or None):
            return indexes, run(org, indexes)

    if len(groups) <= 1:
        return [one(org, indexes) for org, indexes in groups.items()]
    contexts = [copy_context() for _ in groups]
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        futures = [
            pool.submit(ctx.run, one, org, idx) for ctx, (org, idx) in zip(contexts, groups.items(), strict=True)
        ]
        return [future.result() for future in futures]
