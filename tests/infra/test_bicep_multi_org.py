"""Issue 15 in the infra: MULTI_ORG, the org registry table, the app registration setting, KEY_VAULT_URI, the
secret-reading role and the outputs the ISV copies into the one manual step (the federated identity credential).

Same pattern as test_bicep_relay_auth.py: each rule holds on the real tree, and a targeted edit of a copy
(MUTATIONS) makes it fire. ``deployed_app_settings`` evaluates the app settings of each scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_eval import EvalError, Opaque, deployed_app_settings
from tests.infra.infra_model import FUNCTIONAPP, MAIN, RBAC, REPO, STORAGE, Expr, Infra, decorator_args, role_guid
from tests.infra.test_bicep_issue11 import PARAMS_JSON, _params_json

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "3c1d9e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
REQUIRED = {"dataverseUrl": "https://contoso.crm.dynamics.com", "messageBodyColumn": "cr123_body"}
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
ORG_SETTINGS = ("MULTI_ORG", "ORG_TABLE_NAME", "ORG_APP_CLIENT_ID", "KEY_VAULT_URI")
# Bicep parameter -> (type, default, main.parameters.json value)
PARAMS: dict[str, tuple[str, Any, str]] = {
    "multiOrg": ("bool", False, "${MULTI_ORG=false}"),
    "orgTableName": ("string", "channelorgs", "${ORG_TABLE_NAME}"),
    "orgAppClientId": ("string", "", "${ORG_APP_CLIENT_ID}"),
}
OUTPUTS = {
    "KEY_VAULT_URI": Expr("keyVault.outputs.uri"),
    "MANAGED_IDENTITY_PRINCIPAL_ID": Expr("identity.outputs.principalId"),
    "ORG_FIC_SUBJECT": Expr("identity.outputs.principalId"),  # the MI's object (principal) id, not its client id
    "ORG_FIC_ISSUER": "${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0",
    "ORG_FIC_AUDIENCE": "api://AzureADTokenExchange",
}


def violations_multi_org_params(infra: Infra) -> list[str]:
    """Named, azd-mapped parameters with the agreed defaults, passed to the storage and function app modules."""
    out: list[str] = []
    main, mapped = infra[MAIN], _params_json(infra)
    for param, (kind, default, env) in PARAMS.items():
        decl = main.params.get(param)
        if decl is None or decl.type_text != kind:
            out.append(f"main.bicep needs `param {param} {kind}`")
            continue
        if decl.value != default:
            out.append(f"{param} must default to {default!r}, got {decl.value!r}")
        if mapped.get(param, {}).get("value") != env:
            out.append(f"{PARAMS_JSON}: {param} must map to {env}, got {mapped.get(param)!r}")
    limits = {"orgTableName": {"minLength": [3], "maxLength": [63]}, "orgAppClientId": {"maxLength": [36]}}
    for param, expected in limits.items():
        decl = main.params.get(param)
        got = {k: v for k, v in decorator_args(decl).items() if k in expected} if decl else {}
        if got != expected:
            out.append(f"{param} must carry {expected} (a table name / a GUID), got {got}")
    app = main.modules["functionApp"].value["params"]
    for param in PARAMS:
        if app.get(param) != Expr(param):
            out.append(f"main must pass {param} to the function app module, got {app.get(param)!r}")
    storage = main.modules["storage"].value["params"]
    for param in ("multiOrg", "orgTableName"):
        if storage.get(param) != Expr(param):
            out.append(f"main must pass {param} to the storage module, got {storage.get(param)!r}")
    return out


def _settings(infra: Infra, **params: Any) -> dict[str, Any]:
    got = deployed_app_settings(infra, {"tenant().tenantId": TENANT}, **REQUIRED, **params)
    return {k: v for k, v in got.items() if k in ORG_SETTINGS}


VAULT = Opaque("keyVault.outputs.uri")
SCENARIOS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("single org (default)", {}, {"MULTI_ORG": "false", "KEY_VAULT_URI": VAULT}),
    (
        "single org, an app id alone deploys nothing",
        {"orgAppClientId": APP},
        {"MULTI_ORG": "false", "KEY_VAULT_URI": VAULT},
    ),
    (
        "multi-org, app registration not created yet",
        {"multiOrg": True},
        {"MULTI_ORG": "true", "ORG_TABLE_NAME": "channelorgs", "KEY_VAULT_URI": VAULT},
    ),
    (
        "multi-org",
        {"multiOrg": True, "orgAppClientId": APP, "orgTableName": "isvorgs"},
        {"MULTI_ORG": "true", "ORG_TABLE_NAME": "isvorgs", "ORG_APP_CLIENT_ID": APP, "KEY_VAULT_URI": VAULT},
    ),
    (
        "the template wins over extraAppSettings",
        {"extraAppSettings": {"MULTI_ORG": "true", "KEY_VAULT_URI": "https://other.vault.azure.net"}},
        {"MULTI_ORG": "false", "KEY_VAULT_URI": VAULT},
    ),
]


def violations_multi_org_settings(infra: Infra) -> list[str]:
    """Each scenario deploys exactly the org settings the app reads; empty ones are omitted, never ''."""
    out: list[str] = []
    for name, params, expected in SCENARIOS:
        try:
            got = _settings(infra, **params)
        except (EvalError, KeyError) as exc:
            out.append(f"{name}: the app settings cannot be evaluated: {exc}")
            continue
        if got != expected:
            out.append(f"{name}: org app settings {got} != {expected}")
    if infra[MAIN].modules["functionApp"].value["params"].get("keyVaultUri") != Expr("keyVault.outputs.uri"):
        out.append("KEY_VAULT_URI must be the deployed vault's URI (keyVault.outputs.uri)")
    return out


def violations_multi_org_table(infra: Infra) -> list[str]:
    """The org registry table exists in the state account exactly when multiOrg is true, named by orgTableName."""
    tables = infra[STORAGE].resources_of_type("Microsoft.Storage/storageAccounts/tableServices/tables")
    org = [t for t in tables if t.value.get("name") == Expr("orgTableName")]
    if len(org) != 1:
        return ["storage.bicep needs one tableServices/tables resource named orgTableName"]
    out = [] if org[0].condition == "multiOrg" else [f"the org table must be `if (multiOrg)`, got {org[0].condition!r}"]
    if org[0].value.get("parent") != Expr("tableService"):
        out.append("the org table must be a table of the state account's table service")
    if infra[STORAGE].param_default("multiOrg") is not False:
        out.append("storage.bicep multiOrg must default to false")
    return out


def violations_multi_org_secrets_role(infra: Infra) -> list[str]:
    """The app identity reads the per-org secrets: Key Vault Secrets User on the same vault KEY_VAULT_URI names."""
    out: list[str] = []
    rbac = infra[RBAC]
    assignments = [
        r
        for r in rbac.resources_of_type("Microsoft.Authorization/roleAssignments")
        if role_guid(rbac, r.value.get("properties", {}).get("roleDefinitionId")) == KEY_VAULT_SECRETS_USER
    ]
    if not any(r.value.get("scope") == Expr("vault") for r in assignments):
        out.append("rbac.bicep must assign Key Vault Secrets User scoped to the vault")
    call = infra[MAIN].modules["appRbac"].value["params"]
    if call.get("principalId") != Expr("identity.outputs.principalId"):
        out.append("the app identity must get the data roles (appRbac principalId)")
    if call.get("keyVaultName") != Expr("keyVault.outputs.name"):
        out.append("the app identity's Key Vault role must be on the deployed vault")
    return out


def violations_multi_org_outputs(infra: Infra) -> list[str]:
    """What the ISV copies into the manual step, and no Microsoft Graph resource the offline check cannot validate."""
    outputs = infra[MAIN].outputs
    out = [
        f"output {name} must be {value!r}, got {outputs[name].value if name in outputs else None!r}"
        for name, value in OUTPUTS.items()
        if name not in outputs or outputs[name].value != value
    ]
    for path, f in infra.files.items():
        if "Microsoft.Graph/" in f.source or "extension microsoftGraph" in f.source:
            out.append(f"{path}: Microsoft Graph resources cannot be type-checked offline (no Graph types in the data)")
    return out


DOC = "docs/multi-org-identity.md"
DOC_STEPS = (
    "az ad app create",
    "--sign-in-audience AzureADMultipleOrgs",
    "az ad app federated-credential create",
    "api://AzureADTokenExchange",
    "ORG_FIC_ISSUER",
    "ORG_FIC_SUBJECT",
    "azd env set ORG_APP_CLIENT_ID",
    "azd env set MULTI_ORG true",
    "/adminconsent?client_id=",
    "channel provision",
    "Key Vault Secrets User",
)


def violations_multi_org_docs(root: Path) -> list[str]:
    """The identity doc gives the manual step's exact commands, the consent URL and the azd settings."""
    path = root / DOC
    if not path.exists():
        return [f"{DOC} missing"]
    text = path.read_text(encoding="utf-8")
    out = [f"{DOC}: missing `{step}`" for step in DOC_STEPS if step not in text]
    infra_doc = (root / "docs/infra.md").read_text(encoding="utf-8")
    out += [f"docs/infra.md: parameter `{p}` not documented" for p in PARAMS if f"`{p}`" not in infra_doc]
    return out


