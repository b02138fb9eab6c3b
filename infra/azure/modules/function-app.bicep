// The Function App on Flex Consumption (Linux, Python), its plan, its app settings and the HTTP
// API's protection: function keys always, App Service Authentication (Entra ID) when enabled.

@description('Azure region of the plan and the app.')
param location string

@description('Globally unique name of the Function App.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity; identity-based connections name it so the runtime picks it.')
param identityClientId string

@description('Name of the runtime storage account (AzureWebJobsStorage and the Durable task hub).')
param runtimeStorageAccountName string

@description('Blob endpoint of the runtime storage account.')
param runtimeStorageBlobEndpoint string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('The application\'s own settings (ASR, target, state and intake connections, pacing); merged with the runtime settings below.')
param appSettings object

@description('Durable Functions task hub name. The Azure Storage backend names its queues, tables and leases after it.')
param taskHubName string

@description('Partition (control queue) count of the Durable Azure Storage backend; fixed once the task hub exists.')
@minValue(1)
@maxValue(16)
param durablePartitionCount int

@description('Python version of the Flex Consumption runtime.')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Upper bound of instances Flex Consumption scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Always-ready instances for the Durable group (orchestrators and activities); 0 scales to zero between timer wake-ups.')
@minValue(0)
@maxValue(20)
param durableAlwaysReadyInstances int = 0

@description('Put App Service Authentication (Entra ID) in front of the HTTP API, in addition to function keys.')
param enableEntraAuth bool = false

@description('Application (client) id of the Entra app registration that protects the API; needed when enableEntraAuth is true.')
param entraClientId string = ''

@description('Entra tenant id that issues tokens for the API.')
param entraTenantId string = subscription().tenantId

@description('Paths App Service Authentication lets through without a token (they still need a function key), e.g. the status path AWS status sync polls.')
param authExcludedPaths array = []

@description('Name of the host-level function key that AWS status sync presents.')
param statusApiKeyName string

@description('Value of that function key (also kept in Key Vault).')
@secure()
param statusApiKey string

@description('Tags applied to the plan and the app.')
param tags object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy on Flex Consumption depends on the region; turn it on in the portal where offered. The task hub's storage is zone-redundant.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// Identity-based connections throughout: no storage key or connection string in any setting.
// AzureFunctionsJobHost__* overrides host.json, so the task hub name and partition count are fixed
// here, next to the storage they live in.
var runtimeSettings = {
  AzureWebJobsStorage__accountName: runtimeStorageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AzureFunctionsJobHost__extensions__durableTask__hubName: taskHubName
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__partitionCount: string(durablePartitionCount)
}

var allSettings = union(runtimeSettings, appSettings)
var siteAppSettings = [for setting in items(allSettings): {
  name: setting.key
  value: setting.value
}]

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17:Client certificates would have to be issued to the AWS Lambdas; the status API uses a function key kept in AWS Secrets Manager.
  // checkov:skip=CKV_AZURE_222:The status API is called from AWS over the internet, so public network access stays on; function keys and optional Entra ID protect it.
  // checkov:skip=CKV_AZURE_212:numberOfWorkers does not apply to Flex Consumption, which scales per trigger group up to maximumInstanceCount.
  // checkov:skip=CKV_AZURE_213:Flex Consumption replaces unhealthy instances itself; App Service health-check routing does not apply to it.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: siteAppSettings
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${runtimeStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: durableAlwaysReadyInstances > 0 ? [
          {
            name: 'durable'
            instanceCount: durableAlwaysReadyInstances
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Publishing with a user name and password is off; deployments authenticate with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource statusKey 'Microsoft.Web/sites/host/functionKeys@2024-04-01' = {
  name: '${site.name}/default/${statusApiKeyName}'
  properties: {
    name: statusApiKeyName
    value: statusApiKey
  }
}

// Always deployed, switched by enableEntraAuth, so turning it off again really removes the check.
resource entraAuth 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every sites/config resource as the web app's 'web' config; these checks do not apply to authsettingsV2.
  // checkov:skip=CKV_AZURE_13:This resource is the authentication, switched by enableEntraAuth through the V2 schema's platform.enabled; the check reads V1's properties.enabled.
  // checkov:skip=CKV_AZURE_222:Public network access is set on the site (see there), not in authsettingsV2.
  // checkov:skip=CKV_AZURE_63:HTTP logging is a web app 'web' config setting; the Function App logs requests to Application Insights.
  // checkov:skip=CKV_AZURE_65:Detailed error pages are a web app 'web' config setting, not an authsettingsV2 one.
  // checkov:skip=CKV_AZURE_66:Failed request tracing is a web app 'web' config setting, not an authsettingsV2 one.
  // checkov:skip=CKV_AZURE_80:The app is Python; no .NET Framework version applies.
  // checkov:skip=CKV_AZURE_88:Flex Consumption keeps the app package in blob storage; Azure Files is not used.
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: enableEntraAuth
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: authExcludedPaths
    }
    // Only an enabled switch names an app registration; disabled, no provider is configured.
    identityProviders: enableEntraAuth ? {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: entraClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${entraTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${entraClientId}'
            entraClientId
          ]
        }
      }
    } : {}
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
