"""Start, check and stop the local stack: Azurite, moto's server, the ASR simulator, the local host.

Every service is a child process in its own session, recorded by PID in the state dir, so that
``down`` stops exactly the processes ``up`` started and nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.settings import (
    DEFAULT_STATE_DIR,
    MOTO_AMIS_FILE,
    REPO_ROOT,
    AzuriteEndpoints,
    MotoEndpoint,
    StackSettings,
    state_dir,
)

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 60.0
DEFAULT_SERVICES = ("azurite", "moto", "asr", "ssm", "webhook", "host")


class StackError(RuntimeError):
    """The stack could not be started or stopped as asked; the message says what to do."""


@dataclass
class ServiceSpec:
    """How to start one service and how to know it answers."""

    name: str
    argv: list[str]
    ready: Callable[[], bool]
    settings: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class LaunchContext:
    state_dir: Path
    clock_file: Path
    settings: dict[str, Any]
    python: str = sys.executable
    # Stacks outside the default state dir (tests, benchmarks) take OS-assigned ports, so that
    # several of them can run at once without racing for the same well-known port.
    ephemeral_ports: bool = False
    taken: set[int] = field(default_factory=set)

    def port(self, preferred: int) -> int:
        while True:
            chosen = ephemeral_port() if self.ephemeral_ports else pick_port(preferred, exclude=self.taken)
            if chosen not in self.taken:
                self.taken.add(chosen)
                return chosen


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def ephemeral_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def pick_port(preferred: int, *, exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """The preferred port if it is free, else the next free one (said aloud, never a hang)."""
    for candidate in range(preferred, preferred + 200):
        if candidate not in exclude and port_is_free(candidate):
            if candidate != preferred:
                print(f"  port {preferred} is taken; using {candidate}", file=sys.stderr)
            return candidate
    raise StackError(f"no free port in {preferred}..{preferred + 199} on {LOOPBACK}")


def tcp_answers(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_answers(url: str, *, context: Any = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def azurite_spec(ctx: LaunchContext) -> ServiceSpec:
    binary = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise StackError(f"Azurite is not installed at {binary}: run 'make deps' (npm install)")
    endpoints = AzuriteEndpoints(
        host=LOOPBACK, blob_port=ctx.port(10000), queue_port=ctx.port(10001), table_port=ctx.port(10002)
    )
    data = ctx.state_dir / "azurite"
    data.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    if node is None:
        raise StackError("Azurite needs Node.js: install node (20 or newer) and run 'make deps'")
    # Run the script through node explicitly so the PID's command line is what we recorded.
    argv = [
        node, str(binary.resolve()), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
        "--location", str(data),
        "--blobHost", LOOPBACK, "--blobPort", str(endpoints.blob_port),
        "--queueHost", LOOPBACK, "--queuePort", str(endpoints.queue_port),
        "--tableHost", LOOPBACK, "--tablePort", str(endpoints.table_port),
    ]  # fmt: skip

    def ready() -> bool:
        return all(tcp_answers(p) for p in (endpoints.blob_port, endpoints.queue_port, endpoints.table_port))

    return ServiceSpec("azurite", argv, ready, {"azurite": endpoints})


def moto_spec(ctx: LaunchContext) -> ServiceSpec:
    port = ctx.port(5000)
    endpoint = MotoEndpoint(url=f"http://{LOOPBACK}:{port}")
    argv = [ctx.python, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
    return ServiceSpec(
        "moto",
        argv,
        lambda: http_answers(f"{endpoint.url}/moto-api/"),
        {"moto": endpoint},
        env={"MOTO_AMIS_PATH": str(MOTO_AMIS_FILE)},
    )


def _plugin_spec(module: str) -> Callable[[LaunchContext], ServiceSpec | None]:
    """Services built in their own packages plug in through ``<module>.service_spec(ctx)``."""

    def build(ctx: LaunchContext) -> ServiceSpec | None:
        try:
            plugin = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                return None
            raise
        spec: ServiceSpec = plugin.service_spec(ctx)
        return spec

    return build


SERVICE_BUILDERS: dict[str, Callable[[LaunchContext], ServiceSpec | None]] = {
    "azurite": azurite_spec,
    "moto": moto_spec,
    "asr": _plugin_spec("devstack.asr_sim.launch"),
    # The SSM stand-in (moto's SSM lacks DescribeInstanceInformation); it plays the appliance, after "asr".
    "ssm": _plugin_spec("devstack.ssm_sim.launch"),
    # The local notification receiver; before "host", which points NOTIFY_WEBHOOK_URL at it.
    "webhook": _plugin_spec("devstack.webhook_receiver"),
    "host": _plugin_spec("devstack.funchost.launch"),
}


# What a stack writes into its folder; Stack.reset removes exactly these.
STACK_FILES = ("azurite", "asr", "funchost", "logs", "pids", "clock", "stack.json")


def _pid_dir(root: Path) -> Path:
    return root / "pids"


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_ours(record: dict[str, Any]) -> bool:
    """The PID still belongs to the process we started (PIDs are reused)."""
    cmdline = _cmdline(int(record["pid"]))
    return cmdline is not None and cmdline[1:] == record["argv"][1:]


class Stack:
    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or state_dir()).resolve()
        self.settings_path = self.root / "stack.json"

    def _records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        directory = _pid_dir(self.root)
        if not directory.exists():
            return
        for path in sorted(directory.glob("*.json")):
            yield path, json.loads(path.read_text())

    def running(self) -> dict[str, int]:
        return {rec["name"]: int(rec["pid"]) for _, rec in self._records() if _is_ours(rec)}

    def up(self, services: Sequence[str] = DEFAULT_SERVICES, *, quiet: bool = False) -> StackSettings:
        if self.running():
            raise StackError(
                f"a stack is already running from {self.root} ({', '.join(self.running())}); "
                "run 'aws2azure stack down' first"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        _pid_dir(self.root).mkdir(exist_ok=True)
        ctx = LaunchContext(
            self.root,
            self.root / "clock",
            {"state_dir": str(self.root), "clock_file": str(self.root / "clock")},
            ephemeral_ports=self.root != DEFAULT_STATE_DIR.resolve(),
        )
        try:
            for name in services:
                builder = SERVICE_BUILDERS.get(name)
                if builder is None:
                    raise StackError(f"unknown service {name!r}; known: {', '.join(SERVICE_BUILDERS)}")
                spec = builder(ctx)
                if spec is None:
                    if not quiet:
                        print(f"  {name}: not available in this build, skipped", file=sys.stderr)
                    continue
                self._start(spec)
                ctx.settings.update(spec.settings)
                # Later services (the host) read earlier ones' endpoints from the settings file.
                StackSettings.model_validate(ctx.settings).write(self.settings_path)
        except BaseException:
            self.down(quiet=True)
            raise
        settings = StackSettings.model_validate(ctx.settings)
        settings.write(self.settings_path)
        return settings

    def _start(self, spec: ServiceSpec) -> None:
        self._spawn(spec.name, spec.argv, spec.env, spec.ready)

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str], ready: Callable[[], bool]) -> None:
        log_path = self.root / "logs" / f"{name}.log"
        env = {**os.environ, **extra_env, "AWS2AZURE_STATE_DIR": str(self.root)}
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT, env=env, start_new_session=True,
            )  # fmt: skip
        record = {"name": name, "pid": process.pid, "argv": argv, "env": extra_env, "log": str(log_path)}
        (_pid_dir(self.root) / f"{name}.json").write_text(json.dumps(record))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {process.returncode} while starting; "
                    f"last lines of {log_path}:\n{_tail(log_path)}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise StackError(f"{name} did not answer within {READY_TIMEOUT_S:.0f}s; see {log_path}:\n{_tail(log_path)}")

    def _record(self, name: str) -> dict[str, Any]:
        path = _pid_dir(self.root) / f"{name}.json"
        if not path.exists():
            raise StackError(f"{name} is not running from {self.root}")
        record: dict[str, Any] = json.loads(path.read_text())
        return record

    def kill(self, name: str) -> None:
        """SIGKILL one service's processes, as a crash would: no shutdown handlers run."""
        record = self._record(name)
        if _is_ours(record):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(record["pid"]), signal.SIGKILL)
            _stop_group(int(record["pid"]), timeout_s=5.0)

    def restart(self, name: str, ready: Callable[[], bool]) -> None:
        """Start a killed (or running) service again with the same command line, ports and settings."""
        record = self._record(name)
        if _is_ours(record):
            self.kill(name)
        self._spawn(name, record["argv"], record.get("env", {}), ready)

    def reset(self) -> None:
        """Remove everything a previous stack left in this folder (data, clock, certificates, logs).

        A stack always starts from what the folder holds: Azurite's data and the clock outlive a run, the
        ASR simulator's state does not. Refused while a stack still runs from here."""
        if self.running():
            raise StackError(
                f"a stack is still running from {self.root} ({', '.join(self.running())}); "
                "stop it with 'aws2azure stack down' first (or look at it: 'aws2azure status')"
            )
        for name in STACK_FILES:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def down(self, *, quiet: bool = False) -> list[str]:
        stopped = []
        # Stop in the reverse of start order: the host first, so it never runs against a stopped service.
        order = {name: index for index, name in enumerate(DEFAULT_SERVICES)}
        records = sorted(self._records(), key=lambda item: -order.get(item[1]["name"], -1))
        for path, record in records:
            pid = int(record["pid"])
            if _is_ours(record):
                _stop_group(pid)
                stopped.append(record["name"])
            elif not quiet:
                print(f"  {record['name']}: pid {pid} is no longer ours, not touched", file=sys.stderr)
            path.unlink(missing_ok=True)
        self.settings_path.unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, Any]:
        running = self.running()
        settings = StackSettings.load(self.settings_path) if self.settings_path.exists() else None
        return {"running": running, "settings": settings.model_dump() if settings else None}


def _stop_group(pid: int, timeout_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    # Reap our direct child if we are its parent (the same process ran ``up``).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 5 of /proc/pid/stat is the process group; the command name may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
