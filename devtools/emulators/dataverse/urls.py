"""The route table: which handler serves which Web API resource and method (first match wins).

Add a resource by adding a ``Route``; add an unbound action by registering it in ``actions.UNBOUND_ACTIONS``; add a
table by registering it on the emulator (``add_entity``, or a table list such as ``rtj.RTJ_TABLES``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devtools.emulators._base import Response
from devtools.emulators.dataverse import actions, associations, customization, metadata, relationships, rtj, tables
from devtools.emulators.dataverse.request import Call, Handler

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

ANY = "*"


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    handlers: Mapping[str, Handler]  # HTTP method (or ANY) -> handler
    when: Callable[[re.Match[str]], bool] = lambda m: True


def _unbound_action(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    return actions.UNBOUND_ACTIONS[match.group("action")](emu, call, match)


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
ROUTES: list[Route] = [
    Route(re.compile(r"^\$metadata$"), {"GET": metadata.csdl}),
    Route(re.compile(r"^WhoAmI(?:\(\))?$"), {"GET": actions.who_am_i}),
    Route(re.compile(r"^EntityDefinitions$"), {"POST": customization.create_entity_definition}),
    Route(
        re.compile(
            r"^EntityDefinitions\(LogicalName='(?P<entity>[^']*)'\)/Attributes\(LogicalName='(?P<attr>[^']*)'\)$"
        ),
        {"GET": metadata.attribute_definition},
    ),
    Route(
        re.compile(r"^EntityDefinitions\(LogicalName='(?P<entity>[^']*)'\)/Attributes$"),
        {"POST": customization.create_attribute},
    ),
    Route(re.compile(r"^RelationshipDefinitions$"), {"POST": relationships.create_relationship}),
    Route(
        re.compile(r"^EntityDefinitions\(LogicalName='(?P<entity>[^']*)'\)/ManyToOneRelationships$"),
        {"GET": relationships.many_to_one},
    ),
    Route(re.compile(r"^RetrieveRolePrivilegesRole\(RoleId=(?P<id>[^)]*)\)$"), {"GET": rtj.retrieve_role_privileges}),
    Route(
        re.compile(r"^roles\((?P<id>[0-9a-fA-F-]{36})\)/(?:Microsoft\.Dynamics\.CRM\.)?AddPrivilegesRole$"),
        {"POST": rtj.add_privileges_role},
    ),
    Route(
        re.compile(r"^systemusers\((?P<id>[0-9a-fA-F-]{36})\)/systemuserroles_association$"),
        {"GET": associations.user_roles},
    ),
    Route(
        re.compile(r"^systemusers\((?P<id>[0-9a-fA-F-]{36})\)/systemuserroles_association/\$ref$"),
        {"POST": associations.associate_role},
    ),
    Route(re.compile(r"^(?:Microsoft\.Dynamics\.CRM\.)?PublishXml$"), {"POST": customization.publish_xml}),
    Route(
        re.compile(
            r"^EntityDefinitions\((?:LogicalName=(?:'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\")|(?P<mid>[0-9a-fA-F-]{36}))\)$"
        ),
        {"GET": metadata.entity_definition},
    ),
    Route(
        re.compile(rf"^(?:Microsoft\.Dynamics\.CRM\.)?(?P<action>{_NAME})$"),
        {"POST": _unbound_action},
        when=lambda m: m.group("action") in actions.UNBOUND_ACTIONS,
    ),
    Route(re.compile(rf"^(?P<set>{_NAME})$"), {ANY: tables.collection}),
    Route(re.compile(rf"^(?P<set>{_NAME})\((?P<key>[^)]*)\)$"), {ANY: tables.row}),
]
