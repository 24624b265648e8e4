"""Demo data: a small outbound-marketing org (contacts, a journey, a custom channel activity, one message row)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator


def seed_demo(emulator: DataverseEmulator) -> dict[str, Any]:
    """Seed a small demo org (contacts, a journey, a custom channel activity, one message row).

    Returns the ids and names used.
    """
    ids: dict[str, Any] = {
        "message_entity": "cr123_smsmessage",
        "message_entity_set": "cr123_smsmessages",
        "message_body_column": "cr123_body",
        "message_id": "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51",
        "journey_id": "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a01",
        "iteration_id": "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a02",
        "activity_id": "3b2c1d0e-4f5a-4b6c-8d7e-9f0a1b2c3d01",
        "activity_msdyncrm_activityid": "act-0001",
        "contact_ids": [
            "c0a80101-0000-4000-8000-000000000001",
            "c0a80101-0000-4000-8000-000000000002",
            "c0a80101-0000-4000-8000-000000000003",
        ],
    }
    emulator.add_entity("contact", "contacts", "contactid")
    emulator.add_columns(
        "contact", ["firstname", "lastname", "fullname", "mobilephone", "emailaddress1", "donotphone", "donotsms"]
    )
    people = [
        ("Ada", "Lovelace", "+14155550101", False),
        ("Alan", "Turing", "+447700900123", False),
        ("Grace", "Hopper", "+14155550103", True),
    ]
    for cid, (first, last, phone, opted_out) in zip(ids["contact_ids"], people, strict=True):
        emulator.add_row(
            "contact",
            cid,
            {
                "firstname": first,
                "lastname": last,
                "fullname": f"{first} {last}",
                "mobilephone": phone,
                "emailaddress1": f"{first.lower()}@example.com",
                "donotphone": opted_out,
                "donotsms": opted_out,
            },
            formatted={
                "donotphone": "Do Not Allow" if opted_out else "Allow",
                "donotsms": "Do Not Allow" if opted_out else "Allow",
            },
        )
    emulator.add_entity("msdyncrm_customerjourney", "msdyncrm_customerjourneys", "msdyncrm_customerjourneyid")
    emulator.add_row("msdyncrm_customerjourney", ids["journey_id"], {"msdyncrm_name": "Demo journey"})
    emulator.add_entity(
        "msdyncrm_customerjourneyiteration", "msdyncrm_customerjourneyiterations", "msdyncrm_customerjourneyiterationid"
    )
    emulator.add_row(
        "msdyncrm_customerjourneyiteration", ids["iteration_id"], {"msdyncrm_name": "Demo journey iteration 1"}
    )
    emulator.add_entity(ids["message_entity"], ids["message_entity_set"], f"{ids['message_entity']}id")
    emulator.add_row(
        ids["message_entity"],
        ids["message_id"],
        {"cr123_name": "Welcome SMS", ids["message_body_column"]: "Hi {{contact.firstname}}, welcome aboard!"},
    )
    emulator.add_entity(
        "msdyncrm_customerjourneycustomchannelactivity",
        "msdyncrm_customerjourneycustomchannelactivities",
        "msdyncrm_customerjourneycustomchannelactivityid",
    )
    emulator.add_row(
        "msdyncrm_customerjourneycustomchannelactivity",
        ids["activity_id"],
        {
            "msdyncrm_name": "Demo SMS activity",
            "msdyncrm_activityid": ids["activity_msdyncrm_activityid"],
            "_msdyncrm_contact_value": ids["contact_ids"][0],
            "_msdyncrm_customerjourney_value": ids["journey_id"],
            "_msdyncrm_customerjourneyiteration_value": ids["iteration_id"],
            "msdyncrm_entitytype": ids["message_entity"],
            "msdyncrm_entityid": ids["message_id"],
            "statecode": 0,
            "statuscode": 1,
        },
        formatted={"statecode": "Active", "statuscode": "Active", "_msdyncrm_contact_value": "Ada Lovelace"},
    )
    return ids
