"""``channel doctor`` for WhatsApp (issue #17): the Cloud API credentials and the template columns.

* ``provider:whatsapp``: ``GET {WHATSAPP_API_BASE_URL}/{WHATSAPP_PHONE_NUMBER_ID}`` with the access token (the phone
  number's display number and verified name); 190 / 401 → the token, 100 → the phone number id.
* ``message-template-column`` …: each template column that is set exists on the message table and is a text column.
"""

from __future__ import annotations

import requests

from cli.doctor.dataverse_checks import TEXT_TYPES, ColumnCheck, Table
from cli.doctor.results import CheckResult, ok, problem
from shared.adapters.dataverse import DataverseClient
from shared.log import mask_phone
from shared.settings import Settings

TEMPLATE_CHECKS = (
    (ColumnCheck("message-template-column", "MESSAGE_TEMPLATE_COLUMN", TEXT_TYPES, "text"), "message_template_column"),
    (
        ColumnCheck("message-template-language-column", "MESSAGE_TEMPLATE_LANGUAGE_COLUMN", TEXT_TYPES, "text"),
        "message_template_language_column",
    ),
    (
        ColumnCheck("message-template-variables-column", "MESSAGE_TEMPLATE_VARIABLES_COLUMN", TEXT_TYPES, "text"),
        "message_template_variables_column",
    ),
    (ColumnCheck("message-media-column", "MESSAGE_MEDIA_COLUMN", TEXT_TYPES, "text"), "message_media_column"),
)


def check_template_columns(client: DataverseClient, table: Table, settings: Settings) -> list[CheckResult]:
    """One check per template column setting that is set (none: nothing to check)."""
    results = []
    for check, field in TEMPLATE_CHECKS:
        column = getattr(settings, field)
        if column:
            results.append(check.run(client, table, column))
    return results


def check_whatsapp(settings: Settings, session: requests.Session) -> CheckResult:
    name = "provider:whatsapp"
    base = settings.whatsapp_api_base_url
    phone_id = str(settings.whatsapp_phone_number_id)
    try:
        response = session.get(
            f"{base}/{phone_id}",
            params={"fields": "display_phone_number,verified_name"},
            headers={"Authorization": f"Bearer {settings.whatsapp_access_token}"},
            timeout=settings.provider_timeout_seconds,
        )
    except requests.RequestException as exc:
        return problem(name, f"cannot reach {base}: {exc.__class__.__name__}", "check WHATSAPP_API_BASE_URL")
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    body: dict[str, object] = parsed if isinstance(parsed, dict) else {}
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    if response.status_code == 401 or code == 190:
        return problem(
            name,
            f"Meta rejected WHATSAPP_ACCESS_TOKEN (HTTP {response.status_code}, code {code})",
            "generate a system user token with whatsapp_business_messaging (Business Settings → System users); a "
            "temporary token from the API Setup page expires within a day",
        )
    if response.status_code >= 400:
        return problem(
            name,
            f"phone number {phone_id} not readable (HTTP {response.status_code}, code {code})",
            "check WHATSAPP_PHONE_NUMBER_ID (WhatsApp Manager → Phone numbers) and that the token's system user has "
            "the WhatsApp Business Account",
        )
    number = mask_phone(str(body.get("display_phone_number", "")).replace(" ", "").replace("-", ""))
    return ok(name, f"phone number {phone_id} ({number}, {body.get('verified_name', 'no verified name')}) readable")
