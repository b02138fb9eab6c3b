"""Run the simulator under uvicorn with TLS."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from devstack.asr_sim.app import AsrSimulatorApp, Clock
from devstack.asr_sim.arm import Vault
from devstack.asr_sim.contract import SimConfig
from devstack.asr_sim.engine import Simulator
from devstack.clock import FileClock, SystemClock


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.asr_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="server private key (PEM)")
    parser.add_argument("--clock-file", type=Path, help="virtual clock file (devstack.clock.FileClock)")
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--resource-group", required=True)
    parser.add_argument("--vault", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lro-retry-after", type=int, default=SimConfig().lro_retry_after_seconds)
    return parser.parse_args(argv)


def build_app(args: argparse.Namespace) -> AsrSimulatorApp:
    clock: Clock = FileClock(args.clock_file) if args.clock_file else SystemClock()
    vault = Vault(args.subscription, args.resource_group, args.vault)
    sim = Simulator(vault, seed=args.seed, config=SimConfig(lro_retry_after_seconds=args.lro_retry_after))
    return AsrSimulatorApp(sim, clock)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    uvicorn.run(
        build_app(args),
        host=args.host,
        port=args.port,
        ssl_certfile=str(args.cert),
        ssl_keyfile=str(args.key),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=75,
    )
