"""Unbound actions and functions: ``WhoAmI``, ``msdyncrm_CustomChannelActivityCreateInteraction`` (either published
signature), ``msdyn_D365ChannelsNotification`` and ``msdyn_D365ChannelsInbound``. New unbound actions register in
``UNBOUND_ACTIONS`` (the route table serves every name there)."""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any

from devtools.emulators._base import Response
from devtools.emulators.dataverse import errors
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.metadata import INBOUND_ACTION, INTERACTION_ACTION, NOTIFICATION_ACTION
from devtools.emulators.dataverse.models import ActionParameter, is_guid
from devtools.emulators.dataverse.request import Call, Handler

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

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


def _null_not_allowed(name: str, edm_type: str) -> DataverseError:
    return DataverseError(
        400,
        errors.ODATA,
        f"A null value was found for the property named '{name}', which has the expected type "
        f"'{edm_type}[Nullable=False]'. The expected type '{edm_type}[Nullable=False]' does not allow null values.",
    )


def who_am_i(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    return emu.json_response(
        200,
        {
            "@odata.context": f"{emu.api_url}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": emu.business_unit_id,
            "UserId": emu.user_id,
            "OrganizationId": emu.organization_id,
        },
    )


def create_interaction(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    payload = call.json_body(allow_empty=True)
    params = {p.name: p for p in emu.action_parameters}
    for name in payload:
        if not name.startswith("@") and name not in params:
            raise errors.unknown_parameter(name, INTERACTION_ACTION)
    for param in emu.action_parameters:
        if param.name not in payload:
            if param.required:
                raise DataverseError(
                    400,
                    errors.INVALID_ARGUMENT,
                    f"Required parameter '{param.name}' is missing for the operation '{INTERACTION_ACTION}'.",
                )
            continue
        value = payload[param.name]
        if value is None:
            if param.required:
                raise _null_not_allowed(param.name, param.type)
            continue
        if param.entity is None:
            _check_string(param, value)
        else:
            _check_entity_reference(emu, param, param.entity, value)
    _check_response_type(emu, payload.get("ResponseType"))
    emu.interactions.append(copy.deepcopy(payload))
    return emu.no_content()


def _check_response_type(emu: DataverseEmulator, value: Any) -> None:
    """The tile's response-type ids are the only ones a journey knows (``clicked`` since link tracking)."""
    if emu.response_types is not None and isinstance(value, str) and value not in emu.response_types:
        raise DataverseError(
            400,
            errors.INVALID_ARGUMENT,
            f"ResponseType '{value}' is not a response type of the channel's tile "
            f"(declared: {', '.join(sorted(emu.response_types))}).",
        )


def _check_string(param: ActionParameter, value: Any) -> None:
    if isinstance(value, (dict, list)):
        node = "StartObject" if isinstance(value, dict) else "StartArray"
        raise DataverseError(
            400,
            errors.ODATA,
            f"An unexpected '{node}' node was found when reading from the JSON reader. "
            "A 'PrimitiveValue' node was expected.",
        )
    if not isinstance(value, str):
        raise DataverseError(
            400,
            errors.ODATA,
            f"Cannot convert a primitive value to the expected type 'Edm.String' for parameter '{param.name}'.",
        )


def _check_entity_reference(emu: DataverseEmulator, param: ActionParameter, logical: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise DataverseError(
            400,
            errors.ODATA,
            "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. "
            f"A 'StartObject' node was expected (parameter '{param.name}').",
        )
    expected = f"Microsoft.Dynamics.CRM.{logical}"
    odata_type = value.get("@odata.type")
    if not isinstance(odata_type, str) or not odata_type:
        raise DataverseError(
            400, errors.ODATA, f"The entity parameter '{param.name}' must carry '@odata.type': '{expected}'."
        )
    if odata_type.lstrip("#") != expected:
        raise DataverseError(
            400,
            errors.ODATA,
            f"A resource with type '{odata_type.lstrip('#')}' was found, but it is not assignable to the "
            f"expected type '{expected}'. The type specified in the resource must be equal to either the "
            "expected type or a derived type.",
        )
    ent = emu.store.entities.get(logical)
    key_name = ent.primary_key if ent is not None else f"{logical}id"
    if key_name not in value:
        raise DataverseError(
            400,
            errors.INVALID_ARGUMENT,
            f"The entity parameter '{param.name}' does not contain the primary key '{key_name}'.",
        )
    key = value[key_name]
    if not isinstance(key, str) or not is_guid(key):
        raise DataverseError(400, errors.ODATA, f"Cannot convert the literal '{key}' to the expected type 'Edm.Guid'.")
    for prop in value:
        if prop.startswith("@") or prop == key_name:
            continue
        if ent is None or prop not in ent.columns:
            raise DataverseError(
                400,
                errors.ODATA,
                f"The property '{prop}' does not exist on type '{expected}'. Make sure to only use "
                "property names that are defined by the type or mark the type as open type.",
            )
    if emu.verify_references and ent is not None and key.lower() not in ent.rows:
        raise DataverseError(404, errors.OBJECT_DOES_NOT_EXIST, f"{logical} With Id = {key.lower()} Does Not Exist")


def _channels_action(emu: DataverseEmulator, call: Call, action: str, param_name: str) -> dict[str, Any]:
    payload = call.json_body(allow_empty=True)
    for name in payload:
        if not name.startswith("@") and name != param_name:
            raise errors.unknown_parameter(name, action)
    if param_name not in payload:
        raise DataverseError(
            400, errors.INVALID_ARGUMENT, f"Required parameter '{param_name}' is missing for the operation '{action}'."
        )
    raw = payload[param_name]
    if raw is None:
        raise _null_not_allowed(param_name, "Edm.String")
    _check_string(ActionParameter(param_name, "Edm.String"), raw)
    try:
        inner = json.loads(raw)
    except ValueError:
        inner = None
    if not isinstance(inner, dict):
        raise DataverseError(400, errors.PLUGIN, f"{param_name} must be a string holding a serialized JSON object.")
    return inner


def _channels_response(emu: DataverseEmulator, action: str) -> Response:
    return emu.json_response(
        200,
        {
            "@odata.context": f"{emu.api_url}/$metadata#Microsoft.Dynamics.CRM.{action}Response",
            "responseMessage": emu.channels_response_message,
        },
    )


def notification(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    emu.notifications.append(_channels_action(emu, call, NOTIFICATION_ACTION, "notificationPayLoad"))
    return _channels_response(emu, NOTIFICATION_ACTION)


def inbound(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    emu.inbound.append(_channels_action(emu, call, INBOUND_ACTION, "inboundPayLoad"))
    return _channels_response(emu, INBOUND_ACTION)


# Unbound actions (POST <name> or POST Microsoft.Dynamics.CRM.<name>); add new ones here.
UNBOUND_ACTIONS: dict[str, Handler] = {
    INTERACTION_ACTION: create_interaction,
    NOTIFICATION_ACTION: notification,
    INBOUND_ACTION: inbound,
}
