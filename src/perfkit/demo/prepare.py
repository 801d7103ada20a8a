"""Before the demo measures anything: stores reachable, data seeded (or reused), state from an earlier
run forgotten, and the organization and assignee the load will use picked from the data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from perfkit.demo import folder
from perfkit.demo.settings import DemoSettings
from perfkit.errors import ConfigurationError, PerfkitError

PREFERRED_ORG = 3


async def prepare(settings: DemoSettings, redis_option: bool) -> dict[str, Any]:
    from perfkit.demo.app import runtime

    cache = runtime.cache(settings)
    try:
        try:
            await cache.ping()
        except PerfkitError as exc:
            raise ConfigurationError(
                "--redis" if redis_option else "--dir", f"the cache store does not answer: {exc}"
            ) from None
        await cache.clear()  # the data may have been seeded again since those values were cached
    finally:
        await cache.close()
    forget_monitoring(settings)
    return await asyncio.to_thread(_seed_and_pick, settings)


def forget_monitoring(settings: DemoSettings) -> None:
    """The report covers this run only: an embedded store from an earlier run is removed (on Redis the
    report's window is limited to this run instead). Only ever inside the demo's own folder."""
    if settings.monitor_url.startswith("sqlite:///"):
        path = Path(settings.monitor_url.removeprefix("sqlite:///"))
        if not folder.owned(path.parent):
            raise PerfkitError(f"{path.parent} is not the demo's own folder: its monitor store is kept")
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


def _seed_and_pick(settings: DemoSettings) -> dict[str, Any]:
    from sqlalchemy import delete, func, select

    from perfkit.demo.app import runtime
    from perfkit.demo.app.models import Base, Notification, Ticket
    from perfkit.demo.app.seed import seed

    try:
        engine = runtime.sync_engine(settings)
    except Exception as exc:  # a wrong --postgres URL: say which option, not a driver traceback
        raise ConfigurationError("--postgres", f"cannot open the demo database: {exc}") from None
    try:
        volume, seconds, reused = seed(engine, settings.scale)
        Base.metadata.create_all(engine)  # tables added since that database was seeded
        with engine.begin() as conn:
            conn.execute(delete(Notification))
            orgs = conn.execute(select(func.max(Ticket.organization_id))).scalar_one()
            org = min(PREFERRED_ORG, orgs)
            assignee = conn.execute(
                select(Ticket.assignee_id)
                .where(
                    Ticket.organization_id == org, Ticket.status == "open", Ticket.assignee_id.is_not(None)
                )
                .order_by(Ticket.id)
                .limit(1)
            ).scalar()
    finally:
        engine.dispose()
    if assignee is None:
        raise ConfigurationError("--scale", f"{settings.scale:g} leaves organization {org} no open ticket")
    return {
        "volume": volume,
        "seed_seconds": round(seconds, 1),
        "reused": reused,
        "org": org,
        "assignee": assignee,
    }
