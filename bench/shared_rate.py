"""Shared send rate benchmark: K app processes, one sender limit, against the loopback gateway (issue #14).

    python -m bench.shared_rate                     # K = 4, limit 20/s, N = 600 (about 35 s)
    python -m bench.shared_rate --k 4 --limit 20 --n 1200

One process serves the Dataverse emulator, another the loopback gateway (which answers 429 beyond limit + 5 % in any
trailing second, like a carrier-limited long code, and records when each message arrived); Azurite holds the state
table, the budget entity included. K worker processes each run the real function app (``devtools.host.LocalHost``)
with ``PROVIDER_MAX_PER_SECOND=<limit>``: each gets N/K activities in batches of 50 and pumps its own queue
(scheduled copies honour their time, as Service Bus does). Prints and writes ``bench/results/shared-rate.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.journey import (
    ITERATION_ID,
    JOURNEY_ID,
    KEY,
    MESSAGE_ID,
    MESSAGE_TABLE,
    ROOT,
    app_env,
    contact_id,
    journey_org,
)


def gateway_main(conn: Connection, limit: float) -> None:
    """The SMS gateway in its own process (a provider does not share a CPU with Dataverse)."""
    from devtools.emulators.loopback_provider import LoopbackGateway

    gateway = LoopbackGateway(key=KEY, auto_deliver=False, rate_limit=limit * 1.05).start()
    conn.send(gateway.url)
    conn.recv()  # "stats"
    conn.send(
        {
            "arrivals": sorted(m.received_at for m in gateway.messages),
            "numbers": [m.to for m in gateway.messages],
            "rejected_for_rate": gateway.rejected_for_rate,
        }
    )
    conn.recv()


def dataverse_main(conn: Connection, n: int) -> None:
    dataverse = journey_org(n)
    conn.send(dataverse.url)
    conn.recv()  # "stats"
    conn.send(sum(1 for i in dataverse.interactions if i.get("ResponseType") == "sent"))
    conn.recv()


def worker_main(index: int, env: dict[str, str], first: int, count: int, done: Any) -> None:
    import logging
    import os

    from devtools.host import LocalHost
    from devtools.messages import ActivitySpec, activity_message
    from shared import bootstrap
    from shared.adapters.memory import MemoryQueue
    from shared.settings import load_settings

    counts = {"deferred": 0, "retried": 0, "poisoned": 0, "missed_slots": 0, "conflicts": 0}

    class CountingQueue(MemoryQueue):
        def publish(self, queue: str, body: bytes, **options: Any) -> None:
            message_id = str(options.get("message_id") or "")
            last = message_id.rsplit(":", 1)[-1]  # settlement suffixes: ":defer<ms>" or ":retry<n>"
            kind = "poisoned" if "poison" in queue else "deferred" if last.startswith("defer") else "retried"
            counts[kind] += 1
            super().publish(queue, body, **options)

    logging.getLogger("channel").setLevel(logging.ERROR)
    host = LocalHost(queue=CountingQueue())
    host.environ.update(env)
    os.environ.update(env)
    service = bootstrap.build_service(load_settings(env), queue=host.queue)
    bootstrap.install(service)
    batch: list[tuple[bytes, str | None, dict[str, Any], str]] = []
    for i in range(first, first + count):
        body, props = activity_message(ActivitySpec(contact_id(i), JOURNEY_ID, ITERATION_ID, MESSAGE_TABLE, MESSAGE_ID))
        batch.append((body, "application/json", props, uuid.uuid4().hex))
        if len(batch) == 50 or i == first + count - 1:
            host.deliver_batch("activities", batch)
            batch = []
            host.pump(honour_schedule=True, batch_size=50)
    while host.queue.messages:  # deferred copies come back when they are due
        if host.pump(honour_schedule=True, batch_size=50) == 0:
            time.sleep(0.05)
    provider: Any = service.deps.provider
    counts["missed_slots"] = provider.missed_slots
    counts["conflicts"] = provider.rates.for_sender(None).conflicts
    done.put(counts)


def windows(arrivals: list[float]) -> int:
    """The most arrivals in any 1-second window [t, t + 1)."""
    best, j = 0, 0
    for i, start in enumerate(arrivals):
        while j < len(arrivals) and arrivals[j] < start + 1.0:
            j += 1
        best = max(best, j - i)
    return best


def run(k: int, limit: float, n: int) -> dict[str, Any]:
    from devtools import azurite

    ctx = mp.get_context("fork")
    dv_conn, dv_child = ctx.Pipe()
    gw_conn, gw_child = ctx.Pipe()
    ctx.Process(target=dataverse_main, args=(dv_child, n), daemon=True).start()
    ctx.Process(target=gateway_main, args=(gw_child, limit), daemon=True).start()
    urls = {"dataverse": dv_conn.recv(), "gateway": gw_conn.recv()}
    storage = azurite.start()
    table = f"rate{uuid.uuid4().hex[:8]}"
    env = {
        **app_env(urls["dataverse"], urls["gateway"], storage.connection_string, "http://127.0.0.1:9", table),
        "PROVIDER_MAX_PER_SECOND": str(limit),
        "SEND_CONCURRENCY": "8",
    }
    done: Any = ctx.Queue()
    share = [n // k + (1 if i < n % k else 0) for i in range(k)]
    started = time.time()
    workers = [
        ctx.Process(target=worker_main, args=(i, env, sum(share[:i]), share[i], done), daemon=True) for i in range(k)
    ]
    for w in workers:
        w.start()
    totals = {"deferred": 0, "retried": 0, "poisoned": 0, "missed_slots": 0, "conflicts": 0}
    for _ in workers:
        for key, value in done.get(timeout=max(120.0, 6 * n / limit)).items():
            totals[key] += value
    for w in workers:
        w.join(timeout=30)
    gw_conn.send("stats")
    stats = gw_conn.recv()
    dv_conn.send("stats")
    stats["sent_interactions"] = dv_conn.recv()
    gw_conn.send("stop")
    dv_conn.send("stop")
    storage.stop()
    arrivals: list[float] = stats["arrivals"]
    numbers: list[str] = stats["numbers"]
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return {
        "k": k,
        "limit_per_second": limit,
        "n": n,
        "wall_seconds": round(time.time() - started, 1),
        "provider_messages": len(arrivals),
        "max_in_any_1s_window": windows(arrivals),
        "allowed_per_1s_window": limit * 1.05,
        "utilisation": round((len(arrivals) - 1) / (span * limit), 3) if span else 0.0,
        "rejected_for_rate": stats["rejected_for_rate"],
        "lost": n - len(set(numbers)),
        "duplicates": len(numbers) - len(set(numbers)),
        "sent_interactions": stats["sent_interactions"],
        "deferred_copies": totals["deferred"],
        "retries": totals["retried"],
        "poisoned": totals["poisoned"],
        "missed_slots": totals["missed_slots"],
        "budget_write_conflicts": totals["conflicts"],
        "workers_finished": sum(1 for w in workers if w.exitcode == 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_rate", description=__doc__)
    parser.add_argument("--k", type=int, default=4, help="app processes (default 4)")
    parser.add_argument("--limit", type=float, default=20.0, help="PROVIDER_MAX_PER_SECOND (default 20)")
    parser.add_argument("--n", type=int, default=600, help="activities (default 600)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    result = run(args.k, args.limit, args.n)
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shared-rate.json").write_text(json.dumps(result, indent=2) + "\n")
    ok = (
        result["max_in_any_1s_window"] <= result["allowed_per_1s_window"]
        and result["utilisation"] >= 0.9
        and result["rejected_for_rate"] == 0
        and result["lost"] == 0
        and result["duplicates"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
