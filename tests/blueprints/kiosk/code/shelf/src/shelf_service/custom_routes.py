"""A stand-in token issuer (tests/test_run_system.py): the OAuth2 token endpoint of the
e-commerce contract, reduced to what `microforge run` needs. `client_credentials` (in the body
or over HTTP Basic) for the clients of SERVICE_CLIENTS, `password` for ADMIN_EMAIL/ADMIN_PASSWORD (scope `admin`); tokens
signed with an Ed25519 key kept in KEYS_DIR, published at /.well-known/jwks.json."""

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()
KID = "stand-in-1"


def _key() -> Ed25519PrivateKey:
    path = Path(os.environ.get("KEYS_DIR", ".keys")) / "signing.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.write_bytes(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _problem(status: int, detail: str) -> JSONResponse:
    body = {"type": "about:blank", "title": "Unauthorized", "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


@router.get("/.well-known/jwks.json")
async def jwks() -> dict[str, Any]:
    raw = _key().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": KID, "alg": "EdDSA"}]}


@router.post("/v1/tokens")
async def tokens(request: Request) -> JSONResponse:
    raw = await request.body()
    try:
        form: dict[str, Any] = json.loads(raw)
    except ValueError:
        form = dict(parse_qsl(raw.decode()))
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":  # RFC 6749 2.3.1: the client's id and secret over HTTP Basic
        client_id, _, secret = base64.b64decode(credentials).decode().partition(":")
        form.update(client_id=client_id, client_secret=secret)
    grant = form.get("grant_type")
    if grant == "client_credentials":
        clients = json.loads(os.environ.get("SERVICE_CLIENTS", "{}"))
        client = clients.get(form.get("client_id"))
        if client is None or client.get("secret") != form.get("client_secret"):
            return _problem(401, "unknown client or wrong secret")
        subject, scopes = str(form["client_id"]), list(client.get("scopes", []))
    elif grant == "password":
        admin = (os.environ.get("ADMIN_EMAIL"), os.environ.get("ADMIN_PASSWORD"))
        if (form.get("username"), form.get("password")) != admin or None in admin:
            return _problem(401, "wrong credentials")
        subject, scopes = str(uuid.uuid5(uuid.NAMESPACE_URL, str(admin[0]))), ["admin"]
    else:
        return _problem(400, f"unsupported grant_type {grant!r}")
    now = int(time.time())
    claims = {
        "iss": os.environ.get("AUTH_ISSUER", "http://stand-in"),
        "aud": os.environ.get("TOKEN_AUDIENCE", "shelf").split(","),
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + 900,
    }
    token = jwt.encode(claims, _key(), algorithm="EdDSA", headers={"kid": KID})
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": 900, "scope": claims["scope"]}
    )
