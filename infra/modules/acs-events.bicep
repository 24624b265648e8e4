// Event Grid subscription: ACS SMS delivery reports and inbound SMS are pushed
// to the Function App's /api/callbacks/acs endpoint. Deployed only in the
// second phase (deployAcsSubscription=true after `azd deploy`), because Event
// Grid performs a validation handshake against the endpoint on creation.
param systemTopicName string
param subscriptionName string = 'sms-to-function'

@description('Function App host name, e.g. func-xyz.azurewebsites.net')
param functionHostName string

@description('Shared secret appended as ?secret=... and checked by the app.')
@secure()
param webhookSecret string

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource smsSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: subscriptionName
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionHostName}/api/callbacks/acs?secret=${webhookSecret}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Communication.SMSDeliveryReportReceived'
        'Microsoft.Communication.SMSReceived'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output name string = smsSubscription.name
