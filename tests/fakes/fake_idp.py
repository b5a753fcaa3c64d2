"""A local OpenID Connect identity provider: it serves discovery and a JWKS over HTTP and mints
RS256 tokens with real keys, so the gateway's real verification path (PyJWT, key fetch,
rotation, outage) runs without Auth0/Keycloak or the network.

    with FakeIdp() as idp:                  # background thread, free port on 127.0.0.1
        idp.issuer, idp.jwks_url
        idp.token(org="acme", sub="ana", role="admin")       # a valid token
        idp.token(..., exp_in=-60) / audience="other" / key=idp.foreign_key()
        idp.rotate()                        # a new signing key (old one dropped from JWKS)
        idp.down = True                     # JWKS and discovery answer 503
        idp.jwks_requests                   # how often the key set was fetched
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "switchboard-test"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeIdp:
    def __init__(self) -> None:
        self.down = False
        self.jwks_requests = 0
        self._key = new_key()
        self.kid = uuid.uuid4().hex[:8]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.jwks_url = self.issuer + "/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeIdp:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> None:
        self._key = new_key()
        self.kid = uuid.uuid4().hex[:8]

    @staticmethod
    def foreign_key() -> rsa.RSAPrivateKey:
        return new_key()

    def token(self, *, org: str, sub: str, role: str | list[str] = "member",
              exp_in: float = 300, audience: str = AUDIENCE, issuer: str | None = None,
              key: rsa.RSAPrivateKey | None = None, kid: str | None = None,
              **claims: Any) -> str:
        now = time.time()
        payload = {"iss": issuer or self.issuer, "aud": audience, "sub": sub, "org_id": org,
                   "role": role, "iat": int(now), "exp": int(now + exp_in), **claims}
        return jwt.encode(payload, key or self._key, algorithm="RS256",
                          headers={"kid": kid or self.kid})

    def _jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if idp.down:
                    self._send(503, {"error": "down"})
                elif self.path == "/.well-known/openid-configuration":
                    self._send(200, {"issuer": idp.issuer, "jwks_uri": idp.jwks_url})
                elif self.path == "/jwks.json":
                    idp.jwks_requests += 1
                    self._send(200, idp._jwks())
                else:
                    self._send(404, {"error": "not found"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler
