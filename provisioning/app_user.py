"""The application user an app signs in to Dataverse as, and its security role (idempotent).

One deployment: the Function app's managed identity (``--create-app-user <AZURE_CLIENT_ID>``). Many orgs (issue #15):
the ISV's multi-tenant app registration (``--application-user <ORG_APP_CLIENT_ID>``), which the customer's admin
adds to their own org. Steps: read the user by ``applicationid``; create it in the business unit (default the root
one) when missing, enable it when disabled; then associate the security role of the user's business unit
(``POST systemusers(<id>)/systemuserroles_association/$ref``) unless the user holds it already. The role is looked up
before anything is written: a missing role stops the run with nothing changed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from provisioning.tables import SYSTEM_USER
from provisioning.toolkit import ProvisionError, Steps, ensure_row, lit

ROLES_RELATIONSHIP = "systemuserroles_association"


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


@dataclass(frozen=True)
class AppUserOptions:
    client_id: str  # the application (client) id the user stands for
    role: str | None = None  # security role name to assign
    business_unit: str | None = None  # id or exact name; default the root business unit
    flag: str = "--create-app-user"  # the option that named client_id (for messages)


@dataclass
class AppUserResult:
    user_id: str = ""
    role_id: str = ""
    created: bool = False
    role_assigned: bool = False  # this run associated the role


class AppUserSteps:
    def __init__(self, steps: Steps, options: AppUserOptions) -> None:
        if not is_guid(options.client_id):
            raise ProvisionError(f"{options.flag} needs an application (client) id, a GUID, not {options.client_id}")
        self.s = steps
        self.opt = options
        self.client_id = options.client_id.lower()
        self.user: dict[str, Any] | None = None
        self.business_unit_id = ""
        self.role: dict[str, Any] | None = None

    # --- reads first ---------------------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Read the user and find the role in its business unit (reads only; a missing role stops the run)."""
        users = self.s.rows(
            SYSTEM_USER,
            ("systemuserid", "applicationid", "isdisabled", "_businessunitid_value"),
            f"applicationid eq {self.client_id}",
            what="application user",
        )
        self.user = users[0] if users else None
        if self.user is not None:
            self.business_unit_id = str(self.user.get("_businessunitid_value") or "")
        else:
            self.business_unit_id = self._business_unit_id()
        if self.opt.role:
            self.role = self._find_role(self.opt.role)

    def _business_unit_id(self) -> str:
        wanted = self.opt.business_unit
        if wanted and is_guid(wanted):
            return wanted.lower()
        where = f"name eq {lit(wanted)}" if wanted else "_parentbusinessunitid_value eq null"
        units = self.s.rows("businessunits", ("businessunitid", "name"), where, what="business unit")
        if len(units) != 1:
            raise ProvisionError(
                f"business unit {wanted or '(root)'}: found {len(units)}; pass --business-unit <id or exact name>"
            )
        return str(units[0]["businessunitid"])

    def _find_role(self, name: str) -> dict[str, Any]:
        roles = self.s.rows(
            "roles",
            ("roleid", "name", "_businessunitid_value"),
            f"name eq {lit(name)} and _businessunitid_value eq {self.business_unit_id}",
            what="security role",
        )
        if len(roles) != 1:
            found = "no" if not roles else f"{len(roles)}"
            raise ProvisionError(
                f"security role '{name}': {found} role with that exact name in business unit {self.business_unit_id} "
                "(the application user's). Import the solution that ships it, or create it with the privileges "
                "'channel provision' lists, then run again"
            )
        return roles[0]

    # --- writes --------------------------------------------------------------------------------------------------
    def run(self) -> AppUserResult:
        if self.user is None and not self.business_unit_id:
            self.preflight()
        result = AppUserResult()
        outcome = ensure_row(
            self.s,
            SYSTEM_USER,
            {"isdisabled": False} if self.user is not None and self.user.get("isdisabled") else {},
            what=f"application user {self.client_id}",
            row_id=str(self.user["systemuserid"]) if self.user is not None else None,
            select=("systemuserid", "applicationid", "isdisabled"),
            skip_read=self.user is None,
            body={
                "applicationid": self.client_id,
                "businessunitid@odata.bind": f"/businessunits({self.business_unit_id})",
            },
            created_text=f"create application user for client id {self.client_id}",
            updated_text=f"enable application user {self.client_id} (it was disabled)",
            in_solution=False,
            placeholder="<new systemuser id>",
        )
        result.user_id, result.created = outcome.id, outcome.created
        if self.role is not None:
            result.role_id = str(self.role["roleid"])
            result.role_assigned = self._ensure_role(outcome.id, new_user=outcome.created)
        return result

    def _ensure_role(self, user_id: str, *, new_user: bool) -> bool:
        assert self.role is not None
        role_id, name = str(self.role["roleid"]).lower(), str(self.role.get("name"))
        what = f"security role '{name}' of application user {self.client_id}"
        if not new_user:
            held = self.s.gw.rows(
                f"systemusers({user_id})/{ROLES_RELATIONSHIP}", {"$select": "roleid,name"}, operation="read user roles"
            )
            if any(str(r.get("roleid", "")).lower() == role_id for r in held):
                self.s.ok(what)
                return False
        self.s.gw.write(
            "POST",
            f"systemusers({user_id})/{ROLES_RELATIONSHIP}/$ref",
            {"@odata.id": f"{self.s.gw.api}/roles({role_id})"},
            operation="assign security role",
        )
        self.s.changed(f"assign security role '{name}' to application user {self.client_id}")
        return True
