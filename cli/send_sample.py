"""``channel send-sample``: post one real-format activity message to the activity queue, exactly as Dataverse would.

The body is the JSON ``RemoteExecutionContext`` of a Custom Channel Activity *Create* (devtools/messages.py), content
type ``application/json``, with the ``http://schemas.microsoft.com/xrm/2011/Claims/*`` application properties
Dataverse adds. For staging tests without a journey: the app processes it like any other activity (reads the message
row and the contact, sends, reports interactions for the activity row id printed here).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Mapping
from typing import Any, TextIO

from cli.common import SdkServiceBus, ServiceBusFactory, read_environ
from devtools.messages import ActivitySpec, activity_message
from shared.settings import ConfigurationError, load_settings


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a GUID") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="channel send-sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contact", required=True, type=_guid, help="contactid of the recipient")
    parser.add_argument("--journey", required=True, type=_guid, help="msdyncrm_customerjourneyid")
    parser.add_argument("--iteration", required=True, type=_guid, help="msdyncrm_customerjourneyiterationid")
    parser.add_argument("--message-table", required=True, help="logical name of the channel's message table")
    parser.add_argument("--message-id", required=True, type=_guid, help="id of the message row in that table")
    parser.add_argument("--row-id", type=_guid, help="activity row id to use (default: a new GUID)")
    parser.add_argument("--activity-id", help="msdyncrm_activityid to use (default: a new GUID)")
    parser.add_argument("--queue", help="queue to post to (default: ACTIVITY_QUEUE_NAME)")
    parser.add_argument(
        "--org",
        type=_guid,
        help="OrganizationId the message names (MULTI_ORG=true: a registered org's id; required there)",
    )
    parser.add_argument(
        "--settings", metavar="FILE", help="read settings from a local.settings.json (environment wins)"
    )
    return parser


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    servicebus: ServiceBusFactory | None = None,
    out: TextIO | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        settings = load_settings(dict(environ if environ is not None else read_environ(args.settings)))
    except ConfigurationError as exc:
        print(f"channel send-sample: {exc} (run `channel doctor` for the fixes)", file=sys.stderr)
        return 2
    if settings.multi_org and not args.org:
        print("channel send-sample: MULTI_ORG=true: name the org with --org <organization id>", file=sys.stderr)
        return 2
    spec = ActivitySpec(
        contact_id=args.contact,
        journey_id=args.journey,
        iteration_id=args.iteration,
        entity_type=args.message_table,
        entity_id=args.message_id,
        row_id=args.row_id or str(uuid.uuid4()),
        activity_id=args.activity_id or str(uuid.uuid4()),
        organization_url=settings.dataverse_url,
        **({"organization_id": args.org} if args.org else {}),
    )
    body, claims = activity_message(spec)
    properties: dict[str | bytes, Any] = {k: v for k, v in claims.items()}
    queue = args.queue or settings.activity_queue_name
    message_id = uuid.uuid4().hex

    from azure.servicebus import ServiceBusMessage

    factory = servicebus or SdkServiceBus(settings)
    client = factory.client()
    try:
        with client.get_queue_sender(queue_name=queue) as sender:
            sender.send_messages(
                ServiceBusMessage(
                    body, content_type="application/json", application_properties=properties, message_id=message_id
                )
            )
    except Exception as exc:  # noqa: BLE001 - report any SDK failure in one line
        print(f"channel send-sample: could not send to {queue}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    out.write(
        f"sent activity row {spec.row_id} (msdyncrm_activityid {spec.activity_id}) to {queue}, message id "
        f"{message_id}\n"
    )
    out.write(f"row id: {spec.row_id}\n")
    return 0
