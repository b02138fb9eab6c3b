"""The aws2azure Function App: creates the app and registers the blueprints, nothing else."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from functions.activities import bp as activities
from functions.api import bp as api
from functions.intake import bp as intake
from functions.notifications import bp as notifications
from functions.orchestrations import bp as orchestrations
from functions.reconcile import bp as reconcile
from functions.status_page import bp as status_page
from functions.wave_orchestration import bp as waves

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (orchestrations, waves, activities, intake, reconcile, notifications, api, status_page):
    app.register_functions(blueprint)
