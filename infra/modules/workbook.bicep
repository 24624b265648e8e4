// The operations dashboard: an Application Insights workbook over the app's structured log lines
// (traces, customDimensions.event and its fields). The workbook's content is
// infra/workbook/operations.workbook.json; tests/infra/test_workbook.py checks every event and field it
// queries against what the code logs. Guide: docs/dashboard.md.
param appInsightsId string
param location string
param tags object = {}
param displayName string = 'SMS channel operations'

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, 'channel-operations-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    version: 'Notebook/1.0'
    serializedData: replace(loadTextContent('../workbook/operations.workbook.json'), '__APP_INSIGHTS_ID__', appInsightsId)
  }
}

output id string = workbook.id
