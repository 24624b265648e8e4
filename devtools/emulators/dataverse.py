"""Loopback emulator of the Dataverse Web API subset this project uses.

Serves ``/api/data/v9.2/...`` on 127.0.0.1 (see ``DataverseEmulator``).
Wire formats follow the Dataverse Web API documentation (headers, error
bodies, service protection, ``$batch``, ``Microsoft.Dynamics.CRM.In``).
Stdlib only.

Run ``python -m devtools.emulators.dataverse --port 0 --seed demo`` to
serve a seeded demo org.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import json
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import quoteattr

from devtools.emulators._base import DropConnection, EmulatorBase, Incoming, Response

__all__ = [
    "SIGNATURES",
    "ActionParameter",
    "DataverseEmulator",
    "Operation",
    "seed_demo",
]

API_VERSION = "v9.2"
API_PREFIX = f"/api/data/{API_VERSION}/"
_API_PATH_RE = re.compile(r"^/api/data/v9\.[0-2]/(?P<rest>.*)$")
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENTITY_DEF_RE = re.compile(
    r"^EntityDefinitions\((?:LogicalName=(?:'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\")|(?P<mid>[0-9a-fA-F-]{36}))\)$"
)
_ATTRIBUTES_RE = re.compile(
    r"^EntityDefinitions\(LogicalName='(?P<entity>[^']*)'\)/Attributes"
    r"(?:\(LogicalName='(?P<attr>[^']*)'\))?$"
)
_ENTITY_PATH_RE = re.compile(r"^(?P<set>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<key>[^)]*)\))?$")
_MANY_TO_ONE_RE = re.compile(r"^EntityDefinitions\(LogicalName='(?P<entity>[^']*)'\)/ManyToOneRelationships$")
_ROLE_PRIVILEGES_RE = re.compile(r"^RetrieveRolePrivilegesRole\(RoleId=(?P<id>[^)]*)\)$")
_ADD_PRIVILEGES_RE = re.compile(r"^roles\((?P<id>[0-9a-fA-F-]{36})\)/(?:Microsoft\.Dynamics\.CRM\.)?AddPrivilegesRole$")
_IN_RE = re.compile(
    r"^Microsoft\.Dynamics\.CRM\.In\(\s*PropertyName\s*=\s*(?P<pn>'(?:[^']|'')*'|\"[^\"]*\"|@\w+)\s*,"
    r"\s*PropertyValues\s*=\s*(?P<pv>\[.*\]|@\w+)\s*\)$",
    re.DOTALL,
)
_CMP_RE = re.compile(r"^(?P<col>[A-Za-z_][A-Za-z0-9_]*)\s+(?P<op>eq|ne)\s+(?P<val>.+)$", re.DOTALL)
_FORMATTED = "OData.Community.Display.V1.FormattedValue"
MAX_URL_LENGTH = 32_768
MAX_BATCH_URL_LENGTH = 65_536
MAX_BATCH_OPERATIONS = 1_000

JSON_CT = "application/json; odata.metadata=minimal"

# Error codes (hex HRESULTs as the Web API returns them).
CODE_OBJECT_DOES_NOT_EXIST = "0x80040217"
CODE_BAD_URI = "0x80060888"
CODE_ODATA = "0x0"
CODE_INVALID_ARGUMENT = "0x80040203"
CODE_DUPLICATE = "0x80040237"
CODE_CONCURRENCY_VERSION = "0x80060882"
CODE_MISSING_ATTRIBUTE = "0x80041103"
CODE_PLUGIN = "0x80040265"
CODE_THROTTLE_REQUESTS = "0x80072322"
CODE_THROTTLE_TIME = "0x80072321"
CODE_THROTTLE_CONCURRENCY = "0x80072326"


@dataclass(frozen=True)
class ActionParameter:
    """One parameter of an action: ``type`` is ``Edm.String`` or ``mscrm.<logicalname>``."""

    name: str
    type: str
    required: bool = True

    @property
    def entity(self) -> str | None:
        return self.type[len("mscrm.") :] if self.type.startswith("mscrm.") else None


INTERACTION_ACTION = "msdyncrm_CustomChannelActivityCreateInteraction"
NOTIFICATION_ACTION = "msdyn_D365ChannelsNotification"
INBOUND_ACTION = "msdyn_D365ChannelsInbound"

SIGNATURES: dict[str, tuple[ActionParameter, ...]] = {
    # Current doc (CID create-custom-channel-activity-interaction.md).
    "customerjourney": (
        ActionParameter("ActivityId", "Edm.String"),
        ActionParameter("CustomerJourney", "mscrm.msdyncrm_customerjourney"),
        ActionParameter("CustomerJourneyIteration", "mscrm.msdyncrm_customerjourneyiteration"),
        ActionParameter("Contact", "mscrm.contact"),
        ActionParameter("EntityType", "Edm.String"),
        ActionParameter("EntityId", "Edm.String"),
        ActionParameter("ResponseType", "Edm.String"),
        ActionParameter("TriggerKeyword", "Edm.String", required=False),
    ),
    # Older (2017) Web API reference.
    "campaign": (
        ActionParameter("ActivityId", "Edm.String"),
        ActionParameter("Campaign", "mscrm.campaign"),
        ActionParameter("CustomerJourneyIteration", "mscrm.msdyncrm_customerjourneyiteration"),
        ActionParameter("Contact", "mscrm.contact"),
        ActionParameter("EntityId", "Edm.String"),
        ActionParameter("EntityType", "Edm.String"),
        ActionParameter("WorkflowId", "Edm.String", required=False),
        ActionParameter("ResponseType", "Edm.String"),
        ActionParameter("TriggerKeyword", "Edm.String", required=False),
    ),
}


@dataclass
class Operation:
    """One executed Web API operation (a plain request or one part of a $batch)."""

    method: str
    path: str  # path after /api/data/v9.2/
    query: str
    body: Any
    status: int
    in_batch: bool


@dataclass
class _Entity:
    logical_name: str
    entity_set_name: str
    primary_key: str
    metadata_id: str
    columns: set[str] = field(default_factory=set)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    formatted: dict[str, dict[str, str]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # customization API (metadata, solution components); empty for tables added with add_entity
    navigations: dict[str, str] = field(default_factory=dict)  # single-valued navigation -> lookup column
    write_only: set[str] = field(default_factory=set)  # stored, never returned (e.g. serviceendpoint.saskey)
    attribute_types: dict[str, str] = field(default_factory=dict)  # column -> AttributeType
    attribute_ids: dict[str, str] = field(default_factory=dict)  # column -> attribute MetadataId
    schema_name: str | None = None
    strict_navigations: bool = False  # only the declared navigation property names (exact case) bind
    primary_name: str | None = None
    definition: dict[str, Any] | None = None  # the EntityMetadata body it was created with (POST EntityDefinitions)
    attribute_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)


# Solution component types (solutioncomponent.componenttype) of the tables the customization API creates.
COMPONENT_TYPES = {
    "webresource": 61,
    "sdkmessageprocessingstep": 92,
    "serviceendpoint": 95,
    "environmentvariabledefinition": 380,
    "environmentvariablevalue": 381,
}
COMPONENT_RELATIONSHIP = 10
COMPONENT_ENTITY = 1
COMPONENT_ATTRIBUTE = 2
_SYSTEM_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # logical name: (entity set, primary key, columns)
    "publisher": (
        "publishers",
        "publisherid",
        ("uniquename", "friendlyname", "customizationprefix", "customizationoptionvalueprefix", "description"),
    ),
    "solution": (
        "solutions",
        "solutionid",
        ("uniquename", "friendlyname", "version", "ismanaged", "description", "_publisherid_value"),
    ),
    "solutioncomponent": (
        "solutioncomponents",
        "solutioncomponentid",
        ("componenttype", "objectid", "_solutionid_value"),
    ),
    "webresource": (
        "webresourceset",
        "webresourceid",
        ("name", "displayname", "description", "webresourcetype", "content"),
    ),
    "serviceendpoint": (
        "serviceendpoints",
        "serviceendpointid",
        (
            "name",
            "description",
            "contract",
            "connectionmode",
            "authtype",
            "namespaceformat",
            "namespaceaddress",
            "solutionnamespace",
            "path",
            "saskeyname",
            "saskey",
            "sastoken",
            "messageformat",
            "messagecharset",
            "userclaim",
            "url",
            "issaskeyset",
            "issastokenset",
        ),
    ),
    "sdkmessage": ("sdkmessages", "sdkmessageid", ("name",)),
    "sdkmessagefilter": (
        "sdkmessagefilters",
        "sdkmessagefilterid",
        ("primaryobjecttypecode", "secondaryobjecttypecode", "_sdkmessageid_value"),
    ),
    "sdkmessageprocessingstep": (
        "sdkmessageprocessingsteps",
        "sdkmessageprocessingstepid",
        (
            "name",
            "description",
            "mode",
            "stage",
            "rank",
            "supporteddeployment",
            "asyncautodelete",
            "invocationsource",
            "filteringattributes",
            "configuration",
            "statecode",
            "statuscode",
            "_eventhandler_value",
            "_sdkmessageid_value",
            "_sdkmessagefilterid_value",
            "_impersonatinguserid_value",
        ),
    ),
    "savedquery": ("savedqueries", "savedqueryid", ("name", "returnedtypecode", "querytype", "isdefault")),
    "systemform": ("systemforms", "formid", ("name", "objecttypecode", "type")),
    "businessunit": ("businessunits", "businessunitid", ("name", "_parentbusinessunitid_value")),
    "systemuser": (
        "systemusers",
        "systemuserid",
        ("applicationid", "fullname", "domainname", "isdisabled", "_businessunitid_value"),
    ),
}
_NAVIGATIONS: dict[str, dict[str, str]] = {
    "solution": {"publisherid": "_publisherid_value"},
    "sdkmessagefilter": {"sdkmessageid": "_sdkmessageid_value"},
    "sdkmessageprocessingstep": {
        "eventhandler_serviceendpoint": "_eventhandler_value",
        "eventhandler_plugintype": "_eventhandler_value",
        "sdkmessageid": "_sdkmessageid_value",
        "sdkmessagefilterid": "_sdkmessagefilterid_value",
        "impersonatinguserid": "_impersonatinguserid_value",
    },
    "systemuser": {"businessunitid": "_businessunitid_value"},
    "businessunit": {"parentbusinessunitid": "_parentbusinessunitid_value"},
}
_WRITE_ONLY = {"serviceendpoint": {"saskey", "sastoken"}}
_METADATA_LABEL_PROPS = ("DisplayName", "DisplayCollectionName")
# @odata.type of a new column -> (AttributeType, maximum MaxLength or 0 when MaxLength does not apply)
_ATTRIBUTE_KINDS = {
    "StringAttributeMetadata": ("String", 4000),
    "MemoAttributeMetadata": ("Memo", 1048576),
    "BooleanAttributeMetadata": ("Boolean", 0),
    "IntegerAttributeMetadata": ("Integer", 0),
    "DecimalAttributeMetadata": ("Decimal", 0),
}
SDK_MESSAGE_CREATE_ID = "9ebdbb1b-ea3e-db11-86a7-000a3a5473e8"

# Real-time journeys (``enable_rtj``): custom API metadata, plug-in types, environment variables, the channel tables
# of the base solution, security roles and privileges.
_RTJ_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "plugintype": ("plugintypes", "plugintypeid", ("typename", "name", "friendlyname", "_pluginassemblyid_value")),
    "customapi": (
        "customapis",
        "customapiid",
        (
            "uniquename",
            "name",
            "displayname",
            "description",
            "bindingtype",
            "boundentitylogicalname",
            "isfunction",
            "isprivate",
            "allowedcustomprocessingsteptype",
            "executeprivilegename",
            "_plugintypeid_value",
        ),
    ),
    "customapirequestparameter": (
        "customapirequestparameters",
        "customapirequestparameterid",
        (
            "uniquename",
            "name",
            "displayname",
            "description",
            "type",
            "isoptional",
            "logicalentityname",
            "_customapiid_value",
        ),
    ),
    "customapiresponseproperty": (
        "customapiresponseproperties",
        "customapiresponsepropertyid",
        ("uniquename", "name", "displayname", "description", "type", "logicalentityname", "_customapiid_value"),
    ),
    "environmentvariabledefinition": (
        "environmentvariabledefinitions",
        "environmentvariabledefinitionid",
        ("schemaname", "displayname", "description", "type", "defaultvalue", "secretstore"),
    ),
    "environmentvariablevalue": (
        "environmentvariablevalues",
        "environmentvariablevalueid",
        ("schemaname", "value", "_environmentvariabledefinitionid_value"),
    ),
    "msdyn_channeldefinition": (
        "msdyn_channeldefinitions",
        "msdyn_channeldefinitionid",
        (
            "msdyn_name",
            "msdyn_displayname",
            "msdyn_description",
            "msdyn_channeltype",
            "msdyn_outboundendpointurltemplate",
            "msdyn_hasinbound",
            "msdyn_hasdeliveryreceipt",
            "msdyn_supportsaccount",
            "msdyn_channeldefinitionexternalentity",
            "msdyn_channeldefinitionexternalformid",
            "msdyn_channeldefinitionaccountexternalentity",
            "msdyn_channeldefinitionaccountexternalformid",
            "msdyn_messageformid",
            "msdyn_specialconsentrequired",
            "msdyn_supportsattachment",
            "msdyn_supportsbinary",
            "statecode",
            "statuscode",
        ),
    ),
    "msdyn_channelmessagepart": (
        "msdyn_channelmessageparts",
        "msdyn_channelmessagepartid",
        (
            "msdyn_name",
            "msdyn_displayname",
            "msdyn_description",
            "msdyn_type",
            "msdyn_isrequired",
            "msdyn_maxlength",
            "msdyn_order",
            "msdyn_entityname",
            "msdyn_entityviewid",
            "_msdyn_channeldefinitionid_value",
        ),
    ),
    "msdyn_channelinstance": (
        "msdyn_channelinstances",
        "msdyn_channelinstanceid",
        (
            "msdyn_name",
            "msdyn_description",
            "msdyn_contactpoint",
            "_msdyn_channeldefinitionid_value",
            "_msdyn_channelinstanceaccountid_value",
            "_msdyn_extendedentityid_value",
        ),
    ),
    "msdyn_channelinstanceaccount": (
        "msdyn_channelinstanceaccounts",
        "msdyn_channelinstanceaccountid",
        ("msdyn_name", "msdyn_description", "_msdyn_channeldefinitionid_value", "_msdyn_extendedentityid_value"),
    ),
    "role": ("roles", "roleid", ("name", "_businessunitid_value", "_parentroleid_value")),
    "privilege": ("privileges", "privilegeid", ("name", "accessright")),
    # Power Platform managed identity for plug-ins: a managedidentity row bound to the plug-in assembly
    "managedidentity": (
        "managedidentities",
        "managedidentityid",
        ("name", "applicationid", "tenantid", "credentialsource", "subjectscope", "version"),
    ),
    "pluginassembly": ("pluginassemblies", "pluginassemblyid", ("name", "_managedidentityid_value")),
}
_RTJ_NAVIGATIONS: dict[str, dict[str, str]] = {
    "customapi": {"PluginTypeId": "_plugintypeid_value"},
    "customapirequestparameter": {"CustomAPIId": "_customapiid_value"},
    "customapiresponseproperty": {"CustomAPIId": "_customapiid_value"},
    "environmentvariablevalue": {"EnvironmentVariableDefinitionId": "_environmentvariabledefinitionid_value"},
    "msdyn_channelmessagepart": {"msdyn_ChannelDefinitionId": "_msdyn_channeldefinitionid_value"},
    "msdyn_channelinstance": {
        "msdyn_ChannelDefinitionId": "_msdyn_channeldefinitionid_value",
        "msdyn_ChannelInstanceAccountId": "_msdyn_channelinstanceaccountid_value",
    },
    "msdyn_channelinstanceaccount": {"msdyn_ChannelDefinitionId": "_msdyn_channeldefinitionid_value"},
    "pluginassembly": {"managedidentityid": "_managedidentityid_value"},
}
# deep insert: collection-valued navigation property -> (child table, the child's lookup column)
_DEEP_INSERT: dict[str, dict[str, tuple[str, str]]] = {
    "customapi": {
        "CustomAPIRequestParameters": ("customapirequestparameter", "_customapiid_value"),
        "CustomAPIResponseProperties": ("customapiresponseproperty", "_customapiid_value"),
    },
}
# columns that cannot change after creation (Dataverse refuses the update)
_IMMUTABLE: dict[str, tuple[str, ...]] = {
    "customapi": (
        "uniquename",
        "bindingtype",
        "boundentitylogicalname",
        "isfunction",
        "allowedcustomprocessingsteptype",
    ),
    "customapirequestparameter": ("uniquename", "type", "isoptional"),
    "customapiresponseproperty": ("uniquename", "type"),
    "environmentvariabledefinition": ("schemaname", "type"),
}
RTJ_ROLES = ("Cxp Channel Definitions Services User", "Marketing Services User Extensible", "System Administrator")
ENV_VAR_TYPES = {100000000, 100000001, 100000002, 100000003, 100000004, 100000005}  # Text … Secret
ENV_VAR_SECRET = 100000005
MESSAGE_PART_TYPES = {192350000, *range(192350003, 192350011)}
PRIVILEGE_DEPTHS = {"Basic": 0, "Local": 1, "Deep": 2, "Global": 3}
_DEPTH_NAMES = {v: k for k, v in PRIVILEGE_DEPTHS.items()}
_KEY_VAULT_SECRET_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+/secrets/[^/]+$", re.I
)
_TABLE_PRIVILEGES = ("Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share")


class _HttpError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _is_guid(value: str) -> bool:
    return bool(_GUID_RE.match(value))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on word ``sep`` (case-insensitive) outside quotes/brackets."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    i = 0
    low = text.lower()
    token = f" {sep} "
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                if quote == "'" and i + 1 < len(text) and text[i + 1] == "'":
                    i += 2
                    continue
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and low.startswith(token, i):
            parts.append(text[start:i])
            i += len(token)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _parse_string_literal(text: str) -> str | None:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return text[1:-1]
        return value if isinstance(value, str) else None
    return None


def _parse_value_list(text: str) -> list[str] | None:
    """Parse ``['a','b']`` or ``["a","b"]`` (OData collection literal)."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    if not inner:
        return []
    values: list[str] = []
    for item in _split_commas(inner):
        parsed = _parse_string_literal(item)
        if parsed is None:
            return None
        values.append(parsed)
    return values


