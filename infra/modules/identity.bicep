// User-assigned managed identity used by the Function App for every
// identity-based connection (Service Bus, host storage, Key Vault references,
// Application Insights, Dataverse, ACS).
param name string
param location string
param tags object = {}

resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = uami.id
output name string = uami.name
output clientId string = uami.properties.clientId
output principalId string = uami.properties.principalId
