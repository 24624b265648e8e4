"""The org's ``$metadata`` against the calls the app makes: action parameter lists, read in one pass, compared
with what the app's own request builders send (never a hand-kept copy of the parameter names)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast, get_args
from xml.etree import ElementTree

import requests

from shared.adapters.dataverse import ACTION, DataverseClient, interaction_body
from shared.adapters.tokens import StaticToken
from shared.domain.models import ActivityRef, Interaction, ResponseType
from shared.settings import Settings

# The documented CreateInteraction signatures are the values INTERACTION_ACTION_SIGNATURE accepts.
SIGNATURES: tuple[str, ...] = tuple(
    str(choice) for choice in get_args(Settings.model_fields["interaction_action_signature"].annotation)
)


@dataclass(frozen=True)
class ActionParameter:
    name: str
    type: str
    nullable: bool = True

    def describe(self) -> str:
        return f"{self.name} ({self.type}{'' if self.nullable else ', required'})"


def describe(parameters: Iterable[ActionParameter]) -> str:
    return "org parameters: " + ", ".join(p.describe() for p in parameters)


def parse_actions(metadata_xml: bytes, names: Iterable[str]) -> dict[str, list[ActionParameter] | None]:
    """The parameters of each action in ``names`` in a CSDL ``$metadata`` document (None when it is not there)."""
    found: dict[str, list[ActionParameter] | None] = dict.fromkeys(names)
    # The org's own CSDL, fetched over an authenticated TLS connection: not untrusted input.
    for _event, element in ElementTree.iterparse(io.BytesIO(metadata_xml), events=("end",)):  # noqa: S314
        tag = _local(element.tag)
        name = element.get("Name")
        if tag == "Action" and name in found and found[name] is None:
            found[name] = [
                ActionParameter(
                    str(child.get("Name")), str(child.get("Type")), child.get("Nullable", "true").lower() != "false"
                )
                for child in element
                if _local(child.tag) == "Parameter" and child.get("Name") != "bindingParameter"
            ]
            if all(parameters is not None for parameters in found.values()):
                break
        if tag in ("EntityType", "ComplexType", "Action", "Function"):
            element.clear()  # the real $metadata is tens of MB
    return found


def parse_action_parameters(metadata_xml: bytes, action: str = ACTION) -> list[ActionParameter] | None:
    """The parameters of ``action`` in a CSDL ``$metadata`` document, or None when the action is not there."""
    return parse_actions(metadata_xml, [action])[action]


def sent_parameters(body: Mapping[str, Any]) -> dict[str, str]:
    """A Web API action body as CSDL types: entity references by their ``@odata.type``, everything else a string."""
    sent: dict[str, str] = {}
    for name, value in body.items():
        if isinstance(value, dict):
            sent[name] = "mscrm." + str(value["@odata.type"]).removeprefix("Microsoft.Dynamics.CRM.")
        else:
            sent[name] = "Edm.String"
    return sent


def app_parameters(signature: str) -> dict[str, str]:
    """What the app sends to CreateInteraction for ``signature`` (name → CSDL type), from the real request builder."""
    zero = "00000000-0000-0000-0000-000000000000"
    ref = ActivityRef(zero, "x", zero, zero, zero, "x", zero)
    sent: dict[str, str] = {}
    for interaction in (Interaction(ResponseType.SENT), Interaction(ResponseType.KEYWORD, "yes")):
        sent.update(sent_parameters(interaction_body(ref, interaction, signature)))
    return sent


class _RecordingSession:
    """Stands in for the client's HTTP session: records what each call would POST (path → JSON body), answers 204."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}

    def request(self, method: str, url: str, *, data: bytes | None = None, **_: Any) -> requests.Response:
        self.calls[url.rsplit("/", 1)[-1]] = json.loads(data or b"{}")
        response = requests.Response()
        response.status_code = 204
        return response


def rtj_action_calls() -> dict[str, dict[str, str]]:
    """The real-time journeys base actions the app calls (action → parameter → CSDL type), from the real client."""
    session = _RecordingSession()
    client = DataverseClient("http://127.0.0.1", StaticToken(""), session=cast(requests.Session, session))
    client.channels_notification({"Status": "Delivered"})
    client.channels_inbound({"Message": {"text": "x"}})
    return {path: sent_parameters(body) for path, body in session.calls.items()}


def compare_parameters(org: Iterable[ActionParameter], sent: Mapping[str, str]) -> list[str]:
    """Differences between the org's action and the app's call; empty when they match."""
    declared = {p.name: p for p in org}
    issues = []
    for name, sent_type in sent.items():
        param = declared.get(name)
        if param is None:
            issues.append(f"the app sends {name}, which the org's action does not declare")
        elif param.type != sent_type:
            issues.append(f"{name}: the org expects {param.type}, the app sends {sent_type}")
    issues.extend(
        f"the org requires {p.name}, which the app does not send"
        for p in declared.values()
        if not p.nullable and p.name not in sent
    )
    return issues


def compare_signature(org: Iterable[ActionParameter], signature: str) -> list[str]:
    """Differences between the org's CreateInteraction and the app's call for ``signature``."""
    return compare_parameters(org, app_parameters(signature))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
