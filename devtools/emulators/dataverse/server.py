"""``DataverseEmulator``: the HTTP front (auth, service protection, OData headers, fault injection from the shared
base), the route table dispatch and the configuration API tests use. Handlers live in the sibling modules."""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote

from devtools.emulators._base import EmulatorBase, Incoming, Response
from devtools.emulators.dataverse import batch, customization, errors, metadata, rtj, timezones
from devtools.emulators.dataverse.actions import SIGNATURES
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.models import ActionParameter, Entity, Operation, Store, is_guid
from devtools.emulators.dataverse.reference import ReferenceTables
from devtools.emulators.dataverse.request import Call, method_not_allowed
from devtools.emulators.dataverse.strict import StrictValidator
from devtools.emulators.dataverse.urls import ANY, ROUTES
from shared.domain.models import ResponseType

API_VERSION = "v9.2"
API_PREFIX = f"/api/data/{API_VERSION}/"
API_PATH_RE = re.compile(r"^/api/data/v9\.[0-2]/(?P<rest>.*)$")
MAX_URL_LENGTH = 32_768
JSON_CT = "application/json; odata.metadata=minimal"


class DataverseEmulator(EmulatorBase):
    """Dataverse Web API emulator (``/api/data/v9.2``) on 127.0.0.1; writes are checked against Microsoft's
    published table metadata (``CHANNEL_REFERENCE_DATA``; ``ReferenceDataMissing`` when it is not there)."""

    server_name = "dataverse-emulator"

    def __init__(
        self,
        *,
        token: str = "dev-token",  # noqa: S107 - a fixed loopback test credential
        signature: str | Sequence[ActionParameter] = "customerjourney",
        host: str = "127.0.0.1",
        port: int = 0,
        user_id: str = "7d3e3c62-5c1a-4f0e-9d8b-1a2b3c4d5e6f",
        business_unit_id: str = "0b9f7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b",
        organization_id: str = "e1a2b3c4-d5e6-4f70-8192-a3b4c5d6e7f8",
        tenant_id: str = "72f988bf-0000-4000-8000-2d7cd011db47",
    ) -> None:
        self.token = token
        self.user_id = user_id
        self.business_unit_id = business_unit_id
        self.organization_id = organization_id
        self.tenant_id = tenant_id
        self.action_parameters: tuple[ActionParameter, ...] = ()
        self.signature_name = ""
        self.set_signature(signature)
        self.require_odata_headers = True
        self.upsert_on_patch = False
        self.verify_references = False
        self.channels_response_message = "Success"
        # The response-type ids the channel's tile declares (CreateInteraction's ResponseType must be one of them;
        # [INFERRED] error wording). Default: every id of the app's tile; None accepts anything.
        self.response_types: frozenset[str] | None = frozenset(t.value for t in ResponseType)
        reference = ReferenceTables()  # raises ReferenceDataMissing when the published metadata is not there
        self.store = Store(reference.column_names)
        self.strict = StrictValidator(reference, self.store)
        self.interactions: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.inbound: list[dict[str, Any]] = []
        self.operations: list[Operation] = []
        self.operation_count = 0
        self.batch_count = 0
        self.throttled_count = 0
        self.entity_definition_requests = 0
        self.entity_definition_lookups: list[str] = []
        self.published: list[dict[str, list[str]]] = []  # PublishXml calls: {"entities": [...], "webresources": [...]}
        self.relationships: list[dict[str, Any]] = []  # 1:N relationship metadata (RelationshipDefinitions)
        self.role_privileges: dict[str, dict[str, int]] = {}  # role id -> privilege id -> depth (0-3)
        self.user_roles: dict[str, set[str]] = {}  # systemuser id -> role ids (systemuserroles_association)
        self.polymorphic_lookups: set[tuple[str, str]] = set()  # (table, lookup column) accepting new targets
        self._limit_requests: int | None = None
        self._limit_window = 300.0
        self._limit_concurrent: int | None = None
        self._retry_after: float = 1.0
        self._window: deque[float] = deque()
        super().__init__(host=host, port=port)
        timezones.install(self)  # a system table every org has (read-only)

    # ------------------------------------------------------------------------------------------------ config
    def set_signature(self, signature: str | Sequence[ActionParameter]) -> None:
        """Select ``"customerjourney"``, ``"campaign"`` or a custom parameter list."""
        if isinstance(signature, str):
            if signature not in SIGNATURES:
                raise ValueError(f"unknown signature {signature!r}; use one of {sorted(SIGNATURES)}")
            self.signature_name = signature
            self.action_parameters = SIGNATURES[signature]
        else:
            self.signature_name = "custom"
            self.action_parameters = tuple(signature)

    def add_entity(self, logical_name: str, entity_set_name: str, primary_key: str | None = None) -> None:
        """Register a table; ``primary_key`` defaults to ``<logical_name>id``."""
        self.store.add_entity(logical_name, entity_set_name, primary_key or f"{logical_name}id")

    def add_columns(self, logical_name: str, columns: Iterable[str]) -> None:
        """Declare columns (beyond those seen in added rows) so $select accepts them."""
        with self.store.lock:
            self.store.entity(logical_name).columns.update(columns)

    def enable_customization(
        self,
        *,
        activity_entity: str = "msdyncrm_customerjourneycustomchannelactivity",
        root_business_unit: str = "contoso",
    ) -> None:
        """Serve the customization subset of the Web API used by ``channel provision``.

        Registers the system tables (publishers, solutions, solutioncomponents, webresourceset, serviceendpoints,
        sdkmessages, sdkmessagefilters, sdkmessageprocessingsteps, savedqueries, systemforms, businessunits,
        systemusers), seeds the ``Create`` message with a filter for ``activity_entity`` and the root business unit.
        ``POST EntityDefinitions``, ``…/Attributes``, ``PublishXml`` and the ``MSCRM.SolutionUniqueName`` header
        work whether or not this was called; the tables they need are registered here.
        """
        with self.store.lock:
            customization.install(self, activity_entity, root_business_unit)

    def enable_rtj(self, *, roles: Iterable[str] = rtj.RTJ_ROLES) -> None:
        """Serve the real-time journeys subset used by ``channel provision --rtj`` (implies customization).

        Registers customapis (with deep insert of ``CustomAPIRequestParameters`` / ``CustomAPIResponseProperties``),
        plugintypes, environmentvariabledefinitions/values, the base solution's msdyn_channeldefinitions,
        msdyn_channelmessageparts, msdyn_channelinstances and msdyn_channelinstanceaccounts (whose polymorphic
        ``msdyn_extendedentityid`` accepts new targets through ``POST RelationshipDefinitions``), roles in the root
        business unit and privileges; ``RetrieveRolePrivilegesRole`` and ``roles(<id>)/AddPrivilegesRole``.
        """
        with self.store.lock:
            if "solution" not in self.store.entities:
                self.enable_customization()
            rtj.install(self, roles)

    def add_plugin_type(self, typename: str, id: str | None = None, *, assembly: str = "ChannelRelay") -> str:
        """Register a plug-in type and its assembly (as registering the assembly would). Returns the type's id."""
        key = id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/plugintype/{typename}"))
        assembly_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/pluginassembly/{assembly}"))
        if assembly_id not in self.rows("pluginassembly"):
            self.add_row("pluginassembly", assembly_id, {"name": assembly, "_managedidentityid_value": None})
        return self.add_row(
            "plugintype",
            key,
            {"typename": typename, "name": typename, "friendlyname": typename, "_pluginassemblyid_value": assembly_id},
        )

    def role_id(self, name: str) -> str:
        """The id of the root business unit's role with this name."""
        with self.store.lock:
            return next(k for k, r in self.store.entity("role").rows.items() if r.get("name") == name)

    def set_attribute_type(self, logical_name: str, column: str, attribute_type: str) -> None:
        """Declare a column's ``AttributeType`` (as ``EntityDefinitions(...)/Attributes(...)`` reports it)."""
        with self.store.lock:
            ent = self.store.entity(logical_name)
            ent.columns.add(column)
            ent.attribute_types[column] = attribute_type

    def solution_components(self, solution_unique_name: str) -> list[tuple[int, str]]:
        """(componenttype, objectid) of the components added to a solution."""
        with self.store.lock:
            solutions = self.store.entities.get("solution")
            components = self.store.entities.get("solutioncomponent")
            if solutions is None or components is None:
                return []
            ids = {k for k, r in solutions.rows.items() if r.get("uniquename") == solution_unique_name}
            return [
                (int(r["componenttype"]), str(r["objectid"]))
                for r in components.rows.values()
                if r.get("_solutionid_value") in ids
            ]

    def add_row(
        self,
        logical_name: str,
        id: str,
        values: dict[str, Any] | None = None,
        *,
        formatted: dict[str, str] | None = None,
    ) -> str:
        """Insert or replace a row (test set-up: not validated); lookups go in as ``_x_value`` keys. Returns the id."""
        if not is_guid(id):
            raise ValueError(f"row id must be a GUID: {id!r}")
        key = id.lower()
        with self.store.lock:
            ent = self.store.entity(logical_name)
            row = dict(values or {})
            row.pop(ent.primary_key, None)
            ent.columns.update(row)
            self.store.put(ent, key, row, formatted)
        return key

    def get_row(self, logical_name: str, id: str) -> dict[str, Any] | None:
        """Copy of a stored row (without the primary key), or None."""
        with self.store.lock:
            row = self.store.entity(logical_name).rows.get(id.lower())
            return copy.deepcopy(row) if row is not None else None

    def rows(self, logical_name: str) -> dict[str, dict[str, Any]]:
        with self.store.lock:
            return copy.deepcopy(self.store.entity(logical_name).rows)

    def limit(
        self,
        requests_per_window: int | None = None,
        window_seconds: float = 300.0,
        max_concurrent: int | None = None,
        retry_after: float = 1.0,
    ) -> None:
        """Enable scaled-down service protection limits (None disables a limit)."""
        with self._log_lock:
            self._limit_requests = requests_per_window
            self._limit_window = window_seconds
            self._limit_concurrent = max_concurrent
            self._retry_after = retry_after
            self._window.clear()

    def unlimit(self) -> None:
        self.limit(None, 300.0, None)

    def reset(self) -> None:
        """Clear logs, counters, faults, latency and the limiter window; keep data and limits."""
        super().reset()
        with self._log_lock:
            self._window.clear()
            self.throttled_count = 0
        with self.store.lock:
            self.interactions.clear()
            self.notifications.clear()
            self.inbound.clear()
            self.operations.clear()
            self.operation_count = 0
            self.batch_count = 0
            self.entity_definition_requests = 0
            self.entity_definition_lookups.clear()
            self.published.clear()

    def inject_error(
        self,
        method: str,
        path_regex: str,
        *,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        delay: float = 0.0,
    ) -> None:
        """Inject a Dataverse-shaped error (``{"error":{"code","message"}}``)."""
        hdrs = {"OData-Version": "4.0", "Content-Type": JSON_CT, **(headers or {})}
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self.inject(method, path_regex, status=status, body=body, headers=hdrs, times=times, delay=delay)

    def metadata_xml(self) -> str:
        """A minimal CSDL document with the entity types and the channel actions."""
        return metadata.metadata_xml(self)

    # ------------------------------------------------------------------------------------------------ responses
    @property
    def api_url(self) -> str:
        return f"{self.url}/api/data/{API_VERSION}"

    def entity_id_url(self, ent: Entity, key: str) -> str:
        return f"{self.api_url}/{ent.entity_set_name}({key})"

    def base_headers(self) -> list[tuple[str, str]]:
        return [("OData-Version", "4.0"), ("REQ_ID", str(uuid.uuid4()))]

    def json_response(self, status: int, obj: Any, extra: Sequence[tuple[str, str]] = ()) -> Response:
        headers = [*self.base_headers(), ("Content-Type", JSON_CT), *extra]
        return Response(status, json.dumps(obj).encode("utf-8"), headers)

    def no_content(self, extra: Sequence[tuple[str, str]] = ()) -> Response:
        return Response(204, b"", self.base_headers() + list(extra))

    def error_response(self, status: int, code: str, message: str, extra: Sequence[tuple[str, str]] = ()) -> Response:
        return self.json_response(status, {"error": {"code": code, "message": message}}, extra)

    # ------------------------------------------------------------------------------------------------ front door
    def _route(self, request: Incoming) -> Response:
        try:
            return self._front_door(request)
        except DataverseError as exc:
            return self.error_response(exc.status, exc.code, exc.message, exc.headers)

    def _front_door(self, request: Incoming) -> Response:
        if len(self.url) + len(request.target) > MAX_URL_LENGTH:
            raise DataverseError(
                414,
                errors.BAD_URI,
                f"The request URL is too long. The maximum URL length is {MAX_URL_LENGTH} characters; "
                "send long queries inside a $batch request.",
            )
        if not self._authorized(request.header("authorization")):
            challenge = (
                f"Bearer authorization_uri=https://login.microsoftonline.com/{self.tenant_id}/oauth2/authorize, "
                f"resource_id={self.url}/"
            )
            return Response(401, b"", [("WWW-Authenticate", challenge)])
        self._check_limits(request.concurrency)
        match = API_PATH_RE.match(request.path)
        if not match:
            raise DataverseError(404, errors.BAD_URI, f"Resource not found for the segment '{request.path}'.")
        resource = unquote(match.group("rest"))
        if self.require_odata_headers:
            self._check_headers(request, resource)
        if resource == "$batch":
            if request.method != "POST":
                raise method_not_allowed(request.method)
            with self.store.lock:
                self.batch_count += 1
                return batch.execute_batch(self, request)
        with self.store.lock:
            return self.run_operation(
                request.method, resource, request.query_string, request.headers, request.body, in_batch=False
            )

    def _authorized(self, value: str) -> bool:
        scheme, _, credential = value.partition(" ")
        return scheme.lower() == "bearer" and credential.strip() == self.token and bool(self.token)

    def _check_limits(self, concurrency: int) -> None:
        with self._log_lock:
            retry = self._retry_after
            retry_after = [("Retry-After", str(int(retry)) if float(retry).is_integer() else f"{retry:g}")]
            if self._limit_concurrent is not None and concurrency > self._limit_concurrent:
                self.throttled_count += 1
                raise DataverseError(
                    429,
                    errors.THROTTLE_CONCURRENCY,
                    f"Number of concurrent requests exceeded the limit of {self._limit_concurrent}.",
                    retry_after,
                )
            if self._limit_requests is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= self._limit_window:
                    self._window.popleft()
                if len(self._window) >= self._limit_requests:
                    self.throttled_count += 1
                    raise DataverseError(
                        429,
                        errors.THROTTLE_REQUESTS,
                        f"Number of requests exceeded the limit of {self._limit_requests} over time window "
                        f"of {self._limit_window:g} seconds.",
                        retry_after,
                    )
                self._window.append(now)

    def _check_headers(self, request: Incoming, resource: str) -> None:
        missing = [name for name in ("OData-MaxVersion", "OData-Version") if request.header(name).strip() != "4.0"]
        if missing:
            raise DataverseError(
                400,
                errors.ODATA,
                "The request must carry the headers 'OData-MaxVersion: 4.0' and 'OData-Version: 4.0' "
                f"(missing or wrong: {', '.join(missing)}).",
            )
        accept = request.header("accept").lower()
        if resource == "$metadata":
            ok = any(t in accept for t in ("application/xml", "application/json", "*/*")) or not accept
        else:
            ok = "application/json" in accept
        if not ok:
            raise DataverseError(
                400,
                errors.ODATA,
                "The request must carry 'Accept: application/json'. "
                f"A supported MIME type could not be found that matches the acceptable MIME types "
                f"for the request. The supported type(s) 'application/json' do not match the "
                f"acceptable type(s) '{request.header('accept')}'.",
            )
        if request.body and request.method in ("POST", "PATCH", "PUT"):
            ctype = request.header("content-type").lower()
            wanted = "multipart/mixed" if resource == "$batch" else "application/json"
            if not ctype.startswith(wanted):
                raise DataverseError(
                    415,
                    errors.ODATA,
                    f"The content type '{request.header('content-type')}' is not supported; use '{wanted}'.",
                )

    # ------------------------------------------------------------------------------------------------ operations
    def run_operation(
        self, method: str, resource: str, query_string: str, headers: dict[str, str], body: bytes, *, in_batch: bool
    ) -> Response:
        """Run one operation through the route table (a plain request or one part of a $batch) and log it."""
        self.operation_count += 1
        query = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        call = Call(method, resource, query, headers, body, in_batch)
        try:
            response = self._dispatch(call)
        except DataverseError as exc:
            response = self.error_response(exc.status, exc.code, exc.message, exc.headers)
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                parsed = None
        self.operations.append(Operation(method, resource, query_string, parsed, response.status, in_batch))
        return response

    def _dispatch(self, call: Call) -> Response:
        timezones.refuse_writes(call.method, call.resource)  # read-only system data
        for route in ROUTES:
            match = route.pattern.match(call.resource)
            if match is None or not route.when(match):
                continue
            handler = route.handlers.get(call.method) or route.handlers.get(ANY)
            if handler is None:
                raise method_not_allowed(call.method)
            return handler(self, call, match)
        segment = call.resource.split("/", 1)[0]
        raise DataverseError(404, errors.BAD_URI, f"Resource not found for the segment '{segment}'.")