def _split_commas(text: str) -> list[str]:
    items: list[str] = []
    quote: str | None = None
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                if quote == "'" and i + 1 < len(text) and text[i + 1] == "'":
                    i += 2
                    continue
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            items.append(text[start:i])
            start = i + 1
        i += 1
    items.append(text[start:])
    return [s.strip() for s in items]


_NO_VALUE = object()


def _parse_literal(text: str) -> Any:
    text = text.strip()
    as_string = _parse_string_literal(text)
    if as_string is not None:
        return as_string
    if _is_guid(text):
        return text.lower()
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return _NO_VALUE


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class DataverseEmulator(EmulatorBase):
    """Dataverse Web API emulator (``/api/data/v9.2``) on 127.0.0.1.

    See the module docstring and the project README for the public API.
    """

    server_name = "dataverse-emulator"

    def __init__(
        self,
        *,
        token: str = "dev-token",  # noqa: S107 - a fixed loopback test credential
        signature: str | Sequence[ActionParameter] = "customerjourney",
        host: str = "127.0.0.1",
        port: int = 0,
        user_id: str = "7d3e3c62-5c1a-4f0e-9d8b-1a2b3c4d5e6f",
        business_unit_id: str = "0b9f7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b",
        organization_id: str = "e1a2b3c4-d5e6-4f70-8192-a3b4c5d6e7f8",
        tenant_id: str = "72f988bf-0000-4000-8000-2d7cd011db47",
    ) -> None:
        self.token = token
        self.user_id = user_id
        self.business_unit_id = business_unit_id
        self.organization_id = organization_id
        self.tenant_id = tenant_id
        self.action_parameters: tuple[ActionParameter, ...] = ()
        self.signature_name = ""
        self.set_signature(signature)
        self.require_odata_headers = True
        self.upsert_on_patch = False
        self.verify_references = False
        self.channels_response_message = "Success"
        self._entities: dict[str, _Entity] = {}
        self._version_counter = 1000
        self.interactions: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.inbound: list[dict[str, Any]] = []
        self.operations: list[Operation] = []
        self.operation_count = 0
        self.batch_count = 0
        self.throttled_count = 0
        self.entity_definition_requests = 0
        self.entity_definition_lookups: list[str] = []
        self.published: list[dict[str, list[str]]] = []  # PublishXml calls: {"entities": [...], "webresources": [...]}
        self.relationships: list[dict[str, Any]] = []  # 1:N relationship metadata (RelationshipDefinitions)
        self.role_privileges: dict[str, dict[str, int]] = {}  # role id -> privilege id -> depth (0-3)
        self.polymorphic_lookups: set[tuple[str, str]] = set()  # (table, lookup column) accepting new targets
        self._limit_requests: int | None = None
        self._limit_window = 300.0
        self._limit_concurrent: int | None = None
        self._retry_after: float = 1.0
        self._window: deque[float] = deque()
        self._data_lock = threading.RLock()
        super().__init__(host=host, port=port)

    # ------------------------------------------------------------------ config
    def set_signature(self, signature: str | Sequence[ActionParameter]) -> None:
        """Select ``"customerjourney"``, ``"campaign"`` or a custom parameter list."""
        if isinstance(signature, str):
            if signature not in SIGNATURES:
                raise ValueError(f"unknown signature {signature!r}; use one of {sorted(SIGNATURES)}")
            self.signature_name = signature
            self.action_parameters = SIGNATURES[signature]
        else:
            self.signature_name = "custom"
            self.action_parameters = tuple(signature)

    def add_entity(self, logical_name: str, entity_set_name: str, primary_key: str | None = None) -> None:
        """Register a table; ``primary_key`` defaults to ``<logical_name>id``."""
        pk = primary_key or f"{logical_name}id"
        with self._data_lock:
            if logical_name in self._entities:
                ent = self._entities[logical_name]
                ent.entity_set_name = entity_set_name
                ent.primary_key = pk
                return
            self._entities[logical_name] = _Entity(
                logical_name=logical_name,
                entity_set_name=entity_set_name,
                primary_key=pk,
                metadata_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/{logical_name}")),
            )

    def add_columns(self, logical_name: str, columns: Iterable[str]) -> None:
        """Declare columns (beyond those seen in added rows) so $select accepts them."""
        with self._data_lock:
            self._entity(logical_name).columns.update(columns)

    def enable_customization(
        self,
        *,
        activity_entity: str = "msdyncrm_customerjourneycustomchannelactivity",
        root_business_unit: str = "contoso",
    ) -> None:
        """Serve the customization subset of the Web API used by ``channel provision``.

        Registers the system tables (publishers, solutions, solutioncomponents, webresourceset, serviceendpoints,
        sdkmessages, sdkmessagefilters, sdkmessageprocessingsteps, savedqueries, systemforms, businessunits,
        systemusers), seeds the ``Create`` message with a filter for ``activity_entity`` and the root business unit.
        ``POST EntityDefinitions``, ``…/Attributes``, ``PublishXml`` and the ``MSCRM.SolutionUniqueName`` header
        work whether or not this was called; the tables they need are registered here.
        """
        with self._data_lock:
            for logical, (set_name, pk, columns) in _SYSTEM_TABLES.items():
                self.add_entity(logical, set_name, pk)
                ent = self._entities[logical]
                ent.columns.update(columns)
                ent.navigations.update(_NAVIGATIONS.get(logical, {}))
                ent.write_only.update(_WRITE_ONLY.get(logical, set()))
            self.add_row("sdkmessage", SDK_MESSAGE_CREATE_ID, {"name": "Create"})
            self.add_row(
                "sdkmessagefilter",
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/filter/Create/{activity_entity}")),
                {
                    "primaryobjecttypecode": activity_entity,
                    "secondaryobjecttypecode": "none",
                    "_sdkmessageid_value": SDK_MESSAGE_CREATE_ID,
                },
            )
            self.add_row(
                "businessunit", self.business_unit_id, {"name": root_business_unit, "_parentbusinessunitid_value": None}
            )
            if "contact" in self._entities:
                contact = self._entities["contact"]
                for column in ("donotphone", "donotsms", "donotemail"):
                    contact.attribute_types.setdefault(column, "Boolean")
                    contact.columns.add(column)

    def enable_rtj(self, *, roles: Iterable[str] = RTJ_ROLES) -> None:
        """Serve the real-time journeys subset used by ``channel provision --rtj`` (implies customization).

        Registers customapis (with deep insert of ``CustomAPIRequestParameters`` / ``CustomAPIResponseProperties``),
        plugintypes, environmentvariabledefinitions/values, the base solution's msdyn_channeldefinitions,
        msdyn_channelmessageparts, msdyn_channelinstances and msdyn_channelinstanceaccounts (whose polymorphic
        ``msdyn_extendedentityid`` accepts new targets through ``POST RelationshipDefinitions``), roles in the root
        business unit and privileges; ``RetrieveRolePrivilegesRole`` and ``roles(<id>)/AddPrivilegesRole``.
        """
        with self._data_lock:
            if "solution" not in self._entities:
                self.enable_customization()
            for logical, (set_name, pk, columns) in _RTJ_TABLES.items():
                self.add_entity(logical, set_name, pk)
                ent = self._entities[logical]
                ent.columns.update(columns)
                ent.navigations.update(_RTJ_NAVIGATIONS.get(logical, {}))
                ent.strict_navigations = True
            for base in ("msdyn_channelinstance", "msdyn_channelinstanceaccount"):
                ent = self._entities[base]
                ent.schema_name = (
                    "msdyn_ChannelInstanceAccount" if base.endswith("account") else "msdyn_ChannelInstance"
                )
                ent.attribute_types["msdyn_extendedentityid"] = "Lookup"
                ent.columns.add("msdyn_extendedentityid")
                self.polymorphic_lookups.add((base, "msdyn_extendedentityid"))
                native = "msdyn_defextendedchannelinstance" + ("account" if base.endswith("account") else "")
                self.relationships.append(
                    {
                        "MetadataId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/rel/{base}/{native}")),
                        "SchemaName": f"{ent.schema_name}_extendedentityid_{native}",
                        "ReferencedEntity": native,
                        "ReferencedAttribute": f"{native}id",
                        "ReferencingEntity": base,
                        "ReferencingAttribute": "msdyn_extendedentityid",
                        "RelationshipType": "OneToManyRelationship",
                    }
                )
            for name in roles:
                self.add_row(
                    "role",
                    str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/role/{name}")),
                    {"name": name, "_businessunitid_value": self.business_unit_id, "_parentroleid_value": None},
                )

    def add_plugin_type(self, typename: str, id: str | None = None, *, assembly: str = "ChannelRelay") -> str:
        """Register a plug-in type and its assembly (as registering the assembly would). Returns the type's id."""
        key = id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/plugintype/{typename}"))
        assembly_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/pluginassembly/{assembly}"))
        if assembly_id not in self.rows("pluginassembly"):
            self.add_row("pluginassembly", assembly_id, {"name": assembly, "_managedidentityid_value": None})
        return self.add_row(
            "plugintype",
            key,
            {"typename": typename, "name": typename, "friendlyname": typename, "_pluginassemblyid_value": assembly_id},
        )

    def role_id(self, name: str) -> str:
        """The id of the root business unit's role with this name."""
        with self._data_lock:
            return next(k for k, r in self._entity("role").rows.items() if r.get("name") == name)

    def set_attribute_type(self, logical_name: str, column: str, attribute_type: str) -> None:
        """Declare a column's ``AttributeType`` (as ``EntityDefinitions(...)/Attributes(...)`` reports it)."""
        with self._data_lock:
            ent = self._entity(logical_name)
            ent.columns.add(column)
            ent.attribute_types[column] = attribute_type

    def solution_components(self, solution_unique_name: str) -> list[tuple[int, str]]:
        """(componenttype, objectid) of the components added to a solution."""
        with self._data_lock:
            solutions = self._entities.get("solution")
            components = self._entities.get("solutioncomponent")
            if solutions is None or components is None:
                return []
            ids = {k for k, r in solutions.rows.items() if r.get("uniquename") == solution_unique_name}
            return [
                (int(r["componenttype"]), str(r["objectid"]))
                for r in components.rows.values()
                if r.get("_solutionid_value") in ids
            ]

    def add_row(
        self,
        logical_name: str,
        id: str,
        values: dict[str, Any] | None = None,
        *,
        formatted: dict[str, str] | None = None,
    ) -> str:
        """Insert or replace a row; lookups go in as ``_x_value`` keys. Returns the id."""
        if not _is_guid(id):
            raise ValueError(f"row id must be a GUID: {id!r}")
        key = id.lower()
        with self._data_lock:
            ent = self._entity(logical_name)
            row = dict(values or {})
            row.pop(ent.primary_key, None)
            ent.columns.update(row)
            ent.rows[key] = row
            ent.formatted[key] = dict(formatted or {})
            ent.versions[key] = self._next_version()
        return key

    def get_row(self, logical_name: str, id: str) -> dict[str, Any] | None:
        """Copy of a stored row (without the primary key), or None."""
        with self._data_lock:
            row = self._entity(logical_name).rows.get(id.lower())
            return copy.deepcopy(row) if row is not None else None

    def rows(self, logical_name: str) -> dict[str, dict[str, Any]]:
        with self._data_lock:
            return copy.deepcopy(self._entity(logical_name).rows)

    def limit(
        self,
        requests_per_window: int | None = None,
        window_seconds: float = 300.0,
        max_concurrent: int | None = None,
        retry_after: float = 1.0,
    ) -> None:
        """Enable scaled-down service protection limits (None disables a limit)."""
        with self._log_lock:
            self._limit_requests = requests_per_window
            self._limit_window = window_seconds
            self._limit_concurrent = max_concurrent
            self._retry_after = retry_after
            self._window.clear()

    def unlimit(self) -> None:
        self.limit(None, 300.0, None)

    def reset(self) -> None:
        """Clear logs, counters, faults, latency and the limiter window; keep data and limits."""
        super().reset()
        with self._log_lock:
            self._window.clear()
            self.throttled_count = 0
        with self._data_lock:
            self.interactions.clear()
            self.notifications.clear()
            self.inbound.clear()
            self.operations.clear()
            self.operation_count = 0
            self.batch_count = 0
            self.entity_definition_requests = 0
            self.entity_definition_lookups.clear()
            self.published.clear()

    def inject_error(
        self,
        method: str,
        path_regex: str,
        *,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        delay: float = 0.0,
    ) -> None:
        """Inject a Dataverse-shaped error (``{"error":{"code","message"}}``)."""
        hdrs = {"OData-Version": "4.0", "Content-Type": JSON_CT, **(headers or {})}
        self.inject(
            method,
            path_regex,
            status=status,
            body=json.dumps({"error": {"code": code, "message": message}}).encode(),
            headers=hdrs,
            times=times,
            delay=delay,
        )

    # ------------------------------------------------------------------ helpers
    def _entity(self, logical_name: str) -> _Entity:
        try:
            return self._entities[logical_name]
        except KeyError:
            raise KeyError(f"entity {logical_name!r} not registered; call add_entity first") from None

    def _entity_by_set(self, set_name: str) -> _Entity | None:
        for ent in self._entities.values():
            if ent.entity_set_name == set_name:
                return ent
        return None

    def _next_version(self) -> int:
        self._version_counter += 1
        return self._version_counter

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/data/{API_VERSION}"

    def _entity_id_url(self, ent: _Entity, key: str) -> str:
        return f"{self.api_url}/{ent.entity_set_name}({key})"

    def _base_headers(self) -> list[tuple[str, str]]:
        return [("OData-Version", "4.0"), ("REQ_ID", str(uuid.uuid4()))]

    def _json(self, status: int, obj: Any, extra: Sequence[tuple[str, str]] = ()) -> Response:
        headers = [*self._base_headers(), ("Content-Type", JSON_CT), *extra]
        return Response(status, json.dumps(obj).encode("utf-8"), headers)

    def _no_content(self, extra: Sequence[tuple[str, str]] = ()) -> Response:
        return Response(204, b"", self._base_headers() + list(extra))

    def _error(self, status: int, code: str, message: str, extra: Sequence[tuple[str, str]] = ()) -> Response:
        return self._json(status, {"error": {"code": code, "message": message}}, extra)

    def _throw(self, status: int, code: str, message: str) -> _HttpError:
        return _HttpError(self._error(status, code, message))

    # ------------------------------------------------------------------ routing
    def _route(self, request: Incoming) -> Response:
        if len(self.url) + len(request.target) > MAX_URL_LENGTH:
            return self._error(
                414,
                CODE_BAD_URI,
                f"The request URL is too long. The maximum URL length is {MAX_URL_LENGTH} characters; "
                "send long queries inside a $batch request.",
            )
        if not self._authorized(request.header("authorization")):
            return Response(
                401,
                b"",
                [
                    (
                        "WWW-Authenticate",
                        f"Bearer authorization_uri=https://login.microsoftonline.com/{self.tenant_id}"
                        f"/oauth2/authorize, resource_id={self.url}/",
                    )
                ],
            )
        throttled = self._check_limits(request.concurrency)
        if throttled is not None:
            return throttled
        match = _API_PATH_RE.match(request.path)
        if not match:
            return self._error(404, CODE_BAD_URI, f"Resource not found for the segment '{request.path}'.")
        resource = unquote(match.group("rest"))
        if self.require_odata_headers:
            problem = self._check_headers(request, resource)
            if problem is not None:
                return problem
        if resource == "$batch":
            if request.method != "POST":
                return self._method_not_allowed(request.method)
            with self._data_lock:
                self.batch_count += 1
                return self._execute_batch(request)
        with self._data_lock:
            return self._run_operation(
                request.method, resource, request.query_string, request.headers, request.body, in_batch=False
            )

    def _authorized(self, value: str) -> bool:
        scheme, _, credential = value.partition(" ")
        return scheme.lower() == "bearer" and credential.strip() == self.token and bool(self.token)

    def _check_limits(self, concurrency: int) -> Response | None:
        with self._log_lock:
            retry = self._retry_after
            retry_text = str(int(retry)) if float(retry).is_integer() else f"{retry:g}"
            if self._limit_concurrent is not None and concurrency > self._limit_concurrent:
                self.throttled_count += 1
                return self._error(
                    429,
                    CODE_THROTTLE_CONCURRENCY,
                    f"Number of concurrent requests exceeded the limit of {self._limit_concurrent}.",
                    [("Retry-After", retry_text)],
                )
            if self._limit_requests is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= self._limit_window:
                    self._window.popleft()
                if len(self._window) >= self._limit_requests:
                    self.throttled_count += 1
                    return self._error(
                        429,
                        CODE_THROTTLE_REQUESTS,
                        f"Number of requests exceeded the limit of {self._limit_requests} over time window "
                        f"of {self._limit_window:g} seconds.",
                        [("Retry-After", retry_text)],
                    )
                self._window.append(now)
        return None

    def _check_headers(self, request: Incoming, resource: str) -> Response | None:
        missing = [name for name in ("OData-MaxVersion", "OData-Version") if request.header(name).strip() != "4.0"]
        if missing:
            return self._error(
                400,
                CODE_ODATA,
                "The request must carry the headers 'OData-MaxVersion: 4.0' and 'OData-Version: 4.0' "
                f"(missing or wrong: {', '.join(missing)}).",
            )
        accept = request.header("accept").lower()
        if resource == "$metadata":
            ok = any(t in accept for t in ("application/xml", "application/json", "*/*")) or not accept
        else:
            ok = "application/json" in accept
        if not ok:
            return self._error(
                400,
                CODE_ODATA,
                "The request must carry 'Accept: application/json'. "
                f"A supported MIME type could not be found that matches the acceptable MIME types "
                f"for the request. The supported type(s) 'application/json' do not match the "
                f"acceptable type(s) '{request.header('accept')}'.",
            )
        if request.body and request.method in ("POST", "PATCH", "PUT"):
            ctype = request.header("content-type").lower()
            wanted = "multipart/mixed" if resource == "$batch" else "application/json"
            if not ctype.startswith(wanted):
                return self._error(
                    415,
                    CODE_ODATA,
                    f"The content type '{request.header('content-type')}' is not supported; use '{wanted}'.",
                )
        return None

    def _method_not_allowed(self, method: str) -> Response:
        return self._error(405, CODE_ODATA, f"The requested resource does not support http method '{method}'.")

    # ------------------------------------------------------------------ operations
    def _run_operation(
        self,
        method: str,
        resource: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes,
        *,
        in_batch: bool,
    ) -> Response:
        self.operation_count += 1
        try:
            response = self._dispatch(method, resource, query_string, headers, body, in_batch=in_batch)
        except _HttpError as exc:
            response = exc.response
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                parsed = None
        self.operations.append(Operation(method, resource, query_string, parsed, response.status, in_batch))
        return response

    def _dispatch(
        self,
        method: str,
        resource: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes,
        *,
        in_batch: bool,
    ) -> Response:
        query = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        prefer = headers.get("prefer", "")
        if resource == "$metadata":
            if method != "GET":
                return self._method_not_allowed(method)
            return Response(
                200,
                self.metadata_xml().encode("utf-8"),
                [*self._base_headers(), ("Content-Type", "application/xml")],
            )
        if resource in ("WhoAmI", "WhoAmI()"):
            if method != "GET":
                return self._method_not_allowed(method)
            return self._json(
                200,
                {
                    "@odata.context": f"{self.api_url}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                    "BusinessUnitId": self.business_unit_id,
                    "UserId": self.user_id,
                    "OrganizationId": self.organization_id,
                },
            )
        if resource == "EntityDefinitions":
            if method != "POST":
                return self._method_not_allowed(method)
            return self._create_entity_definition(self._json_body(body), headers)
        m = _ATTRIBUTES_RE.match(resource)
        if m:
            if m.group("attr") is not None:
                if method != "GET":
                    return self._method_not_allowed(method)
                return self._attribute_definition(m.group("entity"), m.group("attr"), query)
            if method != "POST":
                return self._method_not_allowed(method)
            return self._create_attribute(m.group("entity"), self._json_body(body), headers)
        if resource == "RelationshipDefinitions":
            if method != "POST":
                return self._method_not_allowed(method)
            return self._create_relationship(self._json_body(body), headers)
        m = _MANY_TO_ONE_RE.match(resource)
        if m:
            if method != "GET":
                return self._method_not_allowed(method)
            return self._many_to_one(m.group("entity"), query)
        m = _ROLE_PRIVILEGES_RE.match(resource)
        if m:
            if method != "GET":
                return self._method_not_allowed(method)
            return self._retrieve_role_privileges(self._resolve_alias(m.group("id").strip(), query))
        m = _ADD_PRIVILEGES_RE.match(resource)
        if m:
            if method != "POST":
                return self._method_not_allowed(method)
            return self._add_privileges_role(m.group("id").lower(), self._json_body(body))
        if resource.removeprefix("Microsoft.Dynamics.CRM.") == "PublishXml":
            if method != "POST":
                return self._method_not_allowed(method)
            return self._publish_xml(self._json_body(body))
        m = _ENTITY_DEF_RE.match(resource)
        if m:
            if method != "GET":
                return self._method_not_allowed(method)
            return self._entity_definition(m.group("sq") or m.group("dq") or "", m.group("mid"), query)
        action = resource.removeprefix("Microsoft.Dynamics.CRM.")
        if action in (INTERACTION_ACTION, NOTIFICATION_ACTION, INBOUND_ACTION):
            if method != "POST":
                return self._method_not_allowed(method)
            payload = self._json_body(body, allow_empty=True)
            if action == INTERACTION_ACTION:
                return self._create_interaction(payload)
            if action == NOTIFICATION_ACTION:
                return self._channels_action(NOTIFICATION_ACTION, "notificationPayLoad", payload, self.notifications)
            return self._channels_action(INBOUND_ACTION, "inboundPayLoad", payload, self.inbound)
        m = _ENTITY_PATH_RE.match(resource)
        if not m:
            segment = resource.split("/", 1)[0]
            raise self._throw(404, CODE_BAD_URI, f"Resource not found for the segment '{segment}'.")
        ent = self._entity_by_set(m.group("set"))
        if ent is None:
            raise self._throw(404, CODE_BAD_URI, f"Resource not found for the segment '{m.group('set')}'.")
        key = m.group("key")
        if key is None:
            if method == "GET":
                return self._query(ent, query, prefer)
            if method == "POST":
                solution_id = self._solution_of(headers)
                response = self._create_deep(ent, self._json_body(body), prefer)
                if solution_id is not None and ent.logical_name in COMPONENT_TYPES:
                    created = re.search(r"\(([0-9a-f-]{36})\)$", response.header("OData-EntityId") or "")
                    if created:
                        self._add_component(solution_id, COMPONENT_TYPES[ent.logical_name], created.group(1))
                return response
            return self._method_not_allowed(method)
        key = key.strip()
        if not _is_guid(key):
            raise self._throw(
                400,
                CODE_BAD_URI,
                f"Bad Request - Error in query syntax. The key value '{key}' of '{ent.entity_set_name}' "
                "is not a valid GUID.",
            )
        key = key.lower()
        if method == "GET":
            return self._retrieve(ent, key, query, prefer)
        if method == "PATCH":
            return self._update(ent, key, self._json_body(body), headers, prefer)
        if method == "DELETE":
            return self._delete(ent, key)
        return self._method_not_allowed(method)

    def _json_body(self, body: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
        if not body.strip():
            if allow_empty:
                return {}
            raise self._throw(400, CODE_ODATA, "The request body is empty; a JSON object was expected.")
        try:
            value = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._throw(400, CODE_ODATA, f"Invalid JSON. {exc}") from None
        if not isinstance(value, dict):
            raise self._throw(
                400,
                CODE_ODATA,
                "An unexpected 'StartArray' node was found when reading from the JSON reader. "
                "A 'StartObject' node was expected.",
            )
        return value

    # -- metadata / entity definitions -------------------------------------------------------
    def _entity_definition(self, logical_name: str, metadata_id: str | None, query: dict[str, str]) -> Response:
        self.entity_definition_requests += 1
        self.entity_definition_lookups.append(logical_name or (metadata_id or ""))
        ent: _Entity | None = None
        if metadata_id:
            ent = next((e for e in self._entities.values() if e.metadata_id == metadata_id.lower()), None)
        else:
            ent = self._entities.get(logical_name)
        if ent is None:
            raise self._throw(
                404, CODE_BAD_URI, f"Could not find entity with logical name '{logical_name or metadata_id}'."
            )
        full = {
            "MetadataId": ent.metadata_id,
            "LogicalName": ent.logical_name,
            "SchemaName": ent.schema_name or ent.logical_name,
            "EntitySetName": ent.entity_set_name,
            "LogicalCollectionName": ent.entity_set_name,
            "PrimaryIdAttribute": ent.primary_key,
            "PrimaryNameAttribute": ent.primary_name,
        }
        select = [s.strip() for s in query.get("$select", "").split(",") if s.strip()]
        for name in select:
            if name not in full:
                raise self._throw(
                    400,
                    CODE_ODATA,
                    f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.",
                )
        names = select or list(full)
        ctx = (
            f"{self.api_url}/$metadata#EntityDefinitions({','.join(select)})/$entity"
            if select
            else (f"{self.api_url}/$metadata#EntityDefinitions/$entity")
        )
        out: dict[str, Any] = {"@odata.context": ctx}
        for name in names:
            out[name] = full[name]
        out["MetadataId"] = ent.metadata_id
        return self._json(200, out)

    # -- customization API (channel provision) ----------------------------------------------------
    def _solution_of(self, headers: dict[str, str]) -> str | None:
        """The solution id named by ``MSCRM.SolutionUniqueName`` (404 if it does not exist), or None."""
        name = headers.get("mscrm.solutionuniquename", "").strip()
        if not name:
            return None
        solutions = self._entities.get("solution")
        for key, row in (solutions.rows if solutions else {}).items():
            if row.get("uniquename") == name:
                if row.get("ismanaged"):
                    raise self._throw(400, CODE_INVALID_ARGUMENT, f"Solution '{name}' is managed.")
                return key
        raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"Solution '{name}' does not exist.")

    def _publisher_prefix(self, solution_id: str) -> str | None:
        publisher_id = self._entities["solution"].rows[solution_id].get("_publisherid_value")
        publishers = self._entities.get("publisher")
        row = publishers.rows.get(str(publisher_id)) if publishers and publisher_id else None
        return str(row["customizationprefix"]) if row and row.get("customizationprefix") else None

    def _add_component(self, solution_id: str, component_type: int, object_id: str) -> None:
        components = self._entities.get("solutioncomponent")
        if components is None:
            return
        key = str(uuid.uuid4())
        components.rows[key] = {
            "componenttype": component_type,
            "objectid": object_id.lower(),
            "_solutionid_value": solution_id,
        }
        components.formatted[key] = {}
        components.versions[key] = self._next_version()

    def _check_schema_name(self, schema: Any, what: str, solution_id: str | None) -> str:
        if not isinstance(schema, str) or not re.match(r"^[A-Za-z][A-Za-z0-9]{1,7}_[A-Za-z0-9_]+$", schema):
            raise self._throw(
                400, CODE_INVALID_ARGUMENT, f"The {what} SchemaName '{schema}' must be '<prefix>_<Name>'."
            )
        if solution_id is not None:
            prefix = self._publisher_prefix(solution_id)
            if prefix is not None and schema.split("_", 1)[0].lower() != prefix:
                raise self._throw(
                    400,
                    CODE_INVALID_ARGUMENT,
                    f"The {what} SchemaName '{schema}' does not start with the solution publisher's "
                    f"customization prefix '{prefix}_'.",
                )
        return schema.lower()

    def _check_label(self, body: dict[str, Any], prop: str, what: str) -> None:
        value = body.get(prop)
        labels = value.get("LocalizedLabels") if isinstance(value, dict) else None
        if not isinstance(labels, list) or not any(
            isinstance(item, dict) and item.get("LanguageCode") == 1033 and item.get("Label") for item in labels
        ):
            raise self._throw(
                400, CODE_INVALID_ARGUMENT, f"The {what} needs a {prop} with a LocalizedLabel for LanguageCode 1033."
            )

    def _check_odata_type(self, body: dict[str, Any], expected: Iterable[str]) -> str:
        found = str(body.get("@odata.type", "")).lstrip("#").removeprefix("Microsoft.Dynamics.CRM.")
        if found not in expected:
            raise self._throw(
                400, CODE_ODATA, f"The '@odata.type' '{body.get('@odata.type')}' is not one of {sorted(expected)}."
            )
        return found

    def _check_attribute(self, body: dict[str, Any], solution_id: str | None) -> tuple[str, str]:
        kind = self._check_odata_type(body, _ATTRIBUTE_KINDS)
        attribute_type, max_length = _ATTRIBUTE_KINDS[kind]
        if body.get("AttributeType") != attribute_type:
            raise self._throw(
                400, CODE_INVALID_ARGUMENT, f"AttributeType '{body.get('AttributeType')}' does not match {kind}."
            )
        logical = self._check_schema_name(body.get("SchemaName"), "column", solution_id)
        self._check_label(body, "DisplayName", f"column {logical}")
        if max_length:
            length = body.get("MaxLength")
            if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= max_length:
                raise self._throw(
                    400, CODE_INVALID_ARGUMENT, f"MaxLength of {logical} must be an integer from 1 to {max_length}."
                )
        return logical, attribute_type

    def _create_entity_definition(self, body: dict[str, Any], headers: dict[str, str]) -> Response:
        solution_id = self._solution_of(headers)
        self._check_odata_type(body, ("EntityMetadata",))
        logical = self._check_schema_name(body.get("SchemaName"), "table", solution_id)
        for prop in _METADATA_LABEL_PROPS:
            self._check_label(body, prop, f"table {logical}")
        if body.get("OwnershipType") not in ("UserOwned", "OrganizationOwned"):
            raise self._throw(400, CODE_INVALID_ARGUMENT, "OwnershipType must be UserOwned or OrganizationOwned.")
        attributes = body.get("Attributes")
        primary = [a for a in attributes or [] if isinstance(a, dict) and a.get("IsPrimaryName") is True]
        if not isinstance(attributes, list) or len(attributes) != 1 or len(primary) != 1:
            raise self._throw(
                400,
                CODE_INVALID_ARGUMENT,
                "Attributes must contain exactly one StringAttributeMetadata with IsPrimaryName true.",
            )
        primary_name, attribute_type = self._check_attribute(primary[0], solution_id)
        if attribute_type != "String":
            raise self._throw(400, CODE_INVALID_ARGUMENT, "The primary name column must be a String column.")
        if logical in self._entities:
            raise self._throw(400, CODE_DUPLICATE, f"An entity with the specified name {logical} already exists.")
        set_name = _plural(logical)
        self.add_entity(logical, set_name, f"{logical}id")
        ent = self._entities[logical]
        ent.metadata_id = str(uuid.uuid4())
        ent.schema_name = str(body["SchemaName"])
        ent.primary_name = primary_name
        ent.definition = copy.deepcopy(body)
        ent.attribute_definitions[primary_name] = copy.deepcopy(primary[0])
        for column, kind in ((primary_name, "String"), ("statecode", "State"), ("statuscode", "Status")):
            ent.columns.add(column)
            ent.attribute_types[column] = kind
            ent.attribute_ids[column] = str(uuid.uuid4())
        if solution_id is not None:
            self._add_component(solution_id, COMPONENT_ENTITY, ent.metadata_id)
        views = self._entities.get("savedquery")
        if views is not None:
            label = body["DisplayName"]["LocalizedLabels"][0]["Label"]
            plural = body["DisplayCollectionName"]["LocalizedLabels"][0]["Label"]
            for name, query_type in (
                (f"Active {plural}", 0),
                (f"{label} Lookup View", 64),
                (f"Quick Find {plural}", 4),
            ):
                key = str(uuid.uuid4())
                views.rows[key] = {
                    "name": name,
                    "returnedtypecode": logical,
                    "querytype": query_type,
                    "isdefault": True,
                }
                views.formatted[key] = {}
                views.versions[key] = self._next_version()
        forms = self._entities.get("systemform")
        if forms is not None:  # Dataverse creates a main form ("Information") with each table
            key = str(uuid.uuid4())
            forms.rows[key] = {"name": "Information", "objecttypecode": logical, "type": 2}
            forms.formatted[key] = {}
            forms.versions[key] = self._next_version()
        privileges = self._entities.get("privilege")
        if privileges is not None:  # and its privileges, prv<Access><SchemaName>
            for access in _TABLE_PRIVILEGES:
                key = str(uuid.uuid4())
                privileges.rows[key] = {"name": f"prv{access}{ent.schema_name}", "accessright": access}
                privileges.formatted[key] = {}
                privileges.versions[key] = self._next_version()
        return self._no_content([("OData-EntityId", f"{self.api_url}/EntityDefinitions({ent.metadata_id})")])

    def _create_attribute(self, entity: str, body: dict[str, Any], headers: dict[str, str]) -> Response:
        solution_id = self._solution_of(headers)
        ent = self._entities.get(entity)
        if ent is None:
            raise self._throw(404, CODE_BAD_URI, f"Could not find entity with logical name '{entity}'.")
        logical, attribute_type = self._check_attribute(body, solution_id)
        if logical in ent.columns:
            raise self._throw(
                400, CODE_DUPLICATE, f"An attribute with the specified name {logical} already exists on {entity}."
            )
        metadata_id = str(uuid.uuid4())
        ent.columns.add(logical)
        ent.attribute_types[logical] = attribute_type
        ent.attribute_ids[logical] = metadata_id
        ent.attribute_definitions[logical] = copy.deepcopy(body)
        if solution_id is not None:
            self._add_component(solution_id, COMPONENT_ATTRIBUTE, metadata_id)
        location = f"{self.api_url}/EntityDefinitions(LogicalName='{entity}')/Attributes({metadata_id})"
        return self._no_content([("OData-EntityId", location)])

    def _attribute_type(self, ent: _Entity, column: str) -> str:
        if column in ent.attribute_types:
            return ent.attribute_types[column]
        if column == ent.primary_key:
            return "Uniqueidentifier"
        if column.startswith("_") and column.endswith("_value"):
            return "Lookup"
        sample = next((row[column] for row in ent.rows.values() if row.get(column) is not None), None)
        if isinstance(sample, bool):
            return "Boolean"
        if isinstance(sample, int):
            return "Integer"
        return "String"

    def _attribute_definition(self, entity: str, column: str, query: dict[str, str]) -> Response:
        self.entity_definition_requests += 1
        self.entity_definition_lookups.append(entity)
        ent = self._entities.get(entity)
        if ent is None:
            raise self._throw(404, CODE_BAD_URI, f"Could not find entity with logical name '{entity}'.")
        if column != ent.primary_key and column not in ent.columns:
            raise self._throw(
                404, CODE_BAD_URI, f"Could not find attribute with logical name '{column}' on entity '{entity}'."
            )
        attribute_type = self._attribute_type(ent, column)
        definition = ent.attribute_definitions.get(column, {})
        metadata_id = ent.attribute_ids.setdefault(
            column, str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/{entity}/{column}"))
        )
        full: dict[str, Any] = {
            "LogicalName": column,
            "SchemaName": definition.get("SchemaName", column),
            "EntityLogicalName": entity,
            "AttributeType": attribute_type,
            "IsPrimaryId": column == ent.primary_key,
            "IsPrimaryName": column == ent.primary_name,
            "MaxLength": definition.get("MaxLength"),
        }
        select = [s.strip() for s in query.get("$select", "").split(",") if s.strip()]
        for name in select:
            if name not in full:
                raise self._throw(
                    400,
                    CODE_ODATA,
                    f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'.",
                )
        kind = next((k for k, (t, _) in _ATTRIBUTE_KINDS.items() if t == attribute_type), "AttributeMetadata")
        out: dict[str, Any] = {
            "@odata.context": f"{self.api_url}/$metadata#EntityDefinitions('{entity}')/Attributes/$entity",
            "@odata.type": f"#Microsoft.Dynamics.CRM.{kind}",
        }
        for name in select or list(full):
            out[name] = full[name]
        out["MetadataId"] = metadata_id
        return self._json(200, out)

    def _publish_xml(self, body: dict[str, Any]) -> Response:
        for name in body:
            if not name.startswith("@") and name != "ParameterXml":
                raise self._unknown_parameter(name, "PublishXml")
        parameter_xml = body.get("ParameterXml")
        if not isinstance(parameter_xml, str) or not parameter_xml.strip():
            raise self._throw(
                400, CODE_INVALID_ARGUMENT, "Required parameter 'ParameterXml' is missing for PublishXml."
            )
        try:
            root = ET.fromstring(parameter_xml)  # noqa: S314 - a loopback test emulator parsing its own client's input
        except ET.ParseError as exc:
            raise self._throw(400, CODE_INVALID_ARGUMENT, f"ParameterXml is not well-formed XML: {exc}") from None
        if root.tag != "importexportxml":
            raise self._throw(400, CODE_INVALID_ARGUMENT, "ParameterXml must have the root <importexportxml>.")
        entities = [(e.text or "").strip() for e in root.findall("./entities/entity")]
        resources = [(e.text or "").strip().strip("{}").lower() for e in root.findall("./webresources/webresource")]
        for logical in entities:
            if logical not in self._entities:
                raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"Entity '{logical}' does not exist.")
        known = self._entities.get("webresource")
        for resource in resources:
            if known is None or resource not in known.rows:
                raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"webresource With Id = {resource} Does Not Exist")
        self.published.append({"entities": entities, "webresources": resources})
        return self._no_content()

    # -- real-time journeys customization ---------------------------------------------------------
    def _create_deep(self, ent: _Entity, body: dict[str, Any], prefer: str) -> Response:
        """Create a row; for tables in ``_DEEP_INSERT`` also its related rows from the same body (atomically)."""
        children = {nav: body.pop(nav) for nav in list(body) if nav in _DEEP_INSERT.get(ent.logical_name, {})}
        if not children:
            return self._create(ent, body, prefer)
        snapshot = self._snapshot()
        try:
            response = self._create(ent, body, "")
            parent = re.search(r"\(([0-9a-f-]{36})\)$", response.header("OData-EntityId") or "")
            assert parent is not None
            for nav, items in children.items():
                table, lookup = _DEEP_INSERT[ent.logical_name][nav]
                if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                    raise self._throw(400, CODE_ODATA, f"'{nav}' must be an array of objects (deep insert).")
                child = self._entities[table]
                for item in items:
                    values = self._apply_body(child, item)
                    values[lookup] = parent.group(1)
                    key = str(values.pop(child.primary_key, None) or uuid.uuid4()).lower()
                    self._validate_row(child, values, key)
                    child.rows[key] = values
                    child.formatted[key] = {}
                    child.versions[key] = self._next_version()
        except _HttpError:
            self._restore(snapshot)
            raise
        if "return=representation" in prefer:
            return self._retrieve(ent, parent.group(1), {}, prefer)
        return response

    def _check_immutable(self, ent: _Entity, key: str, values: dict[str, Any]) -> None:
        current = ent.rows[key]
        changed = [c for c in _IMMUTABLE.get(ent.logical_name, ()) if c in values and values[c] != current.get(c)]
        if changed:
            raise self._throw(
                400,
                CODE_INVALID_ARGUMENT,
                f"{', '.join(changed)} of {ent.logical_name} cannot be changed after it is created.",
            )

    def _create_relationship(self, body: dict[str, Any], headers: dict[str, str]) -> Response:
        solution_id = self._solution_of(headers)
        self._check_odata_type(body, ("OneToManyRelationshipMetadata",))
        schema = body.get("SchemaName")
        if not isinstance(schema, str) or not re.match(r"^[A-Za-z][A-Za-z0-9]{1,7}_[A-Za-z0-9_]+$", schema):
            raise self._throw(400, CODE_INVALID_ARGUMENT, f"The relationship SchemaName '{schema}' is invalid.")
        if any(r["SchemaName"].lower() == schema.lower() for r in self.relationships):
            raise self._throw(400, CODE_DUPLICATE, f"A relationship named {schema} already exists.")
        referenced, referencing = body.get("ReferencedEntity"), body.get("ReferencingEntity")
        for role, name in (("ReferencedEntity", referenced), ("ReferencingEntity", referencing)):
            if not isinstance(name, str) or name not in self._entities:
                raise self._throw(404, CODE_BAD_URI, f"{role}: could not find entity with logical name '{name}'.")
        assert isinstance(referenced, str) and isinstance(referencing, str)
        lookup = body.get("Lookup")
        if not isinstance(lookup, dict):
            raise self._throw(400, CODE_INVALID_ARGUMENT, "A one-to-many relationship needs its Lookup (deep insert).")
        self._check_odata_type(lookup, ("LookupAttributeMetadata",))
        self._check_label(lookup, "DisplayName", "lookup")
        lookup_schema = lookup.get("SchemaName")
        if not isinstance(lookup_schema, str) or not lookup_schema:
            raise self._throw(400, CODE_INVALID_ARGUMENT, "The Lookup needs a SchemaName.")
        column = lookup_schema.lower()
        target = self._entities[referencing]
        if column in target.columns:
            if (referencing, column) not in self.polymorphic_lookups:
                raise self._throw(
                    400,
                    CODE_DUPLICATE,
                    f"An attribute with the specified name {column} already exists on {referencing}.",
                )
            if any(
                r["ReferencingEntity"] == referencing
                and r["ReferencingAttribute"] == column
                and r["ReferencedEntity"] == referenced
                for r in self.relationships
            ):
                raise self._throw(
                    400, CODE_DUPLICATE, f"{referencing}.{column} already has a relationship to {referenced}."
                )
        else:
            target.columns.add(column)
            target.attribute_types[column] = "Lookup"
        metadata_id = str(uuid.uuid4())
        self.relationships.append(
            {
                "MetadataId": metadata_id,
                "SchemaName": schema,
                "ReferencedEntity": referenced,
                "ReferencedAttribute": self._entities[referenced].primary_key,
                "ReferencingEntity": referencing,
                "ReferencingAttribute": column,
                "RelationshipType": "OneToManyRelationship",
                "CascadeConfiguration": copy.deepcopy(body.get("CascadeConfiguration")),
                "definition": copy.deepcopy(body),
            }
        )
        if solution_id is not None:
            self._add_component(solution_id, COMPONENT_RELATIONSHIP, metadata_id)
        return self._no_content([("OData-EntityId", f"{self.api_url}/RelationshipDefinitions({metadata_id})")])

    def _many_to_one(self, entity: str, query: dict[str, str]) -> Response:
        if entity not in self._entities:
            raise self._throw(404, CODE_BAD_URI, f"Could not find entity with logical name '{entity}'.")
        props = (
            "MetadataId",
            "SchemaName",
            "ReferencedEntity",
            "ReferencedAttribute",
            "ReferencingEntity",
            "ReferencingAttribute",
            "RelationshipType",
        )
        select = [x.strip() for x in query.get("$select", "").split(",") if x.strip()] or list(props)
        tests: list[tuple[str, Any]] = []
        text = query.get("$filter", "").strip()
        for clause in _split_top_level(text, "and") if text else []:
            m = _CMP_RE.match(clause)
            if not m or m.group("op") != "eq" or m.group("col") not in props:
                raise self._throw(400, CODE_ODATA, f"Unsupported $filter on relationship metadata: '{clause}'.")
            tests.append((m.group("col"), _parse_literal(m.group("val"))))
        for name in select:
            if name not in props:
                raise self._throw(
                    400,
                    CODE_ODATA,
                    f"Could not find a property named '{name}' on type 'OneToManyRelationshipMetadata'.",
                )
        value = [
            {name: r.get(name) for name in select}
            for r in self.relationships
            if r["ReferencingEntity"] == entity and all(r.get(c) == v for c, v in tests)
        ]
        ctx = f"{self.api_url}/$metadata#EntityDefinitions('{entity}')/ManyToOneRelationships"
        return self._json(200, {"@odata.context": ctx, "value": value})

    def _role(self, role_id: str) -> dict[str, Any]:
        roles = self._entities.get("role")
        if roles is None or not _is_guid(role_id) or role_id.lower() not in roles.rows:
            raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"role With Id = {role_id} Does Not Exist")
        return roles.rows[role_id.lower()]

    def _retrieve_role_privileges(self, role_id: str) -> Response:
        role = self._role(role_id.strip("'"))
        names = self._entities["privilege"].rows
        items = [
            {
                "Depth": _DEPTH_NAMES[depth],
                "PrivilegeId": privilege,
                "BusinessUnitId": role.get("_businessunitid_value"),
                "PrivilegeName": names.get(privilege, {}).get("name"),
            }
            for privilege, depth in sorted(self.role_privileges.get(role_id.strip("'").lower(), {}).items())
        ]
        ctx = f"{self.api_url}/$metadata#Microsoft.Dynamics.CRM.RetrieveRolePrivilegesRoleResponse"
        return self._json(200, {"@odata.context": ctx, "RolePrivileges": items})

    def _add_privileges_role(self, role_id: str, body: dict[str, Any]) -> Response:
        self._role(role_id)
        for name in body:
            if not name.startswith("@") and name not in ("Privileges", "SolutionUniqueName"):
                raise self._unknown_parameter(name, "AddPrivilegesRole")
        items = body.get("Privileges")
        if not isinstance(items, list) or not items:
            raise self._throw(400, CODE_INVALID_ARGUMENT, "Required parameter 'Privileges' is missing or empty.")
        known = self._entities["privilege"].rows
        granted: dict[str, int] = {}
        for item in items:
            if not isinstance(item, dict):
                raise self._throw(400, CODE_ODATA, "Each RolePrivilege must be an object.")
            depth = item.get("Depth")
            level = PRIVILEGE_DEPTHS.get(depth) if isinstance(depth, str) else None
            if level is None:
                raise self._throw(
                    400, CODE_ODATA, f"Depth '{depth}' is not a PrivilegeDepth member (Basic, Local, Deep, Global)."
                )
            privilege = str(item.get("PrivilegeId", "")).lower()
            if privilege not in known:
                raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"privilege With Id = {privilege} Does Not Exist")
            granted[privilege] = level
        held = self.role_privileges.setdefault(role_id, {})
        for privilege, level in granted.items():
            held[privilege] = max(level, held.get(privilege, -1))
        return self._no_content()

    def _validate_rtj_row(self, ent: _Entity, row: dict[str, Any], key: str | None) -> list[str]:
        problems: list[str] = []

        def required(*columns: str) -> None:
            problems.extend(f"'{c}' is required" for c in columns if row.get(c) in (None, ""))

        def unique(*columns: str) -> None:
            for other_key, other in ent.rows.items():
                if other_key != key and all(other.get(c) == row.get(c) for c in columns):
                    problems.append(f"a row with the same {'/'.join(c.strip('_') for c in columns)} exists")
                    return

        def exists(column: str, table: str) -> None:
            value = row.get(column)
            if value is not None and value not in self._entities[table].rows:
                problems.append(f"'{column}' {value} does not exist")

        name = ent.logical_name
        if name == "customapi":
            required("uniquename", "name", "displayname")
            if row.get("uniquename") and not re.match(r"^[A-Za-z0-9]+_[A-Za-z0-9_]+$", str(row["uniquename"])):
                problems.append("'uniquename' must be '<prefix>_<Name>'")
            for column in ("bindingtype", "allowedcustomprocessingsteptype"):
                if row.get(column) not in (None, 0, 1, 2):
                    problems.append(f"'{column}' must be 0, 1 or 2")
            if row.get("isfunction") not in (None, True, False):
                problems.append("'isfunction' must be a boolean")
            unique("uniquename")
            exists("_plugintypeid_value", "plugintype")
        elif name in ("customapirequestparameter", "customapiresponseproperty"):
            required("uniquename", "name", "displayname", "type", "_customapiid_value")
            if row.get("type") not in (None, *range(0, 13)):
                problems.append("'type' must be 0-12")
            unique("_customapiid_value", "uniquename")
            exists("_customapiid_value", "customapi")
        elif name == "managedidentity":
            required("applicationid", "credentialsource", "subjectscope", "name")
            if row.get("credentialsource") not in (None, 0, 1, 2, 3):
                problems.append("'credentialsource' must be 0-3")
            if row.get("subjectscope") not in (None, 0, 1, 2):
                problems.append("'subjectscope' must be 0-2")
        elif name == "pluginassembly":
            exists("_managedidentityid_value", "managedidentity")
        elif name == "environmentvariabledefinition":
            required("schemaname", "displayname", "type")
            if row.get("type") is not None and row.get("type") not in ENV_VAR_TYPES:
                problems.append(f"'type' must be one of {sorted(ENV_VAR_TYPES)}")
            unique("schemaname")
        elif name == "environmentvariablevalue":
            required("schemaname", "_environmentvariabledefinitionid_value")
            exists("_environmentvariabledefinitionid_value", "environmentvariabledefinition")
            unique("_environmentvariabledefinitionid_value")
            definition = self._entities["environmentvariabledefinition"].rows.get(
                str(row.get("_environmentvariabledefinitionid_value"))
            )
            secret = definition is not None and definition.get("type") == ENV_VAR_SECRET
            if secret and not _KEY_VAULT_SECRET_ID.match(str(row.get("value") or "")):
                problems.append("a Secret variable's value must be a Key Vault secret id (/subscriptions/…/secrets/…)")
        elif name == "msdyn_channeldefinition":
            required("msdyn_channeltype", "msdyn_outboundendpointurltemplate", "msdyn_channeldefinitionexternalentity")
            for column in ("msdyn_hasinbound", "msdyn_hasdeliveryreceipt", "msdyn_supportsaccount"):
                if row.get(column) not in (True, False):
                    problems.append(f"'{column}' is required (true or false)")
            channel_type = row.get("msdyn_channeltype")
            if channel_type not in (None, "SMS", "Custom"):
                problems.append("'msdyn_channeltype' must be 'SMS' or 'Custom'")
            if channel_type in ("SMS", "Custom") and row.get("msdyn_supportsaccount") is not (channel_type == "SMS"):
                problems.append("'msdyn_supportsaccount' must be true for SMS and false otherwise")
            if channel_type == "Custom" and row.get("msdyn_hasinbound"):
                problems.append("inbound applies to SMS channels only")
            if not str(row.get("msdyn_outboundendpointurltemplate") or "/").startswith("/"):
                problems.append("'msdyn_outboundendpointurltemplate' must be '/' + the custom API name")
            for column in ("msdyn_channeldefinitionexternalentity", "msdyn_channeldefinitionaccountexternalentity"):
                table = row.get(column)
                if table and table not in self._entities:
                    problems.append(f"'{column}' names a table that does not exist: {table}")
        elif name == "msdyn_channelmessagepart":
            required("msdyn_name", "msdyn_type", "_msdyn_channeldefinitionid_value")
            exists("_msdyn_channeldefinitionid_value", "msdyn_channeldefinition")
            if row.get("msdyn_type") is not None and row.get("msdyn_type") not in MESSAGE_PART_TYPES:
                problems.append("'msdyn_type' is not a message part type")
            definition = self._entities["msdyn_channeldefinition"].rows.get(
                str(row.get("_msdyn_channeldefinitionid_value"))
            )
            if definition and definition.get("msdyn_channeltype") == "SMS":
                if row.get("msdyn_name") != "text" or row.get("msdyn_type") != 192350000:
                    problems.append("an SMS channel has exactly one part: name 'text', type 192350000")
                unique("_msdyn_channeldefinitionid_value")
            else:
                unique("_msdyn_channeldefinitionid_value", "msdyn_name")
        return problems

    def _validate_row(self, ent: _Entity, row: dict[str, Any], key: str | None = None) -> None:
        """Rules Dataverse enforces on the customization tables (others: no checks)."""
        problems: list[str] = []
        if ent.logical_name == "serviceendpoint":
            for column in ("name", "contract", "path", "solutionnamespace"):
                if row.get(column) in (None, ""):
                    problems.append(f"'{column}' is required")
            if row.get("contract") not in (None, *range(1, 12)):
                problems.append("'contract' must be 1-11")
            if row.get("messageformat") not in (None, 1, 2, 3):
                problems.append("'messageformat' must be 1 (Binary XML), 2 (Json) or 3 (Text XML)")
            if row.get("authtype") == 2 and not row.get("saskeyname"):
                problems.append("SAS key authentication (authtype 2) needs 'saskeyname'")
            if row.get("namespaceformat") == 2 and not str(row.get("namespaceaddress", "")).startswith("sb://"):
                problems.append("'namespaceaddress' must be sb://<namespace>.servicebus.windows.net/")
        elif ent.logical_name == "sdkmessageprocessingstep":
            if row.get("mode") == 1 and row.get("stage") != 40:
                problems.append("asynchronous steps can only be registered in PostOperation (stage 40)")
            for column, table in (
                ("_sdkmessageid_value", "sdkmessage"),
                ("_eventhandler_value", None),
                ("_sdkmessagefilterid_value", "sdkmessagefilter"),
            ):
                value = row.get(column)
                if value is None:
                    if column != "_sdkmessagefilterid_value":
                        problems.append(f"'{column}' is required")
                    continue
                tables = [table] if table else ["serviceendpoint", "plugintype"]
                if not any(t in self._entities and value in self._entities[t].rows for t in tables):
                    problems.append(f"'{column}' {value} does not exist")
            handler = row.get("_eventhandler_value")
            endpoints = self._entities.get("serviceendpoint")
            if endpoints is not None and handler in endpoints.rows and row.get("mode") != 1:
                problems.append("service endpoints support only asynchronous steps (mode 1)")
        elif ent.logical_name in _RTJ_TABLES:
            problems += self._validate_rtj_row(ent, row, key)
        elif ent.logical_name == "webresource":
            if row.get("webresourcetype") not in range(1, 13):
                problems.append("'webresourcetype' must be 1-12")
            try:
                base64.b64decode(str(row.get("content") or ""), validate=True)
            except (binascii.Error, ValueError):
                problems.append("'content' must be base64")
        if problems:
            raise self._throw(400, CODE_INVALID_ARGUMENT, f"Invalid {ent.logical_name}: " + "; ".join(problems) + ".")

    def _after_write(self, ent: _Entity, key: str) -> None:
        if ent.logical_name == "serviceendpoint":
            row = ent.rows[key]
            row["issaskeyset"] = bool(row.get("saskey"))
            row["issastokenset"] = bool(row.get("sastoken"))

    def metadata_xml(self) -> str:
        """A minimal CSDL document with the entity types and the channel actions."""
        lines = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
            "<edmx:DataServices>",
            '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
            '<EntityType Name="crmbaseentity" Abstract="true"/>',
        ]
        with self._data_lock:
            entities = {e.logical_name: (e.primary_key, sorted(e.columns)) for e in self._entities.values()}
            sets = [(e.entity_set_name, e.logical_name) for e in self._entities.values()]
        for param in self.action_parameters:
            if param.entity and param.entity not in entities:
                entities[param.entity] = (f"{param.entity}id", [])
        for logical, (pk, cols) in sorted(entities.items()):
            lines.append(f'<EntityType Name={quoteattr(logical)} BaseType="mscrm.crmbaseentity">')
            lines.append(f"<Key><PropertyRef Name={quoteattr(pk)}/></Key>")
            lines.append(f'<Property Name={quoteattr(pk)} Type="Edm.Guid"/>')
            for col in cols:
                ctype = "Edm.Guid" if col.startswith("_") and col.endswith("_value") else "Edm.String"
                lines.append(f'<Property Name={quoteattr(col)} Type="{ctype}"/>')
            lines.append("</EntityType>")
        lines += [
            '<ComplexType Name="WhoAmIResponse">',
            '<Property Name="BusinessUnitId" Type="Edm.Guid" Nullable="false"/>',
            '<Property Name="UserId" Type="Edm.Guid" Nullable="false"/>',
            '<Property Name="OrganizationId" Type="Edm.Guid" Nullable="false"/>',
            "</ComplexType>",
            f'<ComplexType Name="{NOTIFICATION_ACTION}Response">',
            '<Property Name="responseMessage" Type="Edm.String" Unicode="false"/>',
            "</ComplexType>",
            f'<ComplexType Name="{INBOUND_ACTION}Response">',
            '<Property Name="responseMessage" Type="Edm.String" Unicode="false"/>',
            "</ComplexType>",
            f'<Action Name="{INTERACTION_ACTION}">',
        ]
        for param in self.action_parameters:
            nullable = ' Nullable="false"' if param.required else ""
            unicode_attr = ' Unicode="false"' if param.type == "Edm.String" else ""
            lines.append(
                f"<Parameter Name={quoteattr(param.name)} Type={quoteattr(param.type)}{nullable}{unicode_attr}/>"
            )
        lines += [
            "</Action>",
            f'<Action Name="{NOTIFICATION_ACTION}">',
            '<Parameter Name="notificationPayLoad" Type="Edm.String" Nullable="false" Unicode="false"/>',
            f'<ReturnType Type="mscrm.{NOTIFICATION_ACTION}Response" Nullable="false"/>',
            "</Action>",
            f'<Action Name="{INBOUND_ACTION}">',
            '<Parameter Name="inboundPayLoad" Type="Edm.String" Nullable="false" Unicode="false"/>',
            f'<ReturnType Type="mscrm.{INBOUND_ACTION}Response" Nullable="false"/>',
            "</Action>",
            '<Function Name="WhoAmI">',
            '<ReturnType Type="mscrm.WhoAmIResponse" Nullable="false"/>',
            "</Function>",
            '<EntityContainer Name="System">',
        ]
        for set_name, logical in sorted(sets):
            lines.append(f"<EntitySet Name={quoteattr(set_name)} EntityType={quoteattr('mscrm.' + logical)}/>")
        for action in (INTERACTION_ACTION, NOTIFICATION_ACTION, INBOUND_ACTION):
            lines.append(f'<ActionImport Name="{action}" Action="mscrm.{action}"/>')
        lines += [
            '<FunctionImport Name="WhoAmI" Function="mscrm.WhoAmI" IncludeInServiceDocument="false"/>',
            "</EntityContainer>",
            "</Schema>",
            "</edmx:DataServices>",
            "</edmx:Edmx>",
        ]
        return "\n".join(lines)

    # -- actions ------------------------------------------------------------------------------
    def _unknown_parameter(self, name: str, operation: str) -> _HttpError:
        return self._throw(
            400,
            CODE_ODATA,
            f"The parameter '{name}' in the request payload is not a valid parameter for the operation '{operation}'.",
        )

    def _create_interaction(self, payload: dict[str, Any]) -> Response:
        params = {p.name: p for p in self.action_parameters}
        for name in payload:
            if name.startswith("@"):
                continue
            if name not in params:
                raise self._unknown_parameter(name, INTERACTION_ACTION)
        for param in self.action_parameters:
            if param.name not in payload:
                if param.required:
                    raise self._throw(
                        400,
                        CODE_INVALID_ARGUMENT,
                        f"Required parameter '{param.name}' is missing for the operation '{INTERACTION_ACTION}'.",
                    )
                continue
            value = payload[param.name]
            if value is None:
                if param.required:
                    raise self._throw(
                        400,
                        CODE_ODATA,
                        f"A null value was found for the property named '{param.name}', which has the expected "
                        f"type '{param.type}[Nullable=False]'. The expected type '{param.type}[Nullable=False]' "
                        "does not allow null values.",
                    )
                continue
            if param.entity is None:
                self._check_string(param, value)
            else:
                self._check_entity_reference(param, param.entity, value)
        self.interactions.append(copy.deepcopy(payload))
        return self._no_content()

    def _check_string(self, param: ActionParameter, value: Any) -> None:
        if isinstance(value, (dict, list)):
            node = "StartObject" if isinstance(value, dict) else "StartArray"
            raise self._throw(
                400,
                CODE_ODATA,
                f"An unexpected '{node}' node was found when reading from the JSON reader. "
                "A 'PrimitiveValue' node was expected.",
            )
        if not isinstance(value, str):
            raise self._throw(
                400,
                CODE_ODATA,
                f"Cannot convert a primitive value to the expected type 'Edm.String' for parameter '{param.name}'.",
            )

    def _check_entity_reference(self, param: ActionParameter, logical: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise self._throw(
                400,
                CODE_ODATA,
                "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. "
                f"A 'StartObject' node was expected (parameter '{param.name}').",
            )
        expected = f"Microsoft.Dynamics.CRM.{logical}"
        odata_type = value.get("@odata.type")
        if not isinstance(odata_type, str) or not odata_type:
            raise self._throw(
                400,
                CODE_ODATA,
                f"The entity parameter '{param.name}' must carry '@odata.type': '{expected}'.",
            )
        if odata_type.lstrip("#") != expected:
            raise self._throw(
                400,
                CODE_ODATA,
                f"A resource with type '{odata_type.lstrip('#')}' was found, but it is not assignable to the "
                f"expected type '{expected}'. The type specified in the resource must be equal to either the "
                "expected type or a derived type.",
            )
        key_name = f"{logical}id"
        ent = self._entities.get(logical)
        if ent is not None:
            key_name = ent.primary_key
        if key_name not in value:
            raise self._throw(
                400,
                CODE_INVALID_ARGUMENT,
                f"The entity parameter '{param.name}' does not contain the primary key '{key_name}'.",
            )
        key = value[key_name]
        if not isinstance(key, str) or not _is_guid(key):
            raise self._throw(400, CODE_ODATA, f"Cannot convert the literal '{key}' to the expected type 'Edm.Guid'.")
        for prop in value:
            if prop.startswith("@") or prop == key_name:
                continue
            if ent is None or prop not in ent.columns:
                raise self._throw(
                    400,
                    CODE_ODATA,
                    f"The property '{prop}' does not exist on type '{expected}'. Make sure to only use "
                    "property names that are defined by the type or mark the type as open type.",
                )
        if self.verify_references and ent is not None and key.lower() not in ent.rows:
            raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"{logical} With Id = {key.lower()} Does Not Exist")

    def _channels_action(
        self, action: str, param_name: str, payload: dict[str, Any], store: list[dict[str, Any]]
    ) -> Response:
        for name in payload:
            if not name.startswith("@") and name != param_name:
                raise self._unknown_parameter(name, action)
        if param_name not in payload:
            raise self._throw(
                400,
                CODE_INVALID_ARGUMENT,
                f"Required parameter '{param_name}' is missing for the operation '{action}'.",
            )
        raw = payload[param_name]
        if raw is None:
            raise self._throw(
                400,
                CODE_ODATA,
                f"A null value was found for the property named '{param_name}', which has the expected type "
                "'Edm.String[Nullable=False]'. The expected type 'Edm.String[Nullable=False]' does not allow "
                "null values.",
            )
        self._check_string(ActionParameter(param_name, "Edm.String"), raw)
        try:
            inner = json.loads(raw)
        except ValueError:
            inner = None
        if not isinstance(inner, dict):
            raise self._throw(400, CODE_PLUGIN, f"{param_name} must be a string holding a serialized JSON object.")
        store.append(inner)
        return self._json(
            200,
            {
                "@odata.context": f"{self.api_url}/$metadata#Microsoft.Dynamics.CRM.{action}Response",
                "responseMessage": self.channels_response_message,
            },
        )

    # -- table rows ---------------------------------------------------------------------------
    def _wants_formatted(self, prefer: str) -> tuple[bool, list[tuple[str, str]]]:
        m = re.search(r"odata\.include-annotations\s*=\s*\"?([^\",;]*)\"?", prefer)
        if not m:
            return False, []
        value = m.group(1).strip()
        ok = value == "*" or _FORMATTED in value or (value.endswith(".*") and _FORMATTED.startswith(value[:-1]))
        return ok, [("Preference-Applied", f'odata.include-annotations="{value}"')]

    def _parse_select(self, ent: _Entity, query: dict[str, str]) -> list[str]:
        select = [s.strip() for s in query.get("$select", "").split(",") if s.strip()]
        for name in select:
            if name != ent.primary_key and name not in ent.columns:
                raise self._throw(
                    400,
                    CODE_ODATA,
                    f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{ent.logical_name}'.",
                )
        return select

    def _shape(self, ent: _Entity, key: str, select: list[str], formatted: bool) -> dict[str, Any]:
        row = ent.rows[key]
        out: dict[str, Any] = {"@odata.etag": f'W/"{ent.versions.get(key, 0)}"'}
        names = [c for c in select if c != ent.primary_key] if select else sorted(ent.columns - ent.write_only)
        labels = ent.formatted.get(key, {})
        for name in names:
            if formatted and name in labels:
                out[f"{name}@{_FORMATTED}"] = labels[name]
            out[name] = None if name in ent.write_only else row.get(name)
        out[ent.primary_key] = key
        return out

    def _context(self, ent: _Entity, select: list[str], single: bool) -> str:
        sel = f"({','.join(select)})" if select else ""
        return f"{self.api_url}/$metadata#{ent.entity_set_name}{sel}" + ("/$entity" if single else "")

    def _retrieve(self, ent: _Entity, key: str, query: dict[str, str], prefer: str) -> Response:
        select = self._parse_select(ent, query)
        if key not in ent.rows:
            raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"{ent.logical_name} With Id = {key} Does Not Exist")
        formatted, applied = self._wants_formatted(prefer)
        body = {"@odata.context": self._context(ent, select, True), **self._shape(ent, key, select, formatted)}
        return self._json(200, body, [*applied, ("ETag", body["@odata.etag"])])

    def _query(self, ent: _Entity, query: dict[str, str], prefer: str) -> Response:
        select = self._parse_select(ent, query)
        predicate = self._parse_filter(ent, query.get("$filter", ""), query)
        formatted, applied = self._wants_formatted(prefer)
        top_text = query.get("$top")
        top: int | None = None
        if top_text is not None:
            if not top_text.isdigit():
                raise self._throw(400, CODE_ODATA, f"Invalid value '{top_text}' for $top query option found.")
            top = int(top_text)
        keys = [k for k in ent.rows if predicate(k, ent.rows[k])]
        if top is not None:
            keys = keys[:top]
        value = [self._shape(ent, k, select, formatted) for k in keys]
        return self._json(200, {"@odata.context": self._context(ent, select, False), "value": value}, applied)

    def _parse_filter(self, ent: _Entity, text: str, query: dict[str, str]) -> Any:
        text = text.strip()
        if not text:
            return lambda key, row: True
        clauses = _split_top_level(text, "and")
        tests = [self._parse_clause(ent, clause, query) for clause in clauses]
        return lambda key, row: all(t(key, row) for t in tests)

    def _column_value(self, ent: _Entity, key: str, row: dict[str, Any], column: str) -> Any:
        return key if column == ent.primary_key else row.get(column)

    def _resolve_alias(self, text: str, query: dict[str, str]) -> str:
        if text.startswith("@"):
            if text not in query:
                raise self._throw(400, CODE_ODATA, f"The parameter alias '{text}' was not found in the request.")
            return query[text]
        return text

    def _parse_clause(self, ent: _Entity, clause: str, query: dict[str, str]) -> Any:
        while clause.startswith("(") and clause.endswith(")") and _balanced(clause[1:-1]):
            clause = clause[1:-1].strip()
        m = _IN_RE.match(clause)
        if m:
            name = _parse_string_literal(self._resolve_alias(m.group("pn"), query))
            values = _parse_value_list(self._resolve_alias(m.group("pv"), query))
            if name is None or values is None:
                raise self._throw(400, CODE_ODATA, f"Invalid arguments to Microsoft.Dynamics.CRM.In: '{clause}'.")
            if name != ent.primary_key and name not in ent.columns:
                raise self._throw(
                    400,
                    CODE_MISSING_ATTRIBUTE,
                    f"'{ent.logical_name}' entity doesn't contain attribute with Name = '{name}' and "
                    "NameMapping = 'Logical'.",
                )
            wanted = {v.lower() for v in values}
            column = name
            return lambda key, row: _norm(self._column_value(ent, key, row, column)) in wanted
        m = _CMP_RE.match(clause)
        if m:
            column = m.group("col")
            if column != ent.primary_key and column not in ent.columns:
                raise self._throw(
                    400,
                    CODE_ODATA,
                    f"Could not find a property named '{column}' on type 'Microsoft.Dynamics.CRM.{ent.logical_name}'.",
                )
            literal = _parse_literal(self._resolve_alias(m.group("val").strip(), query))
            if literal is _NO_VALUE:
                raise self._throw(400, CODE_ODATA, f"Syntax error in $filter near '{m.group('val')}'.")
            negate = m.group("op") == "ne"
            target = _norm(literal)
            return lambda key, row: (_norm(self._column_value(ent, key, row, column)) == target) != negate
        raise self._throw(
            400,
            CODE_ODATA,
            f"The $filter expression '{clause}' is not supported by the emulator "
            "(supported: Microsoft.Dynamics.CRM.In, <col> eq|ne <literal>, joined by 'and').",
        )

    def _apply_body(self, ent: _Entity, body: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in body.items():
            if name.startswith("@"):
                continue
            if name.endswith("@odata.bind"):
                nav = name[: -len("@odata.bind")]
                column = ent.navigations.get(nav, f"_{nav.lower()}_value")
                if column not in ent.columns or (ent.strict_navigations and nav not in ent.navigations):
                    raise self._throw(
                        400,
                        CODE_ODATA,
                        f"An undeclared property '{nav}' which only has property annotations in the payload but "
                        "no property value was found in the payload. In OData, only declared navigation "
                        "properties and declared named streams can be represented as properties without values.",
                    )
                if value is None:
                    values[column] = None
                    continue
                m = re.search(r"\(([0-9a-fA-F-]{36})\)\s*$", str(value))
                if not m:
                    raise self._throw(400, CODE_ODATA, f"Invalid entity reference '{value}' for '{name}'.")
                values[column] = m.group(1).lower()
                continue
            if "@" in name:
                continue
            if name.startswith("_") and name.endswith("_value"):
                raise self._throw(
                    400,
                    CODE_BAD_URI,
                    "CRM do not support direct update of Entity Reference properties, Use Navigation "
                    "properties instead.",
                )
            if name != ent.primary_key and name not in ent.columns:
                raise self._throw(
                    400,
                    CODE_ODATA,
                    f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{ent.logical_name}'. "
                    "Make sure to only use property names that are defined by the type or mark the type as "
                    "open type.",
                )
            values[name] = value
        return values

    def _create(self, ent: _Entity, body: dict[str, Any], prefer: str) -> Response:
        values = self._apply_body(ent, body)
        key_value = values.pop(ent.primary_key, None)
        if key_value is not None and (not isinstance(key_value, str) or not _is_guid(key_value)):
            raise self._throw(
                400, CODE_ODATA, f"Cannot convert the literal '{key_value}' to the expected type 'Edm.Guid'."
            )
        key = (key_value or str(uuid.uuid4())).lower()
        if key in ent.rows:
            raise self._throw(412, CODE_DUPLICATE, "A record with matching key values already exists.")
        self._validate_row(ent, values, key)
        ent.rows[key] = values
        ent.formatted[key] = {}
        ent.versions[key] = self._next_version()
        self._after_write(ent, key)
        location = self._entity_id_url(ent, key)
        if "return=representation" in prefer:
            select: list[str] = []
            formatted, applied = self._wants_formatted(prefer)
            out = {"@odata.context": self._context(ent, select, True), **self._shape(ent, key, select, formatted)}
            return self._json(
                201, out, [("OData-EntityId", location), ("Location", location), ("ETag", out["@odata.etag"]), *applied]
            )
        return self._no_content([("OData-EntityId", location), ("Location", location)])

    def _update(self, ent: _Entity, key: str, body: dict[str, Any], headers: dict[str, str], prefer: str) -> Response:
        if_match = headers.get("if-match", "").strip()
        if_none_match = headers.get("if-none-match", "").strip()
        exists = key in ent.rows
        if not exists:
            if self.upsert_on_patch and not if_match:
                values = self._apply_body(ent, body)
                values.pop(ent.primary_key, None)
                ent.rows[key] = values
                ent.formatted[key] = {}
                ent.versions[key] = self._next_version()
                location = self._entity_id_url(ent, key)
                return self._no_content([("OData-EntityId", location)])
            raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"{ent.logical_name} With Id = {key} Does Not Exist")
        if if_none_match == "*":
            raise self._throw(412, CODE_DUPLICATE, "A record with matching key values already exists.")
        current = f'W/"{ent.versions.get(key, 0)}"'
        if if_match and if_match not in ("*", current):
            raise self._throw(
                412,
                CODE_CONCURRENCY_VERSION,
                "The version of the existing record doesn't match the RowVersion property provided.",
            )
        values = self._apply_body(ent, body)
        values.pop(ent.primary_key, None)
        self._check_immutable(ent, key, values)
        self._validate_row(ent, {**ent.rows[key], **values}, key)
        ent.rows[key].update(values)
        ent.versions[key] = self._next_version()
        self._after_write(ent, key)
        location = self._entity_id_url(ent, key)
        if "return=representation" in prefer:
            formatted, applied = self._wants_formatted(prefer)
            out = {"@odata.context": self._context(ent, [], True), **self._shape(ent, key, [], formatted)}
            return self._json(200, out, [("OData-EntityId", location), *applied])
        return self._no_content([("OData-EntityId", location)])

    def _delete(self, ent: _Entity, key: str) -> Response:
        if key not in ent.rows:
            raise self._throw(404, CODE_OBJECT_DOES_NOT_EXIST, f"{ent.logical_name} With Id = {key} Does Not Exist")
        del ent.rows[key]
        ent.formatted.pop(key, None)
        ent.versions.pop(key, None)
        return self._no_content()

    # ------------------------------------------------------------------ $batch
    def _execute_batch(self, request: Incoming) -> Response:
        ctype = request.header("content-type")
        boundary = _boundary(ctype)
        if not ctype.lower().startswith("multipart/mixed") or boundary is None:
            return self._error(
                400, CODE_ODATA, "A $batch request must have Content-Type multipart/mixed with a boundary."
            )
        try:
            items = _parse_batch(request.body, boundary)
        except ValueError as exc:
            return self._error(400, CODE_ODATA, f"The batch request body is malformed: {exc}")
        total = sum(len(item) if isinstance(item, list) else 1 for item in items)
        if total > MAX_BATCH_OPERATIONS:
            return self._error(
                400,
                CODE_ODATA,
                f"The number of requests in the batch ({total}) exceeds the maximum of {MAX_BATCH_OPERATIONS}.",
            )
        prefer = request.header("prefer").lower()
        continue_on_error = "odata.continue-on-error" in prefer and "continue-on-error=false" not in prefer
        out_boundary = f"batchresponse_{uuid.uuid4()}"
        chunks: list[bytes] = []
        for item in items:
            if isinstance(item, list):
                failed, rendered = self._run_changeset(item)
                chunks.append(rendered)
            else:
                response = self._run_batch_part(item, {})
                failed = response.status >= 400
                chunks.append(_render_http_part(response, None))
            if failed and not continue_on_error:
                break
        body = b"".join(b"--" + out_boundary.encode() + b"\r\n" + c for c in chunks)
        body += b"--" + out_boundary.encode() + b"--\r\n"
        headers = [*self._base_headers(), ("Content-Type", f"multipart/mixed; boundary={out_boundary}")]
        if continue_on_error:
            headers.append(("Preference-Applied", "odata.continue-on-error"))
        return Response(200, body, headers)

    def _snapshot(self) -> Any:
        return (
            copy.deepcopy({k: (e.rows, e.formatted, e.versions) for k, e in self._entities.items()}),
            len(self.interactions),
            len(self.notifications),
            len(self.inbound),
        )

    def _restore(self, snapshot: Any) -> None:
        data, n_int, n_not, n_in = snapshot
        for name, (rows, formatted, versions) in data.items():
            ent = self._entities.get(name)
            if ent is not None:
                ent.rows, ent.formatted, ent.versions = rows, formatted, versions
        del self.interactions[n_int:]
        del self.notifications[n_not:]
        del self.inbound[n_in:]

    def _run_changeset(self, parts: list[_BatchPart]) -> tuple[bool, bytes]:
        snapshot = self._snapshot()
        refs: dict[str, str] = {}
        results: list[tuple[_BatchPart, Response]] = []
        for part in parts:
            if part.method == "GET":
                response = self._error(400, CODE_ODATA, "GET requests are not allowed inside a change set.")
            else:
                response = self._run_batch_part(part, refs)
            if response.status >= 400:
                self._restore(snapshot)
                return True, _render_http_part(response, part.content_id)
            results.append((part, response))
            entity_id = response.header("OData-EntityId")
            if part.content_id and entity_id:
                refs[part.content_id] = entity_id
        cs_boundary = f"changesetresponse_{uuid.uuid4()}"
        inner = b"".join(
            b"--" + cs_boundary.encode() + b"\r\n" + _render_http_part(resp, part.content_id) for part, resp in results
        )
        inner += b"--" + cs_boundary.encode() + b"--\r\n"
        head = f"Content-Type: multipart/mixed; boundary={cs_boundary}\r\n\r\n".encode()
        return False, head + inner + b"\r\n"

    def _run_batch_part(self, part: _BatchPart, refs: dict[str, str]) -> Response:
        url = part.url
        ref = re.match(r"^\$(\w+)(.*)$", url)
        if ref and ref.group(1) in refs:
            url = refs[ref.group(1)] + ref.group(2)
        split = urlsplit(url)
        path = split.path
        if not path.startswith("/"):
            path = API_PREFIX + path
        target = path + ("?" + split.query if split.query else "")
        if len(target) > MAX_BATCH_URL_LENGTH:
            return self._error(414, CODE_BAD_URI, "The request URL inside the batch exceeds 65,536 characters.")
        fault = self._take_fault(part.method, target)
        if fault is not None:
            response = self._fault_response(fault)
            if response.drop:
                raise DropConnection()
            self.operation_count += 1
            return response
        m = _API_PATH_RE.match(path)
        if not m:
            self.operation_count += 1
            return self._error(404, CODE_BAD_URI, f"Resource not found for the segment '{path}'.")
        resource = unquote(m.group("rest"))
        json_ctype = part.headers.get("content-type", "").lower().startswith("application/json")
        if part.body.strip() and part.method in ("POST", "PATCH", "PUT") and not json_ctype:
            self.operation_count += 1
            return self._error(
                415, CODE_ODATA, "Operations with a body inside a $batch need 'Content-Type: application/json'."
            )
        if resource == "$batch":
            self.operation_count += 1
            return self._error(400, CODE_ODATA, "Nested $batch requests are not supported.")
        return self._run_operation(part.method, resource, split.query, part.headers, part.body, in_batch=True)


