"""``channel provision``: create or update everything Dataverse-side, idempotently.

Each step reads first, compares with the definition and writes only on a difference, so a second run makes
zero writes (the step toolkit: provisioning/toolkit.py). Every create carries ``MSCRM.SolutionUniqueName`` so the
components land in the named unmanaged solution. Before anything is written, every row the run will write is
checked against the column table (provisioning/tables.py) and the RTJ roles are looked up. Then: publisher +
solution → the outbound-marketing steps (provisioning/outbound.py) → the real-time journeys steps
(provisioning/rtj.py, with ``rtj`` options) → (optional) application user. ``outbound=False`` runs only the RTJ
steps (outbound marketing has been removed from every org, and the RTJ part needs no Service Bus values).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from provisioning.app_user import AppUserOptions, AppUserResult, AppUserSteps
from provisioning.definition import ChannelDefinition
from provisioning.gateway import Gateway
from provisioning.outbound import CONTRACTS, OutboundOptions, OutboundResult, OutboundSteps
from provisioning.rtj import RtjOptions, RtjResult, RtjSteps
from provisioning.tables import PUBLISHER, SOLUTION
from provisioning.toolkit import ProvisionError, Steps, checked, ensure_row, lit
from provisioning.whatsapp import WhatsAppPartSteps, WhatsAppSteps

SOLUTION_VERSION = "1.0.0.0"

__all__ = [
    "CONTRACTS",
    "OutboundOptions",
    "ProvisionError",
    "ProvisionOptions",
    "ProvisionResult",
    "Provisioner",
    "lit",
]


def option_value_prefix(prefix: str) -> int:
    """A stable choice-value prefix (10000-99999) for a new publisher, derived from its customization prefix."""
    return 10000 + zlib.crc32(prefix.encode()) % 90000


@dataclass(frozen=True)
class ProvisionOptions:
    definition: ChannelDefinition
    solution: str
    publisher: str | None = None
    app_user_client_id: str | None = None
    business_unit: str | None = None
    app_user_role: str | None = None  # security role to assign to the application user
    outbound: OutboundOptions | None = None  # the outbound-marketing steps (table, tile, service endpoint, step)
    rtj: RtjOptions | None = None  # the real-time journeys steps
    whatsapp: bool = False  # --whatsapp: template columns and form (outbound), template parts (--rtj) (issue #17)

    @property
    def publisher_name(self) -> str:
        return self.publisher or f"{self.solution}Publisher"


@dataclass
class ProvisionResult:
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outbound: OutboundResult = field(default_factory=OutboundResult)
    rtj: RtjResult | None = None
    app_user: AppUserResult | None = None

    @property
    def app_user_id(self) -> str:
        return self.app_user.user_id if self.app_user is not None else ""

    @property
    def tile(self) -> str:
        return self.outbound.tile


class Provisioner:
    def __init__(self, gateway: Gateway, options: ProvisionOptions, *, say: Callable[[str], None] = print) -> None:
        self.gw = gateway
        self.opt = options
        self.result = ProvisionResult()
        self.steps = Steps(gateway, options.solution, say, self.result.changes, self.result.notes)

    def run(self) -> ProvisionResult:
        if self.opt.outbound is None and self.opt.rtj is None:
            raise ProvisionError("nothing to do: the outbound-marketing steps are off and --rtj is not given")
        outbound = OutboundSteps(self.steps, self.opt.outbound) if self.opt.outbound is not None else None
        rtj = RtjSteps(self.steps, self.opt.rtj) if self.opt.rtj is not None else None
        parts = (
            WhatsAppPartSteps(self.steps, self.opt.rtj.channel) if rtj and self.opt.rtj and self.opt.whatsapp else None
        )
        app_user = None
        if self.opt.app_user_client_id:
            app_user = AppUserSteps(
                self.steps,
                AppUserOptions(self.opt.app_user_client_id, self.opt.app_user_role, self.opt.business_unit),
            )
        checked(PUBLISHER, self.publisher_body())
        checked(SOLUTION, self.solution_body("<publisher id>"))
        if outbound is not None:
            outbound.preflight()
        if rtj is not None:
            rtj.preflight()
        if parts is not None:
            parts.preflight()
        if app_user is not None:
            app_user.preflight()  # the role exists before anything is written
        self.ensure_solution()
        if outbound is not None:
            self.result.outbound = outbound.run()
            if self.opt.whatsapp:  # issue #17: the template columns on the message table and its main form
                new = f"create table {self.opt.definition.table_logical_name}" in self.steps.changes
                WhatsAppSteps(self.steps, self.opt.definition).run(table_new=new)
        if rtj is not None:
            self.result.rtj = rtj.run()
            if parts is not None:
                parts.run()
        if app_user is not None:
            self.result.app_user = app_user.run()
        return self.result

    # --- publisher + solution -----------------------------------------------------------------------
    def publisher_body(self) -> dict[str, object]:
        prefix = self.opt.definition.prefix
        return {
            "uniquename": self.opt.publisher_name,
            "friendlyname": self.opt.publisher_name,
            "customizationprefix": prefix,
            "customizationoptionvalueprefix": option_value_prefix(prefix),
        }

    def solution_body(self, publisher_id: str) -> dict[str, object]:
        return {
            "uniquename": self.opt.solution,
            "friendlyname": self.opt.solution,
            "version": SOLUTION_VERSION,
            "publisherid@odata.bind": f"/publishers({publisher_id})",
        }

    def ensure_solution(self) -> None:
        prefix = self.opt.definition.prefix
        found = self.steps.rows(
            "solutions",
            ("solutionid", "uniquename", "ismanaged", "_publisherid_value"),
            f"uniquename eq {lit(self.opt.solution)}",
            what="solution",
        )
        if found:
            solution = found[0]
            if solution.get("ismanaged"):
                raise ProvisionError(f"solution {self.opt.solution} is managed; components can only go to unmanaged")
            publisher = self.gw.read(
                f"publishers({solution['_publisherid_value']})",
                {"$select": "publisherid,uniquename,customizationprefix"},
                operation="read publisher",
            )
            actual = (publisher or {}).get("customizationprefix")
            if actual != prefix:
                raise ProvisionError(
                    f"solution {self.opt.solution} belongs to a publisher with prefix {actual!r}, not {prefix!r}: "
                    f"run with --prefix {actual} or choose another --solution"
                )
            self.steps.ok(f"solution {self.opt.solution}")
            return
        publishers = ensure_row(
            self.steps,
            PUBLISHER,
            {},
            what=f"publisher {self.opt.publisher_name}",
            where=f"customizationprefix eq {lit(prefix)}",
            select=("publisherid", "uniquename", "customizationprefix"),
            body=self.publisher_body(),
            created_text=f"create publisher {self.opt.publisher_name} (prefix {prefix})",
            unchanged_text=None,
            in_solution=False,
            placeholder="<new publisher id>",
        )
        if publishers.row is not None:
            self.steps.say(f"publisher {publishers.row.get('uniquename')} (prefix {prefix}): exists")
        self.steps.create(
            SOLUTION,
            self.solution_body(publishers.id),
            what="solution",
            in_solution=False,
            placeholder="<new solution id>",
        )
        self.steps.changed(f"create solution {self.opt.solution}")
