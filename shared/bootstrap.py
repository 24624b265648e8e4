"""Composition root: builds the service and its adapters from :class:`Settings`, once per process.

Triggers call :func:`get_service`. Tests and local runners build their own with :func:`build_service` and
install it with :func:`install`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from shared.adapters.dataverse import DataverseClient
from shared.adapters.http import new_session
from shared.adapters.pacing import Pacer
from shared.adapters.rtj_auth import RtjAuthorizer, SecretAuthorizer, UnavailableAuthorizer
from shared.adapters.secret_gate import UnavailableQueue, gate
from shared.adapters.shared_rate import SharedRate, SharedRateProvider, SharedRates
from shared.adapters.timezones import DataverseTimeZones
from shared.adapters.tokens import dataverse_tokens, default_credential
from shared.app.config import ChannelConfig, RtjConfig
from shared.app.deps import Deps, RtjDeps, build_deps
from shared.app.policy import SendingPolicy
from shared.bootstrap_orgs import Infra, build_tenants
from shared.domain.links import LinkConfig
from shared.ports import KeyValueStore, Provider, QueuePublisher
from shared.service import ChannelService
from shared.settings import Settings, get_settings

Accepts = Callable[[str], bool]


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def channel_config(settings: Settings) -> ChannelConfig:
    return ChannelConfig(
        provider_name=settings.channel_provider,
        callback_url=settings.callback_url(settings.channel_provider),
        message_body_column=settings.message_body_column,
        contact_phone_column=settings.contact_phone_column,
        compliance_column=settings.compliance_column,
        default_country_code=settings.default_country_code,
        reply_window=timedelta(days=settings.reply_window_days),
        opt_out_words=settings.opt_out_word_set,
        activity_queue=settings.activity_queue_name,
        callback_queue=settings.callback_queue_name,
        poison_queue=settings.poison_queue_name,
        max_attempts=settings.send_retry_max_attempts,
        retry_base_seconds=settings.send_retry_base_seconds,
        send_lease=timedelta(seconds=settings.send_lease_seconds),
        send_concurrency=settings.send_concurrency,
        callback_processing=settings.callback_processing,
        links=link_config(settings),
        template_columns=settings.template_columns,
        reconcile_after=timedelta(seconds=settings.reconcile_after_seconds),
    )


def link_config(settings: Settings) -> LinkConfig | None:
    """Link tracking (issue #16) when ``LINK_TRACKING`` is on; outbound marketing only."""
    if not settings.link_tracking:
        return None
    return LinkConfig(settings.short_link_base(settings.callback_base_url), settings.link_ttl)


def _default_sender(settings: Settings) -> str | None:
    """The sender a send without its own leaves from: the key of its shared send rate."""
    if settings.channel_provider == "whatsapp":
        return settings.whatsapp_phone_number_id  # the Cloud API sends every message from it, whatever From says
    return settings.twilio_messaging_service_sid or settings.twilio_from or settings.acs_from


def sending_policy(settings: Settings, dataverse: DataverseClient, rates: SharedRates | None) -> SendingPolicy:
    """Quiet hours, the contact's zone (codes through timezonedefinitions, cached), segments, the shared rate."""
    return SendingPolicy(
        quiet_window=settings.quiet_window,
        default_zone=ZoneInfo(settings.quiet_hours_timezone),
        timezone_column=settings.contact_timezone_column,
        standard_name_of=DataverseTimeZones(dataverse),
        max_segments=settings.sms_max_segments,
        gsm_normalize=settings.sms_gsm_normalize,
        whatsapp=settings.is_whatsapp,
        rate_check=_spent_until(rates.for_sender(None)) if rates is not None else None,
    )


def _spent_until(rate: SharedRate) -> Callable[[], datetime | None]:
    def spent_until() -> datetime | None:
        over = rate.check()
        return None if over is None else over.until

    return spent_until


def build_provider(
    settings: Settings,
    session: requests.Session,
    credential: Any = None,
    also_accept: Callable[[str], bool] | None = None,
) -> Provider:
    """The configured provider (behind a :class:`SecretGate` when its secret is an unresolved Key Vault reference).
    ``also_accept``: multi-org, the registered orgs' Cloud API number ids whose webhooks the deployment's app gets."""
    return gate(_provider(settings, session, credential, also_accept), settings.unresolved_secrets)


def _provider(
    settings: Settings,
    session: requests.Session,
    credential: Any = None,
    also_accept: Callable[[str], bool] | None = None,
) -> Provider:
    """The configured provider. ``credential`` is the app's token credential (ACS without an access key)."""
    callback_url = settings.callback_url(settings.channel_provider)
    if settings.channel_provider == "twilio":
        from shared.providers.twilio import TwilioProvider

        return TwilioProvider(
            account_sid=str(settings.twilio_account_sid),
            auth_token=settings.twilio_auth_token or "",
            sender=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_base_url=settings.twilio_api_base_url,
            callback_url=callback_url,
            session=session,
            timeout=settings.provider_timeout_seconds,
            opt_out_payloads=settings.opt_out_payload_set,
        )
    if settings.channel_provider == "loopback":
        from shared.providers.loopback import LoopbackProvider

        return LoopbackProvider(
            base_url=str(settings.loopback_provider_url),
            key=settings.loopback_signing_key or "",
            callback_url=callback_url,
            session=session,
            timeout=settings.provider_timeout_seconds,
        )
    if settings.channel_provider == "acs":
        from shared.providers.acs import AcsProvider

        if not settings.acs_access_key:
            credential = credential or default_credential(settings.azure_client_id)
        return AcsProvider(
            endpoint=str(settings.acs_endpoint),
            sender=str(settings.acs_from),
            eventgrid_secret=settings.acs_eventgrid_secret or "",
            access_key=settings.acs_access_key,
            credential=None if settings.acs_access_key else credential,
            session=session,
            timeout=settings.provider_timeout_seconds,
        )
    if settings.channel_provider == "whatsapp":  # Meta's WhatsApp Cloud API (issue #17)
        from shared.providers.whatsapp import WhatsAppProvider

        return WhatsAppProvider(
            phone_number_id=str(settings.whatsapp_phone_number_id),
            access_token=settings.whatsapp_access_token or "",
            app_secret=settings.whatsapp_app_secret or "",
            verify_token=settings.whatsapp_verify_token or "",
            api_base_url=settings.whatsapp_api_base_url,
            session=session,
            opt_out_payloads=settings.opt_out_payload_set,
            timeout=settings.provider_timeout_seconds,
            also_accept=also_accept,
        )
    raise ValueError(f"unsupported provider {settings.channel_provider}")  # settings validation prevents this


def build_authorizer(settings: Settings, session: requests.Session) -> RtjAuthorizer:
    """The authorizer for ``RTJ_AUTH_MODE``; 503 for every call while its settings are missing or unresolved."""
    if settings.rtj_auth_mode == "secret" and settings.is_unresolved("RTJ_OUTBOUND_SECRET"):
        return UnavailableAuthorizer(["RTJ_OUTBOUND_SECRET"], "holds an unresolved Key Vault reference")
    missing = settings.rtj_auth_missing
    if missing:
        return UnavailableAuthorizer(missing, f"not set (RTJ_AUTH_MODE={settings.rtj_auth_mode})")
    if settings.rtj_auth_mode == "secret":
        return SecretAuthorizer(settings.rtj_outbound_secret)
    from shared.adapters.entra_auth import EntraAuthorizer, TenantSigningKeys

    tenant = str(settings.rtj_token_tenant_id)
    return EntraAuthorizer(
        audience=str(settings.rtj_token_audience),
        tenant_id=tenant,
        client_id=str(settings.rtj_token_client_id),
        keys=TenantSigningKeys(authority=settings.rtj_token_authority, tenant_id=tenant, session=session),
        authority=settings.rtj_token_authority,
    )


def build_dataverse(
    settings: Settings, tokens: Any, session: requests.Session, hold_limit: float | None = None
) -> DataverseClient:
    """One org's Dataverse client: its own token source, caches and service-protection pacing budget.
    ``hold_limit``: the longest throttling wait held in the worker (multi-org); a longer one defers the work."""
    return DataverseClient(
        settings.dataverse_url,
        tokens,
        session=session,
        timeout=settings.dataverse_timeout_seconds,
        max_retries=settings.dataverse_max_retries,
        signature=settings.interaction_action_signature,
        pacer=Pacer(
            settings.dataverse_max_concurrency,
            settings.dataverse_request_budget or None,
            settings.dataverse_budget_window_seconds,
            hold_limit=hold_limit,
        ),
        batch_size=settings.dataverse_batch_size,
    )


def assemble_deps(
    settings: Settings,
    dataverse: DataverseClient,
    infra: Infra,
    *,
    org_id: str | None = None,
    callback_query: str = "",
    also_accept: Callable[[str], bool] | None = None,
) -> Deps:
    """The use cases' dependencies for one org's effective settings (the only org, or a registered one).

    ``callback_query``: appended to the status callback URLs of its sends (``?org=<id>`` for an org that verifies
    its callbacks with its own provider credentials).
    """
    provider = build_provider(settings, infra.session, infra.credential, also_accept)
    rates = None
    if settings.provider_max_per_second:  # one budget per sender in the state table, shared by every instance
        rates = SharedRates(
            infra.store,
            provider.name,
            _default_sender(settings),
            settings.provider_max_per_second,
            one_sender=settings.channel_provider == "whatsapp",
        )
        provider = SharedRateProvider(provider, rates)
    callback_url = settings.callback_url(settings.channel_provider) + callback_query
    config = replace(
        channel_config(settings), callback_url=callback_url, policy=sending_policy(settings, dataverse, rates)
    )
    rtj = RtjDeps(
        RtjConfig(
            callback_url=callback_url,
            default_country_code=settings.default_country_code,
            send_lease=timedelta(seconds=settings.send_lease_seconds),
        ),
        dataverse,
        build_authorizer(settings, infra.session),
    )
    sender = _default_sender(settings) if org_id else None  # its conversations route replies (multi-org)
    return build_deps(
        config, dataverse, provider, infra.store, infra.queue, infra.clock, rtj=rtj, org_id=org_id, sender=sender
    )


def build_service(
    settings: Settings,
    *,
    store: KeyValueStore | None = None,
    queue: QueuePublisher | None = None,
    credential: Any = None,
    session: requests.Session | None = None,
) -> ChannelService:
    session = session or new_session()
    store = store if store is not None else _state_store(settings, credential)
    queue = queue if queue is not None else _publisher(settings, credential)
    infra = Infra(session, credential, store, queue, SystemClock())
    if settings.multi_org:  # issue #15: every org from the registry (docs/multi-org.md)
        tenants = build_tenants(settings, infra, assemble_deps, build_dataverse)
        return ChannelService(tenants.home, tenants)
    tokens = dataverse_tokens(
        settings.dataverse_url,
        static_token=settings.dataverse_static_token,
        client_id=settings.azure_client_id,
        credential=credential,
    )
    return ChannelService(assemble_deps(settings, build_dataverse(settings, tokens, session), infra))


def _state_store(settings: Settings, credential: Any) -> KeyValueStore:
    from shared.adapters.table_store import TableStore

    storage_credential = None
    if not settings.storage_connection:
        client_id = settings.storage_client_id or settings.azure_client_id
        storage_credential = credential or default_credential(client_id)
    return TableStore.from_settings(
        table_name=settings.state_table_name,
        connection_string=settings.storage_connection,
        table_service_uri=settings.storage_table_service_uri,
        account_name=settings.storage_account_name,
        credential=storage_credential,
    )


def _publisher(settings: Settings, credential: Any) -> QueuePublisher:
    if settings.is_unresolved("ServiceBusConnection") and not settings.service_bus_namespace:
        return UnavailableQueue("ServiceBusConnection")
    from shared.adapters.servicebus import ServiceBusPublisher

    sb_credential = None
    if not settings.service_bus_connection:
        sb_credential = credential or default_credential(settings.service_bus_client_id or settings.azure_client_id)
    return ServiceBusPublisher.from_settings(
        connection_string=settings.service_bus_connection,
        namespace=settings.service_bus_namespace,
        credential=sb_credential,
    )


_service: ChannelService | None = None
_lock = threading.Lock()


def get_service() -> ChannelService:
    """The process-wide service (settings validated, one credential, one session), built on first use."""
    global _service  # noqa: PLW0603 - the composition root owns this one singleton
    if _service is None:
        with _lock:
            if _service is None:
                _service = build_service(get_settings())
    return _service


def install(service: ChannelService | None) -> None:
    """Replace the process-wide service (tests, local runner); ``None`` resets it."""
    global _service  # noqa: PLW0603
    with _lock:
        _service = service
