"""Multi-org throughput (issue #15): one app with ``MULTI_ORG=true`` serving two customer orgs, a mixed journey.

    python -m bench.multi_org                # N = 1,000 interleaved 50/50: unthrottled, A throttled, A paced
    python -m bench.multi_org --n 200 --split 0.3 --variants unthrottled

Each variant runs in its own process, against two Dataverse emulators (two org ids, different message tables, body
and phone columns, each with its own latency and service-protection limiter) and the Twilio emulator (one account,
a different sender per org, a signed ``delivered`` callback per message) in a separate process; the org registry
in an Azure Table (Azurite, read through ``org_table``, rows carrying each org's overrides); the state table in
its own process as in ``bench.throughput``. The function app runs through the worker's converters
(``devtools.host.LocalHost``) with the optimised configuration: batches of 100, 2 concurrent invocations for the
new activities and 2 pumping due messages (callbacks, retries, at their scheduled time), queued callbacks reported
in batches, pacing at 95 % of each org's ceiling. In the ``a-throttled`` variant org A's limiter allows only
``--throttle-requests`` per window (the app is not told: it finds out through 429s); in ``a-paced`` org A is
throttled the same way and its registry row says so (``DATAVERSE_REQUEST_BUDGET`` override at 95 % of that).

Reported per org: Dataverse HTTP requests and operations per activity, 429s, sent / delivered interactions,
duplicates, interactions that belong to the other org's activities (cross-org), SMS sent from another org's sender,
the org's own throughput (its activities over the time its last delivery was reported) and latencies (activity
handed to the app -> provider accepted the SMS / the ``sent`` interaction reached the org's Dataverse).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.journey import ITERATION_ID, JOURNEY_ID, ROOT, TOKEN
from bench.multi_org_report import org_figures, table
from bench.orgs import BY_KEY, DEFAULT_SENDER, ORGS, TWILIO_SID, TWILIO_TOKEN, Org, emulators_main
from bench.throughput import Limits, StoreManager, add_limit_arguments, limits_of

VARIANTS = ("unthrottled", "a-throttled", "a-paced")
BATCH, WORKERS = 100, 2  # the optimised configuration of bench.throughput


def journey(n: int, split: float) -> list[tuple[str, int]]:
    """N activities interleaved evenly: ``split`` of them for org A (each org's contacts numbered from 0)."""
    plan: list[tuple[str, int]] = []
    taken = {"A": 0, "B": 0}
    for i in range(n):
        key = "A" if int((i + 1) * split) > int(i * split) else "B"
        plan.append((key, taken[key]))
        taken[key] += 1
    return plan


def org_limits(base: Limits, variant: str, throttle_requests: int) -> dict[str, Limits]:
    throttled = Limits(base.latency_ms, throttle_requests, base.window, base.concurrent, base.retry_after)
    return {"A": base if variant == "unthrottled" else throttled, "B": base}


def overrides(org: Org, variant: str, throttle_requests: int) -> dict[str, str]:
    """The org's registry row: its columns and sender; in ``a-paced`` org A's own (low) request budget too."""
    row = org.overrides()
    if variant == "a-paced" and org.key == "A":
        row["DATAVERSE_REQUEST_BUDGET"] = str(max(1, int(throttle_requests * 0.95)))
    return row


def run_variant(
    variant: str,
    n: int,
    split: float,
    base: Limits,
    throttle_requests: int,
    max_retries: int = 4,
    retry_base: float = 2.0,
    max_seconds: float = 1800.0,
) -> dict[str, Any]:
    from devtools import azurite
    from devtools.host import LocalHost
    from devtools.messages import ActivitySpec, activity_message
    from shared import bootstrap
    from shared.adapters.org_table import org_table
    from shared.orgs.model import OrgRecord
    from shared.orgs.registry import OrgRegistry
    from shared.settings import load_settings

    logging.disable(logging.WARNING)  # the app logs every 429 and retry: the figures are the output
    plan = journey(n, split)
    counts = {o.key: sum(1 for key, _ in plan if key == o.key) for o in ORGS}
    limits = org_limits(base, variant, throttle_requests)
    parent, child = mp.Pipe()
    emulators = mp.get_context("fork").Process(target=emulators_main, args=(child, counts, limits), daemon=True)
    emulators.start()
    urls = parent.recv()
    registry_storage = azurite.start()  # the org registry: an Azure Table, as in Azure
    manager = StoreManager()
    manager.start()
    host = LocalHost()
    server, base_url = host.serve_http()
    env = {
        "MULTI_ORG": "true",
        "ORG_TABLE_NAME": "benchorgs",
        "DATAVERSE_STATIC_TOKEN": TOKEN,  # loopback emulators only
        "AzureWebJobsStorage": registry_storage.connection_string,
        "STATE_TABLE_NAME": "benchstate",
        "ServiceBusConnection": "Endpoint=sb://bench.invalid/;SharedAccessKeyName=b;SharedAccessKey=b",
        "ACTIVITY_QUEUE_NAME": "activities",
        "CALLBACK_QUEUE_NAME": "callbacks",
        "POISON_QUEUE_NAME": "activities-poison",
        "CHANNEL_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM": DEFAULT_SENDER,
        "TWILIO_API_BASE_URL": urls["twilio"],
        "CALLBACK_BASE_URL": base_url,
        "MESSAGE_BODY_COLUMN": "cr123_body",
        "CALLBACK_PROCESSING": "queued",
        "DATAVERSE_BATCH_SIZE": "100",
        "DATAVERSE_REQUEST_BUDGET": str(int(base.requests * 0.95)),  # each org's own pacer (issue #15)
        "DATAVERSE_BUDGET_WINDOW_SECONDS": str(base.window),
        "DATAVERSE_MAX_CONCURRENCY": str(base.concurrent),
        "DATAVERSE_MAX_RETRIES": str(max_retries),  # inline retries of a 429 / 5xx before the work is deferred
        "SEND_RETRY_BASE_SECONDS": str(retry_base),  # deferred work's backoff, scaled down like the limiter
        "SEND_CONCURRENCY": "8",
    }
    host.environ.update(env)
    os.environ.update(env)
    settings = load_settings(env)
    registry = OrgRegistry(org_table(settings), settings)
    for org in ORGS:
        url = urls["dataverse"][org.key] + "/api/data/v9.2"
        row = overrides(org, variant, throttle_requests)
        registry.add(OrgRecord(org.org_id, url, org.tenant_id, display_name=f"org {org.key}", overrides=row))
    store = manager.store()  # type: ignore[attr-defined]
    bootstrap.install(bootstrap.build_service(settings, queue=host.queue, store=store))

    handed: dict[str, float] = {}  # activity id -> when its batch was handed to the app

    def batches() -> Any:
        batch: list[tuple[bytes, str | None, dict[str, Any], str]] = []
        for key, i in plan:
            org = BY_KEY[key]
            spec = ActivitySpec(
                org.contact_id(i), JOURNEY_ID, ITERATION_ID, org.table, org.message_id,
                activity_id=org.activity_id(i), organization_id=org.org_id,
            )  # fmt: skip
            body, props = activity_message(spec)
            batch.append((body, "application/json", dict(props), uuid.uuid4().hex))
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    stop_pumping = threading.Event()

    def pumper() -> None:  # the callback queue's batch trigger (and due retries), alongside the activities
        while not stop_pumping.is_set():
            if host.pump(batch_size=BATCH, honour_schedule=True, limit=BATCH) == 0:
                time.sleep(0.05)

    pumps = [threading.Thread(target=pumper, daemon=True) for _ in range(WORKERS)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started_wall, started = time.time(), time.monotonic()
    for pump in pumps:
        pump.start()
    in_flight = threading.BoundedSemaphore(WORKERS * 2)
    index = 0

    def deliver(group: list[tuple[bytes, str | None, dict[str, Any], str]], ids: list[str]) -> None:
        try:
            now = time.time()
            for activity in ids:
                handed[activity] = now
            host.deliver_batch("activities", group)
        finally:
            in_flight.release()

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for group in batches():
            ids = [BY_KEY[key].activity_id(i) for key, i in plan[index : index + len(group)]]
            index += len(group)
            in_flight.acquire()
            pool.submit(deliver, group, ids)
    parent.send("idle")
    parent.recv()
    poisoned = 0
    finished = False
    progress = time.monotonic()
    while time.monotonic() - started < max_seconds:  # drain: scheduled retries and queued callbacks
        parent.send("stats")
        stats = parent.recv()
        sent, delivered = (sum(stats[k].get(kind, 0) for k in counts) for kind in ("sent", "delivered"))
        poisoned = len(host.queue.on("activities-poison")) + len(host.dead_letters)
        if stats["sms"] + poisoned >= n and min(sent, delivered) >= stats["sms"]:
            finished = True
            break
        if time.monotonic() - progress >= 15:
            progress = time.monotonic()
            state = {k: stats[k] for k in counts} | {"sms": stats["sms"], "poisoned": poisoned}
            print(f"  {variant} at {progress - started:.0f} s: {json.dumps(state)}", file=sys.stderr, flush=True)
        time.sleep(0.1)
    seconds = time.monotonic() - started
    stop_pumping.set()
    for pump in pumps:
        pump.join()
    parent.send("detail")
    detail = parent.recv()
    parent.send("stop")
    parent.recv()
    server.shutdown()
    registry_storage.stop()
    manager.shutdown()
    bootstrap.install(None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ms = (usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime) * 1000 / n
    return {
        "variant": variant,
        "n": n,
        "split_a": split,
        "dataverse_max_retries": max_retries,
        "send_retry_base_seconds": retry_base,
        "finished": finished,
        "seconds": round(seconds, 2),
        "activities_per_second": round(n / seconds, 1),
        "app_cpu_ms_per_activity": round(cpu_ms, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "poisoned": poisoned,
        "callback_statuses": detail["callback_statuses"],
        "limits": {k: asdict(v) for k, v in limits.items()},
        "orgs": {o.key: org_figures(o, plan, handed, detail, started_wall) for o in ORGS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.multi_org", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="activities in the mixed journey (default 1,000)")
    parser.add_argument("--split", type=float, default=0.5, help="share of the activities for org A (default 0.5)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS)
    )
    add_limit_arguments(parser)  # each org's emulator
    parser.add_argument(
        "--throttle-requests",
        type=int,
        default=10,
        help="org A's requests per window in the a-throttled and a-paced variants (default 10)",
    )
    parser.add_argument(
        "--dataverse-max-retries",
        type=int,
        default=4,
        choices=range(11),
        metavar="0..10",
        help="the app's DATAVERSE_MAX_RETRIES (default 4, the app's default; bench.throughput uses 10)",
    )
    parser.add_argument(
        "--retry-base",
        type=float,
        default=2.0,
        help="the app's SEND_RETRY_BASE_SECONDS (default 2: the app's 30 s scaled down 15x, like the 20 s window)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=1800.0, help="give a variant up after this long (reported unfinished)"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where to write the JSON")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    given = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(given)
    if not 2 <= args.n <= 100_000:
        parser.error("--n must be between 2 and 100,000")
    if not 0.0 < args.split < 1.0:
        parser.error("--split must be between 0 and 1 (exclusive): both orgs need activities")
    if args.throttle_requests < 1:
        parser.error("--throttle-requests must be at least 1 (0 would never let org A through)")
    base = limits_of(args)
    if args.run:
        result = run_variant(
            args.run,
            args.n,
            args.split,
            base,
            args.throttle_requests,
            args.dataverse_max_retries,
            args.retry_base,
            args.max_seconds,
        )
        print(json.dumps(result))
        return 0
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(unknown)}")
    results = []
    for name in names:
        print(f"running {name} (N={args.n}, split {args.split:g}) ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "bench.multi_org", *given, "--run", name]
        done = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)  # noqa: S603
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(table(results))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"multi-org-n{args.n}.json"
    command = " ".join(["python -m bench.multi_org", *given])
    path.write_text(json.dumps({"command": command, "results": results}, indent=2) + "\n")
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
