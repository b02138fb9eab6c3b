from __future__ import annotations

from devstack.ssm_sim.server import main

main()
