"""``channel provision --rtj``: the real-time journeys side of the channel, idempotently.

Order: security roles (checked before anything is written) → relay plug-in type lookup → outbound custom API
(``payload`` / ``response``, bound to the plug-in type when it is registered) → the relay's environment variables and,
in entra mode, its managed identity (provisioning/relay.py) → extended channel-instance table (and, for SMS,
instance-account table) → their ``msdyn_extendedentityid`` relationships → PublishXml (only if something was
created) → channel definition (stable id) → ``text`` message part → Read on the extended tables for the roles the
docs name (``AddPrivilegesRole``). Every step reads first and writes only the differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provisioning.relay import RelayAuth, RelayResult, RelaySteps
from provisioning.rtj_definition import (
    CUSTOM_API_STRING,
    EXTENDED_LOOKUP,
    PAYLOAD_PARAMETER,
    RESPONSE_PROPERTY,
    RTJ_READ_ROLES,
    ExtendedTable,
    RtjChannel,
)
from provisioning.tables import (
    CHANNEL_DEFINITION,
    CUSTOM_API,
    CUSTOM_API_REQUEST_PARAMETER,
    CUSTOM_API_RESPONSE_PROPERTY,
    MESSAGE_PART,
    Table,
)
from provisioning.toolkit import ProvisionError, Steps, checked, ensure_row, lit

FORM_TYPE_MAIN = 2
DEPTH_GLOBAL = "Global"  # PrivilegeDepth: Basic < Local < Deep < Global ("Organization" in the UI)
_DEPTHS = {"Basic": 0, "Local": 1, "Deep": 2, "Global": 3, "0": 0, "1": 1, "2": 2, "3": 3}
FORM_ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"  # only to check the lengths of a definition up front


def role_key(name: str) -> str:
    """A role name as Microsoft's pages spell it several ways: case, "Service"/"Services", a trailing "Role"."""
    words = name.lower().split()
    if words and words[-1] == "role":
        words.pop()
    return " ".join("service" if word == "services" else word for word in words)


@dataclass(frozen=True)
class RtjOptions:
    channel: RtjChannel
    relay_url: str | None = None
    relay_auth: RelayAuth | None = None


@dataclass
class RtjResult:
    custom_api_id: str = ""
    plugin_type_id: str = ""
    plugin_assembly_id: str | None = None
    plugin_bound: bool = False
    channel_definition_id: str = ""
    message_part_id: str = ""
    roles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # wanted name -> matching roles
    relay: RelayResult = field(default_factory=RelayResult)


