// Site Recovery Contributor on the existing Recovery Services vault (a prerequisite the user creates,
// docs/DEPLOY.md): enable replication, failover, commit and disable protection, nothing outside the vault.
// Deployed into the vault's resource group.

@description('Name of the existing Recovery Services vault that ASR replicates into.')
param vaultName string

@description('Principal id of the Function App identity.')
param principalId string

var siteRecoveryContributorRoleId = '6670b86e-a3f7-4917-ac9b-5d6ab1be4567'

resource vault 'Microsoft.RecoveryServices/vaults@2024-04-01' existing = {
  name: vaultName
}

resource siteRecoveryContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, siteRecoveryContributorRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', siteRecoveryContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output vaultId string = vault.id
