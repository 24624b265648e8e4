"""Provider credentials: Twilio's account fetch (basic auth), the loopback gateway's key."""

from __future__ import annotations

import requests

from cli.doctor.results import CheckResult, ok, problem, skipped
from shared.settings import Settings


def check_provider(settings: Settings, session: requests.Session) -> CheckResult:
    if settings.channel_provider == "twilio":
        return check_twilio(settings, session)
    if settings.channel_provider == "loopback":
        return check_loopback(settings, session)
    if settings.channel_provider == "whatsapp":  # issue #17
        from cli.doctor.whatsapp import check_whatsapp

        return check_whatsapp(settings, session)
    return skipped(f"provider:{settings.channel_provider}", "no credential check for this provider")


def check_twilio(settings: Settings, session: requests.Session) -> CheckResult:
    name = "provider:twilio"
    sid = str(settings.twilio_account_sid)
    url = f"{settings.twilio_api_base_url}/2010-04-01/Accounts/{sid}.json"
    try:
        response = session.get(
            url, auth=(sid, str(settings.twilio_auth_token)), timeout=settings.provider_timeout_seconds
        )
    except requests.RequestException as exc:
        return problem(
            name, f"cannot reach {settings.twilio_api_base_url}: {exc.__class__.__name__}", "check TWILIO_API_BASE_URL"
        )
    if response.status_code in (401, 403):
        return problem(
            name,
            f"Twilio rejected TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN "
            f"(HTTP {response.status_code}{_twilio_code(response)})",
            "copy the Account SID and the current Auth Token from the Twilio console (a rotated token invalidates "
            "the old one; callbacks are signed with it too)",
        )
    if response.status_code == 404:
        return problem(name, f"account {sid} not found (HTTP 404)", "check TWILIO_ACCOUNT_SID and TWILIO_API_BASE_URL")
    if response.status_code >= 400:
        return problem(name, f"Twilio answered HTTP {response.status_code}{_twilio_code(response)}", "retry later")
    try:
        status = str(response.json().get("status", "")) or "unknown"
    except ValueError:
        return problem(name, "Twilio answered a non-JSON body", "check TWILIO_API_BASE_URL")
    if status != "active":
        return problem(name, f"Twilio account {sid} is {status}", "reactivate the account in the Twilio console")
    return ok(name, f"account {sid} is active")


def _twilio_code(response: requests.Response) -> str:
    try:
        code = response.json().get("code")
    except ValueError:
        return ""
    return f", Twilio error {code}" if code else ""


def check_loopback(settings: Settings, session: requests.Session) -> CheckResult:
    """The gateway answers an (invalid) empty message with 400 when the key is right, 401 when it isn't."""
    name = "provider:loopback"
    try:
        response = session.post(
            f"{settings.loopback_provider_url}/messages",
            json={},
            headers={"Authorization": f"Bearer {settings.loopback_signing_key}"},
            timeout=settings.provider_timeout_seconds,
        )
    except requests.RequestException as exc:
        return problem(
            name,
            f"loopback gateway unreachable at {settings.loopback_provider_url}: {exc.__class__.__name__}",
            "start the gateway (python -m devtools.emulators.loopback_provider) or fix LOOPBACK_PROVIDER_URL",
        )
    if response.status_code == 401:
        return problem(name, "the loopback gateway rejected LOOPBACK_SIGNING_KEY", "use the gateway's key")
    return ok(name, f"gateway reachable at {settings.loopback_provider_url}, key accepted")