class RtjSteps:
    def __init__(self, steps: Steps, options: RtjOptions) -> None:
        self.s = steps
        self.gw = steps.gw
        self.opt = options
        self.ch = options.channel
        self.relay = RelaySteps(steps, self.ch, options.relay_url, options.relay_auth)
        self.result = RtjResult()

    # --- before anything is written ------------------------------------------------------------------------
    def preflight(self) -> None:
        """Check every row against the column table, and that the roles to grant to exist (reads only)."""
        checked(CUSTOM_API, self.ch.custom_api_body(None))
        form = FORM_ID_PLACEHOLDER
        checked(CHANNEL_DEFINITION, self.ch.channel_definition_columns(form, form))
        checked(MESSAGE_PART, self.ch.message_part_columns())
        self.relay.preflight()
        self.result.roles = self.find_roles()

    def find_roles(self) -> dict[str, list[dict[str, Any]]]:
        """The root business unit's roles matching each wanted name (tolerantly); none found stops the run."""
        roles = self.s.rows(
            "roles", ("roleid", "name", "_businessunitid_value"), "_parentroleid_value eq null", what="security roles"
        )
        found = {
            wanted: [r for r in roles if role_key(str(r.get("name", ""))) == role_key(wanted)]
            for wanted in RTJ_READ_ROLES
        }
        missing = [wanted for wanted, matches in found.items() if not matches]
        if missing:
            tables = ", ".join(t.logical_name for t in self.ch.extended_tables)
            raise ProvisionError(
                "security role " + " and ".join(f"'{m}'" for m in missing) + " not found (matched ignoring case, "
                "'Service'/'Services' and a trailing 'Role'). These roles come with Customer Insights - Journeys and "
                f"need Read on {tables} while a journey is submitted: install or update Customer Insights - Journeys "
                "in this environment, then run again"
            )
        return found

    def run(self) -> RtjResult:
        plugin_type_id = self.find_plugin_type()
        self.ensure_custom_api(plugin_type_id)
        self.result.relay = self.relay.run(self.result.plugin_assembly_id)
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
        found = self.s.rows(
            "plugintypes",
            ("plugintypeid", "typename", "_pluginassemblyid_value"),
            f"typename eq {lit(self.ch.plugin_type)}",
            what="plug-in type",
        )
        if not found:
            self.s.note(
                f"The plug-in type {self.ch.plugin_type} is not registered, so the custom API "
                f"{self.ch.custom_api_name} has no plug-in yet and would answer with an empty response. Build and "
                "register ChannelRelay.dll (rtj-relay/README.md), then run this command again: it binds the API."
            )
            return None
        self.result.plugin_type_id = str(found[0]["plugintypeid"])
        assembly = found[0].get("_pluginassemblyid_value")
        self.result.plugin_assembly_id = str(assembly).lower() if assembly else None
        return self.result.plugin_type_id

    def ensure_custom_api(self, plugin_type_id: str | None) -> None:
        name = self.ch.custom_api_name
        fixed = {"bindingtype": 0, "isfunction": False, "allowedcustomprocessingsteptype": 0}

        def check(api: dict[str, Any]) -> None:
            wrong = {k: api.get(k) for k, v in fixed.items() if api.get(k) != v}
            if wrong:
                raise ProvisionError(
                    f"custom API {name} exists with {wrong}; these columns cannot be changed after creation. Delete "
                    f"the custom API (make.powerapps.com → the solution → Custom APIs) and run again, or pass another "
                    "--rtj-api-name"
                )

        def plugin_bind(api: dict[str, Any]) -> dict[str, Any]:
            current = str(api.get("_plugintypeid_value") or "").lower()
            if plugin_type_id and current != plugin_type_id.lower():
                return {"PluginTypeId@odata.bind": f"/plugintypes({plugin_type_id})"}
            return {}

        desired = {k: v for k, v in self.ch.custom_api_columns().items() if k != "uniquename"}
        outcome = ensure_row(
            self.s,
            CUSTOM_API,
            desired,
            what=f"custom API {name}",
            where=f"uniquename eq {lit(name)}",
            select=("uniquename", "name", "displayname", "description", *fixed, "_plugintypeid_value"),
            body=self.ch.custom_api_body(plugin_type_id),
            check=check,
            extra_changes=plugin_bind,
            created_text=f"create custom API {name} (payload → response)"
            + (f" bound to {self.ch.plugin_type}" if plugin_type_id else " without a plug-in"),
            unchanged_text=None,
            placeholder="<new custom API id>",
        )
        self.result.custom_api_id = outcome.id
        self.result.plugin_bound = bool(plugin_type_id) or bool((outcome.row or {}).get("_plugintypeid_value"))
        if outcome.created:
            return
        self._ensure_api_member(
            outcome.id, CUSTOM_API_REQUEST_PARAMETER, PAYLOAD_PARAMETER, self.ch.payload_parameter_body()
        )
        self._ensure_api_member(
            outcome.id, CUSTOM_API_RESPONSE_PROPERTY, RESPONSE_PROPERTY, self.ch.response_property_body()
        )
        if outcome.status == "unchanged":
            self.s.ok(f"custom API {name}")

    def _ensure_api_member(self, api_id: str, table: Table, unique_name: str, body: dict[str, Any]) -> None:
        kind = "request parameter" if table is CUSTOM_API_REQUEST_PARAMETER else "response property"

        def pick(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
            return next((r for r in rows if r.get("uniquename") == unique_name), None)

        def check(row: dict[str, Any]) -> None:
            if row.get("type") != CUSTOM_API_STRING:
                raise ProvisionError(
                    f"custom API {kind} {unique_name} has type {row.get('type')}, not 10 (String); the type cannot be "
                    "changed: delete that row and run again"
                )

        ensure_row(
            self.s,
            table,
            {},
            what=f"custom API {kind} {unique_name}",
            where=f"_customapiid_value eq {api_id}",
            select=("uniquename", "type"),
            pick=pick,
            body={**body, "CustomAPIId@odata.bind": f"/customapis({api_id})"},
            check=check,
            created_text=f"create custom API {kind} {unique_name} (String)",
            unchanged_text=None,
        )

    # --- extended tables and their msdyn_extendedentityid relationships --------------------------------------
    def ensure_table(self, table: ExtendedTable) -> bool:
        """Returns whether the table was (or, in a dry run, would be) created."""
        meta = self.gw.read(
            f"EntityDefinitions(LogicalName={lit(table.logical_name)})",
            {"$select": "LogicalName,SchemaName,EntitySetName"},
            operation="read extended table",
        )
        if meta is not None:
            if meta.get("SchemaName") not in (None, table.schema_name):
                self.s.note(
                    f"Table {table.logical_name} exists with schema name {meta.get('SchemaName')}; Microsoft asks "
                    "for a lowerCamelCase logical name, which this command keeps entirely lower case."
                )
            self.s.ok(f"table {table.logical_name}")
            return False
        self.s.create_metadata(
            "EntityDefinitions", table.table_body(), what="extended table", placeholder="<new table metadata id>"
        )
        self.s.changed(f"create table {table.logical_name} (extends {table.base_table})")
        return True

    def ensure_relationship(self, table: ExtendedTable) -> bool:
        found = self.gw.read(
            f"EntityDefinitions(LogicalName={lit(table.base_table)})/ManyToOneRelationships",
            {
                "$select": "SchemaName,ReferencedEntity,ReferencingAttribute",
                "$filter": f"ReferencedEntity eq {lit(table.logical_name)}",
            },
            operation="read extended entity relationship",
        )
        if found is None:
            raise ProvisionError(
                f"table {table.base_table} does not exist: real-time journeys (Customer Insights - Journeys) is not "
                "installed in this environment"
            )
        relationships = found.get("value") or []
        if any(str(r.get("ReferencingAttribute", "")).lower() == EXTENDED_LOOKUP for r in relationships):
            self.s.ok(f"relationship {table.base_table}.{EXTENDED_LOOKUP} → {table.logical_name}")
            return False
        self.s.create_metadata(
            "RelationshipDefinitions",
            table.relationship_body(),
            what="extended entity relationship",
            placeholder="<new relationship id>",
        )
        self.s.changed(f"add {table.logical_name} to the polymorphic lookup {table.base_table}.{EXTENDED_LOOKUP}")
        return True

    def publish(self, entities: list[str]) -> None:
        xml = "<importexportxml><entities>" + "".join(f"<entity>{e}</entity>" for e in entities)
        xml += "</entities></importexportxml>"
        self.gw.write("POST", "PublishXml", {"ParameterXml": xml}, operation="publish")
        self.s.changed(f"publish {', '.join(entities)}")

    def main_form(self, table: ExtendedTable, *, new: bool) -> str | None:
        """The table's main form (created with the table): the channel setup wizard shows it."""
        if new and self.gw.dry_run:
            return f"{{main form id of {table.logical_name}}}"
        forms = self.s.rows(
            "systemforms",
            ("formid", "name"),
            f"objecttypecode eq {lit(table.logical_name)} and type eq {FORM_TYPE_MAIN}",
            what="main form",
        )
        if not forms:
            self.s.note(
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
        form_kept = {  # a form chosen by hand stays
            name: (lambda current, wanted: bool(current) or current == wanted)
            for name in columns
            if name.endswith("externalformid")
        }
        ensure_row(
            self.s,
            CHANNEL_DEFINITION,
            columns,
            what=f"channel definition {definition_id}",
            row_id=definition_id,
            select=sorted(self.ch.channel_definition_columns("x", "x")),
            body={"msdyn_channeldefinitionid": definition_id, **columns},
            same=form_kept,
            created_text=f"create channel definition {definition_id} ({self.ch.msdyn_channeltype})",
            placeholder=definition_id,
        )

    def ensure_message_part(self) -> None:
        definition_id = self.ch.channel_definition_id
        columns = self.ch.message_part_columns()

        def pick(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
            part = next((p for p in parts if p.get("msdyn_name") == columns["msdyn_name"]), None)
            others = [str(p.get("msdyn_name")) for p in parts if p is not part]
            if others and self.ch.is_sms:
                self.s.note(
                    f"The SMS channel definition has other message parts ({', '.join(others)}); SMS channels must "
                    "have exactly one, 'text'. Delete the others."
                )
            return part

        outcome = ensure_row(
            self.s,
            MESSAGE_PART,
            columns,
            what="message part text",
            where=f"_msdyn_channeldefinitionid_value eq {definition_id}",
            select=sorted(columns),
            pick=pick,
            body={
                "msdyn_channelmessagepartid": self.ch.message_part_id,
                **columns,
                "msdyn_ChannelDefinitionId@odata.bind": f"/msdyn_channeldefinitions({definition_id})",
            },
            created_text="create message part text (plain text, 1,600 characters)",
            placeholder=self.ch.message_part_id,
        )
        self.result.message_part_id = self.ch.message_part_id if outcome.created else outcome.id

    # --- read privileges ---------------------------------------------------------------------------------------
    def ensure_read_privileges(self, new_tables: set[str]) -> None:
        privileges: dict[str, str] = {}  # privilege id -> name
        for table in self.ch.extended_tables:
            name = table.read_privilege
            if table.logical_name in new_tables and self.gw.dry_run:
                privileges[f"{{{name} id}}"] = name
                continue
            rows = self.s.rows("privileges", ("privilegeid", "name"), f"name eq {lit(name)}", what="privilege")
            if not rows:
                raise ProvisionError(f"privilege {name} does not exist (is table {table.logical_name} published?)")
            privileges[str(rows[0]["privilegeid"]).lower()] = name
        tables = ", ".join(t.logical_name for t in self.ch.extended_tables)
        for role in (role for matches in self.result.roles.values() for role in matches):
            self.grant_read(role, privileges, tables)

    def grant_read(self, role: dict[str, Any], privileges: dict[str, str], tables: str) -> None:
        role_id, role_name = str(role["roleid"]), str(role.get("name"))
        held: dict[str, int] = {}
        if not all(p.startswith("{") for p in privileges):
            granted = (
                self.gw.read(f"RetrieveRolePrivilegesRole(RoleId={role_id})", None, operation="read role privileges")
                or {}
            )
            for item in granted.get("RolePrivileges") or []:
                held[str(item.get("PrivilegeId", "")).lower()] = _DEPTHS.get(str(item.get("Depth")), -1)
        missing = [p for p in privileges if held.get(p, -1) < _DEPTHS[DEPTH_GLOBAL]]
        if not missing:
            self.s.ok(f"Read on {tables} for role '{role_name}'")
            return
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
        self.s.changed(f"grant {names} (Organization) to role '{role_name}'")
