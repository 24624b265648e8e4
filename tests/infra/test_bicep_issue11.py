"""Issue 11's infra defects (6, 7, 8, 10 and 11), each as a rule over the parsed infra/ tree.

Same pattern as test_bicep_structure.py: the real tree satisfies every rule, and a targeted edit of a copy
(MUTATIONS) makes each rule fire, so none can pass vacuously. Each rule fails on the tree before the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.infra_model import (
    ACS,
    ACS_EVENTS,
    FUNCTIONAPP,
    KEYVAULT,
    MAIN,
    RBAC,
    REPO,
    SERVICEBUS,
    STORAGE,
    Decl,
    Expr,
    Infra,
    decorator_args,
    role_guid,
)

PARAMS_JSON = "main.parameters.json"
AZURE_YAML = "../azure.yaml"
GENERATED = {"acsEventGridSecret": "ACS_EVENTGRID_SECRET", "rtjOutboundSecret": "RTJ_OUTBOUND_SECRET"}
PROMPTED = {"dataverseUrl": "DATAVERSE_URL", "messageBodyColumn": "MESSAGE_BODY_COLUMN"}
AZD_GENERATE = {"azd": {"type": "generate", "config": {"length": 32, "noSpecial": True}}}
SERVICE_BUS_DATA_OWNER = "090c5cfd-751d-490a-894a-3ce6f1109419"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
SECRET_ENV = ("TWILIO_AUTH_TOKEN", "ACS_EVENTGRID_SECRET", "RTJ_OUTBOUND_SECRET")


def _params_json(infra: Infra) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(infra.texts[PARAMS_JSON])["parameters"]
    return parsed


def _mapped(infra: Infra, param: str, env: str) -> list[str]:
    value = _params_json(infra).get(param, {}).get("value")
    if value != f"${{{env}}}":
        return [f"{PARAMS_JSON}: {param} must map to ${{{env}}} with no fallback value, got {value!r}"]
    return []


def _required_param(decl: Decl | None, name: str) -> list[str]:
    if decl is None:
        return [f"param {name} missing"]
    return [f"param {name} must have no default"] if decl.value_node is not None else []


def violations_generated_secrets(infra: Infra) -> list[str]:
    """Defect 6: secrets generated once by azd and kept in the environment, not newGuid() per deployment."""
    main = infra[MAIN]
    out = [
        f"{p}: newGuid() regenerates a value on every deployment"
        for p, f in infra.files.items()
        if "newGuid(" in f.source
    ]
    for param, env in GENERATED.items():
        decl = main.params.get(param)
        out += _required_param(decl, param) + _mapped(infra, param, env)
        if decl is None:
            continue
        args = decorator_args(decl)
        if "secure" not in args:
            out.append(f"{param} must be @secure()")
        if args.get("metadata") != [AZD_GENERATE]:
            out.append(f"{param} needs @metadata({AZD_GENERATE}), got {args.get('metadata')}")
        if main.modules["keyVault"].value["params"].get(param) != Expr(param):
            out.append(f"the Key Vault secret {param} must be written from the azd-generated parameter itself")
    if main.modules["acsEvents"].value["params"].get("webhookSecret") != Expr("acsEventGridSecret"):
        out.append("the Event Grid subscription must send the same acsEventGridSecret the app reads")
    return out


def violations_required_app_config(infra: Infra) -> list[str]:
    """Defect 7: DATAVERSE_URL and MESSAGE_BODY_COLUMN are required, so azd prompts and the app always gets them."""
    out: list[str] = []
    fa = infra[FUNCTIONAPP]
    core = fa.variables["coreSettings"].value
    for param, setting in PROMPTED.items():
        for path in (MAIN, FUNCTIONAPP):
            decl = infra[path].params.get(param)
            out += [f"{path}: {v}" for v in _required_param(decl, param)]
            if decl is not None and decorator_args(decl).get("minLength") != [1]:
                out.append(f"{path}: {param} must be @minLength(1)")
        out += _mapped(infra, param, setting)
        if core.get(setting) != Expr(param):
            out.append(f"{setting} must be an unconditional app setting (coreSettings), not dropped when empty")
    return out


def _role_assignments(infra: Infra, path: str) -> list[tuple[str | None, Decl, Decl | None]]:
    """(role GUID, assignment, scope resource) for every role assignment in ``path``."""
    f = infra[path]
    return [
        (role_guid(f, res.value["properties"]["roleDefinitionId"]), res, f.resources.get(str(res.value.get("scope"))))
        for res in f.resources_of_type("Microsoft.Authorization/roleAssignments")
    ]


def violations_queue_scoped_owner(infra: Infra) -> list[str]:
    """Defect 8: Data Owner (Manage, for target-based scaling) on the app's trigger queues only."""
    out: list[str] = []
    rbac = infra[RBAC]
    owner_scopes = set()
    for guid, res, scope in _role_assignments(infra, RBAC):
        if scope is None or scope.rtype == "Microsoft.ServiceBus/namespaces":
            out.append(f"role assignment {res.name} is not scoped to one queue")
        elif guid == SERVICE_BUS_DATA_OWNER:
            if scope.rtype != "Microsoft.ServiceBus/namespaces/queues" or scope.value.get("parent") != Expr(
                "serviceBus"
            ):
                out.append(f"Data Owner assignment {res.name} must be scoped to a queue of the app's namespace")
            owner_scopes.add(str(scope.value.get("name")))
    if owner_scopes != {"activityQueueName", "callbackQueueName"}:
        out.append(f"Data Owner must be on exactly the activity and callback queues, got {sorted(owner_scopes)}")
    for module in ("appRbac", "userRbac"):
        params = infra[MAIN].modules[module].value["params"]
        for queue in ("activityQueueName", "callbackQueueName", "poisonQueueName"):
            if params.get(queue) != Expr(f"serviceBus.outputs.{queue}"):
                out.append(f"main {module} must pass {queue} from the Service Bus module")
    if "Target scaler is not supported" not in rbac.source:
        out.append("rbac.bicep must say why Manage is granted (target-based scaling)")
    return out


