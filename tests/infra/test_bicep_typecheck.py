"""The offline ARM type check (devtools.bicep_typecheck) against Microsoft's published type definitions.

The real infra/ must type-check clean; deliberately broken copies prove each kind of finding, and small
synthetic templates cover the Bicep forms the real tree does not use (nested children, loops, ternaries).
Reads the type definitions through devtools.reference_data (CHANNEL_BICEP_TYPES / CHANNEL_REFERENCE_DATA).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from devtools import bicep_typecheck, reference_data
from devtools.arm_types import TypeLibrary
from devtools.bicep_model import parse_bicep
from devtools.bicep_references import ReferenceChecker
from devtools.bicep_typecheck import BicepTypeChecker, Finding, check_paths

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


@pytest.fixture(scope="module")
def library() -> TypeLibrary:
    return TypeLibrary(reference_data.bicep_types_dir())


def check_text(library: TypeLibrary, source: str) -> list[Finding]:
    return BicepTypeChecker(library).check_file(parse_bicep("probe.bicep", source))


def test_real_infra_type_checks_clean(library: TypeLibrary) -> None:
    paths = sorted(INFRA.rglob("*.bicep"))
    resources, findings = check_paths(paths, INFRA, library)
    declared = sum(len(parse_bicep(p.name, p.read_text()).resources) for p in paths)
    assert resources == declared and resources >= 40
    assert findings == [], "\n".join(map(str, findings))


# (file under infra/, old text, new text, expected words in the finding)
BROKEN_COPIES = [
    (
        "modules/rbac.bicep",
        "vaults@2023-07-01' existing",
        "vaults@2099-01-01' existing",
        "unknown resource type or API",
    ),
    ("modules/servicebus.bicep", "  maxDeliveryCount: 10\n  dead", "  maxDeliveryCont: 10\n  dead", "unknown property"),
    ("modules/storage.bicep", "allowBlobPublicAccess: false", "allowBlobPublicaccess: false", "wrong casing"),
    ("modules/storage.bicep", "accessTier: 'Hot'", "accessTier: 'Warm'", "not an allowed value"),
    ("modules/storage.bicep", "accessTier: 'Hot'", "accessTier: 'hot'", "wrong casing of 'Hot'"),
    ("modules/functionapp.bicep", "  kind: 'functionapp'\n", "", None),  # kind is optional: no finding
    ("modules/monitoring.bicep", "    Application_Type: 'web'\n", "", "missing required property 'Application_Type'"),
    (
        "modules/functionapp.bicep",
        "    reserved: true\n",
        "    reserved: true\n    provisioningState: 'x'\n",
        "read-only",
    ),
    ("modules/servicebus.bicep", "maxSizeInMegabytes: 1024\n}", "maxSizeInMegabytes: '1024'\n}", "expected a number"),
    (
        "modules/servicebus.bicep",
        "parent: activityQueue",
        "parent: namespace",
        "needs a Microsoft.ServiceBus/namespaces/queues",
    ),
    (
        "modules/rbac.bicep",
        "parent: serviceBus\n  name: poisonQueueName",
        "parent: storage\n  name: poisonQueueName",
        "needs a Microsoft.ServiceBus/namespaces",
    ),
    ("modules/acs-events.bicep", "endpointType: 'WebHook'", "endpointType: 'Webhook'", "wrong casing of 'WebHook'"),
    ("modules/acs-events.bicep", "maxDeliveryAttempts: 30", "maxDeliveryAttempts: true", "expected a number"),
    (
        "modules/rbac.bicep",
        "existing = {\n  name: keyVaultName\n",
        "existing = {\n  name: keyVaultName\n  location: 'x'\n",
        "existing",
    ),
    (
        "modules/storage.bicep",
        "  parent: storage\n  name: 'default'\n  properties",
        "  scope: storage\n  name: 'default'\n  properties",
        "cannot be deployed onto",
    ),
]


# What the templates read from resources and how modules are called (devtools.bicep_references).
BROKEN_COPIES += [
    (
        "modules/functionapp.bicep",
        "storage.properties.primaryEndpoints.blob}",
        "storage.properties.primaryendpoints.blob}",
        "storage.properties.primaryendpoints: wrong casing: the property is 'primaryEndpoints'",
    ),
    ("modules/acs.bicep", "acs.properties.hostName", "acs.properties.hostNam", "unknown property 'hostNam'"),
    ("modules/acs.bicep", "systemTopic.identity.principalId", "systemTopic.identity.objectId", "'objectId'"),
    ("main.bicep", "identity.outputs.principalId", "identity.outputs.principalID", "wrong casing"),
    (
        "main.bicep",
        "    dataverseSendRuleName: dataverseSendRuleName\n",
        "    dataverseSendRulename: dataverseSendRuleName\n",
        "has no parameter 'dataverseSendRulename'",
    ),
    ("main.bicep", "    stateTableName: stateTableName\n", "", "missing required parameter 'stateTableName'"),
]


@pytest.mark.parametrize(
    "path,old,new,expected", BROKEN_COPIES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BROKEN_COPIES)]
)
def test_broken_copy_is_rejected(
    library: TypeLibrary, tmp_path: Path, path: str, old: str, new: str, expected: str | None
) -> None:
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    target = copy / path
    text = target.read_text()
    assert old in text, f"mutation anchor not found in {path}: {old!r}"
    target.write_text(text.replace(old, new, 1))
    _, findings = check_paths(sorted(copy.rglob("*.bicep")), copy, library)
    messages = [str(f) for f in findings]
    if expected is None:
        assert messages == []
    else:
        assert any(expected in m and m.startswith(path) for m in messages), messages


def test_string_bounds_and_missing_required_property(library: TypeLibrary) -> None:
    findings = check_text(
        library,
        "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n  kind: 'StorageV2'\n}\n",
    )
    assert [(f.line, f.where, f.message) for f in findings] == [
        (2, "name", "'x' is shorter than the minimum length 3"),
        (1, "", "missing required property 'sku'"),
        (1, "", "missing required property 'location'"),
    ]


def _synthetic_library(root: Path) -> TypeLibrary:
    """A two-entry copy of the bicep-types layout plus an upstream index that knows one more API version."""
    folder = root / "types" / "fake" / "microsoft.fake" / "2020-01-01"
    folder.mkdir(parents=True)
    types = [
        {"$type": "StringType"},
        {"$type": "ObjectType", "name": "things", "properties": {"name": {"type": {"$ref": "#/0"}, "flags": 9}}},
        {"$type": "ResourceType", "name": "Microsoft.Fake/things@2020-01-01", "body": {"$ref": "#/1"}},
    ]
    (folder / "types.json").write_text(json.dumps(types))
    index = {"files": {"fake/microsoft.fake/2020-01-01": ["Microsoft.Fake/things"]}}
    index["files"]["fake/microsoft.fake/2021-01-01"] = ["Microsoft.Fake/things"]
    with gzip.open(root / "upstream-index.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(index, handle)
    return TypeLibrary(root / "types")


def test_published_but_absent_from_the_copy_versus_never_published(tmp_path: Path) -> None:
    library = _synthetic_library(tmp_path)
    findings = check_text(
        library,
        "resource a 'Microsoft.Fake/things@2020-01-01' = {\n  name: 'a'\n}\n"
        "resource b 'Microsoft.Fake/things@2021-01-01' = {\n  name: 'b'\n}\n"
        "resource c 'Microsoft.Fake/things@2022-01-01' = {\n  name: 'c'\n}\n",
    )
    assert [(f.symbol, f.message) for f in findings] == [
        (
            "b",
            "Microsoft.Fake/things@2021-01-01 is published (bicep-types-az generated/fake/microsoft.fake/2021-01-01) "
            f"but missing from the reference data at {tmp_path / 'types'}: add that types.json to the copy",
        ),
        (
            "c",
            "unknown resource type or API version Microsoft.Fake/things@2022-01-01 "
            "(versions on file: 2020-01-01; published API versions: 2020-01-01, 2021-01-01)",
        ),
    ]


def test_expressions_are_skipped_but_their_object_literals_are_checked(library: TypeLibrary) -> None:
    source = """
