// The cache (log) storage account ASR stages replicated data in before it writes the managed disks:
// enable-replication names it (InMageRcm logStorageAccountId, app setting ASR_CACHE_STORAGE_ACCOUNT_ID).
// Standard_LRS StorageV2, in the deployment's region, holding nothing else. Roles, each on this account
// only (docs/DEPLOY.md cites the pages):
// - the vault's system-assigned managed identity: Contributor and Storage Blob Data Contributor, what
//   Site Recovery's managed identity needs on a Standard cache/log storage account;
// - the Function App identity (the caller of enable replication): read and listKeys, the storage
//   permissions Site Recovery checks on the caller, as a custom role with exactly those two actions.

@description('Azure region of the cache storage account (the target region).')
param location string

@description('Globally unique storage account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Object id of the Recovery Services vault\'s system-assigned managed identity.')
param vaultPrincipalId string

@description('Principal id of the Function App identity, which enables replication with this account.')
param callerPrincipalId string

@description('Tags applied to the account.')
param tags object

var contributorRoleId = 'b24988ac-6180-42a0-ab88-20f7382dd24c'
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:The replication appliance in AWS uploads replication logs over the internet (443); trusted Microsoft services are allowed through as Site Recovery requires.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the appliance outside Azure reaches the public endpoint; no anonymous blob access.
  // checkov:skip=CKV_AZURE_206:A cache for data in flight, rebuilt by resynchronisation; Site Recovery's cache account is Standard LRS.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
      }
    }
  }
}

resource vaultContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, vaultPrincipalId, contributorRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributorRoleId)
    principalId: vaultPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultBlobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, vaultPrincipalId, blobDataContributorRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: vaultPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource callerRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(account.id, 'aws2azure-asr-cache-caller')
  properties: {
    roleName: 'aws2azure ASR cache caller ${uniqueString(account.id)}'
    description: 'Read the ASR cache storage account and list its keys: what Site Recovery checks on the caller that enables replication with it.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/read'
          'Microsoft.Storage/storageAccounts/listkeys/action'
        ]
        notActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource callerAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, callerPrincipalId, callerRole.id)
  scope: account
  properties: {
    roleDefinitionId: callerRole.id
    principalId: callerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output id string = account.id
output name string = account.name
