"""TEST DOUBLE: a stand-in for the parts of Trustee 1.5.2 that the collection touches.

This is NOT Trustee. It is a small Python program that the test RPM ``trustee`` (built by
``sandbox/trustee/build-repo.sh``) installs in place of the real Rust/Go binaries, so that the
``trustee`` role and the ``trustee_*`` modules can be tested on machines where the real package
cannot be installed. ``docs/trustee-stand-in.md`` lists what it mirrors and what it does not.

One file serves every component. The component is chosen by the name the program was started
under (``/usr/bin/kbs`` and the other binaries are symlinks to it) or by the first argument:

    trustee-standin kbs --config-file /etc/trustee/kbs-config.toml
    trustee-standin grpc-as --socket 0.0.0.0:50004 --config-file /etc/trustee/as-config.json
    trustee-standin restful-as --socket 0.0.0.0:50005 --config-file /etc/trustee/as-config.json
    trustee-standin rvps --config /etc/trustee/rvps.json --address 127.0.0.1:50003
    trustee-standin trustee-gateway --config /etc/trustee/gateway.yml
    trustee-standin rvps-tool query|register --path F|delete --name N [--address URL]
    trustee-standin genkey PRIVATE_PEM PUBLIC_PEM

Everything speaks HTTP/JSON, also where the real component speaks gRPC (grpc-as, rvps).
Only the Python standard library is required; ``cryptography`` is used when importable
(Ed25519, key checks), with a pure-Python Ed25519 fallback otherwise.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import http.client
import http.server
import json
import logging
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request

try:
    from cryptography.exceptions import InvalidSignature as _InvalidSignature
    from cryptography.hazmat.primitives import hashes as _hashes
    from cryptography.hazmat.primitives import serialization as _serialization
    from cryptography.hazmat.primitives.asymmetric import ec as _ec
    from cryptography.hazmat.primitives.asymmetric import ed25519 as _ed25519
    from cryptography.hazmat.primitives.asymmetric import padding as _padding
    from cryptography.hazmat.primitives.asymmetric import rsa as _rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature as _encode_dss_signature
    from cryptography import x509 as _x509
    HAS_CRYPTOGRAPHY = True
except ImportError:  # the stand-in works without it
    HAS_CRYPTOGRAPHY = False

STANDIN_VERSION = "1.5.2"  # replaced by the spec's %install with the package version
KBS_PROTOCOL_VERSION = "0.1.0"
ERROR_TYPE_PREFIX = "https://github.com/confidential-containers/kbs/errors/"
SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
POLICY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
JWT_CLOCK_TOLERANCE = 15 * 60  # jwt_simple's default time tolerance (admin tokens)
ATTESTATION_TOKEN_LEEWAY = 60  # jsonwebtoken's default leeway (attestation tokens)
DEFAULT_KBS_POLICY = "package policy\n\ndefault allow = true\n"
DEFAULT_AS_POLICY = (
    "package policy\n\n"
    "# Trustee stand-in default attestation policy (the stand-in does not evaluate rego).\n"
    "default allow = true\n"
)
KNOWN_TEES = ("tdx", "sgx", "snp", "sample", "csv", "cca", "se", "az-snp-vtpm", "az-tdx-vtpm", "hygon-dcu")
RVPS_EXPIRY_SECONDS = 365 * 24 * 3600

LOG = logging.getLogger("trustee-standin")


class StandinError(Exception):
    """A configuration or start-up error: the process exits non-zero with this message."""


# ---------------------------------------------------------------------------------------------
# base64url and Ed25519 (pure-Python fallback, RFC 8032 arithmetic)
# ---------------------------------------------------------------------------------------------

def b64url_nopad_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_nopad_decode_strict(text):
    """Decode like Rust's URL_SAFE_NO_PAD: no '=' padding, no '+' or '/'."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_P = 2 ** 255 - 19
_L = 2 ** 252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _ed_recover_x(y, sign):
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = _ed_recover_x(_BY, 0)
_BASE = (_BX, _BY, 1, _BX * _BY % _P)
_IDENTITY = (0, 1, 1, 0)


def _ed_add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _ed_mul(scalar, point):
    result = _IDENTITY
    while scalar > 0:
        if scalar & 1:
            result = _ed_add(result, point)
        point = _ed_add(point, point)
        scalar >>= 1
    return result


def _ed_equal(p1, p2):
    x1, y1, z1, _t1 = p1
    x2, y2, z2, _t2 = p2
    return (x1 * z2 - x2 * z1) % _P == 0 and (y1 * z2 - y2 * z1) % _P == 0


