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
from shared.app.rtj_outbound import handle_rtj_outbound
from shared.domain.models import HttpReply, InboundHttpRequest, ProviderEvent
from shared.ports import QueueMessage


class ChannelService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @property
    def config(self) -> ChannelConfig:
        return self.deps.config

    def handle_activity_batch(self, messages: Sequence[QueueMessage]) -> list[Outcome]:
        return handle_activity_batch(self.deps, messages)

    def handle_activity_message(self, message: QueueMessage) -> Outcome:
        return handle_activity_batch(self.deps, [message])[0]

    def handle_callback(self, provider_name: str, request: InboundHttpRequest) -> HttpReply:
        return handle_callback(self.deps, provider_name, request)

    def handle_queued_callbacks(self, messages: Sequence[QueueMessage]) -> list[Outcome]:
        return handle_queued_callbacks(self.deps, messages)

    def handle_queued_callback(self, message: QueueMessage) -> Outcome:
        return handle_queued_callbacks(self.deps, [message])[0]

    def handle_rtj_outbound(self, request: InboundHttpRequest) -> HttpReply:
        return handle_rtj_outbound(self.deps, request)

    def handle_link(self, code: str, request: InboundHttpRequest) -> HttpReply:
        return follow(self.deps, code, request)

    def apply_event(self, provider_name: str, event: ProviderEvent) -> Outcome:
        return apply_now(self.deps, provider_name, event)
