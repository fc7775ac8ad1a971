# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client side of the Trustee 1.5.2 gateway admin API.

What the trustee_* modules share: KBS resource ids, base64url without padding, the admin JWT
(EdDSA, signed with the Ed25519 private key whose public half is the KBS ``admin.auth_public_key``),
and a small HTTP client for the gateway (``/api/...``) with TLS options, timeouts and retries on
connection errors. The private key never leaves the process: the JWT is minted here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.module_utils.urls import open_url

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

DEFAULT_REPOSITORY_DIR = "/opt/trustee/kbs/repository"
SEGMENT_PATTERN = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
_SEGMENT_RE = re.compile(r"^%s$" % SEGMENT_PATTERN)
_POLICY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
JWT_LIFETIME = 300
STATE_FILE_VERSION = 1


class TrusteeError(Exception):
    """A failure the module reports with fail_json; ``status`` and ``body`` when the API answered."""

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body


def trustee_argument_spec():
    """Connection options shared by the trustee_* modules (documented in each module)."""
    return dict(
        url=dict(type="str", aliases=["trustee_url"]),
        admin_key=dict(type="str", no_log=True),
        admin_key_path=dict(type="path", no_log=False),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        timeout=dict(type="int", default=30),
        retries=dict(type="int", default=3),
    )


# --------------------------------------------------------------------------------------------
# Resource ids
# --------------------------------------------------------------------------------------------

def parse_key_id(value, field="key_id"):
    """Split ``default/<group>/<name>`` or ``kbs:///default/<group>/<name>`` into three segments.

    Each segment must match ``[A-Za-z0-9_-][A-Za-z0-9_.-]*`` (the KBS resource path rule);
    a host in the URI (``kbs://host/...``) is refused because the module talks to one Trustee.
    """
    if not isinstance(value, str) or not value:
        raise TrusteeError("%s must be a non-empty string like default/<group>/<name>" % field)
    path = value
    if value.startswith("kbs://"):
        rest = value[len("kbs://"):]
        if not rest.startswith("/"):
            raise TrusteeError("%s %r: a kbs:// URI must have an empty host (kbs:///<repository>/<type>/<tag>)" % (field, value))
        path = rest[1:]
        if "?" in path or "#" in path:
            raise TrusteeError("%s %r: query strings and fragments are not allowed" % (field, value))
    elif "://" in value:
        raise TrusteeError("%s %r: only kbs:/// URIs or bare <repository>/<type>/<tag> paths are accepted" % (field, value))
    segments = path.split("/")
    if len(segments) != 3:
        raise TrusteeError("%s %r must have exactly three segments <repository>/<type>/<tag> (got %d), for example "
                           "default/aliyun/model-decryption-key" % (field, value, len(segments)))
    for segment in segments:
        if not _SEGMENT_RE.match(segment):
            raise TrusteeError("%s %r: segment %r is invalid; each segment must match %s" % (field, value, segment, SEGMENT_PATTERN))
    return tuple(segments)


def key_id_path(segments):
    return "/".join(segments)


def key_id_uri(segments):
    return "kbs:///" + key_id_path(segments)


def validate_policy_id(policy_id, field="id"):
    if not isinstance(policy_id, str) or not _POLICY_ID_RE.match(policy_id):
        raise TrusteeError("%s %r is not a valid attestation policy id (letters, digits, '.', '_', '-')" % (field, policy_id))
    return policy_id


# --------------------------------------------------------------------------------------------
# base64url without padding (what the 1.5.2 policy endpoints require)
# --------------------------------------------------------------------------------------------

def b64url_encode(data):
    return to_text(base64.urlsafe_b64encode(to_bytes(data)).rstrip(b"="))


def b64url_decode(text):
    """Decode base64url with or without padding (read-back tolerance); raises TrusteeError."""
    text = to_text(text).strip()
    if not re.match(r"^[A-Za-z0-9_-]*={0,2}$", text):
        raise TrusteeError("not base64url: %r" % text[:40])
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TrusteeError("not base64url: %s" % exc)


# --------------------------------------------------------------------------------------------
# Admin key and JWT
# --------------------------------------------------------------------------------------------

def load_admin_key(content=None, path=None):
    """Return an Ed25519 private key object from PEM content or a PEM file; clear errors otherwise."""
    if not HAS_CRYPTOGRAPHY:
        raise TrusteeError("the cryptography Python library is required to sign admin tokens")
    field = "admin_key"
    if content is None:
        if path is None:
            raise TrusteeError("one of admin_key or admin_key_path is required")
        field = "admin_key_path"
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except (IOError, OSError) as exc:
            raise TrusteeError("admin_key_path %s cannot be read: %s" % (path, to_native(exc)))
    data = to_bytes(content)
    if b"-----BEGIN" not in data:
        raise TrusteeError("%s is not a PEM private key (expected -----BEGIN PRIVATE KEY-----)" % field)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TrusteeError("%s is encrypted; give an unencrypted Ed25519 private key (decrypt it with ansible-vault instead)" % field)
    except (ValueError, binascii.Error) as exc:
        raise TrusteeError("%s could not be loaded as a PEM private key: %s" % (field, to_native(exc)))
    except Exception as exc:  # pylint: disable=broad-except
        # cryptography raises UnsupportedAlgorithm for some key types
        raise TrusteeError("%s could not be loaded as a PEM private key: %s" % (field, to_native(exc)))
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TrusteeError("%s must be an Ed25519 private key (the KBS admin key); got an %s key" % (field, _key_kind(key)))
    return key


