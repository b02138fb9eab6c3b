"""A local Azure Functions host for Python v2-model apps, with Durable Functions.

Loads ``function_app.py`` unchanged, serves its HTTP triggers, polls its queue triggers on
Azurite, fires its timer triggers and runs its orchestrations through the real
``azure-functions-durable`` SDK by replaying history. See docs/LOCAL_HOST.md.
"""

from devstack.funchost.host import LocalHost

__all__ = ["LocalHost"]
