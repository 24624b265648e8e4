"""Loopback emulator of the Dataverse Web API subset this project uses (package in the getmoto/moto shape).

Serves ``/api/data/v9.2/...`` on 127.0.0.1 (see ``DataverseEmulator``). Wire formats follow the Dataverse Web API
documentation (headers, error bodies, service protection, ``$batch``, ``Microsoft.Dynamics.CRM.In``); creates and
updates are checked against Microsoft's published table metadata (``strict``). Stdlib only.

Modules: ``server`` (front door, configuration API, dispatch), ``urls`` (route table), ``models`` (store),
``odata`` (query options, ``$filter``/``In``), ``tables`` (row CRUD, deep insert), ``metadata`` (``$metadata``,
EntityDefinitions), ``customization`` / ``relationships`` (provisioning's API), ``rtj`` (real-time journeys),
``actions`` (WhoAmI and the channel actions), ``batch`` (``$batch``), ``rules`` (row business rules),
``reference`` / ``strict`` (Microsoft's metadata and the checks), ``errors``, ``seed`` (demo data).

Run ``python -m devtools.emulators.dataverse --port 0 --seed demo`` to serve a seeded demo org.
"""

from __future__ import annotations

from devtools.emulators.dataverse.actions import SIGNATURES
from devtools.emulators.dataverse.customization import SDK_MESSAGE_CREATE_ID
from devtools.emulators.dataverse.models import ActionParameter, Operation
from devtools.emulators.dataverse.seed import seed_demo
from devtools.emulators.dataverse.server import DataverseEmulator

__all__ = [
    "SDK_MESSAGE_CREATE_ID",
    "SIGNATURES",
    "ActionParameter",
    "DataverseEmulator",
    "Operation",
    "seed_demo",
]
