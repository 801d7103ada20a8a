"""The hub fed by the cache invalidator: rows of a model changed -> a message on the model's channel.

`follow_invalidations(hub, invalidator)` listens through the invalidator's public observer seam
(`invalidator.on_change`, perfkit.cache.changes), so it hears of a change after the commit and
after the model's cached dependents were invalidated: a page that reloads on the message reads fresh
values. Publishing goes through `Hub.publish_soon` (in order, failures logged, never raised into the
commit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from perfkit.errors import ConfigurationError
from perfkit.realtime.protocol import check_channel

if TYPE_CHECKING:
    from perfkit.realtime.hub import Hub


def change_message(change: Any) -> dict[str, Any]:
    """The data published for one `RowsChanged`: {"model", "rows": {table: {column: [values]}},
    "unknown": [tables whose changed rows cannot be named]}."""
    return {"model": change.model, "rows": change.rows, "unknown": change.unknown}


def follow_invalidations(
    hub: Hub, invalidator: Any, channel: str = "model:{model}", models: Iterable[str] | None = None
) -> Callable[[], None]:
    """Publish each committed change `invalidator` reports on `channel.format(model=<model name>)`;
    `models` limits it to those model names (a Core write is named by its table). Once per
    (hub's collector, invalidator, channel); returns a function that stops it."""
    if "{model}" not in channel:
        raise ConfigurationError("channel", f"{channel!r} must contain '{{model}}' (one channel per model)")
    check_channel(channel.format(model="Model"))
    if not callable(getattr(invalidator, "on_change", None)):
        raise ConfigurationError(
            "invalidator", f"{invalidator!r} has no on_change(observer): give a CacheInvalidator"
        )
    wanted = None if models is None else frozenset(models)
    if not hub.collector.attach(invalidator, f"realtime-invalidations:{channel}"):
        return lambda: None

    def on_change(change: Any) -> None:
        if wanted is None or change.model in wanted:
            hub.publish_soon(channel.format(model=change.model), change_message(change))

    remove: Callable[[], None] = invalidator.on_change(on_change)
    return remove
