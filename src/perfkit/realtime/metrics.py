"""The hub's metrics in perfkit's collector (names in the house style: `realtime_*`)."""

from __future__ import annotations

from perfkit.metrics import LATENCY_BUCKETS, Collector

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class RealtimeMetrics:
    """What the hub counts: connections, messages in and out, batch sizes, drops, lag and round trips."""

    def __init__(self, collector: Collector) -> None:
        c = collector
        self.connections = c.gauge("realtime_connections", ("transport",), "Open real-time connections")
        self.opened = c.counter("realtime_connections_total", ("transport",), "Connections accepted")
        self.refused = c.counter("realtime_refused_total", ("reason",), "Connections or requests refused")
        self.closed = c.counter("realtime_closed_total", ("reason",), "Connections closed by the hub")
        self.published = c.counter("realtime_published_total", (), "Messages published through this process")
        self.messages_in = c.counter("realtime_messages_in_total", (), "Frames received from clients")
        self.messages_out = c.counter("realtime_messages_out_total", (), "Messages sent to clients")
        self.frames = c.counter("realtime_frames_total", ("transport",), "Frames sent to clients")
        self.batch = c.histogram("realtime_batch_size", (), "Messages per frame sent", BATCH_BUCKETS)
        self.dropped = c.counter("realtime_dropped_total", ("reason",), "Messages not sent (slow consumers)")
        self.lag = c.histogram("realtime_lag_seconds", (), "Publish to send, per message", LATENCY_BUCKETS)
        self.rtt = c.histogram("realtime_rtt_seconds", (), "Heartbeat round trips", LATENCY_BUCKETS)
        self.gaps = c.counter("realtime_gaps_total", (), "Holes filled from (or resynced past) the history")
        self.subscriptions = c.gauge("realtime_subscriptions", (), "Broker subscriptions of this process")
        self._open: dict[str, int] = {}

    def connected(self, transport: str, delta: int) -> None:
        count = self._open[transport] = self._open.get(transport, 0) + delta
        self.connections.set((transport,), count)
        if delta > 0:
            self.opened.inc((transport,))
