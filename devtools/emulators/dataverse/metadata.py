"""Metadata the org publishes about itself: ``$metadata`` (CSDL), ``EntityDefinitions(...)`` and
``EntityDefinitions(LogicalName='x')/Attributes(LogicalName='y')``."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from devtools.emulators._base import Response
from devtools.emulators.dataverse import errors
from devtools.emulators.dataverse.customization import ATTRIBUTE_KINDS
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.models import Entity
from devtools.emulators.dataverse.request import Call

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

INTERACTION_ACTION = "msdyncrm_CustomChannelActivityCreateInteraction"
NOTIFICATION_ACTION = "msdyn_D365ChannelsNotification"
INBOUND_ACTION = "msdyn_D365ChannelsInbound"


def _select(query: dict[str, str], full: dict[str, Any], type_name: str) -> list[str]:
    select = [s.strip() for s in query.get("$select", "").split(",") if s.strip()]
    for name in select:
        if name not in full:
            raise DataverseError(
                400,
                errors.ODATA,
                f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{type_name}'.",
            )
    return select


def entity_definition(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    logical_name = match.group("sq") or match.group("dq") or ""
    metadata_id = match.group("mid")
    emu.entity_definition_requests += 1
    emu.entity_definition_lookups.append(logical_name or (metadata_id or ""))
    entities = emu.store.entities
    ent: Entity | None
    if metadata_id:
        ent = next((e for e in entities.values() if e.metadata_id == metadata_id.lower()), None)
    else:
        ent = entities.get(logical_name)
    if ent is None:
        raise DataverseError(
            404, errors.BAD_URI, f"Could not find entity with logical name '{logical_name or metadata_id}'."
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
    select = _select(call.query, full, "EntityMetadata")
    suffix = f"({','.join(select)})" if select else ""
    out: dict[str, Any] = {"@odata.context": f"{emu.api_url}/$metadata#EntityDefinitions{suffix}/$entity"}
    for name in select or list(full):
        out[name] = full[name]
    out["MetadataId"] = ent.metadata_id
    return emu.json_response(200, out)


def attribute_type(ent: Entity, column: str) -> str:
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


def attribute_definition(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    entity, column = match.group("entity"), match.group("attr")
    emu.entity_definition_requests += 1
    emu.entity_definition_lookups.append(entity)
    ent = emu.store.entities.get(entity)
    if ent is None:
        raise DataverseError(404, errors.BAD_URI, f"Could not find entity with logical name '{entity}'.")
    if not ent.has_column(column):
        raise DataverseError(
            404, errors.BAD_URI, f"Could not find attribute with logical name '{column}' on entity '{entity}'."
        )
    published = emu.strict.table(entity)
    reference = published.columns.get(column) if published is not None else None
    kind_name = attribute_type(ent, column)
    if reference is not None and reference.type and column not in ent.attribute_types:
        kind_name = reference.type
    definition = ent.attribute_definitions.get(column, {})
    metadata_id = ent.attribute_ids.setdefault(
        column, str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/{entity}/{column}"))
    )
    full: dict[str, Any] = {
        "LogicalName": column,
        "SchemaName": definition.get("SchemaName", column),
        "EntityLogicalName": entity,
        "AttributeType": kind_name,
        "IsPrimaryId": column == ent.primary_key,
        "IsPrimaryName": column == ent.primary_name,
        "MaxLength": definition.get("MaxLength", reference.max_length if reference is not None else None),
    }
    select = _select(call.query, full, "AttributeMetadata")
    kind = next((k for k, (t, _) in ATTRIBUTE_KINDS.items() if t == kind_name), "AttributeMetadata")
    out: dict[str, Any] = {
        "@odata.context": f"{emu.api_url}/$metadata#EntityDefinitions('{entity}')/Attributes/$entity",
        "@odata.type": f"#Microsoft.Dynamics.CRM.{kind}",
    }
    for name in select or list(full):
        out[name] = full[name]
    out["MetadataId"] = metadata_id
    return emu.json_response(200, out)


def csdl(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    body = emu.metadata_xml().encode("utf-8")  # through the instance, so a test can serve a different org
    return Response(200, body, [*emu.base_headers(), ("Content-Type", "application/xml")])


def metadata_xml(emu: DataverseEmulator) -> str:
    """A minimal CSDL document with the entity types and the channel actions."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "<edmx:DataServices>",
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
        '<EntityType Name="crmbaseentity" Abstract="true"/>',
    ]
    with emu.store.lock:
        entities = {e.logical_name: (e.primary_key, sorted(e.columns)) for e in emu.store.entities.values()}
        sets = [(e.entity_set_name, e.logical_name) for e in emu.store.entities.values()]
    for param in emu.action_parameters:
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
    for param in emu.action_parameters:
        nullable = ' Nullable="false"' if param.required else ""
        unicode_attr = ' Unicode="false"' if param.type == "Edm.String" else ""
        lines.append(f"<Parameter Name={quoteattr(param.name)} Type={quoteattr(param.type)}{nullable}{unicode_attr}/>")
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
