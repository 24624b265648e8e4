"""A small read-only model of Bicep source on top of tree-sitter-bicep (offline; no Bicep CLI, no Azure).

Used by the structural infra tests (``tests/infra``) and the ARM type check (``devtools.bicep_typecheck``).
Top-level declarations become ``Decl`` objects; literal values become Python values and anything computed
stays an ``Expr`` holding its source text.

Needs ``tree-sitter`` and ``tree-sitter-bicep`` (requirements-dev.txt), which the deployed app never imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

PARSER = Parser(Language(tree_sitter_bicep.language()))

_LITERAL_STRING_PARTS = {"string_content", "escape_sequence"}
_ESCAPES = {"\\\\": "\\", "\\'": "'", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


@dataclass(frozen=True)
class Expr:
    """A non-literal Bicep expression, kept as source text."""

    text: str

    def __str__(self) -> str:
        return self.text


def text_of(node: Node) -> str:
    return (node.text or b"").decode("utf-8")


def string_inner(node: Node) -> str:
    """Raw content of a Bicep string literal, interpolations kept as ${...}."""
    raw = text_of(node)
    if raw.startswith("'''"):
        return raw[3:-3]
    return raw[1:-1]


def string_literal(node: Node) -> str | None:
    """The value of a string without interpolation (escapes decoded); None for an interpolated string."""
    if node.type != "string":
        return None
    raw = text_of(node)
    if raw.startswith("'''"):
        return raw[3:-3]
    parts = [c for c in node.named_children]
    if any(c.type not in _LITERAL_STRING_PARTS for c in parts):
        return None
    return "".join(_ESCAPES.get(text_of(c), text_of(c)) if c.type == "escape_sequence" else text_of(c) for c in parts)


def named(node: Node) -> list[Node]:
    """Named children without comments."""
    return [c for c in node.named_children if c.type != "comment"]


def property_key(prop: Node) -> tuple[str, Node] | None:
    """(key, value node) of an ``object_property``; None for a nested resource or a decorator-only entry."""
    parts = [c for c in named(prop) if c.type != "decorators"]
    if len(parts) < 2 or parts[0].type not in ("identifier", "string"):
        return None
    key_node, value_node = parts[0], parts[-1]
    key = string_inner(key_node) if key_node.type == "string" else text_of(key_node)
    return key, value_node


def to_py(node: Node | None) -> Any:
    if node is None:
        return None
    kind = node.type
    if kind == "object":
        out: dict[str, Any] = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue
            entry = property_key(prop)
            if entry is not None:
                out[entry[0]] = to_py(entry[1])
        return out
    if kind == "array":
        return [to_py(c) for c in named(node)]
    if kind == "string":
        return string_inner(node)
    if kind == "number":
        return int(text_of(node))
    if kind == "boolean":
        return text_of(node) == "true"
    if kind == "null":
        return None
    return Expr(text_of(node))


@dataclass
class Decl:
    kind: str  # param | var | resource | module | output
    name: str
    node: Node
    decorators: str = ""
    type_text: str = ""  # resource/module: type@api or module path; param/output: type
    existing: bool = False
    condition: str | None = None  # text of `if (...)`
    loop: bool = False
    value_node: Node | None = None  # resource/module: the body object (inside any loop/condition)

    @property
    def value(self) -> Any:
        return to_py(self.value_node)

    @property
    def text(self) -> str:
        return text_of(self.node)

    @property
    def rtype(self) -> str:
        return self.type_text.split("@")[0]

    @property
    def line(self) -> int:
        return self.node.start_point[0] + 1


@dataclass
class BicepFile:
    path: str
    source: str
    has_error: bool
    decls: list[Decl] = field(default_factory=list)

    def of(self, kind: str) -> dict[str, Decl]:
        return {d.name: d for d in self.decls if d.kind == kind}

    @property
    def params(self) -> dict[str, Decl]:
        return self.of("param")

    @property
    def variables(self) -> dict[str, Decl]:
        return self.of("var")

    @property
    def resources(self) -> dict[str, Decl]:
        return self.of("resource")

    @property
    def modules(self) -> dict[str, Decl]:
        return self.of("module")

    @property
    def outputs(self) -> dict[str, Decl]:
        return self.of("output")

    def resources_of_type(self, rtype: str, *, existing: bool = False) -> list[Decl]:
        return [r for r in self.resources.values() if r.rtype == rtype and r.existing == existing]

    def param_default(self, name: str) -> Any:
        decl = self.params.get(name)
        return decl.value if decl is not None else None

    def resolve(self, value: Any) -> Any:
        """Follow a bare variable reference one level (e.g. `properties: queueProps`)."""
        if isinstance(value, Expr) and value.text in self.variables:
            return self.variables[value.text].value
        return value


def body_of(node: Node) -> tuple[Node, str | None, bool]:
    """The object inside a resource/module value: (object, condition text or None, is a loop)."""
    condition: str | None = None
    loop = False
    if node.type == "for_statement":
        loop = True
        node = named(node)[-1]
    if node.type == "if_statement":
        cond = [c for c in node.named_children if c.type == "parenthesized_expression"]
        condition = text_of(cond[0])[1:-1].strip() if cond else ""
        node = next(c for c in node.named_children if c.type == "object")
    return node, condition, loop


_KINDS = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "resource_declaration": "resource",
    "module_declaration": "module",
    "output_declaration": "output",
}


def parse_bicep(path: str, source: str) -> BicepFile:
    tree = PARSER.parse(source.encode("utf-8"))
    result = BicepFile(path=path, source=source, has_error=tree.root_node.has_error)
    pending_decorators = ""
    for child in tree.root_node.named_children:
        if child.type == "decorators":
            pending_decorators = text_of(child)
            continue
        if child.type not in _KINDS:
            continue
        kind = _KINDS[child.type]
        parts = named(child)
        decl = Decl(kind=kind, name=text_of(parts[0]), node=child, decorators=pending_decorators)
        pending_decorators = ""
        rest = parts[1:]
        if kind in ("resource", "module"):
            decl.type_text = string_inner(rest[0])
            decl.existing = any(c.type == "existing" for c in child.children)
            decl.value_node, decl.condition, decl.loop = body_of(rest[-1])
        elif kind in ("param", "output"):
            decl.type_text = text_of(rest[0]) if rest else ""
            decl.value_node = rest[1] if len(rest) > 1 else None
        else:  # var
            decl.value_node = rest[-1] if rest else None
        result.decls.append(decl)
    return result
