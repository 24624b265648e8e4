"""Relay authentication in the infra: named parameters for RTJ_AUTH_MODE and the RTJ_TOKEN_* settings.

Before this, a fresh `azd up` deployed RTJ_OUTBOUND_SECRET only and left the mode to extraAppSettings, so the RTJ
endpoint answered 503 (entra mode without token settings) while a generated secret sat unused. Same pattern as
test_bicep_issue11.py: each rule holds on the real tree and a targeted edit of a copy (MUTATIONS) makes it fire.
``relay_auth_settings`` evaluates the app settings deployed in each relay scenario (tests/infra/bicep_eval.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.bicep_model import parse_bicep
from tests.infra.bicep_eval import EvalError, Opaque, Scope, deployed_app_settings
from tests.infra.infra_model import FUNCTIONAPP, KEYVAULT, MAIN, REPO, Expr, Infra, decorator_args
from tests.infra.test_bicep_issue11 import PARAMS_JSON, _mapped

MODES = ["entra", "secret"]
# Bicep parameter -> azd environment variable (= the app setting's name) -> default.
RELAY_PARAMS = {
    "rtjAuthMode": ("RTJ_AUTH_MODE", "entra"),
    "rtjTokenAudience": ("RTJ_TOKEN_AUDIENCE", ""),
    "rtjTokenTenantId": ("RTJ_TOKEN_TENANT_ID", Expr("tenant().tenantId")),
    "rtjTokenClientId": ("RTJ_TOKEN_CLIENT_ID", ""),
}
TOKEN_SETTINGS = ("RTJ_TOKEN_AUDIENCE", "RTJ_TOKEN_TENANT_ID", "RTJ_TOKEN_CLIENT_ID")
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0b3f2a51-7c9d-4e2b-9a8c-1d2e3f405162"
CLIENT = "3c1d9e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
AUDIENCE = "api://6f2a8c1e-0b4d-4e7a-9c3f-5d6e7f809a1b"
REQUIRED = {"dataverseUrl": "https://contoso.crm.dynamics.com", "messageBodyColumn": "cr123_body"}
SECRET_REF = "@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=rtj-outbound-secret)"


def violations_relay_auth_params(infra: Infra) -> list[str]:
    """Named, azd-mapped parameters with the agreed defaults, passed through to the function app module."""
    out: list[str] = []
    main, call = infra[MAIN], infra[MAIN].modules["functionApp"].value["params"]
    for param, (env, default) in RELAY_PARAMS.items():
        decl = main.params.get(param)
        if decl is None or decl.type_text != "string":
            out.append(f"main.bicep needs `param {param} string`")
            continue
        if decl.value != default:
            out.append(f"{param} must default to {default!r}, got {decl.value!r}")
        out += _mapped(infra, param, env)
        if call.get(param) != Expr(param):
            out.append(f"main must pass {param} to the function app module, got {call.get(param)!r}")
    for path in (MAIN, FUNCTIONAPP):
        mode = infra[path].params.get("rtjAuthMode")
        if mode is None or decorator_args(mode).get("allowed") != [MODES]:
            out.append(f"{path}: rtjAuthMode must be @allowed({MODES})")
    for param in ("rtjTokenTenantId", "rtjTokenClientId"):
        decl = main.params.get(param)
        if decl is not None and decorator_args(decl).get("maxLength") != [36]:
            out.append(f"{param} must be @maxLength(36) (a GUID; the app refuses to start on anything else)")
    # The generated secret stays in Key Vault whatever the mode, so switching to secret needs no new value.
    if main.modules["keyVault"].value["params"].get("rtjOutboundSecret") != Expr("rtjOutboundSecret"):
        out.append("the Key Vault module must always receive rtjOutboundSecret")
    secret = infra[KEYVAULT].resources["rtjOutboundSecretResource"]
    if secret.condition != "!empty(rtjOutboundSecret)":
        out.append(f"the rtj-outbound-secret Key Vault secret must not depend on the mode, got if ({secret.condition})")
    return out


def _settings(infra: Infra, **params: Any) -> dict[str, Any]:
    return deployed_app_settings(infra, {"tenant().tenantId": TENANT}, **REQUIRED, **params)


def _rtj(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k.startswith("RTJ_")}


TOKENS = {"rtjTokenAudience": AUDIENCE, "rtjTokenClientId": CLIENT}
SCENARIOS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("fresh azd up", {}, {"RTJ_AUTH_MODE": "entra", "RTJ_TOKEN_TENANT_ID": TENANT}),
    (
        "entra, all set",
        {**TOKENS, "rtjTokenTenantId": OTHER_TENANT},
        {
            "RTJ_AUTH_MODE": "entra",
            "RTJ_TOKEN_AUDIENCE": AUDIENCE,
            "RTJ_TOKEN_TENANT_ID": OTHER_TENANT,
            "RTJ_TOKEN_CLIENT_ID": CLIENT,
        },
    ),
    (
        "entra, template settings win over extraAppSettings",
        {**TOKENS, "extraAppSettings": {"RTJ_AUTH_MODE": "secret", "RTJ_TOKEN_AUDIENCE": "api://other"}},
        {"RTJ_AUTH_MODE": "entra", "RTJ_TOKEN_AUDIENCE": AUDIENCE, "RTJ_TOKEN_TENANT_ID": TENANT}
        | {"RTJ_TOKEN_CLIENT_ID": CLIENT},
    ),
    ("secret", {"rtjAuthMode": "secret", **TOKENS}, {"RTJ_AUTH_MODE": "secret", "RTJ_OUTBOUND_SECRET": SECRET_REF}),
    (
        "secret, an operator's extra setting survives",
        {"rtjAuthMode": "secret", "extraAppSettings": {"RTJ_TOKEN_AUDIENCE": "api://x"}},
        {"RTJ_AUTH_MODE": "secret", "RTJ_OUTBOUND_SECRET": SECRET_REF, "RTJ_TOKEN_AUDIENCE": "api://x"},
    ),
]


def violations_relay_auth_settings(infra: Infra) -> list[str]:
    """Each mode deploys exactly the settings the app reads in it; empty token settings are omitted, never ''."""
    out: list[str] = []
    for name, params, expected in SCENARIOS:
        try:
            got = _rtj(_settings(infra, **params))
        except (EvalError, KeyError) as exc:
            out.append(f"{name}: the app settings cannot be evaluated: {exc}")
            continue
        if got != expected:
            out.append(f"{name}: RTJ app settings {got} != {expected}")
    for mode in ("open", "Entra"):
        try:
            _settings(infra, rtjAuthMode=mode)
            out.append(f"rtjAuthMode={mode!r} is deployed instead of being refused by @allowed")
        except EvalError:
            pass
    return out


RELAY_DOCS = ("docs/deploy.md", "docs/infra.md")
AZD_STEPS = ("azd env set RTJ_AUTH_MODE secret", "azd env set RTJ_TOKEN_CLIENT_ID", "azd env set RTJ_TOKEN_AUDIENCE")
# A managed key put in EXTRA_APP_SETTINGS is overwritten by the template on the next provision.
EXTRA_MANAGED = re.compile(r"EXTRA_APP_SETTINGS[^\n]*RTJ_(AUTH_MODE|TOKEN_AUDIENCE|TOKEN_TENANT_ID|TOKEN_CLIENT_ID)")
ALL_DOCS = ("README.md", "docs", "infra/README.md", "rtj-relay/README.md")


def violations_relay_auth_docs(root: Path) -> list[str]:
    """The deploy and infra docs give the azd steps per mode; no doc advises a managed key in EXTRA_APP_SETTINGS."""
    out: list[str] = []
    for doc in RELAY_DOCS:
        text = (root / doc).read_text(encoding="utf-8")
        out += [f"{doc}: missing the step `{step}`" for step in AZD_STEPS if step not in text]
    for entry in ALL_DOCS:
        path = root / entry
        for doc in sorted(path.glob("*.md")) if path.is_dir() else [path]:
            for match in EXTRA_MANAGED.finditer(doc.read_text(encoding="utf-8")):
                out.append(
                    f"{doc.relative_to(root)}: RTJ_{match.group(1)} belongs in its own azd variable, not in "
                    "EXTRA_APP_SETTINGS (the template overwrites it)"
                )
    return out


RULES: dict[str, Callable[[Infra], list[str]]] = {
    "relay_auth_params": violations_relay_auth_params,
    "relay_auth_settings": violations_relay_auth_settings,
    "relay_auth_docs": lambda _: violations_relay_auth_docs(REPO),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_holds(infra: Infra, rule: str) -> None:
    assert RULES[rule](infra) == []


MUTATIONS = [
    ("relay_auth_params", MAIN, "param rtjAuthMode string = 'entra'", "param rtjAuthMode string = 'secret'"),
    ("relay_auth_params", MAIN, "string = tenant().tenantId", "string = ''"),
    ("relay_auth_params", PARAMS_JSON, '"${RTJ_TOKEN_CLIENT_ID}"', '"${RTJ_CLIENT_ID}"'),
    ("relay_auth_params", PARAMS_JSON, '"${RTJ_AUTH_MODE}"', '"${RTJ_AUTH_MODE=secret}"'),
    (
        "relay_auth_params",
        FUNCTIONAPP,
        "  'secret'\n])\nparam rtjAuthMode",
        "  'secret'\n  'none'\n])\nparam rtjAuthMode",
    ),
    ("relay_auth_params", KEYVAULT, "if (!empty(rtjOutboundSecret))", "if (false)"),
    (
        "relay_auth_params",
        MAIN,
        "@maxLength(36)\n@description('RTJ_TOKEN_CLIENT_ID",
        "@description('RTJ_TOKEN_CLIENT_ID",
    ),
    (
        "relay_auth_settings",
        FUNCTIONAPP,
        "rtjAuthMode == 'secret' && rtjOutboundSecretConfigured",
        "rtjOutboundSecretConfigured",
    ),
    ("relay_auth_settings", FUNCTIONAPP, "empty(rtjTokenClientId) ? {} : { RTJ", "{ RTJ"),
    ("relay_auth_settings", FUNCTIONAPP, "rtjAuthMode != 'entra' ? {} : union(", "union("),
    ("relay_auth_settings", FUNCTIONAPP, "  RTJ_AUTH_MODE: rtjAuthMode\n", ""),
    (
        "relay_auth_settings",
        FUNCTIONAPP,
        "optionalSettings, rtjTokenSettings, secretSettings",
        "optionalSettings, secretSettings",
    ),
    (
        "relay_auth_settings",
        FUNCTIONAPP,
        "union(extraAppSettings, coreSettings",
        "union(coreSettings, extraAppSettings",
    ),
    (
        "relay_auth_settings",
        MAIN,
        "    rtjTokenClientId: rtjTokenClientId\n",
        "    rtjTokenClientId: rtjTokenAudience\n",
    ),
]


@pytest.mark.parametrize("rule,path,old,new", MUTATIONS, ids=[f"{m[0]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_rule_catches_mutation(infra: Infra, rule: str, path: str, old: str, new: str) -> None:
    assert RULES[rule](infra.mutate(path, old, new)), f"rule {rule!r} did not catch the mutation of {path}"


def test_every_rule_has_a_mutation_or_a_docs_probe() -> None:
    assert {m[0] for m in MUTATIONS} | {"relay_auth_docs"} == set(RULES)


def test_docs_rule_catches_a_missing_step_and_a_managed_extra_setting(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "deploy.md").write_text("\n".join(AZD_STEPS) + "\n")
    (tmp_path / "docs" / "infra.md").write_text(
        'azd env set RTJ_AUTH_MODE secret\nazd env set EXTRA_APP_SETTINGS \'{"RTJ_AUTH_MODE":"entra"}\'\n'
    )
    for other in ("README.md", "infra/README.md", "rtj-relay/README.md"):
        (tmp_path / other).parent.mkdir(exist_ok=True)
        (tmp_path / other).write_text("nothing here\n")
    assert violations_relay_auth_docs(tmp_path) == [
        "docs/infra.md: missing the step `azd env set RTJ_TOKEN_CLIENT_ID`",
        "docs/infra.md: missing the step `azd env set RTJ_TOKEN_AUDIENCE`",
        "docs/infra.md: RTJ_AUTH_MODE belongs in its own azd variable, not in EXTRA_APP_SETTINGS (the template "
        "overwrites it)",
    ]


def test_evaluator_refuses_what_it_does_not_model(infra: Infra) -> None:
    """A deployment-time value in empty() or a comparison raises instead of guessing a branch."""
    with pytest.raises(EvalError, match="empty"):
        deployed_app_settings(infra, **REQUIRED)  # tenant().tenantId unknown: empty(rtjTokenTenantId) is undecidable
    with pytest.raises(EvalError, match="maxLength"):
        _settings(infra, rtjTokenClientId=CLIENT + "-0")
    bad = infra.mutate(FUNCTIONAPP, "rtjAuthMode != 'entra' ?", "rtjAuthMode != storage.name ?")
    with pytest.raises(EvalError, match="deployment-time"):
        _settings(bad)
    assert _settings(infra)["AZURE_CLIENT_ID"] == Opaque("identity.outputs.clientId")


def test_evaluator_follows_bicep_semantics() -> None:
    """Escapes, interpolation, &&/||/!, ==/!=, ternaries, union (later keys win) and empty, on a small template."""
    f = parse_bicep(
        "probe.bicep",
        "param mode string = 'entra'\nparam extra object = {}\nparam id string = ''\n"
        "var named = { a: 'it\\'s ${mode}\\n' }\n"
        "var picked = mode != 'entra' || !empty(id) ? { B: 'x' }\n"
        "  : union(extra, { B: named.a }, empty(id) ? {} : { C: id })\n",
    )
    assert Scope(f, {"mode": "entra", "extra": {"B": "old", "D": "kept"}, "id": ""}).lookup("picked") == {
        "B": "it's entra\n",
        "D": "kept",
    }
    assert Scope(f, {"mode": "entra", "extra": {}, "id": "g"}).lookup("picked") == {"B": "x"}
    assert Scope(f, {"mode": "secret", "extra": {}, "id": ""}).lookup("picked") == {"B": "x"}
    with pytest.raises(EvalError, match="unknown identifier"):
        Scope(parse_bicep("bad.bicep", "var v = nowhere\n"), {}).lookup("v")
