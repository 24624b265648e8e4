"""Evaluate the app settings the Bicep deploys for given parameter values (offline, no Bicep CLI).

A small interpreter for the expression subset the templates use to build app settings: object and string literals
(interpolation included), numbers, booleans, parameters and variables, `a.b` on objects, `cond ? a : b`, `==`, `!=`,
`&&`, `||`, `!`, `union(...)` and `empty(...)`. Anything only known at deployment (a resource's property, a module's
output, `tenant()`) stays an ``Opaque`` holding its source text, so tests can still compare it. An expression outside
the subset raises ``EvalError`` instead of guessing, so a rule built on it cannot pass by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tree_sitter import Node

from devtools.bicep_model import BicepFile, Decl, named, string_inner, text_of
from tests.infra.infra_model import FUNCTIONAPP, MAIN, Infra, decorator_args

_ESCAPES = {"\\\\": "\\", "\\'": "'", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


class EvalError(ValueError):
    """An expression the evaluator does not model, or a value a template would refuse."""


@dataclass(frozen=True)
class Opaque:
    """A value only known at deployment, kept as its source text."""

    text: str


class Scope:
    """Evaluates expressions of one Bicep file with the given parameter values."""

    def __init__(self, f: BicepFile, params: dict[str, Any], known: dict[str, Any] | None = None):
        self.f = f
        self.params = params
        self.known = known or {}
        self._vars: dict[str, Any] = {}

    def lookup(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        if name in self.f.variables:
            if name not in self._vars:
                node = self.f.variables[name].value_node
                assert node is not None
                self._vars[name] = self.eval(node)
            return self._vars[name]
        if name in self.f.resources or name in self.f.modules:
            return Opaque(name)
        raise EvalError(f"{self.f.path}: unknown identifier {name!r}")

    def eval(self, node: Node) -> Any:
        kind = node.type
        if kind == "parenthesized_expression":
            return self.eval(named(node)[0])
        if kind == "object":
            out: dict[str, Any] = {}
            for prop in named(node):
                key_node, value_node = named(prop)[0], named(prop)[-1]
                key = string_inner(key_node) if key_node.type == "string" else text_of(key_node)
                out[key] = self.eval(value_node)
            return out
        if kind == "string":
            return self._string(node)
        if kind == "number":
            return int(text_of(node))
        if kind == "boolean":
            return text_of(node) == "true"
        if kind == "identifier":
            return self.lookup(text_of(node))
        if kind == "member_expression":
            if text_of(node) in self.known:
                return self.known[text_of(node)]
            target, prop = named(node)
            value = self.eval(target) if target.type != "call_expression" else Opaque(text_of(target))
            if isinstance(value, dict):
                return value[text_of(prop)]
            return Opaque(text_of(node))
        if kind == "ternary_expression":
            cond, then, other = named(node)
            return self.eval(then) if self._bool(cond) else self.eval(other)
        if kind == "unary_expression":
            op = text_of(node.children[0])
            if op != "!":
                raise EvalError(f"unsupported unary operator {op!r}")
            return not self._bool(named(node)[0])
        if kind == "binary_expression":
            return self._binary(node)
        if kind == "call_expression":
            return self._call(node)
        raise EvalError(f"{self.f.path}: unsupported expression {kind}: {text_of(node)!r}")

    def _string(self, node: Node) -> str:
        parts = []
        for c in node.named_children:
            if c.type == "interpolation":
                value = self.eval(named(c)[0])
                parts.append(f"${{{value.text}}}" if isinstance(value, Opaque) else str(value))
            else:
                parts.append(_ESCAPES.get(text_of(c), text_of(c)) if c.type == "escape_sequence" else text_of(c))
        return "".join(parts) if node.named_children else string_inner(node)

    def _bool(self, node: Node) -> bool:
        value = self.eval(node)
        if not isinstance(value, bool):
            raise EvalError(f"not a known boolean: {text_of(node)!r} = {value!r}")
        return value

    def _binary(self, node: Node) -> bool:
        left, right = named(node)
        op = text_of(next(c for c in node.children if not c.is_named))
        if op in ("&&", "||"):
            first = self._bool(left)
            return (first and self._bool(right)) if op == "&&" else (first or self._bool(right))
        a, b = self.eval(left), self.eval(right)
        if isinstance(a, Opaque) or isinstance(b, Opaque):
            raise EvalError(f"cannot compare a deployment-time value: {text_of(node)!r}")
        if op == "==":
            return bool(a == b)
        if op == "!=":
            return bool(a != b)
        raise EvalError(f"unsupported operator {op!r}")

    def _call(self, node: Node) -> Any:
        fn = text_of(named(node)[0])
        args = [self.eval(a) for a in named(named(node)[-1])]
        if fn == "union" and all(isinstance(a, dict) for a in args):
            merged: dict[str, Any] = {}
            for a in args:
                merged.update(a)
            return merged
        if fn == "empty" and len(args) == 1 and not isinstance(args[0], Opaque):
            return not args[0]
        if fn in ("union", "empty"):
            raise EvalError(f"cannot evaluate {text_of(node)!r}")
        return Opaque(text_of(node))


def _check_decorators(f: BicepFile, name: str, decl: Decl, value: Any) -> None:
    """What ARM refuses before deploying: a value outside @allowed, a string outside @minLength/@maxLength."""
    if isinstance(value, Opaque):
        return
    args = decorator_args(decl)
    if "allowed" in args and value not in args["allowed"][0]:
        raise EvalError(f"{f.path}: {name}={value!r} is not one of @allowed {args['allowed'][0]}")
    if isinstance(value, str) and not args.get("minLength", [0])[0] <= len(value) <= args.get("maxLength", [1e9])[0]:
        raise EvalError(f"{f.path}: {name}={value!r} breaks @minLength/@maxLength")


def _with_defaults(f: BicepFile, given: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """Parameter values as the deployment sees them: given ones checked against @allowed, else the defaults."""
    unknown = set(given) - set(f.params)
    if unknown:
        raise EvalError(f"{f.path}: no such parameter(s) {sorted(unknown)}")
    values: dict[str, Any] = {}
    defaults = Scope(f, values, known)
    for name, decl in f.params.items():
        if name in given:
            _check_decorators(f, name, decl, given[name])
            values[name] = given[name]
        elif decl.value_node is not None:
            values[name] = defaults.eval(decl.value_node)
        else:
            values[name] = Opaque(f"<required {name}>")
    return values


def deployed_app_settings(infra: Infra, known: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    """The Function App's app settings for a deployment of main.bicep with ``params`` (others at their default).

    ``known`` gives deployment-time values by source text, e.g. ``{"tenant().tenantId": "<guid>"}``.
    """
    known = known or {}
    main = Scope(infra[MAIN], _with_defaults(infra[MAIN], params, known), known)
    call = infra[MAIN].modules["functionApp"].value_node
    assert call is not None
    module_params = next(
        named(p)[-1] for p in named(call) if p.type == "object_property" and text_of(named(p)[0]) == "params"
    )
    passed = main.eval(module_params)
    app = Scope(infra[FUNCTIONAPP], _with_defaults(infra[FUNCTIONAPP], passed, known), known)
    config = [r for r in infra[FUNCTIONAPP].resources_of_type("Microsoft.Web/sites/config")]
    assert len(config) == 1 and config[0].value_node is not None
    body = {text_of(named(p)[0]): named(p)[-1] for p in named(config[0].value_node) if p.type == "object_property"}
    settings = app.eval(body["properties"])
    if not isinstance(settings, dict):
        raise EvalError(f"app settings did not evaluate to an object: {settings!r}")
    return settings
