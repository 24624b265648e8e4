"""The shape of shared/: every module imports, no import cycle, small modules, neutral dependencies."""

from __future__ import annotations

import ast
import importlib
import inspect
import typing
from pathlib import Path

from shared.app.config import ChannelConfig
from shared.settings import Settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in SHARED.rglob("*.py"):
        parts = list(path.relative_to(SHARED.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The shared.* modules ``name`` imports (module level and lazy imports alike)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def _all_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_every_module_of_shared_imports() -> None:
    for name in _modules():
        importlib.import_module(name)


def test_there_is_no_import_cycle_in_shared() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert graph["shared.app.activity"], "the walker found no imports: it is broken"


def test_modules_stay_small_and_dependencies_point_inwards() -> None:
    modules = _modules()
    known = set(modules)
    for name, path in modules.items():
        assert len(path.read_text().splitlines()) <= MAX_LINES, f"{name} is over {MAX_LINES} lines"
        imported = _imports(name, path, known)
        if name.startswith("shared.domain"):
            assert not {m for m in imported if not m.startswith("shared.domain")}, f"{name} imports outside the domain"
        assert not any(m.startswith("azure.functions") for m in _all_imports(path)), f"{name} imports azure.functions"
    assert "shared.settings" not in _imports("shared.providers.acs", modules["shared.providers.acs"], known)
    assert "shared.domain.context" not in _imports("shared.domain.rtj", modules["shared.domain.rtj"], known)
    for name, path in modules.items():
        if name.startswith("shared.app."):
            assert len(path.read_text().splitlines()) <= 250, f"use-case module {name} is over 250 lines"


def test_callback_processing_has_one_type_and_no_default() -> None:
    parameter = inspect.signature(ChannelConfig).parameters["callback_processing"]
    assert parameter.default is inspect.Parameter.empty
    hints = typing.get_type_hints(ChannelConfig)
    assert hints["callback_processing"] == typing.get_type_hints(Settings)["callback_processing"]
    assert Settings.model_fields["callback_processing"].default == "queued"