def _plural(logical_name: str) -> str:
    """Dataverse's usual entity set name for a new table (the real one is read back from metadata)."""
    if logical_name.endswith(("s", "x", "ch", "sh")):
        return logical_name + "es"
    if logical_name.endswith("y") and logical_name[-2:-1] not in ("a", "e", "i", "o", "u"):
        return logical_name[:-1] + "ies"
    return logical_name + "s"


def _balanced(text: str) -> bool:
    depth = 0
    quote: str | None = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


# ---------------------------------------------------------------------- $batch wire format
@dataclass
class _BatchPart:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None


def _boundary(content_type: str) -> str | None:
    m = re.search(r"boundary=(\"?)([^\";]+)\1", content_type, re.IGNORECASE)
    return m.group(2).strip() if m else None


def _split_multipart(body: bytes, boundary: str) -> list[bytes]:
    delim = b"--" + boundary.encode()
    segments = body.split(delim)
    if len(segments) < 2:
        raise ValueError(f"boundary '{boundary}' not found")
    parts: list[bytes] = []
    closed = False
    for raw in segments[1:]:
        if raw.startswith(b"--"):
            closed = True
            break
        seg = raw.removeprefix(b"\r\n") if raw.startswith(b"\r\n") else raw.removeprefix(b"\n")
        seg = seg.removesuffix(b"\r\n") if seg.endswith(b"\r\n") else seg.removesuffix(b"\n")
        parts.append(seg)
    if not closed:
        raise ValueError(f"closing delimiter '--{boundary}--' missing")
    return parts