def _subscription(infra: Infra) -> dict[str, Any]:
    subs = infra[ACS_EVENTS].resources_of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert len(subs) == 1
    props: dict[str, Any] = subs[0].value["properties"]
    return props


def violations_webhook_secret_header(infra: Infra) -> list[str]:
    """Defect 10: the Event Grid secret travels in the X-Channel-Secret header, never in the URL."""
    out: list[str] = []
    dest = _subscription(infra).get("destination", {}).get("properties", {})
    url = str(dest.get("endpointUrl", ""))
    if "?" in url or "webhookSecret" in url:
        out.append(f"the webhook URL carries a secret or query string: {url}")
    mappings = dest.get("deliveryAttributeMappings")
    expected = [
        {
            "name": "X-Channel-Secret",
            "type": "Static",
            "properties": {"value": Expr("webhookSecret"), "isSecret": True},
        }
    ]
    if mappings != expected:
        out.append(f"deliveryAttributeMappings must be one static secret header X-Channel-Secret, got {mappings}")
    if "@secure" not in infra[ACS_EVENTS].params["webhookSecret"].decorators:
        out.append("webhookSecret must be @secure")
    return out


DIAGNOSTIC_TARGETS = {KEYVAULT: {"vault": "audit"}, SERVICEBUS: {"namespace": "allLogs"}}
DIAGNOSTIC_TARGETS[STORAGE] = {"blobService": "audit", "tableService": "audit"}


def violations_diagnostics(infra: Infra) -> list[str]:
    """Defect 11: Key Vault, Service Bus and Storage send their logs to the existing Log Analytics workspace."""
    out: list[str] = []
    for path, targets in DIAGNOSTIC_TARGETS.items():
        found = {}
        for res in infra[path].resources_of_type("Microsoft.Insights/diagnosticSettings"):
            props = res.value.get("properties", {})
            groups = [log.get("categoryGroup") for log in props.get("logs", []) if log.get("enabled") is True]
            found[str(res.value.get("scope"))] = groups
            if props.get("workspaceId") != Expr("logAnalyticsWorkspaceId"):
                out.append(f"{path}: {res.name} must send to the logAnalyticsWorkspaceId workspace")
        for scope, group in targets.items():
            if found.get(scope) != [group]:
                out.append(f"{path}: {scope} needs a diagnostic setting with category group {group!r}, got {found}")
        module = next(m for m in infra[MAIN].modules.values() if m.type_text == path)
        if module.value["params"].get("logAnalyticsWorkspaceId") != Expr("monitoring.outputs.logAnalyticsId"):
            out.append(f"main must pass the existing workspace to {path}")
    return out


