"""Sessions, the SOAP ``login()`` endpoint, the OAuth token endpoint (password, client credentials and
JWT bearer flows), and a transport adapter that sends requests for ``https://{login,test}.salesforce.com``
to the sandbox instead."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import HTTPAdapter

_NS = {"env": "http://schemas.xmlsoap.org/soap/envelope/", "p": "urn:partner.soap.sforce.com"}
INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass
class Credentials:
    username: str
    password: str
    security_token: str
    consumer_key: str = "sandbox-consumer-key"
    consumer_secret: str = "sandbox-consumer-secret"


class Sessions:
    """Valid session ids (access tokens). Login issues new ones; expiry invalidates all current ones."""

    def __init__(self, org_id: str) -> None:
        self._org_id = org_id
        self._valid: set[str] = set()
        self._lock = threading.Lock()
        self.issued = 0

    def new(self) -> str:
        token = f"{self._org_id[:15]}!AQ{secrets.token_urlsafe(40)}"
        with self._lock:
            self._valid.add(token)
            self.issued += 1
        return token

    def is_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._valid

    def expire_all(self) -> None:
        with self._lock:
            self._valid.clear()

    def revoke(self, token: str) -> None:
        with self._lock:
            self._valid.discard(token)


class JwtKeyPair:
    """The RSA key pair of the connected app's JWT bearer flow: Salesforce holds the certificate (the public
    key), the integration holds the private key and signs its assertions with it.

    Given no PEM, a fresh RSA-2048 key is made on first use (so a sandbox that never sees a JWT login does
    not pay for it)."""

    def __init__(self, private_key_pem: str | bytes | None = None) -> None:
        self._lock = threading.Lock()
        self._pem: str | None = None
        self._public: rsa.RSAPublicKey | None = None
        if private_key_pem is not None:
            pem = private_key_pem.decode() if isinstance(private_key_pem, bytes) else private_key_pem
            self._public = _load_rsa_private_key(pem).public_key()
            self._pem = pem

    def _ensure(self) -> tuple[str, rsa.RSAPublicKey]:
        with self._lock:
            if self._pem is None or self._public is None:
                self._pem = generate_rsa_private_key_pem()
                self._public = _load_rsa_private_key(self._pem).public_key()
            return self._pem, self._public

    @property
    def private_key_pem(self) -> str:
        """PKCS#8 PEM, unencrypted (what ``simple_salesforce.Salesforce(privatekey=...)`` takes)."""
        return self._ensure()[0]

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._ensure()[1]


def generate_rsa_private_key_pem(key_size: int = 2048) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _load_rsa_private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the JWT bearer flow needs an RSA private key (RS256)")
    return key


def check_jwt_assertion(
    assertion: str, creds: Credentials, public_key: rsa.RSAPublicKey
) -> dict[str, str] | None:
    """``None`` if the assertion is good, else the error body Salesforce answers (with HTTP 400)."""
    invalid = {"error": "invalid_grant", "error_description": "invalid assertion"}
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return invalid
    if claims.get("iss") != creds.consumer_key:
        return {"error": "invalid_client_id", "error_description": "client identifier invalid"}
    try:
        jwt.decode(
            assertion,
            public_key,
            algorithms=["RS256"],
            audience=list(JWT_AUDIENCES),
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        return {"error": "invalid_grant", "error_description": "expired access/refresh token"}
    except jwt.PyJWTError:
        return invalid
    if claims.get("sub") != creds.username:
        return {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"}
    return None


def soap_login_response(
    body: bytes,
    creds: Credentials,
    sessions: Sessions,
    base_url: str,
    version: str,
    org_id: str,
    user_id: str,
    rejection: tuple[str, str] | None = None,
) -> tuple[int, bytes]:
    if rejection is not None:  # the ``reject_token_requests`` fault: every login fails
        return 500, _soap_fault("INVALID_LOGIN", rejection[1])
    try:
        root = ET.fromstring(body)  # noqa: S314 - loopback test server parsing its own client's request
        login = root.find(".//p:login", _NS)
        username = login.findtext("p:username", default="", namespaces=_NS) if login is not None else ""
        password = login.findtext("p:password", default="", namespaces=_NS) if login is not None else ""
    except ET.ParseError:
        return 500, _soap_fault("INVALID_LOGIN", "Malformed SOAP request")
    ok = username == creds.username and password in (creds.password + creds.security_token,)
    if not ok:
        return 500, _soap_fault("INVALID_LOGIN", INVALID_LOGIN)
    sid = sessions.new()
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns="urn:partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>\
<metadataServerUrl>{base_url}/services/Soap/m/{version}/{org_id[:15]}</metadataServerUrl>\
<passwordExpired>false</passwordExpired><sandbox>true</sandbox>\
<serverUrl>{base_url}/services/Soap/u/{version}/{org_id[:15]}</serverUrl>\
<sessionId>{escape(sid)}</sessionId><userId>{user_id}</userId><userInfo>\
<organizationId>{org_id}</organizationId><userEmail>{escape(creds.username)}</userEmail>\
<userFullName>Sandbox Integration User</userFullName><userId>{user_id}</userId>\
<userName>{escape(creds.username)}</userName></userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"""
    return 200, xml.encode()


def _soap_fault(code: str, message: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\
<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>\
<faultstring>{code}: {escape(message)}</faultstring>\
<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>\
<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>\
</soapenv:Body></soapenv:Envelope>""".encode()


def oauth_token_response(
    body: bytes,
    headers: dict[str, str],
    creds: Credentials,
    sessions: Sessions,
    base_url: str,
    org_id: str,
    user_id: str,
    jwt_keys: JwtKeyPair | None = None,
    rejection: tuple[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    if rejection is not None:  # the ``reject_token_requests`` fault: every login fails
        return 400, {"error": rejection[0], "error_description": rejection[1]}
    form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    grant = form.get("grant_type")
    if grant == JWT_BEARER and jwt_keys is not None:
        # no client id or secret: the consumer key is the assertion's ``iss``
        error = check_jwt_assertion(form.get("assertion", ""), creds, jwt_keys.public_key)
        if error is not None:
            return 400, error
        return 200, {
            "access_token": sessions.new(),
            "scope": "api",
            "instance_url": base_url,
            "id": f"{base_url}/id/{org_id}/{user_id}",
            "token_type": "Bearer",
        }
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    auth = headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
    if (client_id, client_secret) != (creds.consumer_key, creds.consumer_secret):
        return 400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
    if grant == "password":
        if form.get("username") != creds.username or form.get("password") not in (
            creds.password,
            creds.password + creds.security_token,
        ):
            return 400, {"error": "invalid_grant", "error_description": "authentication failure"}
    elif grant != "client_credentials":
        return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
    sid = sessions.new()
    return 200, {
        "access_token": sid,
        "instance_url": base_url,
        "id": f"{base_url}/id/{org_id}/{user_id}",
        "token_type": "Bearer",
        "issued_at": str(int(time.time() * 1000)),
        "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


class LoopbackAdapter(HTTPAdapter):
    """Mounted on ``https://login.salesforce.com`` etc.: rewrites those URLs to the sandbox's base URL."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().send(request, *args, **kwargs)


def route_login_hosts(
    session: requests.Session, base_url: str, domains: tuple[str, ...] = ("login", "test")
) -> None:
    for domain in domains:
        session.mount(f"https://{domain}.salesforce.com/", LoopbackAdapter(base_url))


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload).encode()
