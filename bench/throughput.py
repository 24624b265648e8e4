"""Throughput benchmark: one-at-a-time vs optimised vs paced, in the same run, with figures.

    python -m bench.throughput                 # N = 1,000 contacts (see bench/README.md for every option)
    python -m bench.throughput --n 10000 --configs optimised

Each configuration runs in its own process (so peak memory is that configuration's own) against:
- the Dataverse emulator with injected per-request latency and a scaled-down service-protection limiter, and the
  loopback SMS gateway (auto-delivering signed delivery callbacks over HTTP), both in a separate process;
- Azurite for the state table (a separate Node process, like Table Storage is outside the app);
- the real function app, driven through the Functions worker's converters by devtools.host.LocalHost.

A journey of N contacts shares one message; every sent SMS is followed by one delivery callback.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.managers import BaseManager
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


@dataclass(frozen=True)
class Limits:
    latency_ms: float
    requests: int  # service-protection request limit per window (scaled down)
    window: float
    concurrent: int
    retry_after: float

    @property
    def ceiling_rps(self) -> float:
        return self.requests / self.window


# ---------------------------------------------------------------------------------------------------
# The emulators' process
# ---------------------------------------------------------------------------------------------------
def emulators_main(conn: Connection, n: int, limits: Limits) -> None:
    from devtools.emulators.loopback_provider import LoopbackGateway

    dataverse = journey_org(n)
    dataverse.latency = limits.latency_ms / 1000
    dataverse.limit(limits.requests, limits.window, limits.concurrent, limits.retry_after)
    gateway = LoopbackGateway(key=KEY).start()
    conn.send({"dataverse": dataverse.url, "gateway": gateway.url})
    while True:
        command = conn.recv()
        if command == "idle":
            gateway.wait_idle(timeout=600)
            conn.send(True)
        elif command == "stats":
            kinds: dict[str, int] = {}
            activities: dict[str, set[str]] = {}
            duplicates = 0
            for call in dataverse.interactions:
                kind = str(call["ResponseType"])
                kinds[kind] = kinds.get(kind, 0) + 1
                seen = activities.setdefault(kind, set())
                duplicates += call["ActivityId"] in seen
                seen.add(str(call["ActivityId"]))
            conn.send(
                {
                    "http_requests": dataverse.http_request_count,
                    "operations": dataverse.operation_count,
                    "throttled": dataverse.throttled_count,
                    "interactions": kinds,
                    "duplicate_interactions": duplicates,
                    "sms": len(gateway.messages),
                    "callbacks": len(gateway.callbacks_sent),
                }
            )
        elif command == "stop":
            gateway.stop()
            dataverse.stop()
            conn.send(True)
            return


# ---------------------------------------------------------------------------------------------------
# One configuration, in its own process
# ---------------------------------------------------------------------------------------------------
CONFIGS: dict[str, dict[str, Any]] = {
    # The naive implementation: one message per invocation, every interaction its own request, callbacks
    # reported inline, no client-side pacing (it finds the limits through 429s).
    "one-at-a-time": {"batch": 1, "workers": 8, "callbacks": "inline", "budget": False, "dv_batch": 1},
    # Batches of 100: one In query for the contacts, $batch for interactions, callbacks queued and reported
    # in batches, pacing below the ceiling.
    "optimised": {"batch": 100, "workers": 2, "callbacks": "queued", "budget": True, "dv_batch": 100},
    # The one-at-a-time workload (the most Dataverse requests per activity) with pacing on: how close to the
    # ceiling the pacer runs without a single 429.
    "paced": {"batch": 1, "workers": 8, "callbacks": "inline", "budget": True, "dv_batch": 1},
}


@dataclass
class RunResult:
    config: str
    n: int
    seconds: float
    activities_per_second: float
    http_requests: int
    operations: int
    requests_per_activity: float
    operations_per_activity: float
    throttled: int
    peak_rss_mb: float
    app_cpu_ms_per_activity: float
    sent: int
    delivered: int
    duplicate_interactions: int
    dataverse_rps: float
    ceiling_rps: float


class StoreManager(BaseManager):
    """Serves the state store from its own process: Table Storage is outside the app in Azure, so the app
    process's memory must not include it; Azurite is too slow (about 180 ops/s) to measure the app itself."""


_STORE: Any = None


def _store() -> Any:
    global _STORE  # noqa: PLW0603 - the manager process's one store
    if _STORE is None:
        from shared.adapters.memory import MemoryStore

        _STORE = MemoryStore()
    return _STORE


StoreManager.register("store", callable=_store)


