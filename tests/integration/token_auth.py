"""A token server for the registry tests: the Bearer flow of the distribution spec's token auth, as a
registry behind `docker login` to a hosted service speaks it. It answers `GET /token?service=…&scope=…`
with Basic credentials by a JWT (RS256, its certificate in `x5c`) granting the scopes asked; the real
docker-registry is configured to trust that certificate (`auth.token.rootcertbundle`) and checks every
token itself. The server is this test's own; the registry, and kodev's side of the flow, are real."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.integration.process import free_port

ISSUER, SERVICE = "kodev-test-issuer", "kodev-test-registry"


class TokenServer:
    def __init__(self, root: Path, user: str, password: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kodev test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = root / "token-cert.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self.issued = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                if self.headers.get("Authorization") != server.expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in (s for joined in scopes for s in joined.split(" ")):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "dev", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": secrets.token_hex(8), "access": access}
        der = self.cert.public_bytes(serialization.Encoding.DER)
        self.issued += 1
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [base64.b64encode(der).decode()]})

    def registry_auth(self) -> str:
        """The `auth:` section of the registry's config that trusts this server."""
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
                f"    rootcertbundle: {self.bundle}\n")

    def close(self) -> None:
        self.httpd.shutdown()
