"""The ``timezonedefinition`` system table (read-only): a subset of the time zones every org has.

Columns as Microsoft's Web API reference lists them (bias, daylightname, retiredorder, standardname, timezonecode,
timezonedefinitionid, userinterfacename). ``timezonecode`` values are the Microsoft Time Zone Index Values Dynamics
uses; ``standardname`` is the Windows zone id. The app never hard-codes a code: it reads this table.
A retired entry (``retiredorder`` 1) sits next to the current one of the same code, as in a real org.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from devtools.emulators.dataverse import errors
from devtools.emulators.dataverse.errors import DataverseError

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

LOGICAL_NAME = "timezonedefinition"
ENTITY_SET = "timezonedefinitions"
COLUMNS = ("bias", "daylightname", "retiredorder", "standardname", "timezonecode", "userinterfacename")

# (code, standard name, daylight name, bias in minutes (UTC = local + bias), display name)
ZONES = (
    (2, "Hawaiian Standard Time", "Hawaiian Daylight Time", 600, "(GMT-10:00) Hawaii"),
    (4, "Pacific Standard Time", "Pacific Daylight Time", 480, "(GMT-08:00) Pacific Time (US & Canada)"),
    (10, "Mountain Standard Time", "Mountain Daylight Time", 420, "(GMT-07:00) Mountain Time (US & Canada)"),
    (20, "Central Standard Time", "Central Daylight Time", 360, "(GMT-06:00) Central Time (US & Canada)"),
    (35, "Eastern Standard Time", "Eastern Daylight Time", 300, "(GMT-05:00) Eastern Time (US & Canada)"),
    (85, "GMT Standard Time", "GMT Daylight Time", 0, "(GMT) Dublin, Edinburgh, Lisbon, London"),
    (92, "UTC", "UTC", 0, "(GMT) Coordinated Universal Time"),
    (110, "W. Europe Standard Time", "W. Europe Daylight Time", -60, "(GMT+01:00) Amsterdam, Berlin, Rome, Vienna"),
    (190, "India Standard Time", "India Daylight Time", -330, "(GMT+05:30) Chennai, Kolkata, Mumbai, New Delhi"),
    (235, "Tokyo Standard Time", "Tokyo Daylight Time", -540, "(GMT+09:00) Osaka, Sapporo, Tokyo"),
    (255, "AUS Eastern Standard Time", "AUS Eastern Daylight Time", -600, "(GMT+10:00) Canberra, Melbourne, Sydney"),
)


def install(emulator: DataverseEmulator) -> None:
    """Register the table and seed its rows (idempotent)."""
    emulator.add_entity(LOGICAL_NAME, ENTITY_SET, "timezonedefinitionid")
    emulator.add_columns(LOGICAL_NAME, COLUMNS)
    for code, standard, daylight, bias, display in ZONES:
        for retired in (0, 1) if code == 35 else (0,):
            row_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/timezonedefinition/{code}/{retired}"))
            name = standard if not retired else "Eastern Standard Time (retired rules)"
            emulator.add_row(
                LOGICAL_NAME,
                row_id,
                {
                    "bias": bias,
                    "daylightname": daylight,
                    "retiredorder": retired,
                    "standardname": name,
                    "timezonecode": code,
                    "userinterfacename": display,
                },
            )


def refuse_writes(method: str, resource: str) -> None:
    """System data: only GET (Retrieve, RetrieveMultiple) is supported on the table.

    [INFERRED] the exact answer: Dataverse refuses messages a table does not support with 400 and this wording.
    """
    if method != "GET" and resource.split("(", 1)[0].split("/", 1)[0] == ENTITY_SET:
        message = "Create" if method == "POST" else "Update" if method == "PATCH" else "Delete"
        raise DataverseError(
            400, errors.INVALID_ARGUMENT, f"The '{message}' method does not support entities of type '{LOGICAL_NAME}'."
        )
