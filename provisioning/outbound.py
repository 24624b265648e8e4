"""The outbound-marketing steps of ``channel provision``: message table + body column (metadata API) → compliance
column check → lookup view / quick view form → tile web resource → PublishXml (only if something changed) → Service
Bus service endpoint → asynchronous post-operation step on Create of the custom channel activity."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioning.definition import ChannelDefinition
from provisioning.secrets import EndpointTarget, key_from_value
from provisioning.tables import SERVICE_ENDPOINT, STEP, WEB_RESOURCE, check_row
from provisioning.tile import TileIds, tile_xml
from provisioning.toolkit import ProvisionError, Steps, ensure_row, lit

# serviceendpoint.contract: 2 Queue, 6 Queue (Persistent). Which one the Plug-in Registration Tool writes for a
# queue today is not documented (reference: UNCONFIRMED), so it is an option; 2 is the default.
CONTRACTS = {"queue": 2, "queue-persistent": 6}
MESSAGE_FORMAT_JSON = 2
AUTH_SAS_KEY = 2
CONNECTION_MODE_NORMAL = 1
NAMESPACE_FORMAT_ADDRESS = 2
USER_CLAIM_NONE = 1
MODE_ASYNC = 1
STAGE_POST_OPERATION = 40
DEPLOYMENT_SERVER = 0
QUERY_TYPE_LOOKUP_VIEW = 64
FORM_TYPE_QUICK_VIEW = 6
WEB_RESOURCE_XML = 4


@dataclass(frozen=True)
class OutboundOptions:
    definition: ChannelDefinition
    solution: str
    namespace: str
    queue: str
    sas_key_name: str
    key_source: Callable[[], str] | None = None  # returns a bare key or a connection string; called only if needed
    key_source_description: str = ""
    rotate_key: bool = False
    contract: str = "queue"
    endpoint_name: str | None = None
    lookup_view_id: str | None = None
    quick_view_form_id: str | None = None

    @property
    def service_endpoint_name(self) -> str:
        return self.endpoint_name or f"{self.definition.prefix}_{self.definition.tile_name.lower()}_activities"

    @property
    def namespace_address(self) -> str:
        return f"sb://{self.namespace}.servicebus.windows.net/"


@dataclass
class OutboundResult:
    tile: str = ""
    entity_set_name: str = ""
    service_endpoint_id: str = ""
    step_id: str = ""


class OutboundSteps:
    def __init__(self, steps: Steps, options: OutboundOptions) -> None:
        self.s = steps
        self.gw = steps.gw
        self.opt = options
        self.defn = options.definition
        self.result = OutboundResult()

    def preflight(self) -> None:
        """Check every row this part writes against the column table before anything is written."""
        if self.opt.contract not in CONTRACTS:
            raise ProvisionError(f"contract must be one of {sorted(CONTRACTS)}")
        for table, body in (
            (SERVICE_ENDPOINT.logical_name, self.endpoint_values()),
            (STEP.logical_name, self.step_values()),
            (WEB_RESOURCE.logical_name, {"name": self.defn.web_resource_name, "displayname": self.tile_display}),
        ):
            try:
                check_row(table, body)
            except ValueError as exc:
                raise ProvisionError(str(exc)) from None

    def run(self) -> OutboundResult:
        table_changed, entity_set = self.ensure_table()
        self.check_compliance_column()
        tile_ids = self.tile_ids(entity_set, table_new=table_changed == "table")
        resource_id, resource_changed = self.ensure_tile(tile_ids)
        self.publish(table_changed is not None, resource_id if resource_changed else None)
        endpoint_id, endpoint_new = self.ensure_service_endpoint()
        self.ensure_step(endpoint_id, endpoint_new)
        return self.result

    # --- message table ---------------------------------------------------------------------------------
    def ensure_table(self) -> tuple[str | None, str]:
        """Returns (what was created: "table" / "column" / None, the entity set name)."""
        table = self.defn.table_logical_name
        path = f"EntityDefinitions(LogicalName={lit(table)})"
        select = {"$select": "LogicalName,EntitySetName,PrimaryNameAttribute"}
        meta = self.gw.read(path, select, operation="read table")
        created: str | None = None
        if meta is None:
            self.s.create_metadata(
                "EntityDefinitions", self.defn.table_body(), what="table", placeholder="<new table metadata id>"
            )
            self.s.changed(f"create table {table}")
            created = "table"
            if not self.gw.dry_run:
                meta = self.gw.read(path, select, operation="read table")
        elif meta.get("PrimaryNameAttribute") not in (None, self.defn.name_column):
            raise ProvisionError(
                f"table {table} exists with primary name column {meta.get('PrimaryNameAttribute')}, "
                f"not {self.defn.name_column}: the tile's TitleFieldName would be wrong"
            )
        entity_set = str(meta["EntitySetName"]) if meta else self.defn.predicted_entity_set_name
        self.result.entity_set_name = entity_set

        column = self.defn.body_column
        attribute = None
        if not (created and self.gw.dry_run):
            attribute = self.gw.read(
                f"{path}/Attributes(LogicalName={lit(column)})",
                {"$select": "LogicalName,AttributeType"},
                operation="read column",
            )
        if attribute is None:
            self.s.create_metadata(
                f"{path}/Attributes",
                self.defn.body_column_body(),
                what="column",
                placeholder="<new column metadata id>",
            )
            self.s.changed(f"create column {table}.{column}")
            created = created or "column"
        elif attribute.get("AttributeType") not in ("Memo", "String"):
            raise ProvisionError(
                f"column {table}.{column} exists as {attribute.get('AttributeType')}; it must be a text column"
            )
        if created is None:
            self.s.ok(f"table {table} ({entity_set}) with column {column}")
        return created, entity_set

    def check_compliance_column(self) -> None:
        column = self.defn.compliance_column
        attribute = self.gw.read(
            f"EntityDefinitions(LogicalName='contact')/Attributes(LogicalName={lit(column)})",
            {"$select": "LogicalName,AttributeType"},
            operation="read compliance column",
        )
        if attribute is None:
            raise ProvisionError(f"contact has no column {column} (the tile's ComplianceField)")
        if attribute.get("AttributeType") != "Boolean":
            raise ProvisionError(
                f"contact.{column} is {attribute.get('AttributeType')}; the ComplianceField must be a Yes/No column"
            )
        self.s.say(f"compliance column contact.{column}: Boolean")

    # --- tile ------------------------------------------------------------------------------------------
    def tile_ids(self, entity_set: str, *, table_new: bool) -> TileIds:
        table = self.defn.table_logical_name
        lookup_view = self.opt.lookup_view_id
        quick_view = self.opt.quick_view_form_id
        if table_new and self.gw.dry_run:
            return TileIds(entity_set, lookup_view or "{lookup view id of the new table}", quick_view)
        if lookup_view is None:
            views = self.s.rows(
                "savedqueries",
                ("savedqueryid", "name"),
                f"returnedtypecode eq {lit(table)} and querytype eq {QUERY_TYPE_LOOKUP_VIEW}",
                what="lookup view",
            )
            if not views:
                raise ProvisionError(f"table {table} has no lookup view (savedquery querytype 64)")
            lookup_view = str(views[0]["savedqueryid"])
        if quick_view is None:
            forms = self.s.rows(
                "systemforms",
                ("formid", "name"),
                f"objecttypecode eq {lit(table)} and type eq {FORM_TYPE_QUICK_VIEW}",
                what="quick view form",
            )
            if forms:
                quick_view = str(forms[0]["formid"])
            else:
                self.s.note(
                    f"Table {table} has no quick view form, so the tile has no QuickViewFormId. To show a preview in "
                    "the journey designer, create one (make.powerapps.com → Tables → the table → Forms → New → "
                    "Quick view form), publish, and run this command again."
                )
        return TileIds(entity_set, lookup_view, quick_view)

    @property
    def tile_display(self) -> str:
        return f"{self.defn.tile_label} custom channel tile"

    def ensure_tile(self, ids: TileIds) -> tuple[str, bool]:
        name = self.defn.web_resource_name
        xml = tile_xml(self.defn, ids)
        self.result.tile = xml
        content = base64.b64encode(xml.encode("utf-8")).decode("ascii")

        def check(row: dict[str, Any]) -> None:
            if row.get("webresourcetype") != WEB_RESOURCE_XML:
                raise ProvisionError(f"web resource {name} exists with type {row.get('webresourcetype')}, not 4 (XML)")

        outcome = ensure_row(
            self.s,
            WEB_RESOURCE,
            {"content": content, "displayname": self.tile_display},
            what=f"tile web resource {name}",
            where=f"name eq {lit(name)}",
            select=("name", "displayname", "webresourcetype", "content"),
            body={
                "name": name,
                "displayname": self.tile_display,
                "webresourcetype": WEB_RESOURCE_XML,
                "content": content,
            },
            check=check,
            same={"content": lambda current, _: _decoded(current) == xml.encode("utf-8")},
            created_text=f"upload tile web resource {name}",
            placeholder="<new web resource id>",
        )
        return outcome.id, outcome.status != "unchanged"

    def publish(self, table_changed: bool, resource_id: str | None) -> None:
        if not table_changed and resource_id is None:
            return
        parts = ["<importexportxml>"]
        if table_changed:
            parts.append(f"<entities><entity>{self.defn.table_logical_name}</entity></entities>")
        if resource_id is not None:
            parts.append(f"<webresources><webresource>{{{resource_id}}}</webresource></webresources>")
        parts.append("</importexportxml>")
        self.gw.write("POST", "PublishXml", {"ParameterXml": "".join(parts)}, operation="publish")
        self.s.changed("publish the table and the tile")

    # --- service endpoint ------------------------------------------------------------------------------
    def endpoint_values(self) -> dict[str, Any]:
        return {
            "name": self.opt.service_endpoint_name,
            "description": f"Custom channel activities of {self.opt.solution} to Service Bus queue {self.opt.queue}",
            "contract": CONTRACTS.get(self.opt.contract),
            "connectionmode": CONNECTION_MODE_NORMAL,
            "authtype": AUTH_SAS_KEY,
            "namespaceformat": NAMESPACE_FORMAT_ADDRESS,
            "namespaceaddress": self.opt.namespace_address,
            "solutionnamespace": self.opt.namespace,
            "path": self.opt.queue,
            "saskeyname": self.opt.sas_key_name,
            "messageformat": MESSAGE_FORMAT_JSON,
            "userclaim": USER_CLAIM_NONE,
        }

    def _sas_key(self) -> str:
        if self.gw.dry_run:
            return f"<SAS key from {self.opt.key_source_description or 'the key source'}>"
        if self.opt.key_source is None:
            raise ProvisionError(
                "the service endpoint needs its SAS key (new endpoint, no key set, or --rotate-key): "
                "pass --sas-key or --key-vault with --secret-name"
            )
        target = EndpointTarget(self.opt.namespace, self.opt.queue, self.opt.sas_key_name)
        return key_from_value(self.opt.key_source(), target)

    def ensure_service_endpoint(self) -> tuple[str, bool]:
        desired = self.endpoint_values()
        outcome = ensure_row(
            self.s,
            SERVICE_ENDPOINT,
            desired,
            what=f"service endpoint {desired['name']}",
            where=f"name eq {lit(self.opt.service_endpoint_name)}",
            select=(*desired, "issaskeyset"),
            body=lambda: {**desired, "saskey": self._sas_key()},
            extra_changes=lambda row: (
                {"saskey": self._sas_key()} if self.opt.rotate_key or not row.get("issaskeyset") else {}
            ),
            created_text=f"create service endpoint {desired['name']} → {desired['namespaceaddress']}{desired['path']}",
            placeholder="<new serviceendpoint id>",
        )
        self.result.service_endpoint_id = outcome.id
        return outcome.id, outcome.created

    # --- step --------------------------------------------------------------------------------------------
    def step_values(self) -> dict[str, Any]:
        activity = self.defn.activity_entity
        return {
            "name": f"{self.opt.service_endpoint_name}: Create of {activity}",
            "description": "Posts each new custom channel activity to the channel's Service Bus queue (JSON)",
            "mode": MODE_ASYNC,
            "stage": STAGE_POST_OPERATION,
            "rank": 1,
            "supporteddeployment": DEPLOYMENT_SERVER,
            "asyncautodelete": True,
        }

    def ensure_step(self, endpoint_id: str, endpoint_new: bool) -> None:
        activity = self.defn.activity_entity
        messages = self.s.rows("sdkmessages", ("sdkmessageid", "name"), "name eq 'Create'", what="sdkmessage")
        if len(messages) != 1:
            raise ProvisionError(f"expected one sdkmessage named Create, found {len(messages)}")
        message_id = str(messages[0]["sdkmessageid"])
        filters = self.s.rows(
            "sdkmessagefilters",
            ("sdkmessagefilterid", "primaryobjecttypecode"),
            f"primaryobjecttypecode eq {lit(activity)} and _sdkmessageid_value eq {message_id}",
            what="sdkmessagefilter",
        )
        if not filters:
            raise ProvisionError(
                f"no Create message filter for {activity}: is Customer Insights - Journeys with outbound marketing "
                "installed in this environment?"
            )
        filter_id = str(filters[0]["sdkmessagefilterid"])
        desired = self.step_values()
        binds = {
            "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
            "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
            "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})",
        }

        def pick(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
            return next((s for s in steps if str(s.get("_sdkmessagefilterid_value", "")).lower() == filter_id), None)

        def check(step: dict[str, Any]) -> None:
            if step.get("statecode") == 1:
                self.s.note(
                    f"The step {step.get('name')} is disabled; enable it (Plug-in Registration Tool or the solution's "
                    "SDK message processing steps) or activities will not reach the queue."
                )

        def message_bind(step: dict[str, Any]) -> dict[str, Any]:
            if str(step.get("_sdkmessageid_value", "")).lower() != message_id:
                return {"sdkmessageid@odata.bind": binds["sdkmessageid@odata.bind"]}
            return {}

        outcome = ensure_row(
            self.s,
            STEP,
            desired,
            what=f"step on Create of {activity}",
            where=f"_eventhandler_value eq {endpoint_id}",
            select=(*desired, "statecode", "_sdkmessageid_value", "_sdkmessagefilterid_value"),
            pick=pick,
            skip_read=endpoint_new and self.gw.dry_run,
            body={**desired, **binds},
            check=check,
            extra_changes=message_bind,
            created_text=f"register async post-operation step on Create of {activity}",
            placeholder="<new step id>",
        )
        self.result.step_id = outcome.id


def _decoded(content: Any) -> bytes | None:
    if not isinstance(content, str):
        return None
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return None
