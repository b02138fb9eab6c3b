from __future__ import annotations

from devstack.asr_sim.server import main

main()