param tier string
param on bool
var good = { enabled: true, days: 7 }
var bad = { enabled: true, dayz: 7 }
resource blob 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  name: 'default'
  properties: {
    deleteRetentionPolicy: on ? good : bad
    containerDeleteRetentionPolicy: on ? { enabled: true } : { Enabled: false }
    defaultServiceVersion: tier
  }
}
"""
    messages = [f"{f.where}: {f.message}" for f in check_text(library, source)]
    assert messages == [
        "properties.deleteRetentionPolicy.dayz: unknown property 'dayz'; did you mean 'days'?",
        "properties.containerDeleteRetentionPolicy.Enabled: wrong casing: the property is 'enabled'",
    ]


def test_loops_conditions_and_nested_children(library: TypeLibrary) -> None:
    source = """
param names array
resource ns 'Microsoft.ServiceBus/namespaces@2024-01-01' = if (true) {
  name: 'ns'
  location: 'westeurope'
  sku: { name: 'Standard' }
  resource q 'queues' = {
    name: 'q'
    properties: { lockDuraton: 'PT1M' }
  }
}
resource queues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for n in names: {
  parent: ns
  name: n
  properties: { requiresSession: 'yes' }
}]
resource rules 'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2024-01-01' = [for n in names: if (n != 'x') {
  name: n
  properties: { rights: [for r in ['Send', 'Lisen']: r] }
}]
"""
    messages = sorted(f"{f.symbol} {f.where}: {f.message}" for f in check_text(library, source))
    assert messages == [
        "ns properties.lockDuraton: unknown property 'lockDuraton'; did you mean 'lockDuration'?",
        "queues properties.requiresSession: expected a boolean, got string \"'yes'\"",
    ]


def test_extension_scope_needs_an_extension_type(library: TypeLibrary) -> None:
    source = """
