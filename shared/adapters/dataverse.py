"""The one Dataverse Web API client shared by every function (and the CLI).

- OData headers on every request; bearer token from :mod:`shared.adapters.tokens`; one pooled ``requests.Session``.
- 429: waits ``Retry-After`` (service protection); 5xx / timeouts / connection errors: bounded exponential backoff;
  401: one token refresh. When the wait budget is spent it raises :class:`TransientError` so the caller can
  reschedule instead of holding a Functions worker.
- Any other error surfaces Dataverse's own error code and message (:class:`DataverseError` / :class:`NotFound`).
- Entity set names and rows the caller marks cacheable are cached per process.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import requests

from shared.domain.errors import DataverseError, NotFound, TransientError
from shared.domain.models import ActivityRef, Interaction, ResponseType
from shared.log import log_event, scrub

ACTION = "msdyncrm_CustomChannelActivityCreateInteraction"
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
BASE_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "If-None-Match": "null",
}


class Tokens(Protocol):
    def token(self, *, force_refresh: bool = False) -> str: ...


def _entity_ref(logical_name: str, key: str, row_id: str) -> dict[str, str]:
    return {"@odata.type": f"Microsoft.Dynamics.CRM.{logical_name}", key: row_id}


def interaction_body(activity: ActivityRef, interaction: Interaction, signature: str) -> dict[str, Any]:
    """Parameters of ``msdyncrm_CustomChannelActivityCreateInteraction``.

    ``customerjourney`` follows the current developer guide; ``campaign`` follows the older generated Web API
    reference (``Campaign`` + ``WorkflowId`` instead of ``CustomerJourney``). ``doctor`` reads the org's
    ``$metadata`` to tell which one an org has.
    """
    body: dict[str, Any] = {"ActivityId": activity.activity_id}
    if signature == "campaign":
        body["Campaign"] = _entity_ref("campaign", "campaignid", activity.journey_id)
        body["WorkflowId"] = activity.journey_id
    else:
        body["CustomerJourney"] = _entity_ref(
            "msdyncrm_customerjourney", "msdyncrm_customerjourneyid", activity.journey_id
        )
    body["CustomerJourneyIteration"] = _entity_ref(
        "msdyncrm_customerjourneyiteration", "msdyncrm_customerjourneyiterationid", activity.iteration_id
    )
    body["Contact"] = _entity_ref("contact", "contactid", activity.contact_id)
    body["EntityType"] = activity.entity_type
    body["EntityId"] = activity.entity_id
    body["ResponseType"] = interaction.response_type.value
    if interaction.response_type is ResponseType.KEYWORD:
        body["TriggerKeyword"] = interaction.keyword or ""
    return body


class _LruTtlCache:
    def __init__(self, max_items: int, ttl_seconds: float) -> None:
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._max = max_items
        self._ttl = ttl_seconds
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] < time.monotonic():
                self._items.pop(key, None)
                return None
            self._items.move_to_end(key)
            return found[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + self._ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)


class DataverseClient:
    def __init__(
        self,
        base_url: str,
        tokens: Tokens,
        *,
        session: requests.Session | None = None,
        timeout: float = 20.0,
        max_retries: int = 4,
        max_wait_seconds: float = 30.0,
        signature: str = "customerjourney",
        sleep: Callable[[float], None] = time.sleep,
        row_cache_ttl: float = 300.0,
    ) -> None:
        self.api = f"{base_url.rstrip('/')}/api/data/v9.2"
        self._tokens = tokens
        self._session = session or requests.Session()
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_wait = max_wait_seconds
        self._signature = signature
        self._sleep = sleep
        self._set_names: dict[str, str] = {}
        self._set_lock = threading.Lock()
        self._row_cache = _LruTtlCache(256, row_cache_ttl)
        self._organization_id: str | None = None
        self.request_count = 0

    # --- transport -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = f"{self.api}/{path.lstrip('/')}"
        waited = 0.0
        refreshed = False
        attempt = 0
        while True:
            all_headers = {**BASE_HEADERS, "Authorization": f"Bearer {self._tokens.token()}", **(headers or {})}
            data = None
            if body is not None:
                all_headers["Content-Type"] = "application/json; charset=utf-8"
                data = json.dumps(body, separators=(",", ":")).encode()
            self.request_count += 1
            try:
                response = self._session.request(
                    method, url, params=params, data=data, headers=all_headers, timeout=self._timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                delay = self._backoff(attempt)
                if attempt >= self._max_retries or waited + delay > self._max_wait:
                    raise TransientError(f"Dataverse {operation}: {exc.__class__.__name__}") from None
                log_event("dataverse.retry", 30, operation=operation, reason=exc.__class__.__name__)
                self._sleep(delay)
                waited += delay
                attempt += 1
                continue

            status = response.status_code
            if status < 400:
                return response
            if status == 401 and not refreshed:
                self._tokens.token(force_refresh=True)
                refreshed = True
                continue
            if status == 429 or status in RETRYABLE_STATUS:
                retry_after = _retry_after(response)
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                if attempt >= self._max_retries or waited + delay > self._max_wait:
                    code, message = _error_of(response)
                    raise TransientError(
                        f"Dataverse {operation}: HTTP {status} {code} {message}".strip(), retry_after=delay
                    )
                log_event("dataverse.retry", 30, operation=operation, status=status, wait_seconds=round(delay, 2))
                self._sleep(delay)
                waited += delay
                attempt += 1
                continue
            code, message = _error_of(response)
            error_type = NotFound if status == 404 else DataverseError
            raise error_type(status, code, message, operation)

    def _backoff(self, attempt: int) -> float:
        return float(min(0.5 * (2**attempt), 8.0) * (0.5 + random.random() / 2))  # noqa: S311 - jitter

    # --- metadata and rows -----------------------------------------------------------------------
    def entity_set_name(self, logical_name: str) -> str:
        with self._set_lock:
            cached = self._set_names.get(logical_name)
        if cached:
            return cached
        response = self.request(
            "GET",
            f"EntityDefinitions(LogicalName='{quote(logical_name)}')",
            params={"$select": "EntitySetName"},
            operation="metadata",
        )
        name = str(response.json()["EntitySetName"])
        with self._set_lock:
            self._set_names[logical_name] = name
        return name

    def get_row(
        self,
        logical_name: str,
        row_id: str,
        columns: list[str],
        *,
        formatted: bool = False,
        cache: bool = False,
    ) -> dict[str, Any]:
        key = (logical_name, row_id, tuple(columns), formatted)
        if cache:
            hit = self._row_cache.get(key)
            if hit is not None:
                return dict(hit)
        entity_set = self.entity_set_name(logical_name)
        headers = (
            {"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'} if formatted else None
        )
        response = self.request(
            "GET",
            f"{entity_set}({row_id})",
            params={"$select": ",".join(columns)},
            headers=headers,
            operation=f"read {logical_name}",
        )
        row: dict[str, Any] = response.json()
        if cache:
            self._row_cache.put(key, dict(row))
        return row

    def update_row(self, logical_name: str, row_id: str, values: Mapping[str, Any]) -> None:
        entity_set = self.entity_set_name(logical_name)
        self.request(
            "PATCH",
            f"{entity_set}({row_id})",
            body=dict(values),
            headers={"If-Match": "*"},  # update only: never create a contact by accident
            operation=f"update {logical_name}",
        )

    def create_interaction(self, activity: ActivityRef, interaction: Interaction) -> None:
        self.request(
            "POST",
            ACTION,
            body=interaction_body(activity, interaction, self._signature),
            operation=f"CreateInteraction {interaction.response_type.value}",
        )

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "WhoAmI", operation="WhoAmI").json()
        return result

    def organization_id(self) -> str:
        """The org's id from ``WhoAmI``, cached for the process (real-time journeys payloads need it)."""
        if self._organization_id is None:
            self._organization_id = str(self.whoami()["OrganizationId"])
        return self._organization_id

    def channels_notification(self, payload: Mapping[str, Any]) -> None:
        """Real-time journeys delivery report: ``msdyn_D365ChannelsNotification`` with ``notificationPayLoad``."""
        self.request(
            "POST",
            "msdyn_D365ChannelsNotification",
            body={"notificationPayLoad": json.dumps(dict(payload), separators=(",", ":"))},
            operation=f"D365ChannelsNotification {payload.get('Status')}",
        )

    def channels_inbound(self, payload: Mapping[str, Any]) -> None:
        """Real-time journeys inbound message: ``msdyn_D365ChannelsInbound`` with ``inboundPayLoad``."""
        self.request(
            "POST",
            "msdyn_D365ChannelsInbound",
            body={"inboundPayLoad": json.dumps(dict(payload), separators=(",", ":"))},
            operation="D365ChannelsInbound",
        )


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_of(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), scrub(str(error.get("message", "")))[:500]
    except ValueError:
        return "", scrub(response.text[:200])
