"""Loopback emulator of the Dataverse Web API subset this project uses (package in the getmoto/moto shape).

Serves ``/api/data/v9.2/...`` on 127.0.0.1 (see ``DataverseEmulator``). Wire formats follow the Dataverse Web API
documentation (headers, error bodies, service protection, ``$batch``, ``Microsoft.Dynamics.CRM.In``); creates and
updates are checked against Microsoft's published table metadata (``strict``). Stdlib only.

Modules: ``server`` (front door, configuration API, dispatch), ``urls`` (route table), ``models`` (store),
``odata`` (query options, ``$filter``/``In``), ``tables`` (row CRUD, deep insert), ``metadata`` (``$metadata``,
EntityDefinitions), ``customization`` / ``relationships`` (provisioning's API), ``rtj`` (real-time journeys),
``actions`` (WhoAmI and the channel actions), ``batch`` (``$batch``), ``rules`` (row business rules),
``reference`` / ``strict`` (Microsoft's metadata and the checks), ``errors``, ``seed`` (demo data).

Extending it: a new resource is a ``Route`` in ``urls.ROUTES``; a new unbound action is a handler in
``actions.UNBOUND_ACTIONS`` (and its CSDL lines in ``metadata.metadata_xml``); a new table (e.g. ``managedidentity``)
is an entry in ``rtj.RTJ_TABLES`` / ``customization.SYSTEM_TABLES`` (entity set, key, columns), its navigation
properties in the matching ``…NAVIGATIONS`` map and any business rule in ``rules.validate_row``. Metadata checks
apply by themselves when the reference data has the table.

Run ``python -m devtools.emulators.dataverse --port 0 --seed demo`` to serve a seeded demo org.
"""

from __future__ import annotations

from devtools.emulators.dataverse.actions import SIGNATURES
from devtools.emulators.dataverse.customization import COMPONENT_TYPES, SDK_MESSAGE_CREATE_ID
from devtools.emulators.dataverse.metadata import INBOUND_ACTION, INTERACTION_ACTION, NOTIFICATION_ACTION
from devtools.emulators.dataverse.models import ActionParameter, Operation
from devtools.emulators.dataverse.rtj import ENV_VAR_SECRET, ENV_VAR_TYPES, RTJ_ROLES
from devtools.emulators.dataverse.seed import seed_demo
from devtools.emulators.dataverse.server import API_VERSION, JSON_CT, DataverseEmulator

__all__ = [
    "API_VERSION",
    "COMPONENT_TYPES",
    "ENV_VAR_SECRET",
    "ENV_VAR_TYPES",
    "INBOUND_ACTION",
    "INTERACTION_ACTION",
    "JSON_CT",
    "NOTIFICATION_ACTION",
    "RTJ_ROLES",
    "SDK_MESSAGE_CREATE_ID",
    "SIGNATURES",
    "ActionParameter",
    "DataverseEmulator",
    "Operation",
    "seed_demo",
]
