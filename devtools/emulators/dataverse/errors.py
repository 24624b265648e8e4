"""Dataverse error codes and the error every handler raises (rendered as ``{"error": {"code", "message"}}``).

Codes are the hex HRESULTs the Web API returns. Sources (see docs/reference-data.md for the full list and which
codes are unconfirmed): Microsoft's "Web service error codes" page (powerapps-docs
``developer/data-platform/includes/data-service-error-codes.md``), "Compose HTTP requests and handle errors" and
"Execute batch operations using the Web API" (``0x80044331``), "Service protection API limits" (``0x8007232x``).
"""

from __future__ import annotations

from collections.abc import Sequence

OBJECT_DOES_NOT_EXIST = "0x80040217"
BAD_URI = "0x80060888"
ODATA = "0x0"
INVALID_ARGUMENT = "0x80040203"
DUPLICATE = "0x80040237"
CONCURRENCY_VERSION = "0x80060882"
MISSING_ATTRIBUTE = "0x80041103"
PLUGIN = "0x80040265"
THROTTLE_REQUESTS = "0x80072322"
THROTTLE_TIME = "0x80072321"
THROTTLE_CONCURRENCY = "0x80072326"
# Strict (metadata) validation of create/update payloads.
PAYLOAD = "0x80048d19"  # "Error identified in Payload provided by the user for Entity ..." (OData reader errors)
STRING_TOO_LONG = "0x80044331"  # StringLengthTooLong
OPTION_OUT_OF_RANGE = "0x8004431a"  # "... is outside the valid range. Accepted Values: ..."
NUMBER_OUT_OF_RANGE = "0x8004432f"  # [UNCONFIRMED] integer outside MinValue/MaxValue
NOT_VALID_FOR_WRITE = "0x80040203"  # [UNCONFIRMED] InvalidArgument: column not valid for create/update
REQUIRED_MISSING = "0x80040203"  # [UNCONFIRMED] InvalidArgument: required column missing on create

PAYLOAD_HELP = "https://go.microsoft.com/fwlink/?linkid=2195293"


class DataverseError(Exception):
    """An error answer: HTTP status, Dataverse code and message (and extra headers such as Retry-After)."""

    def __init__(self, status: int, code: str, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = list(headers)


def unknown_parameter(name: str, operation: str) -> DataverseError:
    return DataverseError(
        400,
        ODATA,
        f"The parameter '{name}' in the request payload is not a valid parameter for the operation '{operation}'.",
    )


def payload_error(entity_set: str, inner: str) -> DataverseError:
    """The 0x80048d19 shape Dataverse gives when the OData reader rejects a create/update body."""
    return DataverseError(
        400,
        PAYLOAD,
        f"Error identified in Payload provided by the user for Entity :'{entity_set}', For more information on this "
        f"error please follow this help link {PAYLOAD_HELP}  ---->  InnerException : "
        f"Microsoft.OData.ODataException: {inner}",
    )


def invalid_property(entity_set: str, logical_name: str, name: str) -> DataverseError:
    return payload_error(
        entity_set, f"Invalid property '{name}' was found in entity 'Microsoft.Dynamics.CRM.{logical_name}'."
    )


def undeclared_navigation(entity_set: str, nav: str) -> DataverseError:
    return payload_error(
        entity_set,
        f"An undeclared property '{nav}' which only has property annotations in the payload but no property value "
        "was found in the payload. In OData, only declared navigation properties and declared named streams can be "
        "represented as properties without values.",
    )


def cannot_convert(entity_set: str, value: object, edm_type: str) -> DataverseError:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return payload_error(entity_set, f"Cannot convert the literal '{text}' to the expected type '{edm_type}'.")


def string_too_long(logical_name: str, column: str, max_length: int) -> DataverseError:
    return DataverseError(
        400,
        STRING_TOO_LONG,
        f"A validation error occurred. The length of the '{column}' attribute of the '{logical_name}' entity "
        f"exceeded the maximum allowed length of '{max_length}'.",
    )


def option_out_of_range(logical_name: str, column: str, value: object, accepted: Sequence[int]) -> DataverseError:
    return DataverseError(
        400,
        OPTION_OUT_OF_RANGE,
        f"A validation error occurred. The value {value} of '{column}' on record of type '{logical_name}' is "
        f"outside the valid range. Accepted Values: {','.join(str(v) for v in accepted)}",
    )


def number_out_of_range(logical_name: str, column: str, value: object, low: int, high: int) -> DataverseError:
    return DataverseError(
        400,
        NUMBER_OUT_OF_RANGE,
        f"A validation error occurred. The value {value} of '{column}' on record of type '{logical_name}' is "
        f"outside the valid range ({low} to {high}).",
    )


def not_valid_for(logical_name: str, column: str, operation: str) -> DataverseError:
    return DataverseError(
        400,
        NOT_VALID_FOR_WRITE,
        f"The '{column}' attribute of the '{logical_name}' entity is not valid for {operation}.",
    )


def required_missing(logical_name: str, columns: Sequence[str]) -> DataverseError:
    names = ", ".join(f"'{c}'" for c in columns)
    return DataverseError(
        400,
        REQUIRED_MISSING,
        f"A record of type '{logical_name}' cannot be created without the required attribute(s) {names}.",
    )


def wrong_lookup_target(entity_set: str, nav: str, bound: str, targets: Sequence[str]) -> DataverseError:
    return payload_error(
        entity_set,
        f"The entity reference bound to '{nav}' is of type 'Microsoft.Dynamics.CRM.{bound}', which is not a target "
        f"of that lookup (targets: {', '.join(targets) or 'none'}).",
    )
