"""OSS part of the local Alibaba Cloud emulator: a loopback HTTP server that the unmodified ``oss2``
client talks to as if it were the real Object Storage Service.

Entry point: :func:`make_oss_server` (used by ``python -m sandbox.alicloud serve`` and by the tests).

What it implements (path-style addressing, ``http://127.0.0.1:PORT/<bucket>/<key>``):

* signatures V1 and V4, header and presigned-URL forms, STS tokens (``x-oss-security-token``),
  clock-skew check (15 minutes);
* buckets: PutBucket, GetBucketInfo, GetBucketLocation, DeleteBucket, ListBuckets, Put/GetBucketAcl,
  Put/Get/DeleteBucketEncryption, Put/Get/DeleteBucketTags;
* objects: PutObject, CopyObject, GetObject (Range, If-Match and friends), HeadObject,
  GetObjectMeta, DeleteObject, DeleteMultipleObjects, ListObjects, ListObjectsV2, Put/GetObjectAcl;
* multipart: InitiateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
  ListParts, ListMultipartUploads;
* ``x-oss-hash-crc64ecma`` on every write and read, ETags as the service computes them, Content-MD5
  checks, ``x-oss-err`` on HEAD errors, the service's XML error documents;
* faults from ``FaultPlan.pick("oss", action)`` and one request-log line per request.

Fault mapping (OSS has no ``Throttling.User``; these are the codes its documentation lists):

* ``throttling`` -> 503 ``TotalQpsLimitExceeded`` ("Max total qps limit is exceeded");
* ``throttling_retry_after`` -> 429 ``QpsLimitExceeded`` ("Please reduce your request rate.") with a
  ``Retry-After: 1`` header (whether the real service sends that header is not verified);
* ``http500`` -> 500 ``InternalError``; ``http503`` -> 503 ``ServiceUnavailable``;
* ``drop`` -> the request body is read, nothing is executed, and the connection is closed without an
  answer (oss2 raises ``RequestError``);
* ``drop_after`` -> the request is executed (an UploadPart, PutObject or CompleteMultipartUpload takes
  effect), then the connection is closed instead of answering; the request log has the status that was
  never sent.

Anonymous requests: the object ACL, when it is not ``default``, takes precedence over the bucket ACL (a
``private`` object in a ``public-read`` bucket is refused, a ``public-read`` object in a ``private`` bucket
is readable).

Objects live on disk (see :mod:`sandbox.alicloud.oss_store`); bodies are streamed in 1 MiB chunks and
GET answers are sent with ``sendfile``.
"""

import base64
import bisect
import hashlib
import fcntl
import ipaddress
import mmap
import os
import socket
import socketserver
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

from .core import new_request_id
from .oss_auth import SUBRESOURCES, SignatureVerifier
from .oss_common import (OssError, error_xml, http_date, invalid_argument, iso8601, malformed_xml, no_such_key, parse_http_date,
                         url_encode_key, x)
from .oss_crc import crc64_combine, crc64_update
from .oss_store import OssStore

CHUNK = 1 << 20
DIRECT_ALIGN = 4096
USE_DIRECT = hasattr(os, "O_DIRECT") and os.environ.get("SANDBOX_OSS_NO_DIRECT_IO", "") == ""
MAX_XML_BODY = 2 << 20
MAX_OBJECT_SIZE = 5 << 30
MAX_DRAIN = 64 << 20
MIN_PART_SIZE = 100 << 10
MAX_BUCKET_TAGS = 20
MAX_DELETE_KEYS = 1000
OWNER_ID = "1688000000000001"
ACLS = ("private", "public-read", "public-read-write")
OBJECT_ACLS = ("default",) + ACLS
STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type", "response-content-language": "Content-Language",
    "response-expires": "Expires", "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition", "response-content-encoding": "Content-Encoding",
}
AUTH_QUERY = frozenset(["security-token", "OSSAccessKeyId", "Expires", "Signature", "x-oss-signature-version", "x-oss-credential",
                        "x-oss-date", "x-oss-expires", "x-oss-signature", "x-oss-additional-headers", "x-oss-security-token"])


def _check_bucket_tag(key, value):
    """PutBucketTags rules: key 1-64 bytes, not starting with http://, https://, Aliyun or acs (case-insensitive); value <= 128 bytes."""
    if not key or len(key.encode("utf-8")) > 64:
        raise OssError(400, "InvalidTag", "The tag key must be 1 to 64 bytes long.", [("TagKey", key[:80])], ec="0010-00000219")
    if key.lower().startswith(("http://", "https://", "aliyun", "acs")):
        raise OssError(400, "InvalidTag", "The tag key must not start with http://, https://, Aliyun or acs.", [("TagKey", key)],
                       ec="0010-00000207")
    if len(value.encode("utf-8")) > 128:
        raise OssError(400, "InvalidTag", "The tag value must be at most 128 bytes long.", [("TagKey", key)], ec="0010-00000219")


class _Drop(Exception):
    """Close the connection without answering."""


class _ClientGone(Exception):
    """The client went away in the middle of a request."""


class _Body:
    """The request body, with Content-Length or chunked transfer encoding."""

    def __init__(self, rfile, headers):
        self.rfile = rfile
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        self.remaining = 0 if self.chunked else int(headers.get("Content-Length") or 0)
        self.chunk_left = 0
        self.done = not self.chunked and self.remaining == 0
        self.length = None if self.chunked else self.remaining

    def _next_chunk(self):
        line = self.rfile.readline(65537)
        if not line:
            raise _ClientGone()
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise OssError(400, "InvalidArgument", "Malformed chunked request body.") from None
        if size == 0:
            while True:  # trailers up to the empty line
                trailer = self.rfile.readline(65537)
                if not trailer or trailer in (b"\r\n", b"\n"):
                    break
            self.done = True
        self.chunk_left = size

    def readinto(self, view):
        """Fill (part of) ``view``; return the number of bytes, 0 at the end of the body."""
        if self.done:
            return 0
        if self.chunked:
            if self.chunk_left == 0:
                self._next_chunk()
                if self.done:
                    return 0
            want = min(len(view), self.chunk_left)
        else:
            want = min(len(view), self.remaining)
        n = self.rfile.readinto(view[:want])
        if not n:
            raise _ClientGone()
        if self.chunked:
            self.chunk_left -= n
            if self.chunk_left == 0:
                self.rfile.readline(3)  # CRLF after the chunk data
        else:
            self.remaining -= n
            if self.remaining == 0:
                self.done = True
        return n

    def read_all(self, limit):
        out = bytearray()
        buf = bytearray(65536)
        view = memoryview(buf)
        while True:
            n = self.readinto(view)
            if not n:
                return bytes(out)
            out += view[:n]
            if len(out) > limit:
                self.drain()
                raise malformed_xml("The XML you provided is too large.")

    def drain(self):
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while self.readinto(view):
            pass


class _Request:
    def __init__(self, method, bucket, key, query, headers):
        self.method = method
        self.bucket = bucket
        self.key = key
        self.query = query                      # list of (name, value), decoded
        self.q = {}
        for k, v in query:
            self.q.setdefault(k, v)
        self.headers = headers                  # email.message.Message (case-insensitive get)

    def header(self, name, default=None):
        return self.headers.get(name, default)


