"""The stack launcher's plug-in: start the SSM stand-in after the ASR simulator (it registers machines there)."""

from __future__ import annotations

from devstack.clock import FileClock
from devstack.launcher import LOOPBACK, LaunchContext, ServiceSpec, http_answers
from devstack.settings import SsmEndpoint, StackSettings

PREFERRED_PORT = 5443


def service_spec(ctx: LaunchContext) -> ServiceSpec:
    FileClock(ctx.clock_file)
    stack = StackSettings.model_validate(ctx.settings)
    port = ctx.port(PREFERRED_PORT)
    endpoint = SsmEndpoint(url=f"http://{LOOPBACK}:{port}")
    argv = [ctx.python, "-m", "devstack.ssm_sim", "--host", LOOPBACK, "--port", str(port),
            "--clock-file", str(ctx.clock_file)]  # fmt: skip
    if stack.asr is not None:
        argv += ["--asr-url", stack.asr.base_url, "--asr-ca", stack.asr.ca_cert]
    return ServiceSpec("ssm", argv, lambda: http_answers(f"{endpoint.url}/_ssm/health"), {"ssm": endpoint})
