"""GET /api/status: the status page (function key in ``?code=`` as for every route)."""

from __future__ import annotations

import azure.functions as func

from functions.bootstrap import services
from functions.status_page.render import render_status_page
from migration.queries import summarize_wave
from migration.records import MigrationRecord

bp = func.Blueprint()  # type: ignore[no-untyped-call]
MAX_ROWS = 2000
RECENT_NOTIFICATIONS = 20


def _all_records() -> list[MigrationRecord]:
    store = services().store
    records: list[MigrationRecord] = []
    continuation: str | None = None
    while len(records) < MAX_ROWS:
        page = store.list(continuation=continuation, page_size=500)
        records.extend(page.items)
        continuation = page.continuation
        if continuation is None:
            break
    return records


@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status_page(req: func.HttpRequest) -> func.HttpResponse:
    records = _all_records()
    by_wave: dict[str, list[MigrationRecord]] = {}
    for record in records:
        by_wave.setdefault(record.wave or "(no wave)", []).append(record)
    waves = [summarize_wave(wave, members) for wave, members in sorted(by_wave.items())]
    outbox = services().outbox
    notifications = outbox.recent(limit=RECENT_NOTIFICATIONS) if outbox is not None else None
    html = render_status_page(waves, records, now=services().clock.now(), notifications=notifications)
    return func.HttpResponse(html, status_code=200, mimetype="text/html", charset="utf-8",
                             headers={"Cache-Control": "no-store"})  # fmt: skip
