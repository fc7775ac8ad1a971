"""Signature verification for the OSS emulator: V1 (``OSS ak:sig``) and V4 (``OSS4-HMAC-SHA256``).

Both the header forms and the presigned-URL forms (``bucket.sign_url``) are checked, the same way
oss2 2.19.1 computes them (see section 10.2/10.3 of the wire reference). The verifier returns the
access key id of an authenticated caller, ``None`` for an anonymous request, or raises ``OssError``
with the service's code.
"""

import base64
import calendar
import hashlib
import hmac
import time

from .oss_common import OssError, parse_http_date

MAX_SKEW = 15 * 60

# The query parameters oss2 treats as sub-resources (signed in V1); everything else is not signed.
SUBRESOURCES = frozenset("""
accessPoint accessPointPolicy acl append asyncFetch bucketArchiveDirectRead bucketInfo callback callback-var cname comp
continuation-token cors delete encryption endTime group httpsConfig inventory inventoryId lifecycle link live location
logging metaQuery objectInfo objectMeta partNumber policy position publicAccessBlock qos qosInfo qosRequester
redundancyTransition referer regionList replication replicationLocation replicationProgress requestPayment
requesterQosInfo resourceGroup resourcePool resourcePoolBuckets resourcePoolInfo response-cache-control
response-content-disposition response-content-encoding response-content-language response-content-type
response-expires restore security-token sequential startTime stat status style styleName symlink tagging
transferAcceleration uploadId uploads versionId versioning versions vod website worm wormExtend wormId
x-oss-ac-forward-allow x-oss-ac-source-ip x-oss-ac-subnet-mask x-oss-ac-vpc-id x-oss-access-point-name
x-oss-async-process x-oss-process x-oss-redundancy-transition-taskid x-oss-request-payer
x-oss-target-redundancy-type x-oss-traffic-limit x-oss-write-get-object-response
""".split())

_V4_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def v4_uri_encode(text, keep_slash):
    out = []
    for b in text.encode("utf-8"):
        if b in _V4_SAFE or (keep_slash and b == 0x2F):
            out.append(chr(b))
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def _hexbytes(data):
    return " ".join("%02X" % b for b in data) + " "


