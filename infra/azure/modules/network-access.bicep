// Joining the migrated VMs' NICs to a subnet of the target virtual network needs
// Microsoft.Network/virtualNetworks/subnets/join/action on the network. A custom role with exactly
// that and read, assigned on this one network, instead of Network Contributor. Deployed into the
// network's resource group.

@description('Name of the existing target virtual network.')
param virtualNetworkName string

@description('Principal id of the Function App identity.')
param principalId string

resource network 'Microsoft.Network/virtualNetworks@2024-01-01' existing = {
  name: virtualNetworkName
}

resource subnetJoinRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(network.id, 'aws2azure-subnet-join')
  properties: {
    roleName: 'aws2azure subnet join ${uniqueString(network.id)}'
    description: 'Read the virtual network and join NICs to its subnets; used by aws2azure to enable replication and fail over.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Network/virtualNetworks/read'
          'Microsoft.Network/virtualNetworks/subnets/read'
          'Microsoft.Network/virtualNetworks/subnets/join/action'
        ]
        notActions: []
      }
    ]
    // Custom roles are assignable at resource-group scope at the finest; the assignment below is on
    // the network alone.
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource subnetJoin 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(network.id, principalId, subnetJoinRole.id)
  scope: network
  properties: {
    roleDefinitionId: subnetJoinRole.id
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output networkId string = network.id
