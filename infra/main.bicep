// Dynamics 365 Marketing custom SMS channel runtime: Azure infrastructure.
// Deployed by `azd up` / `azd provision` (subscription scope, creates the
// resource group). Native resource declarations only (no registry modules) so
// that the offline CI (tree-sitter, checkov, the ARM type check) sees every resource.
targetScope = 'subscription'

// ---------------------------------------------------------------- azd inputs
@minLength(1)
@maxLength(64)
@description('azd environment name; used for the resource group and the resource-name token.')
param environmentName string

// Regions where Flex Consumption (FC1) is offered, so azd only offers those and a
// typo fails before anything is created. Source: Microsoft's Flex samples
// (Azure-Samples/functions-quickstart-python-http-azd infra/main.bicep, minus the
// eastus2euap canary); the live list is `az functionapp list-flexconsumption-locations`.
// Add a region here when Microsoft adds one (see docs/infra.md).
@minLength(1)
@description('Primary location for all resources (a region that offers Flex Consumption).')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Optional resource group name (default rg-<environmentName>).')
param resourceGroupName string = ''

@description('Object id of the deploying user/principal. When set, it gets the same data roles as the app for local runs.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

// ---------------------------------------------------------------- messaging
param activityQueueName string = 'activities'
param callbackQueueName string = 'callbacks'
param poisonQueueName string = 'activities-poison'

@description('Queue-scoped Send-only SAS rule for the Dataverse service endpoint.')
param dataverseSendRuleName string = 'dataverse-send'

@description('Key Vault secret holding the Dataverse Send-only Service Bus connection string.')
param dataverseSecretName string = 'dataverse-servicebus-connection'

param stateTableName string = 'channelstate'

// ---------------------------------------------------------------- app config
// Required, no default: azd prompts for them (and keeps the answer in the
// environment) instead of deploying an app that fails on every message.
@minLength(1)
@description('Dataverse environment URL, e.g. https://contoso.crm.dynamics.com (app setting DATAVERSE_URL).')
param dataverseUrl string

// `loopback` is a local test double of the app, never a deployable provider.
@allowed([
  'twilio'
  'acs'
])
param channelProvider string = 'twilio'

@minLength(1)
@description('Logical name of the activity column that holds the message body (app setting MESSAGE_BODY_COLUMN).')
param messageBodyColumn string
param contactPhoneColumn string = 'mobilephone'
param complianceColumn string = 'donotphone'

param twilioAccountSid string = ''
param twilioFrom string = ''
param twilioMessagingServiceSid string = ''

@secure()
@description('Twilio auth token. Empty = no secret written and TWILIO_AUTH_TOKEN omitted.')
param twilioAuthToken string = ''

// Generated once by azd (no default, so azd fills them in) and kept in the azd
// environment: every later `azd provision` deploys the same value, so the RTJ
// relay and the Event Grid subscription keep working. A value set with
// `azd env set-secret ACS_EVENTGRID_SECRET` / `RTJ_OUTBOUND_SECRET` wins.
// The RTJ secret is kept in Key Vault in both relay modes (switching to secret
// mode needs no new value); the app gets it only when rtjAuthMode is 'secret'.
@secure()
@metadata({
  azd: {
    type: 'generate'
    config: {
      length: 32
      noSpecial: true
    }
  }
})
@description('Shared secret Event Grid sends in the X-Channel-Secret header (app setting ACS_EVENTGRID_SECRET).')
param acsEventGridSecret string

@secure()
@metadata({
  azd: {
    type: 'generate'
    config: {
      length: 32
      noSpecial: true
    }
  }
})
@description('Shared secret of the real-time journeys relay in secret mode (app setting RTJ_OUTBOUND_SECRET).')
param rtjOutboundSecret string

// ---------------------------------------------------------------- RTJ relay authentication
// How the real-time journeys relay plug-in proves itself to POST /api/rtj/outbound
// (docs/real-time-journeys.md#relay-authentication). Each maps to the azd
// environment variable of the same name as the app setting.
@allowed([
  'entra'
  'secret'
])
@description('RTJ_AUTH_MODE: entra (Entra ID token of the plug-in identity, recommended) or secret (X-Channel-Secret = RTJ_OUTBOUND_SECRET).')
param rtjAuthMode string = 'entra'

@description('RTJ_TOKEN_AUDIENCE (entra): the token audience, the relay API app registration\'s Application ID URI (api://<app id>) or client id. Empty = omitted.')
param rtjTokenAudience string = ''

// The plug-in's identity normally lives in the tenant the app is deployed into.
@minLength(36)
@maxLength(36)
@description('RTJ_TOKEN_TENANT_ID (entra): tenant (GUID) of the plug-in identity. Default: this deployment\'s tenant.')
param rtjTokenTenantId string = tenant().tenantId

@maxLength(36)
@description('RTJ_TOKEN_CLIENT_ID (entra): application (client) id (GUID) of the relay plug-in\'s identity. Empty = omitted.')
param rtjTokenClientId string = ''

// ---------------------------------------------------------------- many orgs (docs/multi-org-identity.md)
// One deployment serving many customers' Dataverse orgs. The app signs in to each customer's tenant as the
// multi-tenant app registration orgAppClientId, whose credential is a federated identity credential backed
// by this deployment's managed identity. Bicep cannot create that app registration (no Microsoft Graph types
// in the offline type check): one manual step, with the values from the ORG_FIC_* outputs.
@description('MULTI_ORG: route each activity by its OrganizationId to an org registered in orgTableName.')
param multiOrg bool = false

@minLength(3)
@maxLength(63)
@description('ORG_TABLE_NAME: the org registry table in the state storage account (created when multiOrg is true).')
param orgTableName string = 'channelorgs'

@maxLength(36)
@description('ORG_APP_CLIENT_ID: application (client) id (GUID) of the ISV\'s multi-tenant app registration. Empty = omitted.')
param orgAppClientId string = ''

@description('More app settings, e.g. {"SEND_CONCURRENCY": "16"}: kept on every provision. Keys this template manages win.')
param extraAppSettings object = {}

// ---------------------------------------------------------------- ACS
@description('Deploy Azure Communication Services + Event Grid system topic.')
param deployAcs bool = false

@description('Create the Event Grid webhook subscription (second phase: only after `azd deploy`, needs deployAcs).')
param deployAcsSubscription bool = false

@description('ACS data location, e.g. "United States", "Europe", "UK".')
param acsDataLocation string = 'United States'

@description('ACS endpoint used when deployAcs is false (bring your own ACS resource).')
param acsEndpoint string = ''
param acsFrom string = ''

// ---------------------------------------------------------------- naming
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var names = {
  resourceGroup: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  identity: 'id-${resourceToken}'
  logAnalytics: 'log-${resourceToken}'
  appInsights: 'appi-${resourceToken}'
  storage: 'st${resourceToken}'
  serviceBus: 'sb-${resourceToken}'
  keyVault: 'kv-${resourceToken}'
  plan: 'plan-${resourceToken}'
  functionApp: 'func-${resourceToken}'
  acs: 'acs-${resourceToken}'
  acsTopic: 'evgt-acs-${resourceToken}'
  deploymentContainer: 'app-package-${resourceToken}'
  deadLetterContainer: 'eventgrid-deadletter'
}
var secretNames = {
  twilioAuthToken: 'twilio-auth-token'
  acsEventGridSecret: 'acs-eventgrid-secret'
  rtjOutboundSecret: 'rtj-outbound-secret'
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: tags
  }
}

