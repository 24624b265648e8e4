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

// Built-in Contributor. Microsoft documents Contributor on the Communication
// Services resource as the role an Entra identity needs to send SMS; ACS has
// no narrower built-in data-plane role for SMS. Scoped to this one resource.
var contributorRoleId = 'b24988ac-6180-42a0-ab88-20f7382dd24c'

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  properties: {
    source: acs.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

resource acsSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acs.id, senderPrincipalId, contributorRoleId)
  scope: acs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributorRoleId)
    principalId: senderPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = acs.name
output endpoint string = 'https://${acs.properties.hostName}'
output systemTopicName string = systemTopic.name
