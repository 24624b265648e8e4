// Service Bus Standard namespace with the activity queue (fed by Dataverse),
// the callback retry queue and the poison queue, plus the single SAS rule that
// Dataverse needs. The rule's connection string is written straight into Key
// Vault and never leaves this module as an output.
param name string
param location string
param tags object = {}

param activityQueueName string
param callbackQueueName string
param poisonQueueName string

@description('Name of the queue-scoped Send-only SAS rule used by the Dataverse service endpoint.')
param dataverseSendRuleName string

@description('Existing Key Vault that receives the Dataverse connection string.')
param keyVaultName string

@description('Key Vault secret that holds the Dataverse Send-only connection string.')
param dataverseSecretName string

@description('Log Analytics workspace that receives the namespace logs.')
param logAnalyticsWorkspaceId string

// Shared by the activity and callback queues. lockDuration PT5M (the maximum)
// so one peek-lock covers a provider send plus the Dataverse write-back
// without relying on lock renewal; 10 deliveries then the broker dead-letters.
var workQueueProperties = {
  lockDuration: 'PT5M'
  maxDeliveryCount: 10
  deadLetteringOnMessageExpiration: true
  defaultMessageTimeToLive: 'P14D'
  requiresDuplicateDetection: false
  requiresSession: false
  enablePartitioning: false
  maxSizeInMegabytes: 1024
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    // Local (SAS) auth must stay ON: the Dataverse service endpoint can only
    // authenticate to Service Bus with a SAS key (managed identity for
    // Service Bus endpoints is not documented). The blast radius is limited to
    // one queue-scoped Send-only rule below; no namespace-level rule is
    // created and the Function App itself uses Entra ID only.
    disableLocalAuth: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource activityQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: activityQueueName
  properties: workQueueProperties
}

resource callbackQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: callbackQueueName
  properties: workQueueProperties
}

// Poison queue: the app moves messages here explicitly; keep them long enough
// for an operator to inspect and replay, never expire into a DLQ.
resource poisonQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: poisonQueueName
  properties: {
    lockDuration: 'PT5M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: false
    defaultMessageTimeToLive: 'P90D'
    requiresDuplicateDetection: false
    requiresSession: false
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

// Queue-scoped, Send-only: Dataverse can post to the activity queue and
// nothing else (no Listen, no Manage, no other entity).
resource dataverseSendRule 'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2024-01-01' = {
  parent: activityQueue
  name: dataverseSendRuleName
  properties: {
    rights: [
      'Send'
    ]
  }
}

// Service Bus offers the `audit` and `allLogs` category groups, but `audit` is
// RuntimeAuditLogs, which only Premium namespaces emit: on Standard it would
// stay empty. `allLogs` adds OperationalLogs (create/update/delete of the
// namespace, queues and SAS rules: the management audit trail for Standard).
resource namespaceDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'logs-to-log-analytics'
  scope: namespace
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource dataverseConnectionSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  //checkov:skip=CKV_AZURE_41:No expiry on purpose: the value is re-derived from the SAS rule on every provision, and an expiry would only break the Dataverse endpoint setup step.
  parent: vault
  name: dataverseSecretName
  properties: {
    value: dataverseSendRule.listKeys().primaryConnectionString
    contentType: 'Service Bus connection string (queue-scoped, Send only) for the Dataverse service endpoint'
  }
}

output name string = namespace.name
output id string = namespace.id
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output activityQueueName string = activityQueue.name
output callbackQueueName string = callbackQueue.name
output poisonQueueName string = poisonQueue.name
output dataverseSecretName string = dataverseConnectionSecret.name
