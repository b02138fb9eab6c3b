"""Run the SSM stand-in under uvicorn, with a ticker that ends invocations as the virtual clock passes them."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from devstack.asr_sim.control import SimulatorControl
from devstack.clock import FileClock, SystemClock
from devstack.ssm_sim.app import SsmSimulatorApp
from devstack.ssm_sim.contract import ManagedNode
from devstack.ssm_sim.engine import Clock, Engine

TICK_SECONDS = 0.05


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.ssm_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clock-file", type=Path, help="virtual clock file (devstack.clock.FileClock)")
    parser.add_argument("--asr-url", help="the ASR simulator (its control API registers installed machines)")
    parser.add_argument("--asr-ca", help="the ASR simulator's test CA (PEM)")
    return parser.parse_args(argv)


def appliance(asr_url: str | None, asr_ca: str | None) -> tuple[SimulatorControl | None, threading.Lock]:
    return (SimulatorControl(asr_url, asr_ca) if asr_url and asr_ca else None), threading.Lock()


def build_engine(args: argparse.Namespace) -> Engine:
    clock: Clock = FileClock(args.clock_file) if args.clock_file else SystemClock()
    control, lock = appliance(args.asr_url, args.asr_ca)

    def register(node: ManagedNode) -> None:
        # The Mobility service registered with the appliance: its OffAzure site lists the machine (by IP).
        if control is not None:
            with lock:
                control.agent_registered(node.ip_address)

    return Engine(clock=clock, register=register if control is not None else None)


def ticker(engine: Engine, stop: threading.Event) -> None:
    while not stop.wait(TICK_SECONDS):
        try:
            engine.advance()
        except Exception:  # keep ticking; the failure shows in the invocation or the log
            logging.getLogger("devstack.ssm_sim").exception("advance failed")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    engine = build_engine(args)
    stop = threading.Event()
    thread = threading.Thread(target=ticker, args=(engine, stop), daemon=True, name="ssm-sim-ticker")
    thread.start()
    try:
        uvicorn.run(SsmSimulatorApp(engine), host=args.host, port=args.port, log_level="warning", access_log=False,
                    lifespan="on")  # fmt: skip
    finally:
        stop.set()
