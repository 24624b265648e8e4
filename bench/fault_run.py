"""The fault-injection run: N activities through the real service with faults and worker crashes; prints the
figures and writes them to bench/results/fault.json.

    python bench/fault_run.py --n 10000 --seed 1            # in-memory engine (tests/fault/engine.py)
    python bench/fault_run.py --n 10000 --seed 1 --provider acs --out bench/results/fault-acs.json
    python bench/fault_run.py --n 10000 --seed 1 --wire-n 200  # plus the wire variant (emulators + Azurite)
    python bench/fault_run.py --n 10000 --seed 1 --provider whatsapp  # Meta's WhatsApp Cloud API provider
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fault.engine import Simulation, format_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="activities (default 10000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--callback-processing", choices=["queued", "inline"], default="queued")
    parser.add_argument(
        "--provider", choices=["twilio", "acs", "whatsapp"], default="twilio", help="the provider simulated"
    )
    parser.add_argument("--reconcile-after", type=float, default=600.0, help="RECONCILE_AFTER_SECONDS (default 600)")
    parser.add_argument("--arrival-rate", type=float, default=20.0, help="activities per simulated second (20)")
    parser.add_argument("--wire-n", type=int, default=0, help="also run the wire variant with this many activities")
    parser.add_argument("--out", help="results file (default bench/results/fault.json, fault-<provider>.json)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    result = Simulation(
        args.n,
        seed=args.seed,
        callback_processing=args.callback_processing,
        provider=args.provider,
        reconcile_after=args.reconcile_after,
        arrival_rate=args.arrival_rate,
    ).run()
    result["callback processing"] = args.callback_processing
    result["provider"] = args.provider
    result["wall seconds"] = round(time.monotonic() - started, 1)
    print(format_table(result))
    print(f"wall time: {result['wall seconds']} s")
    output: dict[str, object] = {"in_memory": result}
    if args.wire_n:
        from devtools import azurite
        from tests.fault.wire import run_wire

        server = azurite.start()
        try:
            started = time.monotonic()
            wire = run_wire(args.wire_n, args.seed, server.connection_string)
            wire["wall seconds"] = round(time.monotonic() - started, 1)
        finally:
            server.stop()
        print("\nwire variant (function app + Dataverse/Twilio emulators over HTTP + Azurite):")
        for key, value in wire.items():
            print(f"  {key}: {value}")
        output["wire"] = wire
    name = "fault.json" if args.provider == "twilio" else f"fault-{args.provider}.json"
    out = Path(args.out or ROOT / "bench" / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(output, indent=2, default=str) + "\n")
    print(f"written to {out}")
    failed = (
        result["duplicate sends"]
        or result["lost activities"]
        or result["lost callbacks"]
        or result["left ambiguous"]
        or result["log leaks"]
        or result["poison handling failures"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
