"""``channel provision --rtj``: the real-time journeys side of the channel, idempotently.

Order: relay plug-in type lookup → outbound custom API (``payload`` / ``response``, bound to the plug-in type when
it is registered) → the relay plug-in's two environment variables (definition + value) → extended channel-instance
table (and, for SMS, instance-account table) → their ``msdyn_extendedentityid`` relationships → PublishXml (only if
something was created) → channel definition (stable id) → ``text`` message part → Read on the extended tables for
the two roles the docs name (``AddPrivilegesRole``). Every step reads first and writes only the differences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provisioning.definition import (
    ENV_VAR_SECRET,
    ENV_VAR_TEXT,
    EXTENDED_LOOKUP,
    PAYLOAD_PARAMETER,
    RESPONSE_PROPERTY,
    RTJ_READ_ROLES,
    ExtendedTable,
    RtjChannel,
)

if TYPE_CHECKING:
    from provisioning.provisioner import Provisioner

FORM_TYPE_MAIN = 2
DEPTH_GLOBAL = "Global"  # PrivilegeDepth: Basic < Local < Deep < Global ("Organization" in the UI)
_DEPTHS = {"Basic": 0, "Local": 1, "Deep": 2, "Global": 3, "0": 0, "1": 1, "2": 2, "3": 3}
_KEY_VAULT_REFERENCE = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[^/]{1,90}/providers/Microsoft\.KeyVault/vaults/"
    r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]/secrets/[A-Za-z0-9-]{1,127}$",
    re.IGNORECASE,
)
RELAY_PATH = "/api/rtj/outbound"
MIN_SECRET_LENGTH = 24  # the app refuses a shorter RTJ_OUTBOUND_SECRET


def key_vault_reference(value: str) -> str:
    """A Key Vault secret reference for a Secret environment variable: the secret's Azure resource id."""
    value = value.strip()
    if not _KEY_VAULT_REFERENCE.match(value):
        raise ValueError(
            "--relay-secret-from-key-vault must be the secret's resource id: /subscriptions/<id>/resourceGroups/"
            "<group>/providers/Microsoft.KeyVault/vaults/<vault>/secrets/<name> (e.g. rtj-outbound-secret)"
        )
    return value


def relay_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?/api/rtj/outbound$", value):
        raise ValueError(f"--relay-url must be https://<function app host>{RELAY_PATH}, not {value!r}")
    return value


def relay_secret(value: str) -> str:
    if len(value.strip()) < MIN_SECRET_LENGTH or value != value.strip():
        raise ValueError(f"--relay-secret must be the app's RTJ_OUTBOUND_SECRET (at least {MIN_SECRET_LENGTH} chars)")
    return value


@dataclass(frozen=True)
class RtjOptions:
    channel: RtjChannel
    relay_url: str | None = None
    relay_secret: str | None = None  # a Text variable holding the secret itself
    relay_secret_reference: str | None = None  # a Secret variable: the Key Vault secret's resource id

    def __post_init__(self) -> None:
        if self.relay_secret and self.relay_secret_reference:
            raise ValueError("pass either --relay-secret or --relay-secret-from-key-vault, not both")


@dataclass
class RtjResult:
    custom_api_id: str = ""
    plugin_type_id: str = ""
    plugin_bound: bool = False
    channel_definition_id: str = ""
    message_part_id: str = ""


