// aws2azure, Azure side: the Function App that runs one Durable orchestration per migrating EC2
// instance, its storage, monitoring, Key Vault and the identity with exactly the roles it needs.
// The Recovery Services vault, the replication appliance, the target resource group and the target
// virtual network are prerequisites (docs/DEPLOY.md) and are referenced by parameter.
//
// Deploy: az deployment group create -g <rg> -f infra/azure/main.bicep -p infra/azure/main.parameters.json

targetScope = 'resourceGroup'

@description('Azure region of every resource this template creates. The vault and target network may be elsewhere.')
param location string = resourceGroup().location

@description('Short prefix for resource names (letters, digits, hyphens).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'aws2azure'

@description('Tags applied to every resource created here (merged with aws2azure:component).')
param tags object = {}

@description('Resource group (in this subscription) of the existing Recovery Services vault.')
param asrVaultResourceGroup string

@description('Name of the existing Recovery Services vault, with the replication appliance registered to it.')
param asrVaultName string

@description('Name of the InMageRcm replication policy in the vault that enable-replication uses.')
param asrPolicyName string = 'aws2azure-24h'

@description('Existing resource group (in this subscription) where ASR creates the migrated VMs, disks and NICs.')
param targetResourceGroupName string

@description('Resource group of the existing target virtual network; defaults to the target resource group.')
param targetVirtualNetworkResourceGroup string = targetResourceGroupName

@description('Name of the existing target virtual network.')
param targetVirtualNetworkName string

@description('Subnet of the target network for instances without an aws2azure:target-subnet tag.')
param targetDefaultSubnet string

@description('VM size for instances without an aws2azure:target-size tag; empty lets aws2azure pick from the EC2 type.')
param targetDefaultVmSize string = ''

@description('Tags put on every migrated VM.')
param targetTags object = {}

@description('Managed disk type of the migrated VMs\' disks; the tag aws2azure:target-disk-type overrides it per instance.')
@allowed([
  'Standard_LRS'
  'Premium_LRS'
  'StandardSSD_LRS'
])
param targetDiskType string = 'Standard_LRS'

@description('Object id of the Recovery Services vault\'s system-assigned managed identity (turn it on in the vault: Identity, docs/DEPLOY.md 2.2).')
param asrVaultPrincipalId string

@description('Name of an existing isolated virtual network for test failovers; empty for none.')
param testVirtualNetworkName string = ''

@description('Resource group of the test failover network; defaults to the target network\'s.')
param testVirtualNetworkResourceGroup string = targetVirtualNetworkResourceGroup

@description('Allow a test failover into the target network itself when no test network is set (it can clash with production addresses).')
param allowTestFailoverInTargetNetwork bool = false

@description('Claim Azure Hybrid Benefit (licenseType WindowsServer) for migrated Windows VMs; only with licences that carry the right.')
param azureHybridBenefit bool = false

@description('Pace of ASR write calls (per second) across all orchestrations, below the ARM write budget.')
param asrWritesPerSecond string = '8'

@description('Shortest interval (seconds) between two replication-state polls of one instance.')
@minValue(60)
param pollFloorSeconds int = 300

@description('Longest interval (seconds) between two replication-state polls of one instance.')
@minValue(60)
param pollCeilingSeconds int = 21600

@description('Seconds without replication progress after which an instance is reported stuck.')
@minValue(60)
param stuckAfterSeconds int = 21600

@description('Durable Azure Storage backend partition count. 16, the maximum, because it cannot change once the task hub exists and it caps how many instances run orchestrations in parallel (DEPLOY.md).')
@minValue(1)
@maxValue(16)
param durablePartitionCount int = 16

@description('Upper bound of Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each Flex Consumption instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Always-ready instances for the Durable trigger group; 0 scales to zero between timer wake-ups.')
@minValue(0)
@maxValue(20)
param durableAlwaysReadyInstances int = 0

@description('Put App Service Authentication (Entra ID) in front of the HTTP API in addition to function keys.')
param enableEntraAuth bool = false

@description('Application (client) id of the Entra app registration for the API; required when enableEntraAuth is true.')
param entraClientId string = ''

@description('Paths that skip Entra ID authentication but still need a function key, such as the status path AWS status sync polls.')
param authExcludedPaths array = []

@description('Public IP ranges (CIDR) allowed through the Key Vault firewall to read the hand-off secrets.')
param keyVaultAllowedIpRanges array = []

@description('Object id of the operator user or group that may read the hand-off secrets; empty for none.')
param secretReaderPrincipalId string = ''

@description('The status API key: a function key that AWS status sync presents. Generate once (openssl rand -base64 32) and pass the same value on every deployment.')
@secure()
param statusApiKey string

@description('Expiry of the intake queue\'s add-only SAS (yyyy-MM-ddTHH:mm:ssZ). Each deployment issues a new SAS; copy it to AWS (DEPLOY.md).')
param intakeSasExpiry string = dateTimeAdd(utcNow('u'), 'P90D', 'yyyy-MM-ddTHH:mm:ssZ')

@description('Intake account key that signs the SAS (key1 or key2); switch it to rotate keys without downtime (DEPLOY.md).')
@allowed([
  'key1'
  'key2'
])
param intakeSasSigningKey string = 'key1'

@description('Expiry set on the status API key secret, a reminder to rotate it (yyyy-MM-ddTHH:mm:ssZ).')
param statusApiKeyExpiry string = dateTimeAdd(utcNow('u'), 'P365D', 'yyyy-MM-ddTHH:mm:ssZ')

// Names the code reads (functions/settings.py); tests/infra asserts they agree.
var migrationsTableName = 'migrations'
var eventsTableName = 'migrationevents'
var intakeQueueName = 'migration-requests'
var taskHubName = 'aws2azure'
var statusApiKeyName = 'aws2azure-status-sync'
var intakeSasSecretName = 'intake-queue-sas'
var statusApiKeySecretName = 'status-api-key'
var deploymentContainerName = 'app-package'

var allTags = union(tags, {
  'aws2azure:component': 'migration-engine'
})
var suffix = uniqueString(resourceGroup().id)
var compactPrefix = toLower(replace(namePrefix, '-', ''))

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    location: location
    name: '${namePrefix}-id-${suffix}'
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    namePrefix: '${namePrefix}-${suffix}'
    publisherPrincipalId: identity.outputs.principalId
    tags: allTags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    name: take('${namePrefix}-kv-${suffix}', 24)
    allowedIpRanges: keyVaultAllowedIpRanges
    secretReaderPrincipalId: secretReaderPrincipalId
    statusApiKeySecretName: statusApiKeySecretName
    statusApiKey: statusApiKey
    statusApiKeyExpiry: statusApiKeyExpiry
    tags: allTags
  }
}

