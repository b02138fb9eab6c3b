// The hand-off vault for the two secrets that cross to AWS: the intake queue's add-only SAS and the
// status API key. Nothing in Azure reads them at run time; an operator copies them into AWS Secrets
// Manager (docs/DEPLOY.md). RBAC only, purge-protected, closed to the internet except listed addresses.

@description('Azure region of the Key Vault.')
param location string

@description('Globally unique Key Vault name (3-24 letters, digits and hyphens).')
@minLength(3)
@maxLength(24)
param name string

@description('Public IP ranges (CIDR) of the operators who copy the secrets to AWS; empty closes the vault to the internet.')
param allowedIpRanges array = []

@description('Object id of a user or group allowed to read the secrets (Key Vault Secrets User); empty for none.')
param secretReaderPrincipalId string = ''

@description('Name of the secret that holds the status API key.')
param statusApiKeySecretName string

@description('The status API key (the function key AWS status sync presents).')
@secure()
param statusApiKey string

@description('Expiry of the status API key secret (ISO 8601 UTC): a reminder to rotate, see docs/DEPLOY.md.')
param statusApiKeyExpiry string

@description('Tags applied to the vault.')
param tags object

var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Deny'
      bypass: 'AzureServices'
      ipRules: [for range in allowedIpRanges: {
        value: range
      }]
    }
  }
}

resource statusApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: statusApiKeySecretName
  properties: {
    contentType: 'application/x-azure-functions-key'
    attributes: {
      enabled: true
      exp: dateTimeToEpoch(statusApiKeyExpiry)
    }
    value: statusApiKey
  }
}

resource secretsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(secretReaderPrincipalId)) {
  name: guid(vault.id, secretReaderPrincipalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: secretReaderPrincipalId
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