def _key_kind(key):
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa  # pylint: disable=import-outside-toplevel
    for kind, cls in (("RSA", rsa.RSAPrivateKey), ("EC", ec.EllipticCurvePrivateKey), ("Ed448", ed448.Ed448PrivateKey), ("DSA", dsa.DSAPrivateKey)):
        if isinstance(key, cls):
            return kind
    return type(key).__name__


def public_key_pem(private_key):
    return to_text(private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def raw_private_bytes(private_key):
    return private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def mint_admin_jwt(private_key, lifetime=JWT_LIFETIME, now=None):
    """A compact JWT: header {alg: EdDSA, typ: JWT}, claims {iat, exp}, Ed25519 signature."""
    now = int(time.time() if now is None else now)
    header = b64url_encode(json.dumps({"alg": "EdDSA", "typ": "JWT"}, separators=(",", ":")))
    claims = b64url_encode(json.dumps({"iat": now, "exp": now + int(lifetime)}, separators=(",", ":")))
    signing_input = header + "." + claims
    signature = private_key.sign(to_bytes(signing_input))
    return signing_input + "." + b64url_encode(signature)


def decode_jwt_unverified(token):
    """Header and claims of a compact JWT, without checking the signature (tests, diagnostics)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TrusteeError("a JWT has three dot-separated parts")
    return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1])), b64url_decode(parts[2])


# --------------------------------------------------------------------------------------------
# Controller-side state for API-mode idempotence
# --------------------------------------------------------------------------------------------

def content_digest(private_key, url, segments, content):
    """HMAC-SHA256 of the resource bytes, keyed with a key derived from the admin private key.

    A plain hash of a short password could be brute-forced from the state file; this one cannot
    without the admin key, which the state file's reader would need anyway to change anything.
    """
    key = hashlib.sha256(b"confidential_ai.ack trustee_resource state v1\0" + raw_private_bytes(private_key)).digest()
    message = to_bytes(normalize_url(url)) + b"\0" + to_bytes(key_id_path(segments)) + b"\0" + to_bytes(content)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def read_state(path):
    if not path or not os.path.exists(path):
        return {"version": STATE_FILE_VERSION, "resources": {}}
    try:
        with open(path, "r") as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise TrusteeError("state_file %s is not a readable JSON state file: %s" % (path, to_native(exc)))
    if not isinstance(data, dict) or not isinstance(data.get("resources"), dict):
        raise TrusteeError("state_file %s does not look like a trustee_resource state file" % path)
    return data


def state_key(url, segments):
    return normalize_url(url) + "|" + key_id_path(segments)


def write_state(path, data):
    """Write the state file atomically with mode 0600."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------

def normalize_url(url):
    """``https://host:8081``, ``https://host:8081/`` and ``https://host:8081/api`` all name the gateway."""
    url = to_text(url).strip().rstrip("/")
    if url.endswith("/api"):
        url = url[:-4]
    return url


class TrusteeClient:
    """Calls ``<url>/api/...`` on the gateway; signs admin calls; retries connection errors only."""

    def __init__(self, url, admin_key=None, validate_certs=True, ca_path=None, timeout=30, retries=3, retry_delay=1.0):
        if not re.match(r"^https?://[^/]+", to_text(url or "")):
            raise TrusteeError("url %r must start with http:// or https:// and name the gateway, e.g. https://trustee.example:8081" % url)
        self.base = normalize_url(url)
        self.admin_key = admin_key
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.retry_delay = retry_delay

    def _auth_headers(self, admin):
        if not admin:
            return {}
        if self.admin_key is None:
            raise TrusteeError("this operation needs the admin key: set admin_key or admin_key_path")
        return {"Authorization": "Bearer " + mint_admin_jwt(self.admin_key)}

    def request(self, method, path, body=None, admin=False, content_type="application/json", expected=(200,)):
        """Return (status, body bytes); raise TrusteeError for unexpected statuses or no connection."""
        url = self.base + "/api" + path
        attempt = 0
        while True:
            headers = self._auth_headers(admin)  # a fresh token per attempt
            if body is not None:
                headers["Content-Type"] = content_type
            try:
                response = open_url(url, method=method, data=body, headers=headers, validate_certs=self.validate_certs,
                                    ca_path=self.ca_path, timeout=self.timeout, follow_redirects="none", use_proxy=True)
                status, payload = response.getcode(), response.read()
            except HTTPError as exc:
                status = exc.code
                try:
                    payload = exc.read()
                except Exception:  # pylint: disable=broad-except
                    payload = b""
            except (URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt < self.retries and not _is_tls_error(reason):
                    attempt += 1
                    time.sleep(self.retry_delay * attempt)
                    continue
                raise TrusteeError("cannot reach the Trustee gateway at %s (%s %s): %s" % (self.base, method, "/api" + path, to_native(reason)))
            if status in expected:
                return status, payload
            raise TrusteeError(describe_http_error(method, "/api" + path, status, payload), status=status, body=to_text(payload, errors="replace"))

    def get_json(self, path, admin=False):
        _status, payload = self.request("GET", path, admin=admin)
        try:
            return json.loads(to_text(payload))
        except ValueError:
            raise TrusteeError("GET /api%s did not return JSON: %r" % (path, to_text(payload, errors="replace")[:200]))

    # --- resources -----------------------------------------------------------------------
    def list_resources(self):
        """[(repository, type, tag)]; a JSON null (no match) is an empty list."""
        data = self.get_json("/kbs/v0/resources")
        result = []
        for item in data or []:
            result.append((item.get("repository_name"), item.get("resource_type"), item.get("resource_tag")))
        return result

    def set_resource(self, segments, content):
        self.request("POST", "/kbs/v0/resource/" + key_id_path(segments), body=to_bytes(content), admin=True,
                     content_type="application/octet-stream")

    def delete_resource(self, segments):
        self.request("DELETE", "/kbs/v0/resource/" + key_id_path(segments), admin=True)

    # --- policies ------------------------------------------------------------------------
    def get_resource_policy(self):
        _status, payload = self.request("GET", "/kbs/v0/resource-policy", admin=True)
        return to_text(_policy_from_body(payload), errors="surrogate_or_strict")

    def set_resource_policy(self, text):
        self.request("POST", "/kbs/v0/resource-policy", body=to_bytes(json.dumps({"policy": b64url_encode(text)})), admin=True)

    def get_attestation_policy(self, policy_id):
        """Policy text, or None when the attestation service does not know the id."""
        try:
            _status, payload = self.request("GET", "/kbs/v0/attestation-policy/" + validate_policy_id(policy_id), admin=True)
        except TrusteeError as exc:
            if exc.status in (404, 500) and _looks_missing(exc.body):
                return None
            raise
        return to_text(_policy_from_body(payload), errors="surrogate_or_strict")

    def set_attestation_policy(self, policy_id, text):
        body = {"policy_id": validate_policy_id(policy_id), "type": "rego", "policy": b64url_encode(text)}
        # 1.5.2 does not check a token here; the gateway documentation says to send one.
        self.request("POST", "/kbs/v0/attestation-policy", body=to_bytes(json.dumps(body)), admin=True)

    def delete_attestation_policy(self, policy_id):
        self.request("DELETE", "/kbs/v0/attestation-policy/" + validate_policy_id(policy_id), admin=True)

    def list_attestation_policies(self):
        return self.get_json("/kbs/v0/attestation-policies") or {}

    # --- health and audit ----------------------------------------------------------------
    def services_health(self):
        return self.get_json("/services-health")

    def audit(self, kind, limit, **filters):
        query = "&".join("%s=%s" % (k, v) for k, v in sorted(filters.items()) if v is not None)
        path = "/audit/%s?limit=%d%s" % (kind, int(limit), ("&" + query) if query else "")
        return self.get_json(path)


def _is_tls_error(reason):
    text = to_native(reason)
    return "CERTIFICATE_VERIFY_FAILED" in text or ("SSL" in text and "WRONG_VERSION" not in text)


def _looks_missing(body):
    text = to_text(body or "").lower()
    return "not found" in text or "no such file" in text or "not exist" in text


def _policy_from_body(payload):
    """Policy read-back: the body is base64url text, or JSON (a string or {"policy": ...})."""
    text = to_text(payload).strip()
    if text.startswith("{") or text.startswith('"'):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "policy" in data:
            text = data["policy"]
        elif isinstance(data, str):
            text = data
    return b64url_decode(text)


def describe_http_error(method, path, status, payload):
    text = to_text(payload or b"", errors="replace").strip()
    detail = text
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            detail = data.get("detail") or data.get("error") or text
            if data.get("type"):
                detail = "%s (%s)" % (detail, data["type"].rsplit("/", 1)[-1])
    except ValueError:
        pass
    hint = ""
    if status == 401:
        hint = " - the admin token was refused: is admin_key the private half of the KBS admin.auth_public_key, and was kbs restarted after public.pub changed?"
    return "%s %s returned HTTP %s: %s%s" % (method, path, status, detail[:500], hint)