module runtimeStorage 'modules/storage.bicep' = {
  name: 'runtime-storage'
  params: {
    location: location
    name: take('${compactPrefix}rt${suffix}', 24)
    deploymentContainerName: deploymentContainerName
    tableNames: [
      migrationsTableName
      eventsTableName
    ]
    dataPrincipalId: identity.outputs.principalId
    tags: allTags
  }
}

module intake 'modules/intake-queue.bicep' = {
  name: 'intake-queue'
  params: {
    location: location
    name: take('${compactPrefix}in${suffix}', 24)
    queueName: intakeQueueName
    readerPrincipalId: identity.outputs.principalId
    keyVaultName: keyVault.outputs.name
    sasSecretName: intakeSasSecretName
    sasExpiry: intakeSasExpiry
    sasSigningKey: intakeSasSigningKey
    tags: allTags
  }
}

module vaultAccess 'modules/vault-access.bicep' = {
  name: 'asr-vault-access'
  scope: resourceGroup(asrVaultResourceGroup)
  params: {
    vaultName: asrVaultName
    principalId: identity.outputs.principalId
  }
}

module targetAccess 'modules/target-access.bicep' = {
  name: 'asr-target-access'
  scope: resourceGroup(targetResourceGroupName)
  params: {
    principalId: identity.outputs.principalId
  }
}

module networkAccess 'modules/network-access.bicep' = {
  name: 'asr-network-access'
  scope: resourceGroup(targetVirtualNetworkResourceGroup)
  params: {
    virtualNetworkName: targetVirtualNetworkName
    principalId: identity.outputs.principalId
  }
}