def run_config(name: str, n: int, limits: Limits, store_kind: str = "memory") -> RunResult:
    import logging

    from devtools import azurite
    from devtools.host import LocalHost
    from devtools.messages import ActivitySpec, activity_message
    from shared import bootstrap
    from shared.settings import load_settings

    config = CONFIGS[name]
    logging.getLogger("channel").setLevel(logging.ERROR)
    parent, child = mp.Pipe()
    emulators = mp.get_context("fork").Process(target=emulators_main, args=(child, n, limits), daemon=True)
    emulators.start()
    urls = parent.recv()
    storage = azurite.start() if store_kind == "azurite" else None
    manager = None
    store = None
    if storage is None:
        manager = StoreManager()
        manager.start()
        store = manager.store()  # type: ignore[attr-defined]
    host = LocalHost()
    server, base_url = host.serve_http()
    budget = int(limits.requests * 0.95) if config["budget"] else 0
    storage_connection = storage.connection_string if storage else "UseDevelopmentStorage=true"
    env = {
        **app_env(urls["dataverse"], urls["gateway"], storage_connection, base_url, "benchstate"),
        "CALLBACK_PROCESSING": config["callbacks"],
        "DATAVERSE_BATCH_SIZE": str(config["dv_batch"]),
        "DATAVERSE_REQUEST_BUDGET": str(budget),
        "DATAVERSE_BUDGET_WINDOW_SECONDS": str(limits.window),
        "DATAVERSE_MAX_CONCURRENCY": str(limits.concurrent if config["budget"] else 52),
        "DATAVERSE_MAX_RETRIES": "10",
        "SEND_CONCURRENCY": "8",
    }
    host.environ.update(env)
    os.environ.update(env)
    bootstrap.install(bootstrap.build_service(load_settings(env), queue=host.queue, store=store))

    def chunks() -> Any:
        batch: list[tuple[bytes, str | None, dict[str, Any], str]] = []
        for i in range(n):
            body, props = activity_message(
                ActivitySpec(contact_id(i), JOURNEY_ID, ITERATION_ID, MESSAGE_TABLE, MESSAGE_ID)
            )
            batch.append((body, "application/json", props, uuid.uuid4().hex))
            if len(batch) == config["batch"]:
                yield batch
                batch = []
        if batch:
            yield batch

    stop_pumping = threading.Event()

    def pumper() -> None:  # the callback queue's batch trigger, running alongside
        while not stop_pumping.is_set():
            if host.pump(batch_size=100) == 0:
                time.sleep(0.05)

    pump_thread = threading.Thread(target=pumper, daemon=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    started = time.monotonic()
    pump_thread.start()
    in_flight = threading.BoundedSemaphore(config["workers"] * 2)  # messages are built as Service Bus hands them out

    def deliver(group: list[tuple[bytes, str | None, dict[str, Any], str]]) -> None:
        try:
            host.deliver_batch("activities", group)
        finally:
            in_flight.release()

    with ThreadPoolExecutor(max_workers=config["workers"]) as pool:
        for group in chunks():
            in_flight.acquire()
            pool.submit(deliver, group)
    parent.send("idle")
    parent.recv()
    while True:  # drain: scheduled retries and queued callbacks
        stats = _stats(parent)
        if stats["interactions"].get("delivered", 0) >= stats["sms"] or time.monotonic() - started > 1800:
            break
        host.pump(batch_size=100)
        time.sleep(0.1)
    seconds = time.monotonic() - started
    stop_pumping.set()
    pump_thread.join()
    stats = _stats(parent)
    parent.send("stop")
    parent.recv()
    server.shutdown()
    if storage is not None:
        storage.stop()
    if manager is not None:
        manager.shutdown()
    bootstrap.install(None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024
    cpu_ms = (usage.ru_utime + usage.ru_stime - cpu_before) * 1000 / n
    return RunResult(
        config=name,
        n=n,
        seconds=round(seconds, 2),
        activities_per_second=round(n / seconds, 1),
        http_requests=stats["http_requests"],
        operations=stats["operations"],
        requests_per_activity=round(stats["http_requests"] / n, 3),
        operations_per_activity=round(stats["operations"] / n, 3),
        throttled=stats["throttled"],
        peak_rss_mb=round(peak_mb, 1),
        app_cpu_ms_per_activity=round(cpu_ms, 2),
        sent=stats["interactions"].get("sent", 0),
        delivered=stats["interactions"].get("delivered", 0),
        duplicate_interactions=stats["duplicate_interactions"],
        dataverse_rps=round(stats["http_requests"] / seconds, 1),
        ceiling_rps=limits.ceiling_rps,
    )


def _stats(conn: Connection) -> dict[str, Any]:
    conn.send("stats")
    result: dict[str, Any] = conn.recv()
    return result


# ---------------------------------------------------------------------------------------------------
# The driver: every configuration in a fresh process, then the table, JSON and chart
# ---------------------------------------------------------------------------------------------------
def cold_import_seconds(repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import function_app"],
            cwd=ROOT,
            check=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        best = min(best, time.perf_counter() - started)
    interpreter = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter = min(interpreter, time.perf_counter() - started)
    return round(best - interpreter, 3)


def table(results: list[RunResult], cold: float) -> str:
    header = (
        "configuration",
        "N",
        "DV HTTP/act",
        "DV ops/act",
        "wall s",
        "act/s",
        "429s",
        "peak MB",
        "app CPU ms/act",
        "DV req/s",
        "sent",
        "delivered",
        "dup",
    )
    rows = [header] + [
        (
            r.config,
            str(r.n),
            f"{r.requests_per_activity:.3f}",
            f"{r.operations_per_activity:.3f}",
            f"{r.seconds:.1f}",
            f"{r.activities_per_second:.1f}",
            str(r.throttled),
            f"{r.peak_rss_mb:.0f}",
            f"{r.app_cpu_ms_per_activity:.1f}",
            f"{r.dataverse_rps:.1f}",
            str(r.sent),
            str(r.delivered),
            str(r.duplicate_interactions),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    by = {r.config: r for r in results}
    base, opt, paced = by.get("one-at-a-time"), by.get("optimised"), by.get("paced")
    lines.append("")
    if base and opt and base.n == opt.n:
        lines.append(
            f"throughput ratio optimised / one-at-a-time: {opt.activities_per_second / base.activities_per_second:.1f}x"
            f"   Dataverse requests per activity: {base.requests_per_activity:.2f} -> {opt.requests_per_activity:.3f}"
            f" ({base.requests_per_activity / max(opt.requests_per_activity, 1e-9):.0f}x fewer)"
        )
    if paced:
        lines.append(
            f"paced: {paced.dataverse_rps:.1f} Dataverse requests/s = "
            f"{100 * paced.dataverse_rps / paced.ceiling_rps:.0f}% of the {paced.ceiling_rps:.1f}/s ceiling, "
            f"{paced.throttled} 429s"
        )
    lines.append(f"cold import of function_app: {cold:.3f} s (best of 5, interpreter start-up subtracted)")
    return "\n".join(lines)


def chart(results: list[RunResult], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [f"{r.config}\nN={r.n}" for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].bar(names, [r.activities_per_second for r in results], color="#2b6cb0")
    axes[0].set_title("activities / s")
    axes[1].bar(names, [r.requests_per_activity for r in results], color="#c05621")
    axes[1].set_title("Dataverse HTTP requests / activity")
    axes[2].bar(names, [r.throttled for r in results], color="#9b2c2c")
    axes[2].set_title("429s received")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The Dataverse emulator's latency and service-protection limiter (every org's, in bench.multi_org)."""
    parser.add_argument("--latency-ms", type=float, default=20.0, help="injected Dataverse latency per request")
    parser.add_argument(
        "--limit-requests",
        type=int,
        default=400,
        help="service-protection requests per window (default 400 per 20 s = the real 20/s)",
    )
    parser.add_argument("--limit-window", type=float, default=20.0, help="limiter window, seconds")
    parser.add_argument("--limit-concurrent", type=int, default=8, help="concurrent-request limit (real: 52)")
    parser.add_argument("--retry-after", type=float, default=2.0, help="Retry-After of a 429, seconds")


def limits_of(args: argparse.Namespace) -> Limits:
    return Limits(args.latency_ms, args.limit_requests, args.limit_window, args.limit_concurrent, args.retry_after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="contacts in the journey (default 1,000; up to 100,000)")
    parser.add_argument(
        "--configs", default="one-at-a-time,optimised,paced", help="comma-separated subset of: " + ", ".join(CONFIGS)
    )
    add_limit_arguments(parser)
    parser.add_argument(
        "--store",
        choices=("memory", "azurite"),
        default="memory",
        help="state store: in-memory in its own process (default) or Azurite (~180 ops/s, slower)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where to write JSON and PNG")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 100_000:
        parser.error("--n must be between 1 and 100,000")
    limits = limits_of(args)
    if args.run:
        print(json.dumps(asdict(run_config(args.run, args.n, limits, args.store))))
        return 0
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(unknown)}")
    results = []
    for name in names:
        print(f"running {name} (N={args.n}) ...", file=sys.stderr, flush=True)
        command = [
            sys.executable,
            "-m",
            "bench.throughput",
            "--run",
            name,
            "--n",
            str(args.n),
            "--latency-ms",
            str(args.latency_ms),
            "--limit-requests",
            str(args.limit_requests),
            "--limit-window",
            str(args.limit_window),
            "--limit-concurrent",
            str(args.limit_concurrent),
            "--retry-after",
            str(args.retry_after),
            "--store",
            args.store,
        ]
        done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)  # noqa: S603
        results.append(RunResult(**json.loads(done.stdout.strip().splitlines()[-1])))
    cold = cold_import_seconds()
    report = table(results, cold)
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "limits": asdict(limits),
        "store": args.store,
        "cold_import_seconds": cold,
        "results": [asdict(r) for r in results],
    }
    (out / f"throughput-n{args.n}.json").write_text(json.dumps(document, indent=2) + "\n")
    if chart(results, out / f"throughput-n{args.n}.png"):
        print(f"\nwrote {out / f'throughput-n{args.n}.json'} and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
