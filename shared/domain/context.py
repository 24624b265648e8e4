"""Parser for the JSON ``RemoteExecutionContext`` that Dataverse posts to Service Bus (message format = JSON).

The body is what .NET's DataContractJsonSerializer writes: property bags are arrays of ``{"key", "value"}``,
typed values carry ``__type`` tags, and dates are ``/Date(ms[+-hhmm])/``. Anything that cannot be turned into a
Custom Channel Activity raises :class:`PoisonMessage` with a reason a partner can act on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.errors import PoisonMessage
from shared.domain.ids import is_guid, normalize_guid
from shared.domain.models import ACTIVITY_ENTITY, ActivityRef

CLAIMS = "http://schemas.microsoft.com/xrm/2011/Claims/"
CLAIM_ENTITY = CLAIMS + "EntityLogicalName"
CLAIM_REQUEST = CLAIMS + "RequestName"
CLAIM_ORGANIZATION = CLAIMS + "Organization"
SIZE_EXCEEDED = "MessageMaxSizeExceeded"

_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
# First bytes of a .NET Binary XML (msbin1) document: element / prefix-element record types.
_MSBIN_RECORD_STARTS = frozenset({0x40, 0x41, 0x42, 0x43, 0x56, 0x57, 0x5E})
_JSON_FORMAT_HINT = (
    "register the Dataverse service endpoint with message format JSON (messageformat = 2) "
    "so the queue receives a JSON RemoteExecutionContext"
)


@dataclass(frozen=True)
class ParsedActivityMessage:
    row_id: str
    activity: ActivityRef | None  # None when Dataverse trimmed the message: read the row instead
    trimmed: bool
    correlation_id: str | None
    organization_id: str | None
    operation_created_on: datetime | None


def parse_wcf_date(value: object) -> datetime | None:
    """``/Date(1506409448000-0700)/`` → aware UTC datetime (the offset is informational in WCF JSON)."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))
    except OverflowError:  # beyond datetime's range: informational only, never worth a redelivery loop
        return None


