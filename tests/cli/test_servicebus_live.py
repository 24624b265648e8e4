"""The Service Bus parts against a real namespace. Skipped unless CHANNEL_TEST_SERVICEBUS_CONNECTION is set (a
connection string with Listen + Send, ideally Manage, on CHANNEL_TEST_SERVICEBUS_QUEUE, default ``activities``)."""

from __future__ import annotations

import io
import os
import time

import pytest

from cli import deadletter, doctor, send_sample
from cli.common import body_bytes, plain_properties
from devtools.messages import CLAIMS

CONNECTION = os.environ.get("CHANNEL_TEST_SERVICEBUS_CONNECTION", "")
QUEUE = os.environ.get("CHANNEL_TEST_SERVICEBUS_QUEUE", "activities")

pytestmark = pytest.mark.skipif(not CONNECTION, reason="set CHANNEL_TEST_SERVICEBUS_CONNECTION to run against Azure")


def environ() -> dict[str, str]:
    return {
        "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "ServiceBusConnection": CONNECTION,
        "ACTIVITY_QUEUE_NAME": QUEUE,
        "CALLBACK_QUEUE_NAME": QUEUE,
        "POISON_QUEUE_NAME": QUEUE,
        "CHANNEL_PROVIDER": "loopback",
        "LOOPBACK_PROVIDER_URL": "http://127.0.0.1:9",
        "LOOPBACK_SIGNING_KEY": "k",
        "CALLBACK_BASE_URL": "https://channel.example.com",
        "MESSAGE_BODY_COLUMN": "cr123_body",
    }


def test_send_sample_list_and_queue_check_against_a_real_namespace() -> None:
    from azure.servicebus import ServiceBusClient

    out = io.StringIO()
    args = ["--contact", "c0a80101-0000-4000-8000-000000000001", "--journey", "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a01"]
    args += ["--iteration", "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a02", "--message-table", "cr123_smsmessage"]
    args += ["--message-id", "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51", "--queue", QUEUE]
    assert send_sample.main(args, environ=environ(), out=out) == 0
    row = out.getvalue().split("row id: ")[1].strip()

    settings = doctor.check_settings(environ())[1]
    assert settings is not None
    results = doctor.check_queues(settings)
    assert all(r.status == "ok" for r in results), results

    code = deadletter.main(["list", "--source", QUEUE], environ=environ(), out=io.StringIO(), err=io.StringIO())
    assert code == 0

    found = None
    deadline = time.monotonic() + 60
    with ServiceBusClient.from_connection_string(CONNECTION) as client, client.get_queue_receiver(QUEUE) as receiver:
        while found is None and time.monotonic() < deadline:
            for message in receiver.receive_messages(max_message_count=20, max_wait_time=5):
                if row.encode() in body_bytes(message):
                    receiver.complete_message(message)
                    found = message
                else:
                    receiver.abandon_message(message)
    assert found is not None, "the sample never arrived"
    assert found.content_type == "application/json"
    assert plain_properties(found.application_properties)[CLAIMS + "RequestName"] == "Create"
