"""``channel``: one command line for local runs and operations. ``channel <command> --help`` for details."""

from __future__ import annotations

import sys

COMMANDS = {
    "simulate": ("cli.simulate", "run a whole journey locally through the real handlers (embedded defaults)"),
    "doctor": ("cli.doctor", "check settings, Dataverse, state table, queues and provider; print each fix"),
    "send-sample": ("cli.send_sample", "post one real-format activity message to the activity queue"),
    "deadletter": ("cli.deadletter", "list / show / replay dead-lettered and poison messages"),
    "report": ("cli.report", "render a run's JSON-lines logs as an HTML report with charts, and a text summary"),
    "ambiguous": ("cli.ambiguous", "list the sends still being reconciled with the provider, and why"),
    "provision": ("cli.provision", "create or update the Dataverse side: table, tile, service endpoint, step"),
    "org": ("cli.org", "register the customer orgs a multi-org deployment serves: add / list / show / update / ..."),
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: channel <command> [options]\n\ncommands:")
        for name, (_, summary) in COMMANDS.items():
            print(f"  {name:<12}{summary}")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"channel: unknown command '{name}' (try: channel --help)", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(COMMANDS[name][0])
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
