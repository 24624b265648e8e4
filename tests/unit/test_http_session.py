"""The shared HTTP session reads the proxy environment once per host, not on every request."""

from __future__ import annotations

import pytest
import requests

from shared.adapters.http import KeepAliveSession


def test_environment_settings_are_resolved_once_per_host_and_stay_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = requests.Session.merge_environment_settings

    def counting(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        calls.append(str(url))
        return original(self, url, proxies, stream, verify, cert)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counting)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "bypass.example")
    session = KeepAliveSession()
    first = session.merge_environment_settings("https://org.example/api/a", {}, None, None, None)
    again = session.merge_environment_settings("https://org.example/api/b?x=1", {}, None, None, None)
    bypassed = session.merge_environment_settings("https://bypass.example/x", {}, None, None, None)
    assert len(calls) == 2
    assert first == again and first["proxies"]["https"] == "http://proxy.example:3128"
    assert "https" not in bypassed["proxies"]
    again["proxies"]["https"] = "changed"
    assert session.merge_environment_settings("https://org.example/c", {}, None, None, None) == first
