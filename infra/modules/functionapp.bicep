// Flex Consumption (FC1, Linux) Function App running Python 3.11.
// All connections are identity-based with the user-assigned identity; the
// runtime is declared in functionAppConfig.runtime, so none of the settings
// that Flex Consumption deprecates appear here.
param name string
param planName string
param location string
param tags object = {}

@description('azd service name (azure.yaml) used to find the app on `azd deploy`.')
param serviceName string = 'api'

param identityId string
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param stateTableName string

param appInsightsName string
param keyVaultName string

@description('The vault URI (KEY_VAULT_URI): per-org provider secrets are read from it by name.')
param keyVaultUri string

param serviceBusFullyQualifiedNamespace string
param activityQueueName string
param callbackQueueName string
param poisonQueueName string

@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

// ---- application configuration (the app's public settings contract) ----
@minLength(1)
param dataverseUrl string

@allowed([
  'twilio'
  'acs'
])
param channelProvider string = 'twilio'

@minLength(1)
param messageBodyColumn string
param contactPhoneColumn string = 'mobilephone'
param complianceColumn string = 'donotphone'
param twilioAccountSid string = ''
param twilioFrom string = ''
param twilioMessagingServiceSid string = ''
param acsEndpoint string = ''
param acsFrom string = ''

// Key Vault secret names and whether each secret exists (a Key Vault
// reference to a missing secret would hand the raw reference string to the
// app, so the setting is omitted instead).
param twilioAuthTokenSecretName string
param twilioAuthTokenConfigured bool = false
param acsEventGridSecretName string
param acsEventGridSecretConfigured bool = true
param rtjOutboundSecretName string
param rtjOutboundSecretConfigured bool = true

// Relay authentication of POST /api/rtj/outbound (docs/real-time-journeys.md).
@allowed([
  'entra'
  'secret'
])
param rtjAuthMode string = 'entra'
param rtjTokenAudience string = ''
param rtjTokenTenantId string = ''
param rtjTokenClientId string = ''

// Many orgs (MULTI_ORG): the registry table and the multi-tenant app registration whose federated
// credential is this app's managed identity (docs/multi-org-identity.md).
param multiOrg bool = false
param orgTableName string = 'channelorgs'
param orgAppClientId string = ''

@description('Operator-added app settings (main.bicep extraAppSettings); the settings below win on a clash.')
param extraAppSettings object = {}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  //checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption is region-dependent and needs always-ready instances (cost); this single-region workload tolerates a zone outage via Service Bus retries.
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  //checkov:skip=CKV_AZURE_222:Public ingress is required: Twilio/ACS Event Grid callbacks and the Dataverse real-time journeys call reach the app from the internet; each endpoint authenticates the caller (signature / shared secret).
  //checkov:skip=CKV_AZURE_17:Callers (Twilio, Event Grid, Dataverse) cannot present client certificates; authentication is done per endpoint in the app.
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero by design; always-ready instances would add cost for a queue-driven workload.
  //checkov:skip=CKV_AZURE_213:Health check (siteConfig.healthCheckPath) is not supported on Flex Consumption; the platform manages instance health.
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No basic (publishing profile) auth: azd deploy uses Entra ID.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

var callbackBaseUrl = 'https://${site.properties.defaultHostName}'

// Always present.
var coreSettings = {
  // Host storage, identity-based.
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Service Bus trigger/output connection "ServiceBusConnection", identity-based.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId
  // Telemetry with Entra auth (App Insights local auth is disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Identity the app code uses (ManagedIdentityCredential / DefaultAzureCredential).
  AZURE_CLIENT_ID: identityClientId
  ACTIVITY_QUEUE_NAME: activityQueueName
  CALLBACK_QUEUE_NAME: callbackQueueName
  POISON_QUEUE_NAME: poisonQueueName
  STATE_TABLE_NAME: stateTableName
  CHANNEL_PROVIDER: channelProvider
  CALLBACK_BASE_URL: callbackBaseUrl
  DATAVERSE_URL: dataverseUrl
  MESSAGE_BODY_COLUMN: messageBodyColumn
  CONTACT_PHONE_COLUMN: contactPhoneColumn
  COMPLIANCE_COLUMN: complianceColumn
  RTJ_AUTH_MODE: rtjAuthMode
  MULTI_ORG: multiOrg ? 'true' : 'false'
  KEY_VAULT_URI: keyVaultUri
}

