"""Many-to-many associations through the Web API, for the one relationship the channel uses: a user's security
roles (``systemuserroles_association``), which ``channel provision --application-user`` reads and adds.

``GET systemusers(<id>)/systemuserroles_association`` lists the user's roles; ``POST
systemusers(<id>)/systemuserroles_association/$ref`` with ``{"@odata.id": "<api>/roles(<id>)"}`` associates one
(Web API "Associate and disassociate table rows"). Like Dataverse, both rows must exist; a role of another business
unit than the user's is refused ([INFERRED] wording: roles are per business unit), and so is the same pair twice.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from devtools.emulators._base import Response
from devtools.emulators.dataverse import errors
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.request import Call

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

RELATIONSHIP = "systemuserroles_association"
_ROLE_REF = re.compile(r"(?:^|/)roles\((?P<id>[0-9a-fA-F-]{36})\)$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _row(emu: DataverseEmulator, logical: str, row_id: str) -> dict[str, Any]:
    rows = emu.store.entities.get(logical)
    key = row_id.lower()
    if rows is None or not _GUID.match(key) or key not in rows.rows:
        raise DataverseError(404, errors.OBJECT_DOES_NOT_EXIST, f"{logical} With Id = {row_id} Does Not Exist")
    row: dict[str, Any] = rows.rows[key]
    return row


def user_roles(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    user_id = match.group("id").lower()
    _row(emu, "systemuser", user_id)
    roles = [
        {"roleid": role_id, "name": _row(emu, "role", role_id).get("name")}
        for role_id in sorted(emu.user_roles.get(user_id, set()))
    ]
    return emu.json_response(200, {"@odata.context": f"{emu.api_url}/$metadata#roles", "value": roles})


def associate_role(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    user_id = match.group("id").lower()
    user = _row(emu, "systemuser", user_id)
    reference = str(call.json_body().get("@odata.id") or "")
    found = _ROLE_REF.search(reference)
    if found is None:
        raise DataverseError(400, errors.ODATA, f"The @odata.id '{reference[:200]}' does not identify a role.")
    role_id = found.group("id").lower()
    role = _row(emu, "role", role_id)
    if role.get("_businessunitid_value") != user.get("_businessunitid_value"):
        raise DataverseError(
            400, errors.INVALID_ARGUMENT, "The role and the user must belong to the same business unit."
        )
    held = emu.user_roles.setdefault(user_id, set())
    if role_id in held:
        raise DataverseError(400, errors.DUPLICATE, "Cannot insert duplicate key.")
    held.add(role_id)
    return emu.no_content()
