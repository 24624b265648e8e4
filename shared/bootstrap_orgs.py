"""Composition root of a multi-org deployment (``MULTI_ORG=true``, issue #15): each registered org's deps.

An org's deps are built from its effective settings (the app settings with its row's overrides, validated by the
same rules) on first use, and rebuilt when its row changes: its own Dataverse client (token for its tenant, caches,
service-protection pacing budget), its provider (its sender; its own account when the row names its secrets), its
real-time journeys authorizer. The state table, Service Bus, the HTTP session and the clock are shared.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.adapters.dataverse import DataverseClient
from shared.adapters.keyvault import KeyVaultConfigError, KeyVaultSecrets, SecretUnavailable, key_vault_secrets
from shared.adapters.org_table import org_table
from shared.adapters.org_tokens import org_tokens
from shared.adapters.rtj_auth import UnavailableAuthorizer
from shared.adapters.tokens import StaticToken, TokenSelectionError
from shared.app.deps import Deps
from shared.domain.errors import TransientError, UnknownOrganization
from shared.domain.phone import strip_channel_prefix
from shared.log import log_event
from shared.orgs.model import SECRET_SUFFIX, OrgConfigError, OrgRecord, org_id_of, org_settings
from shared.orgs.registry import OrgRegistry
from shared.ports import Clock, KeyValueStore, QueuePublisher
from shared.settings import Settings
from shared.urls import is_loopback_host


@dataclass(frozen=True)
class Infra:
    """What every org shares: one HTTP session, one credential, the state table, Service Bus, the clock."""

    session: requests.Session
    credential: Any
    store: KeyValueStore
    queue: QueuePublisher
    clock: Clock


Assemble = Callable[..., Deps]  # shared.bootstrap.assemble_deps (passed in: the composition root imports this module)

SENDER_SETTINGS = ("TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID", "ACS_FROM", "WHATSAPP_PHONE_NUMBER_ID")
# An org's Dataverse throttling (429 Retry-After, a paused or spent budget) longer than this is not waited out in the
# worker, which serves the other orgs too: the org's messages are deferred to when the wait is over (not an attempt).
ORG_HOLD_SECONDS = 0.5


class NoOrgDataverse(DataverseClient):
    """The home deps' Dataverse: there is none (every org has its own). Reaching it is a routing defect; it answers
    like an unavailable service, so the work is retried and never lost."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1", tokens=StaticToken(""))

    def request(self, method: str, path: str, **_: Any) -> Any:
        raise TransientError(f"no organization chosen for Dataverse {method} {path[:60]} (MULTI_ORG)")


