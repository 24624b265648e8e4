"""``python -m devtools.emulators.dataverse``: serve an emulated org until interrupted."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from devtools.emulators._base import serve_forever
from devtools.emulators.dataverse import SIGNATURES, DataverseEmulator, seed_demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a loopback Dataverse Web API emulator.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default="dev-token", help="bearer token the emulator accepts")
    parser.add_argument("--seed", choices=["demo", "none"], default="none")
    parser.add_argument("--signature", choices=sorted(SIGNATURES), default="customerjourney")
    args = parser.parse_args(argv)
    emulator = DataverseEmulator(token=args.token, signature=args.signature, host=args.host, port=args.port)
    ids = seed_demo(emulator) if args.seed == "demo" else {}
    return serve_forever(emulator, [json.dumps({"seed": ids})] if ids else [])


if __name__ == "__main__":
    raise SystemExit(main())