def bag(items: object) -> dict[str, Any]:
    """Turn a DataContract key/value array into a dict (also accepts a plain object, for tolerance)."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    if not isinstance(items, list):
        raise PoisonMessage("malformed_context", "a property bag is neither a key/value array nor an object")
    result: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, Mapping) or "key" not in item:
            raise PoisonMessage("malformed_context", "a property bag entry has no 'key'")
        result[str(item["key"])] = item.get("value")
    return result


def _looks_binary(body: bytes) -> bool:
    head = body[:1]
    has_control = any(b < 0x09 or 0x0E <= b < 0x20 for b in body[:256])
    return bool(head) and head[0] in _MSBIN_RECORD_STARTS and has_control


def _reject_other_formats(body: bytes, content_type: str | None) -> None:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/msbin1":
        raise PoisonMessage("binary_format", f"the message is .NET Binary XML; {_JSON_FORMAT_HINT}")
    if ctype in ("application/xml", "text/xml") or body.lstrip()[:1] == b"<":
        raise PoisonMessage("xml_format", f"the message is XML; {_JSON_FORMAT_HINT}")


def _decode_json(body: bytes) -> dict[str, Any]:
    if not body or not body.strip():
        raise PoisonMessage("empty_body", "the message body is empty")
    try:
        text = body.decode("utf-8-sig")
        document = json.loads(text)
    except RecursionError:
        raise PoisonMessage("invalid_json", "the message body is JSON nested too deeply to be a context") from None
    except (UnicodeDecodeError, ValueError) as exc:
        if _looks_binary(body):
            raise PoisonMessage("binary_format", f"the message is .NET Binary XML; {_JSON_FORMAT_HINT}") from None
        raise PoisonMessage("invalid_json", f"the message body is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(document, dict):
        raise PoisonMessage("invalid_json", "the message body is JSON but not a RemoteExecutionContext object")
    return document


def _entity_id(value: object, attribute: str) -> str:
    """Id of an EntityReference attribute (``{"__type": "EntityReference:...", "Id": ...}``)."""
    candidate = value.get("Id") if isinstance(value, Mapping) else value
    if candidate is None:
        raise PoisonMessage("missing_attribute", f"the activity has no {attribute}")
    if not is_guid(candidate):
        raise PoisonMessage("invalid_id", f"{attribute} is not a GUID")
    return normalize_guid(str(candidate))


def _string_attr(attributes: Mapping[str, Any], name: str) -> str:
    value = attributes.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PoisonMessage("missing_attribute", f"the activity has no {name}")
    if not isinstance(value, str | int):
        raise PoisonMessage("invalid_attribute", f"{name} is not a string")
    return str(value).strip()


def activity_from_attributes(row_id: str, attributes: Mapping[str, Any]) -> ActivityRef:
    entity_id = _string_attr(attributes, "msdyncrm_entityid")
    if not is_guid(entity_id):
        raise PoisonMessage("invalid_id", "msdyncrm_entityid is not a GUID")
    entity_type = _string_attr(attributes, "msdyncrm_entitytype")
    if not re.match(r"^[a-z][a-z0-9_]{0,127}$", entity_type):
        raise PoisonMessage("invalid_attribute", "msdyncrm_entitytype is not a table logical name")
    return ActivityRef(
        row_id=row_id,
        activity_id=_string_attr(attributes, "msdyncrm_activityid"),
        contact_id=_entity_id(attributes.get("msdyncrm_contact"), "msdyncrm_contact"),
        journey_id=_entity_id(attributes.get("msdyncrm_customerjourney"), "msdyncrm_customerjourney"),
        iteration_id=_entity_id(
            attributes.get("msdyncrm_customerjourneyiteration"), "msdyncrm_customerjourneyiteration"
        ),
        entity_type=entity_type,
        entity_id=normalize_guid(entity_id),
    )


def parse_activity_message(
    body: bytes, content_type: str | None, application_properties: Mapping[str, Any] | None = None
) -> ParsedActivityMessage:
    """Parse one Service Bus message posted by the Dataverse step on Create of the activity table."""
    props = dict(application_properties or {})
    _reject_other_formats(body, content_type)
    context = _decode_json(body)

    message_name = context.get("MessageName")
    claimed_request = props.get(CLAIM_REQUEST)
    if message_name != "Create" or (claimed_request is not None and claimed_request != "Create"):
        raise PoisonMessage(
            "unexpected_message",
            f"expected MessageName 'Create', got {str(message_name)[:64]!r}; register the step on Create only",
        )
    entity = context.get("PrimaryEntityName")
    claimed_entity = props.get(CLAIM_ENTITY)
    if entity != ACTIVITY_ENTITY or (claimed_entity is not None and claimed_entity != ACTIVITY_ENTITY):
        raise PoisonMessage(
            "unexpected_entity",
            f"expected PrimaryEntityName {ACTIVITY_ENTITY!r}, got {str(entity)[:64]!r}",
        )
    row_id = context.get("PrimaryEntityId")
    if not is_guid(row_id):
        raise PoisonMessage("invalid_id", "PrimaryEntityId is missing or not a GUID")
    row_id = normalize_guid(str(row_id))

    inputs = bag(context.get("InputParameters"))
    target = inputs.get("Target")
    shared_vars = bag(context.get("SharedVariables"))
    trimmed = bool(
        props.get(SIZE_EXCEEDED) or shared_vars.get(SIZE_EXCEEDED) or context.get(SIZE_EXCEEDED) or target is None
    )

    activity: ActivityRef | None = None
    if target is not None:
        if not isinstance(target, Mapping):
            raise PoisonMessage("malformed_context", "InputParameters.Target is not an entity")
        if target.get("LogicalName") not in (None, ACTIVITY_ENTITY):
            raise PoisonMessage("unexpected_entity", "InputParameters.Target is not a custom channel activity")
        attributes = bag(target.get("Attributes"))
        # An async post-operation step also carries a post-image; fill gaps from it.
        for image in bag(context.get("PostEntityImages")).values():
            if isinstance(image, Mapping):
                for key, value in bag(image.get("Attributes")).items():
                    attributes.setdefault(key, value)
        activity = activity_from_attributes(row_id, attributes)
        trimmed = False

    org = context.get("OrganizationId")
    return ParsedActivityMessage(
        row_id=row_id,
        activity=activity,
        trimmed=trimmed,
        correlation_id=str(context.get("CorrelationId")) if context.get("CorrelationId") else None,
        organization_id=str(org) if org else None,
        operation_created_on=parse_wcf_date(context.get("OperationCreatedOn")),
    )
