"""The stack launcher's plug-in: how to start the ASR simulator and know it answers."""

from __future__ import annotations

import ssl

from devstack.app_env import LOCAL_SUBSCRIPTION
from devstack.asr_sim.certs import create_certificates
from devstack.clock import FileClock
from devstack.launcher import LOOPBACK, LaunchContext, ServiceSpec, http_answers
from devstack.settings import AsrEndpoint

PREFERRED_PORT = 8443
RESOURCE_GROUP = "aws2azure-rg"
VAULT_NAME = "aws2azure-vault"


def service_spec(ctx: LaunchContext) -> ServiceSpec:
    certs = create_certificates(ctx.state_dir / "asr")
    # The simulator only reads the clock; make sure the file exists before it starts.
    FileClock(ctx.clock_file)
    port = ctx.port(PREFERRED_PORT)
    endpoint = AsrEndpoint(
        base_url=f"https://{LOOPBACK}:{port}",
        ca_cert=str(certs.ca_cert),
        subscription_id=LOCAL_SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        vault_name=VAULT_NAME,
    )
    argv = [
        ctx.python, "-m", "devstack.asr_sim",
        "--host", LOOPBACK, "--port", str(port),
        "--cert", str(certs.server_cert_chain), "--key", str(certs.server_key),
        "--clock-file", str(ctx.clock_file),
        "--subscription", endpoint.subscription_id,
        "--resource-group", endpoint.resource_group,
        "--vault", endpoint.vault_name,
    ]  # fmt: skip
    tls = ssl.create_default_context(cafile=str(certs.ca_cert))

    def ready() -> bool:
        return http_answers(f"{endpoint.base_url}/_sim/health", context=tls)

    return ServiceSpec("asr", argv, ready, {"asr": endpoint})