def _open_for_write(path):
    """Open a new file for the body; return (fd, uses O_DIRECT)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if USE_DIRECT:
        try:
            return os.open(path, flags | os.O_DIRECT, 0o600), True
        except OSError:  # tmpfs and some other file systems refuse O_DIRECT
            pass
    return os.open(path, flags, 0o600), False


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quoted_etag(hex_upper):
    return '"%s"' % hex_upper


def _b64md5(digest):
    return base64.b64encode(digest).decode()


def _content_md5_check(req, digest):
    value = req.header("Content-MD5")
    if value is None:
        return
    if value.strip() != _b64md5(digest):
        raise OssError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.", [("Content-MD5", value)])


def _int_param(req, name, default, low, high):
    raw = req.q.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_argument("Argument %s must be an integer." % name, name, raw) from None
    if value < low or value > high:
        raise invalid_argument("Argument %s must be between %d and %d." % (name, low, high), name, raw)
    return value


def _parse_xml(body):
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise malformed_xml() from None


def _token_encode(text):
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode().rstrip("=")


def _token_decode(token):
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise invalid_argument("The continuation token provided is incorrect.", "continuation-token", token) from None


def _walk_listing(names, prefix, delimiter, after, max_items, item_key=lambda n: n):
    """Page through sorted ``names`` like the service: returns (items, common_prefixes, truncated, last)."""
    keys = [item_key(n) for n in names]
    if after:
        start = bisect.bisect_right(keys, after)
        if delimiter and after.endswith(delimiter) and after.startswith(prefix):
            while start < len(keys) and keys[start].startswith(after):
                start += 1
    else:
        start = bisect.bisect_left(keys, prefix)
    items, prefixes, last = [], [], None
    i, count = start, 0
    while i < len(keys):
        k = keys[i]
        if not k.startswith(prefix):
            if k > prefix:
                break
            i += 1
            continue
        if delimiter:
            pos = k.find(delimiter, len(prefix))
            if pos >= 0:
                common = k[:pos + len(delimiter)]
                if count >= max_items:
                    return items, prefixes, True, last
                prefixes.append(common)
                last = common
                count += 1
                while i < len(keys) and keys[i].startswith(common):
                    i += 1
                continue
        if count >= max_items:
            return items, prefixes, True, last
        items.append(names[i])
        last = k
        count += 1
        i += 1
    return items, prefixes, False, last


class OssHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AliyunOSS"
    sys_version = ""
    timeout = 300
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid the 40 ms delayed-ACK stall

    # quiet: the request log is the record
    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def oss(self):
        return self.server.oss

    def _host_id(self, bucket=None):
        host = "oss-%s.aliyuncs.com" % self.oss.region
        return "%s.%s" % (bucket, host) if bucket else host

    def _write_log(self):
        """One request-log line per request, written before the answer goes out (a client that reads the log
        right after its call then finds the line)."""
        if self._logged or self.oss.request_log is None:
            return
        self._logged = True
        self.oss.request_log.write("oss", self._action, self._mutating, self._status, self._code, self._request_id, self._fault)

    def _send(self, status, headers=None, body=b"", content_length=None):
        self._status = status
        self._write_log()
        if self._fault == "drop_after":
            raise _Drop()  # executed and logged: now hang up instead of answering
        self.send_response(status)
        self.send_header("x-oss-request-id", self._request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_length is None:
            content_length = len(body)
        if status != 304:
            self.send_header("Content-Length", str(content_length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_xml(self, text, status=200, headers=None):
        h = {"Content-Type": "application/xml"}
        h.update(headers or {})
        self._send(status, h, ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode("utf-8"))

    def _send_error(self, err, bucket=None):
        self._code = err.code
        body = error_xml(err, self._request_id, self._host_id(bucket))
        headers = {"Content-Type": "application/xml"}
        headers.update(err.headers)
        if err.ec:
            headers["x-oss-ec"] = err.ec
        if err.status == 304:
            self._send(304, {}, b"")
            return
        if self.command == "HEAD":
            headers["x-oss-err"] = base64.b64encode(body).decode()
            self._send(err.status, headers, b"", content_length=0)
        else:
            self._send(err.status, headers, body)

    def _dispatch(self):
        self._request_id = new_request_id()
        self._status = None
        self._code = None
        self._body = None
        self._logged = False
        self._action, self._mutating, self._fault = "Unknown", self.command not in ("GET", "HEAD"), None
        bucket = None
        try:
            self._body = _Body(self.rfile, self.headers)
            req = self._parse_request()
            bucket = req.bucket
            self._action, self._mutating, handler = self._route(req)
            self._fault = self.oss.faults.pick("oss", self._action) if self.oss.faults is not None else None
            if self._fault and self._fault != "drop_after":
                self._inject(self._fault)
            ak = self.oss.verifier.verify(req.method, req.bucket or "", req.key, req.query, list(self.headers.items()))
            self._authorize(req, ak, self._action, self._mutating)
            handler(req)
        except OssError as err:
            self._code = err.code
            try:
                if self._body is not None:
                    if not self._body.chunked and self._body.remaining > MAX_DRAIN:
                        self.close_connection = True  # answer without reading a huge body, then hang up
                        err.headers["Connection"] = "close"
                    else:
                        self._body.drain()
                self._send_error(err, bucket)
            except (_ClientGone, OSError, _Drop):
                self.close_connection = True
        except _Drop:
            self.close_connection = True
            if self._fault != "drop_after":
                self._status = None
        except (_ClientGone, ConnectionError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # pylint: disable=broad-except
            self._code = "InternalError"
            self.close_connection = True
            if self._status is None:
                try:
                    self._send_error(OssError(500, "InternalError", "We encountered an internal error. Please try again. (%s)" % type(exc).__name__))
                except (OSError, _Drop):
                    pass
        finally:
            self._write_log()

    def _inject(self, fault):
        if self._body is not None:
            self._body.drain()
        if fault == "drop":
            raise _Drop()
        if fault == "throttling":
            raise OssError(503, "TotalQpsLimitExceeded", "Max total qps limit is exceeded")
        if fault == "throttling_retry_after":
            raise OssError(429, "QpsLimitExceeded", "Please reduce your request rate.", headers={"Retry-After": "1"})
        if fault == "http500":
            raise OssError(500, "InternalError", "We encountered an internal error. Please try again.")
        raise OssError(503, "ServiceUnavailable", "Thread pool is almost full, please retry later")

    def _parse_request(self):
        raw_path, dummy_sep, raw_query = self.path.partition("?")
        if raw_path.startswith("http://") or raw_path.startswith("https://"):
            raw_path = "/" + raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else "/"
        query = parse_qsl(raw_query, keep_blank_values=True)
        path = raw_path[1:] if raw_path.startswith("/") else raw_path
        bucket_part, sep, key_part = path.partition("/")
        bucket = unquote(bucket_part) if bucket_part else None
        key = unquote(key_part) if sep else ""
        return _Request(self.command, bucket, key, query, self.headers)

    def _authorize(self, req, ak, action, mutating):
        if ak is not None:
            return
        # anonymous: only what the object ACL allows, or (when the object has none) the bucket ACL
        because = "bucket acl"
        if req.bucket:
            b = self.oss.store.buckets.get(req.bucket)
            if b is not None and req.key:
                acl = b.info.get("acl")
                meta = b.objects.get(req.key)
                if meta is not None and meta.get("acl", "default") != "default":
                    acl, because = meta["acl"], "object acl"
                if acl == "public-read-write" and action in ("GetObject", "HeadObject", "GetObjectMeta", "PutObject"):
                    return
                if acl == "public-read" and action in ("GetObject", "HeadObject", "GetObjectMeta"):
                    return
        raise OssError(403, "AccessDenied", "You have no right to access this object because of %s." % because)

    def _route(self, req):
        """Return (action, mutating, handler) for a request, or raise NotImplemented for unsupported calls."""
        m = req.method
        subs = {k for k, dummy_value in req.query if k in SUBRESOURCES and k not in AUTH_QUERY}

        def only(allowed, action, mutating, handler):
            extra = subs - set(allowed)
            if extra:
                raise OssError(501, "NotImplemented", "The emulator does not implement this operation (%s %s)." % (m, ",".join(sorted(extra))))
            return action, mutating, handler

        if req.bucket is None:
            if m == "GET":
                return only((), "ListBuckets", False, self.list_buckets)
            raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        if not req.key:
            if m == "PUT":
                if "acl" in subs:
                    return only(("acl",), "PutBucketAcl", True, self.put_bucket_acl)
                if "encryption" in subs:
                    return only(("encryption",), "PutBucketEncryption", True, self.put_bucket_encryption)
                if "tagging" in subs:
                    return only(("tagging",), "PutBucketTags", True, self.put_bucket_tags)
                return only((), "PutBucket", True, self.put_bucket)
            if m in ("GET", "HEAD"):
                if "bucketInfo" in subs:
                    return only(("bucketInfo",), "GetBucketInfo", False, self.get_bucket_info)
                if "acl" in subs:
                    return only(("acl",), "GetBucketAcl", False, self.get_bucket_acl)
                if "encryption" in subs:
                    return only(("encryption",), "GetBucketEncryption", False, self.get_bucket_encryption)
                if "tagging" in subs:
                    return only(("tagging",), "GetBucketTags", False, self.get_bucket_tags)
                if "location" in subs:
                    return only(("location",), "GetBucketLocation", False, self.get_bucket_location)
                if "uploads" in subs:
                    return only(("uploads",), "ListMultipartUploads", False, self.list_multipart_uploads)
                if req.q.get("list-type") == "2":
                    return only(("continuation-token",), "ListObjectsV2", False, self.list_objects_v2)
                return only((), "ListObjects", False, self.list_objects)
            if m == "DELETE":
                if "encryption" in subs:
                    return only(("encryption",), "DeleteBucketEncryption", True, self.delete_bucket_encryption)
                if "tagging" in subs:
                    return only(("tagging",), "DeleteBucketTags", True, self.delete_bucket_tags)
                return only((), "DeleteBucket", True, self.delete_bucket)
            if m == "POST" and "delete" in subs:
                return only(("delete",), "DeleteMultipleObjects", True, self.delete_multiple_objects)
            raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        if len(req.key.encode("utf-8")) > 1023:
            raise OssError(400, "InvalidObjectName", "The Length of Object name must be less than 1024.", [("ObjectName", req.key[:64])])
        if m == "PUT":
            if "uploadId" in subs or "partNumber" in subs:
                if req.header("x-oss-copy-source"):
                    return only(("uploadId", "partNumber"), "UploadPartCopy", True, self.not_implemented)
                return only(("uploadId", "partNumber"), "UploadPart", True, self.upload_part)
            if "acl" in subs:
                return only(("acl",), "PutObjectAcl", True, self.put_object_acl)
            if req.header("x-oss-copy-source"):
                return only((), "CopyObject", True, self.copy_object)
            return only((), "PutObject", True, self.put_object)
        if m == "GET":
            if "uploadId" in subs:
                return only(("uploadId",), "ListParts", False, self.list_parts)
            if "acl" in subs:
                return only(("acl",), "GetObjectAcl", False, self.get_object_acl)
            return only(tuple(RESPONSE_OVERRIDES), "GetObject", False, self.get_object)
        if m == "HEAD":
            if "objectMeta" in subs:
                return only(("objectMeta",), "GetObjectMeta", False, self.get_object_meta)
            return only(tuple(RESPONSE_OVERRIDES), "HeadObject", False, self.head_object)
        if m == "DELETE":
            if "uploadId" in subs:
                return only(("uploadId",), "AbortMultipartUpload", True, self.abort_multipart_upload)
            return only((), "DeleteObject", True, self.delete_object)
        if m == "POST":
            if "uploads" in subs:
                return only(("uploads",), "InitiateMultipartUpload", True, self.init_multipart_upload)
            if "uploadId" in subs:
                return only(("uploadId",), "CompleteMultipartUpload", True, self.complete_multipart_upload)
        raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    def not_implemented(self, req):
        raise OssError(501, "NotImplemented", "The emulator does not implement this operation (%s)." % req.method)

    def _receive(self, tmp_path):
        """Stream the body to ``tmp_path``; return (size, md5 digest, crc64).

        The file is written with O_DIRECT where the file system allows it (whole 1 MiB chunks from a
        page-aligned buffer; the unaligned tail after switching O_DIRECT off): on this kind of VM,
        filling fresh page-cache pages costs more CPU than the disk write itself.
        """
        md5 = hashlib.md5()
        crc = 0
        size = 0
        view = self.server.buffer()
        fd, direct = _open_for_write(tmp_path)
        try:
            while True:
                n = self._body.readinto(view)
                if not n:
                    break
                chunk = view[:n]
                md5.update(chunk)
                crc = crc64_update(crc, chunk)
                if direct and n % DIRECT_ALIGN:
                    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
                    direct = False
                written = 0
                while written < n:
                    written += os.write(fd, chunk[written:])
                size += n
                if size > MAX_OBJECT_SIZE:
                    raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
        except BaseException:
            os.close(fd)
            os.unlink(tmp_path)
            raise
        os.close(fd)
        return size, md5.digest(), crc

    def _object_headers_from_request(self, req):
        meta = {}
        for name, value in req.headers.items():
            lname = name.lower()
            if lname.startswith("x-oss-meta-"):
                meta[lname] = value
        stored = {h: req.header(h) for h in STORED_HEADERS if req.header(h) is not None}
        storage_class = req.header("x-oss-storage-class") or "Standard"
        if storage_class not in STORAGE_CLASSES:
            raise invalid_argument("Invalid storage class.", "x-oss-storage-class", storage_class)
        acl = req.header("x-oss-object-acl") or "default"
        if acl not in OBJECT_ACLS:
            raise invalid_argument("no such object access control exists", "x-oss-object-acl", acl)
        sse = req.header("x-oss-server-side-encryption")
        if sse is not None and sse not in ("AES256", "KMS", "SM4"):
            raise invalid_argument("The encryption method specified is not supported", "x-oss-server-side-encryption", sse)
        return {"content_type": req.header("Content-Type") or "application/octet-stream", "user_meta": meta, "headers": stored,
                "storage_class": storage_class, "acl": acl, "sse": sse, "sse_key_id": req.header("x-oss-server-side-encryption-key-id")}

    def _sse_headers(self, bucket_state, meta):
        algo = meta.get("sse")
        key_id = meta.get("sse_key_id")
        if not algo and bucket_state.info.get("sse"):
            algo = bucket_state.info["sse"]["algorithm"]
            key_id = bucket_state.info["sse"].get("kms_key_id")
        out = {}
        if algo:
            out["x-oss-server-side-encryption"] = algo
            if algo == "KMS" and key_id:
                out["x-oss-server-side-encryption-key-id"] = key_id
        return out

    # -- service / buckets ---------------------------------------------------------------------
    def list_buckets(self, req):
        prefix = req.q.get("prefix", "")
        marker = req.q.get("marker", "")
        max_keys = _int_param(req, "max-keys", 100, 1, 1000)
        names = sorted(n for n in self.oss.store.buckets if n.startswith(prefix) and n > marker)
        page, truncated = names[:max_keys], len(names) > max_keys
        rows = []
        for name in page:
            info = self.oss.store.buckets[name].info
            region = info.get("region") or self.oss.region
            rows.append("<Bucket><CreationDate>%s</CreationDate><ExtranetEndpoint>oss-%s.aliyuncs.com</ExtranetEndpoint>"
                        "<IntranetEndpoint>oss-%s-internal.aliyuncs.com</IntranetEndpoint><Location>oss-%s</Location>"
                        "<Name>%s</Name><Region>%s</Region><StorageClass>%s</StorageClass></Bucket>"
                        % (iso8601(info["created"]), region, region, region, x(name), region, x(info["storage_class"])))
        text = ("<ListAllMyBucketsResult><Prefix>%s</Prefix><Marker>%s</Marker><MaxKeys>%d</MaxKeys><IsTruncated>%s</IsTruncated>%s"
                "<Owner><ID>%s</ID><DisplayName>%s</DisplayName></Owner><Buckets>%s</Buckets></ListAllMyBucketsResult>"
                % (x(prefix), x(marker), max_keys, "true" if truncated else "false",
                   "<NextMarker>%s</NextMarker>" % x(page[-1]) if truncated else "", OWNER_ID, OWNER_ID, "".join(rows)))
        self._send_xml(text)

    def put_bucket(self, req):
        name = req.bucket
        if not (3 <= len(name) <= 63) or not all(c.islower() or c.isdigit() or c == "-" for c in name) \
                or name[0] == "-" or name[-1] == "-" or not name.isascii():
            raise OssError(400, "InvalidBucketName", "The specified bucket is not valid.", [("BucketName", name)])
        acl = req.header("x-oss-acl")
        if acl is not None and acl not in ACLS:
            raise invalid_argument("no such bucket access control exists", "x-oss-acl", acl)
        storage_class, redundancy = None, None
        body = self._body.read_all(MAX_XML_BODY)
        if body.strip():
            root = _parse_xml(body)
            if root.tag != "CreateBucketConfiguration":
                raise malformed_xml()
            storage_class = (root.findtext("StorageClass") or "").strip() or None
            redundancy = (root.findtext("DataRedundancyType") or "").strip() or None
            if storage_class is not None and storage_class not in STORAGE_CLASSES:
                raise invalid_argument("Invalid storage class.", "StorageClass", storage_class)
            if redundancy is not None and redundancy not in ("LRS", "ZRS"):
                raise invalid_argument("Invalid data redundancy type.", "DataRedundancyType", redundancy)
        self.oss.store.create_bucket(name, acl, storage_class, redundancy, self.oss.region)
        self._send(200, {"Location": "/" + name})

    def get_bucket_info(self, req):
        b = self.oss.store.bucket(req.bucket)
        info = b.info
        region = info.get("region") or self.oss.region
        sse = info.get("sse")
        if sse:
            sse_xml = "<ServerSideEncryptionRule><SSEAlgorithm>%s</SSEAlgorithm>%s%s</ServerSideEncryptionRule>" % (
                x(sse["algorithm"]),
                "<KMSMasterKeyID>%s</KMSMasterKeyID>" % x(sse["kms_key_id"]) if sse.get("kms_key_id") else "",
                "<KMSDataEncryption>%s</KMSDataEncryption>" % x(sse["kms_data_encryption"]) if sse.get("kms_data_encryption") else "")
        else:
            sse_xml = "<ServerSideEncryptionRule><SSEAlgorithm>None</SSEAlgorithm></ServerSideEncryptionRule>"
        text = ("<BucketInfo><Bucket><AccessMonitor>Disabled</AccessMonitor><CreationDate>%s</CreationDate>"
                "<CrossRegionReplication>Disabled</CrossRegionReplication><DataRedundancyType>%s</DataRedundancyType>"
                "<ExtranetEndpoint>oss-%s.aliyuncs.com</ExtranetEndpoint><IntranetEndpoint>oss-%s-internal.aliyuncs.com</IntranetEndpoint>"
                "<Location>oss-%s</Location><Name>%s</Name><ResourceGroupId>rg-acfmemulator</ResourceGroupId><StorageClass>%s</StorageClass>"
                "<TransferAcceleration>Disabled</TransferAcceleration><Owner><DisplayName>%s</DisplayName><ID>%s</ID></Owner>"
                "<AccessControlList><Grant>%s</Grant></AccessControlList><Comment></Comment><Versioning>Disabled</Versioning>%s"
                "</Bucket></BucketInfo>"
                % (iso8601(info["created"]), x(info["redundancy"]), region, region, region, x(info["name"]), x(info["storage_class"]),
                   OWNER_ID, OWNER_ID, x(info["acl"]), sse_xml))
        self._send_xml(text)

    def get_bucket_location(self, req):
        b = self.oss.store.bucket(req.bucket)
        self._send_xml("<LocationConstraint>oss-%s</LocationConstraint>" % (b.info.get("region") or self.oss.region))

    def put_bucket_acl(self, req):
        acl = req.header("x-oss-acl")
        if acl not in ACLS:
            raise invalid_argument("no such bucket access control exists", "x-oss-acl", acl)
        self._body.drain()
        self.oss.store.update_bucket(req.bucket, acl=acl)
        self._send(200)

    def get_bucket_acl(self, req):
        b = self.oss.store.bucket(req.bucket)
        self._send_xml("<AccessControlPolicy><Owner><ID>%s</ID><DisplayName>%s</DisplayName></Owner>"
                       "<AccessControlList><Grant>%s</Grant></AccessControlList></AccessControlPolicy>" % (OWNER_ID, OWNER_ID, x(b.info["acl"])))

    def put_bucket_encryption(self, req):
        self.oss.store.bucket(req.bucket)
        root = _parse_xml(self._body.read_all(MAX_XML_BODY))
        apply_node = root.find("ApplyServerSideEncryptionByDefault")
        if root.tag != "ServerSideEncryptionRule" or apply_node is None:
            raise malformed_xml()
        algorithm = (apply_node.findtext("SSEAlgorithm") or "").strip()
        if algorithm not in ("AES256", "KMS", "SM4"):
            raise invalid_argument("The encryption method specified is not supported", "SSEAlgorithm", algorithm)
        key_id = (apply_node.findtext("KMSMasterKeyID") or "").strip() or None
        if key_id and algorithm != "KMS":
            raise invalid_argument("KMSMasterKeyID is not applicable if the default sse algorithm is not KMS.", "KMSMasterKeyID", key_id)
        data_enc = (apply_node.findtext("KMSDataEncryption") or "").strip() or None
        self.oss.store.update_bucket(req.bucket, sse={"algorithm": algorithm, "kms_key_id": key_id, "kms_data_encryption": data_enc})
        self._send(200)

    def get_bucket_encryption(self, req):
        b = self.oss.store.bucket(req.bucket)
        sse = b.info.get("sse")
        if not sse:
            raise OssError(404, "NoSuchServerSideEncryptionRule", "The server side encryption configuration was not found",
                           [("BucketName", req.bucket)])
        inner = "<SSEAlgorithm>%s</SSEAlgorithm>" % x(sse["algorithm"])
        if sse.get("kms_key_id"):
            inner += "<KMSMasterKeyID>%s</KMSMasterKeyID>" % x(sse["kms_key_id"])
        if sse.get("kms_data_encryption"):
            inner += "<KMSDataEncryption>%s</KMSDataEncryption>" % x(sse["kms_data_encryption"])
        self._send_xml("<ServerSideEncryptionRule><ApplyServerSideEncryptionByDefault>%s</ApplyServerSideEncryptionByDefault>"
                       "</ServerSideEncryptionRule>" % inner)

    def delete_bucket_encryption(self, req):
        self.oss.store.update_bucket(req.bucket, sse=None)
        self._send(204)

    def put_bucket_tags(self, req):
        self.oss.store.bucket(req.bucket)
        root = _parse_xml(self._body.read_all(MAX_XML_BODY))
        tag_set = root.find("TagSet")
        if root.tag != "Tagging" or tag_set is None:
            raise malformed_xml()
        tags = []
        for node in tag_set.findall("Tag"):
            key = node.findtext("Key") or ""
            value = node.findtext("Value") or ""
            _check_bucket_tag(key, value)
            if key in [k for k, dummy in tags]:
                raise OssError(400, "InvalidTag", "The tag key %s appears more than once." % key, [("TagKey", key)], ec="0010-00000219")
            tags.append((key, value))
        if len(tags) > MAX_BUCKET_TAGS:
            raise OssError(400, "InvalidTag", "A bucket can have at most %d tags." % MAX_BUCKET_TAGS, ec="0010-00000219")
        self.oss.store.update_bucket(req.bucket, tags=[list(t) for t in tags])  # PutBucketTags replaces every tag
        self._send(200)

    def get_bucket_tags(self, req):
        b = self.oss.store.bucket(req.bucket)
        rows = "".join("<Tag><Key>%s</Key><Value>%s</Value></Tag>" % (x(k), x(v)) for k, v in b.info.get("tags") or [])
        self._send_xml("<Tagging><TagSet>%s</TagSet></Tagging>" % rows)

    def delete_bucket_tags(self, req):
        b = self.oss.store.bucket(req.bucket)
        self._body.drain()
        only_keys = [k for k in req.q.get("tagging", "").split(",") if k]
        kept = [t for t in b.info.get("tags") or [] if only_keys and t[0] not in only_keys]
        self.oss.store.update_bucket(req.bucket, tags=kept)
        self._send(204)

    def delete_bucket(self, req):
        self.oss.store.delete_bucket(req.bucket)
        self._send(204)

    # -- listings ------------------------------------------------------------------------------
    def _contents_xml(self, meta, url_enc, with_owner):
        owner = "<Owner><ID>%s</ID><DisplayName>%s</DisplayName></Owner>" % (OWNER_ID, OWNER_ID) if with_owner else ""
        return ("<Contents><Key>%s</Key><LastModified>%s</LastModified><ETag>%s</ETag><Type>%s</Type><Size>%d</Size>"
                "<StorageClass>%s</StorageClass>%s</Contents>"
                % (x(url_encode_key(meta["key"], url_enc)), iso8601(meta["last_modified"]), x(_quoted_etag(meta["etag"])),
                   meta["object_type"], meta["size"], x(meta["storage_class"]), owner))

    def _listing_params(self, req):
        url_enc = req.q.get("encoding-type", "") == "url"
        if req.q.get("encoding-type", "") not in ("", "url"):
            raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", req.q["encoding-type"])
        delimiter = req.q.get("delimiter", "")
        return req.q.get("prefix", ""), delimiter, _int_param(req, "max-keys", 100, 0, 1000), url_enc

    def list_objects(self, req):
        prefix, delimiter, max_keys, url_enc = self._listing_params(req)
        marker = req.q.get("marker", "")
        keys, objects = self.oss.store.sorted_keys(req.bucket)
        items, prefixes, truncated, last = _walk_listing(keys, prefix, delimiter, marker, max_keys)
        parts = ["<ListBucketResult><Name>%s</Name><Prefix>%s</Prefix><Marker>%s</Marker><MaxKeys>%d</MaxKeys>"
                 "<Delimiter>%s</Delimiter>" % (x(req.bucket), x(url_encode_key(prefix, url_enc)), x(url_encode_key(marker, url_enc)),
                                                max_keys, x(url_encode_key(delimiter, url_enc)))]
        if url_enc:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append("<IsTruncated>%s</IsTruncated>" % ("true" if truncated else "false"))
        if truncated:
            parts.append("<NextMarker>%s</NextMarker>" % x(url_encode_key(last, url_enc)))
        parts.extend(self._contents_xml(objects[k], url_enc, True) for k in items)
        parts.extend("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % x(url_encode_key(p, url_enc)) for p in prefixes)
        parts.append("</ListBucketResult>")
        self._send_xml("".join(parts))

    def list_objects_v2(self, req):
        prefix, delimiter, max_keys, url_enc = self._listing_params(req)
        token = req.q.get("continuation-token", "")
        start_after = req.q.get("start-after", "")
        after = _token_decode(token) if token else start_after
        if token and start_after and start_after > after:
            after = start_after
        with_owner = req.q.get("fetch-owner", "false").lower() == "true"
        keys, objects = self.oss.store.sorted_keys(req.bucket)
        items, prefixes, truncated, last = _walk_listing(keys, prefix, delimiter, after, max_keys)
        parts = ["<ListBucketResult><Name>%s</Name><Prefix>%s</Prefix>" % (x(req.bucket), x(url_encode_key(prefix, url_enc)))]
        if start_after:
            parts.append("<StartAfter>%s</StartAfter>" % x(url_encode_key(start_after, url_enc)))
        if token:
            parts.append("<ContinuationToken>%s</ContinuationToken>" % x(token))
        parts.append("<MaxKeys>%d</MaxKeys><Delimiter>%s</Delimiter>" % (max_keys, x(url_encode_key(delimiter, url_enc))))
        if url_enc:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append("<IsTruncated>%s</IsTruncated>" % ("true" if truncated else "false"))
        if truncated:
            parts.append("<NextContinuationToken>%s</NextContinuationToken>" % _token_encode(last))
        parts.append("<KeyCount>%d</KeyCount>" % (len(items) + len(prefixes)))
        parts.extend(self._contents_xml(objects[k], url_enc, with_owner) for k in items)
        parts.extend("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % x(url_encode_key(p, url_enc)) for p in prefixes)
        parts.append("</ListBucketResult>")
        self._send_xml("".join(parts))

    def list_multipart_uploads(self, req):
        prefix, delimiter, dummy_max, url_enc = self._listing_params(req)
        max_uploads = _int_param(req, "max-uploads", 1000, 1, 1000)
        key_marker = req.q.get("key-marker", "")
        id_marker = req.q.get("upload-id-marker", "")
        uploads = [u for u in self.oss.store.list_uploads(req.bucket)
                   if u[0] > key_marker or (u[0] == key_marker and id_marker and u[1] > id_marker) or not key_marker]
        rows, prefixes, truncated = [], [], False
        next_key, next_id = "", ""
        i = 0
        while i < len(uploads):
            key, upload_id, initiated = uploads[i]
            if not key.startswith(prefix):
                i += 1
                continue
            if delimiter and key.find(delimiter, len(prefix)) >= 0:
                common = key[:key.find(delimiter, len(prefix)) + len(delimiter)]
                if len(rows) + len(prefixes) >= max_uploads:
                    truncated = True
                    break
                prefixes.append(common)
                next_key, next_id = common, ""
                while i < len(uploads) and uploads[i][0].startswith(common):
                    i += 1
                continue
            if len(rows) + len(prefixes) >= max_uploads:
                truncated = True
                break
            rows.append("<Upload><Key>%s</Key><UploadId>%s</UploadId><StorageClass>Standard</StorageClass><Initiated>%s</Initiated></Upload>"
                        % (x(url_encode_key(key, url_enc)), x(upload_id), iso8601(initiated)))
            next_key, next_id = key, upload_id
            i += 1
        if not truncated:
            next_key, next_id = "", ""
        text = ("<ListMultipartUploadsResult><Bucket>%s</Bucket>%s<KeyMarker>%s</KeyMarker><UploadIdMarker>%s</UploadIdMarker>"
                "<NextKeyMarker>%s</NextKeyMarker><NextUploadIdMarker>%s</NextUploadIdMarker><Delimiter>%s</Delimiter><Prefix>%s</Prefix>"
                "<MaxUploads>%d</MaxUploads><IsTruncated>%s</IsTruncated>%s%s</ListMultipartUploadsResult>"
                % (x(req.bucket), "<EncodingType>url</EncodingType>" if url_enc else "", x(url_encode_key(key_marker, url_enc)), x(id_marker),
                   x(url_encode_key(next_key, url_enc)), x(next_id), x(url_encode_key(delimiter, url_enc)), x(url_encode_key(prefix, url_enc)),
                   max_uploads, "true" if truncated else "false", "".join(rows),
                   "".join("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % x(url_encode_key(p, url_enc)) for p in prefixes)))
        self._send_xml(text)

    # -- objects -------------------------------------------------------------------------------
    def _check_length(self):
        if self._body.length is not None and self._body.length > MAX_OBJECT_SIZE:
            raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.",
                           [("MaxSizeAllowed", str(MAX_OBJECT_SIZE)), ("ProposedSize", str(self._body.length))])

    def put_object(self, req):
        self._check_length()
        self.oss.store.bucket(req.bucket)
        fields = self._object_headers_from_request(req)
        tmp = self.oss.store.new_tmp_path(req.bucket)
        size, digest, crc = self._receive(tmp)
        try:
            _content_md5_check(req, digest)
        except OssError:
            os.unlink(tmp)
            raise
        meta = dict(fields, key=req.key, size=size, etag=digest.hex().upper(), crc64=crc, content_md5=_b64md5(digest),
                    last_modified=time.time(), object_type="Normal")
        forbid = (req.header("x-oss-forbid-overwrite") or "").lower() == "true"
        b = self.oss.store.bucket(req.bucket)
        self.oss.store.put_object(req.bucket, meta, tmp, forbid_overwrite=forbid)
        headers = {"ETag": _quoted_etag(meta["etag"]), "x-oss-hash-crc64ecma": str(crc), "Content-MD5": meta["content_md5"]}
        headers.update(self._sse_headers(b, meta))
        self._send(200, headers)

    def copy_object(self, req):
        self._body.drain()
        source = req.header("x-oss-copy-source")
        src = unquote(source.split("?", 1)[0])
        if src.startswith("/"):
            src = src[1:]
        src_bucket, dummy_sep, src_key = src.partition("/")
        if not src_key:
            raise invalid_argument("Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.", "x-oss-copy-source", source)
        directive = (req.header("x-oss-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise invalid_argument("Unknown metadata directive.", "x-oss-metadata-directive", directive)
        fields = self._object_headers_from_request(req) if directive == "REPLACE" else None
        self._check_conditions(req, None, src_bucket, src_key, prefix="x-oss-copy-source-")

        def build(src_meta):
            meta = dict(src_meta, key=req.key, last_modified=time.time())
            if fields is not None:
                meta.update(fields)
            return meta

        forbid = (req.header("x-oss-forbid-overwrite") or "").lower() == "true"
        meta = self.oss.store.copy_object(src_bucket, src_key, req.bucket, build, forbid_overwrite=forbid)
        self._send_xml("<CopyObjectResult><ETag>%s</ETag><LastModified>%s</LastModified></CopyObjectResult>"
                       % (x(_quoted_etag(meta["etag"])), iso8601(meta["last_modified"])),
                       headers={"ETag": _quoted_etag(meta["etag"]), "x-oss-hash-crc64ecma": str(meta["crc64"])})

    def _check_conditions(self, req, meta, bucket=None, key=None, prefix=""):
        """If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since (or the copy-source forms)."""
        names = [prefix + n for n in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")]
        if not any(req.header(n) for n in names):
            return
        if meta is None:
            meta = self.oss.store.get_object(bucket, key)[1]
        etag = meta["etag"]
        lm = int(meta["last_modified"])
        if_match, if_none, if_mod, if_unmod = (req.header(n) for n in names)
        if if_match is not None and if_match.strip().strip('"').upper() != etag and if_match.strip() != "*":
            raise OssError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.",
                           [("Condition", "If-Match")])
        if if_unmod is not None:
            ts = parse_http_date(if_unmod)
            if ts is not None and lm > ts:
                raise OssError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.",
                               [("Condition", "If-Unmodified-Since")])
        if if_none is not None and (if_none.strip().strip('"').upper() == etag or if_none.strip() == "*"):
            raise OssError(304, "NotModified", "")
        if if_mod is not None:
            ts = parse_http_date(if_mod)
            if ts is not None and lm <= ts:
                raise OssError(304, "NotModified", "")

    def _object_response_headers(self, b, meta, req):
        headers = {
            "Content-Type": meta["content_type"],
            "ETag": _quoted_etag(meta["etag"]),
            "Last-Modified": http_date(meta["last_modified"]),
            "Accept-Ranges": "bytes",
            "x-oss-object-type": meta["object_type"],
            "x-oss-storage-class": meta["storage_class"],
            "x-oss-hash-crc64ecma": str(meta["crc64"]),
        }
        if meta.get("content_md5"):
            headers["Content-MD5"] = meta["content_md5"]
        for name, value in meta.get("headers", {}).items():
            headers[name.title()] = value
        for name, value in meta.get("user_meta", {}).items():
            headers[name] = value
        headers.update(self._sse_headers(b, meta))
        for param, header in RESPONSE_OVERRIDES.items():
            if param in req.q:
                headers[header] = req.q[param]
        return headers

    def _parse_range(self, req, size):
        value = req.header("Range")
        if not value:
            return None
        standard = (req.header("x-oss-range-behavior") or "").lower() == "standard"
        spec = value.strip()
        start = end = None
        if spec.startswith("bytes=") and "," not in spec:
            first, dummy_sep, last = spec[6:].strip().partition("-")
            try:
                if first == "" and last != "":
                    n = int(last)
                    if n > 0:
                        start, end = max(0, size - n), size - 1
                elif first != "":
                    start = int(first)
                    end = int(last) if last != "" else size - 1
                    if end >= size:
                        end = size - 1 if standard or last == "" else None
            except ValueError:
                start = end = None
        if start is None or end is None or start > end or start >= size:
            if standard:
                raise OssError(416, "InvalidRange", "The requested range cannot be satisfied",
                               [("RangeRequested", value), ("ActualObjectSize", str(size))])
            return None  # the service ignores an invalid range and answers 200 with the whole object
        return start, end

    def get_object(self, req):
        b, meta = self.oss.store.get_object(req.bucket, req.key)
        self._check_conditions(req, meta)
        headers = self._object_response_headers(b, meta, req)
        size = meta["size"]
        rng = self._parse_range(req, size)
        status, start, length = 200, 0, size
        if rng is not None:
            status, start, length = 206, rng[0], rng[1] - rng[0] + 1
            headers["Content-Range"] = "bytes %d-%d/%d" % (rng[0], rng[1], size)
        segments = self.oss.store.segment_paths(b, meta)
        files = []
        try:
            # open the segments first so that an overwrite running now cannot pull them away mid-answer
            offset = 0
            for path, seg_size in segments:
                if offset + seg_size > start and offset < start + length:
                    files.append((open(path, "rb"), offset, seg_size))  # pylint: disable=consider-using-with
                offset += seg_size
        except FileNotFoundError:
            for f, dummy_start, dummy_size in files:
                f.close()
            raise no_such_key(req.key) from None
        try:
            self._send(status, headers, b"", content_length=length)
            pos, remaining = start, length
            for f, seg_start, seg_size in files:
                inner = pos - seg_start
                count = min(seg_size - inner, remaining)
                if count > 0:
                    self.connection.sendfile(f, inner, count)
                    pos += count
                    remaining -= count
        except OSError:
            self.close_connection = True
            raise _ClientGone() from None
        finally:
            for f, dummy_start, dummy_size in files:
                f.close()

    def head_object(self, req):
        b, meta = self.oss.store.get_object(req.bucket, req.key)
        self._check_conditions(req, meta)
        self._send(200, self._object_response_headers(b, meta, req), b"", content_length=meta["size"])

    def get_object_meta(self, req):
        meta = self.oss.store.get_object(req.bucket, req.key)[1]
        headers = {"ETag": _quoted_etag(meta["etag"]), "Last-Modified": http_date(meta["last_modified"]),
                   "x-oss-hash-crc64ecma": str(meta["crc64"]), "x-oss-last-access-time": http_date(meta["last_modified"])}
        self._send(200, headers, b"", content_length=meta["size"])

    def put_object_acl(self, req):
        acl = req.header("x-oss-object-acl")
        if acl not in OBJECT_ACLS:
            raise invalid_argument("no such object access control exists", "x-oss-object-acl", acl)
        self._body.drain()
        self.oss.store.update_object(req.bucket, req.key, acl=acl)
        self._send(200)

    def get_object_acl(self, req):
        meta = self.oss.store.get_object(req.bucket, req.key)[1]
        self._send_xml("<AccessControlPolicy><Owner><ID>%s</ID><DisplayName>%s</DisplayName></Owner>"
                       "<AccessControlList><Grant>%s</Grant></AccessControlList></AccessControlPolicy>"
                       % (OWNER_ID, OWNER_ID, x(meta.get("acl", "default"))))

    def delete_object(self, req):
        self.oss.store.delete_object(req.bucket, req.key)
        self._send(204)

    def delete_multiple_objects(self, req):
        self.oss.store.bucket(req.bucket)
        body = self._body.read_all(MAX_XML_BODY)
        if req.header("Content-MD5") is None:
            raise OssError(400, "MissingArgument", "Missing Some Required Arguments.", [("ArgumentName", "Content-MD5")], ec="0016-00000606")
        _content_md5_check(req, hashlib.md5(body).digest())
        root = _parse_xml(body)
        if root.tag != "Delete":
            raise malformed_xml()
        quiet = (root.findtext("Quiet") or "false").strip().lower() == "true"
        keys = [o.findtext("Key") for o in root.findall("Object")]
        if len(keys) > MAX_DELETE_KEYS:  # nothing is deleted (documented: MalformedXML, EC 0016-00000609)
            raise malformed_xml(ec="0016-00000609")
        if not keys or any(k is None or k == "" for k in keys):
            raise malformed_xml()
        url_enc = req.q.get("encoding-type", "") == "url"
        for key in keys:
            self.oss.store.delete_object(req.bucket, key)
        rows = "" if quiet else "".join("<Deleted><Key>%s</Key></Deleted>" % x(url_encode_key(k, url_enc)) for k in keys)
        self._send_xml("<DeleteResult>%s%s</DeleteResult>" % ("<EncodingType>url</EncodingType>" if url_enc else "", rows))

    # -- multipart -----------------------------------------------------------------------------
    def init_multipart_upload(self, req):
        self._body.drain()
        fields = self._object_headers_from_request(req)
        upload = self.oss.store.init_upload(req.bucket, req.key, fields)
        url_enc = req.q.get("encoding-type", "") == "url"
        self._send_xml("<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId>%s"
                       "</InitiateMultipartUploadResult>" % (x(req.bucket), x(url_encode_key(req.key, url_enc)), upload["upload_id"],
                                                             "<EncodingType>url</EncodingType>" if url_enc else ""))

    def upload_part(self, req):
        upload_id = req.q.get("uploadId", "")
        raw = req.q.get("partNumber", "")
        try:
            number = int(raw)
        except ValueError:
            number = 0
        if not 1 <= number <= 10000:
            raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive.", "partNumber", raw)
        self._check_length()
        b = self.oss.store.get_upload(req.bucket, req.key, upload_id)[0]
        tmp = self.oss.store.new_tmp_path(req.bucket)
        size, digest, crc = self._receive(tmp)
        try:
            _content_md5_check(req, digest)
        except OssError:
            os.unlink(tmp)
            raise
        part = {"number": number, "size": size, "etag": digest.hex().upper(), "crc64": crc, "md5": digest.hex(),
                "last_modified": time.time()}
        self.oss.store.put_part(req.bucket, req.key, upload_id, part, tmp)
        headers = {"ETag": _quoted_etag(part["etag"]), "x-oss-hash-crc64ecma": str(crc), "Content-MD5": _b64md5(digest)}
        headers.update(self._sse_headers(b, {}))
        self._send(200, headers)

    def complete_multipart_upload(self, req):
        upload_id = req.q.get("uploadId", "")
        body = self._body.read_all(MAX_XML_BODY)
        b, upload = self.oss.store.get_upload(req.bucket, req.key, upload_id)
        parts = self.oss.store.list_parts(req.bucket, req.key, upload_id)
        by_number = {p["number"]: p for p in parts}
        complete_all = (req.header("x-oss-complete-all") or "").lower() == "yes"
        if complete_all:
            if body.strip():
                raise invalid_argument("Should not specify both complete all header and http body.", "x-oss-complete-all", "yes")
            chosen = parts
        else:
            root = _parse_xml(body)
            if root.tag != "CompleteMultipartUpload":
                raise malformed_xml()
            chosen = []
            previous = 0
            for node in root.findall("Part"):
                try:
                    number = int((node.findtext("PartNumber") or "").strip())
                except ValueError:
                    raise malformed_xml() from None
                etag = (node.findtext("ETag") or "").strip().strip('"').upper()
                if number <= previous:
                    raise OssError(400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts list must specified in order "
                                   "by part number.", [("UploadId", upload_id)])
                previous = number
                part = by_number.get(number)
                if part is None or part["etag"] != etag:
                    raise OssError(400, "InvalidPart", "One or more of the specified parts could not be found or the specified entity "
                                   "tag might not have matched the part's entity tag.",
                                   [("UploadId", upload_id), ("PartNumber", str(number)), ("ETag", etag)])
                chosen.append(part)
        if not chosen:
            raise malformed_xml("The XML you provided was not well-formed or did not validate against our published schema.")
        for part in chosen[:-1]:
            if part["size"] < MIN_PART_SIZE:
                raise OssError(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size.",
                               [("MinSizeAllowed", str(MIN_PART_SIZE)), ("ProposedSize", str(part["size"])), ("PartNumber", str(part["number"]))])
        crc, size = 0, 0
        md5s = hashlib.md5()
        for part in chosen:
            crc = crc64_combine(crc, part["crc64"], part["size"])
            size += part["size"]
            md5s.update(bytes.fromhex(part["md5"]))
        etag = "%s-%d" % (md5s.hexdigest().upper(), len(chosen))
        meta = dict(upload["meta"], key=req.key, size=size, etag=etag, crc64=crc, content_md5=None, last_modified=time.time(),
                    object_type="Multipart")
        self.oss.store.complete_upload(req.bucket, req.key, upload_id, chosen, meta)
        url_enc = req.q.get("encoding-type", "") == "url"
        headers = {"ETag": _quoted_etag(etag), "x-oss-hash-crc64ecma": str(crc)}
        headers.update(self._sse_headers(b, meta))
        self._send_xml("<CompleteMultipartUploadResult>%s<Location>http://%s.oss-%s.aliyuncs.com/%s</Location><Bucket>%s</Bucket>"
                       "<Key>%s</Key><ETag>%s</ETag></CompleteMultipartUploadResult>"
                       % ("<EncodingType>url</EncodingType>" if url_enc else "", x(req.bucket), self.oss.region,
                          x(url_encode_key(req.key, True)), x(req.bucket), x(url_encode_key(req.key, url_enc)), x(_quoted_etag(etag))),
                       headers=headers)

    def abort_multipart_upload(self, req):
        self.oss.store.abort_upload(req.bucket, req.key, req.q.get("uploadId", ""))
        self._send(204)

    def list_parts(self, req):
        upload_id = req.q.get("uploadId", "")
        marker = _int_param(req, "part-number-marker", 0, 0, 10000)
        max_parts = _int_param(req, "max-parts", 1000, 1, 1000)
        parts = [p for p in self.oss.store.list_parts(req.bucket, req.key, upload_id) if p["number"] > marker]
        page, truncated = parts[:max_parts], len(parts) > max_parts
        next_marker = page[-1]["number"] if page else 0
        url_enc = req.q.get("encoding-type", "") == "url"
        rows = "".join("<Part><PartNumber>%d</PartNumber><LastModified>%s</LastModified><ETag>%s</ETag><HashCrc64ecma>%d</HashCrc64ecma>"
                       "<Size>%d</Size></Part>" % (p["number"], iso8601(p["last_modified"]), x(_quoted_etag(p["etag"])), p["crc64"], p["size"])
                       for p in page)
        self._send_xml("<ListPartsResult>%s<Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId><StorageClass>Standard</StorageClass>"
                       "<PartNumberMarker>%d</PartNumberMarker><NextPartNumberMarker>%d</NextPartNumberMarker><MaxParts>%d</MaxParts>"
                       "<IsTruncated>%s</IsTruncated>%s</ListPartsResult>"
                       % ("<EncodingType>url</EncodingType>" if url_enc else "", x(req.bucket), x(url_encode_key(req.key, url_enc)),
                          x(upload_id), marker, next_marker, max_parts, "true" if truncated else "false", rows))


class _OssContext:
    def __init__(self, store, verifier, faults, request_log, region):
        self.store = store
        self.verifier = verifier
        self.faults = faults
        self.request_log = request_log
        self.region = region


class OssHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server that also closes its open keep-alive connections on ``server_close``."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address, oss_context):
        self.oss = oss_context
        self._conns = set()
        self._conns_lock = threading.Lock()
        self._local = threading.local()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, OssHandler)

    def buffer(self):
        """A per-thread, page-aligned 1 MiB receive buffer (a memoryview of an anonymous mmap)."""
        view = getattr(self._local, "view", None)
        if view is None:
            view = self._local.view = memoryview(mmap.mmap(-1, CHUNK))
        return view

    def server_bind(self):
        """Bind without HTTPServer's reverse DNS lookup of the address (slow or hanging without a resolver)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        """Peers that reset or time out an idle keep-alive connection are normal; report anything else."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        super().handle_error(request, client_address)

    def process_request_thread(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def server_close(self):
        super().server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def make_oss_server(host, port, state_dir, credentials, faults, request_log, clock, region="cn-beijing"):
    """Build the OSS emulator server (not started: call ``serve_forever()`` in a thread).

    ``host`` must be a loopback address. ``credentials`` is a ``core.CredentialStore``, ``faults`` a
    ``core.FaultPlan`` (or None), ``request_log`` a ``core.RequestLog`` (or None), ``clock`` a
    ``core.Clock`` (its ``now()`` is used for the signature date check).
    """
    if not _is_loopback(host):
        raise ValueError("the OSS emulator only listens on loopback addresses, not %r" % host)
    store = OssStore(state_dir)
    context = _OssContext(store, SignatureVerifier(credentials, clock), faults, request_log, region)
    return OssHTTPServer((host, port), context)
