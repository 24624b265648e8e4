// Storage account for the Functions host (AzureWebJobsStorage), the Flex
// Consumption deployment package container, the channel state table and the
// Event Grid dead-letter container. Shared-key access is off: every client
// (host, app, azd deploy, Event Grid dead-lettering) uses Entra ID.
param name string
param location string
param tags object = {}
param deploymentContainerName string
param stateTableName string

@description('Serve many orgs: also create the org registry table.')
param multiOrg bool = false

@description('Org registry table (ORG_TABLE_NAME), created only when multiOrg is true.')
param orgTableName string = 'channelorgs'

@description('Container that receives ACS events Event Grid could not deliver (STOP replies must never be lost).')
param deadLetterContainerName string

@description('Log Analytics workspace that receives the blob and table audit logs.')
param logAnalyticsWorkspaceId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  //checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches its host storage over the public endpoint (the Functions host is not a firewall-trusted service); access is Entra-only because shared key is disabled.
  //checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public network access is required by a non-VNet Flex app and by `azd deploy`; anonymous blob access and shared key are both disabled.
  //checkov:skip=CKV_AZURE_206:LRS is deliberate: the account holds only the re-deployable package, host leases and reconstructible channel state; geo-replication adds cost without a recovery story.
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Event Grid writes undeliverable events here as blobs, with the system
// topic's managed identity (Storage Blob Data Contributor on this container
// only, granted in acs.bicep).
resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Storage resource logs live on the service sub-resources (the account itself
// only has metrics). The `audit` group (writes and deletes, not every read)
// keeps a record of who changed blobs and state rows without logging the
// host's constant lease reads.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: blobService
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

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: tableService
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

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: stateTableName
}

// The org registry (MULTI_ORG): one row per customer org, PartitionKey 'org', RowKey = organization id.
// Same account and role as the state table (Storage Table Data Contributor covers both).
resource orgTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = if (multiOrg) {
  parent: tableService
  name: orgTableName
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output tableEndpoint string = storage.properties.primaryEndpoints.table
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output deploymentContainerName string = deploymentContainer.name
output deadLetterContainerName string = deadLetterContainer.name
output stateTableName string = stateTable.name