resource st 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'st'
}
resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id'
  location: 'westeurope'
  scope: st
}
resource diag 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'd'
  scope: st
  properties: { metrics: [{ category: 'Transaction', enabled: true }] }
}
"""
    messages = [f"{f.symbol}: {f.message}" for f in check_text(library, source)]
    assert (
        len(messages) == 1
        and messages[0].startswith("uami: ")
        and "cannot be deployed onto another resource" in messages[0]
    )


def test_cli_reports_and_exits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bicep_typecheck.main([str(INFRA)]) == 0
    assert " 0 findings" in capsys.readouterr().out
    broken = tmp_path / "infra"
    broken.mkdir()
    (broken / "main.bicep").write_text("resource x 'Microsoft.Nope/things@2020-01-01' = {\n  name: 'x'\n}\n")
    assert bicep_typecheck.main([str(broken)]) == 1
    assert "unknown resource type or API version Microsoft.Nope/things@2020-01-01" in capsys.readouterr().out
    monkeypatch.setenv(reference_data.ENV_BICEP_TYPES, str(tmp_path / "absent"))
    assert bicep_typecheck.main([str(INFRA)]) == 2
    assert reference_data.ENV_BICEP_TYPES in capsys.readouterr().err


def test_property_reads_stop_where_the_type_stops(library: TypeLibrary) -> None:
    source = """
resource st 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'stx'
}
output tag string = st.tags.anything
output key string = st.listKeys().keys[0].value
output maybe string = st.?properties.whatever
output id string = st.id
output blob string = st.properties.primaryEndpoints.blobb
"""
    files = {"probe.bicep": parse_bicep("probe.bicep", source)}
    findings = ReferenceChecker(files, library).check()
    assert [(f.line, f.where, f.message) for f in findings] == [
        (9, "st.properties.primaryEndpoints.blobb", "unknown property 'blobb'; did you mean 'blob'?")
    ]
