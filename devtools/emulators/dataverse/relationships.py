"""Relationship metadata: ``POST RelationshipDefinitions`` (one-to-many with its lookup) and
``GET EntityDefinitions(LogicalName='x')/ManyToOneRelationships``."""

from __future__ import annotations

import copy
import re
import uuid
from typing import TYPE_CHECKING, Any

from devtools.emulators._base import Response
from devtools.emulators.dataverse import customization, errors, odata
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.request import Call

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

_PROPS = (
    "MetadataId",
    "SchemaName",
    "ReferencedEntity",
    "ReferencedAttribute",
    "ReferencingEntity",
    "ReferencingAttribute",
    "RelationshipType",
)


def create_relationship(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    body = call.json_body()
    solution_id = customization.solution_of(emu, call.headers)
    customization.check_odata_type(body, ("OneToManyRelationshipMetadata",))
    schema = body.get("SchemaName")
    if not isinstance(schema, str) or not customization.SCHEMA_NAME_RE.match(schema):
        raise DataverseError(400, errors.INVALID_ARGUMENT, f"The relationship SchemaName '{schema}' is invalid.")
    if any(r["SchemaName"].lower() == schema.lower() for r in emu.relationships):
        raise DataverseError(400, errors.DUPLICATE, f"A relationship named {schema} already exists.")
    entities = emu.store.entities
    referenced, referencing = body.get("ReferencedEntity"), body.get("ReferencingEntity")
    for role, name in (("ReferencedEntity", referenced), ("ReferencingEntity", referencing)):
        if not isinstance(name, str) or name not in entities:
            raise DataverseError(404, errors.BAD_URI, f"{role}: could not find entity with logical name '{name}'.")
    assert isinstance(referenced, str) and isinstance(referencing, str)
    lookup = body.get("Lookup")
    if not isinstance(lookup, dict):
        raise DataverseError(400, errors.INVALID_ARGUMENT, "A one-to-many relationship needs its Lookup (deep insert).")
    customization.check_odata_type(lookup, ("LookupAttributeMetadata",))
    customization.check_label(lookup, "DisplayName", "lookup")
    lookup_schema = lookup.get("SchemaName")
    if not isinstance(lookup_schema, str) or not lookup_schema:
        raise DataverseError(400, errors.INVALID_ARGUMENT, "The Lookup needs a SchemaName.")
    column = lookup_schema.lower()
    target = entities[referencing]
    if column in target.columns:
        if (referencing, column) not in emu.polymorphic_lookups:
            raise DataverseError(
                400, errors.DUPLICATE, f"An attribute with the specified name {column} already exists on {referencing}."
            )
        if any(
            r["ReferencingEntity"] == referencing
            and r["ReferencingAttribute"] == column
            and r["ReferencedEntity"] == referenced
            for r in emu.relationships
        ):
            raise DataverseError(
                400, errors.DUPLICATE, f"{referencing}.{column} already has a relationship to {referenced}."
            )
    else:
        target.columns.add(column)
        target.attribute_types[column] = "Lookup"
    metadata_id = str(uuid.uuid4())
    emu.relationships.append(
        {
            "MetadataId": metadata_id,
            "SchemaName": schema,
            "ReferencedEntity": referenced,
            "ReferencedAttribute": entities[referenced].primary_key,
            "ReferencingEntity": referencing,
            "ReferencingAttribute": column,
            "RelationshipType": "OneToManyRelationship",
            "CascadeConfiguration": copy.deepcopy(body.get("CascadeConfiguration")),
            "definition": copy.deepcopy(body),
        }
    )
    if solution_id is not None:
        customization.add_component(emu, solution_id, customization.COMPONENT_RELATIONSHIP, metadata_id)
    return emu.no_content([("OData-EntityId", f"{emu.api_url}/RelationshipDefinitions({metadata_id})")])


def many_to_one(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    entity = match.group("entity")
    if entity not in emu.store.entities:
        raise DataverseError(404, errors.BAD_URI, f"Could not find entity with logical name '{entity}'.")
    select = [x.strip() for x in call.query.get("$select", "").split(",") if x.strip()] or list(_PROPS)
    tests: list[tuple[str, Any]] = []
    text = call.query.get("$filter", "").strip()
    for clause in odata.split_top_level(text, "and") if text else []:
        m = odata.CMP_RE.match(clause)
        if not m or m.group("op") != "eq" or m.group("col") not in _PROPS:
            raise DataverseError(400, errors.ODATA, f"Unsupported $filter on relationship metadata: '{clause}'.")
        tests.append((m.group("col"), odata.parse_literal(m.group("val"))))
    for name in select:
        if name not in _PROPS:
            raise DataverseError(
                400, errors.ODATA, f"Could not find a property named '{name}' on type 'OneToManyRelationshipMetadata'."
            )
    value = [
        {name: r.get(name) for name in select}
        for r in emu.relationships
        if r["ReferencingEntity"] == entity and all(r.get(c) == v for c, v in tests)
    ]
    ctx = f"{emu.api_url}/$metadata#EntityDefinitions('{entity}')/ManyToOneRelationships"
    return emu.json_response(200, {"@odata.context": ctx, "value": value})
