"""Offline type check of Bicep resources against Microsoft's ARM type definitions (no Bicep CLI, no Azure).

For every resource declared in the given ``.bicep`` files (top level, nested, in loops or behind conditions,
``existing`` ones included) it checks that ``type@apiVersion`` is published, that every property key exists
with its exact casing, that literal values fit the declared type (enum members, string/integer bounds, object
vs array), that no read-only property is set and that every required property is present. Values computed by
expressions are not evaluated, but object literals inside them (ternary branches, referenced variables, loop
bodies) are still checked. ``parent:`` must be the parent type and ``scope:`` on a resource symbol needs a
type deployable as an extension resource.

    python -m devtools.bicep_typecheck [infra]        # exit 0 clean, 1 findings, 2 reference data missing
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Node

from devtools import reference_data
from devtools.arm_types import (
    READ_ONLY,
    REQUIRED,
    SCOPE_EXTENSION,
    Property,
    ResourceDef,
    TypeLibrary,
    TypeRef,
    properties_of,
    split_type,
    variant_properties,
)
from devtools.bicep_model import BicepFile, body_of, named, parse_bicep, property_key, string_literal, text_of

BICEP_ONLY_KEYS = {"parent", "scope", "dependsOn"}  # resource-body syntax of Bicep itself, not ARM properties
EXISTING_KEYS = {"name", "scope", "parent"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    symbol: str  # the resource or module declaration concerned
    where: str  # property path, empty for the declaration itself
    message: str

    def __str__(self) -> str:
        where = f" {self.where}" if self.where else ""
        return f"{self.path}:{self.line}: {self.symbol}{where}: {self.message}"


@dataclass
class _Context:
    file: BicepFile
    resource: str
    findings: list[Finding] = field(default_factory=list)
    seen_vars: frozenset[str] = frozenset()

    def add(self, node: Node, where: str, message: str) -> None:
        self.findings.append(Finding(self.file.path, node.start_point[0] + 1, self.resource, where, message))

    def scratch(self) -> _Context:
        return _Context(self.file, self.resource, [], self.seen_vars)


def casing_of(name: str, known: Iterable[str]) -> str | None:
    """The known name that differs from ``name`` only in casing, if any."""
    return next((k for k in known if k.lower() == name.lower() and k != name), None)


def unknown_key(name: str, known: Iterable[str]) -> str:
    names = list(known)
    right = casing_of(name, names)
    if right is not None:
        return f"wrong casing: the property is {right!r}"
    close = difflib.get_close_matches(name, names, n=3)
    return f"unknown property {name!r}" + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")


def not_allowed(value: str, allowed: Iterable[str]) -> str:
    names = list(allowed)
    right = casing_of(value, names)
    suffix = f" (wrong casing of {right!r})" if right is not None else ""
    return f"{value!r} is not an allowed value{suffix}; allowed: {', '.join(map(repr, names))}"


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class BicepTypeChecker:
    def __init__(self, library: TypeLibrary):
        self.library = library

    # ------------------------------------------------------------------ resources
    def check_file(self, bicep: BicepFile) -> list[Finding]:
        findings: list[Finding] = []
        for decl in bicep.resources.values():
            assert decl.value_node is not None
            findings += self._check_resource(
                bicep, decl.name, decl.type_text, decl.value_node, decl.existing, decl.node
            )
        return findings

    def _check_resource(
        self, bicep: BicepFile, symbol: str, type_api: str, body: Node, existing: bool, anchor: Node
    ) -> list[Finding]:
        ctx = _Context(bicep, symbol)
        definition = self.library.resource(type_api)
        if definition is None:
            ctx.add(anchor, "", self._unknown_type(type_api))
            return ctx.findings
        for nested_type, nested_body, nested_existing, nested_anchor in self._nested(body, type_api):
            ctx.findings += self._check_resource(
                bicep, symbol, nested_type, nested_body, nested_existing, nested_anchor
            )
        self._check_bicep_keys(ctx, body, definition, type_api)
        if existing:
            for prop in body.named_children:
                entry = property_key(prop) if prop.type == "object_property" else None
                if entry and entry[0] not in EXISTING_KEYS:
                    ctx.add(prop, entry[0], "an `existing` resource may only set name, scope and parent")
            return ctx.findings
        self._check(ctx, body, definition.body, "", top=True)
        return ctx.findings

    def _nested(self, body: Node, parent_type: str) -> list[tuple[str, Node, bool, Node]]:
        out = []
        parent_rtype, parent_api = split_type(parent_type)
        for prop in body.named_children:
            decl = next((c for c in prop.named_children if c.type == "resource_declaration"), None)
            if prop.type != "object_property" or decl is None:
                continue
            parts = named(decl)
            child_rtype, _, child_api = (string_literal(parts[1]) or "").partition("@")
            full = f"{parent_rtype}/{child_rtype}@{child_api or parent_api}"
            nested_body = body_of(parts[-1])[0]
            out.append((full, nested_body, any(c.type == "existing" for c in decl.children), decl))
        return out

    def _unknown_type(self, type_api: str) -> str:
        rtype, api = split_type(type_api)
        upstream = self.library.upstream_file(type_api)
        if upstream is not None:
            return (
                f"{type_api} is published (bicep-types-az generated/{upstream}) but missing from the reference data "
                f"at {self.library.root}: add that types.json to the copy"
            )
        local = self.library.local_versions(rtype)
        published = self.library.upstream_versions(rtype)
        known = f"; published API versions: {', '.join(published)}" if published else ""
        on_file = ", ".join(local) or "none"
        return f"unknown resource type or API version {rtype}@{api} (versions on file: {on_file}{known})"

    def _check_bicep_keys(self, ctx: _Context, body: Node, definition: ResourceDef, type_api: str) -> None:
        for prop in body.named_children:
            entry = property_key(prop) if prop.type == "object_property" else None
            if entry is None:
                continue
            key, value = entry
            symbol = ctx.file.resources.get(text_of(value)) if value.type == "identifier" else None
            if key == "parent" and symbol is not None:
                expected = split_type(type_api)[0].rsplit("/", 1)[0]
                if symbol.rtype.lower() != expected.lower():
                    ctx.add(
                        prop, "parent", f"parent {symbol.name} is a {symbol.rtype}, but {type_api} needs a {expected}"
                    )
            if key == "scope" and symbol is not None:
                scopes = definition.writable_scopes
                if scopes is not None and not scopes & SCOPE_EXTENSION:
                    ctx.add(
                        prop,
                        "scope",
                        f"{definition.name} cannot be deployed onto another resource (scope: {symbol.name})",
                    )

    # ------------------------------------------------------------------ values
    def _check(self, ctx: _Context, node: Node, tref: TypeRef, path: str, *, top: bool = False) -> None:
        kind = node.type
        if kind == "parenthesized_expression":
            self._check(ctx, named(node)[0], tref, path)
        elif kind == "ternary_expression":
            for branch in named(node)[1:]:
                self._check(ctx, branch, tref, path)
        elif kind == "identifier" and text_of(node) in ctx.file.variables and text_of(node) not in ctx.seen_vars:
            var = ctx.file.variables[text_of(node)]
            if var.value_node is not None:
                inner = _Context(ctx.file, ctx.resource, ctx.findings, ctx.seen_vars | {var.name})
                self._check(inner, var.value_node, tref, path)
        elif kind in ("object", "array", "for_statement", "string", "number", "boolean"):
            self._check_literal(ctx, node, tref, path, top=top)
        # null leaves an optional property unset; any other expression is only known at deployment

    def _check_literal(self, ctx: _Context, node: Node, tref: TypeRef, path: str, *, top: bool) -> None:
        kind = tref.kind
        if kind == "AnyType":
            return
        if kind == "UnionType":
            self._check_union(ctx, node, tref, path)
        elif kind == "ObjectType":
            if self._expect(ctx, node, "object", path):
                self._check_object(
                    ctx, node, properties_of(tref), tref.ref(tref.data.get("additionalProperties")), path, top
                )
        elif kind == "DiscriminatedObjectType":
            if self._expect(ctx, node, "object", path):
                self._check_discriminated(ctx, node, tref, path, top)
        elif kind == "ArrayType":
            item = tref.ref(tref.data["itemType"])
            assert item is not None
            if node.type == "for_statement":
                self._check(ctx, body_of(named(node)[-1])[0], item, f"{path}[]")
            elif self._expect(ctx, node, "array", path):
                for element in named(node):
                    self._check(ctx, element, item, f"{path}[]")
        else:
            self._check_scalar(ctx, node, tref, path)

    def _expect(self, ctx: _Context, node: Node, wanted: str, path: str) -> bool:
        actual = "array" if node.type in ("array", "for_statement") else node.type
        if actual != wanted:
            ctx.add(node, path, f"expected {_article(wanted)} {wanted}, got {actual} {text_of(node)[:40]!r}")
            return False
        return True

    def _check_scalar(self, ctx: _Context, node: Node, tref: TypeRef, path: str) -> None:
        kind, data = tref.kind, tref.data
        if kind in ("StringType", "StringLiteralType"):
            if not self._expect(ctx, node, "string", path):
                return
            value = string_literal(node)
            if value is None:
                return  # interpolated: a string, value known at deployment
            if kind == "StringLiteralType" and value != data["value"]:
                hint = " (wrong casing)" if value.lower() == str(data["value"]).lower() else ""
                ctx.add(node, path, f"{value!r} is not allowed here: must be {data['value']!r}{hint}")
            if "minLength" in data and len(value) < int(data["minLength"]):
                ctx.add(node, path, f"{value!r} is shorter than the minimum length {data['minLength']}")
            if "maxLength" in data and len(value) > int(data["maxLength"]):
                ctx.add(node, path, f"string of {len(value)} characters exceeds the maximum length {data['maxLength']}")
        elif kind == "IntegerType":
            if self._expect(ctx, node, "number", path):
                number = int(text_of(node))
                if "minValue" in data and number < int(data["minValue"]):
                    ctx.add(node, path, f"{number} is below the minimum {data['minValue']}")
                if "maxValue" in data and number > int(data["maxValue"]):
                    ctx.add(node, path, f"{number} is above the maximum {data['maxValue']}")
        elif kind == "BooleanType":
            self._expect(ctx, node, "boolean", path)
        else:
            ctx.add(node, path, f"cannot check a value against the type kind {kind}")

    def _check_union(self, ctx: _Context, node: Node, tref: TypeRef, path: str) -> None:
        elements = [e for e in (tref.ref(p) for p in tref.data["elements"]) if e is not None]
        literal = string_literal(node)
        if (
            node.type == "string"
            and literal is None
            and any(e.kind in ("StringType", "StringLiteralType") for e in elements)
        ):
            return
        attempts: list[list[Finding]] = []
        for element in elements:
            scratch = ctx.scratch()
            self._check(scratch, node, element, path)
            if not scratch.findings:
                return
            attempts.append(scratch.findings)
        allowed = [str(e.data["value"]) for e in elements if e.kind == "StringLiteralType"]
        if literal is not None and allowed:
            ctx.add(node, path, not_allowed(literal, allowed))
        elif attempts:
            closest: list[Finding] = min(attempts, key=len)
            ctx.findings.extend(closest)

    def _check_discriminated(self, ctx: _Context, node: Node, tref: TypeRef, path: str, top: bool) -> None:
        discriminator = str(tref.data["discriminator"])
        elements = {k: tref.ref(v) for k, v in tref.data["elements"].items()}
        base = properties_of(tref)
        value_node = next(
            (
                v
                for k, v in (property_key(p) or ("", p) for p in node.named_children if p.type == "object_property")
                if k == discriminator
            ),
            None,
        )
        chosen = string_literal(value_node) if value_node is not None else None
        if value_node is None:
            ctx.add(
                node, path, f"missing required property {discriminator!r} (one of {', '.join(map(repr, elements))})"
            )
            return
        if chosen is None:  # computed discriminator: keys must exist in some variant
            self._check_object(ctx, node, variant_properties(tref), None, path, top, required=False)
            return
        element = elements.get(chosen)
        if element is None:
            ctx.add(value_node, _join(path, discriminator), not_allowed(chosen, elements))
            return
        props = {**base, **properties_of(element)}
        self._check_object(ctx, node, props, element.ref(element.data.get("additionalProperties")), path, top)

    def _check_object(
        self,
        ctx: _Context,
        node: Node,
        props: dict[str, Property],
        additional: TypeRef | None,
        path: str,
        top: bool,
        *,
        required: bool = True,
    ) -> None:
        present: set[str] = set()
        folded = {k.lower(): k for k in props}
        for prop in node.named_children:
            entry = property_key(prop) if prop.type == "object_property" else None
            if entry is None:
                continue
            key, value = entry
            where = _join(path, key)
            if top and key in BICEP_ONLY_KEYS:
                continue
            spec = props.get(key)
            if spec is None and key.lower() in folded:
                ctx.add(prop, where, unknown_key(key, props))
                spec = props[folded[key.lower()]]
            if spec is None:
                if additional is not None:
                    self._check(ctx, value, additional, where)
                    continue
                ctx.add(prop, where, unknown_key(key, props))
                continue
            present.add(folded[key.lower()])
            if spec.has(READ_ONLY):
                ctx.add(prop, where, "read-only property: set by Azure, cannot be written")
                continue
            self._check(ctx, value, spec.type, where)
        if required:
            for key, spec in props.items():
                if spec.has(REQUIRED) and key not in present:
                    ctx.add(node, path, f"missing required property {key!r}")


def check_paths(paths: list[Path], root: Path, library: TypeLibrary) -> tuple[int, list[Finding]]:
    """Type-check every resource in ``paths`` and what the files read from resources and modules."""
    from devtools.bicep_references import ReferenceChecker

    files = {
        p.relative_to(root).as_posix(): parse_bicep(p.relative_to(root).as_posix(), p.read_text("utf-8")) for p in paths
    }
    checker = BicepTypeChecker(library)
    findings: list[Finding] = []
    for bicep in files.values():
        findings += checker.check_file(bicep)
    findings += ReferenceChecker(files, library).check()
    return sum(len(f.resources) for f in files.values()), findings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    infra = Path(args[0] if args else "infra")
    try:
        types_dir = reference_data.bicep_types_dir()
    except reference_data.ReferenceDataMissing as exc:
        print(f"bicep-typecheck: {exc}", file=sys.stderr)
        return 2
    paths = sorted(infra.rglob("*.bicep"))
    if not paths:
        print(f"bicep-typecheck: no .bicep files under {infra}", file=sys.stderr)
        return 1
    resources, findings = check_paths(paths, infra, TypeLibrary(types_dir))
    for finding in findings:
        print(f"  FAIL {infra.as_posix()}/{finding}")
    print(
        f"  bicep-typecheck: {resources} resources in {len(paths)} files against {types_dir}: {len(findings)} findings"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