def violations_dead_letter(infra: Infra) -> list[str]:
    """Defect 11: undeliverable ACS events (an inbound STOP) land in a blob container instead of being dropped."""
    out: list[str] = []
    dead = _subscription(infra).get("deadLetterWithResourceIdentity", {})
    expected = {
        "identity": {"type": "SystemAssigned"},
        "deadLetterDestination": {
            "endpointType": "StorageBlob",
            "properties": {
                "resourceId": Expr("deadLetterStorageAccountId"),
                "blobContainerName": Expr("deadLetterContainerName"),
            },
        },
    }
    if dead != expected:
        out.append(f"the event subscription must dead-letter to blob storage with the topic identity, got {dead}")
    topics = infra[ACS].resources_of_type("Microsoft.EventGrid/systemTopics")
    if not topics or topics[0].value.get("identity") != {"type": "SystemAssigned"}:
        out.append("the system topic needs a system-assigned identity to dead-letter")
    containers = [str(c.value["name"]) for c in infra[STORAGE].resources_of_type(CONTAINERS)]
    if "deadLetterContainerName" not in containers:
        out.append("storage.bicep must create the dead-letter container")
    writers = [
        (res, scope)
        for guid, res, scope in _role_assignments(infra, ACS)
        if guid == BLOB_DATA_CONTRIBUTOR and scope is not None and scope.rtype == CONTAINERS
    ]
    if len(writers) != 1 or writers[0][0].value["properties"].get("principalId") != Expr(
        "systemTopic.identity.principalId"
    ):
        out.append("the topic identity needs Storage Blob Data Contributor on the dead-letter container only")
    params = infra[MAIN].modules["acsEvents"].value["params"]
    if params.get("deadLetterContainerName") != Expr("storage.outputs.deadLetterContainerName"):
        out.append("main must pass the dead-letter container to the subscription")
    return out


CONTAINERS = "Microsoft.Storage/storageAccounts/blobServices/containers"


def violations_extra_app_settings(infra: Infra) -> list[str]:
    """Defect 11: operator-added settings survive the next provision (merged, template-managed keys win)."""
    out: list[str] = []
    decl = infra[MAIN].params.get("extraAppSettings")
    if decl is None or decl.type_text != "object" or decl.value != {}:
        out.append("main needs `param extraAppSettings object = {}`")
    out += _mapped(infra, "extraAppSettings", "EXTRA_APP_SETTINGS")
    if infra[MAIN].modules["functionApp"].value["params"].get("extraAppSettings") != Expr("extraAppSettings"):
        out.append("main must pass extraAppSettings to the function app")
    if not re.search(r"^requiredVersions:\n  azd: '>= 1\.23\.4'$", infra.texts[AZURE_YAML], re.MULTILINE):
        out.append("azure.yaml must require azd >= 1.23.4 (JSON object parameters from the environment)")
    config = infra[FUNCTIONAPP].resources_of_type("Microsoft.Web/sites/config")[0]
    merged = str(config.value["properties"])
    if not re.fullmatch(r"union\(\s*extraAppSettings\s*,.*\)", merged, re.DOTALL):
        out.append(f"app settings must be union(extraAppSettings, <template settings>...), got {merged}")
    return out


def violations_regions(infra: Infra) -> list[str]:
    """Defect 11: only Flex Consumption regions are offered (azd location prompt from the allowed list)."""
    decl = infra[MAIN].params["location"]
    args = decorator_args(decl)
    allowed = (args.get("allowed") or [[]])[0]
    out = []
    if args.get("metadata") != [{"azd": {"type": "location"}}]:
        out.append("location needs @metadata({azd: {type: 'location'}})")
    if not allowed or any(not re.fullmatch(r"[a-z]+[0-9]?", r) or "euap" in r for r in allowed):
        out.append(f"location needs an @allowed list of public Flex Consumption regions, got {allowed}")
    if "list-flexconsumption-locations" not in infra[MAIN].source:
        out.append("main.bicep must say where the region list comes from")
    return out


def violations_docs_secrets(_: Infra) -> list[str]:
    """Defect 11: the docs store secrets with `azd env set-secret`, never as plain azd environment values."""
    out = []
    for doc in ("docs/deploy.md", "docs/infra.md"):
        text = (REPO / doc).read_text(encoding="utf-8")
        for env in SECRET_ENV:
            if re.search(rf"azd env set\s+{env}\b", text):
                out.append(f"{doc}: stores {env} with plain `azd env set`")
        if "azd env set-secret TWILIO_AUTH_TOKEN" not in text:
            out.append(f"{doc}: must show `azd env set-secret TWILIO_AUTH_TOKEN`")
    return out