def _ed_compress(point):
    x, y, z, _t = point
    zinv = pow(z, _P - 2, _P)
    x = x * zinv % _P
    y = y * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _ed_decompress(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _ed_recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


def _ed_expand_seed(seed):
    digest = hashlib.sha512(seed).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8
    scalar |= 1 << 254
    return scalar, digest[32:]


def ed25519_public_from_seed(seed):
    scalar, _prefix = _ed_expand_seed(seed)
    return _ed_compress(_ed_mul(scalar, _BASE))


def ed25519_sign_pure(seed, message):
    scalar, prefix = _ed_expand_seed(seed)
    public = _ed_compress(_ed_mul(scalar, _BASE))
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % _L
    r_enc = _ed_compress(_ed_mul(r, _BASE))
    h = int.from_bytes(hashlib.sha512(r_enc + public + message).digest(), "little") % _L
    s = (r + h * scalar) % _L
    return r_enc + int.to_bytes(s, 32, "little")


def ed25519_verify_pure(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    a_point = _ed_decompress(public)
    r_point = _ed_decompress(signature[:32])
    if a_point is None or r_point is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _L
    return _ed_equal(_ed_mul(s, _BASE), _ed_add(r_point, _ed_mul(h, a_point)))


def ed25519_verify(public, message, signature):
    if HAS_CRYPTOGRAPHY:
        try:
            _ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
            return True
        except Exception:  # pylint: disable=broad-except
            return False
    return ed25519_verify_pure(public, message, signature)


# DER prefixes of the fixed-size Ed25519 SubjectPublicKeyInfo and PKCS#8 structures (RFC 8410).
_SPKI_ED25519_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_RSA_OID_DER = bytes.fromhex("06092a864886f70d010101")


def _pem_blocks(text):
    """Return [(label, der_bytes)] for every PEM block in text."""
    blocks = []
    for match in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", text, re.S):
        body = "".join(match.group(2).split())
        try:
            blocks.append((match.group(1), base64.b64decode(body, validate=True)))
        except (binascii.Error, ValueError):
            continue
    return blocks


def load_ed25519_public_pem(path):
    """Read an Ed25519 public key (SPKI PEM) and return the 32 raw bytes."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise StandinError("cannot read admin public key %s: %s" % (path, exc)) from exc
    for label, der in _pem_blocks(text):
        if label == "PUBLIC KEY" and len(der) == 44 and der.startswith(_SPKI_ED25519_PREFIX):
            return der[12:]
    raise StandinError("admin public key %s is not an Ed25519 public key in PEM (SubjectPublicKeyInfo)" % path)


def write_ed25519_keypair(private_path, public_path):
    """Generate a keypair like the RPM %post: PKCS#8 private PEM (0600) and SPKI public PEM (0644)."""
    seed = secrets.token_bytes(32)
    public = ed25519_public_from_seed(seed)
    priv_pem = "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" % base64.b64encode(_PKCS8_ED25519_PREFIX + seed).decode()
    pub_pem = "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n" % base64.b64encode(_SPKI_ED25519_PREFIX + public).decode()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(priv_pem)
    os.chmod(private_path, 0o600)
    with open(public_path, "w", encoding="ascii") as handle:
        handle.write(pub_pem)
    os.chmod(public_path, 0o644)


def check_rsa_signer(key_path, cert_path):
    """The 1.5.2 Simple token broker loads the signer key as RSA; refuse anything else like it does."""
    try:
        with open(key_path, "rb") as handle:
            key_pem = handle.read()
    except OSError as exc:
        raise StandinError("cannot read attestation_token_broker.signer.key_path %s: %s" % (key_path, exc)) from exc
    cert_pem = None
    if cert_path:
        try:
            with open(cert_path, "rb") as handle:
                cert_pem = handle.read()
        except OSError as exc:
            raise StandinError("cannot read attestation_token_broker.signer.cert_path %s: %s" % (cert_path, exc)) from exc
    if HAS_CRYPTOGRAPHY:
        try:
            key = _serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise StandinError("signer key %s is not a readable PEM private key: %s" % (key_path, exc)) from exc
        if not isinstance(key, _rsa.RSAPrivateKey):
            raise StandinError("signer key %s is not an RSA key (the 1.5.2 Simple broker needs RSA)" % key_path)
        if cert_pem is not None:
            try:
                cert = _x509.load_pem_x509_certificate(cert_pem)
            except ValueError as exc:
                raise StandinError("signer certificate %s is not a PEM certificate: %s" % (cert_path, exc)) from exc
            if cert.public_key().public_numbers() != key.public_key().public_numbers():
                raise StandinError("signer certificate %s does not match the key %s" % (cert_path, key_path))
        return
    blocks = _pem_blocks(key_pem.decode("ascii", "replace"))
    if not any(label == "RSA PRIVATE KEY" or (label == "PRIVATE KEY" and _RSA_OID_DER in der[:32]) for label, der in blocks):
        raise StandinError("signer key %s is not an RSA key (the 1.5.2 Simple broker needs RSA)" % key_path)
    if cert_pem is not None and not any(label == "CERTIFICATE" for label, _der in _pem_blocks(cert_pem.decode("ascii", "replace"))):
        raise StandinError("signer certificate %s is not a PEM certificate" % cert_path)


# ---------------------------------------------------------------------------------------------
# Minimal YAML reader for gateway.yml (PyYAML is used when installed)
# ---------------------------------------------------------------------------------------------

def _yaml_scalar(text):
    text = text.strip()
    if text == "" or text in ("~", "null", "Null", "NULL"):
        return None
    if text[0] in "\"'":
        quote = text[0]
        end = text.rfind(quote)
        if end <= 0:
            raise StandinError("unterminated quoted YAML scalar: %s" % text)
        inner = text[1:end]
        if quote == "'":
            return inner.replace("''", "'")
        return json.loads('"%s"' % inner)
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if text.startswith("[") and text.endswith("]"):
        return [_yaml_scalar(part) for part in text[1:-1].split(",") if part.strip()]
    if text in ("true", "True", "TRUE", "yes", "on"):
        return True
    if text in ("false", "False", "FALSE", "no", "off"):
        return False
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    return text


def _strip_yaml_comment(line):
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index]
    return line


def parse_simple_yaml(text):
    """Parse the YAML subset config files use: block mappings, block lists of scalars, scalars."""
    lines = []
    for raw in text.splitlines():
        if raw.strip() in ("---", "..."):
            continue
        line = _strip_yaml_comment(raw).rstrip()
        if line.strip():
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))

    def parse_block(index, indent):
        if index < len(lines) and lines[index][1].startswith("- "):
            result = []
            while index < len(lines) and lines[index][0] == indent and lines[index][1].startswith("- "):
                result.append(_yaml_scalar(lines[index][1][2:]))
                index += 1
            return result, index
        result = {}
        while index < len(lines) and lines[index][0] == indent:
            content = lines[index][1]
            if ":" not in content:
                raise StandinError("unsupported YAML line: %s" % content)
            key, _sep, value = content.partition(":")
            key = _yaml_scalar(key)
            index += 1
            if value.strip():
                result[key] = _yaml_scalar(value)
            elif index < len(lines) and (lines[index][0] > indent or (lines[index][0] == indent and lines[index][1].startswith("- "))):
                result[key], index = parse_block(index, lines[index][0])
            else:
                result[key] = None
        return result, index

    if not lines:
        return {}
    value, index = parse_block(0, lines[0][0])
    if index != len(lines):
        raise StandinError("unsupported YAML structure near: %s" % lines[index][1])
    return value


def load_yaml_file(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:
        return parse_simple_yaml(text) or {}
    return yaml.safe_load(text) or {}


# ---------------------------------------------------------------------------------------------
# Shared HTTP plumbing
# ---------------------------------------------------------------------------------------------

def split_hostport(value, default_host="127.0.0.1"):
    value = value.strip()
    if "://" in value:
        value = urllib.parse.urlsplit(value).netloc
    if value.startswith("["):
        host, _sep, port = value[1:].partition("]:")
    else:
        host, _sep, port = value.rpartition(":")
    if not port.isdigit():
        raise StandinError("address %r has no port" % value)
    return host or default_host, int(port)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, component):
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.component = component
        super().__init__(address, handler)


class Handler(http.server.BaseHTTPRequestHandler):
    """Dispatches to ``component.handle(request)`` and writes its (status, headers, body)."""

    protocol_version = "HTTP/1.1"
    server_version = "trustee-standin/" + STANDIN_VERSION

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        LOG.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        component = self.server.component
        if length > component.max_body:
            body = None
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
        try:
            if body is None:
                status, headers, payload = 413, {}, b"payload too large"
            else:
                status, headers, payload = component.handle(self.command, self.path, self.headers, body, self.client_address[0])
        except Exception as exc:  # pylint: disable=broad-except
            LOG.exception("internal error")
            status, headers, payload = 500, {"Content-Type": "application/json"}, json.dumps({"error": str(exc)}).encode()
        if isinstance(payload, (dict, list)) or payload is None and status != 200:
            payload = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.send_response(status)
        for name, value in headers.items():
            if isinstance(value, list):
                for item in value:
                    self.send_header(name, item)
            else:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _dispatch


def json_response(status, obj, headers=None):
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return status, hdrs, json.dumps(obj).encode()


def kbs_error(status, variant, detail):
    return json_response(status, {"type": ERROR_TYPE_PREFIX + variant, "detail": detail})