module cacheStorage 'modules/asr-cache-storage.bicep' = {
  name: 'asr-cache-storage'
  params: {
    location: location
    name: take('${compactPrefix}asr${suffix}', 24)
    vaultPrincipalId: asrVaultPrincipalId
    callerPrincipalId: identity.outputs.principalId
    tags: allTags
  }
}

// Test failovers create NICs in the test network: the same subnet-join role there, when one is set.
module testNetworkAccess 'modules/network-access.bicep' = if (!empty(testVirtualNetworkName)) {
  name: 'asr-test-network-access'
  scope: resourceGroup(testVirtualNetworkResourceGroup)
  params: {
    virtualNetworkName: testVirtualNetworkName
    principalId: identity.outputs.principalId
  }
}

// The application's settings (functions/settings.py FunctionSettings). Connections are identity-based:
// the __tableServiceUri / __queueServiceUri forms, with the user-assigned identity named by clientId.
var applicationSettings = union({
  STATE_STORAGE__tableServiceUri: runtimeStorage.outputs.tableEndpoint
  STATE_STORAGE__credential: 'managedidentity'
  STATE_STORAGE__clientId: identity.outputs.clientId
  MIGRATION_QUEUE__queueServiceUri: intake.outputs.queueEndpoint
  MIGRATION_QUEUE__credential: 'managedidentity'
  MIGRATION_QUEUE__clientId: identity.outputs.clientId
  ASR_SUBSCRIPTION_ID: subscription().subscriptionId
  ASR_RESOURCE_GROUP: asrVaultResourceGroup
  ASR_VAULT_NAME: asrVaultName
  ASR_POLICY_NAME: asrPolicyName
  TARGET_RESOURCE_GROUP_ID: targetAccess.outputs.resourceGroupId
  TARGET_NETWORK_ID: networkAccess.outputs.networkId
  TARGET_DEFAULT_SUBNET: targetDefaultSubnet
  TARGET_TAGS: string(targetTags)
  TARGET_DISK_TYPE: targetDiskType
  ASR_CACHE_STORAGE_ACCOUNT_ID: cacheStorage.outputs.id
  ALLOW_TEST_FAILOVER_IN_TARGET_NETWORK: string(allowTestFailoverInTargetNetwork)
  AZURE_HYBRID_BENEFIT: string(azureHybridBenefit)
  ASR_WRITES_PER_SECOND: asrWritesPerSecond
  POLL_FLOOR_SECONDS: string(pollFloorSeconds)
  POLL_CEILING_SECONDS: string(pollCeilingSeconds)
  STUCK_AFTER_SECONDS: string(stuckAfterSeconds)
}, empty(targetDefaultVmSize) ? {} : {
  TARGET_DEFAULT_VM_SIZE: targetDefaultVmSize
}, empty(testVirtualNetworkName) ? {} : {
  TEST_NETWORK_ID: resourceId(testVirtualNetworkResourceGroup, 'Microsoft.Network/virtualNetworks', testVirtualNetworkName)
})

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  params: {
    location: location
    name: '${namePrefix}-func-${suffix}'
    planName: '${namePrefix}-plan-${suffix}'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    runtimeStorageAccountName: runtimeStorage.outputs.name
    runtimeStorageBlobEndpoint: runtimeStorage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: applicationSettings
    taskHubName: taskHubName
    durablePartitionCount: durablePartitionCount
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    durableAlwaysReadyInstances: durableAlwaysReadyInstances
    enableEntraAuth: enableEntraAuth
    entraClientId: entraClientId
    authExcludedPaths: authExcludedPaths
    statusApiKeyName: statusApiKeyName
    statusApiKey: statusApiKey
    tags: allTags
  }
  dependsOn: [
    vaultAccess
  ]
}

output functionAppName string = functionApp.outputs.name
// AWS status sync appends /api/migrations/{id}: the Lambda's STATUS_API_URL is the bare origin.
output statusApiUrl string = 'https://${functionApp.outputs.defaultHostName}'
output intakeQueueUrl string = intake.outputs.queueUrl
output intakeStorageAccountName string = intake.outputs.name
output keyVaultName string = keyVault.outputs.name
output intakeSasSecretName string = intakeSasSecretName
output statusApiKeySecretName string = statusApiKeySecretName
output identityPrincipalId string = identity.outputs.principalId
output asrCacheStorageAccountId string = cacheStorage.outputs.id
