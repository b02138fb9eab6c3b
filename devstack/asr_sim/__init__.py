"""The Azure Site Recovery REST API simulator (InMageRcm path), spoken to by the real SDK over HTTPS.

Start it with the stack launcher (``Stack(...).up(["asr"])``) or ``python -m devstack.asr_sim``; drive
and observe it with ``devstack.asr_sim.control.SimulatorControl``. See docs/ASR_SIMULATOR.md.
"""
