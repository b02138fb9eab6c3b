"""Server-side HTML for the status page. Plain HTML and CSS, one small script, no build step."""

from __future__ import annotations

from datetime import datetime
from html import escape

from migration.lifecycle import Phase
from migration.notifications import Notification
from migration.queries import migration_progress
from migration.records import MigrationRecord, WaveSummary

PHASE_CLASS = {
    Phase.MIGRATED: "ok", Phase.FAILED: "bad", Phase.NOT_READY: "bad", Phase.CANCELLED: "muted",
    Phase.ROLLED_BACK: "bad",
    Phase.AWAITING_CUTOVER: "wait", Phase.READY_FOR_CUTOVER: "wait",
}  # fmt: skip
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1f24;background:#f6f8fa}
h1{font-size:1.3rem;margin:0 0 .2rem} h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.meta{color:#57606a;margin-bottom:1rem}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}
th,td{padding:.35rem .6rem;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{background:#f0f3f6;font-weight:600}
.bar{background:#eaeef2;border-radius:4px;height:10px;width:160px;display:inline-block;vertical-align:middle}
.bar>span{display:block;height:100%;border-radius:4px;background:#2f81f7}
.pill{border-radius:10px;padding:.05rem .5rem;background:#ddf4ff;color:#0969da;white-space:nowrap}
.pill.ok{background:#dafbe1;color:#1a7f37}.pill.bad{background:#ffebe9;color:#cf222e}
.pill.wait{background:#fff8c5;color:#9a6700}.pill.muted{background:#eaeef2;color:#57606a}
.counts span{margin-right:.8rem} .reason{color:#57606a;max-width:40rem}
#instances td:nth-child(-n+3),#instances td:nth-child(5){white-space:nowrap}
"""
SCRIPT = """
setInterval(async () => {
  try {
    const res = await fetch(location.href, {headers: {"Accept": "text/html"}});
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    document.getElementById("content").replaceWith(doc.getElementById("content"));
  } catch (e) { /* keep showing the last good page */ }
}, 5000);
"""


def _bar(percent: float) -> str:
    value = max(0.0, min(100.0, percent))
    return f'<span class="bar" title="{value:.0f}%"><span style="width:{value:.0f}%"></span></span> {value:.0f}%'


def _rpo(record: MigrationRecord) -> str:
    return f" (RPO {record.rpo_seconds}s)" if record.rpo_seconds is not None else ""


def _phase(phase: Phase) -> str:
    return f'<span class="pill {PHASE_CLASS.get(phase, "")}">{escape(phase.value)}</span>'


EMPTY_NOTIFICATIONS = '<tr><td colspan="8">none yet</td></tr>'
NOTIFICATION_CLASS = {"delivered": "ok", "dead": "bad", "pending": "wait"}


def _notifications(notifications: list[Notification] | None) -> str:
    """The latest notifications delivered or dead-lettered (None: no destination is configured)."""
    if notifications is None:
        return ("<h2>Notifications</h2><p class='meta'>no destination configured "
                "(NOTIFY_WEBHOOK_URL, NOTIFY_EVENT_GRID_ENDPOINT)</p>")  # fmt: skip
    rows = "".join(
        f"<tr><td>{escape(n.migration_id)}</td><td>{n.sequence}</td><td>{_phase(n.phase)}</td>"
        f"<td><span class='pill {NOTIFICATION_CLASS.get(n.status, '')}'>{escape(n.status)}</span></td>"
        f"<td>{n.attempts}</td><td>{escape(', '.join(n.delivered_to) or '-')}</td>"
        f"<td class='reason'>{escape(n.last_error)}</td>"
        f"<td>{n.finished_at.strftime('%Y-%m-%d %H:%M:%S') + 'Z' if n.finished_at else '-'}</td></tr>"
        for n in notifications
    )
    return (
        "<h2>Latest notifications</h2><table id='notifications'><thead><tr><th>migration</th><th>#</th><th>phase</th>"
        "<th>status</th><th>attempts</th><th>sent to</th><th>last error</th><th>at</th></tr></thead>"
        f"<tbody>{rows or EMPTY_NOTIFICATIONS}</tbody></table>"
    )


def render_status_page(waves: list[WaveSummary], records: list[MigrationRecord], *, now: datetime,
                       notifications: list[Notification] | None = None) -> str:  # fmt: skip
    wave_rows = "".join(
        f"<tr><td>{escape(w.wave)}</td><td>{w.total}</td><td>{_bar(w.progress_percent)}</td>"
        f"<td class='counts'>{''.join(f'<span>{escape(p)}: {n}</span>' for p, n in sorted(w.by_phase.items()))}"
        f"</td></tr>"
        for w in waves
    )
    instance_rows = "".join(
        f"<tr><td>{escape(r.instance.instance_id)}</td><td>{escape(r.wave or '-')}</td><td>{_phase(r.phase)}</td>"
        f"<td>{_bar(migration_progress(r))}</td>"
        f"<td>{escape(r.replication_health or '-')}{_rpo(r)}</td>"
        f"<td class='reason'>{escape(r.reason or '')}</td>"
        f"<td>{r.updated_at.strftime('%Y-%m-%d %H:%M:%S')}Z</td></tr>"
        for r in sorted(records, key=lambda r: (r.wave or "", r.instance.instance_id))
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aws2azure status</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><main id="content">
<h1>aws2azure migrations</h1>
<div class="meta">{len(records)} instances in {len(waves)} waves &middot; as of {now.strftime("%Y-%m-%d %H:%M:%S")}Z
&middot; refreshes every 5 s</div>
<h2>Waves</h2>
<table id="waves"><thead><tr><th>wave</th><th>instances</th><th>progress</th><th>per phase</th></tr></thead>
<tbody>{wave_rows or '<tr><td colspan="4">no waves yet</td></tr>'}</tbody></table>
<h2>Instances</h2>
<table id="instances"><thead><tr><th>instance</th><th>wave</th><th>phase</th><th>progress</th><th>health</th>
<th>last event</th><th>updated</th></tr></thead>
<tbody>{instance_rows or '<tr><td colspan="7">no migrations yet</td></tr>'}</tbody></table>
{_notifications(notifications)}
</main><script>{SCRIPT}</script></body></html>"""
