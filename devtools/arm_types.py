"""Microsoft's ARM resource type definitions (Azure/bicep-types-az ``generated/``), read in place.

Each ``<folder>/<namespace>/<api-version>/types.json`` is a JSON array of types; ``{"$ref": "#/N"}`` points at
entry N of the same array. A ``ResourceType`` names ``type@apiVersion`` and points at its body (an
``ObjectType``, or a ``DiscriminatedObjectType`` when the body depends on the resource name, e.g.
``Microsoft.Web/sites/config``). Object properties carry flags (``Required``, ``ReadOnly``, ...); enums are
``UnionType``s of ``StringLiteralType``s. Only the files for the namespaces and API versions asked about are
opened, so the directory may be a partner's full checkout of ``generated/``.

The folder comes from ``devtools.reference_data.bicep_types_dir()`` (``CHANNEL_BICEP_TYPES`` or
``CHANNEL_REFERENCE_DATA``); ``upstream-index.json.gz`` beside it, when present, tells a type missing from a
partial copy apart from one Microsoft never published.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

REQUIRED = 1
READ_ONLY = 2
WRITE_ONLY = 4
DEPLOY_TIME_CONSTANT = 8
IDENTIFIER = 16
SCOPE_EXTENSION = 16  # ScopeType bit: deployable onto another resource with `scope:`


@dataclass(frozen=True)
class TypeRef:
    """One entry of one types.json file."""

    file: TypesFile
    index: int

    @property
    def data(self) -> dict[str, Any]:
        entry: dict[str, Any] = self.file.types[self.index]
        return entry

    @property
    def kind(self) -> str:
        return str(self.data["$type"])

    def ref(self, pointer: dict[str, Any] | None) -> TypeRef | None:
        return self.file.ref(pointer)


@dataclass(frozen=True)
class Property:
    type: TypeRef
    flags: int

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)


class TypesFile:
    def __init__(self, path: Path):
        self.path = path
        self.types: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))

    def ref(self, pointer: dict[str, Any] | None) -> TypeRef | None:
        if not pointer:
            return None
        target = str(pointer["$ref"])
        if not target.startswith("#/"):
            raise ValueError(f"{self.path}: cross-file type reference {target!r} is not supported")
        return TypeRef(self, int(target[2:]))

    def resources(self) -> list[tuple[str, TypeRef]]:
        return [(str(t["name"]), TypeRef(self, i)) for i, t in enumerate(self.types) if t["$type"] == "ResourceType"]


@dataclass(frozen=True)
class ResourceDef:
    name: str  # type@apiVersion as published
    entry: TypeRef

    @property
    def body(self) -> TypeRef:
        body = self.entry.ref(self.entry.data["body"])
        assert body is not None
        return body

    @property
    def writable_scopes(self) -> int | None:
        data = self.entry.data
        value = data.get("writableScopes", data.get("scopeType"))
        return None if value is None else int(value)


def properties_of(ref: TypeRef) -> dict[str, Property]:
    """Properties of an ObjectType (or the base properties of a DiscriminatedObjectType)."""
    raw = ref.data.get("properties") if ref.kind == "ObjectType" else ref.data.get("baseProperties")
    out: dict[str, Property] = {}
    for key, spec in (raw or {}).items():
        target = ref.ref(spec["type"])
        assert target is not None
        out[key] = Property(target, int(spec.get("flags", 0)))
    return out


def variant_properties(ref: TypeRef) -> dict[str, Property]:
    """Every property any variant of a DiscriminatedObjectType can have (base properties included)."""
    merged = properties_of(ref)
    for pointer in ref.data["elements"].values():
        element = ref.ref(pointer)
        if element is not None:
            merged.update(properties_of(element))
    return merged


def split_type(type_api: str) -> tuple[str, str]:
    rtype, _, api = type_api.partition("@")
    return rtype, api


class TypeLibrary:
    """Resource definitions by ``type@apiVersion`` (case-insensitive, as ARM and Bicep treat type names)."""

    def __init__(self, root: Path):
        self.root = root
        self._files: dict[Path, TypesFile] = {}

    def _candidate_files(self, namespace: str, api: str) -> list[Path]:
        return sorted(self.root.glob(f"*/{namespace.lower()}/{api}/types.json"))

    def _file(self, path: Path) -> TypesFile:
        if path not in self._files:
            self._files[path] = TypesFile(path)
        return self._files[path]

    def resource(self, type_api: str) -> ResourceDef | None:
        rtype, api = split_type(type_api)
        namespace = rtype.split("/", 1)[0]
        wanted = f"{rtype}@{api}".lower()
        for path in self._candidate_files(namespace, api):
            for name, ref in self._file(path).resources():
                if name.lower() == wanted:
                    return ResourceDef(name, ref)
        return None

    def local_versions(self, rtype: str) -> list[str]:
        """API versions of ``rtype`` present in this copy."""
        namespace = rtype.split("/", 1)[0].lower()
        versions = set()
        for path in self.root.glob(f"*/{namespace}/*/types.json"):
            if any(name.lower().startswith(f"{rtype.lower()}@") for name, _ in self._file(path).resources()):
                versions.add(path.parent.name)
        return sorted(versions)

    @cached_property
    def _upstream(self) -> dict[str, list[str]] | None:
        index = self.root.parent / "upstream-index.json.gz"
        if not index.is_file():
            return None
        with gzip.open(index, "rt", encoding="utf-8") as handle:
            files: dict[str, list[str]] = json.load(handle)["files"]
        return files

    def upstream_file(self, type_api: str) -> str | None:
        """Upstream ``generated/`` folder defining ``type_api``, if the upstream index is available and has it."""
        rtype, api = split_type(type_api)
        for folder, names in (self._upstream or {}).items():
            if folder.endswith(f"/{api}") and any(n.lower() == rtype.lower() for n in names):
                return folder
        return None

    def upstream_versions(self, rtype: str) -> list[str]:
        found = {
            folder.rsplit("/", 1)[-1]
            for folder, names in (self._upstream or {}).items()
            if any(n.lower() == rtype.lower() for n in names)
        }
        return sorted(found)
