"""The Redis Cluster broker (`redis+cluster://host:port,host:port` or `?nodes=`): the Redis broker's
Lua scripts run through the cluster client (a channel's keys share one hash slot: `{channel}`), and
fan-out is sharded pub/sub (Redis 7: `SPUBLISH` from the publish script, `SSUBSCRIBE` on the primary
that owns the channel's slot): one pub/sub link per primary that holds a subscribed channel.

Why sharded and not classic pub/sub: a classic `PUBLISH` in a cluster is broadcast over the cluster bus
to every node, so each message costs every node and the cluster's fan-out does not grow with its
nodes; a sharded message stays on its shard (and its replicas). The price is one link per primary
instead of one per process, and following slots as they move, which this module does:

* a link that drops reconnects to its node with backoff (a restarted node), then the hub fills the gap
  from the history (or resyncs on a new epoch), as after a one-node Redis restart;
* while it cannot reconnect, or when the node ends a subscription itself (`sunsubscribe`: the slot
  moved, as on a failover to a replica or a resharding), the broker reloads the slot map and moves
  those channels to the link of their new primary, which subscribes them and then fills the gap;
* a link left holding nothing, whose node is no longer a primary, stops.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from redis.asyncio.cluster import RedisCluster

from perfkit.backends import BackendURL
from perfkit.realtime.config import HubConfig
from perfkit.realtime.link import Link
from perfkit.realtime.redis import TIMEOUT, Read, RedisBroker
from perfkit.redisclient import node_url

logger = logging.getLogger("perfkit.realtime")


class ClusterBroker(RedisBroker):
    kind = "redis-cluster"
    publish_command = "SPUBLISH"

    def __init__(self, url: BackendURL, *, config: HubConfig, **options: Any) -> None:
        super().__init__(url, config=config, **options)
        self.slot_map: asyncio.Lock | None = None  # one reload of the slot map at a time
        self.known = False  # the cluster client has read the slot map once

    async def _nodes(self) -> Any:
        """The cluster client's node manager, with the slot map read once."""
        if not self.known:
            async with asyncio.timeout(TIMEOUT):
                await self.client.initialize()
            self.known = True
        return self.client.nodes_manager

    async def _link_for(self, channel: str) -> Link:
        nodes = await self._nodes()
        return self._owner_link(nodes, self.topic(channel))

    def _owner_link(self, nodes: Any, topic: str) -> Link:
        node = nodes.get_node_from_slot(self.client.keyslot(topic))
        return self.link_to(node.name, node_url(self.url, node.name))

    async def ping(self) -> None:
        """Every primary answers (redis-py's cluster PING asks one node only)."""
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.client.ping(target_nodes=RedisCluster.PRIMARIES)
        except Exception as exc:
            self.translate.reraise(exc)

    async def _send_reads(self, items: list[Read]) -> list[Any]:
        # one command each, at once: redis-py's cluster pipeline refuses scripts (EVALSHA)
        return await asyncio.gather(
            *(self.run(functools.partial(self.history_script, keys=k, args=a)) for k, a, _ in items),
            return_exceptions=True,
        )

    async def _reload(self) -> Any:
        """Read the slot map again (a failover moved slots); None while no node answers."""
        if self.slot_map is None:
            self.slot_map = asyncio.Lock()
        async with self.slot_map:
            try:
                async with asyncio.timeout(TIMEOUT):
                    await self.client.nodes_manager.initialize()
            except Exception as exc:
                logger.info("realtime: reloading the cluster's slot map failed (%s)", exc)
                return None
            self.known = True
            return self.client.nodes_manager

    async def unreachable(self, link: Link) -> bool:
        self.reachable = False
        nodes = await self._reload()
        if nodes is None:
            return True
        for topic in sorted(link.topics):
            owner = self._owner_link(nodes, topic)
            if owner is not link:
                link.release(topic)
                owner.adopt(topic)
                logger.warning("realtime: %s moved from %s to %s", topic, link.where, owner.where)
        primaries = {node.name for node in nodes.nodes_cache.values() if node.server_type == "primary"}
        if not link.topics and link.where not in primaries:
            self.links.pop(link.where, None)
            self.retired.append(link)
            return False
        return True

    def dropped(self, link: Link, topic: str) -> None:
        task = asyncio.get_running_loop().create_task(self._move(link, topic))
        link.tasks.add(task)
        task.add_done_callback(link.tasks.discard)

    async def _move(self, link: Link, topic: str) -> None:
        nodes = await self._reload()
        if self.channel_of(topic) not in self.channels:
            return  # unsubscribed meanwhile
        owner = link if nodes is None else self._owner_link(nodes, topic)
        owner.adopt(topic)
