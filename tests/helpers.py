"""Small helpers shared by the tests (fixtures on disk, ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"

ROW_ID = "5f2a9c7e-3b1d-4e8a-9f60-2c7d8e9a1b34"
ACTIVITY_ID = "c3f1a2b4-5d6e-4f70-8a9b-0c1d2e3f4a5b"
CONTACT_ID = "8d3c1f2e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
JOURNEY_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
ITERATION_ID = "6f5e4d3c-2b1a-4f0e-9d8c-7b6a5f4e3d2c"
MESSAGE_TABLE = "cr123_smsmessage"
MESSAGE_ID = "a7b8c9d0-e1f2-4a3b-8c4d-5e6f7a8b9c0d"
ACTIVITY_TABLE = "msdyncrm_customerjourneycustomchannelactivity"
ACTIVITY_ROW = {  # the activity row as the Web API stores it (a trimmed message makes the app read it)
    "msdyncrm_activityid": ACTIVITY_ID,
    "_msdyncrm_contact_value": CONTACT_ID,
    "_msdyncrm_customerjourney_value": JOURNEY_ID,
    "_msdyncrm_customerjourneyiteration_value": ITERATION_ID,
    "msdyncrm_entitytype": MESSAGE_TABLE,
    "msdyncrm_entityid": MESSAGE_ID,
}


def fixture_bytes(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


def activity_message(row_id: str = ROW_ID, contact_id: str = CONTACT_ID, activity_id: str | None = None) -> bytes:
    """The real-format Create message, with the activity row / contact swapped for another one."""
    text = fixture_bytes("dataverse", "activity_create.json").decode()
    text = text.replace(ROW_ID, row_id).replace(CONTACT_ID, contact_id)
    if activity_id:
        text = text.replace(ACTIVITY_ID, activity_id)
    return text.encode()


def twilio_params(name: str, **values: str) -> dict[str, str]:
    params: dict[str, Any] = json.loads(fixture_bytes("twilio", f"{name}.json"))["params"]
    out = {}
    for key, template in params.items():
        text = template
        for placeholder, replacement in values.items():
            text = text.replace("{" + placeholder + "}", replacement)
        out[key] = text
    return out
