"""The app settings the local host gives the Function App, derived from the running stack.

In Azure the same names come from the Function App's configuration (infra/azure).
"""

from __future__ import annotations

from devstack.clock import clock_environment
from devstack.settings import StackSettings

LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"


def function_app_environment(stack: StackSettings) -> dict[str, str]:
    env: dict[str, str] = clock_environment(stack.clock_file)
    if stack.azurite is not None:
        conn = stack.azurite.connection_string
        env |= {"AzureWebJobsStorage": conn, "STATE_STORAGE": conn, "MIGRATION_QUEUE": conn}
    if stack.asr is not None:
        env |= {
            "ASR_BASE_URL": stack.asr.base_url,
            "ASR_CA_BUNDLE": stack.asr.ca_cert,
            "ASR_SUBSCRIPTION_ID": stack.asr.subscription_id,
            "ASR_RESOURCE_GROUP": stack.asr.resource_group,
            "ASR_VAULT_NAME": stack.asr.vault_name,
            "TARGET_RESOURCE_GROUP_ID": (f"/subscriptions/{stack.asr.subscription_id}/resourceGroups/aws2azure-target"),
            "TARGET_NETWORK_ID": (
                f"/subscriptions/{stack.asr.subscription_id}/resourceGroups/aws2azure-target"
                "/providers/Microsoft.Network/virtualNetworks/migrated-vnet"
            ),
            "TARGET_DEFAULT_SUBNET": "workloads",
            # An isolated network for test failovers, and the cache storage account ASR stages data in.
            "TEST_NETWORK_ID": (
                f"/subscriptions/{stack.asr.subscription_id}/resourceGroups/aws2azure-target"
                "/providers/Microsoft.Network/virtualNetworks/test-vnet"
            ),
            "ASR_CACHE_STORAGE_ACCOUNT_ID": (
                f"/subscriptions/{stack.asr.subscription_id}/resourceGroups/aws2azure-rg"
                "/providers/Microsoft.Storage/storageAccounts/aws2azureasrcache"
            ),
        }
    if stack.webhook is not None:
        # A local run spans virtual days; the demo keeps its receiver down for all of it, so dead-letter after 30.
        env |= {"NOTIFY_WEBHOOK_URL": stack.webhook.url, "NOTIFY_WEBHOOK_SECRET": stack.webhook.secret,
                "NOTIFY_DEAD_LETTER_AFTER_SECONDS": str(30 * 86400)}  # fmt: skip
    return env
