"""Everything a use case may touch, built once by the composition root (:mod:`shared.bootstrap`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.adapters.rtj_auth import RtjAuthorizer
from shared.app.config import ChannelConfig, RtjConfig
from shared.domain.links import ActivityLinks, ShortLink
from shared.domain.rtj_state import RtjState
from shared.domain.state import ActivityState
from shared.ports import ChannelsApi, Clock, Dataverse, KeyValueStore, Provider, QueuePublisher
from shared.records.codecs import ACTIVITIES, RTJ_SENDS
from shared.records.indexes import Indexes
from shared.records.link_codecs import ACTIVITY_LINKS, SHORT_LINKS
from shared.records.store import RecordStore


@dataclass(frozen=True)
class Records:
    """The state table: both record types and the indexes, over one key-value store."""

    activities: RecordStore[ActivityState]
    rtj: RecordStore[RtjState]
    indexes: Indexes
    links: RecordStore[ShortLink]  # short codes (link tracking, issue #16)
    activity_links: RecordStore[ActivityLinks]  # an activity's codes by URL

    @classmethod
    def over(
        cls, store: KeyValueStore, now: Callable[[], datetime], org: str | None = None, sender: str | None = None
    ) -> Records:
        activities, rtj = RecordStore(store, ACTIVITIES, now), RecordStore(store, RTJ_SENDS, now)
        links = RecordStore(store, SHORT_LINKS, now, cache_size=0)
        return cls(activities, rtj, Indexes(store, org, sender), links, RecordStore(store, ACTIVITY_LINKS, now))


@dataclass(frozen=True)
class RtjDeps:
    config: RtjConfig
    dataverse: ChannelsApi
    authorizer: RtjAuthorizer  # the relay's credential check: the outbound use case calls it first


@dataclass(frozen=True)
class Deps:
    config: ChannelConfig
    dataverse: Dataverse
    provider: Provider
    records: Records
    queue: QueuePublisher
    clock: Clock
    providers: Mapping[str, Provider] = field(default_factory=dict)  # callbacks by route name; default: provider
    rtj: RtjDeps | None = None  # None: real-time journeys support is not enabled
    org_id: str | None = None  # the registered org these deps serve (MULTI_ORG, issue #15); None: the one org

    def provider_named(self, name: str) -> Provider | None:
        if self.providers:
            return self.providers.get(name)
        return self.provider if name == self.provider.name else None


def build_deps(
    config: ChannelConfig,
    dataverse: Dataverse,
    provider: Provider,
    store: KeyValueStore,
    queue: QueuePublisher,
    clock: Clock,
    *,
    providers: Mapping[str, Provider] | None = None,
    rtj: RtjDeps | None = None,
    org_id: str | None = None,
    sender: str | None = None,
) -> Deps:
    """Wire the use cases' dependencies over one state store (tests, the fault engine and bootstrap use it).
    ``org_id``/``sender``: the registered org these deps serve and the number it sends from (multi-org)."""
    records = Records.over(store, clock.now, org_id, sender)
    return Deps(config, dataverse, provider, records, queue, clock, dict(providers or {}), rtj, org_id)