class RtjSteps:
    """The RTJ steps, run by :class:`provisioning.provisioner.Provisioner` with its gateway and solution."""

    def __init__(self, provisioner: Provisioner, options: RtjOptions) -> None:
        from provisioning.provisioner import ProvisionError, lit

        self.p = provisioner
        self.gw = provisioner.gw
        self.opt = options
        self.ch = options.channel
        self.result = RtjResult()
        self._error = ProvisionError
        self._lit = lit

    def _note(self, text: str) -> None:
        self.p.result.notes.append(text)

    def run(self) -> RtjResult:
        plugin_type_id = self.find_plugin_type()
        self.ensure_custom_api(plugin_type_id)
        self.ensure_variables()
        new_tables = [table.logical_name for table in self.ch.extended_tables if self.ensure_table(table)]
        new_relationships = [table.base_table for table in self.ch.extended_tables if self.ensure_relationship(table)]
        if new_tables or new_relationships:
            self.publish(new_tables + new_relationships)
        forms = {
            table.logical_name: self.main_form(table, new=table.logical_name in new_tables)
            for table in self.ch.extended_tables
        }
        self.ensure_channel_definition(forms)
        self.ensure_message_part()
        self.ensure_read_privileges(set(new_tables))
        return self.result

    # --- custom API ------------------------------------------------------------------------------------
    def find_plugin_type(self) -> str | None:
        found = self.gw.rows(
            "plugintypes",
            {"$select": "plugintypeid,typename", "$filter": f"typename eq {self._lit(self.ch.plugin_type)}"},
            operation="read plug-in type",
        )
        if not found:
            self._note(
                f"The plug-in type {self.ch.plugin_type} is not registered, so the custom API "
                f"{self.ch.custom_api_name} has no plug-in yet and would answer with an empty response. Build and "
                "register ChannelRelay.dll (rtj-relay/README.md), then run this command again: it binds the API."
            )
            return None
        self.result.plugin_type_id = str(found[0]["plugintypeid"])
        return self.result.plugin_type_id

    def ensure_custom_api(self, plugin_type_id: str | None) -> None:
        name = self.ch.custom_api_name
        found = self.gw.rows(
            "customapis",
            {
                "$select": "customapiid,uniquename,name,displayname,description,bindingtype,isfunction,"
                "allowedcustomprocessingsteptype,_plugintypeid_value",
                "$filter": f"uniquename eq {self._lit(name)}",
            },
            operation="read custom API",
        )
        if not found:
            self.result.custom_api_id = self.gw.write(
                "POST",
                "customapis",
                self.ch.custom_api_body(plugin_type_id),
                operation="create custom API",
                headers=self.p._in_solution,
                placeholder="<new custom API id>",
            )
            self.result.plugin_bound = plugin_type_id is not None
            self.p._changed(
                f"create custom API {name} (payload → response)"
                + (f" bound to {self.ch.plugin_type}" if plugin_type_id else " without a plug-in")
            )
            return
        api = found[0]
        api_id = str(api["customapiid"])
        self.result.custom_api_id = api_id
        fixed = {"bindingtype": 0, "isfunction": False, "allowedcustomprocessingsteptype": 0}
        wrong = {k: api.get(k) for k, v in fixed.items() if api.get(k) != v}
        if wrong:
            raise self._error(
                f"custom API {name} exists with {wrong}; these columns cannot be changed after creation. Delete the "
                f"custom API (make.powerapps.com → the solution → Custom APIs) and run again, or pass another "
                "--rtj-api-name"
            )
        changes = {k: v for k, v in self.ch.custom_api_columns().items() if k != "uniquename" and api.get(k) != v}
        current_plugin = str(api.get("_plugintypeid_value") or "").lower()
        if plugin_type_id and current_plugin != plugin_type_id.lower():
            changes["PluginTypeId@odata.bind"] = f"/plugintypes({plugin_type_id})"
        self.result.plugin_bound = bool(plugin_type_id) or bool(current_plugin)
        if changes:
            self.gw.write(
                "PATCH",
                f"customapis({api_id})",
                changes,
                operation="update custom API",
                headers={"If-Match": "*"},
            )
            what = ", ".join(sorted(k.removesuffix("@odata.bind") for k in changes))
            self.p._changed(f"update custom API {name} ({what})")
        self._ensure_api_member(
            api_id, "customapirequestparameters", PAYLOAD_PARAMETER, self.ch.payload_parameter_body()
        )
        self._ensure_api_member(
            api_id, "customapiresponseproperties", RESPONSE_PROPERTY, self.ch.response_property_body()
        )
        if not changes:
            self.p._ok(f"custom API {name}")

    def _ensure_api_member(self, api_id: str, entity_set: str, unique_name: str, body: dict[str, Any]) -> None:
        kind = "request parameter" if entity_set == "customapirequestparameters" else "response property"
        key = "customapirequestparameterid" if kind == "request parameter" else "customapiresponsepropertyid"
        rows = self.gw.rows(
            entity_set,
            {"$select": f"{key},uniquename,type", "$filter": f"_customapiid_value eq {api_id}"},
            operation=f"read custom API {kind}",
        )
        row = next((r for r in rows if r.get("uniquename") == unique_name), None)
        if row is None:
            self.gw.write(
                "POST",
                entity_set,
                {**body, "CustomAPIId@odata.bind": f"/customapis({api_id})"},
                operation=f"create custom API {kind}",
                headers=self.p._in_solution,
                placeholder=f"<new {kind} id>",
            )
            self.p._changed(f"create custom API {kind} {unique_name} (String)")
        elif row.get("type") != body["type"]:
            raise self._error(
                f"custom API {kind} {unique_name} has type {row.get('type')}, not 10 (String); the type cannot be "
                "changed: delete that row and run again"
            )

    # --- environment variables ---------------------------------------------------------------------------------
    def ensure_variables(self) -> None:
        secret_kind = bool(self.opt.relay_secret_reference)
        self._ensure_variable(self.ch.variable_definition_body(secret=False, url=True), self.opt.relay_url, False)
        secret_value = self.opt.relay_secret_reference or self.opt.relay_secret
        self._ensure_variable(
            self.ch.variable_definition_body(secret=secret_kind, url=False),
            secret_value,
            sensitive=bool(self.opt.relay_secret),
        )

    def _ensure_variable(self, definition: dict[str, Any], value: str | None, sensitive: bool) -> None:
        schema = str(definition["schemaname"])
        found = self.gw.rows(
            "environmentvariabledefinitions",
            {
                "$select": "environmentvariabledefinitionid,schemaname,displayname,description,type",
                "$filter": f"schemaname eq {self._lit(schema)}",
            },
            operation="read environment variable",
        )
        new = not found
        if new:
            definition_id = self.gw.write(
                "POST",
                "environmentvariabledefinitions",
                definition,
                operation="create environment variable",
                headers=self.p._in_solution,
                placeholder=f"<new {schema} id>",
            )
            kind = "Secret" if definition["type"] == ENV_VAR_SECRET else "Text"
            self.p._changed(f"create environment variable {schema} ({kind})")
        else:
            row = found[0]
            definition_id = str(row["environmentvariabledefinitionid"])
            if value is not None and row.get("type") != definition["type"]:
                have = "Secret" if row.get("type") == ENV_VAR_SECRET else "Text"
                raise self._error(
                    f"environment variable {schema} exists as {have}; its type cannot be changed. Pass the matching "
                    "option (--relay-secret-from-key-vault for Secret, --relay-secret for Text) or delete the variable"
                )
            changes = {k: definition[k] for k in ("displayname", "description") if row.get(k) != definition[k]}
            if changes:
                self.gw.write(
                    "PATCH",
                    f"environmentvariabledefinitions({definition_id})",
                    changes,
                    operation="update environment variable",
                    headers={"If-Match": "*"},
                )
                self.p._changed(f"update environment variable {schema} ({', '.join(sorted(changes))})")
        values: list[dict[str, Any]] = []
        if not new:
            values = self.gw.rows(
                "environmentvariablevalues",
                {
                    "$select": "environmentvariablevalueid,schemaname,value",
                    "$filter": f"_environmentvariabledefinitionid_value eq {definition_id}",
                },
                operation="read environment variable value",
            )
        if value is None:
            if not values:
                option = "--relay-url" if schema == self.ch.relay_url_variable else "--relay-secret-from-key-vault"
                self._note(
                    f"The environment variable {schema} has no value: run again with {option}, or set it in "
                    "the solution (make.powerapps.com → the solution → Environment variables)."
                )
            elif not new:
                self.p._ok(f"environment variable {schema}")
            return
        masked = frozenset({"value"}) if sensitive else frozenset()
        if not values:
            self.gw.write(
                "POST",
                "environmentvariablevalues",
                {
                    "schemaname": schema,
                    "value": value,
                    "EnvironmentVariableDefinitionId@odata.bind": f"/environmentvariabledefinitions({definition_id})",
                },
                operation="create environment variable value",
                headers=self.p._in_solution,
                placeholder=f"<new {schema} value id>",
                secret_fields=masked,
            )
            self.p._changed(f"set environment variable {schema}")
        elif values[0].get("value") != value:
            self.gw.write(
                "PATCH",
                f"environmentvariablevalues({values[0]['environmentvariablevalueid']})",
                {"value": value},
                operation="update environment variable value",
                headers={"If-Match": "*"},
                secret_fields=masked,
            )
            self.p._changed(f"update environment variable {schema} value")
        elif not new:
            self.p._ok(f"environment variable {schema}")

    # --- extended tables and their msdyn_extendedentityid relationships --------------------------------------
    def ensure_table(self, table: ExtendedTable) -> bool:
        """Returns whether the table was (or, in a dry run, would be) created."""
        meta = self.gw.read(
            f"EntityDefinitions(LogicalName={self._lit(table.logical_name)})",
            {"$select": "LogicalName,SchemaName,EntitySetName"},
            operation="read extended table",
        )
        if meta is not None:
            if meta.get("SchemaName") not in (None, table.schema_name):
                self._note(
                    f"Table {table.logical_name} exists with schema name {meta.get('SchemaName')}; Microsoft asks "
                    "for a lowerCamelCase logical name, which this command keeps entirely lower case."
                )
            self.p._ok(f"table {table.logical_name}")
            return False
        self.gw.write(
            "POST",
            "EntityDefinitions",
            table.table_body(),
            operation="create extended table",
            headers=self.p._in_solution,
            placeholder="<new table metadata id>",
        )
        self.p._changed(f"create table {table.logical_name} (extends {table.base_table})")
        return True

    def ensure_relationship(self, table: ExtendedTable) -> bool:
        found = self.gw.read(
            f"EntityDefinitions(LogicalName={self._lit(table.base_table)})/ManyToOneRelationships",
            {
                "$select": "SchemaName,ReferencedEntity,ReferencingAttribute",
                "$filter": f"ReferencedEntity eq {self._lit(table.logical_name)}",
            },
            operation="read extended entity relationship",
        )
        if found is None:
            raise self._error(
                f"table {table.base_table} does not exist: real-time journeys (Customer Insights - Journeys) is not "
                "installed in this environment"
            )
        relationships = found.get("value") or []
        if any(str(r.get("ReferencingAttribute", "")).lower() == EXTENDED_LOOKUP for r in relationships):
            self.p._ok(f"relationship {table.base_table}.{EXTENDED_LOOKUP} → {table.logical_name}")
            return False
        self.gw.write(
            "POST",
            "RelationshipDefinitions",
            table.relationship_body(),
            operation="create extended entity relationship",
            headers=self.p._in_solution,
            placeholder="<new relationship id>",
        )
        self.p._changed(f"add {table.logical_name} to the polymorphic lookup {table.base_table}.{EXTENDED_LOOKUP}")
        return True

    def publish(self, entities: list[str]) -> None:
        xml = "<importexportxml><entities>" + "".join(f"<entity>{e}</entity>" for e in entities)
        xml += "</entities></importexportxml>"
        self.gw.write("POST", "PublishXml", {"ParameterXml": xml}, operation="publish")
        self.p._changed(f"publish {', '.join(entities)}")

    def main_form(self, table: ExtendedTable, *, new: bool) -> str | None:
        """The table's main form (created with the table): the channel setup wizard shows it."""
        if new and self.gw.dry_run:
            return f"{{main form id of {table.logical_name}}}"
        forms = self.gw.rows(
            "systemforms",
            {
                "$select": "formid,name",
                "$filter": f"objecttypecode eq {self._lit(table.logical_name)} and type eq {FORM_TYPE_MAIN}",
            },
            operation="read main form",
        )
        if not forms:
            self._note(
                f"Table {table.logical_name} has no main form yet: create one (make.powerapps.com → Tables → the "
                "table → Forms), publish, and run this command again so the channel definition points at it."
            )
            return None
        return str(forms[0]["formid"])

    # --- channel definition and message part ------------------------------------------------------------------
    def ensure_channel_definition(self, forms: dict[str, str | None]) -> None:
        definition_id = self.ch.channel_definition_id
        self.result.channel_definition_id = definition_id
        account = self.ch.account_table
        columns = self.ch.channel_definition_columns(
            forms.get(self.ch.instance_table.logical_name), forms.get(account.logical_name) if account else None
        )
        current = self.gw.read(
            f"msdyn_channeldefinitions({definition_id})",
            {"$select": ",".join(["msdyn_channeldefinitionid", *sorted(self.ch.channel_definition_columns("x", "x"))])},
            operation="read channel definition",
        )
        if current is None:
            self.gw.write(
                "POST",
                "msdyn_channeldefinitions",
                {"msdyn_channeldefinitionid": definition_id, **columns},
                operation="create channel definition",
                headers=self.p._in_solution,
                placeholder=definition_id,
            )
            self.p._changed(f"create channel definition {definition_id} ({self.ch.msdyn_channeltype})")
            return
        changes = {}
        for name, value in columns.items():
            if name.endswith("externalformid") and current.get(name):
                continue  # a form chosen by hand stays
            if current.get(name) != value:
                changes[name] = value
        if not changes:
            self.p._ok(f"channel definition {definition_id}")
            return
        self.gw.write(
            "PATCH",
            f"msdyn_channeldefinitions({definition_id})",
            changes,
            operation="update channel definition",
            headers={"If-Match": "*"},
        )
        self.p._changed(f"update channel definition {definition_id} ({', '.join(sorted(changes))})")

    def ensure_message_part(self) -> None:
        definition_id = self.ch.channel_definition_id
        columns = self.ch.message_part_columns()
        parts = self.gw.rows(
            "msdyn_channelmessageparts",
            {
                "$select": "msdyn_channelmessagepartid," + ",".join(sorted(columns)),
                "$filter": f"_msdyn_channeldefinitionid_value eq {definition_id}",
            },
            operation="read message parts",
        )
        part = next((p for p in parts if p.get("msdyn_name") == columns["msdyn_name"]), None)
        others = [str(p.get("msdyn_name")) for p in parts if p is not part]
        if others and self.ch.is_sms:
            self._note(
                f"The SMS channel definition has other message parts ({', '.join(others)}); SMS channels must have "
                "exactly one, 'text'. Delete the others."
            )
        if part is None:
            self.result.message_part_id = self.gw.write(
                "POST",
                "msdyn_channelmessageparts",
                {
                    "msdyn_channelmessagepartid": self.ch.message_part_id,
                    **columns,
                    "msdyn_ChannelDefinitionId@odata.bind": f"/msdyn_channeldefinitions({definition_id})",
                },
                operation="create message part",
                headers=self.p._in_solution,
                placeholder=self.ch.message_part_id,
            )
            self.p._changed("create message part text (plain text, 1,600 characters)")
            return
        part_id = str(part["msdyn_channelmessagepartid"])
        self.result.message_part_id = part_id
        changes = {k: v for k, v in columns.items() if part.get(k) != v}
        if not changes:
            self.p._ok("message part text")
            return
        self.gw.write(
            "PATCH",
            f"msdyn_channelmessageparts({part_id})",
            changes,
            operation="update message part",
            headers={"If-Match": "*"},
        )
        self.p._changed(f"update message part text ({', '.join(sorted(changes))})")

    # --- read privileges ---------------------------------------------------------------------------------------
    def ensure_read_privileges(self, new_tables: set[str]) -> None:
        privileges: dict[str, str] = {}  # privilege id -> name
        for table in self.ch.extended_tables:
            name = table.read_privilege
            if table.logical_name in new_tables and self.gw.dry_run:
                privileges[f"{{{name} id}}"] = name
                continue
            rows = self.gw.rows(
                "privileges",
                {"$select": "privilegeid,name", "$filter": f"name eq {self._lit(name)}"},
                operation="read privilege",
            )
            if not rows:
                raise self._error(f"privilege {name} does not exist (is table {table.logical_name} published?)")
            privileges[str(rows[0]["privilegeid"]).lower()] = name
        tables = ", ".join(t.logical_name for t in self.ch.extended_tables)
        for role_name in RTJ_READ_ROLES:
            roles = self.gw.rows(
                "roles",
                {
                    "$select": "roleid,name,_businessunitid_value",
                    "$filter": f"name eq {self._lit(role_name)} and _parentroleid_value eq null",
                },
                operation="read security role",
            )
            if not roles:
                self._note(
                    f"Security role '{role_name}' was not found (it comes with Customer Insights - Journeys). Once it "
                    f"exists, run again, or give it Read (Organization) on {tables} by hand (Power Platform admin "
                    "center → the environment → Security roles)."
                )
                continue
            role = roles[0]
            role_id = str(role["roleid"])
            held: dict[str, int] = {}
            if not all(p.startswith("{") for p in privileges):
                granted = (
                    self.gw.read(
                        f"RetrieveRolePrivilegesRole(RoleId={role_id})", None, operation="read role privileges"
                    )
                    or {}
                )
                for item in granted.get("RolePrivileges") or []:
                    held[str(item.get("PrivilegeId", "")).lower()] = _DEPTHS.get(str(item.get("Depth")), -1)
            missing = [p for p in privileges if held.get(p, -1) < _DEPTHS[DEPTH_GLOBAL]]
            if not missing:
                self.p._ok(f"Read on {tables} for role '{role_name}'")
                continue
            self.gw.write(
                "POST",
                f"roles({role_id})/Microsoft.Dynamics.CRM.AddPrivilegesRole",
                {
                    "Privileges": [
                        {"Depth": DEPTH_GLOBAL, "PrivilegeId": p, "BusinessUnitId": role.get("_businessunitid_value")}
                        for p in missing
                    ]
                },
                operation="add role privileges",
            )
            names = ", ".join(privileges[p] for p in missing)
            self.p._changed(f"grant {names} (Organization) to role '{role_name}'")


__all__ = [
    "ENV_VAR_SECRET",
    "ENV_VAR_TEXT",
    "RtjOptions",
    "RtjResult",
    "RtjSteps",
    "key_vault_reference",
    "relay_secret",
    "relay_url",
]
