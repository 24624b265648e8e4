"""Where Microsoft's published reference data lives, for the strict emulator and the offline infra checks.

The data (ARM resource type definitions from Azure/bicep-types-az, Dataverse table metadata extracted from
Microsoft's generated table references) is read in place and never copied into this repository. Point
``CHANNEL_REFERENCE_DATA`` at a folder laid out like ``../shared/reference-data`` beside the checkout:

- ``<dir>/bicep-types/types/<provider>/<namespace>/<api-version>/types.json`` (Azure/bicep-types-az ``generated/``)
- ``<dir>/dataverse-metadata/tables/<logical name>.json``

``CHANNEL_BICEP_TYPES`` and ``CHANNEL_DATAVERSE_METADATA`` override each half on its own (e.g. a partner's own
checkout of Azure/bicep-types-az ``generated/``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared" / "reference-data"

ENV_ROOT = "CHANNEL_REFERENCE_DATA"
ENV_BICEP_TYPES = "CHANNEL_BICEP_TYPES"
ENV_DATAVERSE_METADATA = "CHANNEL_DATAVERSE_METADATA"


class ReferenceDataMissing(RuntimeError):
    """The reference data is not where the settings say; the message says how to point at it."""


def _root() -> Path:
    return Path(os.environ.get(ENV_ROOT) or DEFAULT)


def _located(override_env: str, relative: str, what: str) -> Path:
    override = os.environ.get(override_env)
    path = Path(override) if override else _root() / relative
    if not path.is_dir():
        raise ReferenceDataMissing(
            f"{what} not found at {path}: set {ENV_ROOT} to a folder laid out like ../shared/reference-data "
            f"(or {override_env} to this half alone); see docs/reference-data.md"
        )
    return path


def bicep_types_dir() -> Path:
    """Folder holding ``<provider>/<namespace>/<api-version>/types.json`` (bicep-types-az ``generated/``)."""
    return _located(ENV_BICEP_TYPES, "bicep-types/types", "ARM type definitions (bicep-types)")


def dataverse_tables_dir() -> Path:
    """Folder holding one ``<logical name>.json`` per Dataverse table."""
    return _located(ENV_DATAVERSE_METADATA, "dataverse-metadata/tables", "Dataverse table metadata")
