"""Structural checks of the Bicep under infra/ (offline: tree-sitter-bicep, no Azure).

Each rule is a ``violations_*`` function that takes an ``Infra`` (the parsed
text of every infra file) and returns a list of human-readable violations.
The real tree must produce none; the mutation tests at the bottom apply a
targeted edit to a copy of the text and assert the rule then fires, so every
rule is proven able to fail.

Needs ``tree-sitter`` and ``tree-sitter-bicep`` (installed by CI).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from tree_sitter import Node

from devtools.bicep_model import PARSER, text_of
from tests.infra.infra_model import (
    ACS,
    ACS_EVENTS,
    FUNCTIONAPP,
    KEYVAULT,
    MAIN,
    MONITORING,
    RBAC,
    REPO,
    SERVICEBUS,
    STORAGE,
    Decl,
    Expr,
    Infra,
    app_settings,
    iso_duration_seconds,
    role_guid,
)

# --------------------------------------------------------------------------
# Expected contract
# --------------------------------------------------------------------------
ROLE_GUIDS = {
    "090c5cfd-751d-490a-894a-3ce6f1109419": "Azure Service Bus Data Owner",
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
ACS_SERVICE_OWNER_GUID = "09976791-48a7-449e-bb21-39d1a415f350"  # Communication and Email Service Owner
BLOB_DATA_CONTRIBUTOR_GUID = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # the topic's dead-lettering
ACS_ROLE_GUIDS = {ACS_SERVICE_OWNER_GUID, BLOB_DATA_CONTRIBUTOR_GUID}
# role GUID -> resource type its assignment must be scoped to
ROLE_SCOPES = {
    "090c5cfd-751d-490a-894a-3ce6f1109419": "Microsoft.ServiceBus/namespaces/queues",
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Microsoft.ServiceBus/namespaces/queues",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Microsoft.ServiceBus/namespaces/queues",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Microsoft.Storage/storageAccounts",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Microsoft.Storage/storageAccounts",
    "4633458b-17de-408a-b874-0445c86b69e6": "Microsoft.KeyVault/vaults",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Microsoft.Insights/components",
    ACS_SERVICE_OWNER_GUID: "Microsoft.Communication/communicationServices",
    BLOB_DATA_CONTRIBUTOR_GUID: "Microsoft.Storage/storageAccounts/blobServices/containers",
}

APP_SETTINGS = {
    "DATAVERSE_URL",
    "AZURE_CLIENT_ID",
    "ServiceBusConnection__fullyQualifiedNamespace",
    "ServiceBusConnection__credential",
    "ServiceBusConnection__clientId",
    "ACTIVITY_QUEUE_NAME",
    "CALLBACK_QUEUE_NAME",
    "POISON_QUEUE_NAME",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "STATE_TABLE_NAME",
    "CHANNEL_PROVIDER",
    "CALLBACK_BASE_URL",
    "MESSAGE_BODY_COLUMN",
    "CONTACT_PHONE_COLUMN",
    "COMPLIANCE_COLUMN",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "TWILIO_MESSAGING_SERVICE_SID",
    "ACS_ENDPOINT",
    "ACS_FROM",
    "ACS_EVENTGRID_SECRET",
    "RTJ_OUTBOUND_SECRET",
    "RTJ_AUTH_MODE",
    "RTJ_TOKEN_AUDIENCE",
    "RTJ_TOKEN_TENANT_ID",
    "RTJ_TOKEN_CLIENT_ID",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "MULTI_ORG",
    "ORG_TABLE_NAME",
    "ORG_APP_CLIENT_ID",
    "KEY_VAULT_URI",
}
KEY_VAULT_REFERENCE_SETTINGS = {"TWILIO_AUTH_TOKEN", "ACS_EVENTGRID_SECRET", "RTJ_OUTBOUND_SECRET"}
DEPRECATED_FLEX_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_USE_PLACEHOLDER",
    "AzureWebJobsStorage",
    "AzureWebJobsDashboard",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
}
DEPRECATED_SITE_CONFIG = {"linuxFxVersion", "netFrameworkVersion", "alwaysOn", "use32BitWorkerProcess"}
REQUIRED_OUTPUTS = {
    "AZURE_FUNCTION_APP_NAME",
    "CALLBACK_BASE_URL",
    "ACTIVITY_QUEUE_NAME",
    "SERVICE_BUS_NAMESPACE",
    "KEY_VAULT_NAME",
    "DATAVERSE_SB_SECRET_NAME",
    "AZURE_CLIENT_ID",
    "AZURE_RESOURCE_GROUP",
    "AZURE_LOCATION",
    "AZURE_TENANT_ID",
}


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------
def _has_filtered_loop(node: Node) -> bool:
    if node.type == "for_statement" and any(c.type == "if_statement" for c in node.named_children):
        return True
    return any(_has_filtered_loop(c) for c in node.named_children)


def violations_syntax(infra: Infra) -> list[str]:
    out = [f"{p}: tree-sitter syntax error" for p, f in infra.files.items() if f.has_error]
    for p, f in infra.files.items():
        if _has_filtered_loop(PARSER.parse(f.source.encode("utf-8")).root_node):
            out.append(f"{p}: filtered for-loop (checkov's pycep parser cannot read it)")
        if re.search(r"'br[:/]", f.source):
            out.append(f"{p}: registry module reference (offline CI/checkov cannot see inside)")
    for p, f in infra.files.items():
        for m in f.modules.values():
            target = (Path(p).parent / m.type_text).as_posix()
            if target not in infra.files:
                out.append(f"{p}: module {m.name} points at missing file {m.type_text}")
    return out


def violations_flex_plan(infra: Infra) -> list[str]:
    fa = infra[FUNCTIONAPP]
    out: list[str] = []
    plans = fa.resources_of_type("Microsoft.Web/serverfarms")
    if len(plans) != 1:
        return [f"expected one serverfarm, found {len(plans)}"]
    plan = plans[0].value
    if plan.get("sku") != {"name": "FC1", "tier": "FlexConsumption"}:
        out.append(f"plan sku must be FC1/FlexConsumption, got {plan.get('sku')}")
    if plan.get("properties", {}).get("reserved") is not True:
        out.append("plan must be Linux (reserved: true)")
    sites = fa.resources_of_type("Microsoft.Web/sites")
    if len(sites) != 1:
        return [*out, f"expected one site, found {len(sites)}"]
    site = sites[0].value
    if site.get("kind") != "functionapp,linux":
        out.append(f"site kind must be functionapp,linux, got {site.get('kind')}")
    runtime = site.get("properties", {}).get("functionAppConfig", {}).get("runtime", {})
    if runtime.get("name") != "python":
        out.append(f"functionAppConfig.runtime.name must be python, got {runtime.get('name')}")
    version = runtime.get("version")
    if isinstance(version, Expr):
        version = fa.param_default(version.text)
        override = infra[MAIN].modules["functionApp"].value["params"].get(runtime["version"].text)
        if override is not None:
            version = override
    if version != "3.11":
        out.append(f"functionAppConfig.runtime.version must be 3.11, got {version}")
    return out


def violations_identity(infra: Infra) -> list[str]:
    fa = infra[FUNCTIONAPP]
    out: list[str] = []
    site = fa.resources_of_type("Microsoft.Web/sites")[0].value
    identity = site.get("identity", {})
    if identity.get("type") != "UserAssigned":
        out.append(f"site identity must be UserAssigned only, got {identity.get('type')}")
    if list(identity.get("userAssignedIdentities", {})) != ["${identityId}"]:
        out.append("site must attach exactly the UAMI (identityId)")
    props = site.get("properties", {})
    if props.get("keyVaultReferenceIdentity") != Expr("identityId"):
        out.append("keyVaultReferenceIdentity must be the UAMI resource id")
    auth = props.get("functionAppConfig", {}).get("deployment", {}).get("storage", {}).get("authentication", {})
    if auth.get("type") != "UserAssignedIdentity" or auth.get("userAssignedIdentityResourceId") != Expr("identityId"):
        out.append("deployment storage must authenticate with the UAMI")
    settings = app_settings(infra)
    client = Expr("identityClientId")
    for prefix in ("ServiceBusConnection", "AzureWebJobsStorage"):
        if settings.get(f"{prefix}__credential") != "managedidentity":
            out.append(f"{prefix}__credential must be managedidentity")
        if settings.get(f"{prefix}__clientId") != client:
            out.append(f"{prefix}__clientId must be the UAMI client id")
    if settings.get("AZURE_CLIENT_ID") != client:
        out.append("AZURE_CLIENT_ID must be the UAMI client id")
    if settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") != "ClientId=${identityClientId};Authorization=AAD":
        out.append("APPLICATIONINSIGHTS_AUTHENTICATION_STRING must be ClientId=<uami>;Authorization=AAD")
    for name, value in settings.items():
        text = str(value)
        if re.search(r"AccountKey=|SharedAccessKey|listKeys|listConnectionStrings", text):
            out.append(f"app setting {name} carries a key/connection string")
    main_params = infra[MAIN].modules["functionApp"].value["params"]
    if main_params.get("identityId") != Expr("identity.outputs.id"):
        out.append("main must pass the UAMI resource id to the function app")
    if main_params.get("identityClientId") != Expr("identity.outputs.clientId"):
        out.append("main must pass the UAMI client id to the function app")
    return out


def violations_app_settings(infra: Infra) -> list[str]:
    settings = app_settings(infra)
    out = [f"missing app setting {n}" for n in sorted(APP_SETTINGS - set(settings))]
    out += [f"app setting {n} is not part of the contract" for n in sorted(set(settings) - APP_SETTINGS)]
    out += [f"deprecated Flex setting {n}" for n in sorted(DEPRECATED_FLEX_SETTINGS & set(settings))]
    for p, f in infra.files.items():
        for name in DEPRECATED_FLEX_SETTINGS | DEPRECATED_SITE_CONFIG:
            if re.search(rf"(?<![\w-]){re.escape(name)}\s*:", f.source):
                out.append(f"{p}: deprecated Flex setting/property {name}")
    for name in KEY_VAULT_REFERENCE_SETTINGS:
        value = str(settings.get(name, ""))
        if not re.fullmatch(r"@Microsoft\.KeyVault\(VaultName=\$\{keyVaultName\};SecretName=\$\{\w+\}\)", value):
            out.append(f"{name} must be a Key Vault reference, got {value!r}")
    if settings.get("CALLBACK_BASE_URL") not in (Expr("callbackBaseUrl"), "https://${site.properties.defaultHostName}"):
        out.append("CALLBACK_BASE_URL must be https://<defaultHostName>")
    fa = infra[FUNCTIONAPP]
    if (
        fa.variables.get("callbackBaseUrl")
        and fa.variables["callbackBaseUrl"].value != "https://${site.properties.defaultHostName}"
    ):
        out.append("callbackBaseUrl must be https://${site.properties.defaultHostName}")
    main = infra[MAIN]
    defaults = {
        "channelProvider": "twilio",
        "contactPhoneColumn": "mobilephone",
        "complianceColumn": "donotphone",
        "stateTableName": "channelstate",
    }
    for param, expected in defaults.items():
        if main.param_default(param) != expected:
            out.append(f"main param {param} default must be {expected!r}")
    for path in (MAIN, FUNCTIONAPP):
        allowed = re.findall(r"'(\w+)'", infra[path].params["channelProvider"].decorators)
        if sorted(allowed) != ["acs", "twilio"]:
            out.append(f"{path}: channelProvider must allow exactly twilio|acs (loopback is a test double): {allowed}")
    return out


def violations_storage(infra: Infra) -> list[str]:
    st = infra[STORAGE]
    out: list[str] = []
    accounts = st.resources_of_type("Microsoft.Storage/storageAccounts")
    if len(accounts) != 1:
        return [f"expected one storage account, found {len(accounts)}"]
    props = accounts[0].value["properties"]
    expected = {
        "allowSharedKeyAccess": False,
        "minimumTlsVersion": "TLS1_2",
        "allowBlobPublicAccess": False,
        "supportsHttpsTrafficOnly": True,
    }
    for key, value in expected.items():
        if props.get(key) != value:
            out.append(f"storage {key} must be {value!r}, got {props.get(key)!r}")
    if not st.resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers"):
        out.append("deployment blob container missing")
    # The state table, always; the org registry table (multi-org) is checked in test_bicep_multi_org.py.
    tables = [
        t for t in st.resources_of_type("Microsoft.Storage/storageAccounts/tableServices/tables") if not t.condition
    ]
    if len(tables) != 1:
        out.append("state table (tableServices/tables) missing")
    elif infra[MAIN].modules["storage"].value["params"].get(str(tables[0].value["name"])) != Expr("stateTableName"):
        out.append("state table name must come from main's stateTableName")
    return out


def violations_service_bus(infra: Infra) -> list[str]:
    sb = infra[SERVICEBUS]
    out: list[str] = []
    namespaces = sb.resources_of_type("Microsoft.ServiceBus/namespaces")
    if len(namespaces) != 1:
        return [f"expected one Service Bus namespace, found {len(namespaces)}"]
    ns = namespaces[0]
    if ns.value.get("sku", {}).get("name") != "Standard":
        out.append(f"Service Bus sku must be Standard, got {ns.value.get('sku')}")
    ns_props = ns.value.get("properties", {})
    if ns_props.get("disableLocalAuth") is not False:
        out.append("namespace must keep disableLocalAuth: false (Dataverse SAS)")
    elif not re.search(
        r"//[^\n]*Dataverse[^\n]*\n(\s*//[^\n]*\n)*\s*disableLocalAuth: false", ns.text
    ) and not re.search(r"//[^\n]*\n(\s*//[^\n]*Dataverse[^\n]*\n)(\s*//[^\n]*\n)*\s*disableLocalAuth", ns.text):
        out.append("disableLocalAuth: false must be justified by a comment mentioning Dataverse")
    queues = {str(q.value["name"]): q for q in sb.resources_of_type("Microsoft.ServiceBus/namespaces/queues")}
    main_params = infra[MAIN].modules["serviceBus"].value["params"]
    defaults = {
        "activityQueueName": "activities",
        "callbackQueueName": "callbacks",
        "poisonQueueName": "activities-poison",
    }
    for param, default in defaults.items():
        if infra[MAIN].param_default(param) != default:
            out.append(f"main param {param} default must be {default!r}")
        if main_params.get(param) != Expr(param):
            out.append(f"main must pass {param} to the Service Bus module")
        if param not in queues:
            out.append(f"queue named by {param} missing")
    for param in ("activityQueueName", "callbackQueueName"):
        if param not in queues:
            continue
        props = sb.resolve(queues[param].value.get("properties"))
        if not isinstance(props, dict):
            out.append(f"{param}: properties not resolvable")
            continue
        if not isinstance(props.get("maxDeliveryCount"), int) or not 1 <= props["maxDeliveryCount"] <= 10:
            out.append(f"{param}: maxDeliveryCount must be set (1..10)")
        if props.get("deadLetteringOnMessageExpiration") is not True:
            out.append(f"{param}: deadLetteringOnMessageExpiration must be true")
        lock = props.get("lockDuration")
        if not isinstance(lock, str) or not 60 <= iso_duration_seconds(lock) <= 300:
            out.append(f"{param}: lockDuration must be between PT1M and PT5M, got {lock!r}")
    if "poisonQueueName" in queues:
        ttl = sb.resolve(queues["poisonQueueName"].value.get("properties", {})).get("defaultMessageTimeToLive")
        if not isinstance(ttl, str) or iso_duration_seconds(ttl) < 30 * 86400:
            out.append(f"poison queue TTL must be long (>= P30D), got {ttl!r}")
    return out


def violations_dataverse_sas(infra: Infra) -> list[str]:
    out: list[str] = []
    rules = [(f, r) for f, r in infra.all_resources() if r.rtype.endswith("/authorizationRules")]
    if len(rules) != 1:
        return [f"expected exactly one SAS authorization rule, found {[r.type_text for _, r in rules]}"]
    f, rule = rules[0]
    if rule.rtype != "Microsoft.ServiceBus/namespaces/queues/authorizationRules":
        out.append(f"SAS rule must be queue-scoped, got {rule.rtype}")
    parent = rule.value.get("parent")
    queue = f.resources.get(str(parent))
    if queue is None or queue.value.get("name") != Expr("activityQueueName"):
        out.append("SAS rule must hang off the activity queue")
    if rule.value.get("properties", {}).get("rights") != ["Send"]:
        out.append(f"SAS rule rights must be exactly ['Send'], got {rule.value.get('properties', {}).get('rights')}")
    # listKeys() only ever flows into a Key Vault secret value.
    for ff, res in infra.all_resources():
        for m in re.finditer(r"\blist\w*\s*\(", res.text):
            value = res.value.get("properties", {}).get("value") if isinstance(res.value, dict) else None
            if res.rtype != "Microsoft.KeyVault/vaults/secrets" or m.group(0) not in str(value):
                out.append(f"{ff.path}: {m.group(0)}) used outside a Key Vault secret value ({res.name})")
    for ff in infra.files.values():
        for decl in list(ff.variables.values()) + list(ff.outputs.values()):
            if re.search(r"\blist\w*\s*\(", decl.text):
                out.append(f"{ff.path}: {decl.kind} {decl.name} exposes a list*() result")
    secrets = [
        r
        for r in f.resources.values()
        if r.rtype == "Microsoft.KeyVault/vaults/secrets"
        and f"{rule.name}.listKeys().primaryConnectionString" in str(r.value.get("properties", {}).get("value"))
    ]
    if len(secrets) != 1:
        out.append("the SAS rule's connection string must be written to one Key Vault secret")
    elif infra[MAIN].param_default("dataverseSecretName") != "dataverse-servicebus-connection":
        out.append("dataverseSecretName default must be dataverse-servicebus-connection")
    return out


SECRET_OUTPUT_PATTERN = re.compile(
    r"listKeys|list\w*\(|connectionstring|getSecret|password|sastoken|sharedaccess", re.IGNORECASE
)


def violations_outputs(infra: Infra) -> list[str]:
    main = infra[MAIN]
    out = [f"missing output {n}" for n in sorted(REQUIRED_OUTPUTS - set(main.outputs))]
    for f in infra.files.values():
        secure = {n for n, p in f.params.items() if "@secure" in p.decorators}
        secure |= {n for n, v in f.variables.items() if any(re.search(rf"\b{s}\b", v.text) for s in secure)}
        for name, decl in f.outputs.items():
            value = text_of(decl.value_node) if decl.value_node is not None else ""
            if SECRET_OUTPUT_PATTERN.search(value) or SECRET_OUTPUT_PATTERN.search(name):
                out.append(f"{f.path}: output {name} exposes a secret ({value})")
            if any(re.search(rf"\b{s}\b", value) for s in secure):
                out.append(f"{f.path}: output {name} exposes a @secure parameter")
            if "@secure" in decl.decorators:
                out.append(f"{f.path}: output {name} is a secure output")
            if re.search(r"secret", name, re.IGNORECASE) and not re.search(r"secret_?name$", name, re.IGNORECASE):
                out.append(f"{f.path}: output {name} looks like a secret value")
    return out


def violations_roles(infra: Infra) -> list[str]:
    out: list[str] = []
    guid_re = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
    all_guids = {g.lower() for f in infra.files.values() for g in guid_re.findall(f.source)}
    expected = set(ROLE_GUIDS) | ACS_ROLE_GUIDS
    if all_guids != expected:
        out.append(
            f"role GUIDs differ: unexpected {sorted(all_guids - expected)}, missing {sorted(expected - all_guids)}"
        )
    assigned: dict[str, set[str]] = {}
    for f, res in infra.all_resources():
        if res.rtype != "Microsoft.Authorization/roleAssignments":
            continue
        props = res.value.get("properties", {})
        guid = role_guid(f, props.get("roleDefinitionId"))
        scope = f.resources.get(str(res.value.get("scope")))
        if guid is None or scope is None:
            out.append(f"{f.path}: role assignment {res.name} has an unresolvable role or scope")
            continue
        if ROLE_SCOPES.get(guid) != scope.rtype:
            out.append(f"{f.path}: role {guid} assigned at {scope.rtype}, expected {ROLE_SCOPES.get(guid)}")
        if props.get("principalId") is None:
            out.append(f"{f.path}: role assignment {res.name} without principalId")
        assigned.setdefault(f.path, set()).add(guid)
    if assigned.get(RBAC) != set(ROLE_GUIDS):
        out.append(f"rbac.bicep must assign exactly the seven data roles, got {sorted(assigned.get(RBAC, set()))}")
    if assigned.get(ACS) != ACS_ROLE_GUIDS:
        out.append("acs.bicep must assign only the ACS service role and the dead-letter writer role")
    extra = set(assigned) - {RBAC, ACS}
    if extra:
        out.append(f"role assignments outside rbac.bicep/acs.bicep: {sorted(extra)}")
    main = infra[MAIN]
    app = main.modules.get("appRbac")
    if (
        app is None
        or app.value["params"].get("principalId") != Expr("identity.outputs.principalId")
        or app.condition is not None
    ):
        out.append("main must always grant the data roles to the UAMI principal")
    user = main.modules.get("userRbac")
    if user is None or user.condition != "!empty(principalId)":
        out.append("the deploying user's roles must be gated on principalId")
    return out


def violations_monitoring(infra: Infra) -> list[str]:
    mon = infra[MONITORING]
    comps = mon.resources_of_type("Microsoft.Insights/components")
    if len(comps) != 1:
        return ["expected one Application Insights component"]
    props = {k.lower(): v for k, v in comps[0].value.get("properties", {}).items()}
    out = []
    if props.get("disablelocalauth") is not True:
        out.append("Application Insights must set DisableLocalAuth: true")
    if not props.get("workspaceresourceid"):
        out.append("Application Insights must be workspace-based")
    if not mon.resources_of_type("Microsoft.OperationalInsights/workspaces"):
        out.append("Log Analytics workspace missing")
    return out


def violations_key_vault(infra: Infra) -> list[str]:
    kv = infra[KEYVAULT]
    vaults = kv.resources_of_type("Microsoft.KeyVault/vaults")
    if len(vaults) != 1:
        return ["expected one Key Vault"]
    props = vaults[0].value["properties"]
    out = []
    for key in ("enableRbacAuthorization", "enableSoftDelete", "enablePurgeProtection"):
        if props.get(key) is not True:
            out.append(f"Key Vault {key} must be true")
    if "accessPolicies" in props:
        out.append("Key Vault must not use access policies")
    names = {
        "twilioAuthTokenSecretName": "twilio-auth-token",
        "acsEventGridSecretName": "acs-eventgrid-secret",
        "rtjOutboundSecretName": "rtj-outbound-secret",
    }
    main_kv = infra[MAIN].modules["keyVault"].value["params"]
    secret_names = infra[MAIN].variables["secretNames"].value
    for param, expected in names.items():
        passed = str(main_kv.get(param, ""))
        key = passed.rsplit(".", maxsplit=1)[-1]
        if secret_names.get(key) != expected:
            out.append(f"{param} must be {expected!r}")
    secrets = kv.resources_of_type("Microsoft.KeyVault/vaults/secrets")
    if len(secrets) != 3:
        out.append(f"expected 3 provider secrets, found {len(secrets)}")
    for s in secrets:
        value = s.value.get("properties", {}).get("value")
        if s.condition != f"!empty({value})":
            out.append(f"secret {s.name} must be created only when its value is non-empty")
        if "@secure" not in kv.params.get(str(value), Decl("param", "", s.node)).decorators:
            out.append(f"secret {s.name} value must come from a @secure param")
        if not s.value.get("properties", {}).get("contentType"):
            out.append(f"secret {s.name} must set contentType")
    main = infra[MAIN]
    decl = main.params.get("twilioAuthToken")
    if decl is None or "@secure" not in decl.decorators or decl.value != "":
        out.append("twilioAuthToken must be a @secure param defaulting to ''")
    return out


def violations_acs(infra: Infra) -> list[str]:
    main = infra[MAIN]
    out = []
    for p in ("deployAcs", "deployAcsSubscription"):
        if main.param_default(p) is not False:
            out.append(f"{p} must default to false")
    acs = main.modules.get("acs")
    if acs is None or acs.condition != "deployAcs":
        out.append("ACS module must be gated on deployAcs")
    events = main.modules.get("acsEvents")
    if (
        events is None
        or events.condition is None
        or not {"deployAcs", "deployAcsSubscription"} <= set(re.findall(r"\w+", events.condition))
        or "&&" not in events.condition
    ):
        out.append("Event Grid subscription must be gated on deployAcs && deployAcsSubscription")
    for f in infra.files.values():
        for r in f.resources.values():
            if r.rtype.startswith(("Microsoft.Communication/", "Microsoft.EventGrid/")) and f.path not in (
                ACS,
                ACS_EVENTS,
            ):
                out.append(f"{f.path}: ACS/Event Grid resource {r.name} outside the gated modules")
    if not infra[ACS].resources_of_type("Microsoft.Communication/communicationServices"):
        out.append("communicationServices resource missing")
    if not infra[ACS].resources_of_type("Microsoft.EventGrid/systemTopics"):
        out.append("Event Grid system topic missing")
    subs = infra[ACS_EVENTS].resources_of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    if len(subs) != 1:
        return [*out, "expected one event subscription"]
    props = subs[0].value["properties"]
    types = props.get("filter", {}).get("includedEventTypes")
    if sorted(types or []) != [
        "Microsoft.Communication.SMSDeliveryReportReceived",
        "Microsoft.Communication.SMSReceived",
    ]:
        out.append(f"event types must be SMSDeliveryReportReceived + SMSReceived, got {types}")
    url = props.get("destination", {}).get("properties", {}).get("endpointUrl", "")
    if url != "https://${functionHostName}/api/callbacks/acs":
        out.append(f"webhook URL must be https://<host>/api/callbacks/acs (no secret in the URL), got {url}")
    if "@secure" not in infra[ACS_EVENTS].params["webhookSecret"].decorators:
        out.append("webhookSecret must be @secure")
    endpoint = main.modules["functionApp"].value["params"].get("acsEndpoint")
    if str(endpoint) != "deployAcs ? acs.outputs.endpoint : acsEndpoint":
        out.append("ACS_ENDPOINT must come from the ACS resource when deployed, else the param")
    return out


def violations_azd(infra: Infra) -> list[str]:
    out = []
    params = json.loads(infra.texts["main.parameters.json"])["parameters"]
    for name, env in (
        ("environmentName", "${AZURE_ENV_NAME}"),
        ("location", "${AZURE_LOCATION}"),
        ("principalId", "${AZURE_PRINCIPAL_ID}"),
    ):
        if params.get(name, {}).get("value") != env:
            out.append(f"main.parameters.json: {name} must be {env}")
    main = infra[MAIN]
    for name, entry in params.items():
        if name not in main.params:
            out.append(f"main.parameters.json: unknown parameter {name}")
        value = entry.get("value")
        if not (isinstance(value, str) and re.fullmatch(r"\$\{[A-Z0-9_]+(=[^}]*)?\}", value)):
            out.append(f"main.parameters.json: {name} must be an azd ${{VAR}} placeholder, got {value!r}")
    azure_yaml = infra.texts["../azure.yaml"]
    services = re.findall(r"^  (\w[\w-]*):\s*$", azure_yaml.split("services:", 1)[-1], re.MULTILINE)
    if len(services) != 1:
        out.append(f"azure.yaml must declare exactly one service, got {services}")
    for key, value in (("project", r"\."), ("language", "python"), ("host", "function")):
        if not re.search(rf"^\s+{key}:\s*{value}\s*$", azure_yaml, re.MULTILINE):
            out.append(f"azure.yaml: service {key} must be {value}")
    service_param = infra[FUNCTIONAPP].param_default("serviceName")
    if services and service_param != services[0]:
        out.append(f"azd-service-name tag ({service_param}) must match the azure.yaml service ({services})")
    if "targetScope = 'subscription'" not in main.source:
        out.append("main.bicep must target the subscription scope")
    return out


RULES: dict[str, Callable[[Infra], list[str]]] = {
    "syntax": violations_syntax,
    "flex_plan": violations_flex_plan,
    "identity": violations_identity,
    "app_settings": violations_app_settings,
    "storage": violations_storage,
    "service_bus": violations_service_bus,
    "dataverse_sas": violations_dataverse_sas,
    "outputs": violations_outputs,
    "roles": violations_roles,
    "monitoring": violations_monitoring,
    "key_vault": violations_key_vault,
    "acs": violations_acs,
    "azd": violations_azd,
}


# --------------------------------------------------------------------------
# The real tree satisfies every rule
# --------------------------------------------------------------------------
def test_expected_files_exist(infra: Infra) -> None:
    for path in (
        MAIN,
        FUNCTIONAPP,
        SERVICEBUS,
        STORAGE,
        KEYVAULT,
        MONITORING,
        RBAC,
        ACS,
        ACS_EVENTS,
        "main.parameters.json",
    ):
        assert path in infra.texts, f"infra/{path} missing"
    assert (REPO / "azure.yaml").is_file()


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_holds(infra: Infra, rule: str) -> None:
    assert RULES[rule](infra) == []


def test_every_setting_name_is_exact(infra: Infra) -> None:
    settings = app_settings(infra)
    # Case matters for Functions connection prefixes: catch near-misses.
    lowered = {n.lower(): n for n in settings}
    for name in APP_SETTINGS:
        assert lowered.get(name.lower()) == name


# --------------------------------------------------------------------------
# Mutations: each rule must catch a violation
# --------------------------------------------------------------------------
MUTATIONS = [
    ("syntax", MAIN, "targetScope = 'subscription'", "targetScope = = 'subscription'"),
    (
        "syntax",
        RBAC,
        "resource poisonReceiver",
        "resource sbReceiverList 'Microsoft.Authorization/roleAssignments@2022-04-01' = "
        "[for x in [1]: if (true) {\n  name: 'x'\n}]\nresource poisonReceiver",
    ),
    ("flex_plan", FUNCTIONAPP, "name: 'FC1'", "name: 'Y1'"),
    ("flex_plan", FUNCTIONAPP, "param pythonVersion string = '3.11'", "param pythonVersion string = '3.12'"),
    (
        "identity",
        FUNCTIONAPP,
        "ServiceBusConnection__credential: 'managedidentity'",
        "ServiceBusConnection__credential: 'connectionstring'",
    ),
    ("identity", FUNCTIONAPP, "AzureWebJobsStorage__clientId: identityClientId", "AzureWebJobsStorage__clientId: 'x'"),
    ("identity", FUNCTIONAPP, "type: 'UserAssigned'\n", "type: 'SystemAssigned, UserAssigned'\n"),
    (
        "app_settings",
        FUNCTIONAPP,
        "STATE_TABLE_NAME: stateTableName",
        "FUNCTIONS_WORKER_RUNTIME: 'python'\n  STATE_TABLE_NAME: stateTableName",
    ),
    ("app_settings", FUNCTIONAPP, "CALLBACK_QUEUE_NAME: callbackQueueName", "CALLBACK_QUEUE: callbackQueueName"),
    (
        "app_settings",
        FUNCTIONAPP,
        "CHANNEL_PROVIDER: channelProvider",
        "CHANNEL_PROVIDER: channelProvider\n  EXTRA_SETTING: 'x'",
    ),
    ("app_settings", FUNCTIONAPP, "http20Enabled: true", "http20Enabled: true\n      linuxFxVersion: 'Python|3.11'"),
    (
        "app_settings",
        FUNCTIONAPP,
        "{ TWILIO_AUTH_TOKEN: '@Microsoft.KeyVault(VaultName=${keyVaultName};"
        "SecretName=${twilioAuthTokenSecretName})' }",
        "{ TWILIO_AUTH_TOKEN: twilioAuthTokenSecretName }",
    ),
    ("storage", STORAGE, "allowSharedKeyAccess: false", "allowSharedKeyAccess: true"),
    ("storage", STORAGE, "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'"),
    ("service_bus", SERVICEBUS, "name: 'Standard'\n    tier", "name: 'Basic'\n    tier"),
    (
        "service_bus",
        SERVICEBUS,
        "  deadLetteringOnMessageExpiration: true",
        "  deadLetteringOnMessageExpiration: false",
    ),
    (
        "service_bus",
        SERVICEBUS,
        "lockDuration: 'PT5M'\n  maxDeliveryCount",
        "lockDuration: 'PT30S'\n  maxDeliveryCount",
    ),
    ("service_bus", SERVICEBUS, "  maxDeliveryCount: 10\n  dead", "  dead"),
    ("service_bus", SERVICEBUS, "defaultMessageTimeToLive: 'P90D'", "defaultMessageTimeToLive: 'P1D'"),
    ("dataverse_sas", SERVICEBUS, "      'Send'\n", "      'Send'\n      'Listen'\n"),
    (
        "dataverse_sas",
        SERVICEBUS,
        "'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2024-01-01' = {\n  parent: activityQueue",
        "'Microsoft.ServiceBus/namespaces/authorizationRules@2024-01-01' = {\n  parent: namespace",
    ),
    (
        "dataverse_sas",
        SERVICEBUS,
        "output name string = namespace.name",
        "output name string = namespace.name\noutput cs string = dataverseSendRule.listKeys().primaryConnectionString",
    ),
    ("outputs", MAIN, "output AZURE_CLIENT_ID string", "output AZURE_CLIENT string"),
    (
        "outputs",
        MAIN,
        "output AZURE_LOCATION string = location",
        "output AZURE_LOCATION string = location\noutput RTJ string = rtjOutboundSecret",
    ),
    (
        "outputs",
        MONITORING,
        "output appInsightsId string = appInsights.id",
        "output appInsightsId string = appInsights.properties.ConnectionString",
    ),
    (
        "roles",
        RBAC,
        "serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'",
        "serviceBusDataSender: '090c5cfd-751d-490a-894a-3ce6f1109419'",
    ),
    ("roles", RBAC, "scope: vault\n", "scope: storage\n"),
    ("roles", RBAC, "scope: poisonQueue\n", "scope: serviceBus\n"),
    ("roles", ACS, "RoleId = '09976791", "RoleId = 'b24988ac-6180-42a0-ab88-20f7382dd24c'//"),
    (
        "roles",
        MAIN,
        "module userRbac 'modules/rbac.bicep' = if (!empty(principalId)) {",
        "module userRbac 'modules/rbac.bicep' = {",
    ),
    ("monitoring", MONITORING, "DisableLocalAuth: true", "DisableLocalAuth: false"),
    ("key_vault", KEYVAULT, "enablePurgeProtection: true", "enablePurgeProtection: false"),
    ("key_vault", KEYVAULT, "= if (!empty(twilioAuthToken)) {", "= {"),
    ("key_vault", MAIN, "param twilioAuthToken string = ''", "param twilioAuthToken string = 'hunter2'"),
    ("acs", MAIN, "module acs 'modules/acs.bicep' = if (deployAcs) {", "module acs 'modules/acs.bicep' = {"),
    ("acs", MAIN, "if (deployAcs && deployAcsSubscription)", "if (deployAcs)"),
    ("acs", MAIN, "param deployAcs bool = false", "param deployAcs bool = true"),
    ("acs", ACS_EVENTS, "'Microsoft.Communication.SMSReceived'\n", ""),
    ("acs", ACS_EVENTS, "/api/callbacks/acs'", "/api/callbacks/acs?secret=${webhookSecret}'"),
    ("app_settings", MAIN, "  'acs'\n])", "  'acs'\n  'loopback'\n])"),
    ("azd", "main.parameters.json", "${AZURE_PRINCIPAL_ID}", "00000000-0000-0000-0000-000000000000"),
]


@pytest.mark.parametrize("rule,path,old,new", MUTATIONS, ids=[f"{m[0]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_rule_catches_mutation(infra: Infra, rule: str, path: str, old: str, new: str) -> None:
    mutated = infra.mutate(path, old, new)
    assert RULES[rule](mutated), f"rule {rule!r} did not catch the mutation of {path}"


def test_every_rule_has_a_mutation() -> None:
    assert {m[0] for m in MUTATIONS} == set(RULES)


def test_iso_duration_parser() -> None:
    assert iso_duration_seconds("PT5M") == 300
    assert iso_duration_seconds("P14D") == 14 * 86400
    assert iso_duration_seconds("PT1H30S") == 3630
    with pytest.raises(ValueError):
        iso_duration_seconds("5 minutes")
