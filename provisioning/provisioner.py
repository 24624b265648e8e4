"""``channel provision``: create or update everything Dataverse-side, idempotently.

Each step reads first, compares with the definition and writes only on a difference, so a second run makes
zero writes. Every create carries ``MSCRM.SolutionUniqueName`` so the components land in the named unmanaged
solution. Order: publisher + solution → message table + body column (metadata API) → compliance column check →
lookup view / quick view form → tile web resource → PublishXml (only if something changed) → Service Bus service
endpoint → asynchronous post-operation step on Create of the custom channel activity → (optional) application user.
With ``rtj`` options the real-time journeys steps follow (provisioning/rtj.py); ``outbound=False`` runs only those
(outbound marketing has been removed from every org, and the RTJ part needs no Service Bus values).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioning.definition import ChannelDefinition
from provisioning.gateway import Gateway
from provisioning.secrets import EndpointTarget, key_from_value
from provisioning.tile import TileIds, tile_xml

if TYPE_CHECKING:
    from provisioning.rtj import RtjOptions, RtjResult

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
SOLUTION_VERSION = "1.0.0.0"


class ProvisionError(RuntimeError):
    """The org is in a state provisioning must not paper over; the message says what to fix."""


def lit(value: str) -> str:
    """An OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def option_value_prefix(prefix: str) -> int:
    """A stable choice-value prefix (10000-99999) for a new publisher, derived from its customization prefix."""
    return 10000 + zlib.crc32(prefix.encode()) % 90000


@dataclass(frozen=True)
class ProvisionOptions:
    definition: ChannelDefinition
    solution: str
    namespace: str = ""  # the Service Bus values are needed by the outbound-marketing steps only
    queue: str = ""
    sas_key_name: str = ""
    key_source: Callable[[], str] | None = None  # returns a bare key or a connection string; called only if needed
    key_source_description: str = ""
    rotate_key: bool = False
    contract: str = "queue"
    endpoint_name: str | None = None
    publisher: str | None = None
    lookup_view_id: str | None = None
    quick_view_form_id: str | None = None
    app_user_client_id: str | None = None
    business_unit: str | None = None
    outbound: bool = True  # the outbound-marketing steps (table, tile, service endpoint, step)
    rtj: RtjOptions | None = None  # the real-time journeys steps

    @property
    def service_endpoint_name(self) -> str:
        return self.endpoint_name or f"{self.definition.prefix}_{self.definition.tile_name.lower()}_activities"

    @property
    def publisher_name(self) -> str:
        return self.publisher or f"{self.solution}Publisher"

    @property
    def namespace_address(self) -> str:
        return f"sb://{self.namespace}.servicebus.windows.net/"


@dataclass
class ProvisionResult:
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tile: str = ""
    entity_set_name: str = ""
    service_endpoint_id: str = ""
    step_id: str = ""
    app_user_id: str = ""
    rtj: RtjResult | None = None


