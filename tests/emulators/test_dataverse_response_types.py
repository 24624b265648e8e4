"""The emulated CreateInteraction accepts only the tile's response-type ids (``clicked`` included, issue #16)."""

from __future__ import annotations

from devtools.emulators.dataverse import DataverseEmulator
from provisioning.definition import RESPONSE_TYPES
from tests.emulators.test_dataverse_emulator import error_of, interaction, post_action


def test_every_response_type_of_the_tile_is_accepted_and_nothing_else(dv: DataverseEmulator) -> None:
    tile_ids = [spec.id for spec in RESPONSE_TYPES]
    assert "clicked" in tile_ids
    for response_type in tile_ids:
        assert post_action(dv, interaction(ResponseType=response_type)).status_code == 204
    refused = post_action(dv, interaction(ResponseType="tapped"))
    assert refused.status_code == 400 and "'tapped' is not a response type" in error_of(refused)["message"]
    assert [i["ResponseType"] for i in dv.interactions] == tile_ids
    dv.response_types = None  # an org whose tile declares others: the check can be switched off
    assert post_action(dv, interaction(ResponseType="tapped")).status_code == 204
