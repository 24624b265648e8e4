"""The step toolkit on its own (a fake Web API client), and the shape of the provisioning package."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from provisioning.gateway import Gateway
from provisioning.tables import CHANNEL_DEFINITION, MESSAGE_PART
from provisioning.toolkit import ProvisionError, Steps, ensure_row

ROW_ID = "0a0b0c0d-0000-4000-8000-000000000001"


class FakeResponse:
    def __init__(self, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self._body = body
        self.headers = headers or {}

    def json(self) -> Any:
        return self._body


class FakeClient:
    """Answers every GET with ``rows`` and records the writes."""

    api = "https://org.example/api/data/v9.2"

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.writes: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> FakeResponse:
        if method == "GET":
            return FakeResponse({"value": self.rows})
        self.writes.append((method, path, kwargs.get("body")))
        return FakeResponse(headers={"OData-EntityId": f"{self.api}/x({ROW_ID})"})


def run(rows: list[dict[str, Any]], desired: dict[str, Any], *, dry_run: bool = False, **kwargs: Any) -> Any:
    client = FakeClient(rows)
    echoed: list[str] = []
    said: list[str] = []
    gateway = Gateway(client, dry_run=dry_run, echo=echoed.append)  # type: ignore[arg-type]
    steps = Steps(gateway, "Sol", said.append)
    outcome = ensure_row(steps, MESSAGE_PART, desired, what="part", where="msdyn_name eq 'text'", **kwargs)
    return outcome, client.writes, said, echoed, steps


def test_missing_row_is_created_in_the_solution() -> None:
    outcome, writes, said, echoed, steps = run([], {"msdyn_name": "text"})
    assert (outcome.status, outcome.id) == ("created", ROW_ID)
    assert writes == [("POST", "msdyn_channelmessageparts", {"msdyn_name": "text"})]
    assert said == ["create part"] and steps.changes == ["create part"]
    assert echoed[0].startswith("GET https://org.example/api/data/v9.2/msdyn_channelmessageparts?$select=")
    assert echoed[1].splitlines()[:2] == [
        "POST https://org.example/api/data/v9.2/msdyn_channelmessageparts",
        "  MSCRM.SolutionUniqueName: Sol",
    ]


def test_only_differences_are_patched_and_equal_rows_are_left_alone() -> None:
    row = {"msdyn_channelmessagepartid": ROW_ID, "msdyn_name": "text", "msdyn_maxlength": 10}
    outcome, writes, said, _, _ = run([row], {"msdyn_name": "text", "msdyn_maxlength": 1600})
    assert (outcome.status, outcome.changes) == ("updated", {"msdyn_maxlength": 1600})
    assert writes == [("PATCH", f"msdyn_channelmessageparts({ROW_ID})", {"msdyn_maxlength": 1600})]
    assert said == ["update part (msdyn_maxlength)"]
    outcome, writes, said, _, _ = run([row], {"msdyn_name": "text", "msdyn_maxlength": 10})
    assert (outcome.status, writes, said) == ("unchanged", [], ["part: up to date"])


def test_dry_run_echoes_and_says_would_but_writes_nothing() -> None:
    outcome, writes, said, echoed, _ = run([], {"msdyn_name": "text"}, dry_run=True, placeholder="<id>")
    assert (outcome.id, writes, said) == ("<id>", [], ["would create part"])
    assert any(line.startswith("POST ") for line in echoed)


def test_same_extra_changes_and_check_hooks() -> None:
    row = {"msdyn_channelmessagepartid": ROW_ID, "msdyn_name": "TEXT"}
    outcome, writes, _, _, _ = run(
        [row],
        {"msdyn_name": "text"},
        same={"msdyn_name": lambda current, wanted: str(current).lower() == wanted},
        extra_changes=lambda r: {"msdyn_description": "d"},
    )
    assert outcome.status == "updated"
    assert writes == [("PATCH", f"msdyn_channelmessageparts({ROW_ID})", {"msdyn_description": "d"})]

    def refuse(_: dict[str, Any]) -> None:
        raise ProvisionError("no")

    with pytest.raises(ProvisionError, match="no"):
        run([row], {"msdyn_name": "text"}, check=refuse)


def test_a_value_too_long_for_its_column_stops_before_the_request_even_in_a_dry_run() -> None:
    for dry_run in (False, True):
        client = FakeClient([])
        gateway = Gateway(client, dry_run=dry_run)  # type: ignore[arg-type]
        with pytest.raises(ProvisionError, match=r"msdyn_channeldefinition\.msdyn_description would be 101"):
            ensure_row(
                Steps(gateway, "Sol", print),
                CHANNEL_DEFINITION,
                {"msdyn_description": "x" * 101},
                what="definition",
                row_id=ROW_ID,
            )
        assert client.writes == [] and [r.method for r in gateway.log] == ["GET"]


PACKAGE = Path(__file__).resolve().parents[2] / "provisioning"


def imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("provisioning."):
            found.add(node.module.removeprefix("provisioning."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("provisioning.") for a in node.names if a.name.startswith("provisioning.")}
    return found


def test_step_modules_are_peers_that_import_only_the_toolkit_and_the_definition() -> None:
    base = {"toolkit", "tables", "definition", "rtj_definition", "gateway"}
    assert imports("outbound") <= base | {"secrets", "tile"}
    assert imports("relay") <= base
    assert imports("rtj") <= base | {"relay"}  # relay authentication is a part of the RTJ steps
    assert imports("toolkit") <= {"gateway", "tables"}
    for module in ("outbound", "rtj", "relay", "toolkit", "tables", "definition", "rtj_definition"):
        assert "provisioner" not in imports(module), module


def test_no_module_of_the_package_is_longer_than_about_400_lines() -> None:
    lengths = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 420} == {}
