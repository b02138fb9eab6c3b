// What enable replication and failover need in the target resource group: ASR creates the seed and
// replica managed disks, the NICs and, at failover, the VMs there on the caller's behalf, and checks
// that the caller may. Virtual Machine Contributor covers VMs, disks and NICs and grants no access to
// the VMs' contents. Deployed into the target resource group.

@description('Principal id of the Function App identity.')
param principalId string

var virtualMachineContributorRoleId = '9980e02c-c2be-4d73-94e8-173b1dc7cf3c'

resource vmContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, virtualMachineContributorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', virtualMachineContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output resourceGroupId string = resourceGroup().id