// The operations dashboard (docs/dashboard.md).
module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    appInsightsId: monitoring.outputs.appInsightsId
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: names.storage
    location: location
    tags: tags
    deploymentContainerName: names.deploymentContainer
    deadLetterContainerName: names.deadLetterContainer
    stateTableName: stateTableName
    multiOrg: multiOrg
    orgTableName: orgTableName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: tags
    twilioAuthTokenSecretName: secretNames.twilioAuthToken
    twilioAuthToken: twilioAuthToken
    acsEventGridSecretName: secretNames.acsEventGridSecret
    acsEventGridSecret: acsEventGridSecret
    rtjOutboundSecretName: secretNames.rtjOutboundSecret
    rtjOutboundSecret: rtjOutboundSecret
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: names.serviceBus
    location: location
    tags: tags
    activityQueueName: activityQueueName
    callbackQueueName: callbackQueueName
    poisonQueueName: poisonQueueName
    dataverseSendRuleName: dataverseSendRuleName
    keyVaultName: keyVault.outputs.name
    dataverseSecretName: dataverseSecretName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module appRbac 'modules/rbac.bicep' = {
  name: 'rbac-app'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    serviceBusNamespaceName: serviceBus.outputs.name
    activityQueueName: serviceBus.outputs.activityQueueName
    callbackQueueName: serviceBus.outputs.callbackQueueName
    poisonQueueName: serviceBus.outputs.poisonQueueName
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module userRbac 'modules/rbac.bicep' = if (!empty(principalId)) {
  name: 'rbac-user'
  scope: rg
  params: {
    principalId: principalId
    principalType: principalType
    serviceBusNamespaceName: serviceBus.outputs.name
    activityQueueName: serviceBus.outputs.activityQueueName
    callbackQueueName: serviceBus.outputs.callbackQueueName
    poisonQueueName: serviceBus.outputs.poisonQueueName
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module acs 'modules/acs.bicep' = if (deployAcs) {
  name: 'acs'
  scope: rg
  params: {
    name: names.acs
    tags: tags
    dataLocation: acsDataLocation
    systemTopicName: names.acsTopic
    senderPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    deadLetterContainerName: storage.outputs.deadLetterContainerName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    stateTableName: storage.outputs.stateTableName
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
    keyVaultUri: keyVault.outputs.uri
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    activityQueueName: serviceBus.outputs.activityQueueName
    callbackQueueName: serviceBus.outputs.callbackQueueName
    poisonQueueName: serviceBus.outputs.poisonQueueName
    dataverseUrl: dataverseUrl
    channelProvider: channelProvider
    messageBodyColumn: messageBodyColumn
    contactPhoneColumn: contactPhoneColumn
    complianceColumn: complianceColumn
    twilioAccountSid: twilioAccountSid
    twilioFrom: twilioFrom
    twilioMessagingServiceSid: twilioMessagingServiceSid
    acsEndpoint: deployAcs ? acs.outputs.endpoint : acsEndpoint
    acsFrom: acsFrom
    twilioAuthTokenSecretName: secretNames.twilioAuthToken
    twilioAuthTokenConfigured: !empty(twilioAuthToken)
    acsEventGridSecretName: secretNames.acsEventGridSecret
    acsEventGridSecretConfigured: true
    rtjOutboundSecretName: secretNames.rtjOutboundSecret
    rtjOutboundSecretConfigured: true
    rtjAuthMode: rtjAuthMode
    rtjTokenAudience: rtjTokenAudience
    rtjTokenTenantId: rtjTokenTenantId
    rtjTokenClientId: rtjTokenClientId
    multiOrg: multiOrg
    orgTableName: orgTableName
    orgAppClientId: orgAppClientId
    extraAppSettings: extraAppSettings
  }
  // Key Vault references and identity connections need the roles in place.
  dependsOn: [
    appRbac
  ]
}

module acsEvents 'modules/acs-events.bicep' = if (deployAcs && deployAcsSubscription) {
  name: 'acs-events'
  scope: rg
  params: {
    systemTopicName: names.acsTopic
    functionHostName: functionApp.outputs.defaultHostName
    webhookSecret: acsEventGridSecret
    deadLetterStorageAccountId: storage.outputs.id
    deadLetterContainerName: storage.outputs.deadLetterContainerName
  }
  dependsOn: [
    acs
  ]
}

// ---------------------------------------------------------------- outputs
// Names and ids only: no keys, connection strings or secret values.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output CALLBACK_BASE_URL string = functionApp.outputs.callbackBaseUrl
output ACTIVITY_QUEUE_NAME string = serviceBus.outputs.activityQueueName
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.name
output KEY_VAULT_NAME string = keyVault.outputs.name
output DATAVERSE_SB_SECRET_NAME string = serviceBus.outputs.dataverseSecretName
output AZURE_CLIENT_ID string = identity.outputs.clientId
output KEY_VAULT_URI string = keyVault.outputs.uri
// The ISV's one manual step (docs/multi-org-identity.md): the federated identity credential on the
// multi-tenant app registration trusts this managed identity. Issuer = this tenant's v2.0 authority,
// subject = the managed identity's object (principal) id, audience = api://AzureADTokenExchange.
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output ORG_FIC_ISSUER string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
output ORG_FIC_SUBJECT string = identity.outputs.principalId
output ORG_FIC_AUDIENCE string = 'api://AzureADTokenExchange'
