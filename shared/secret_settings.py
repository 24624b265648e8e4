"""Secret app settings and the unresolved Key Vault reference rule (issue #11, defect 9).

In Azure, secret settings are Key Vault references (``@Microsoft.KeyVault(SecretUri=…)`` or
``@Microsoft.KeyVault(VaultName=…;SecretName=…)``). When App Service cannot resolve one (the identity's Key Vault
role not yet effective on a first deployment, a deleted or disabled secret, a network rule), it leaves the literal
reference text in the setting. That text must never be used: as TWILIO_AUTH_TOKEN or ACS_EVENTGRID_SECRET it would
become a guessable signing key, as RTJ_OUTBOUND_SECRET a guessable password. Every setting listed here that still
holds such a literal is therefore treated as unset; its name is kept in ``Settings.unresolved_secrets`` so the
endpoints that need it answer 503 naming it, and ``channel doctor`` can report it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from shared.log import log_event

# Every setting that carries a secret (the public setting names). Keep in step with shared/settings.py.
SECRET_SETTINGS: tuple[str, ...] = (
    "TWILIO_AUTH_TOKEN",
    "ACS_ACCESS_KEY",
    "ACS_EVENTGRID_SECRET",
    "RTJ_OUTBOUND_SECRET",
    "LOOPBACK_SIGNING_KEY",
    "DATAVERSE_STATIC_TOKEN",
    "ServiceBusConnection",
    "AzureWebJobsStorage",
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
)

# The key under which the validator hands the names to the Settings model (never an environment variable name).
UNRESOLVED_FIELD = "__unresolved_key_vault_references__"

_REFERENCE = re.compile(r"^\s*@Microsoft\.KeyVault\s*\(", re.IGNORECASE)


def is_key_vault_reference(value: object) -> bool:
    """True for the literal ``@Microsoft.KeyVault(...)`` text App Service leaves in a setting it could not resolve."""
    return isinstance(value, str) and bool(_REFERENCE.match(value))


def drop_unresolved_references(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the raw settings without unresolved secret references, with their names under UNRESOLVED_FIELD.

    Logs one warning per setting, naming it (never its value).
    """
    cleaned = dict(data)
    unresolved = tuple(name for name in SECRET_SETTINGS if is_key_vault_reference(cleaned.get(name)))
    for name in unresolved:
        del cleaned[name]
        log_event("settings.unresolved_key_vault_reference", logging.ERROR, setting=name)
    cleaned[UNRESOLVED_FIELD] = unresolved
    return cleaned
