"""The demo's HTTP API in Django: `/naive/...` and `/fast/...` views, the ticket write and the job status,
the same paths and JSON as `perfkit.demo.app.api`. Async views: served under uvicorn (ASGI), each runs
on the event loop and the ORM's queries in Django's database thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, JsonResponse

from perfkit.demo.app.models import STATUSES
from perfkit.demo.app.tasks import export_key, job_json, notify_key
from perfkit.demo.django_app import queries, tasks
from perfkit.demo.django_app.models import Ticket
from perfkit.django import rows
from perfkit.django.jobs import project
from perfkit.errors import ConfigurationError

MAX_ID = 2**31 - 1  # ids are 32-bit in the schema: a larger one is a 422 naming the parameter
MAX_MESSAGE = 200  # the notifications.message column


class Invalid(Exception):
    """A 4xx answer with FastAPI's error shape (`{"detail": ...}`)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


View = Callable[..., Awaitable[HttpResponse]]


def _answers(view: Callable[..., Awaitable[Any]], method: str = "GET", status: int = 200) -> View:
    """An async view answering `method` only: `view`'s value as JSON (a response as it is), `Invalid` as
    its status and detail. (The method check is here, not Django's `require_GET`: that decorator keeps an
    async view async only from Django 5.0.)"""

    async def run(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        if request.method != method:
            answer = JsonResponse({"detail": "Method Not Allowed"}, status=405)
            answer["Allow"] = method
            return answer
        try:
            value = await view(request, **kwargs)
        except Invalid as exc:
            return JsonResponse({"detail": exc.detail}, status=exc.status)
        if isinstance(value, HttpResponse):
            return value
        return JsonResponse(value, status=status, safe=False)

    run.__name__ = run.__qualname__ = view.__name__
    return run


def _id(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Invalid(422, f"{name} must be an integer, not {value!r}") from None
    if not 1 <= number <= MAX_ID:
        raise Invalid(422, f"{name} must be between 1 and {MAX_ID}")
    return number


def _message(request: HttpRequest) -> str:
    message: str = request.GET.get("message", "maintenance tonight")
    if not 1 <= len(message) <= MAX_MESSAGE:
        raise Invalid(422, f"message must be 1 to {MAX_MESSAGE} characters")
    return message


def _csv(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/csv; charset=utf-8")


def pair(naive: Callable[[int], Awaitable[Any]], fast: Callable[[int], Awaitable[Any]]) -> tuple[View, View]:
    """The naive and the fast GET view of an organization's resource."""

    async def run_naive(request: HttpRequest, org_id: int) -> Any:
        return await naive(_id("org_id", org_id))

    async def run_fast(request: HttpRequest, org_id: int) -> Any:
        return await fast(_id("org_id", org_id))

    return _answers(run_naive), _answers(run_fast)


_dashboards: dict[str, Callable[[int], Awaitable[Any]]] = {}


async def dashboard_fast(org_id: int) -> Any:
    """The dashboard from perfkit's cache (the `default` alias's), invalidated after commit by any ORM
    write to this organization's tickets: `save`, `update()`, `bulk_update()`, `delete()`..."""
    cached = _dashboards.get("default")
    if cached is None:  # made on first use: Django's apps are ready, the CACHES alias is configured
        cache = caches["default"].perfkit_cache
        cached = cache.cached(
            ttl=300, key="org:{org_id}:dashboard", depends_on=[rows(Ticket, organization_id="{org_id}")]
        )(queries.dashboard)
        _dashboards["default"] = cached
    return await cached(org_id)


stats_naive, stats_fast = pair(queries.stats_naive, queries.stats_fast)
tickets_naive, tickets_fast = pair(queries.tickets_naive, queries.tickets_fast)
dashboard_naive, dashboard_cached = pair(queries.dashboard, dashboard_fast)


async def _search(request: HttpRequest, search: Callable[[int, str], Awaitable[Any]]) -> Any:
    return await search(_id("assignee_id", request.GET.get("assignee_id")), request.GET.get("status", "open"))


async def _search_naive(request: HttpRequest) -> Any:
    return await _search(request, queries.search_naive)


async def _search_fast(request: HttpRequest) -> Any:
    return await _search(request, queries.search_fast)


search_naive = _answers(_search_naive)
search_fast = _answers(_search_fast)


async def _set_status(request: HttpRequest, ticket_id: int, status: str) -> Any:
    pk = _id("ticket_id", ticket_id)
    if status not in STATUSES:
        raise Invalid(422, f"status must be one of {list(STATUSES)}")
    ticket = await Ticket.objects.filter(pk=pk).afirst()
    if ticket is None:
        raise Invalid(404, f"no ticket {pk}")
    ticket.status = status
    await ticket.asave(update_fields=["status"])  # perfkit clears the org's cached dashboard after commit
    return {"id": pk, "status": status, "organization_id": ticket.organization_id}


set_status = _answers(_set_status, "POST")

# -- export and bulk notification: the request does the work vs a job does it (202 + a status URL) --------


async def _export_naive(request: HttpRequest, org_id: int) -> Any:
    return _csv(await queries.export_csv(_id("org_id", org_id)))


async def _export_fast(request: HttpRequest, org_id: int) -> Any:
    org = _id("org_id", org_id)
    # one export per organization at a time: repeated clicks get the job already under way
    return job_json(await tasks.export_report.enqueue(org, key=f"export:{org}"))


async def _notify_naive(request: HttpRequest, org_id: int) -> Any:
    return await queries.notify_org(_id("org_id", org_id), _message(request))


async def _notify_fast(request: HttpRequest, org_id: int) -> Any:
    org, message = _id("org_id", org_id), _message(request)
    return job_json(await tasks.notify_org.enqueue(org, message, key=notify_key(org, message)))


export_naive = _answers(_export_naive)
export_fast = _answers(_export_fast, "POST", status=202)
notify_naive = _answers(_notify_naive, "POST")
notify_fast = _answers(_notify_fast, "POST", status=202)


async def _find(job_id: str) -> Any:
    try:
        info = await project.run(lambda jobs: jobs.get(job_id))
    except ConfigurationError as exc:  # not a job id at all
        raise Invalid(404, str(exc)) from None
    if info is None:
        raise Invalid(404, f"no job {job_id}")
    return info


async def _job_status(request: HttpRequest, job_id: str) -> Any:
    return job_json(await _find(job_id))


async def _job_export(request: HttpRequest, job_id: str) -> Any:
    info = await _find(job_id)
    body = await caches["default"].aget(export_key(job_id))
    if body is None:
        raise Invalid(409, f"export {job_id} is not ready ({info.status})")
    return _csv(body)


job_status = _answers(_job_status)
job_export = _answers(_job_export)
