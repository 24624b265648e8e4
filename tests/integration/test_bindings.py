"""The bindings the Functions host will see (function_app.app indexed once, as the worker does)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from devtools.host import indexed_functions


def functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in indexed_functions()}


def test_function_names() -> None:
    assert set(functions()) >= {"activity", "callbacks", "callback_retry", "rtj_outbound"}


def test_activity_trigger_binding() -> None:
    trigger = functions()["activity"].get_trigger()
    assert trigger.get_binding_name() == "serviceBusTrigger"
    assert trigger.queue_name == "%ACTIVITY_QUEUE_NAME%"
    assert trigger.connection == "ServiceBusConnection"
    assert trigger.name == "msgs"
    assert trigger.cardinality == func.Cardinality.MANY  # batches: In-queries and $batch
    assert not functions()["activity"].is_http_function()
    assert functions()["activity"].get_setting("retry_policy") is None  # Functions retry policies don't apply to SB


def test_callback_retry_trigger_binding() -> None:
    trigger = functions()["callback_retry"].get_trigger()
    assert trigger.queue_name == "%CALLBACK_QUEUE_NAME%"
    assert trigger.connection == "ServiceBusConnection"
    assert trigger.cardinality == func.Cardinality.MANY


def test_callbacks_route() -> None:
    function = functions()["callbacks"]
    trigger = function.get_trigger()
    assert function.is_http_function()
    assert trigger.route == "callbacks/{provider}"
    assert "POST" in {getattr(m, "value", str(m)).upper() for m in trigger.methods}
    assert trigger.auth_level == func.AuthLevel.ANONYMOUS  # providers authenticate their own requests


def test_callbacks_route_answers_get_for_the_whatsapp_handshake() -> None:
    trigger = functions()["callbacks"].get_trigger()
    assert {getattr(m, "value", str(m)).upper() for m in trigger.methods} == {"POST", "OPTIONS", "GET"}


def test_rtj_route() -> None:
    trigger = functions()["rtj_outbound"].get_trigger()
    assert trigger.route == "rtj/outbound"
    assert [getattr(m, "value", str(m)).upper() for m in trigger.methods] == ["POST"]
    assert trigger.auth_level == func.AuthLevel.ANONYMOUS  # X-Channel-Secret is checked in code


def test_function_json_is_valid_for_the_host() -> None:
    import json

    for function in indexed_functions():
        document = json.loads(function.get_function_json())
        assert document["bindings"], function.get_function_name()


def test_short_link_route() -> None:
    function = functions()["short_link"]
    trigger = function.get_trigger()
    assert function.is_http_function()
    assert trigger.route == "l/{code}"
    assert sorted(getattr(m, "value", str(m)).upper() for m in trigger.methods) == ["GET", "HEAD"]
    assert trigger.auth_level == func.AuthLevel.ANONYMOUS  # a contact's phone follows the link
