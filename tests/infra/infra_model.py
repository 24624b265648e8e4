"""The parsed infra/ tree for the structural tests: every Bicep and JSON file, mutable copies for negative tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tree_sitter import Node

from devtools.bicep_model import PARSER, BicepFile, Decl, Expr, named, parse_bicep, text_of, to_py

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = "main.bicep"
FUNCTIONAPP = "modules/functionapp.bicep"
SERVICEBUS = "modules/servicebus.bicep"
STORAGE = "modules/storage.bicep"
KEYVAULT = "modules/keyvault.bicep"
MONITORING = "modules/monitoring.bicep"
RBAC = "modules/rbac.bicep"
ACS = "modules/acs.bicep"
ACS_EVENTS = "modules/acs-events.bicep"

__all__ = [
    "BicepFile",
    "Decl",
    "Expr",
    "Infra",
    "app_settings",
    "decorator_args",
    "iso_duration_seconds",
    "parse_bicep",
    "role_guid",
    "to_py",
]


class Infra:
    """Every infra file, parsed. ``texts`` can be mutated copies for negative tests."""

    def __init__(self, texts: dict[str, str]):
        self.texts = dict(texts)
        self.files = {p: parse_bicep(p, t) for p, t in texts.items() if p.endswith(".bicep")}

    @classmethod
    def load(cls) -> Infra:
        texts = {
            str(p.relative_to(INFRA)): p.read_text(encoding="utf-8")
            for p in sorted(INFRA.rglob("*"))
            if p.is_file() and p.suffix in (".bicep", ".json")
        }
        texts["../azure.yaml"] = (REPO / "azure.yaml").read_text(encoding="utf-8")
        return cls(texts)

    def mutate(self, path: str, old: str, new: str, count: int = 1) -> Infra:
        text = self.texts[path]
        assert text.count(old) >= 1, f"mutation anchor not found in {path}: {old!r}"
        return Infra({**self.texts, path: text.replace(old, new, count)})

    def __getitem__(self, path: str) -> BicepFile:
        return self.files[path]

    def all_resources(self) -> list[tuple[BicepFile, Decl]]:
        return [(f, r) for f in self.files.values() for r in f.resources.values()]


def app_settings(infra: Infra) -> dict[str, Any]:
    """All app settings the Function App can receive (union of every branch)."""
    fa = infra[FUNCTIONAPP]
    config = [r for r in fa.resources_of_type("Microsoft.Web/sites/config") if r.value.get("name") == "appsettings"]
    assert len(config) == 1, "exactly one sites/config 'appsettings' resource expected"
    settings: dict[str, Any] = {}

    def collect(value: Any) -> None:
        value = fa.resolve(value)
        if isinstance(value, dict):
            settings.update(value)
        elif isinstance(value, Expr):
            # union(a, b, cond ? {...} : {}) -> parse the object/identifier pieces
            for match in re.finditer(r"\b[A-Za-z_]\w*\b", value.text):
                if match.group(0) in fa.variables:
                    collect(fa.variables[match.group(0)].value)
            for obj in _object_literals(value.text):
                settings.update(obj)

    collect(config[0].value["properties"])
    site_config = fa.resources_of_type("Microsoft.Web/sites")[0].value["properties"].get("siteConfig", {})
    for item in site_config.get("appSettings", []) if isinstance(site_config, dict) else []:
        if isinstance(item, dict) and "name" in item:
            settings[item["name"]] = item.get("value")
    return settings


def _object_literals(expr_text: str) -> list[dict[str, Any]]:
    """Objects written inline inside an expression, e.g. `empty(x) ? {} : { K: v }`."""
    wrapper = parse_bicep("<expr>", f"var probe = {expr_text}\n")
    found: list[dict[str, Any]] = []

    def walk(node: Node) -> None:
        if node.type == "object":
            found.append(to_py(node))
            return
        for c in node.named_children:
            walk(c)

    walk(wrapper.variables["probe"].node)
    return found


def iso_duration_seconds(value: str) -> int:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", value)
    if not match:
        raise ValueError(f"not an ISO 8601 duration: {value!r}")
    d, h, m, s = (int(g or 0) for g in match.groups())
    return ((d * 24 + h) * 60 + m) * 60 + s


def decorator_args(decl: Decl) -> dict[str, list[Any]]:
    """Decorators of a declaration by name (``sys.`` prefix dropped) -> their literal arguments."""
    tree = PARSER.parse(f"{decl.decorators}\nparam probe string\n".encode())
    out: dict[str, list[Any]] = {}
    for node in tree.root_node.named_children:
        if node.type != "decorators":
            continue
        for decorator in named(node):
            call = named(decorator)[0]
            name = text_of(named(call)[0]).removeprefix("sys.")
            out[name] = [to_py(arg) for arg in named(named(call)[-1])]
    return out


def role_guid(f: BicepFile, expr: Any) -> str | None:
    """roleDefinitionId expression -> GUID (through `roles.x` / a var)."""
    text = str(expr)
    match = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
    if match:
        return match.group(0)
    ref = re.search(r",\s*([\w.]+)\s*\)\s*$", text)
    if not ref:
        return None
    parts = ref.group(1).split(".")
    value: Any = f.variables.get(parts[0]).value if parts[0] in f.variables else None
    for part in parts[1:]:
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None
