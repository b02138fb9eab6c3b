"""``python -m devstack.funchost --app DIR``: the process the stack launcher starts."""

from devstack.funchost.cli import main

main()
