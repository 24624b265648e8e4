// Event Grid subscription: ACS SMS delivery reports and inbound SMS are pushed
// to the Function App's /api/callbacks/acs endpoint. Deployed only in the
// second phase (deployAcsSubscription=true after `azd deploy`), because Event
// Grid performs a validation handshake against the endpoint on creation.
param systemTopicName string
param subscriptionName string = 'sms-to-function'

@description('Function App host name, e.g. func-xyz.azurewebsites.net')
param functionHostName string

@description('Shared secret Event Grid sends in the X-Channel-Secret header; the app checks it.')
@secure()
param webhookSecret string

@description('Storage account (resource id) that receives events Event Grid gives up on.')
param deadLetterStorageAccountId string

@description('Blob container for dead-lettered events (the system topic identity can write to it).')
param deadLetterContainerName string

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
        // No secret in the URL (request telemetry and proxies record URLs):
        // it travels as a static delivery attribute marked secret, which Event
        // Grid sends as an HTTP header and never shows back.
        endpointUrl: 'https://${functionHostName}/api/callbacks/acs'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
        deliveryAttributeMappings: [
          {
            name: 'X-Channel-Secret'
            type: 'Static'
            properties: {
              value: webhookSecret
              isSecret: true
            }
          }
        ]
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
    // After the retries (or at once on 400/413) the event is written to blob
    // storage instead of being dropped: an inbound STOP is never lost.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output name string = smsSubscription.name
