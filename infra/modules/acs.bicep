// Optional Azure Communication Services resource (deployed only when
// main.bicep's deployAcs is true) with an Event Grid system topic for its SMS
// events. The webhook subscription lives in acs-events.bicep because Event
// Grid validates the endpoint when the subscription is created, which needs
// the Function App code to be deployed first.
param name string
param location string = 'global'
param tags object = {}

@description('Where ACS stores data at rest, e.g. "United States", "Europe".')
param dataLocation string

param systemTopicName string

@description('Principal (the app UAMI) that sends SMS through ACS with Entra ID.')
param senderPrincipalId string

@description('Storage account holding the Event Grid dead-letter container.')
param storageAccountName string

@description('Container the system topic dead-letters undeliverable events into.')
param deadLetterContainerName string

// Built-in "Communication and Email Service Owner": the narrowest built-in role
// that lets an Entra identity use ACS. ACS has no send-only data-plane role;
// this one is limited to Microsoft.Communication actions, where Contributor
// (used before) allowed every action on the resource. Scoped to this one
// resource. See docs/infra.md "Permissions" for what was compared.
var acsServiceOwnerRoleId = '09976791-48a7-449e-bb21-39d1a415f350'

// Built-in "Storage Blob Data Contributor", for the topic's dead-lettering.
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

// System-assigned identity: Event Grid uses it to write dead-lettered events
// into the storage account, whose shared-key access is disabled.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: acs.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

resource acsSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acs.id, senderPrincipalId, acsServiceOwnerRoleId)
  scope: acs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acsServiceOwnerRoleId)
    principalId: senderPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

// Write access to the dead-letter container only, not the whole account.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopic.id, blobDataContributorRoleId)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = acs.name
output endpoint string = 'https://${acs.properties.hostName}'
output systemTopicName string = systemTopic.name
