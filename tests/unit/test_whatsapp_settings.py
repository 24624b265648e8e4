"""The WhatsApp settings mixin composes with pydantic-settings (environment and dict), with its own checks."""

from __future__ import annotations

import pytest

from shared.adapters.http import new_session
from shared.adapters.secret_gate import SecretGate
from shared.bootstrap import build_provider, channel_config
from shared.domain.whatsapp import TemplateColumns
from shared.settings import ConfigurationError, load_settings

BASE = {
    "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
    "ACTIVITY_QUEUE_NAME": "activities",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "ServiceBusConnection": "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b",
    "CALLBACK_BASE_URL": "https://app.example",
    "MESSAGE_BODY_COLUMN": "cr123_body",
}
WHATSAPP = {
    **BASE,
    "CHANNEL_PROVIDER": "whatsapp",
    "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
    "WHATSAPP_ACCESS_TOKEN": "EAAG-token",
    "WHATSAPP_APP_SECRET": "0123456789abcdef0123456789abcdef",
    "WHATSAPP_VERIFY_TOKEN": "verify-token-0123456789",
}


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        **WHATSAPP,
        "MESSAGE_TEMPLATE_COLUMN": "cr123_template",
        "MESSAGE_MEDIA_COLUMN": "cr123_media",
        "WHATSAPP_OPT_OUT_PAYLOADS": "STOP, Opt Out",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.channel_provider == "whatsapp"
    assert settings.whatsapp_api_base_url == "https://graph.facebook.com/v21.0"
    assert settings.template_columns == TemplateColumns("cr123_template", None, None, "cr123_media")
    assert settings.opt_out_payload_set == frozenset({"stop", "opt out"})
    assert channel_config(settings).template_columns == settings.template_columns
    assert "EAAG-token" not in repr(settings)
    assert build_provider(settings, new_session()).name == "whatsapp"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"WHATSAPP_PHONE_NUMBER_ID": ""}, "WHATSAPP_PHONE_NUMBER_ID: required"),
        ({"WHATSAPP_PHONE_NUMBER_ID": "+15550783881"}, "numeric phone number ID"),
        ({"WHATSAPP_ACCESS_TOKEN": " "}, "WHATSAPP_ACCESS_TOKEN: required"),
        ({"WHATSAPP_APP_SECRET": "short"}, "WHATSAPP_APP_SECRET: must be at least 16"),
        ({"WHATSAPP_VERIFY_TOKEN": ""}, "WHATSAPP_VERIFY_TOKEN: required"),
        ({"WHATSAPP_API_BASE_URL": "http://graph.example"}, "must use https"),
        ({"MESSAGE_TEMPLATE_COLUMN": "Cr123 Template"}, "not a Dataverse column logical name"),
        ({"MESSAGE_TEMPLATE_VARIABLES_COLUMN": "cr123_vars"}, "MESSAGE_TEMPLATE_VARIABLES_COLUMN: needs"),
        ({"WHATSAPP_OPT_OUT_PAYLOADS": " , "}, "WHATSAPP_OPT_OUT_PAYLOADS"),
    ],
)
def test_bad_settings_name_the_setting(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings({**WHATSAPP, **overrides})


def test_cloud_api_settings_are_only_required_for_the_whatsapp_provider() -> None:
    settings = load_settings(
        {
            **BASE,
            "CHANNEL_PROVIDER": "loopback",
            "LOOPBACK_PROVIDER_URL": "http://127.0.0.1:9",
            "LOOPBACK_SIGNING_KEY": "k",
        }
    )
    assert settings.whatsapp_phone_number_id is None and settings.template_columns == TemplateColumns()


def test_an_unresolved_app_secret_gates_the_webhook() -> None:
    settings = load_settings({**WHATSAPP, "WHATSAPP_APP_SECRET": "@Microsoft.KeyVault(SecretUri=https://kv/x)"})
    assert settings.is_unresolved("WHATSAPP_APP_SECRET")
    assert isinstance(build_provider(settings, new_session()), SecretGate)
