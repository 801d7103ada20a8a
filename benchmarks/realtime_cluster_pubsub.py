"""Classic vs sharded pub/sub on a Redis Cluster (why the hub's `redis+cluster://` uses SPUBLISH):
the CPU time every node spends per published message, and the bytes its cluster bus sends.

    python benchmarks/realtime_cluster_pubsub.py [--nodes 3] [--messages 20000] [--size 200]

Starts a local cluster of `--nodes` primaries (redis-server, free 127.0.0.1 ports, stopped by pid),
subscribes one reader to one channel on the node that owns its slot, and publishes `--messages`
messages of `--size` bytes, first with PUBLISH, then with SPUBLISH, through the owning node. Per mode,
per 1,000 messages: the CPU ms of all nodes together and of the other nodes (neither owning the channel
nor serving the reader; /proc/<pid>/stat), and the cluster bus messages sent (CLUSTER INFO
`cluster_stats_messages_sent`, every type: gossip pings are the floor).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests._cluster import start_cluster  # the test suite's local cluster: same setup


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def bus_messages(port: int) -> int:
    info = redis.Redis(port=port).execute_command("CLUSTER INFO")
    if isinstance(info, dict):  # redis-py parses the reply
        return int(info.get("cluster_stats_messages_sent", 0))
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("cluster_stats_messages_sent:"):
            return int(line.split(":")[1])
    return 0


def run(mode: str, ports: list[int], pids: list[int], owner: int, n: int, size: int) -> dict[str, float]:
    channel = "bench:{room}"
    sub = redis.Redis(port=ports[owner])
    pubsub = sub.pubsub()
    (pubsub.ssubscribe if mode == "SPUBLISH" else pubsub.subscribe)(channel)
    got = 0

    def read() -> None:
        nonlocal got
        while got < n:
            message = pubsub.get_message(timeout=5)
            if message is not None and message["type"] in ("message", "smessage"):
                got += 1

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)
    before = [cpu_ms(p) for p in pids]
    bus_before = sum(bus_messages(p) for p in ports)
    pub = redis.Redis(port=ports[owner])
    payload = "x" * size
    pipe = pub.pipeline(transaction=False)
    for i in range(n):
        pipe.execute_command(mode, channel, payload)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    reader.join(60)
    after = [cpu_ms(p) for p in pids]
    bus_after = sum(bus_messages(p) for p in ports)
    pubsub.close()
    sub.close()
    pub.close()
    spent = [a - b for a, b in zip(after, before, strict=True)]
    others = sum(s for i, s in enumerate(spent) if i != owner)
    return {
        "delivered": got, "cpu_ms_per_1k_all": round(sum(spent) * 1000 / n, 1),
        "cpu_ms_per_1k_other_nodes": round(others * 1000 / n, 1),
        "bus_messages_per_1k": round((bus_after - bus_before) * 1000 / n, 1),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cluster = start_cluster(Path(folder), nodes=args.nodes)
        try:
            client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
            node = client.get_node_from_key("bench:{room}")
            owner = cluster.ports.index(int(node.port))
            client.close()
            pids = [p.pid for p in cluster.procs]
            print(f"{args.nodes} primaries, {args.messages} messages of {args.size} B, one subscriber")
            head = f"{'mode':<10}{'delivered':>10}{'cpu ms/1k (all)':>17}{'(other nodes)':>15}"
            print(f"{head}{'bus msgs/1k':>13}")
            for mode in ("PUBLISH", "SPUBLISH"):
                r = run(mode, cluster.ports, pids, owner, args.messages, args.size)
                print(
                    f"{mode:<10}{r['delivered']:>10}{r['cpu_ms_per_1k_all']:>17}"
                    f"{r['cpu_ms_per_1k_other_nodes']:>15}{r['bus_messages_per_1k']:>13}"
                )
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
