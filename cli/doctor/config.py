"""Checks on the settings themselves: the pydantic model, unresolved Key Vault references (read from the raw
environment, so they are found whatever the model does with them), and whether real-time journeys is configured."""

from __future__ import annotations

import re
from collections.abc import Mapping

from cli.doctor.results import CheckResult, ok, problem
from shared.settings import ConfigurationError, Settings, load_settings

SETTING_FIXES = {
    "DATAVERSE_URL": "set it to the environment URL only, e.g. https://contoso.crm.dynamics.com (Power Platform "
    "admin center → Environments → Environment URL)",
    "DATAVERSE_STATIC_TOKEN": "remove it: a fixed token is only for the loopback emulators; in Azure the managed "
    "identity (AZURE_CLIENT_ID) is used",
    "ServiceBusConnection": "set ServiceBusConnection to a connection string with Listen + Send on the three "
    "queues, or ServiceBusConnection__fullyQualifiedNamespace=<ns>.servicebus.windows.net",
    "AzureWebJobsStorage": "set AzureWebJobsStorage (UseDevelopmentStorage=true with Azurite), or "
    "AzureWebJobsStorage__accountName for an identity-based connection",
    "ACTIVITY_QUEUE_NAME": "set it to the queue the Dataverse service endpoint posts to",
    "CHANNEL_PROVIDER": "set CHANNEL_PROVIDER=twilio (or loopback for local runs)",
    "CALLBACK_BASE_URL": "set it to the public https base URL of the app, e.g. https://myapp.azurewebsites.net",
    "MESSAGE_BODY_COLUMN": "set it to the logical name of the text column of the channel's message table, e.g. "
    "cr123_body",
    "TWILIO_ACCOUNT_SID": "copy the Account SID (AC…) from the Twilio console",
    "TWILIO_AUTH_TOKEN": "copy the Auth Token from the Twilio console (in Azure: a Key Vault reference)",
    "TWILIO_FROM": "set TWILIO_FROM to an E.164 number (+14155550100), an alphanumeric sender or whatsapp:+E164, "
    "or use TWILIO_MESSAGING_SERVICE_SID instead",
    "TWILIO_FROM / TWILIO_MESSAGING_SERVICE_SID": "set exactly one of TWILIO_FROM and TWILIO_MESSAGING_SERVICE_SID",
    "LOOPBACK_PROVIDER_URL": "start the loopback gateway (devtools/emulators/loopback_provider.py) and set its URL",
    "LOOPBACK_SIGNING_KEY": "set the key the loopback gateway was started with",
}
DEFAULT_SETTING_FIX = "see README 'Settings' and local.settings.json.example for the expected value"

# App Service leaves this literal text in a setting whose reference it could not resolve.
_KEY_VAULT_REFERENCE = re.compile(r"^\s*@Microsoft\.KeyVault\(", re.IGNORECASE)
KEY_VAULT_FIX = (
    "give the app's identity the 'Key Vault Secrets User' role on the vault (with a user-assigned identity the site's "
    "keyVaultReferenceIdentity must name it), check that the secret the reference names exists and is enabled, then "
    "restart the app (references are resolved at start-up; a new role assignment can take minutes to apply). Outside "
    "App Service (local runs, settings copied from the portal) references are never resolved: use the value itself"
)

# Any of these present means real-time journeys is configured, and doctor checks its Dataverse side and the relay's
# authentication settings too. RTJ_AUTH_MODE alone is no sign: the infra always deploys it (default entra).
RTJ_SETTINGS = ("RTJ_OUTBOUND_SECRET", "RTJ_TOKEN_AUDIENCE", "RTJ_TOKEN_CLIENT_ID")


def check_settings(environ: Mapping[str, str]) -> tuple[list[CheckResult], Settings | None]:
    try:
        settings = load_settings(dict(environ))
    except ConfigurationError as exc:
        results = []
        for item in str(exc).removeprefix("Invalid app settings: ").split("; "):
            setting = item.split(":", 1)[0].strip() if ":" in item else ""
            fix = SETTING_FIXES.get(setting, DEFAULT_SETTING_FIX)
            results.append(problem("settings", item, fix))
        return results, None
    detail = (
        f"all settings valid (provider {settings.channel_provider}, action signature "
        f"{settings.interaction_action_signature}, queues {settings.activity_queue_name} / "
        f"{settings.callback_queue_name} / {settings.poison_queue_name})"
    )
    return [ok("settings", detail)], settings


def unresolved_key_vault_references(environ: Mapping[str, str]) -> list[str]:
    """Names of the settings whose value is still a literal ``@Microsoft.KeyVault(...)`` reference."""
    return sorted(name for name, value in environ.items() if _KEY_VAULT_REFERENCE.match(str(value)))


def check_key_vault_references(environ: Mapping[str, str]) -> list[CheckResult]:
    """One problem per setting holding an unresolved reference: the name, never the value (nor the reference)."""
    names = unresolved_key_vault_references(environ)
    if not names:
        return [ok("key-vault-references", "no setting holds an unresolved @Microsoft.KeyVault(...) reference")]
    return [
        problem(
            f"key-vault:{name}",
            f"{name} holds an unresolved Key Vault reference: the app sees the literal @Microsoft.KeyVault(...) "
            "text instead of the secret",
            KEY_VAULT_FIX,
        )
        for name in names
    ]


def rtj_configured(environ: Mapping[str, str], custom_api: str | None) -> str | None:
    """Why real-time journeys counts as configured (the first reason), or None when it is not."""
    if custom_api:
        return "--rtj-custom-api"
    return next((f"{name} is set" for name in RTJ_SETTINGS if str(environ.get(name) or "").strip()), None)
