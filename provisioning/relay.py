"""How the relay plug-in reaches and proves itself to the Function app (docs/real-time-journeys.md, relay contract).

The plug-in reads three Text environment variables by their exact schema name: ``<prefix>_ChannelRelayUrl`` and
exactly one of ``<prefix>_ChannelRelayScope`` (**entra**: a token from Power Platform's managed identity for
plug-ins, sent as ``Authorization: Bearer``) or ``<prefix>_ChannelRelaySecret`` (**secret**: the app's
``RTJ_OUTBOUND_SECRET``, sent as ``X-Channel-Secret``). In entra mode this part also creates or updates the
``managedidentity`` row (Microsoft's "Set up Power Platform managed identity") and binds it to the relay plug-in's
assembly (``pluginassembly.managedidentityid``). The federated credential on the Entra side is printed, not made.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from provisioning.rtj_definition import ENV_VAR_TEXT, RtjChannel
from provisioning.tables import ENV_VAR_DEFINITION, ENV_VAR_VALUE, MANAGED_IDENTITY, PLUGIN_ASSEMBLY
from provisioning.toolkit import ProvisionError, Steps, checked, ensure_row, lit

RELAY_PATH = "/api/rtj/outbound"
MIN_SECRET_LENGTH = 24  # the app refuses a shorter RTJ_OUTBOUND_SECRET
ENV_VAR_KEY_VAULT_SECRET = 100000005  # the Key Vault "Secret" type: plug-ins cannot read it (never created)
CREDENTIAL_SOURCE_MANAGED = 2  # managedidentity.credentialsource "IsManaged"
SUBJECT_SCOPE_ENVIRONMENT = 1  # managedidentity.subjectscope "EnviornmentScope" (sic): this environment only
# managedidentity.version: Microsoft's "Set up Power Platform managed identity" describes record versions 1 and 2
# (2 recommended: the federated credential subject uses a hash of the signing certificate's full DN). [INFERRED]: the
# column is not in the generated table reference yet; docs/real-time-journeys.md says how to confirm it.
MANAGED_IDENTITY_VERSION = 2
_SCOPE = re.compile(r"^(api://[A-Za-z0-9._~:/-]+|https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~-]+)*)/\.default$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def relay_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?/api/rtj/outbound$", value):
        raise ValueError(f"--relay-url must be https://<function app host>{RELAY_PATH}, not {value!r}")
    return value


def relay_secret(value: str) -> str:
    if len(value.strip()) < MIN_SECRET_LENGTH or value != value.strip():
        raise ValueError(f"--relay-secret must be the app's RTJ_OUTBOUND_SECRET (at least {MIN_SECRET_LENGTH} chars)")
    return value


def token_scope(value: str) -> str:
    value = value.strip()
    if not _SCOPE.match(value):
        raise ValueError(
            f"--relay-token-scope must be the app's token scope ending in /.default, e.g. api://<app id>/.default, "
            f"not {value!r}"
        )
    return value


def guid(value: str, option: str) -> str:
    if not _GUID.match(value.strip()):
        raise ValueError(f"{option} must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), not {value!r}")
    return value.strip().lower()


@dataclass(frozen=True)
class EntraAuth:
    """The relay gets a token for ``scope`` with the plug-in assembly's managed identity (client / tenant id)."""

    scope: str
    client_id: str
    tenant_id: str

    @property
    def audience(self) -> str:
        return self.scope.removesuffix("/.default")


@dataclass(frozen=True)
class SecretAuth:
    """The relay sends the app's ``RTJ_OUTBOUND_SECRET`` from a Text environment variable."""

    secret: str = field(repr=False)


RelayAuth = EntraAuth | SecretAuth


@dataclass
class RelayResult:
    managed_identity_id: str = ""
    assembly_bound: bool = False