class SignatureVerifier:
    """Checks one request against the credential store."""

    def __init__(self, credentials, clock):
        self.credentials = credentials
        self.clock = clock

    # -- entry point -------------------------------------------------------------------------
    def verify(self, method, bucket, key, query, headers):
        """``query`` is a list of decoded ``(name, value)`` pairs; ``headers`` a list of ``(name, value)``."""
        hdr = {}
        for name, value in headers:
            hdr.setdefault(name.lower(), value)
        qdict = {}
        for name, value in query:
            qdict.setdefault(name, value)
        auth = hdr.get("authorization")
        if auth:
            if auth.startswith("OSS4-HMAC-SHA256 "):
                return self._verify_v4_header(method, bucket, key, query, hdr, auth)
            if auth.startswith("OSS "):
                return self._verify_v1_header(method, bucket, key, qdict, hdr, auth)
            if auth.startswith("OSS2 "):
                raise OssError(400, "InvalidArgument", "The V2 signature is not supported by this emulator; use V1 or V4.")
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.", [("Authorization", auth.split(" ", 1)[0])])
        if "OSSAccessKeyId" in qdict and "Signature" in qdict:
            return self._verify_v1_query(method, bucket, key, qdict, hdr)
        if "x-oss-signature" in qdict:
            return self._verify_v4_query(method, bucket, key, query, qdict, hdr)
        return None

    # -- helpers -----------------------------------------------------------------------------
    def _lookup(self, ak, token):
        found = self.credentials.lookup(ak)
        if found is None:
            raise OssError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.",
                           [("OSSAccessKeyId", ak)])
        secret, expected_token = found
        if expected_token and not token:
            raise OssError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.",
                           [("OSSAccessKeyId", ak)])
        if token and token != expected_token:
            raise OssError(403, "InvalidSecurityToken", "The security token you provided is invalid.", [("OSSAccessKeyId", ak)])
        return secret

    def _check_skew(self, request_ts, raw):
        now = self.clock.now()
        if request_ts is None:
            raise OssError(403, "AccessDenied", "OSS authentication requires a valid Date.", [("RequestTime", raw or "")])
        if abs(now - request_ts) > MAX_SKEW:
            raise OssError(403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.",
                           [("RequestTime", raw), ("ServerTime", time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))),
                            ("MaxAllowedSkewMilliseconds", str(MAX_SKEW * 1000))])

    # -- V1 ----------------------------------------------------------------------------------
    @staticmethod
    def _v1_string_to_sign(method, bucket, key, qdict, hdr, date):
        oss_headers = sorted((k, v) for k, v in hdr.items() if k.startswith("x-oss-"))
        headers_part = "".join("%s:%s\n" % (k, v) for k, v in oss_headers)
        if bucket:
            resource = "/%s/%s" % (bucket, key)
        else:
            resource = "/"
        sub = sorted((k, v) for k, v in qdict.items() if k in SUBRESOURCES)
        if sub:
            resource += "?" + "&".join(k + "=" + v if v else k for k, v in sub)
        return "\n".join([method, hdr.get("content-md5", ""), hdr.get("content-type", ""), date, headers_part + resource])

    def _v1_compare(self, ak, secret, provided, string_to_sign):
        expected = base64.b64encode(hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, provided):
            raise OssError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
                           [("OSSAccessKeyId", ak), ("SignatureProvided", provided), ("StringToSign", string_to_sign),
                            ("StringToSignBytes", _hexbytes(string_to_sign.encode("utf-8")))], ec="0002-00000040")

    def _verify_v1_header(self, method, bucket, key, qdict, hdr, auth):
        cred = auth[4:]
        if ":" not in cred:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        ak, provided = cred.rsplit(":", 1)
        secret = self._lookup(ak, hdr.get("x-oss-security-token"))
        date = hdr.get("x-oss-date") or hdr.get("date", "")
        self._check_skew(parse_http_date(date) if date else None, date)
        self._v1_compare(ak, secret, provided, self._v1_string_to_sign(method, bucket, key, qdict, hdr, date))
        return ak

    def _verify_v1_query(self, method, bucket, key, qdict, hdr):
        ak = qdict["OSSAccessKeyId"]
        secret = self._lookup(ak, qdict.get("security-token"))
        expires = qdict.get("Expires", "")
        try:
            expires_ts = int(expires)
        except ValueError:
            raise OssError(403, "AccessDenied", "Invalid argument: Expires.") from None
        if expires_ts < self.clock.now():
            raise OssError(403, "AccessDenied", "Request has expired.",
                           [("Expires", time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires_ts)))])
        self._v1_compare(ak, secret, qdict["Signature"], self._v1_string_to_sign(method, bucket, key, qdict, hdr, expires))
        return ak

    # -- V4 ----------------------------------------------------------------------------------
    @staticmethod
    def _signing_key(secret, day, region, product):
        k = hmac.new(("aliyun_v4" + secret).encode("utf-8"), day.encode(), hashlib.sha256).digest()
        k = hmac.new(k, region.encode("utf-8"), hashlib.sha256).digest()
        k = hmac.new(k, product.encode("utf-8"), hashlib.sha256).digest()
        return hmac.new(k, b"aliyun_v4_request", hashlib.sha256).digest()

    @staticmethod
    def _v4_canonical_request(method, bucket, key, query, hdr, additional, payload_hash, skip_query=()):
        uri = v4_uri_encode("/" + bucket + "/" + key if bucket else "/", True)
        pairs = sorted((v4_uri_encode(k, False), v4_uri_encode(v, False)) for k, v in query if k not in skip_query)
        canon_query = "&".join(k + "=" + v if v else k for k, v in pairs)
        signed = sorted((k, v) for k, v in hdr.items()
                        if k.startswith("x-oss-") or k in ("content-type", "content-md5") or k in additional)
        canon_headers = "".join("%s:%s\n" % (k, v) for k, v in signed)
        return "\n".join([method, uri, canon_query, canon_headers, ";".join(sorted(additional)), payload_hash])

    def _v4_check(self, ak, secret, provided, credential_parts, x_oss_date, canonical_request):
        day, region, product = credential_parts
        scope = "%s/%s/%s/aliyun_v4_request" % (day, region, product)
        string_to_sign = "OSS4-HMAC-SHA256\n%s\n%s\n%s" % (x_oss_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest())
        expected = hmac.new(self._signing_key(secret, day, region, product), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, provided):
            raise OssError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
                           [("OSSAccessKeyId", ak), ("SignatureProvided", provided), ("StringToSign", string_to_sign),
                            ("StringToSignBytes", _hexbytes(string_to_sign.encode("utf-8"))),
                            ("CanonicalRequest", canonical_request),
                            ("CanonicalRequestBytes", _hexbytes(canonical_request.encode("utf-8")))], ec="0002-00000201")

    @staticmethod
    def _parse_v4_date(value):
        try:
            return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ"))
        except (TypeError, ValueError):
            return None

    @staticmethod
    def _split_credential(credential):
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aliyun_v4_request" or not parts[0] or not parts[2]:
            raise OssError(400, "InvalidArgument", "Invalid credential in Authorization header.", [("Credential", credential)])
        if parts[3] not in ("oss", "oss-cloudbox"):
            raise OssError(400, "InvalidArgument", "Invalid signing product in Authorization header.", [("Credential", credential)])
        return parts[0], (parts[1], parts[2], parts[3])

    def _verify_v4_header(self, method, bucket, key, query, hdr, auth):
        fields = {}
        for item in auth[len("OSS4-HMAC-SHA256 "):].split(","):
            name, dummy_sep, value = item.strip().partition("=")
            fields[name] = value
        if "Credential" not in fields or "Signature" not in fields:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        ak, cred = self._split_credential(fields["Credential"])
        secret = self._lookup(ak, hdr.get("x-oss-security-token"))
        x_oss_date = hdr.get("x-oss-date", "")
        ts = self._parse_v4_date(x_oss_date)
        self._check_skew(ts, x_oss_date)
        if x_oss_date[:8] != cred[0]:
            raise OssError(400, "InvalidArgument", "Invalid signing date in Authorization header.", [("Credential", fields["Credential"])])
        additional = [h.strip().lower() for h in fields.get("AdditionalHeaders", "").split(";") if h.strip()]
        canonical = self._v4_canonical_request(method, bucket, key, query, hdr, additional,
                                               hdr.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"))
        self._v4_check(ak, secret, fields["Signature"], cred, x_oss_date, canonical)
        return ak

    def _verify_v4_query(self, method, bucket, key, query, qdict, hdr):
        if qdict.get("x-oss-signature-version") != "OSS4-HMAC-SHA256":
            raise OssError(400, "InvalidArgument", "Unsupported signature version.")
        ak, cred = self._split_credential(qdict.get("x-oss-credential", ""))
        secret = self._lookup(ak, qdict.get("x-oss-security-token"))
        x_oss_date = qdict.get("x-oss-date", "")
        ts = self._parse_v4_date(x_oss_date)
        if ts is None:
            raise OssError(403, "AccessDenied", "Invalid x-oss-date.")
        try:
            expires = int(qdict.get("x-oss-expires", ""))
        except ValueError:
            raise OssError(403, "AccessDenied", "Invalid argument: x-oss-expires.") from None
        if ts + expires < self.clock.now():
            raise OssError(403, "AccessDenied", "Request has expired.")
        additional = [h.strip().lower() for h in qdict.get("x-oss-additional-headers", "").split(";") if h.strip()]
        canonical = self._v4_canonical_request(method, bucket, key, query, hdr, additional, "UNSIGNED-PAYLOAD",
                                               skip_query=("x-oss-signature",))
        self._v4_check(ak, secret, qdict["x-oss-signature"], cred, x_oss_date, canonical)
        return ak