class OrgTenants:
    """The registered orgs' deps, cached per org and rebuilt when the org's row changes."""

    def __init__(
        self,
        registry: OrgRegistry,
        home: Deps,
        build: Callable[[OrgRecord], Deps],
        senders: RegisteredSenders,
        fingerprint: Callable[[OrgRecord], str] = lambda record: "",
    ) -> None:
        self._registry = registry
        self._fingerprint = fingerprint  # of the org's Key Vault secrets as read now (cached by the vault reader)
        self._senders = senders
        self._home = home
        self._build = build
        self._built: dict[str, tuple[tuple[str | None, str, str], Deps]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def home(self) -> Deps:
        return self._home

    def deps_for(self, org_id: str, *, new_work: bool = True) -> Deps:
        try:
            key = org_id_of(org_id)
        except ValueError as bad:
            raise UnknownOrganization("", str(bad)) from None
        record = self._registry.lookup(key)
        if record is None:
            raise UnknownOrganization(key, "is not registered (channel org add)")
        if new_work and not record.enabled:
            raise UnknownOrganization(key, "is disabled (channel org update --enable)", disabled=True)
        try:
            version = (*record.version, self._fingerprint(record))  # a rotated Key Vault secret rebuilds too
            with self._lock:
                built = self._built.get(key)
                lock = self._locks.setdefault(key, threading.Lock())
            if built is not None and built[0] == version:
                return built[1]
            with lock:  # one build per org at a time; other orgs are never held
                with self._lock:
                    built = self._built.get(key)
                if built is not None and built[0] == version:
                    return built[1]
                deps = self._build(record)
                with self._lock:
                    self._built[key] = (version, deps)
        except (OrgConfigError, TokenSelectionError, SecretUnavailable, KeyVaultConfigError) as bad:
            # fixed by the operator (the row, the vault, consent): retried with backoff until then
            log_event("org.unusable", org_id=key, reason=str(bad)[:500])
            raise TransientError(str(bad)) from None
        log_event("org.ready", org_id=key)
        return deps

    def org_for_number(self, number: str) -> str | None:
        return self._senders.owner(number)


class RegisteredSenders:
    """The registered orgs' configured senders (their overrides), re-read every ``ORG_CACHE_SECONDS``."""

    def __init__(self, registry: OrgRegistry, cache_seconds: float) -> None:
        self._registry = registry
        self._ttl = cache_seconds
        self._snapshot: tuple[float, dict[str, str | None]] | None = None
        self._lock = threading.Lock()

    def owner(self, number: str) -> str | None:
        """The one org configured with ``number`` (or Cloud API number id); None for none or several."""
        return self._owners().get(strip_channel_prefix(number))

    def accepts(self, number_id: str) -> bool:
        return self.owner(number_id) is not None

    def _owners(self) -> dict[str, str | None]:
        now = time.monotonic()
        with self._lock:
            snapshot = self._snapshot
        if snapshot is not None and now - snapshot[0] < self._ttl:
            return snapshot[1]
        owners: dict[str, str | None] = {}
        for record in self._registry.list():
            if not record.enabled:
                continue
            for setting in SENDER_SETTINGS:
                value = record.overrides.get(setting)
                if value:
                    sender = strip_channel_prefix(value)
                    owners[sender] = record.org_id if owners.get(sender, record.org_id) == record.org_id else None
        with self._lock:
            self._snapshot = (now, owners)
        return owners


def build_tenants(
    settings: Settings, infra: Infra, assemble_deps: Assemble, build_dataverse: Callable[..., DataverseClient]
) -> OrgTenants:
    table = org_table(settings, _storage_credential(settings, infra))
    registry = OrgRegistry(table, settings, cache_seconds=settings.org_cache_seconds)
    senders = RegisteredSenders(registry, settings.org_cache_seconds)
    home = assemble_deps(settings, NoOrgDataverse(), infra, also_accept=senders.accepts)
    tokens = org_tokens(
        app_client_id=settings.org_app_client_id,
        managed_identity_client_id=settings.azure_client_id,
        authority=settings.org_token_authority,
        static_token=settings.dataverse_static_token,
        credential=infra.credential,
    )
    vault = _Vault(settings, infra)

    def build(record: OrgRecord) -> Deps:
        effective = org_settings(settings, record, vault.reader(record))
        org_token = tokens.tokens_for(record.environment_url, record.tenant_id)  # its tenant, cached per tenant
        dataverse = build_dataverse(effective, org_token, infra.session, ORG_HOLD_SECONDS)
        query = f"?org={record.org_id}" if record.own_provider_credentials else ""
        deps = assemble_deps(effective, dataverse, infra, org_id=record.org_id, callback_query=query)
        missing = _relay_settings_missing(effective, record)
        if missing and deps.rtj is not None:  # another customer must never pass as this org with a shared credential
            why = "must be this org's own with MULTI_ORG=true (channel org update <id> --set / --secret)"
            deps = replace(deps, rtj=replace(deps.rtj, authorizer=UnavailableAuthorizer(missing, why)))
        return deps

    return OrgTenants(registry, home, build, senders, vault.fingerprint)


def _relay_settings_missing(effective: Settings, record: OrgRecord) -> list[str]:
    """The relay credential settings the org row must hold itself (the deployment's would let any customer's relay
    act as this org): its plug-in identity (entra), or its own secret."""
    if effective.rtj_auth_mode == "secret":
        return [] if "RTJ_OUTBOUND_SECRET" in record.secret_names else [f"RTJ_OUTBOUND_SECRET{SECRET_SUFFIX}"]
    own = ("RTJ_TOKEN_TENANT_ID", "RTJ_TOKEN_CLIENT_ID")
    return [name for name in own if name not in record.overrides]


class _Vault:
    """The Key Vault an org's secrets are read from by name (built on first use: only orgs that bring secrets)."""

    def __init__(self, settings: Settings, infra: Infra) -> None:
        self._settings = settings
        self._infra = infra
        self._secrets: KeyVaultSecrets | None = None
        self._lock = threading.Lock()

    def fingerprint(self, record: OrgRecord) -> str:
        """A digest of the org's secrets as the vault holds them now (its reader caches them for a few minutes)."""
        reader = self.reader(record)
        if reader is None:
            return ""
        digest = hashlib.sha256()
        for name in sorted(record.secret_names.values()):
            digest.update(reader(name).encode() + b"\0")
        return digest.hexdigest()

    def reader(self, record: OrgRecord) -> Callable[[str], str] | None:
        if not record.secret_names:
            return None
        uri = self._settings.key_vault_uri
        if not uri:
            names = ", ".join(f"{name}{SECRET_SUFFIX}" for name in sorted(record.secret_names))
            raise OrgConfigError(f"org {record.org_id}: {names}: needs KEY_VAULT_URI (the vault holding the secret)")
        with self._lock:
            if self._secrets is None:
                loopback = is_loopback_host(urlsplit(uri).hostname)
                self._secrets = key_vault_secrets(
                    uri,
                    managed_identity_client_id=self._settings.azure_client_id,
                    static_token=self._settings.dataverse_static_token if loopback else None,  # emulator only
                    credential=self._infra.credential,
                    session=self._infra.session,
                    ttl=self._settings.org_cache_seconds,  # a rotated secret is used within ORG_CACHE_SECONDS
                )
            return self._secrets.get


def _storage_credential(settings: Settings, infra: Infra) -> Any:
    if settings.storage_connection:
        return None
    from shared.adapters.tokens import default_credential

    return infra.credential or default_credential(settings.storage_client_id or settings.azure_client_id)
