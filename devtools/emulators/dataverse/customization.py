"""The customization subset of the Web API used by ``channel provision``: system tables, solutions and their
components (``MSCRM.SolutionUniqueName``), ``POST EntityDefinitions``, ``POST …/Attributes`` and ``PublishXml``."""

from __future__ import annotations

import copy
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from devtools.emulators._base import Response
from devtools.emulators.dataverse import errors
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.models import Entity, plural
from devtools.emulators.dataverse.request import Call

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

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
SDK_MESSAGE_CREATE_ID = "9ebdbb1b-ea3e-db11-86a7-000a3a5473e8"
# logical name: (entity set, primary key, columns)
SYSTEM_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
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
            *("name", "description", "contract", "connectionmode", "authtype", "namespaceformat", "namespaceaddress"),
            *("solutionnamespace", "path", "saskeyname", "saskey", "sastoken", "messageformat", "messagecharset"),
            *("userclaim", "url", "issaskeyset", "issastokenset"),
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
            *("name", "description", "mode", "stage", "rank", "supporteddeployment", "asyncautodelete"),
            *("invocationsource", "filteringattributes", "configuration", "statecode", "statuscode"),
            *("_eventhandler_value", "_sdkmessageid_value", "_sdkmessagefilterid_value", "_impersonatinguserid_value"),
        ),
    ),
    "savedquery": ("savedqueries", "savedqueryid", ("name", "returnedtypecode", "querytype", "isdefault")),
    "systemform": ("systemforms", "formid", ("name", "objecttypecode", "type", "formxml")),
    "businessunit": ("businessunits", "businessunitid", ("name", "_parentbusinessunitid_value")),
    "role": ("roles", "roleid", ("name", "_businessunitid_value", "_parentroleid_value")),
    "systemuser": (
        "systemusers",
        "systemuserid",
        ("applicationid", "fullname", "domainname", "isdisabled", "_businessunitid_value"),
    ),
}
# The form XML of a new table's main form: one tab with the primary name column (what Dataverse creates, trimmed).
MAIN_FORM_XML = (
    '<form><tabs><tab name="general" verticallayout="true" id="{a1b2c3d4-0000-4000-8000-000000000001}">'
    '<columns><column width="100%"><sections><section name="general_section" id="{a1b2c3d4-0000-4000-8000-'
    '000000000002}"><rows><row><cell id="{a1b2c3d4-0000-4000-8000-000000000003}"><control id="name" '
    'datafieldname="name" /></cell></row></rows></section></sections></column></columns></tab></tabs></form>'
)
NAVIGATIONS: dict[str, dict[str, str]] = {
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
WRITE_ONLY = {"serviceendpoint": {"saskey", "sastoken"}}
_METADATA_LABEL_PROPS = ("DisplayName", "DisplayCollectionName")
# @odata.type of a new column -> (AttributeType, maximum MaxLength or 0 when MaxLength does not apply)
ATTRIBUTE_KINDS = {
    "StringAttributeMetadata": ("String", 4000),
    "MemoAttributeMetadata": ("Memo", 1048576),
    "BooleanAttributeMetadata": ("Boolean", 0),
    "IntegerAttributeMetadata": ("Integer", 0),
    "DecimalAttributeMetadata": ("Decimal", 0),
}
_TABLE_PRIVILEGES = ("Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share")
SCHEMA_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{1,7}_[A-Za-z0-9_]+$")


def install(emu: DataverseEmulator, activity_entity: str, root_business_unit: str) -> None:
    """Register the system tables, the ``Create`` message with its filter and the root business unit."""
    for logical, (set_name, pk, columns) in SYSTEM_TABLES.items():
        ent = emu.store.add_entity(logical, set_name, pk)
        ent.columns.update(columns)
        ent.navigations.update(NAVIGATIONS.get(logical, {}))
        ent.write_only.update(WRITE_ONLY.get(logical, set()))
    emu.add_row("sdkmessage", SDK_MESSAGE_CREATE_ID, {"name": "Create"})
    emu.add_row(
        "sdkmessagefilter",
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/filter/Create/{activity_entity}")),
        {
            "primaryobjecttypecode": activity_entity,
            "secondaryobjecttypecode": "none",
            "_sdkmessageid_value": SDK_MESSAGE_CREATE_ID,
        },
    )
    emu.add_row("businessunit", emu.business_unit_id, {"name": root_business_unit, "_parentbusinessunitid_value": None})
    contact = emu.store.entities.get("contact")
    if contact is not None:
        for column in ("donotphone", "donotsms", "donotemail"):
            contact.attribute_types.setdefault(column, "Boolean")
            contact.columns.add(column)


# ---------------------------------------------------------------------------------------------------- solutions
def solution_of(emu: DataverseEmulator, headers: dict[str, str]) -> str | None:
    """The solution id named by ``MSCRM.SolutionUniqueName`` (404 if it does not exist), or None."""
    name = headers.get("mscrm.solutionuniquename", "").strip()
    if not name:
        return None
    solutions = emu.store.entities.get("solution")
    for key, row in (solutions.rows if solutions else {}).items():
        if row.get("uniquename") == name:
            if row.get("ismanaged"):
                raise DataverseError(400, errors.INVALID_ARGUMENT, f"Solution '{name}' is managed.")
            return key
    raise DataverseError(404, errors.OBJECT_DOES_NOT_EXIST, f"Solution '{name}' does not exist.")


def _publisher_prefix(emu: DataverseEmulator, solution_id: str) -> str | None:
    publisher_id = emu.store.entities["solution"].rows[solution_id].get("_publisherid_value")
    publishers = emu.store.entities.get("publisher")
    row = publishers.rows.get(str(publisher_id)) if publishers and publisher_id else None
    return str(row["customizationprefix"]) if row and row.get("customizationprefix") else None


def add_component(emu: DataverseEmulator, solution_id: str, component_type: int, object_id: str) -> None:
    if "solutioncomponent" in emu.store.entities:
        emu.store.insert(
            "solutioncomponent",
            {"componenttype": component_type, "objectid": object_id.lower(), "_solutionid_value": solution_id},
        )


def record_component(emu: DataverseEmulator, solution_id: str | None, ent: Entity, object_id: str | None) -> None:
    """A row created with ``MSCRM.SolutionUniqueName`` joins that solution when its table is a component type."""
    if solution_id is not None and object_id and ent.logical_name in COMPONENT_TYPES:
        add_component(emu, solution_id, COMPONENT_TYPES[ent.logical_name], object_id)


# ---------------------------------------------------------------------------------------------------- checks
def check_schema_name(emu: DataverseEmulator, schema: Any, what: str, solution_id: str | None) -> str:
    if not isinstance(schema, str) or not SCHEMA_NAME_RE.match(schema):
        raise DataverseError(
            400, errors.INVALID_ARGUMENT, f"The {what} SchemaName '{schema}' must be '<prefix>_<Name>'."
        )
    if solution_id is not None:
        prefix = _publisher_prefix(emu, solution_id)
        if prefix is not None and schema.split("_", 1)[0].lower() != prefix:
            raise DataverseError(
                400,
                errors.INVALID_ARGUMENT,
                f"The {what} SchemaName '{schema}' does not start with the solution publisher's "
                f"customization prefix '{prefix}_'.",
            )
    return schema.lower()


def check_label(body: dict[str, Any], prop: str, what: str) -> None:
    value = body.get(prop)
    labels = value.get("LocalizedLabels") if isinstance(value, dict) else None
    if not isinstance(labels, list) or not any(
        isinstance(item, dict) and item.get("LanguageCode") == 1033 and item.get("Label") for item in labels
    ):
        raise DataverseError(
            400, errors.INVALID_ARGUMENT, f"The {what} needs a {prop} with a LocalizedLabel for LanguageCode 1033."
        )


def check_odata_type(body: dict[str, Any], expected: Iterable[str]) -> str:
    found = str(body.get("@odata.type", "")).lstrip("#").removeprefix("Microsoft.Dynamics.CRM.")
    if found not in expected:
        raise DataverseError(
            400, errors.ODATA, f"The '@odata.type' '{body.get('@odata.type')}' is not one of {sorted(expected)}."
        )
    return found


def _check_attribute(emu: DataverseEmulator, body: dict[str, Any], solution_id: str | None) -> tuple[str, str]:
    kind = check_odata_type(body, ATTRIBUTE_KINDS)
    attribute_type, max_length = ATTRIBUTE_KINDS[kind]
    if body.get("AttributeType") != attribute_type:
        raise DataverseError(
            400, errors.INVALID_ARGUMENT, f"AttributeType '{body.get('AttributeType')}' does not match {kind}."
        )
    logical = check_schema_name(emu, body.get("SchemaName"), "column", solution_id)
    check_label(body, "DisplayName", f"column {logical}")
    if max_length:
        length = body.get("MaxLength")
        if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= max_length:
            raise DataverseError(
                400, errors.INVALID_ARGUMENT, f"MaxLength of {logical} must be an integer from 1 to {max_length}."
            )
    return logical, attribute_type


# ---------------------------------------------------------------------------------------------------- handlers
def create_entity_definition(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    body = call.json_body()
    solution_id = solution_of(emu, call.headers)
    check_odata_type(body, ("EntityMetadata",))
    logical = check_schema_name(emu, body.get("SchemaName"), "table", solution_id)
    for prop in _METADATA_LABEL_PROPS:
        check_label(body, prop, f"table {logical}")
    if body.get("OwnershipType") not in ("UserOwned", "OrganizationOwned"):
        raise DataverseError(400, errors.INVALID_ARGUMENT, "OwnershipType must be UserOwned or OrganizationOwned.")
    attributes = body.get("Attributes")
    primary = [a for a in attributes or [] if isinstance(a, dict) and a.get("IsPrimaryName") is True]
    if not isinstance(attributes, list) or len(attributes) != 1 or len(primary) != 1:
        raise DataverseError(
            400,
            errors.INVALID_ARGUMENT,
            "Attributes must contain exactly one StringAttributeMetadata with IsPrimaryName true.",
        )
    primary_name, attribute_type = _check_attribute(emu, primary[0], solution_id)
    if attribute_type != "String":
        raise DataverseError(400, errors.INVALID_ARGUMENT, "The primary name column must be a String column.")
    if logical in emu.store.entities:
        raise DataverseError(400, errors.DUPLICATE, f"An entity with the specified name {logical} already exists.")
    ent = emu.store.add_entity(logical, plural(logical), f"{logical}id")
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
        add_component(emu, solution_id, COMPONENT_ENTITY, ent.metadata_id)
    _org_side_effects(emu, ent, body)
    return emu.no_content([("OData-EntityId", f"{emu.api_url}/EntityDefinitions({ent.metadata_id})")])


def _org_side_effects(emu: DataverseEmulator, ent: Entity, body: dict[str, Any]) -> None:
    """What Dataverse creates with each table: three views, a main form ("Information") and its privileges."""
    store = emu.store
    if "savedquery" in store.entities:
        label = body["DisplayName"]["LocalizedLabels"][0]["Label"]
        collection = body["DisplayCollectionName"]["LocalizedLabels"][0]["Label"]
        for name, query_type in (
            (f"Active {collection}", 0),
            (f"{label} Lookup View", 64),
            (f"Quick Find {collection}", 4),
        ):
            store.insert(
                "savedquery",
                {"name": name, "returnedtypecode": ent.logical_name, "querytype": query_type, "isdefault": True},
            )
    if "systemform" in store.entities:
        main_form = {"name": "Information", "objecttypecode": ent.logical_name, "type": 2, "formxml": MAIN_FORM_XML}
        store.insert("systemform", main_form)
    if "privilege" in store.entities:  # prv<Access><SchemaName>
        for access in _TABLE_PRIVILEGES:
            store.insert("privilege", {"name": f"prv{access}{ent.schema_name}", "accessright": access})


def create_attribute(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    entity = match.group("entity")
    body = call.json_body()
    solution_id = solution_of(emu, call.headers)
    ent = emu.store.entities.get(entity)
    if ent is None:
        raise DataverseError(404, errors.BAD_URI, f"Could not find entity with logical name '{entity}'.")
    logical, attribute_type = _check_attribute(emu, body, solution_id)
    if logical in ent.columns:
        raise DataverseError(
            400, errors.DUPLICATE, f"An attribute with the specified name {logical} already exists on {entity}."
        )
    metadata_id = str(uuid.uuid4())
    ent.columns.add(logical)
    ent.attribute_types[logical] = attribute_type
    ent.attribute_ids[logical] = metadata_id
    ent.attribute_definitions[logical] = copy.deepcopy(body)
    if solution_id is not None:
        add_component(emu, solution_id, COMPONENT_ATTRIBUTE, metadata_id)
    location = f"{emu.api_url}/EntityDefinitions(LogicalName='{entity}')/Attributes({metadata_id})"
    return emu.no_content([("OData-EntityId", location)])


def publish_xml(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    body = call.json_body()
    for name in body:
        if not name.startswith("@") and name != "ParameterXml":
            raise errors.unknown_parameter(name, "PublishXml")
    parameter_xml = body.get("ParameterXml")
    if not isinstance(parameter_xml, str) or not parameter_xml.strip():
        raise DataverseError(
            400, errors.INVALID_ARGUMENT, "Required parameter 'ParameterXml' is missing for PublishXml."
        )
    try:
        root = ET.fromstring(parameter_xml)  # noqa: S314 - a loopback test emulator parsing its own client's input
    except ET.ParseError as exc:
        raise DataverseError(400, errors.INVALID_ARGUMENT, f"ParameterXml is not well-formed XML: {exc}") from None
    if root.tag != "importexportxml":
        raise DataverseError(400, errors.INVALID_ARGUMENT, "ParameterXml must have the root <importexportxml>.")
    entities = [(e.text or "").strip() for e in root.findall("./entities/entity")]
    resources = [(e.text or "").strip().strip("{}").lower() for e in root.findall("./webresources/webresource")]
    for logical in entities:
        if logical not in emu.store.entities:
            raise DataverseError(404, errors.OBJECT_DOES_NOT_EXIST, f"Entity '{logical}' does not exist.")
    known = emu.store.entities.get("webresource")
    for resource in resources:
        if known is None or resource not in known.rows:
            raise DataverseError(404, errors.OBJECT_DOES_NOT_EXIST, f"webresource With Id = {resource} Does Not Exist")
    emu.published.append({"entities": entities, "webresources": resources})
    return emu.no_content()
