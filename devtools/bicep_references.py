"""The other half of the offline Bicep check: what the templates *read* and how modules are called.

- Property paths read from a resource symbol (``storage.properties.primaryEndpoints.blob``,
  ``systemTopic.identity.principalId``) must exist in the resource's ARM type, with the exact casing; read-only
  properties are fine here. The walk stops where the type stops saying anything (a dictionary, ``any``, a
  function call such as ``listKeys()``, an index into a loop's collection).
- A module's ``params`` must be parameters of the module file (exact casing), every parameter without a default
  must be given, and ``<module>.outputs.<name>`` must be an output of that file.

Used by ``devtools.bicep_typecheck``; findings have the same shape.
"""

from __future__ import annotations

import posixpath

from tree_sitter import Node

from devtools.arm_types import TypeLibrary, TypeRef, properties_of, variant_properties
from devtools.bicep_model import BicepFile, Decl, named, property_key, text_of
from devtools.bicep_typecheck import Finding, casing_of, unknown_key


def _chain(node: Node) -> tuple[Node, list[Node]] | None:
    """``a.b.c`` -> (identifier a, [b, c]); None when the root is not a plain identifier or uses ``.?``."""
    if node.type == "identifier":
        return node, []
    if node.type != "member_expression" or any(c.type == ".?" for c in node.children):
        return None
    parts = named(node)
    inner = _chain(parts[0])
    if inner is None:
        return None
    return inner[0], [*inner[1], parts[-1]]


def _outermost_members(node: Node) -> list[tuple[Node, list[Node]]]:
    """Every maximal ``symbol.x.y`` chain under ``node`` (a method name such as ``listKeys`` is dropped)."""
    found: list[tuple[Node, list[Node]]] = []

    def walk(current: Node) -> None:
        if current.type == "member_expression":
            chain = _chain(current)
            if chain is not None:
                root, props = chain
                parent = current.parent
                if parent is not None and parent.type == "call_expression" and parent.named_children[0] == current:
                    props = props[:-1]  # resource function call: `rule.listKeys()`
                found.append((root, props))
                return
        for child in current.named_children:
            walk(child)

    walk(node)
    return found


def _member_type(tref: TypeRef) -> tuple[dict[str, TypeRef], TypeRef | None] | None:
    """Readable members of a type: (properties, additional properties); None when the type says nothing more."""
    if tref.kind == "ObjectType":
        props = {k: p.type for k, p in properties_of(tref).items()}
        return props, tref.ref(tref.data.get("additionalProperties"))
    if tref.kind == "DiscriminatedObjectType":
        return {k: p.type for k, p in variant_properties(tref).items()}, None
    return None


class ReferenceChecker:
    def __init__(self, files: dict[str, BicepFile], library: TypeLibrary):
        self.files = files
        self.library = library

    def check(self) -> list[Finding]:
        findings: list[Finding] = []
        for bicep in self.files.values():
            for decl in bicep.decls:
                for root, props in _outermost_members(decl.node):
                    findings += self._check_access(bicep, root, props)
            for module in bicep.modules.values():
                findings += self._check_module_params(bicep, module)
        return findings

    def _target(self, bicep: BicepFile, module: Decl) -> BicepFile | None:
        return self.files.get(posixpath.normpath(posixpath.join(posixpath.dirname(bicep.path), module.type_text)))

    def _check_access(self, bicep: BicepFile, root: Node, props: list[Node]) -> list[Finding]:
        symbol = text_of(root)
        path = symbol
        out: list[Finding] = []

        def miss(node: Node, name: str, known: list[str]) -> None:
            out.append(Finding(bicep.path, node.start_point[0] + 1, symbol, f"{path}.{name}", unknown_key(name, known)))

        if symbol in bicep.modules and len(props) >= 2 and text_of(props[0]) == "outputs":
            target = self._target(bicep, bicep.modules[symbol])
            name = text_of(props[1])
            if target is not None and name not in target.outputs:
                path = f"{symbol}.outputs"
                miss(props[1], name, list(target.outputs))
            return out
        decl = bicep.resources.get(symbol)
        if decl is None or decl.loop or not props:
            return out
        definition = self.library.resource(decl.type_text)
        if definition is None:
            return out  # reported once by the type check of the declaration
        current: TypeRef | None = definition.body
        for prop in props:
            members = _member_type(current) if current is not None else None
            if members is None:
                break
            known, additional = members
            name = text_of(prop)
            if name in known:
                current = known[name]
            elif additional is not None:
                current = additional
            else:
                miss(prop, name, list(known))
                break
            path = f"{path}.{name}"
        return out

    def _check_module_params(self, bicep: BicepFile, module: Decl) -> list[Finding]:
        target = self._target(bicep, module)
        if target is None or module.value_node is None:
            return []  # a missing module file is reported by the structural tests
        out: list[Finding] = []
        given: set[str] = set()
        params_node = next(
            (e[1] for p in module.value_node.named_children if (e := property_key(p)) is not None and e[0] == "params"),
            None,
        )
        for prop in params_node.named_children if params_node is not None and params_node.type == "object" else []:
            entry = property_key(prop)
            if entry is None:
                continue
            name = entry[0]
            given.add(name)
            if name not in target.params:
                right = casing_of(name, target.params)
                hint = f" (wrong casing of {right!r})" if right is not None else ""
                out.append(
                    Finding(
                        bicep.path,
                        prop.start_point[0] + 1,
                        module.name,
                        f"params.{name}",
                        f"{target.path} has no parameter {name!r}{hint}",
                    )
                )
        for name, param in target.params.items():
            if param.value_node is None and not param.type_text.endswith("?") and name not in given:
                out.append(
                    Finding(
                        bicep.path,
                        module.line,
                        module.name,
                        "params",
                        f"missing required parameter {name!r} of {target.path}",
                    )
                )
        return out
