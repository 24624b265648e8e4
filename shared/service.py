"""The facade the triggers call: one method per trigger, each delegating to its use case in :mod:`shared.app`.

No logic lives here; it only lets ``functions/`` and the local host hold one object (built once per process by
:mod:`shared.bootstrap`). The use cases are plain functions over :class:`shared.app.deps.Deps`.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.app.activity import handle_activity_batch
from shared.app.callbacks import apply_now, handle_callback
from shared.app.config import ChannelConfig, Outcome
from shared.app.deps import Deps
from shared.app.links import follow
from shared.app.queued_callbacks import handle_queued_callbacks
from shared.app.routing import Tenants, route_activity_batch, route_link, route_rtj_outbound
from shared.app.routing_callbacks import apply_event, route_callback, route_queued_callbacks
from shared.app.rtj_outbound import handle_rtj_outbound
from shared.domain.models import HttpReply, InboundHttpRequest, ProviderEvent
from shared.ports import QueueMessage


class ChannelService:
    """``tenants`` (MULTI_ORG, issue #15): every trigger is routed to its org's deps by :mod:`shared.app.routing`;
    ``deps`` are then the deployment's own (queues, state table, the shared provider account)."""

    def __init__(self, deps: Deps, tenants: Tenants | None = None) -> None:
        self.deps = deps
        self.tenants = tenants

    @property
    def config(self) -> ChannelConfig:
        return self.deps.config

    def handle_activity_batch(self, messages: Sequence[QueueMessage]) -> list[Outcome]:
        if self.tenants is not None:
            return route_activity_batch(self.tenants, messages)
        return handle_activity_batch(self.deps, messages)

    def handle_activity_message(self, message: QueueMessage) -> Outcome:
        return self.handle_activity_batch([message])[0]

    def handle_callback(self, provider_name: str, request: InboundHttpRequest) -> HttpReply:
        if self.tenants is not None:
            return route_callback(self.tenants, provider_name, request)
        return handle_callback(self.deps, provider_name, request)

    def handle_queued_callbacks(self, messages: Sequence[QueueMessage]) -> list[Outcome]:
        if self.tenants is not None:
            return route_queued_callbacks(self.tenants, messages)
        return handle_queued_callbacks(self.deps, messages)

    def handle_queued_callback(self, message: QueueMessage) -> Outcome:
        return self.handle_queued_callbacks([message])[0]

    def handle_rtj_outbound(self, request: InboundHttpRequest) -> HttpReply:
        if self.tenants is not None:
            return route_rtj_outbound(self.tenants, request)
        return handle_rtj_outbound(self.deps, request)

    def handle_link(self, code: str, request: InboundHttpRequest) -> HttpReply:
        if self.tenants is not None:
            return route_link(self.tenants, code, request)
        return follow(self.deps, code, request)

    def apply_event(self, provider_name: str, event: ProviderEvent) -> Outcome:
        if self.tenants is not None:
            return apply_event(self.tenants, provider_name, event)
        return apply_now(self.deps, provider_name, event)