class Provisioner:
    def __init__(self, gateway: Gateway, options: ProvisionOptions, *, say: Callable[[str], None] = print) -> None:
        self.gw = gateway
        self.opt = options
        self.defn = options.definition
        self.say = say
        self.result = ProvisionResult()

    @property
    def _in_solution(self) -> dict[str, str]:
        return {"MSCRM.SolutionUniqueName": self.opt.solution}

    def _changed(self, text: str) -> None:
        self.result.changes.append(text)
        self.say(("would " if self.gw.dry_run else "") + text)

    def _ok(self, text: str) -> None:
        self.say(f"{text}: up to date")

    # ------------------------------------------------------------------------------------------------
    def run(self) -> ProvisionResult:
        if self.opt.contract not in CONTRACTS:
            raise ProvisionError(f"contract must be one of {sorted(CONTRACTS)}")
        if not self.opt.outbound and self.opt.rtj is None:
            raise ProvisionError("nothing to do: the outbound-marketing steps are off and --rtj is not given")
        self.ensure_solution()
        if self.opt.outbound:
            self.run_outbound()
        if self.opt.rtj is not None:
            from provisioning.rtj import RtjSteps  # imports this module

            self.result.rtj = RtjSteps(self, self.opt.rtj).run()
        if self.opt.app_user_client_id:
            self.ensure_app_user(self.opt.app_user_client_id)
        return self.result

    def run_outbound(self) -> None:
        """The outbound-marketing contract: message table, tile, service endpoint, step."""
        table_changed, entity_set = self.ensure_table()
        self.check_compliance_column()
        tile_ids = self.tile_ids(entity_set, table_new=table_changed == "table")
        resource_id, resource_changed = self.ensure_tile(tile_ids)
        self.publish(table_changed is not None, resource_id if resource_changed else None)
        endpoint_id, endpoint_new = self.ensure_service_endpoint()
        self.ensure_step(endpoint_id, endpoint_new)

    # --- publisher + solution -----------------------------------------------------------------------
    def ensure_solution(self) -> None:
        prefix = self.defn.prefix
        found = self.gw.rows(
            "solutions",
            {
                "$select": "solutionid,uniquename,ismanaged,_publisherid_value",
                "$filter": f"uniquename eq {lit(self.opt.solution)}",
            },
            operation="read solution",
        )
        if found:
            solution = found[0]
            if solution.get("ismanaged"):
                raise ProvisionError(f"solution {self.opt.solution} is managed; components can only go to unmanaged")
            publisher = self.gw.read(
                f"publishers({solution['_publisherid_value']})",
                {"$select": "publisherid,uniquename,customizationprefix"},
                operation="read publisher",
            )
            actual = (publisher or {}).get("customizationprefix")
            if actual != prefix:
                raise ProvisionError(
                    f"solution {self.opt.solution} belongs to a publisher with prefix {actual!r}, not {prefix!r}: "
                    f"run with --prefix {actual} or choose another --solution"
                )
            self._ok(f"solution {self.opt.solution}")
            return
        publishers = self.gw.rows(
            "publishers",
            {
                "$select": "publisherid,uniquename,customizationprefix",
                "$filter": f"customizationprefix eq {lit(prefix)}",
            },
            operation="read publisher",
        )
        if publishers:
            publisher_id = str(publishers[0]["publisherid"])
            self.say(f"publisher {publishers[0].get('uniquename')} (prefix {prefix}): exists")
        else:
            publisher_id = self.gw.write(
                "POST",
                "publishers",
                {
                    "uniquename": self.opt.publisher_name,
                    "friendlyname": self.opt.publisher_name,
                    "customizationprefix": prefix,
                    "customizationoptionvalueprefix": option_value_prefix(prefix),
                },
                operation="create publisher",
                placeholder="<new publisher id>",
            )
            self._changed(f"create publisher {self.opt.publisher_name} (prefix {prefix})")
        self.gw.write(
            "POST",
            "solutions",
            {
                "uniquename": self.opt.solution,
                "friendlyname": self.opt.solution,
                "version": SOLUTION_VERSION,
                "publisherid@odata.bind": f"/publishers({publisher_id})",
            },
            operation="create solution",
            placeholder="<new solution id>",
        )
        self._changed(f"create solution {self.opt.solution}")

    # --- message table ---------------------------------------------------------------------------------
    def ensure_table(self) -> tuple[str | None, str]:
        """Returns (what was created: "table" / "column" / None, the entity set name)."""
        table = self.defn.table_logical_name
        path = f"EntityDefinitions(LogicalName={lit(table)})"
        select = {"$select": "LogicalName,EntitySetName,PrimaryNameAttribute"}
        meta = self.gw.read(path, select, operation="read table")
        created: str | None = None
        if meta is None:
            self.gw.write(
                "POST",
                "EntityDefinitions",
                self.defn.table_body(),
                operation="create table",
                headers=self._in_solution,
                placeholder="<new table metadata id>",
            )
            self._changed(f"create table {table}")
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
            self.gw.write(
                "POST",
                f"{path}/Attributes",
                self.defn.body_column_body(),
                operation="create column",
                headers=self._in_solution,
                placeholder="<new column metadata id>",
            )
            self._changed(f"create column {table}.{column}")
            created = created or "column"
        elif attribute.get("AttributeType") not in ("Memo", "String"):
            raise ProvisionError(
                f"column {table}.{column} exists as {attribute.get('AttributeType')}; it must be a text column"
            )
        if created is None:
            self._ok(f"table {table} ({entity_set}) with column {column}")
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
        self.say(f"compliance column contact.{column}: Boolean")

    # --- tile ------------------------------------------------------------------------------------------
    def tile_ids(self, entity_set: str, *, table_new: bool) -> TileIds:
        table = self.defn.table_logical_name
        lookup_view = self.opt.lookup_view_id
        quick_view = self.opt.quick_view_form_id
        if table_new and self.gw.dry_run:
            return TileIds(entity_set, lookup_view or "{lookup view id of the new table}", quick_view)
        if lookup_view is None:
            views = self.gw.rows(
                "savedqueries",
                {
                    "$select": "savedqueryid,name",
                    "$filter": f"returnedtypecode eq {lit(table)} and querytype eq {QUERY_TYPE_LOOKUP_VIEW}",
                },
                operation="read lookup view",
            )
            if not views:
                raise ProvisionError(f"table {table} has no lookup view (savedquery querytype 64)")
            lookup_view = str(views[0]["savedqueryid"])
        if quick_view is None:
            forms = self.gw.rows(
                "systemforms",
                {
                    "$select": "formid,name",
                    "$filter": f"objecttypecode eq {lit(table)} and type eq {FORM_TYPE_QUICK_VIEW}",
                },
                operation="read quick view form",
            )
            if forms:
                quick_view = str(forms[0]["formid"])
            else:
                self.result.notes.append(
                    f"Table {table} has no quick view form, so the tile has no QuickViewFormId. To show a preview in "
                    "the journey designer, create one (make.powerapps.com → Tables → the table → Forms → New → "
                    "Quick view form), publish, and run this command again."
                )
        return TileIds(entity_set, lookup_view, quick_view)

    def ensure_tile(self, ids: TileIds) -> tuple[str, bool]:
        name = self.defn.web_resource_name
        xml = tile_xml(self.defn, ids)
        self.result.tile = xml
        content = base64.b64encode(xml.encode("utf-8")).decode("ascii")
        display = f"{self.defn.tile_label} custom channel tile"
        found = self.gw.rows(
            "webresourceset",
            {"$select": "webresourceid,name,displayname,webresourcetype,content", "$filter": f"name eq {lit(name)}"},
            operation="read web resource",
        )
        if not found:
            resource_id = self.gw.write(
                "POST",
                "webresourceset",
                {"name": name, "displayname": display, "webresourcetype": WEB_RESOURCE_XML, "content": content},
                operation="create web resource",
                headers=self._in_solution,
                placeholder="<new web resource id>",
            )
            self._changed(f"upload tile web resource {name}")
            return resource_id, True
        row = found[0]
        resource_id = str(row["webresourceid"])
        if row.get("webresourcetype") != WEB_RESOURCE_XML:
            raise ProvisionError(f"web resource {name} exists with type {row.get('webresourcetype')}, not 4 (XML)")
        changes: dict[str, Any] = {}
        if _decoded(row.get("content")) != xml.encode("utf-8"):
            changes["content"] = content
        if row.get("displayname") != display:
            changes["displayname"] = display
        if not changes:
            self._ok(f"tile web resource {name}")
            return resource_id, False
        self.gw.write(
            "PATCH",
            f"webresourceset({resource_id})",
            changes,
            operation="update web resource",
            headers={"If-Match": "*"},
        )
        self._changed(f"update tile web resource {name} ({', '.join(sorted(changes))})")
        return resource_id, True

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
        self._changed("publish the table and the tile")

    # --- service endpoint ------------------------------------------------------------------------------
    def _endpoint_values(self) -> dict[str, Any]:
        return {
            "name": self.opt.service_endpoint_name,
            "description": f"Custom channel activities of {self.opt.solution} to Service Bus queue {self.opt.queue}",
            "contract": CONTRACTS[self.opt.contract],
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
        desired = self._endpoint_values()
        found = self.gw.rows(
            "serviceendpoints",
            {
                "$select": ",".join(["serviceendpointid", *desired, "issaskeyset"]),
                "$filter": f"name eq {lit(self.opt.service_endpoint_name)}",
            },
            operation="read service endpoint",
        )
        if not found:
            body = {**desired, "saskey": self._sas_key()}
            endpoint_id = self.gw.write(
                "POST",
                "serviceendpoints",
                body,
                operation="create service endpoint",
                headers=self._in_solution,
                placeholder="<new serviceendpoint id>",
            )
            self._changed(f"create service endpoint {desired['name']} → {desired['namespaceaddress']}{desired['path']}")
            self.result.service_endpoint_id = endpoint_id
            return endpoint_id, True
        row = found[0]
        endpoint_id = str(row["serviceendpointid"])
        self.result.service_endpoint_id = endpoint_id
        changes = {k: v for k, v in desired.items() if row.get(k) != v}
        if self.opt.rotate_key or not row.get("issaskeyset"):
            changes["saskey"] = self._sas_key()
        if not changes:
            self._ok(f"service endpoint {desired['name']}")
            return endpoint_id, False
        self.gw.write(
            "PATCH",
            f"serviceendpoints({endpoint_id})",
            changes,
            operation="update service endpoint",
            headers={"If-Match": "*"},
        )
        self._changed(f"update service endpoint {desired['name']} ({', '.join(sorted(changes))})")
        return endpoint_id, False

    # --- step --------------------------------------------------------------------------------------------
    def ensure_step(self, endpoint_id: str, endpoint_new: bool) -> None:
        activity = self.defn.activity_entity
        messages = self.gw.rows(
            "sdkmessages", {"$select": "sdkmessageid,name", "$filter": "name eq 'Create'"}, operation="read sdkmessage"
        )
        if len(messages) != 1:
            raise ProvisionError(f"expected one sdkmessage named Create, found {len(messages)}")
        message_id = str(messages[0]["sdkmessageid"])
        filters = self.gw.rows(
            "sdkmessagefilters",
            {
                "$select": "sdkmessagefilterid,primaryobjecttypecode",
                "$filter": f"primaryobjecttypecode eq {lit(activity)} and _sdkmessageid_value eq {message_id}",
            },
            operation="read sdkmessagefilter",
        )
        if not filters:
            raise ProvisionError(
                f"no Create message filter for {activity}: is Customer Insights - Journeys with outbound marketing "
                "installed in this environment?"
            )
        filter_id = str(filters[0]["sdkmessagefilterid"])
        desired: dict[str, Any] = {
            "name": f"{self.opt.service_endpoint_name}: Create of {activity}",
            "description": "Posts each new custom channel activity to the channel's Service Bus queue (JSON)",
            "mode": MODE_ASYNC,
            "stage": STAGE_POST_OPERATION,
            "rank": 1,
            "supporteddeployment": DEPLOYMENT_SERVER,
            "asyncautodelete": True,
        }
        binds = {
            "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
            "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
            "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})",
        }
        steps: list[dict[str, Any]] = []
        if not (endpoint_new and self.gw.dry_run):
            steps = self.gw.rows(
                "sdkmessageprocessingsteps",
                {
                    "$select": "sdkmessageprocessingstepid,name,description,mode,stage,rank,supporteddeployment,"
                    "asyncautodelete,statecode,_sdkmessageid_value,_sdkmessagefilterid_value",
                    "$filter": f"_eventhandler_value eq {endpoint_id}",
                },
                operation="read step",
            )
        step = next((s for s in steps if str(s.get("_sdkmessagefilterid_value", "")).lower() == filter_id), None)
        if step is None:
            self.result.step_id = self.gw.write(
                "POST",
                "sdkmessageprocessingsteps",
                {**desired, **binds},
                operation="create step",
                headers=self._in_solution,
                placeholder="<new step id>",
            )
            self._changed(f"register async post-operation step on Create of {activity}")
            return
        step_id = str(step["sdkmessageprocessingstepid"])
        self.result.step_id = step_id
        changes = {k: v for k, v in desired.items() if step.get(k) != v}
        if str(step.get("_sdkmessageid_value", "")).lower() != message_id:
            changes["sdkmessageid@odata.bind"] = binds["sdkmessageid@odata.bind"]
        if step.get("statecode") == 1:
            self.result.notes.append(
                f"The step {step.get('name')} is disabled; enable it (Plug-in Registration Tool or the solution's "
                "SDK message processing steps) or activities will not reach the queue."
            )
        if not changes:
            self._ok(f"step on Create of {activity}")
            return
        self.gw.write(
            "PATCH",
            f"sdkmessageprocessingsteps({step_id})",
            changes,
            operation="update step",
            headers={"If-Match": "*"},
        )
        self._changed(f"update step on Create of {activity} ({', '.join(sorted(changes))})")

    # --- application user --------------------------------------------------------------------------------
    def _business_unit_id(self) -> str:
        wanted = self.opt.business_unit
        if wanted and _is_guid(wanted):
            return wanted.lower()
        flt = f"name eq {lit(wanted)}" if wanted else "_parentbusinessunitid_value eq null"
        units = self.gw.rows(
            "businessunits", {"$select": "businessunitid,name", "$filter": flt}, operation="read business unit"
        )
        if len(units) != 1:
            raise ProvisionError(
                f"business unit {wanted or '(root)'}: found {len(units)}; pass --business-unit <id or exact name>"
            )
        return str(units[0]["businessunitid"])

    def ensure_app_user(self, client_id: str) -> None:
        if not _is_guid(client_id):
            raise ProvisionError(f"--create-app-user needs the managed identity's client id (a GUID), not {client_id}")
        users = self.gw.rows(
            "systemusers",
            {"$select": "systemuserid,applicationid", "$filter": f"applicationid eq {client_id.lower()}"},
            operation="read application user",
        )
        if users:
            self.result.app_user_id = str(users[0]["systemuserid"])
            self._ok(f"application user {client_id}")
            return
        business_unit = self._business_unit_id()
        self.result.app_user_id = self.gw.write(
            "POST",
            "systemusers",
            {"applicationid": client_id.lower(), "businessunitid@odata.bind": f"/businessunits({business_unit})"},
            operation="create application user",
            placeholder="<new systemuser id>",
        )
        self._changed(f"create application user for client id {client_id}")


def _decoded(content: Any) -> bytes | None:
    if not isinstance(content, str):
        return None
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_guid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36
