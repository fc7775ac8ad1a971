"""Request authentication for the ECS and CS front end of the emulator.

Verifies what the Tea SDKs send (see the wire reference, sections 3 and 4):

* ACS3-HMAC-SHA256 (the default of alibabacloud-tea-openapi): ``Authorization: ACS3-HMAC-SHA256
  Credential=<AK>,SignedHeaders=<h1;h2>,Signature=<hex>``;
* the legacy RPC HMAC-SHA1 signature (``Signature``/``AccessKeyId``/``Timestamp`` query parameters);
* the legacy ROA HMAC-SHA1 signature (``Authorization: acs <AK>:<base64>`` plus ``Date``).

Every failure raises :class:`AuthError` carrying the gateway's error code and HTTP status. Nothing
here logs a secret or a signature.
"""

import base64
import calendar
import email.utils
import hashlib
import hmac
import re
import threading
import time
from urllib.parse import parse_qsl, quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW_SECONDS = 15 * 60

_ACS3_RE = re.compile(r"^ACS3-HMAC-SHA256\s+(.*)$")
_ACS_ROA_RE = re.compile(r"^acs\s+([^:\s]+):(\S+)$")


class AuthError(Exception):
    """A request that fails authentication: ``code``, ``message`` and the HTTP ``status``."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def pe(value):
    """RFC 3986 percent-encoding, as the SDK applies it (only ``~`` kept besides unreserved)."""
    return quote(value, safe="~", encoding="utf-8")


def parse_query(raw_query):
    """Decode a query string the way form decoding does (``+`` is a space)."""
    return parse_qsl(raw_query or "", keep_blank_values=True)


def canonical_query(pairs):
    items = sorted(pairs, key=lambda kv: kv[0])
    return "&".join("%s=%s" % (k, pe(v)) for k, v in items)


class NonceCache:
    """Signature nonces seen in the last 15 minutes (``SignatureNonceUsed`` on a replay)."""

    def __init__(self, ttl=MAX_SKEW_SECONDS):
        self.ttl = ttl
        self._seen = {}
        self._lock = threading.Lock()

    def check_and_add(self, nonce, now):
        with self._lock:
            if len(self._seen) > 10000:
                self._seen = {n: t for n, t in self._seen.items() if now - t < self.ttl}
            seen_at = self._seen.get(nonce)
            if seen_at is not None and now - seen_at < self.ttl:
                return False
            self._seen[nonce] = now
            return True


def _parse_acs_date(value):
    try:
        return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        raise AuthError("InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.") from None


def _check_skew(when, now):
    if abs(now - when) > MAX_SKEW_SECONDS:
        raise AuthError("InvalidTimeStamp.Expired",
                        "Specified time stamp or date value is expired (allowed skew: 15 minutes).")


def _lookup(credentials, access_key_id):
    found = credentials.lookup(access_key_id)
    if found is None:
        raise AuthError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
    return found


def _check_token(expected_token, sent_token):
    if not expected_token:
        return
    if not sent_token:
        raise AuthError("MissingSecurityToken", "SecurityToken is mandatory for this access key (STS).")
    if not hmac.compare_digest(expected_token.encode(), sent_token.encode()):
        raise AuthError("InvalidSecurityToken.MismatchWithAccessKey",
                        "The security token does not belong to the access key.")


class Request:
    """What the verifier needs from an HTTP request."""

    def __init__(self, method, raw_path, raw_query, headers, body):
        self.method = method.upper()
        self.raw_path = raw_path
        self.raw_query = raw_query
        pairs = list(headers.items()) if hasattr(headers, "items") else list(headers)
        self.headers = {k.lower(): v for k, v in pairs}
        self.header_lists = {}
        for k, v in pairs:
            self.header_lists.setdefault(k.lower(), []).append(v)
        self.body = body or b""
        self.query_pairs = parse_query(raw_query)

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)


def verify(req, credentials, nonces, now=None):
    """Authenticate ``req``; return the access key id. Raises :class:`AuthError`."""
    now = time.time() if now is None else now
    auth = req.header("authorization")
    query = dict(req.query_pairs)
    if auth and auth.startswith("ACS3-"):
        return _verify_acs3(req, auth, credentials, nonces, now)
    if auth and auth.startswith("acs "):
        return _verify_roa_v2(req, auth, credentials, nonces, now)
    if "Signature" in query or "AccessKeyId" in query:
        return _verify_rpc_v2(req, query, credentials, nonces, now)
    if auth:
        raise AuthError("IncompleteSignature", "The Authorization header is malformed or uses an unsupported algorithm.")
    raise AuthError("IncompleteSignature", "The request signature does not conform to Aliyun standards: "
                    "no Authorization header and no Signature parameter.")


def _verify_acs3(req, auth, credentials, nonces, now):
    m = _ACS3_RE.match(auth.strip())
    if not m:
        raise AuthError("IncompleteSignature", "The Authorization header is malformed (expected ACS3-HMAC-SHA256).")
    fields = {}
    for part in m.group(1).split(","):
        if "=" not in part:
            raise AuthError("IncompleteSignature", "The Authorization header is malformed.")
        k, v = part.split("=", 1)
        fields[k.strip()] = v.strip()
    for need in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(need):
            raise AuthError("IncompleteSignature", "The Authorization header lacks %s." % need)
    signed = fields["SignedHeaders"].split(";")
    for need in ("host", "x-acs-date", "x-acs-content-sha256"):
        if need not in signed:
            raise AuthError("IncompleteSignature", "The header %s must be signed." % need)
    if signed != sorted(signed) or any(h != h.lower() for h in signed):
        raise AuthError("IncompleteSignature", "SignedHeaders must be lower case and sorted.")
    secret, token = _lookup(credentials, fields["Credential"])
    _check_skew(_parse_acs_date(req.header("x-acs-date")), now)
    if token:
        if "x-acs-security-token" not in signed:
            if req.header("x-acs-security-token") is None:
                raise AuthError("MissingSecurityToken", "SecurityToken is mandatory for this access key (STS).")
            raise AuthError("IncompleteSignature", "The header x-acs-security-token must be signed.")
        _check_token(token, req.header("x-acs-security-token"))
    content_sha = req.header("x-acs-content-sha256")
    if content_sha != hashlib.sha256(req.body).hexdigest():
        raise AuthError("SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the request body.")
    lines = []
    for name in signed:
        values = req.header_lists.get(name)
        if values is None:
            raise AuthError("IncompleteSignature", "The signed header %s is missing from the request." % name)
        lines.append("%s:%s\n" % (name, ",".join(sorted(v.strip() for v in values))))
    canonical = "\n".join([
        req.method, req.raw_path or "/", canonical_query(req.query_pairs), "".join(lines), ";".join(signed), content_sha])
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    expected = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"].lower()):
        raise AuthError("SignatureDoesNotMatch",
                        "Specified signature does not match our calculation. server string to sign is:%s" % string_to_sign)
    nonce = req.header("x-acs-signature-nonce")
    if nonce and not nonces.check_and_add(nonce, now):
        raise AuthError("SignatureNonceUsed", "Specified signature nonce was used already.")
    return fields["Credential"]


def _verify_rpc_v2(req, query, credentials, nonces, now):
    for need in ("AccessKeyId", "Signature", "Timestamp", "SignatureNonce", "SignatureMethod"):
        if not query.get(need):
            raise AuthError("MissingParameter" if need != "Signature" else "IncompleteSignature",
                            "The input parameter \"%s\" that is mandatory for processing this request is not supplied." % need)
    if query["SignatureMethod"] != "HMAC-SHA1":
        raise AuthError("InvalidParameter", "SignatureMethod %s is not supported." % query["SignatureMethod"])
    secret, token = _lookup(credentials, query["AccessKeyId"])
    _check_skew(_parse_acs_date(query["Timestamp"]), now)
    _check_token(token, query.get("SecurityToken"))
    params = [(k, v) for k, v in req.query_pairs if k != "Signature"]
    ctype = req.header("content-type", "")
    if req.body and ctype.startswith("application/x-www-form-urlencoded"):
        params.extend(parse_query(req.body.decode("utf-8")))
    params.sort(key=lambda kv: kv[0])
    joined = "&".join("%s=%s" % (pe(k), pe(v)) for k, v in params)
    string_to_sign = "%s&%s&%s" % (req.method, pe("/"), pe(joined))
    expected = base64.b64encode(hmac.new((secret + "&").encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, query["Signature"]):
        raise AuthError("SignatureDoesNotMatch",
                        "Specified signature is not matched with our calculation. server string to sign is:%s" % string_to_sign)
    if not nonces.check_and_add(query["SignatureNonce"], now):
        raise AuthError("SignatureNonceUsed", "Specified signature nonce was used already.")
    return query["AccessKeyId"]


def _verify_roa_v2(req, auth, credentials, nonces, now):
    m = _ACS_ROA_RE.match(auth.strip())
    if not m:
        raise AuthError("IncompleteSignature", "The Authorization header is malformed (expected acs <AK>:<signature>).")
    access_key_id, signature = m.group(1), m.group(2)
    secret, token = _lookup(credentials, access_key_id)
    date = req.header("date")
    parsed = email.utils.parsedate_tz(date) if date else None
    if parsed is None:
        raise AuthError("InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
    _check_skew(email.utils.mktime_tz(parsed), now)
    _check_token(token, req.header("x-acs-security-token"))
    head = "%s\n%s\n%s\n%s\n%s\n" % (req.method, req.header("accept", ""), req.header("content-md5", ""),
                                     req.header("content-type", ""), date)
    acs = "".join("%s:%s\n" % (k, req.headers[k]) for k in sorted(h for h in req.headers if h.startswith("x-acs-")))
    resource = req.raw_path
    if req.query_pairs:
        resource += "?" + "&".join(k if v == "" else "%s=%s" % (k, v) for k, v in sorted(req.query_pairs, key=lambda kv: kv[0]))
    string_to_sign = head + acs + resource
    expected = base64.b64encode(hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        raise AuthError("SignatureDoesNotMatch", "Specified signature does not match our calculation.")
    nonce = req.header("x-acs-signature-nonce")
    if nonce and not nonces.check_and_add(nonce, now):
        raise AuthError("SignatureNonceUsed", "Specified signature nonce was used already.")
    return access_key_id
