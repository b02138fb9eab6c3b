"""The simulator's Microsoft.OffAzure answers have the official examples' shape: every key the simulator serves
exists in the example with the same JSON type, at every level of ``properties``, and no key is invented.

The example shapes (fixtures/offazure_example_shapes.json beside this file) were derived from azure-rest-api-specs
specification/migrate/resource-manager/Microsoft.OffAzure/OffAzure/examples/2024-12-01-preview; the tests need no
network. /work/shared/reference holds no OffAzure examples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.asr_sim import offazure
from devstack.asr_sim.arm import Vault
from devstack.asr_sim.contract import MachineSeed
from devstack.asr_sim.engine import Simulator

SHAPES = json.loads((Path(__file__).parent / "fixtures" / "offazure_example_shapes.json").read_text())


def key_paths(value: Any, prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found[path] = type(inner).__name__
            found |= key_paths(inner, path)
    elif isinstance(value, list):
        for inner in value:
            found[f"{prefix}[]"] = type(inner).__name__
            found |= key_paths(inner, f"{prefix}[]")
    return found


@pytest.fixture
def sim() -> Simulator:
    sim = Simulator(Vault("00000000-0000-0000-0000-000000000001", "rg", "vault"))
    sim.seed_machine(MachineSeed(ip="10.0.0.5", os_type="Linux", os_name="Ubuntu 22.04", disks_gib=(32, 64)))
    return sim


@pytest.mark.parametrize("kind", ["site", "machine", "run_as_account"])
def test_offazure_answers_match_the_official_examples(sim: Simulator, kind: str) -> None:
    machine = next(iter(sim.machines.values()))
    body = {
        "site": lambda: offazure.site(sim),
        "machine": lambda: offazure.machine(sim, machine),
        "run_as_account": lambda: offazure.run_as_account(sim, "Linux", "aws2azure-linux-root"),
    }[kind]()
    served = {path: kind_ for path, kind_ in key_paths(body).items() if not path.startswith("tags.")}
    expected = dict(SHAPES[kind])
    invented = sorted(set(served) - set(expected))
    assert not invented, f"keys the examples do not have: {invented}"
    mismatched = {p: (served[p], expected[p]) for p in served if served[p] != expected[p]}
    assert not mismatched
    # Every field the product reads is served.
    if kind == "machine":
        for needed in ("properties.networkAdapters[].ipAddressList[]", "properties.operatingSystemDetails.osName",
                       "properties.disks[].id", "properties.runAsAccountId"):  # fmt: skip
            assert needed in served