def _split_head(blob: bytes) -> tuple[dict[str, str], bytes]:
    m = re.search(rb"\r?\n\r?\n", blob)
    if m is None:
        head, rest = blob, b""
    else:
        head, rest = blob[: m.start()], blob[m.end() :]
    headers: dict[str, str] = {}
    for line in re.split(rb"\r?\n", head):
        if not line.strip():
            continue
        name, sep, value = line.decode("utf-8").partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers, rest


def _parse_http_part(blob: bytes) -> _BatchPart:
    mime_headers, rest = _split_head(blob)
    rest = rest.lstrip(b"\r\n")
    m = re.match(rb"([^\r\n]*)\r?\n?", rest)
    request_line = m.group(1).decode("utf-8").strip() if m else ""
    after = rest[m.end() :] if m else b""
    bits = request_line.split()
    if len(bits) < 2:
        raise ValueError(f"bad request line {request_line[:80]!r}")
    method, url = bits[0].upper(), bits[1]
    if re.match(rb"\r?\n", after):
        headers: dict[str, str] = {}
        body = re.sub(rb"^\r?\n", b"", after)
    else:
        headers, body = _split_head(after)
    return _BatchPart(method, url, headers, body.strip(), mime_headers.get("content-id"))


def _parse_batch(body: bytes, boundary: str) -> list[_BatchPart | list[_BatchPart]]:
    items: list[_BatchPart | list[_BatchPart]] = []
    for part in _split_multipart(body, boundary):
        mime_headers, rest = _split_head(part)
        ctype = mime_headers.get("content-type", "").lower()
        if ctype.startswith("multipart/mixed"):
            cs_boundary = _boundary(mime_headers["content-type"])
            if cs_boundary is None:
                raise ValueError("change set without boundary")
            items.append([_parse_http_part(p) for p in _split_multipart(rest, cs_boundary)])
        else:
            items.append(_parse_http_part(part))
    return items