RULES: dict[str, Callable[[Infra], list[str]]] = {
    "multi_org_params": violations_multi_org_params,
    "multi_org_settings": violations_multi_org_settings,
    "multi_org_table": violations_multi_org_table,
    "multi_org_secrets_role": violations_multi_org_secrets_role,
    "multi_org_outputs": violations_multi_org_outputs,
    "multi_org_docs": lambda _: violations_multi_org_docs(REPO),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_holds(infra: Infra, rule: str) -> None:
    assert RULES[rule](infra) == []


MUTATIONS = [
    ("multi_org_params", MAIN, "param multiOrg bool = false", "param multiOrg bool = true"),
    ("multi_org_params", MAIN, "param orgTableName string = 'channelorgs'", "param orgTableName string = 'orgs'"),
    ("multi_org_params", PARAMS_JSON, '"${ORG_APP_CLIENT_ID}"', '"${ORG_CLIENT_ID}"'),
    ("multi_org_params", PARAMS_JSON, '"${MULTI_ORG=false}"', '"${MULTI_ORG=true}"'),
    ("multi_org_params", MAIN, "@maxLength(36)\n@description('ORG_APP_CLIENT_ID", "@description('ORG_APP_CLIENT_ID"),
    (
        "multi_org_params",
        MAIN,
        "    multiOrg: multiOrg\n    orgTableName: orgTableName\n    logAnalytics",
        "    logAnalytics",
    ),
    ("multi_org_settings", FUNCTIONAPP, "  MULTI_ORG: multiOrg ? 'true' : 'false'\n", ""),
    ("multi_org_settings", FUNCTIONAPP, "multiOrg && !empty(orgAppClientId) ?", "!empty(orgAppClientId) ?"),
    ("multi_org_settings", FUNCTIONAPP, "var orgTableSettings = multiOrg ?", "var orgTableSettings = true ?"),
    ("multi_org_settings", FUNCTIONAPP, "secretSettings, orgTableSettings, orgAppSettings)", "secretSettings)"),
    ("multi_org_settings", FUNCTIONAPP, "union(extraAppSettings, coreSettings", "union(coreSettings, extraAppSettings"),
    ("multi_org_settings", MAIN, "keyVaultUri: keyVault.outputs.uri", "keyVaultUri: keyVault.outputs.name"),
    ("multi_org_table", STORAGE, "tables@2023-05-01' = if (multiOrg) {", "tables@2023-05-01' = {"),
    ("multi_org_table", STORAGE, "  name: orgTableName\n}", "  name: 'channelorgs'\n}"),
    ("multi_org_secrets_role", RBAC, "scope: vault\n", "scope: storage\n"),
    (
        "multi_org_secrets_role",
        MAIN,
        "    keyVaultName: keyVault.outputs.name\n    appInsightsName",
        "    keyVaultName: 'kv-other'\n    appInsightsName",
    ),
    (
        "multi_org_outputs",
        MAIN,
        "output ORG_FIC_SUBJECT string = identity.outputs.principalId",
        "output ORG_FIC_SUBJECT string = identity.outputs.clientId",
    ),
    ("multi_org_outputs", MAIN, "${tenant().tenantId}/v2.0'", "${tenant().tenantId}/'"),
    ("multi_org_outputs", MAIN, "output ORG_FIC_AUDIENCE string = 'api://AzureADTokenExchange'", ""),
    (
        "multi_org_outputs",
        MAIN,
        "targetScope = 'subscription'",
        "targetScope = 'subscription'\nextension microsoftGraphV1",
    ),
]


@pytest.mark.parametrize("rule,path,old,new", MUTATIONS, ids=[f"{m[0]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_rule_catches_mutation(infra: Infra, rule: str, path: str, old: str, new: str) -> None:
    assert RULES[rule](infra.mutate(path, old, new)), f"rule {rule!r} did not catch the mutation of {path}"


def test_every_rule_has_a_mutation_or_a_docs_probe() -> None:
    assert {m[0] for m in MUTATIONS} | {"multi_org_docs"} == set(RULES)


def test_docs_rule_catches_a_missing_step(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "infra.md").write_text("`multiOrg` `orgTableName`\n")
    assert violations_multi_org_docs(tmp_path) == [f"{DOC} missing"]
    (tmp_path / DOC).write_text("\n".join(s for s in DOC_STEPS if s != "az ad app federated-credential create"))
    assert violations_multi_org_docs(tmp_path) == [
        f"{DOC}: missing `az ad app federated-credential create`",
        "docs/infra.md: parameter `orgAppClientId` not documented",
    ]


def test_an_org_table_name_outside_the_table_rules_is_refused(infra: Infra) -> None:
    with pytest.raises(EvalError, match="minLength"):
        _settings(infra, multiOrg=True, orgTableName="ab")
    with pytest.raises(EvalError, match="maxLength"):
        _settings(infra, multiOrg=True, orgAppClientId=APP + "-0")
