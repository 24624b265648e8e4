from __future__ import annotations

import pytest

from shared.settings import ConfigurationError, load_settings

BASE = {
    "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
    "ServiceBusConnection": "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b",
    "ACTIVITY_QUEUE_NAME": "activities",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "CHANNEL_PROVIDER": "twilio",
    "CALLBACK_BASE_URL": "https://myapp.azurewebsites.net/",
    "MESSAGE_BODY_COLUMN": "cr123_body",
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "secret-token",
    "TWILIO_FROM": "+14155550100",
}


def settings_with(**changes: str | None) -> dict[str, str]:
    env = dict(BASE)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_valid_settings_and_defaults() -> None:
    s = load_settings(BASE)
    assert s.dataverse_api_base == "https://contoso.crm.dynamics.com/api/data/v9.2"
    assert s.dataverse_scope == "https://contoso.crm.dynamics.com/.default"
    assert s.callback_url("twilio") == "https://myapp.azurewebsites.net/api/callbacks/twilio"
    assert s.state_table_name == "channelstate"
    assert s.contact_phone_column == "mobilephone"
    assert s.compliance_column == "donotphone"
    assert s.twilio_api_base_url == "https://api.twilio.com"
    assert "stop" in s.opt_out_word_set and "quit" in s.opt_out_word_set
    assert "secret-token" not in repr(s)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"DATAVERSE_URL": None}, "DATAVERSE_URL"),
        ({"DATAVERSE_URL": "http://contoso.crm.dynamics.com"}, "DATAVERSE_URL"),
        ({"DATAVERSE_URL": "https://contoso.crm.dynamics.com/api/data/v9.2"}, "DATAVERSE_URL"),
        ({"MESSAGE_BODY_COLUMN": None}, "MESSAGE_BODY_COLUMN"),
        ({"MESSAGE_BODY_COLUMN": "Body Text"}, "MESSAGE_BODY_COLUMN"),
        ({"CHANNEL_PROVIDER": "carrier-pigeon"}, "CHANNEL_PROVIDER"),
        ({"CALLBACK_BASE_URL": "ftp://x"}, "CALLBACK_BASE_URL"),
        ({"ServiceBusConnection": None}, "ServiceBusConnection"),
        ({"AzureWebJobsStorage": None}, "AzureWebJobsStorage"),
        ({"ACTIVITY_QUEUE_NAME": None}, "ACTIVITY_QUEUE_NAME"),
        ({"STATE_TABLE_NAME": "state-table"}, "STATE_TABLE_NAME"),
        ({"TWILIO_ACCOUNT_SID": "123"}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_AUTH_TOKEN": None}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_FROM": None}, "TWILIO_FROM"),
        ({"TWILIO_MESSAGING_SERVICE_SID": "MG" + "b" * 32}, "TWILIO_MESSAGING_SERVICE_SID"),
        ({"TWILIO_FROM": "+1 415 555"}, "TWILIO_FROM"),
        ({"TWILIO_API_BASE_URL": "http://api.twilio.com"}, "provider endpoint URL"),
        ({"DATAVERSE_STATIC_TOKEN": "t"}, "DATAVERSE_STATIC_TOKEN"),
        ({"REPLY_WINDOW_DAYS": "-1"}, "REPLY_WINDOW_DAYS"),
        ({"DEFAULT_COUNTRY_CODE": "abc"}, "DEFAULT_COUNTRY_CODE"),
    ],
)
def test_invalid_settings_fail_fast_naming_the_setting(changes: dict[str, str | None], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(settings_with(**changes))
    assert named in str(caught.value)
    assert "secret-token" not in str(caught.value)


def test_identity_based_connections_are_enough() -> None:
    s = load_settings(
        settings_with(
            ServiceBusConnection=None,
            AzureWebJobsStorage=None,
            **{
                "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
                "AzureWebJobsStorage__accountName": "stchannel",
            },
        )
    )
    assert s.service_bus_namespace == "ns.servicebus.windows.net"
    assert s.storage_account_name == "stchannel"


@pytest.mark.parametrize("sender", ["+447700900123", "whatsapp:+14155550100", "Contoso", "Contoso 1"])
def test_accepted_senders(sender: str) -> None:
    assert load_settings(settings_with(TWILIO_FROM=sender)).twilio_from == sender


def test_messaging_service_instead_of_from() -> None:
    s = load_settings(settings_with(TWILIO_FROM=None, TWILIO_MESSAGING_SERVICE_SID="MG" + "c" * 32))
    assert s.twilio_messaging_service_sid


def test_loopback_hosts_may_use_http_and_static_tokens() -> None:
    s = load_settings(
        settings_with(
            DATAVERSE_URL="http://127.0.0.1:8080",
            DATAVERSE_STATIC_TOKEN="dev",
            CALLBACK_BASE_URL="http://localhost:7071",
            TWILIO_API_BASE_URL="http://127.0.0.1:9000",
        )
    )
    assert s.dataverse_static_token == "dev"


def test_loopback_provider_needs_its_settings() -> None:
    with pytest.raises(ConfigurationError, match="LOOPBACK_PROVIDER_URL"):
        load_settings(settings_with(CHANNEL_PROVIDER="loopback"))