def serve(component, sockets, tls_context=None):
    """Bind every socket first (so a bad address fails start-up), then serve until killed."""
    servers = []
    for host, port in sockets:
        try:
            server = _Server((host, port), Handler, component)
        except OSError as exc:
            raise StandinError("cannot bind %s:%s: %s" % (host, port, exc)) from exc
        if tls_context is not None:
            server.socket = tls_context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
        LOG.info("%s listening on %s:%s (%s)", component.name, host, server.server_address[1], "https" if tls_context else "http")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    ready = os.environ.get("TRUSTEE_STANDIN_READY_FILE")
    if ready:  # tests: learn the ephemeral ports
        with open(ready + ".tmp", "w", encoding="utf-8") as handle:
            json.dump([s.server_address[1] for s in servers], handle)
        os.replace(ready + ".tmp", ready)
    for thread in threads:
        thread.join()


def http_call(url, method="GET", body=None, headers=None, timeout=5, context=None):
    """Small HTTP client: returns (status, headers, body bytes); raises OSError on connection errors."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # nosec - local URLs from config
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from exc
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc


def client_tls_context(insecure, ca_file):
    context = ssl.create_default_context(cafile=ca_file or None)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def setup_logging(level_name, json_format=False):
    level = getattr(logging, (level_name or "info").split(",")[0].split("=")[-1].upper(), None)
    if level_name and level_name.lower() == "trace":
        level = logging.DEBUG
    if not isinstance(level, int):
        level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(name)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _JsonFormatter(logging.Formatter):
    def format(self, record):
        return json.dumps({"level": record.levelname.lower(), "msg": record.getMessage(),
                           "time": datetime.datetime.now(datetime.timezone.utc).isoformat()})


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------
# Admin JWT verification (KBS [admin])
# ---------------------------------------------------------------------------------------------

def verify_admin_jwt(token, public_raw, now=None):
    """Return None when the EdDSA token is valid for the key, else a reason string."""
    now = time.time() if now is None else now
    parts = token.split(".")
    if len(parts) != 3:
        return "malformed token: expected three dot-separated parts"
    try:
        header = json.loads(b64url_nopad_decode_strict(parts[0]))
        claims = json.loads(b64url_nopad_decode_strict(parts[1]))
        signature = b64url_nopad_decode_strict(parts[2])
    except (ValueError, UnicodeDecodeError):
        return "malformed token: bad base64url or JSON"
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "malformed token: header and claims must be JSON objects"
    if header.get("alg") != "EdDSA":
        return "token algorithm %r is not EdDSA" % header.get("alg")
    if not ed25519_verify(public_raw, (parts[0] + "." + parts[1]).encode("ascii"), signature):
        return "token signature does not verify with the admin public key"
    for claim in ("exp", "nbf", "iat"):
        if claim in claims and not isinstance(claims[claim], (int, float)):
            return "claim %s is not a number" % claim
    if "exp" in claims and now > claims["exp"] + JWT_CLOCK_TOLERANCE:
        return "token expired"
    if "nbf" in claims and now + JWT_CLOCK_TOLERANCE < claims["nbf"]:
        return "token not valid yet"
    return None


# ---------------------------------------------------------------------------------------------
# Attestation token verification (KBS [attestation_token], like kbs/src/token/jwk.rs of 1.5.x)
# ---------------------------------------------------------------------------------------------

# DER DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 8017 section 9.2, note 1)
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_JWS_ALGORITHMS = {"RS256": ("RSA", "sha256"), "RS384": ("RSA", "sha384"), "RS512": ("RSA", "sha512"),
                   "ES256": ("EC", "sha256"), "ES384": ("EC", "sha384")}


def _b64_any_decode(text):
    """x5c entries: standard base64 (RFC 7515); the 1.5.x code decodes base64url. Accept both."""
    text = "".join(str(text).split()).rstrip("=")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return base64.urlsafe_b64decode(padded)


def rsa_pkcs1v15_verify_pure(n, e, hash_name, message, signature):
    """RSASSA-PKCS1-v1_5 verification with integers only (used when cryptography is missing)."""
    size = (n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    encoded = int.to_bytes(pow(s, e, n), size, "big")
    digest_info = _DIGEST_INFO[hash_name] + hashlib.new(hash_name, message).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return secrets.compare_digest(encoded, expected)


def _cert_time(cert, name):
    value = getattr(cert, name + "_utc", None)  # cryptography >= 42
    if value is None:
        value = getattr(cert, name).replace(tzinfo=datetime.timezone.utc)
    return value


def _cert_signed_by(cert, issuer):
    """True when issuer's key verifies cert's signature (RSA PKCS#1 v1.5, ECDSA or Ed25519)."""
    public = issuer.public_key()
    try:
        if isinstance(public, _rsa.RSAPublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, _padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(public, _ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, _ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(public, _ed25519.Ed25519PublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (_InvalidSignature, ValueError, TypeError):
        return False
    return True


def _is_ca(cert):
    try:
        return bool(cert.extensions.get_extension_for_class(_x509.BasicConstraints).value.ca)
    except _x509.ExtensionNotFound:
        return False


class AttestationTokenVerifier:
    """Trust in attestation tokens as the 1.5.x KBS decides it.

    The token header carries the signing key as a JWK. With ``insecure_key = true`` that key is
    used as it is, so a token the caller signed with its own key verifies. With ``insecure_key =
    false`` the JWK must carry an ``x5c`` chain whose leaf holds the same key and which leads to a
    certificate in ``trusted_certs_paths``; with no trusted certificate, no token verifies.
    Then the signature (RS256/384/512, ES256/384), ``exp`` (required) and ``nbf`` are checked.
    """

    def __init__(self, insecure_key, trusted_pems):
        self.insecure_key = insecure_key
        self.trusted = []
        for text in trusted_pems:
            for label, der in _pem_blocks(text):
                if label == "CERTIFICATE":
                    self.trusted.append(der)

    def verify(self, token, now=None):
        """Return (claims, None) when the token verifies, else (None, reason)."""
        now = time.time() if now is None else now
        parts = token.split(".")
        if len(parts) != 3:
            return None, "Failed to decode attestation token header: not a compact JWS"
        try:
            header = json.loads(b64url_nopad_decode_strict(parts[0]))
            claims = json.loads(b64url_nopad_decode_strict(parts[1]))
            signature = b64url_nopad_decode_strict(parts[2])
        except (ValueError, UnicodeDecodeError):
            return None, "Failed to decode attestation token: bad base64url or JSON"
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None, "Failed to decode attestation token: header and claims must be JSON objects"
        key = header.get("jwk")
        if not isinstance(key, dict):
            # 1.5.x then looks the kid up in trusted_jwk_sets, which the stand-in does not support
            return None, "Cannot verify token since trusted JWK Set is empty"
        if not self.insecure_key:
            if not self.trusted:
                return None, "Cannot verify token since trusted cert is empty"
            reason = self._endorsed(key, now)
            if reason:
                return None, reason
        alg = key.get("alg")
        if alg is None:
            return None, "Failed to find key_algorithm in Jwk"
        if alg not in _JWS_ALGORITHMS or _JWS_ALGORITHMS[alg][0] != key.get("kty"):
            return None, "unsupported JWK algorithm %r for key type %r" % (alg, key.get("kty"))
        if header.get("alg") != alg:
            return None, "Failed to decode attestation token: InvalidAlgorithm"
        signing_input = (parts[0] + "." + parts[1]).encode("ascii")
        try:
            valid = self._signature_valid(key, alg, signing_input, signature)
        except (ValueError, TypeError, KeyError) as exc:
            return None, "Failed to decode attestation token: bad JWK (%s)" % exc
        if not valid:
            return None, "Failed to decode attestation token: InvalidSignature"
        if not isinstance(claims.get("exp"), (int, float)):
            return None, "Failed to decode attestation token: Missing required claim: exp"
        if now > claims["exp"] + ATTESTATION_TOKEN_LEEWAY:
            return None, "Failed to decode attestation token: ExpiredSignature"
        if isinstance(claims.get("nbf"), (int, float)) and now + ATTESTATION_TOKEN_LEEWAY < claims["nbf"]:
            return None, "Failed to decode attestation token: ImmatureSignature"
        return claims, None

    @staticmethod
    def _signature_valid(key, alg, message, signature):
        kty, hash_name = _JWS_ALGORITHMS[alg]
        if kty == "RSA":
            n = int.from_bytes(b64url_nopad_decode_strict(key["n"]), "big")
            e = int.from_bytes(b64url_nopad_decode_strict(key["e"]), "big")
            if not HAS_CRYPTOGRAPHY:
                return rsa_pkcs1v15_verify_pure(n, e, hash_name, message, signature)
            public = _rsa.RSAPublicNumbers(e, n).public_key()
            try:
                public.verify(signature, message, _padding.PKCS1v15(), getattr(_hashes, hash_name.upper())())
            except _InvalidSignature:
                return False
            return True
        if not HAS_CRYPTOGRAPHY:
            raise ValueError("EC tokens need python3-cryptography in the stand-in")
        curve = {"P-256": _ec.SECP256R1(), "P-384": _ec.SECP384R1()}[key.get("crv")]
        size = (curve.key_size + 7) // 8
        public = _ec.EllipticCurvePublicNumbers(int.from_bytes(b64url_nopad_decode_strict(key["x"]), "big"),
                                                int.from_bytes(b64url_nopad_decode_strict(key["y"]), "big"), curve).public_key()
        if len(signature) != 2 * size:
            return False
        der = _encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
        try:
            public.verify(der, message, _ec.ECDSA(getattr(_hashes, hash_name.upper())()))
        except _InvalidSignature:
            return False
        return True

    def _endorsed(self, key, now):  # pylint: disable=too-many-return-statements
        """None when the JWK's x5c chain leads to a trusted certificate, else the reason."""
        chain = key.get("x5c")
        if not isinstance(chain, list) or not chain:
            return "No x5c extension inside JWK. Invalid public key."
        if not HAS_CRYPTOGRAPHY:
            return "JWK cannot be validated by trust anchor: the stand-in needs python3-cryptography to check x5c chains"
        try:
            certs = [_x509.load_der_x509_certificate(_b64_any_decode(item)) for item in chain]
            anchors = [_x509.load_der_x509_certificate(der) for der in self.trusted]
        except (ValueError, binascii.Error, TypeError) as exc:
            return "Invalid x509 in x5c: %s" % exc
        leaf_key = certs[0].public_key()
        try:
            if key.get("kty") == "RSA":
                matches = isinstance(leaf_key, _rsa.RSAPublicKey) and \
                    leaf_key.public_numbers().n == int.from_bytes(b64url_nopad_decode_strict(key.get("n", "")), "big")
            elif key.get("kty") == "EC":
                matches = isinstance(leaf_key, _ec.EllipticCurvePublicKey) and \
                    (leaf_key.public_numbers().x, leaf_key.public_numbers().y) == (
                        int.from_bytes(b64url_nopad_decode_strict(key.get("x", "")), "big"),
                        int.from_bytes(b64url_nopad_decode_strict(key.get("y", "")), "big"))
            else:
                return "Only RSA or EC JWKs are supported."
        except ValueError:
            return "JWK parameters are not base64url"
        if not matches:
            return "the JWK does not match the leaf certificate of x5c"
        try:
            usage = certs[0].extensions.get_extension_for_class(_x509.ExtendedKeyUsage).value
            if _x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
                return "JWK cannot be validated by trust anchor: RequiredEkuNotFound"
        except _x509.ExtensionNotFound:
            pass
        moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        current, intermediates = certs[0], certs[1:]
        for _depth in range(len(certs) + 1):
            if not _cert_time(current, "not_valid_before") <= moment <= _cert_time(current, "not_valid_after"):
                return "JWK cannot be validated by trust anchor: CertExpired or CertNotValidYet (%s)" % current.subject.rfc4514_string()
            if any(a.subject == current.issuer and _cert_signed_by(current, a) for a in anchors):
                return None
            issuers = [c for c in intermediates if c.subject == current.issuer and _is_ca(c) and _cert_signed_by(current, c)]
            if not issuers:
                break
            current = issuers[0]
            intermediates = [c for c in intermediates if c is not current]
        return "JWK cannot be validated by trust anchor: UnknownIssuer"


# ---------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------

class Component:
    name = "component"
    max_body = 2 * 1024 * 1024

    def handle(self, method, path, headers, body, client_ip):  # pragma: no cover - overridden
        raise NotImplementedError


class PolicyStore:
    """Attestation policies as files <policy_dir>/opa/<id>.rego, shared by grpc-as and restful-as."""

    def __init__(self, policy_dir):
        self.dir = os.path.join(policy_dir, "opa")
        os.makedirs(self.dir, exist_ok=True)
        default = os.path.join(self.dir, "default.rego")
        if not os.path.exists(default):
            with open(default, "w", encoding="utf-8") as handle:
                handle.write(DEFAULT_AS_POLICY)

    def path(self, policy_id):
        if not POLICY_ID_RE.match(policy_id or ""):
            raise ValueError("invalid policy id %r" % policy_id)
        return os.path.join(self.dir, policy_id + ".rego")

    def set(self, body):
        try:
            request = json.loads(body)
            policy_id = request["policy_id"]
            text = b64url_nopad_decode_strict(request["policy"]).decode("utf-8")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            return 400, "invalid policy request (policy must be base64url without padding): %s" % exc
        if not re.search(r"^\s*package\s+\S+", text, re.M):
            return 400, "policy does not compile: no package declaration"
        try:
            path = self.path(policy_id)
        except ValueError as exc:
            return 400, str(exc)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(path + ".tmp", path)
        return 200, ""

    def get(self, policy_id):
        try:
            with open(self.path(policy_id), "rb") as handle:
                return b64url_nopad_encode(handle.read())
        except (OSError, ValueError):
            return None

    def list(self):
        result = {}
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".rego"):
                with open(os.path.join(self.dir, name), "rb") as handle:
                    result[name[:-5]] = hashlib.sha384(handle.read()).hexdigest()
        return result

    def delete(self, policy_id):
        try:
            os.remove(self.path(policy_id))
            return True
        except (OSError, ValueError):
            return False


class AttestationService(Component):
    """grpc-as and restful-as. Both read as-config.json; both serve the HTTP routes of restful-as."""

    def __init__(self, name, config_path, socket_addr):
        self.name = name
        try:
            with open(config_path, encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, ValueError) as exc:
            raise StandinError("cannot load AS config %s: %s" % (config_path, exc)) from exc
        self.work_dir = config.get("work_dir", "/opt/trustee/attestation-service")
        broker = config.get("attestation_token_broker") or {}
        if broker.get("type", "Simple") != "Simple":
            raise StandinError("attestation_token_broker.type %r: the 1.5.2 stand-in knows only Simple" % broker.get("type"))
        policy_dir = broker.get("policy_dir") or broker.get("policy_path") or os.path.join(self.work_dir, "policies")
        self.policies = PolicyStore(policy_dir)
        self.certificate = None
        signer = broker.get("signer")
        if signer:
            if not signer.get("key_path"):
                raise StandinError("attestation_token_broker.signer needs key_path")
            check_rsa_signer(signer["key_path"], signer.get("cert_path"))
            if signer.get("cert_path"):
                with open(signer["cert_path"], encoding="ascii") as handle:
                    self.certificate = handle.read()
        else:
            LOG.warning("no attestation_token_broker.signer: tokens would be signed with an ephemeral key")
        self.sockets = [split_hostport(socket_addr, "0.0.0.0")]
        LOG.info("%s %s started, policies in %s", name, STANDIN_VERSION, self.policies.dir)

    def handle(self, method, path, headers, body, client_ip):
        route = urllib.parse.urlsplit(path).path.rstrip("/")
        if method == "GET" and route == "/certificate":
            if self.certificate is None:
                return json_response(404, {"error": "No certificate configured"})
            return 200, {"Content-Type": "application/x-pem-file"}, self.certificate
        if method == "POST" and route == "/policy":
            status, text = self.policies.set(body)
            return status, {"Content-Type": "text/plain"}, text
        if method == "GET" and route == "/policies":
            return json_response(200, self.policies.list())
        match = re.fullmatch(r"/policy/([^/]+)", route)
        if match and method == "GET":
            policy = self.policies.get(match.group(1))
            if policy is None:
                return 404, {"Content-Type": "text/plain"}, "policy %s not found" % match.group(1)
            return 200, {"Content-Type": "text/plain"}, policy
        if match and method == "DELETE":
            if self.policies.delete(match.group(1)):
                return 200, {}, b""
            return 404, {"Content-Type": "text/plain"}, "policy %s not found" % match.group(1)
        if method == "POST" and route == "/challenge":
            return json_response(200, {"nonce": b64url_nopad_encode(secrets.token_bytes(32)), "extra-params": ""})
        if method == "POST" and route == "/attestation":
            return 400, {"Content-Type": "text/plain"}, "Trustee stand-in: evidence verification is not implemented (test double)"
        return 404, {"Content-Type": "text/plain"}, "404 page not found"


class ReferenceValueStore(Component):
    """rvps: reference values in <storage.file_path>/reference_values.json; HTTP/JSON instead of gRPC."""

    name = "rvps"

    def __init__(self, config_path, address):
        try:
            with open(config_path, encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, ValueError) as exc:
            raise StandinError("cannot load RVPS config %s: %s" % (config_path, exc)) from exc
        storage = config.get("storage") or {}
        directory = storage.get("file_path", "/opt/trustee/attestation-service/reference_values")
        os.makedirs(directory, exist_ok=True)
        self.file = os.path.join(directory, "reference_values.json")
        self.lock = threading.Lock()
        self.sockets = [split_hostport(address)]

    def _load(self):
        try:
            with open(self.file, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def _save(self, data):
        with open(self.file + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(self.file + ".tmp", self.file)

    def query(self):
        now = time.time()
        return {name: [v["value"] for v in values if v["expires"] > now] for name, values in self._load().items()}

    def register(self, message_text):
        message = json.loads(message_text)
        if message.get("version") != "0.1.0" or message.get("type") != "sample":
            raise ValueError("only version 0.1.0 messages of type sample are supported")
        payload = json.loads(base64.b64decode(message["payload"]))
        if not isinstance(payload, dict):
            raise ValueError("payload must be a JSON object name -> [values]")
        expires = time.time() + RVPS_EXPIRY_SECONDS
        with self.lock:
            data = self._load()
            for name, values in payload.items():
                if not isinstance(values, list):
                    raise ValueError("reference values of %s must be a list" % name)
                data[name] = [{"value": value, "expires": expires} for value in values]
            self._save(data)

    def delete(self, name):
        with self.lock:
            data = self._load()
            found = data.pop(name, None) is not None
            self._save(data)
        return found

    def handle(self, method, path, headers, body, client_ip):
        route = urllib.parse.urlsplit(path).path.rstrip("/")
        if method == "GET" and route == "/query":
            return json_response(200, self.query())
        if method == "POST" and route == "/register":
            try:
                self.register(json.loads(body)["message"])
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                return json_response(400, {"error": "register failed: %s" % exc})
            return json_response(200, {"status": "ok"})
        match = re.fullmatch(r"/delete/([^/]+)", route)
        if method == "DELETE" and match:
            if self.delete(match.group(1)):
                return json_response(200, {"status": "ok"})
            return json_response(404, {"error": "reference value %s not found" % match.group(1)})
        return json_response(404, {"error": "not found"})


class KeyBrokerService(Component):
    """kbs: reads kbs-config.toml like the 1.5.2 KBS and serves /kbs/v0/*."""

    name = "kbs"

    def __init__(self, config_path):
        try:
            with open(config_path, "rb") as handle:
                config = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise StandinError("cannot load KBS config %s: %s" % (config_path, exc)) from exc
        http_server = config.get("http_server") or {}
        self.sockets = [split_hostport(s) for s in http_server.get("sockets", ["127.0.0.1:8080"])]
        self.max_body = int(http_server.get("payload_request_size", 2)) * 1024 * 1024
        self.tls_context = None
        if not http_server.get("insecure_http", False):
            key, cert = http_server.get("private_key"), http_server.get("certificate")
            if not key or not cert:
                raise StandinError("http_server.insecure_http is false: private_key and certificate are required")
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                self.tls_context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise StandinError("cannot load KBS TLS certificate/key: %s" % exc) from exc
        token = config.get("attestation_token") or {}
        self.insecure_key = bool(token.get("insecure_key", False))
        self.trusted_certs = []
        trusted_pems = []
        for path in token.get("trusted_certs_paths") or []:
            try:
                with open(path, encoding="ascii", errors="replace") as handle:
                    text = handle.read()
            except OSError as exc:
                raise StandinError("attestation_token.trusted_certs_paths: cannot read %s: %s" % (path, exc)) from exc
            if not any(label == "CERTIFICATE" for label, _der in _pem_blocks(text)):
                raise StandinError("attestation_token.trusted_certs_paths: %s holds no PEM certificate" % path)
            self.trusted_certs.append(path)
            trusted_pems.append(text)
        # Read at start only, like the real KBS: a new CA needs a restart.
        self.token_verifier = AttestationTokenVerifier(self.insecure_key, trusted_pems)
        if self.insecure_key:
            LOG.warning("attestation_token.insecure_key = true: tokens are trusted with the key they carry")
        elif not self.trusted_certs:
            LOG.warning("insecure_key = false and no trusted_certs_paths: no attestation token can verify")
        attestation_service = config.get("attestation_service") or {}
        self.as_addr = attestation_service.get("as_addr", "http://127.0.0.1:50004").rstrip("/")
        admin = config.get("admin") or {}
        self.insecure_api = bool(admin.get("insecure_api", False))
        self.admin_key = None
        if not self.insecure_api:
            # Read only at start, like the real KBS: a new public.pub needs a restart.
            self.admin_key = load_ed25519_public_pem(admin.get("auth_public_key", "/etc/trustee/public.pub"))
        else:
            LOG.warning("admin.insecure_api = true: admin endpoints need no authentication")
        engine = config.get("policy_engine") or {}
        self.policy_path = engine.get("policy_path", "/opt/trustee/kbs/policy.rego")
        if not os.path.exists(self.policy_path):
            os.makedirs(os.path.dirname(self.policy_path), exist_ok=True)
            with open(self.policy_path, "w", encoding="utf-8") as handle:
                handle.write(DEFAULT_KBS_POLICY)
        self.repository = None
        for plugin in config.get("plugins") or []:
            if plugin.get("name") == "resource":
                if plugin.get("type") != "LocalFs":
                    raise StandinError("resource plugin type %r: the stand-in supports only LocalFs" % plugin.get("type"))
                self.repository = plugin.get("dir_path", "/opt/trustee/kbs/repository")
        if self.repository is None:
            self.repository = "/opt/trustee/kbs/repository"
        os.makedirs(self.repository, exist_ok=True)
        self.sessions = {}
        self.lock = threading.Lock()
        LOG.info("kbs %s started (insecure_key=%s, repository=%s)", STANDIN_VERSION, self.insecure_key, self.repository)

    def _admin_check(self, headers):
        if self.insecure_api:
            return None
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return kbs_error(401, "AdminAuth", "Admin auth error: no Bearer token")
        reason = verify_admin_jwt(auth[7:].strip(), self.admin_key)
        if reason:
            LOG.info("admin request refused: %s", reason)
            return kbs_error(401, "AdminAuth", "Admin auth error: %s" % reason)
        return None

    def _release(self, headers, segments):
        """GET of a resource: the token is verified as the 1.5.x KBS does; nothing is ever released."""
        auth = headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            _claims, reason = self.token_verifier.verify(auth[7:].strip())
            if reason:
                LOG.info("attestation token refused for %s: %s", "/".join(segments), reason)
                return kbs_error(401, "TokenVerifierError", "Failed to verify attestation token: %s" % reason)
            LOG.info("attestation token accepted for %s (%s)", "/".join(segments),
                     "insecure_key = true: the key in the token header" if self.insecure_key else "x5c chain to trusted_certs_paths")
            # The real KBS would now evaluate the resource policy and send the resource as a JWE.
            return kbs_error(403, "PolicyDeny", "Trustee stand-in: attestation token verified; the stand-in evaluates no rego "
                                                "and never releases a resource (test double)")
        if "kbs-session-id=" in (headers.get("Cookie") or ""):
            return kbs_error(401, "TokenNotFound", "Trustee stand-in: the session is not attested (attest is not implemented)")
        return kbs_error(401, "TokenNotFound", "Attestation Token not found")

    def _resource_path(self, segments):
        if len(segments) != 3 or not all(SEGMENT_RE.match(s) for s in segments):
            return None
        return os.path.join(self.repository, *segments)

    def _list_resources(self):
        result = []
        for repo in sorted(os.listdir(self.repository)):
            repo_dir = os.path.join(self.repository, repo)
            if not os.path.isdir(repo_dir):
                continue
            for rtype in sorted(os.listdir(repo_dir)):
                type_dir = os.path.join(repo_dir, rtype)
                if not os.path.isdir(type_dir):
                    continue
                for tag in sorted(os.listdir(type_dir)):
                    if os.path.isfile(os.path.join(type_dir, tag)):
                        result.append({"repository_name": repo, "resource_type": rtype, "resource_tag": tag})
        return result

    def _forward_as(self, method, route, body):
        try:
            status, hdrs, payload = http_call(self.as_addr + route, method, body or None, {"Content-Type": "application/json"})
        except OSError as exc:
            return kbs_error(500, "PolicyEndpoint", "attestation service unreachable: %s" % exc)
        if status >= 400:
            return kbs_error(status if status < 500 else 500, "PolicyEndpoint", payload.decode("utf-8", "replace"))
        return status, {"Content-Type": hdrs.get("Content-Type", "text/plain")}, payload

    def handle(self, method, path, headers, body, client_ip):  # pylint: disable=too-many-return-statements,too-many-branches
        route = urllib.parse.urlsplit(path).path
        if not route.startswith("/kbs/v0/"):
            return kbs_error(404, "InvalidRequest", "unknown path %s" % route)
        route = route[len("/kbs/v0/"):]
        if method == "POST" and route == "auth":
            try:
                request = json.loads(body)
            except ValueError:
                return kbs_error(400, "JsonDecode", "auth request is not JSON")
            if request.get("version") != KBS_PROTOCOL_VERSION:
                return kbs_error(400, "ProtocolVersion", "expected protocol version %s, got %r" % (KBS_PROTOCOL_VERSION, request.get("version")))
            if request.get("tee") not in KNOWN_TEES:
                return kbs_error(400, "InvalidRequest", "unknown tee %r" % request.get("tee"))
            session = secrets.token_hex(16)
            nonce = b64url_nopad_encode(secrets.token_bytes(32))
            with self.lock:
                self.sessions[session] = time.time()
            return json_response(200, {"nonce": nonce, "extra-params": ""}, {"Set-Cookie": "kbs-session-id=%s; Path=/kbs/v0" % session})
        if method == "POST" and route == "attest":
            return kbs_error(401, "AttestationFailed", "Trustee stand-in: evidence verification is not implemented (test double)")
        if route.startswith("resource/"):
            segments = route[len("resource/"):].split("/")
            target = self._resource_path(segments)
            if target is None:
                return kbs_error(404, "InvalidRequest", "resource path must be <repository>/<type>/<tag>")
            if method == "GET":
                return self._release(headers, segments)
            if method in ("POST", "DELETE"):
                refused = self._admin_check(headers)
                if refused:
                    return refused
                if method == "POST":
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as handle:  # like std::fs::write: mode from the umask
                        handle.write(body)
                    LOG.info("resource %s written (%d bytes)", "/".join(segments), len(body))
                    return 200, {}, b""
                try:
                    os.remove(target)
                except OSError as exc:
                    return kbs_error(500, "PluginInternalError", "Failed to delete resource: %s" % exc.strerror)
                LOG.info("resource %s deleted", "/".join(segments))
                return 200, {}, b""
        if method == "GET" and route == "resources":
            return json_response(200, self._list_resources())
        if route == "resource-policy" and method in ("GET", "POST"):
            refused = self._admin_check(headers)
            if refused:
                return refused
            if method == "GET":
                with open(self.policy_path, "rb") as handle:
                    return 200, {"Content-Type": "text/plain"}, b64url_nopad_encode(handle.read())
            try:
                text = b64url_nopad_decode_strict(json.loads(body)["policy"]).decode("utf-8")
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                return kbs_error(400, "PolicyEngine", "policy must be base64url without padding in {\"policy\": ...}: %s" % exc)
            if not re.search(r"^\s*package\s+policy\b", text, re.M):
                return kbs_error(400, "PolicyEngine", "policy does not declare package policy")
            with open(self.policy_path + ".tmp", "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(self.policy_path + ".tmp", self.policy_path)
            return 200, {}, b""
        if method == "POST" and route == "attestation-policy":
            return self._forward_as("POST", "/policy", body)
        if method == "GET" and route == "attestation-policies":
            return self._forward_as("GET", "/policies", None)
        match = re.fullmatch(r"attestation-policy/([^/]+)", route)
        if match and method in ("GET", "DELETE"):
            return self._forward_as(method, "/policy/" + match.group(1), None)
        return kbs_error(404, "InvalidRequest", "unknown path /kbs/v0/%s" % route)


class Gateway(Component):
    """trustee-gateway: reads gateway.yml, proxies to KBS / restful-as / RVPS, health and audit."""

    name = "trustee-gateway"
    max_body = 64 * 1024 * 1024

    def __init__(self, config_path):
        try:
            config = load_yaml_file(config_path)
        except (OSError, StandinError) as exc:
            raise StandinError("cannot load gateway config %s: %s" % (config_path, exc)) from exc
        if not isinstance(config, dict):
            raise StandinError("gateway config %s is not a mapping" % config_path)
        server = config.get("server") or {}
        self.sockets = [(str(server.get("host", "0.0.0.0")), int(server.get("port", 8081)))]
        tls = server.get("tls") or {}
        insecure_http = server.get("insecure_http", True)
        self.tls_context = None
        # Like the 1.5.2 gateway: TLS only when insecure_http is false AND both files are set.
        if insecure_http is False and tls.get("cert_file") and tls.get("key_file"):
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                self.tls_context.load_cert_chain(tls["cert_file"], tls["key_file"])
            except (OSError, ssl.SSLError) as exc:
                raise StandinError("cannot load gateway TLS certificate/key: %s" % exc) from exc
        self.upstreams = {}
        for key, default in (("kbs", "http://localhost:8080"), ("attestation_service", "http://localhost:50005")):
            section = config.get(key) or {}
            url = str(section.get("url") or default).rstrip("/")
            context = None
            if url.startswith("https://"):
                context = client_tls_context(bool(section.get("insecure_http")), section.get("ca_cert_file"))
            self.upstreams[key] = (url, context)
        rvps_addr = str((config.get("rvps") or {}).get("grpc_addr") or "localhost:50003")
        self.rvps_url = "http://%s:%d" % split_hostport(rvps_addr)
        audit = config.get("audit") or {}
        self.max_records = int(audit.get("max_records", 1000))
        self.level = str((config.get("logging") or {}).get("level") or "info").lower()
        self.audit = {"attestation": [], "resources": []}
        self.aa_instances = {}
        self.lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------------
    def _record(self, kind, record):
        with self.lock:
            records = self.audit[kind]
            record["id"] = (records[-1]["id"] + 1) if records else 1
            records.append(record)
            del records[:-self.max_records]

    def _forward(self, upstream, method, route, query, headers, body):
        url, context = self.upstreams[upstream]
        forward_headers = {}
        for name in ("Authorization", "Content-Type", "Cookie", "AAInstanceInfo"):
            if headers.get(name):
                forward_headers[name] = headers.get(name)
        if LOG.isEnabledFor(logging.DEBUG):
            # The 1.5.2 gateway dumps forwarded headers at debug level (Authorization included);
            # the stand-in logs that the header is there, never its value.
            shown = {k: (v[:12] + "...(redacted)" if k in ("Authorization", "Cookie") else v) for k, v in forward_headers.items()}
            LOG.debug("forwarding %s %s headers %s", method, route, json.dumps(shown))
        target = url + route + (("?" + query) if query else "")
        try:
            status, resp_headers, payload = http_call(target, method, body if method in ("POST", "PUT") else None, forward_headers, 30, context)
        except OSError as exc:
            LOG.error("forward to %s failed: %s", upstream, exc)
            return json_response(500, {"error": "Failed to forward request to %s" % ("KBS" if upstream == "kbs" else "attestation service")})
        out = {}
        if resp_headers.get("Content-Type"):
            out["Content-Type"] = resp_headers.get("Content-Type")
        cookies = resp_headers.get_all("Set-Cookie") if hasattr(resp_headers, "get_all") else None
        if cookies:
            out["Set-Cookie"] = cookies
        return status, out, payload

    def _health(self):
        result = {"gateway": {"status": "ok", "timestamp": now_rfc3339()}}
        checks = {
            "kbs": lambda: self._forward("kbs", "POST", "/kbs/v0/auth", "", {"Content-Type": "application/json"},
                                         json.dumps({"version": KBS_PROTOCOL_VERSION, "tee": "sample", "extra-params": ""}).encode()),
            "as": lambda: self._forward("attestation_service", "GET", "/certificate", "", {}, None),
        }
        for name, check in checks.items():
            status, _hdrs, payload = check()
            ok = status == 200
            if name == "as" and status == 404:
                try:
                    ok = json.loads(payload).get("error") == "No certificate configured"
                except (ValueError, AttributeError):
                    ok = False
            entry = {"status": "ok" if ok else "error", "timestamp": now_rfc3339()}
            if not ok:
                entry["message"] = "HTTP %s: %s" % (status, payload[:200].decode("utf-8", "replace"))
            result[name] = entry
        try:
            status, _hdrs, payload = http_call(self.rvps_url + "/query", timeout=5)
            ok = status == 200
            message = None if ok else "HTTP %s" % status
        except OSError as exc:
            ok, message = False, "rvps unreachable: %s" % exc
        result["rvps"] = {"status": "ok" if ok else "error", "timestamp": now_rfc3339()}
        if message:
            result["rvps"]["message"] = message
        return result

    def _audit_query(self, kind, query):
        params = urllib.parse.parse_qs(query)
        rows = list(self.audit[kind])
        mapping = {"repository": "repository", "type": "type", "tag": "tag", "method": "method",
                   "session_id": "session_id", "source_service": "source_service", "instance_id": "instance_id"}
        for param, field in mapping.items():
            if param in params:
                rows = [r for r in rows if str(r.get(field)) == params[param][0]]
        if "successful" in params:
            wanted = params["successful"][0].lower() == "true"
            rows = [r for r in rows if r["successful"] is wanted]
        for param, op in (("start_time", lambda a, b: a >= b), ("end_time", lambda a, b: a <= b)):
            if param in params:
                rows = [r for r in rows if op(r["timestamp"], params[param][0])]
        rows.sort(key=lambda r: r["id"], reverse=True)
        total = len(rows)
        offset = int(params.get("offset", ["0"])[0] or 0)
        limit = int(params.get("limit", ["100"])[0] or 100)
        return {"data": rows[offset:offset + limit], "total": total}

    # -- routing ---------------------------------------------------------------------------
    def handle(self, method, path, headers, body, client_ip):  # pylint: disable=too-many-return-statements,too-many-branches
        parts = urllib.parse.urlsplit(path)
        route, query = parts.path, parts.query
        if method == "GET" and route == "/api/health":
            return json_response(200, {"status": "ok"})
        if method == "GET" and route == "/api/services-health":
            return json_response(200, self._health())
        if route.startswith("/api/kbs/v0/"):
            sub = route[len("/api"):]
            status, hdrs, payload = self._forward("kbs", method, sub, query, headers, body)
            session = ""
            match = re.search(r"kbs-session-id=([^;]+)", headers.get("Cookie") or "")
            if match:
                session = match.group(1)
            res = re.fullmatch(r"/kbs/v0/resource/([^/]+)/([^/]+)/([^/]+)", sub)
            if res:
                self._record("resources", {
                    "client_ip": client_ip, "session_id": session, "repository": res.group(1), "type": res.group(2),
                    "tag": res.group(3), "method": method, "status": status, "successful": status in (200, 201, 204),
                    "timestamp": now_rfc3339(), "instance_id": ""})
            elif sub == "/kbs/v0/attest":
                self._record("attestation", {
                    "client_ip": client_ip, "session_id": session, "claims": "", "status": status, "successful": status == 200,
                    "timestamp": now_rfc3339(), "source_service": "kbs", "instance_id": ""})
            elif sub == "/kbs/v0/resources" and status == 200 and query:
                params = urllib.parse.parse_qs(query)
                rows = json.loads(payload)
                rows = [r for r in rows if all(r.get(f) == params[p][0] for p, f in (("repository", "repository_name"), ("type", "resource_type"))
                                               if p in params)]
                return json_response(200, rows or None)  # a Go nil slice: no match gives JSON null
            return status, hdrs, payload
        for prefix in ("/api/attestation-service/", "/api/as/"):
            if route.startswith(prefix):
                sub = "/" + route[len(prefix):]
                status, hdrs, payload = self._forward("attestation_service", method, sub, query, headers, body)
                if sub == "/attestation":
                    self._record("attestation", {
                        "client_ip": client_ip, "session_id": "", "claims": "", "status": status, "successful": status == 200,
                        "timestamp": now_rfc3339(), "source_service": "attestation-service", "instance_id": ""})
                return status, hdrs, payload
        if route.startswith("/api/rvps/"):
            sub = "/" + route[len("/api/rvps/"):]
            try:
                status, resp_headers, payload = http_call(self.rvps_url + sub, method, body if method == "POST" else None,
                                                          {"Content-Type": "application/json"}, 10)
                return status, {"Content-Type": resp_headers.get("Content-Type", "application/json")}, payload
            except OSError as exc:
                return json_response(500, {"error": "rvps unreachable: %s" % exc})
        if method == "GET" and route == "/api/audit/attestation":
            return json_response(200, self._audit_query("attestation", query))
        if method == "GET" and route == "/api/audit/resources":
            return json_response(200, self._audit_query("resources", query))
        if method == "POST" and route == "/api/aa-instance/heartbeat":
            info = headers.get("AAInstanceInfo") or "{}"
            with self.lock:
                self.aa_instances[client_ip + info] = {"client_ip": client_ip, "instance_info": info, "last_heartbeat": now_rfc3339()}
            return json_response(200, {"status": "ok"})
        if method == "GET" and route == "/api/aa-instance/list":
            return json_response(200, list(self.aa_instances.values()))
        return 404, {"Content-Type": "text/plain"}, "404 page not found"


# ---------------------------------------------------------------------------------------------
# rvps-tool and entry point
# ---------------------------------------------------------------------------------------------

def rvps_tool(argv):
    parser = argparse.ArgumentParser(prog="rvps-tool", description="Trustee stand-in rvps-tool (test double)")
    parser.add_argument("--address", default="http://127.0.0.1:50003")
    sub = parser.add_subparsers(dest="command", required=True)
    register = sub.add_parser("register")
    register.add_argument("--path", required=True)
    sub.add_parser("query")
    delete = sub.add_parser("delete")
    delete.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    base = args.address if "://" in args.address else "http://" + args.address
    if args.command == "register":
        with open(args.path, encoding="utf-8") as handle:
            message = handle.read()
        status, _h, payload = http_call(base + "/register", "POST", json.dumps({"message": message}).encode(), {"Content-Type": "application/json"})
    elif args.command == "query":
        status, _h, payload = http_call(base + "/query")
    else:
        status, _h, payload = http_call(base + "/delete/" + urllib.parse.quote(args.name, safe=""), "DELETE")
    sys.stdout.write(payload.decode("utf-8", "replace") + "\n")
    return 0 if status == 200 else 1


def build_component(name, argv):
    if name == "kbs":
        parser = argparse.ArgumentParser(prog="kbs")
        parser.add_argument("--config-file", required=True)
        args = parser.parse_args(argv)
        setup_logging(os.environ.get("RUST_LOG", "info"))
        comp = KeyBrokerService(args.config_file)
        return comp, comp.sockets, comp.tls_context
    if name in ("grpc-as", "restful-as"):
        parser = argparse.ArgumentParser(prog=name)
        parser.add_argument("--socket", default="127.0.0.1:50004" if name == "grpc-as" else "127.0.0.1:8080")
        parser.add_argument("--config-file", required=True)
        args = parser.parse_args(argv)
        setup_logging(os.environ.get("RUST_LOG", "info"))
        comp = AttestationService(name, args.config_file, args.socket)
        return comp, comp.sockets, None
    if name == "rvps":
        parser = argparse.ArgumentParser(prog="rvps")
        parser.add_argument("--config", required=True)
        parser.add_argument("--address", default="127.0.0.1:50003")
        args = parser.parse_args(argv)
        setup_logging(os.environ.get("RUST_LOG", "info"))
        comp = ReferenceValueStore(args.config, args.address)
        return comp, comp.sockets, None
    if name == "trustee-gateway":
        parser = argparse.ArgumentParser(prog="trustee-gateway")
        parser.add_argument("--config", default="config.yaml")
        args = parser.parse_args(argv)
        comp = Gateway(args.config)
        setup_logging(comp.level, json_format=True)
        return comp, comp.sockets, comp.tls_context
    raise StandinError("unknown component %r" % name)


COMPONENTS = ("kbs", "grpc-as", "restful-as", "rvps", "trustee-gateway", "rvps-tool", "genkey")


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    name = os.path.basename(argv[0])
    args = argv[1:]
    if name not in COMPONENTS:
        if not args or args[0] not in COMPONENTS + ("--version",):
            sys.stderr.write("usage: trustee-standin {%s} [options]\n" % ",".join(COMPONENTS))
            return 2
        name, args = args[0], args[1:]
    if name == "--version" or args[:1] == ["--version"]:
        sys.stdout.write("%s %s (Trustee stand-in, test double)\n" % (name, STANDIN_VERSION))
        return 0
    try:
        if name == "rvps-tool":
            return rvps_tool(args)
        if name == "genkey":
            if len(args) != 2:
                raise StandinError("usage: trustee-standin genkey PRIVATE_PEM PUBLIC_PEM")
            write_ed25519_keypair(args[0], args[1])
            return 0
        component, sockets, tls_context = build_component(name, args)
        serve(component, sockets, tls_context)
    except StandinError as exc:
        logging.basicConfig()
        LOG.error("%s: %s", name, exc)
        sys.stderr.write("%s: error: %s\n" % (name, exc))
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
