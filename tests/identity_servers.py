"""Loopback stand-ins for the two identity endpoints the federated credential talks to, served over real HTTP.

- :class:`ManagedIdentityEndpoint`: the App Service / Azure Functions managed identity endpoint (``IDENTITY_ENDPOINT``
  + ``IDENTITY_HEADER``, plain http on localhost as on the platform), as azure-identity's
  ``ManagedIdentityCredential`` calls it: ``GET ?api-version=2019-08-01&resource=…&client_id=…`` with the
  ``X-IDENTITY-HEADER`` header; answers ``{"access_token", "expires_on", "resource", "token_type", "client_id"}``.
- :class:`EntraTokenEndpoint`: Entra ID's ``POST /<tenant>/oauth2/v2.0/token`` over **https** with a certificate from a
  test CA made here (``ca_path`` is what a client verifies against), for the client-credentials grant with a JWT
  client assertion.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost: returns (ca.pem, server.pem, server-key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "channel test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digital_signature, key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem(key))
    return paths


class _Endpoint:
    def __init__(self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.endpoint = self  # type: ignore[attr-defined]
        if context is not None:
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ManagedIdentityEndpoint(_Endpoint):
    """Hands out ``mi-assertion-<n>`` tokens valid ``lifetime`` seconds; ``header`` is the IDENTITY_HEADER value."""

    def __init__(self, header: str = "identity-header-value", lifetime: int = 86400) -> None:
        self.header = header
        self.lifetime = lifetime
        super().__init__(_MiHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/msi/token"


class _MiHandler(_Handler):
    def do_GET(self) -> None:
        endpoint: ManagedIdentityEndpoint = self.server.endpoint  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        with endpoint.lock:
            endpoint.requests.append(
                {"path": split.path, "query": query, "header": self.headers.get("X-IDENTITY-HEADER")}
            )
            count = len(endpoint.requests)
        if self.headers.get("X-IDENTITY-HEADER") != endpoint.header:
            self.reply(400, {"statusCode": 400, "message": "missing or wrong X-IDENTITY-HEADER"})
            return
        self.reply(
            200,
            {
                "access_token": f"mi-assertion-{count}",
                "expires_on": str(int(time.time()) + endpoint.lifetime),
                "resource": query.get("resource", ""),
                "token_type": "Bearer",
                "client_id": query.get("client_id", ""),
            },
        )


class EntraTokenEndpoint(_Endpoint):
    """Entra's token endpoint over https (test CA). Answers ``dv-<tenant>-<n>`` tokens valid ``lifetime`` seconds."""

    def __init__(self, directory: Path, lifetime: int = 3600) -> None:
        self.ca_path, cert, key = make_test_ca(directory)
        self.lifetime = lifetime
        self.refuse: dict[str, tuple[str, str]] = {}  # tenant -> (OAuth error, AADSTS description)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        super().__init__(_EntraHandler, context)

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"


class _EntraHandler(_Handler):
    def do_POST(self) -> None:
        endpoint: EntraTokenEndpoint = self.server.endpoint  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        parts = self.path.split("/")
        tenant = parts[1] if len(parts) > 1 else ""
        with endpoint.lock:
            endpoint.requests.append({"path": self.path, "tenant": tenant, "form": form})
            count = len(endpoint.requests)
        if self.path != f"/{tenant}/oauth2/v2.0/token" or form.get("grant_type") != "client_credentials":
            self.reply(400, {"error": "invalid_request", "error_description": f"unexpected {self.path}"})
            return
        if tenant in endpoint.refuse:
            error, description = endpoint.refuse[tenant]
            self.reply(400, {"error": error, "error_description": description, "error_codes": [int(description[6:12])]})
            return
        if not form.get("client_assertion", "").startswith("mi-assertion-"):
            self.reply(
                401,
                {"error": "invalid_client", "error_description": "AADSTS700211: no matching federated identity record"},
            )
            return
        self.reply(
            200, {"token_type": "Bearer", "expires_in": endpoint.lifetime, "access_token": f"dv-{tenant}-{count}"}
        )
