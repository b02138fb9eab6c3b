// The intake queue, alone in its own storage account.
// AWS has no Azure identity, so its Lambdas add messages with a SAS, and a SAS for a queue can only
// be signed with an account key (user delegation SAS exists for Blob storage only). Keeping the queue
// in an account that holds nothing else confines what a leaked key or SAS can reach to this queue and
// its poison queue; the runtime account keeps shared keys off. The Function App itself reads this
// queue with its managed identity (MIGRATION_QUEUE__queueServiceUri), never with the key.

@description('Azure region of the intake storage account.')
param location string

@description('Globally unique storage account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Replication of the intake account.')
@allowed([
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_ZRS'

@description('Name of the intake queue the Function App\'s queue trigger listens on.')
param queueName string

@description('Principal id of the Function App identity that reads the queue.')
param readerPrincipalId string

@description('Name of the Key Vault that receives the add-only SAS as a secret.')
param keyVaultName string

@description('Name of the Key Vault secret that holds the SAS.')
param sasSecretName string

@description('Expiry of the add-only SAS (ISO 8601 UTC). Rotate before then: see docs/DEPLOY.md.')
param sasExpiry string

@description('Account key that signs the SAS. Rotate by switching keys: docs/DEPLOY.md.')
@allowed([
  'key1'
  'key2'
])
param sasSigningKey string = 'key1'

@description('Days after which Azure flags the account keys for rotation.')
@minValue(1)
@maxValue(365)
param keyRotationReminderDays int = 90

@description('Tags applied to the account.')
param tags object

var queueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:AWS Lambdas outside any VNet add messages over the internet with the SAS; there is no fixed source address to allow.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the queue must be reachable from AWS.
  // checkov:skip=CKV_AZURE_206:Zone-redundant (ZRS) by default, GZRS by parameter: the queue serves a Function App in this region only, and AWS retries a failed send.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: true
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    keyPolicy: {
      keyExpirationPeriodInDays: keyRotationReminderDays
    }
    sasPolicy: {
      sasExpirationPeriod: '90.00:00:00'
      expirationAction: 'Log'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource intakeQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

// The Functions host moves a message that failed maxDequeueCount times here; created up front so the
// identity needs no right to create queues at run time.
resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${queueName}-poison'
}

// Contributor rather than Message Processor: the queue trigger also updates messages (visibility
// renewal) and adds to the poison queue, which Processor alone does not allow. The account holds only
// these two queues.
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, readerPrincipalId, queueDataContributorRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataContributorRoleId)
    principalId: readerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// Add-only, HTTPS-only, queue service, message objects: the holder can enqueue and nothing else.
resource sasSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: sasSecretName
  properties: {
    contentType: 'application/x-azure-storage-sas'
    attributes: {
      enabled: true
      exp: dateTimeToEpoch(sasExpiry)
    }
    value: account.listAccountSas('2023-05-01', {
      signedServices: 'q'
      signedResourceTypes: 'o'
      signedPermission: 'a'
      signedProtocol: 'https'
      signedExpiry: sasExpiry
      keyToSign: sasSigningKey
    }).accountSasToken
  }
}

output name string = account.name
output queueEndpoint string = account.properties.primaryEndpoints.queue
output queueUrl string = '${account.properties.primaryEndpoints.queue}${queueName}'