RULES: dict[str, Callable[[Infra], list[str]]] = {
    "generated_secrets": violations_generated_secrets,
    "required_app_config": violations_required_app_config,
    "queue_scoped_owner": violations_queue_scoped_owner,
    "webhook_secret_header": violations_webhook_secret_header,
    "diagnostics": violations_diagnostics,
    "dead_letter": violations_dead_letter,
    "extra_app_settings": violations_extra_app_settings,
    "regions": violations_regions,
    "docs_secrets": violations_docs_secrets,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_holds(infra: Infra, rule: str) -> None:
    assert RULES[rule](infra) == []


MUTATIONS = [
    ("generated_secrets", MAIN, "param rtjOutboundSecret string\n", "param rtjOutboundSecret string = newGuid()\n"),
    ("generated_secrets", MAIN, "      length: 32\n", "      length: 16\n"),
    ("generated_secrets", PARAMS_JSON, '"${ACS_EVENTGRID_SECRET}"', '"${ACS_EVENTGRID_SECRET=x}"'),
    ("required_app_config", MAIN, "param dataverseUrl string\n", "param dataverseUrl string = ''\n"),
    ("required_app_config", FUNCTIONAPP, "  MESSAGE_BODY_COLUMN: messageBodyColumn\n", ""),
    ("required_app_config", MAIN, "@minLength(1)\n@description('Logical name", "@description('Logical name"),
    ("queue_scoped_owner", RBAC, "scope: callbackQueue\n", "scope: serviceBus\n"),
    ("queue_scoped_owner", RBAC, "serviceBusDataOwner: '090c5cfd", "serviceBusDataOwner: '4f6d3b9b"),
    ("queue_scoped_owner", RBAC, "scope: poisonQueue\n", "scope: serviceBus\n"),
    ("webhook_secret_header", ACS_EVENTS, "/api/callbacks/acs'", "/api/callbacks/acs?secret=${webhookSecret}'"),
    ("webhook_secret_header", ACS_EVENTS, "isSecret: true", "isSecret: false"),
    ("webhook_secret_header", ACS_EVENTS, "name: 'X-Channel-Secret'", "name: 'X-Secret'"),
    ("diagnostics", KEYVAULT, "categoryGroup: 'audit'", "category: 'AuditEvent'"),
    ("diagnostics", STORAGE, "scope: tableService", "scope: blobService"),
    ("diagnostics", SERVICEBUS, "workspaceId: logAnalyticsWorkspaceId", "workspaceId: ''"),
    ("dead_letter", ACS_EVENTS, "type: 'SystemAssigned'", "type: 'UserAssigned'"),
    ("dead_letter", ACS, "scope: deadLetterContainer", "scope: storage"),
    ("dead_letter", ACS, "  identity: {\n    type: 'SystemAssigned'\n  }\n", ""),
    ("extra_app_settings", FUNCTIONAPP, "union(extraAppSettings, coreSettings", "union(coreSettings, extraAppSettings"),
    ("extra_app_settings", MAIN, "    extraAppSettings: extraAppSettings\n", ""),
    ("extra_app_settings", AZURE_YAML, "  azd: '>= 1.23.4'", "  azd: '>= 1.9.0'"),
    ("regions", MAIN, "  'westus3'\n", "  'westus3'\n  'eastus2euap'\n"),
    ("regions", MAIN, "    type: 'location'\n", "    type: 'resourceGroup'\n"),
]


@pytest.mark.parametrize("rule,path,old,new", MUTATIONS, ids=[f"{m[0]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_rule_catches_mutation(infra: Infra, rule: str, path: str, old: str, new: str) -> None:
    assert RULES[rule](infra.mutate(path, old, new)), f"rule {rule!r} did not catch the mutation of {path}"


def test_every_rule_has_a_mutation_or_a_docs_probe() -> None:
    assert {m[0] for m in MUTATIONS} | {"docs_secrets"} == set(RULES)


def test_docs_rule_catches_a_plain_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, infra: Infra) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "deploy.md").write_text("azd env set-secret TWILIO_AUTH_TOKEN\nazd env set RTJ_OUTBOUND_SECRET x\n")
    (docs / "infra.md").write_text("nothing about secrets\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    assert violations_docs_secrets(infra) == [
        "docs/deploy.md: stores RTJ_OUTBOUND_SECRET with plain `azd env set`",
        "docs/infra.md: must show `azd env set-secret TWILIO_AUTH_TOKEN`",
    ]
