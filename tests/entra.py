"""A loopback Entra ID tenant for tests: RSA keys made here, served as OpenID metadata + JWKS over real HTTP.

Tokens are signed with PyJWT exactly as Entra ID signs them (RS256, ``kid`` header); hostile tokens (``alg: none``,
HS256 keyed with the public key) are assembled by hand, since PyJWT rightly refuses to make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0c6d1f6e-8a3b-4d2c-9e1f-2a3b4c5d6e7f"  # the relay plug-in's managed identity (app id)
AUDIENCE = "api://3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims(version: str = "2.0", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "aud": AUDIENCE,
        "tid": TENANT,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "sub": "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b",
        "ver": version,
    }
    if version == "1.0":
        body.update(iss=f"https://sts.windows.net/{TENANT}/", appid=CLIENT)
    else:
        body.update(iss=f"https://login.microsoftonline.com/{TENANT}/v2.0", azp=CLIENT)
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def token(key: SigningKey, version: str = "2.0", **overrides: Any) -> str:
    return jwt.encode(claims(version, **overrides), key.private, algorithm="RS256", headers={"kid": key.kid})


def unsigned_token(kid: str, **overrides: Any) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{b64url(json.dumps(claims(**overrides)).encode())}."


def hs256_with_public_key(key: SigningKey) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims()).encode())}"
    signature = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


class LoopbackTenant:
    """OpenID metadata at ``<url>/<tenant>/v2.0/.well-known/openid-configuration`` and the JWKS it points at."""

    def __init__(self, tenant: str = TENANT) -> None:
        self.tenant = tenant
        self.keys: list[SigningKey] = [SigningKey()]
        self.down = False
        self.requests: list[str] = []
        tenant_ref = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tenant_ref.requests.append(self.path)
                if tenant_ref.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path == f"/{tenant_ref.tenant}/v2.0/.well-known/openid-configuration":
                    document: dict[str, Any] = {
                        "issuer": f"https://login.microsoftonline.com/{tenant_ref.tenant}/v2.0",
                        "jwks_uri": f"{tenant_ref.url}/{tenant_ref.tenant}/discovery/v2.0/keys",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                elif self.path == f"/{tenant_ref.tenant}/discovery/v2.0/keys":
                    document = {"keys": [k.jwk() for k in tenant_ref.keys]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def key(self) -> SigningKey:
        return self.keys[0]

    def key_fetches(self) -> int:
        return sum(1 for path in self.requests if path.endswith("/keys"))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