class RelaySteps:
    """The relay's environment variables and, in entra mode, its managed identity."""

    def __init__(self, steps: Steps, channel: RtjChannel, url: str | None, auth: RelayAuth | None) -> None:
        self.s = steps
        self.ch = channel
        self.url = url
        self.auth = auth
        self.result = RelayResult()

    # --- the rows this part writes ----------------------------------------------------------------------------
    @property
    def managed_identity_id(self) -> str:
        """Stable (uuid5 of the prefix), so a re-run finds the row it created."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"channel-provisioning/managedidentity/{self.ch.prefix}"))

    @property
    def managed_identity_name(self) -> str:
        return f"{self.ch.prefix} channel relay"

    def managed_identity_columns(self, auth: EntraAuth) -> dict[str, Any]:
        return {
            "name": self.managed_identity_name,
            "applicationid": auth.client_id,
            "tenantid": auth.tenant_id,
            "credentialsource": CREDENTIAL_SOURCE_MANAGED,
            "subjectscope": SUBJECT_SCOPE_ENVIRONMENT,
            "version": MANAGED_IDENTITY_VERSION,
        }

    def _values(self) -> dict[str, str | None]:
        """schema name -> the value to set (None: leave as is) for the three variables."""
        entra = self.auth if isinstance(self.auth, EntraAuth) else None
        secret = self.auth if isinstance(self.auth, SecretAuth) else None
        return {
            self.ch.relay_url_variable: self.url,
            self.ch.relay_scope_variable: entra.scope if entra else None,
            self.ch.relay_secret_variable: secret.secret if secret else None,
        }

    def preflight(self) -> None:
        for name in (self.ch.relay_url_variable, self.ch.relay_scope_variable, self.ch.relay_secret_variable):
            checked(ENV_VAR_DEFINITION, self.ch.variable_definition_body(name))
            value = self._values()[name]
            if value is not None:
                checked(ENV_VAR_VALUE, {"schemaname": name, "value": value})
        if isinstance(self.auth, EntraAuth):
            checked(MANAGED_IDENTITY, self.managed_identity_columns(self.auth))

    # --- run ---------------------------------------------------------------------------------------------------
    def run(self, assembly_id: str | None) -> RelayResult:
        values = self._values()
        has_value: dict[str, bool] = {}
        clear = (
            {self.ch.relay_secret_variable}
            if isinstance(self.auth, EntraAuth)
            else {self.ch.relay_scope_variable}
            if isinstance(self.auth, SecretAuth)
            else set()
        )
        for name, value in values.items():
            has_value[name] = self.ensure_variable(name, value, clear=name in clear)
        scope, secret = has_value[self.ch.relay_scope_variable], has_value[self.ch.relay_secret_variable]
        if self.auth is None and scope == secret:
            names = (self.ch.relay_scope_variable, self.ch.relay_secret_variable)
            both, neither = "Both {} and {} have a value: the relay refuses to run.", "Neither {} nor {} has a value."
            state = both if scope else neither
            self.s.note(
                state.format(*names) + " Run again with --relay-auth entra --relay-token-scope … "
                "--relay-identity-client-id … --relay-identity-tenant-id … (recommended) or --relay-auth secret "
                "--relay-secret …"
            )
        if isinstance(self.auth, EntraAuth):
            self.ensure_managed_identity(self.auth, assembly_id)
        return self.result

    def ensure_variable(self, name: str, value: str | None, *, clear: bool) -> bool:
        """Create the definition (and set, clear or keep its value); returns whether it has a value afterwards."""
        definition = self.ch.variable_definition_body(name)

        def check(row: dict[str, Any]) -> None:
            if row.get("type") != ENV_VAR_TEXT:
                kind = (
                    "Secret (Azure Key Vault)" if row.get("type") == ENV_VAR_KEY_VAULT_SECRET else str(row.get("type"))
                )
                raise ProvisionError(
                    f"environment variable {name} exists as {kind}; the relay plug-in reads only Text variables and "
                    "a variable's type cannot be changed: delete it (make.powerapps.com → the solution → Environment "
                    "variables) and run again"
                )
            if clear and row.get("defaultvalue"):
                raise ProvisionError(
                    f"environment variable {name} has a default value, so the relay would see both authentication "
                    "modes: clear its default value (make.powerapps.com → the solution → Environment variables) "
                    "and run again"
                )

        outcome = ensure_row(
            self.s,
            ENV_VAR_DEFINITION,
            {k: definition[k] for k in ("displayname", "description")},
            what=f"environment variable {name}",
            where=f"schemaname eq {lit(name)}",
            select=("schemaname", "displayname", "description", "type", "defaultvalue"),
            body=definition,
            check=check,
            created_text=f"create environment variable {name} (Text)",
            unchanged_text=None,
            placeholder=f"<new {name} id>",
        )
        rows: list[dict[str, Any]] = []
        if not outcome.created:
            rows = self.s.rows(
                ENV_VAR_VALUE,
                ("environmentvariablevalueid", "schemaname", "value"),
                f"_environmentvariabledefinitionid_value eq {outcome.id}",
                what=f"environment variable value {name}",
            )
        default = bool((outcome.row or {}).get("defaultvalue"))
        if clear:
            for row in rows:
                self.s.delete(ENV_VAR_VALUE, str(row["environmentvariablevalueid"]), what=f"{name} value")
                self.s.changed(f"remove the value of environment variable {name} (the other relay mode is set)")
            if not rows and not outcome.created:
                self.s.ok(f"environment variable {name} (no value)")
            return False
        if value is None:
            if not outcome.created and (rows or default):
                self.s.ok(f"environment variable {name}")
            elif name == self.ch.relay_url_variable:
                self.s.note(
                    f"The environment variable {name} has no value: run again with --relay-url, or set it in the "
                    "solution (make.powerapps.com → the solution → Environment variables)."
                )
            return bool(rows) or default
        masked = frozenset({"value"}) if name == self.ch.relay_secret_variable else frozenset()
        if not rows:
            self.s.create(
                ENV_VAR_VALUE,
                {
                    "schemaname": name,
                    "value": value,
                    "EnvironmentVariableDefinitionId@odata.bind": f"/environmentvariabledefinitions({outcome.id})",
                },
                what=f"{name} value",
                placeholder=f"<new {name} value id>",
                secret_fields=masked,
            )
            self.s.changed(f"set environment variable {name}")
        elif rows[0].get("value") != value:
            row_id = str(rows[0]["environmentvariablevalueid"])
            self.s.update(ENV_VAR_VALUE, row_id, {"value": value}, what=f"{name} value", secret_fields=masked)
            self.s.changed(f"update environment variable {name} value")
        else:
            self.s.ok(f"environment variable {name}")
        return True

    def ensure_managed_identity(self, auth: EntraAuth, assembly_id: str | None) -> None:
        identity_id = self.managed_identity_id
        self.result.managed_identity_id = identity_id
        name = self.managed_identity_name
        ensure_row(
            self.s,
            MANAGED_IDENTITY,
            self.managed_identity_columns(auth),
            what=f"managed identity {name}",
            row_id=identity_id,
            body={"managedidentityid": identity_id, **self.managed_identity_columns(auth)},
            created_text=f"create managed identity {name} (client id {auth.client_id}, tenant {auth.tenant_id})",
            placeholder=identity_id,
        )
        if assembly_id is None:
            self.s.note(
                f"The relay plug-in's assembly is not registered, so managed identity {name} is not bound to it yet: "
                "register ChannelRelay.dll signed with your certificate (rtj-relay/README.md), then run again."
            )
            return
        assembly = self.s.gw.read(
            f"{PLUGIN_ASSEMBLY.entity_set}({assembly_id})",
            {"$select": "pluginassemblyid,name,_managedidentityid_value"},
            operation="read plug-in assembly",
        )
        if assembly is None:
            raise ProvisionError(f"plug-in assembly {assembly_id} of {self.ch.plugin_type} does not exist")
        label = f"plug-in assembly {assembly.get('name')}"
        self.result.assembly_bound = True
        if str(assembly.get("_managedidentityid_value") or "").lower() == identity_id:
            self.s.ok(f"{label} → managed identity {name}")
            return
        bind = {"managedidentityid@odata.bind": f"/{MANAGED_IDENTITY.entity_set}({identity_id})"}
        self.s.update(PLUGIN_ASSEMBLY, assembly_id, bind, what=label)
        self.s.changed(f"bind {label} to managed identity {name}")
