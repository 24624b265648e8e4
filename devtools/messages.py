"""Build real-format Service Bus messages exactly as Dataverse posts them for a Custom Channel Activity Create.

The body is a JSON ``RemoteExecutionContext`` in DataContractJsonSerializer shape (key/value arrays, ``__type``
tags, ``\\/Date(ms)\\/`` dates, escaped slashes); the application properties are the ``Claims`` URIs Dataverse
adds to every brokered message. Used by the local simulation, ``send-sample`` and tests.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
CLAIMS = "http://schemas.microsoft.com/xrm/2011/Claims/"
ACTIVITY = "msdyncrm_customerjourneycustomchannelactivity"


@dataclass(frozen=True)
class ActivitySpec:
    contact_id: str
    journey_id: str
    iteration_id: str
    entity_type: str
    entity_id: str
    row_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    activity_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    organization_id: str = "e1a2b3c4-d5e6-4f70-8192-a3b4c5d6e7f8"
    user_id: str = "7d3e3c62-5c1a-4f0e-9d8b-1a2b3c4d5e6f"
    organization_url: str = "https://contoso.crm.dynamics.com"


def _ref(logical_name: str, row_id: str) -> dict[str, Any]:
    return {
        "__type": f"EntityReference:{CONTRACTS}",
        "Id": row_id,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "Name": None,
        "RowVersion": None,
    }


def _date(ms: int) -> str:
    return f"/Date({ms})/"


def activity_context(spec: ActivitySpec, *, now_ms: int | None = None) -> dict[str, Any]:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    attributes = [
        {"key": f"{ACTIVITY}id", "value": spec.row_id},
        {"key": "msdyncrm_name", "value": "Custom channel activity"},
        {"key": "msdyncrm_activityid", "value": spec.activity_id},
        {"key": "msdyncrm_contact", "value": _ref("contact", spec.contact_id)},
        {"key": "msdyncrm_customerjourney", "value": _ref("msdyncrm_customerjourney", spec.journey_id)},
        {
            "key": "msdyncrm_customerjourneyiteration",
            "value": _ref("msdyncrm_customerjourneyiteration", spec.iteration_id),
        },
        {"key": "msdyncrm_entitytype", "value": spec.entity_type},
        {"key": "msdyncrm_entityid", "value": spec.entity_id},
        {"key": "statecode", "value": {"__type": f"OptionSetValue:{CONTRACTS}", "Value": 0}},
        {"key": "statuscode", "value": {"__type": f"OptionSetValue:{CONTRACTS}", "Value": 1}},
        {"key": "createdon", "value": _date(now)},
    ]
    operation = str(uuid.uuid4())
    return {
        "BusinessUnitId": "0b9f7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b",
        "CorrelationId": str(uuid.uuid4()),
        "Depth": 1,
        "InitiatingUserAzureActiveDirectoryObjectId": "00000000-0000-0000-0000-000000000000",
        "InitiatingUserId": spec.user_id,
        "InputParameters": [
            {
                "key": "Target",
                "value": {
                    "__type": f"Entity:{CONTRACTS}",
                    "Attributes": attributes,
                    "EntityState": None,
                    "FormattedValues": [{"key": "statecode", "value": "Active"}],
                    "Id": spec.row_id,
                    "KeyAttributes": [],
                    "LogicalName": ACTIVITY,
                    "RelatedEntities": [],
                    "RowVersion": None,
                },
            }
        ],
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": "Create",
        "Mode": 1,
        "OperationCreatedOn": _date(now),
        "OperationId": operation,
        "OrganizationId": spec.organization_id,
        "OrganizationName": "unq" + spec.organization_id.replace("-", ""),
        "OutputParameters": [{"key": "id", "value": spec.row_id}],
        "OwningExtension": _ref("sdkmessageprocessingstep", str(uuid.uuid5(uuid.NAMESPACE_URL, "channel-step"))),
        "ParentContext": None,
        "PostEntityImages": [
            {
                "key": "AsynchronousStepPrimaryName",
                "value": {
                    "Attributes": [{"key": "msdyncrm_name", "value": "Custom channel activity"}],
                    "EntityState": None,
                    "FormattedValues": [],
                    "Id": spec.row_id,
                    "KeyAttributes": [],
                    "LogicalName": ACTIVITY,
                    "RelatedEntities": [],
                    "RowVersion": None,
                },
            }
        ],
        "PreEntityImages": [],
        "PrimaryEntityId": spec.row_id,
        "PrimaryEntityName": ACTIVITY,
        "RequestId": None,
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": 40,
        "UserAzureActiveDirectoryObjectId": "00000000-0000-0000-0000-000000000000",
        "UserId": spec.user_id,
    }


def encode(context: dict[str, Any]) -> bytes:
    """Serialise like DataContractJsonSerializer: compact, and ``/`` escaped as ``\\/``."""
    return json.dumps(context, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/").encode("utf-8")


def application_properties(spec: ActivitySpec) -> dict[str, str]:
    return {
        CLAIMS + "Organization": spec.organization_url,
        CLAIMS + "User": spec.user_id,
        CLAIMS + "InitiatingUser": spec.user_id,
        CLAIMS + "EntityLogicalName": ACTIVITY,
        CLAIMS + "RequestName": "Create",
        CLAIMS + "InitiatingUserAgent": "",
    }


def activity_message(spec: ActivitySpec) -> tuple[bytes, dict[str, str]]:
    return encode(activity_context(spec)), application_properties(spec)
