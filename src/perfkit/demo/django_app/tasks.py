"""The demo's jobs as project tasks (`perfkit.django.jobs.task`): `manage.py perfkit_worker` imports this
module (every installed app's `tasks`). Finished exports are stored in the shared cache (the `default`
alias's L2), so any app process can serve them."""

from __future__ import annotations

from typing import Any

from django.core.cache import caches

from perfkit.demo.app.tasks import EXPORT_TTL, QUEUE, export_key
from perfkit.demo.django_app import queries
from perfkit.django.jobs import DjangoTask, task


async def _export_report(ctx: Any, org_id: int) -> dict[str, Any]:
    body = await queries.export_csv(org_id, ctx.progress)
    await caches["default"].aset(export_key(ctx.job_id), body, EXPORT_TTL)
    return {"organization_id": org_id, "rows": body.count("\n") - 1, "bytes": len(body)}


async def _notify_org(ctx: Any, org_id: int, message: str) -> dict[str, Any]:
    return await queries.notify_org(org_id, message, ctx.progress)


# short names: the job JSON and the dashboard show them
export_report: DjangoTask = task(
    name="export_report", queue=QUEUE, priority="medium", retries=2, timeout=120
)(_export_report)
notify_org: DjangoTask = task(name="notify_org", queue=QUEUE, priority="high", retries=3, timeout=120)(
    _notify_org
)