// Optional plain settings: omitted when the parameter is empty.
var optionalSettings = union(
  empty(twilioAccountSid) ? {} : { TWILIO_ACCOUNT_SID: twilioAccountSid },
  empty(twilioFrom) ? {} : { TWILIO_FROM: twilioFrom },
  empty(twilioMessagingServiceSid) ? {} : { TWILIO_MESSAGING_SERVICE_SID: twilioMessagingServiceSid },
  empty(acsEndpoint) ? {} : { ACS_ENDPOINT: acsEndpoint },
  empty(acsFrom) ? {} : { ACS_FROM: acsFrom }
)

// Many orgs: the registry table, and the app registration only when it has a value (a missing one is
// named by the app when it first needs a token for a non-loopback org).
var orgTableSettings = multiOrg ? { ORG_TABLE_NAME: orgTableName } : {}
var orgAppSettings = multiOrg && !empty(orgAppClientId) ? { ORG_APP_CLIENT_ID: orgAppClientId } : {}

// Relay authentication: the app gets only the settings of the chosen mode.
// entra: each token setting only when it has a value (a missing one makes the
// endpoint answer 503 naming it); the secret is not deployed.
var rtjTokenSettings = rtjAuthMode != 'entra' ? {} : union(
  empty(rtjTokenAudience) ? {} : { RTJ_TOKEN_AUDIENCE: rtjTokenAudience },
  empty(rtjTokenTenantId) ? {} : { RTJ_TOKEN_TENANT_ID: rtjTokenTenantId },
  empty(rtjTokenClientId) ? {} : { RTJ_TOKEN_CLIENT_ID: rtjTokenClientId }
)

// Secrets: Key Vault references resolved with keyVaultReferenceIdentity (the
// UAMI, which holds Key Vault Secrets User); omitted when the secret does not
// exist. RTJ_OUTBOUND_SECRET only in secret mode (its Key Vault secret exists in both).
var secretSettings = union(
  twilioAuthTokenConfigured ? { TWILIO_AUTH_TOKEN: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${twilioAuthTokenSecretName})' } : {},
  acsEventGridSecretConfigured ? { ACS_EVENTGRID_SECRET: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${acsEventGridSecretName})' } : {},
  rtjAuthMode == 'secret' && rtjOutboundSecretConfigured ? { RTJ_OUTBOUND_SECRET: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${rtjOutboundSecretName})' } : {}
)

// The checkov skips below are for checks that target the 'web'/'logs'/
// 'authsettings' config sections and do not apply to this 'appsettings'
// resource. (pycep, checkov's parser, rejects more than 4 consecutive comment
// lines inside an object, hence the split.)
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:Not applicable to 'appsettings'. The HTTP endpoints are public webhooks authenticated in code (provider signatures, shared secrets), not by Easy Auth.
  //checkov:skip=CKV_AZURE_63:Not applicable to 'appsettings' (App Service HTTP logging); logs go to Application Insights.
  //checkov:skip=CKV_AZURE_65:Not applicable to 'appsettings' (detailed error pages); diagnostics go to Application Insights.
  parent: site
  //checkov:skip=CKV_AZURE_66:Not applicable to 'appsettings' (failed request tracing); requests are traced in Application Insights.
  //checkov:skip=CKV_AZURE_80:Not applicable: Python app, no .NET Framework.
  //checkov:skip=CKV_AZURE_88:Not applicable: Flex Consumption deploys from a blob container, no Azure Files mount is used.
  //checkov:skip=CKV_AZURE_222:Not applicable to 'appsettings'; see the justification on the site resource.
  name: 'appsettings'
  // extraAppSettings first: settings this template manages override a clashing
  // key (change those through their parameter instead); everything else an
  // operator adds there is written again on every provision, not wiped.
  properties: union(extraAppSettings, coreSettings, optionalSettings, rtjTokenSettings, secretSettings, orgTableSettings, orgAppSettings)
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
output callbackBaseUrl string = callbackBaseUrl
