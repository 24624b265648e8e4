"""Twilio's own published test vectors (twilio-python tests; providers-and-peers.md §2.1)."""

from __future__ import annotations

import pytest

from shared.providers.twilio_signature import compute_signature, validate

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]


def test_vector_a() -> None:
    assert compute_signature(TOKEN, URL, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert validate(TOKEN, URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_docs_vectors_b_and_c() -> None:
    b = [(k, "+12349013030" if k in ("Caller", "From") else v) for k, v in PARAMS]
    c = [(k, "+14158675310" if k in ("Caller", "From") else v) for k, v in PARAMS]
    assert compute_signature(TOKEN, URL, b) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert compute_signature(TOKEN, URL, c) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_vector_d_json_body() -> None:
    body = b'{"property": "value", "boolean": true}'
    body_hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    url = f"{URL}&bodySHA256={body_hash}"
    assert validate(TOKEN, url, [], "a9nBmqA0ju/hNViExpshrM61xv4=", body=body)
    assert not validate(TOKEN, url, [], "a9nBmqA0ju/hNViExpshrM61xv4=", body=body + b" ")


def test_vector_e_duplicate_keys_sorted_by_key_then_value() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert compute_signature(TOKEN, URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ],
)
def test_vector_f_ports(url: str, signature: str) -> None:
    assert compute_signature(TOKEN, url, PARAMS) == signature
    assert validate(TOKEN, url, PARAMS, signature)


def test_port_variants_are_accepted_both_ways() -> None:
    # Twilio signed the URL with :443; we know it without the port (and vice versa).
    assert validate(TOKEN, URL, PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=")
    assert validate(TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


@pytest.mark.parametrize("signature", [None, "", "RSOYDt4T1cUTdK1PDd93/VVr8B8", "x" * 28])
def test_forged_or_missing_signatures_fail(signature: str | None) -> None:
    assert not validate(TOKEN, URL, PARAMS, signature)


def test_any_tampered_param_fails() -> None:
    tampered = [*PARAMS[:-1], ("To", "+18005551213")]
    assert not validate(TOKEN, URL, tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not validate("54321", URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
