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
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

import requests

from shared.adapters.cache import LruTtlCache
from shared.adapters.odata import (
    RETRYABLE_STATUS,
    BatchOperation,
    BatchResult,
    build_batch,
    error_of,
    in_filter,
    parse_batch_response,
    retry_after_of,
)
from shared.adapters.pacing import Pacer, throttled
from shared.domain.errors import DataverseError, NotFound, TransientError
from shared.domain.models import ActivityRef, Interaction, ResponseType
from shared.log import log_event
from shared.urls import WEB_API_PATH

ACTION = "msdyncrm_CustomChannelActivityCreateInteraction"
# A call, with all its retries, timeouts and waits, ends within this; the reporting lease outlasts it (2.5x), so
# no other worker can take over an interaction while a call for it may still be in flight.
CALL_DEADLINE_SECONDS = 60.0
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


class DataverseClient:
    def __init__(
        self,
        base_url: str,
        tokens: Tokens,
        *,
        session: requests.Session | None = None,
        timeout: float = 20.0,
        max_retries: int = 4,
        max_wait_seconds: float = CALL_DEADLINE_SECONDS,
        signature: str = "customerjourney",
        sleep: Callable[[float], None] = time.sleep,
        row_cache_ttl: float = 300.0,
        pacer: Pacer | None = None,
        batch_size: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = f"{base_url.rstrip('/')}{WEB_API_PATH}"
        self._tokens = tokens
        self._session = session or requests.Session()
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_wait = max_wait_seconds  # a whole call (attempts, timeouts and waits) ends within this
        self._clock = clock
        self._signature = signature
        self._sleep = sleep
        self._set_names: dict[str, str] = {}
        self._set_lock = threading.Lock()
        self._row_cache = LruTtlCache(256, row_cache_ttl)
        self._organization_id: str | None = None
        self.pacer = pacer or Pacer()
        self.batch_size = batch_size
        self.request_count = 0
        self.throttled_count = 0
        self.operation_count = 0

    # --- transport -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = f"{self.api}/{path.lstrip('/')}"
        deadline = self._clock() + self._max_wait
        refreshed = False
        attempt = 0
        while True:
            all_headers = {**BASE_HEADERS, "Authorization": f"Bearer {self._tokens.token()}", **(headers or {})}
            data = raw
            if body is not None:
                all_headers["Content-Type"] = "application/json; charset=utf-8"
                data = json.dumps(body, separators=(",", ":")).encode()
            self.request_count += 1
            if path != "$batch":
                self.operation_count += 1
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise TransientError(f"Dataverse {operation}: out of time ({self._max_wait:.0f} s per call)")
            try:
                with self.pacer.slot():
                    response = self._session.request(
                        method,
                        url,
                        params=params,
                        data=data,
                        headers=all_headers,
                        timeout=min(self._timeout, remaining),
                    )
            except (requests.ConnectionError, requests.Timeout) as exc:
                delay = self._backoff(attempt)
                if attempt >= self._max_retries or self._clock() + delay >= deadline:
                    raise TransientError(f"Dataverse {operation}: {exc.__class__.__name__}") from None
                log_event("dataverse.retry", logging.WARNING, operation=operation, reason=exc.__class__.__name__)
                self._sleep(delay)
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
                retry_after = retry_after_of(response)
                if status == 429:
                    self.throttled_count += 1
                    self.pacer.pause(retry_after if retry_after is not None else 1.0)
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                hold = self.pacer.hold_limit
                if status == 429 and hold is not None and (delay > hold or attempt > 0):
                    # multi-org: one short wait at most, then the org's work is deferred; the others go on
                    log_event("dataverse.throttled", wait_seconds=round(delay, 2), reason="retry_after")
                    raise throttled(delay, f"Dataverse {operation}: HTTP 429, Retry-After {delay:.0f} s")
                if attempt >= self._max_retries or self._clock() + delay >= deadline:
                    code, message = error_of(response)
                    raise TransientError(
                        f"Dataverse {operation}: HTTP {status} {code} {message}".strip(), retry_after=delay
                    )
                wait = round(delay, 2)
                log_event("dataverse.retry", logging.WARNING, operation=operation, status=status, wait_seconds=wait)
                self._sleep(delay)
                attempt += 1
                continue
            code, message = error_of(response)
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

    # --- batching --------------------------------------------------------------------------------
    def execute_batch(self, operations: Sequence[BatchOperation], *, operation: str) -> list[BatchResult]:
        """Run operations in ``$batch`` requests of at most ``batch_size`` (continue-on-error); results in order."""
        results: list[BatchResult] = []
        for start in range(0, len(operations), max(1, self.batch_size)):
            chunk = operations[start : start + self.batch_size]
            boundary = f"batch_{uuid.uuid4()}"
            response = self.request(
                "POST",
                "$batch",
                raw=build_batch(WEB_API_PATH, chunk, boundary),
                headers={
                    "Content-Type": f"multipart/mixed; boundary={boundary}",
                    "Prefer": "odata.continue-on-error",
                },
                operation=f"$batch {operation}",
            )
            self.operation_count += len(chunk)
            parsed = parse_batch_response(response.headers.get("Content-Type", ""), response.content)
            parsed += [BatchResult(0, None, "", "not executed")] * (len(chunk) - len(parsed))
            results.extend(parsed[: len(chunk)])
        return results

    def create_interactions(self, calls: Sequence[tuple[ActivityRef, Interaction]]) -> list[Exception | None]:
        """Report many interactions with ``$batch``; an operation that failed transiently is retried alone.

        Returns, per call, None (accepted) or the error (``TransientError`` / ``DataverseError``). Operations that
        succeeded are never sent again, so a partial failure duplicates nothing.
        """
        if len(calls) == 1:
            try:
                self.create_interaction(*calls[0])
            except (TransientError, DataverseError) as error:
                return [error]
            return [None]
        operations = [
            BatchOperation("POST", ACTION, interaction_body(activity, interaction, self._signature))
            for activity, interaction in calls
        ]
        try:
            batch_results = self.execute_batch(operations, operation=ACTION)
        except (TransientError, DataverseError) as error:  # the $batch request itself failed: nothing ran
            return [error] * len(calls)
        outcome: list[Exception | None] = []
        for (activity, interaction), result in zip(calls, batch_results, strict=True):
            if result.ok:
                outcome.append(None)
            elif result.retryable:
                try:
                    self.create_interaction(activity, interaction)
                    outcome.append(None)
                except (TransientError, DataverseError) as error:
                    outcome.append(error)
            else:
                outcome.append(
                    DataverseError(
                        result.status,
                        result.code,
                        result.message,
                        f"CreateInteraction {interaction.response_type.value}",
                    )
                )
        return outcome

    def get_rows_in(
        self,
        logical_name: str,
        key_column: str,
        ids: Sequence[str],
        columns: list[str],
        *,
        formatted: bool = False,
        chunk_size: int = 100,
    ) -> dict[str, dict[str, Any]]:
        """Read many rows by id with ``Microsoft.Dynamics.CRM.In`` (100 GUIDs ≈ 4 KB of URL, far below 32 KB)."""
        entity_set = self.entity_set_name(logical_name)
        unique = list(dict.fromkeys(i.lower() for i in ids))
        select = ",".join(dict.fromkeys([key_column, *columns]))
        headers = (
            {"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'} if formatted else None
        )
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(unique), chunk_size):
            chunk = unique[start : start + chunk_size]
            response = self.request(
                "GET",
                entity_set,
                params={"$select": select, "$filter": in_filter(key_column, chunk)},
                headers=headers,
                operation=f"read {logical_name} x{len(chunk)}",
            )
            for row in response.json().get("value", []):
                rows[str(row.get(key_column, "")).lower()] = row
        return rows

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
