"""``channel doctor`` with WhatsApp (issue #17): the Cloud API credential check and the template columns."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.emulators.whatsapp import WhatsAppEmulator
from tests.cli.conftest import FakeServiceBus, Org
from tests.cli.test_doctor import fix_after, lines, run


@pytest.fixture
def meta() -> Iterator[WhatsAppEmulator]:
    emulator = WhatsAppEmulator()
    try:
        yield emulator
    finally:
        emulator.stop()


def whatsapp_env(org: Org, meta: WhatsAppEmulator, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in org.env.items() if not k.startswith("TWILIO_")}
    return {
        **env,
        "CHANNEL_PROVIDER": "whatsapp",
        "WHATSAPP_PHONE_NUMBER_ID": meta.phone_number_id,
        "WHATSAPP_ACCESS_TOKEN": meta.access_token,
        "WHATSAPP_APP_SECRET": "doctor-app-secret-0123456789",
        "WHATSAPP_VERIFY_TOKEN": "doctor-verify-token-0123",
        "WHATSAPP_API_BASE_URL": meta.api_base_url,
        **overrides,
    }


def test_cloud_api_credentials_are_checked(org: Org, bus: FakeServiceBus, meta: WhatsAppEmulator) -> None:
    code, out = run(whatsapp_env(org, meta), bus)
    assert code == 0, out
    [line] = lines(out, "ok", "provider:whatsapp")
    assert "Contoso" in line and "3881" in line and "15550783881" not in line  # the number is masked


def test_a_rejected_token_names_the_setting(org: Org, bus: FakeServiceBus, meta: WhatsAppEmulator) -> None:
    code, out = run(whatsapp_env(org, meta, WHATSAPP_ACCESS_TOKEN="expired"), bus)
    assert code == 1
    assert "Meta rejected WHATSAPP_ACCESS_TOKEN" in lines(out, "problem", "provider:whatsapp")[0]
    assert "system user token" in fix_after(out, "problem", "provider:whatsapp")
    code, out = run(whatsapp_env(org, meta, WHATSAPP_PHONE_NUMBER_ID="123456789"), bus)
    assert code == 1 and "WHATSAPP_PHONE_NUMBER_ID" in fix_after(out, "problem", "provider:whatsapp")


def test_template_columns_must_exist_on_the_message_table(org: Org, bus: FakeServiceBus) -> None:
    table = org.ids["message_entity"]
    org.dataverse.add_columns(table, ["cr123_template"])
    env = {**org.env, "MESSAGE_TEMPLATE_COLUMN": "cr123_template", "MESSAGE_MEDIA_COLUMN": "cr123_nomedia"}
    code, out = run(env, bus)
    assert code == 1
    assert lines(out, "ok", "message-template-column")
    assert "MESSAGE_MEDIA_COLUMN 'cr123_nomedia' is missing" in lines(out, "problem", "message-media-column")[0]
