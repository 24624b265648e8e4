// Key Vault for provider secrets. RBAC authorisation only (no access
// policies), soft delete + purge protection. Secrets are written only when a
// value is supplied, so an empty parameter never overwrites a value that was
// set out of band and never creates an empty secret.
param name string
param location string
param tags object = {}
param tenantId string = subscription().tenantId

@description('Name of the Twilio auth token secret.')
param twilioAuthTokenSecretName string

@description('Twilio auth token. Empty = do not create/overwrite the secret.')
@secure()
param twilioAuthToken string = ''

@description('Name of the shared secret that authenticates ACS Event Grid webhook calls.')
param acsEventGridSecretName string

@description('ACS Event Grid webhook secret. Empty = do not create/overwrite the secret.')
@secure()
param acsEventGridSecret string = ''

@description('Name of the shared secret that authenticates real-time journeys outbound calls.')
param rtjOutboundSecretName string

@description('Real-time journeys outbound secret. Empty = do not create/overwrite the secret.')
@secure()
param rtjOutboundSecret string = ''

@description('Log Analytics workspace that receives the vault audit log (every secret read and write).')
param logAnalyticsWorkspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  //checkov:skip=CKV_AZURE_109:The Flex app is not VNet-integrated, so Key Vault reference resolution comes from public App Service addresses; a Deny firewall would break it. Access is RBAC-only.
  //checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: public network access is needed for Key Vault references from a non-VNet Flex app; every call still needs an Entra token with an RBAC role.
  properties: {
    tenantId: tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Audit log (AuditEvent): who read or changed which secret, including the app's
// Key Vault reference resolution. Key Vault offers the `audit` and `allLogs`
// category groups; `audit` holds AuditEvent, the log that matters here.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

// One explicit conditional resource per secret (no filtered for-loop: checkov's
// Bicep parser cannot read that syntax).
resource twilioSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(twilioAuthToken)) {
  //checkov:skip=CKV_AZURE_41:No expiry on purpose: an expired secret silently breaks the app's Key Vault reference; rotation happens by re-provisioning with a new value.
  //checkov:skip=CKV_AZURE_114:contentType IS set below; checkov 3.3.30 does not see properties of conditional (`if`) resources (tests/infra asserts it).
  parent: vault
  name: twilioAuthTokenSecretName
  properties: {
    value: twilioAuthToken
    contentType: 'text/plain'
  }
}

resource acsEventGridSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(acsEventGridSecret)) {
  //checkov:skip=CKV_AZURE_41:No expiry on purpose: an expired secret silently breaks the app's Key Vault reference; rotation happens by re-provisioning with a new value.
  //checkov:skip=CKV_AZURE_114:contentType IS set below; checkov 3.3.30 does not see properties of conditional (`if`) resources (tests/infra asserts it).
  parent: vault
  name: acsEventGridSecretName
  properties: {
    value: acsEventGridSecret
    contentType: 'text/plain'
  }
}

resource rtjOutboundSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(rtjOutboundSecret)) {
  //checkov:skip=CKV_AZURE_41:No expiry on purpose: an expired secret silently breaks the app's Key Vault reference; rotation happens by re-provisioning with a new value.
  //checkov:skip=CKV_AZURE_114:contentType IS set below; checkov 3.3.30 does not see properties of conditional (`if`) resources (tests/infra asserts it).
  parent: vault
  name: rtjOutboundSecretName
  properties: {
    value: rtjOutboundSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