def _render_http_part(response: Response, content_id: str | None) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {_phrase(response.status)}"]
    lines += [f"{k}: {v}" for k, v in response.headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + response.body + b"\r\n"


# ---------------------------------------------------------------------- demo data
def seed_demo(emulator: DataverseEmulator) -> dict[str, Any]:
    """Seed a small demo org (contacts, a journey, a custom channel activity, one message row).

    Returns the ids and names used.
    """
    ids: dict[str, Any] = {
        "message_entity": "cr123_smsmessage",
        "message_entity_set": "cr123_smsmessages",
        "message_body_column": "cr123_body",
        "message_id": "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51",
        "journey_id": "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a01",
        "iteration_id": "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a02",
        "activity_id": "3b2c1d0e-4f5a-4b6c-8d7e-9f0a1b2c3d01",
        "activity_msdyncrm_activityid": "act-0001",
        "contact_ids": [
            "c0a80101-0000-4000-8000-000000000001",
            "c0a80101-0000-4000-8000-000000000002",
            "c0a80101-0000-4000-8000-000000000003",
        ],
    }
    emulator.add_entity("contact", "contacts", "contactid")
    emulator.add_columns(
        "contact", ["firstname", "lastname", "fullname", "mobilephone", "emailaddress1", "donotphone", "donotsms"]
    )
    people = [
        ("Ada", "Lovelace", "+14155550101", False),
        ("Alan", "Turing", "+447700900123", False),
        ("Grace", "Hopper", "+14155550103", True),
    ]
    for cid, (first, last, phone, opted_out) in zip(ids["contact_ids"], people, strict=True):
        emulator.add_row(
            "contact",
            cid,
            {
                "firstname": first,
                "lastname": last,
                "fullname": f"{first} {last}",
                "mobilephone": phone,
                "emailaddress1": f"{first.lower()}@example.com",
                "donotphone": opted_out,
                "donotsms": opted_out,
            },
            formatted={
                "donotphone": "Do Not Allow" if opted_out else "Allow",
                "donotsms": "Do Not Allow" if opted_out else "Allow",
            },
        )
    emulator.add_entity("msdyncrm_customerjourney", "msdyncrm_customerjourneys", "msdyncrm_customerjourneyid")
    emulator.add_row("msdyncrm_customerjourney", ids["journey_id"], {"msdyncrm_name": "Demo journey"})
    emulator.add_entity(
        "msdyncrm_customerjourneyiteration", "msdyncrm_customerjourneyiterations", "msdyncrm_customerjourneyiterationid"
    )
    emulator.add_row(
        "msdyncrm_customerjourneyiteration", ids["iteration_id"], {"msdyncrm_name": "Demo journey iteration 1"}
    )
    emulator.add_entity(ids["message_entity"], ids["message_entity_set"], f"{ids['message_entity']}id")
    emulator.add_row(
        ids["message_entity"],
        ids["message_id"],
        {"cr123_name": "Welcome SMS", ids["message_body_column"]: "Hi {{contact.firstname}}, welcome aboard!"},
    )
    emulator.add_entity(
        "msdyncrm_customerjourneycustomchannelactivity",
        "msdyncrm_customerjourneycustomchannelactivities",
        "msdyncrm_customerjourneycustomchannelactivityid",
    )
    emulator.add_row(
        "msdyncrm_customerjourneycustomchannelactivity",
        ids["activity_id"],
        {
            "msdyncrm_name": "Demo SMS activity",
            "msdyncrm_activityid": ids["activity_msdyncrm_activityid"],
            "_msdyncrm_contact_value": ids["contact_ids"][0],
            "_msdyncrm_customerjourney_value": ids["journey_id"],
            "_msdyncrm_customerjourneyiteration_value": ids["iteration_id"],
            "msdyncrm_entitytype": ids["message_entity"],
            "msdyncrm_entityid": ids["message_id"],
            "statecode": 0,
            "statuscode": 1,
        },
        formatted={"statecode": "Active", "statuscode": "Active", "_msdyncrm_contact_value": "Ada Lovelace"},
    )
    return ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a loopback Dataverse Web API emulator.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default="dev-token", help="bearer token the emulator accepts")
    parser.add_argument("--seed", choices=["demo", "none"], default="none")
    parser.add_argument("--signature", choices=sorted(SIGNATURES), default="customerjourney")
    args = parser.parse_args(argv)
    emulator = DataverseEmulator(token=args.token, signature=args.signature, host=args.host, port=args.port)
    ids = seed_demo(emulator) if args.seed == "demo" else {}
    print(emulator.url, flush=True)
    if ids:
        print(json.dumps({"seed": ids}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
