# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared OSS logic for the OSS modules and for code that streams into OSS (gocryptfs_encrypt).

Everything here takes an ``oss2.Bucket`` (``AlicloudModule.client("oss", bucket=...)``) and a
``call`` function that runs one SDK call through the retry policy: ``module.call`` inside a module,
or ``retry_call(RetryPolicy(...))`` elsewhere. Both take ``call(func, *args, operation="...", **kwargs)``.

Pieces:

* CRC-64/XZ (``x-oss-hash-crc64ecma``): ``crc64``, ``crc64_combine``, ``file_crc64``;
* listings with every page: ``list_objects``, ``list_uploads``, ``list_parts``;
* ``plan_sync``: which names to transfer, skip or delete, by size and then CRC-64;
* ``MultipartStreamWriter``: feed bytes in order, parts go out in a bounded number of threads with
  bounded memory, the combined CRC-64 is checked against the service's, the upload is aborted on
  failure, and an interrupted upload can be resumed by object key (ListMultipartUploads + ListParts);
* ``upload_file`` (the writer fed from a file: an interrupted upload re-sends only missing parts) and
  ``download_file`` (parallel ranged GETs, CRC-64 checked, atomic rename).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import os
import re
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy

try:  # several GB/s and releases the GIL; optional
    from fastcrc import crc64 as _fastcrc64
except ImportError:
    _fastcrc64 = None

try:  # the C extension oss2 itself depends on
    import crcmod as _crcmod
except ImportError:
    _crcmod = None

try:
    from oss2 import Session as OssSession
    from oss2.models import PartInfo
    HAS_OSS2 = True
except ImportError:  # the modules report the missing library through AlicloudModule.client()
    OssSession = PartInfo = None
    HAS_OSS2 = False

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MIN_PART_SIZE = 100 * KIB        # every part but the last
MAX_PART_SIZE = 5 * GIB
MAX_PARTS = 10000
DEFAULT_PART_SIZE = 8 * MIB
MAX_WORKERS = 64
MAX_KEY_BYTES = 1023
BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# Objects are always written private, whatever the bucket's ACL: never world-readable.
PRIVATE_HEADERS = {"x-oss-object-acl": "private", "Content-Type": "application/octet-stream"}

_MASK64 = 0xFFFFFFFFFFFFFFFF
_POLY_REV = 0xC96C5795D7870F42   # 0x42F0E1EBA9EA3693, bit-reversed (CRC-64/XZ, ECMA-182 reflected)

if _fastcrc64 is not None:
    CRC_BACKEND = "fastcrc"

    def crc64(data, crc=0):
        """CRC-64/XZ of ``data`` continued from the finalized CRC ``crc`` (0 to start)."""
        return _fastcrc64.xz(data, initial=crc) if crc else _fastcrc64.xz(data)
elif _crcmod is not None:
    CRC_BACKEND = "crcmod"
    _CRCMOD_FUN = _crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=_MASK64)

    def crc64(data, crc=0):
        """CRC-64/XZ of ``data`` continued from the finalized CRC ``crc`` (0 to start)."""
        return _CRCMOD_FUN(data, crc)
else:
    CRC_BACKEND = "python"

    def _make_table():
        table = []
        for byte in range(256):
            value = byte
            for dummy_bit in range(8):
                value = (value >> 1) ^ _POLY_REV if value & 1 else value >> 1
            table.append(value)
        return table

    _TABLE = _make_table()

    def crc64(data, crc=0):
        """CRC-64/XZ of ``data`` continued from the finalized CRC ``crc`` (0 to start); slow fallback."""
        crc ^= _MASK64
        for byte in bytes(data):
            crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ _MASK64


# -- CRC combination -----------------------------------------------------------------------------
# The CRC of A + B from crc(A), crc(B) and len(B): shifting crc(A) through len(B) zero bytes is a
# linear map over GF(2), i.e. a multiplication by x^(8*len(B)) modulo the polynomial. Polynomials are
# kept in the reflected bit order of the CRC (bit 63 = x^0).

def _gf2_mulmod(a, b):
    """a * b modulo the CRC polynomial (reflected representation)."""
    product = 0
    top = 1 << 63
    while a:
        if a & top:
            product ^= b
        a = (a << 1) & _MASK64
        b = (b >> 1) ^ _POLY_REV if b & 1 else b >> 1
    return product


def _powers_of_two():
    table = [1 << 62]  # x^(2^0) = x^1; entry k is x^(2^k)
    for dummy_k in range(1, 67):
        table.append(_gf2_mulmod(table[-1], table[-1]))
    return table


_POW2 = _powers_of_two()


def _x_pow_8n(nbytes):
    """x^(8 * nbytes) modulo the polynomial."""
    result = 1 << 63  # x^0
    bits = nbytes * 8
    k = 0
    while bits:
        if bits & 1:
            result = _gf2_mulmod(_POW2[k], result)
        bits >>= 1
        k += 1
    return result


def crc64_combine(crc1, crc2, len2):
    """CRC-64/XZ of the concatenation A + B, given crc(A), crc(B) and len(B)."""
    if len2 <= 0:
        return crc1
    return _gf2_mulmod(_x_pow_8n(len2), crc1) ^ crc2


def combine_parts(parts):
    """CRC of the concatenation of ``[(crc, size), ...]`` in order."""
    total = 0
    for part_crc, size in parts:
        total = crc64_combine(total, part_crc, size)
    return total


def file_crc64(path, chunk=8 * MIB):
    """CRC-64/XZ of a local file, read in chunks (bounded memory)."""
    crc = 0
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                return crc
            crc = crc64(view[:n], crc)


# -- validation and small pure helpers ------------------------------------------------------------
def bucket_name_error(name):
    """None when ``name`` is a valid bucket name, else the reason."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if not 3 <= len(name) <= 63:
        return "must be 3 to 63 characters long (it has %d)" % len(name)
    if not BUCKET_NAME_RE.match(name):
        return "may contain only lowercase letters, digits and hyphens, and must start and end with a letter or digit"
    return None


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(value):
    """Bytes from an int or a string such as ``8388608``, ``8MiB``, ``8M``, ``512 KiB`` (powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError("%r is not a size" % (value,))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError("%r is not a size (use bytes, or a number with KiB, MiB or GiB)" % (value,))
    number = float(match.group(1))
    unit = match.group(2).lower()
    result = number * (1024 ** " kmgt".index(unit or " "))
    if result != int(result):
        raise ValueError("%r is not a whole number of bytes" % (value,))
    return int(result)


def part_size_error(part_size):
    """None when ``part_size`` (bytes) is a valid multipart part size, else the reason."""
    if part_size < MIN_PART_SIZE:
        return "must be at least 100 KiB (%d bytes), the OSS minimum for every part but the last" % MIN_PART_SIZE
    if part_size > MAX_PART_SIZE:
        return "must be at most 5 GiB, the OSS maximum part size"
    return None


def normalize_prefix(prefix):
    """``''`` or a prefix that ends with exactly one ``/`` and does not start with one."""
    prefix = (prefix or "").strip("/")
    if not prefix:
        return ""
    if any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise ValueError("prefix %r has an empty, '.' or '..' segment" % prefix)
    return prefix + "/"


def choose_part_size(size, part_size):
    """``part_size``, doubled until ``size`` fits in at most 10000 parts (ValueError past 5 GiB parts)."""
    while size > part_size * MAX_PARTS:
        part_size *= 2
    if part_size > MAX_PART_SIZE:
        raise ValueError("%d bytes do not fit in %d parts of at most 5 GiB" % (size, MAX_PARTS))
    return part_size


def split_parts(size, part_size):
    """``[(part_number, offset, length)]`` covering ``size`` bytes; one empty part for an empty object."""
    if size == 0:
        return [(1, 0, 0)]
    count = -(-size // part_size)
    if count > MAX_PARTS:
        raise ValueError("%d bytes in parts of %d bytes need %d parts; OSS allows %d" % (size, part_size, count, MAX_PARTS))
    return [(i + 1, i * part_size, min(part_size, size - i * part_size)) for i in range(count)]


def is_excluded(name, patterns):
    """True when the relative path ``name`` (``/``-separated) or any of its parent directories or its
    base name matches one of the fnmatch ``patterns``."""
    if not patterns:
        return False
    segments = name.split("/")
    candidates = {name, segments[-1]}
    for i in range(1, len(segments)):
        candidates.add("/".join(segments[:i]))
        candidates.add("/".join(segments[:i]) + "/")
        candidates.add(segments[i - 1])
    return any(fnmatch.fnmatchcase(c, p) for c in candidates for p in patterns)


def safe_relative_name(name):
    """None when ``name`` (an object key below the prefix) maps safely to a local relative path."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return "is empty, absolute or contains a backslash or NUL"
    if any(seg in ("", ".", "..") for seg in name.split("/")):
        return "has an empty, '.' or '..' segment"
    return None


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


# -- the sync plan (pure) ------------------------------------------------------------------------
def plan_sync(source, dest, source_crc, dest_crc, delete=False):
    """What to do so that ``dest`` mirrors ``source``.

    ``source`` and ``dest`` map a relative name to its size. ``source_crc(name)`` and
    ``dest_crc(name)`` return the CRC-64 of one side (or None when unknown); they are only called
    for names present on both sides with equal sizes, so a size change costs no read and no request.

    Returns ``{"transfer": [(name, reason)], "skip": [name], "delete": [name]}`` with reasons
    ``new``, ``size`` (sizes differ), ``crc`` (same size, CRC differs) or ``unknown`` (no CRC on one
    side, so equality cannot be proved); every list sorted by name.
    """
    transfer, skip = [], []
    for name in sorted(source):
        if name not in dest:
            transfer.append((name, "new"))
        elif source[name] != dest[name]:
            transfer.append((name, "size"))
        else:
            dest_value = dest_crc(name)
            if dest_value is None:
                transfer.append((name, "unknown"))
                continue
            source_value = source_crc(name)
            if source_value is None:
                transfer.append((name, "unknown"))
            elif source_value != dest_value:
                transfer.append((name, "crc"))
            else:
                skip.append(name)
    extra = sorted(name for name in dest if name not in source) if delete else []
    return {"transfer": transfer, "skip": skip, "delete": extra}


# -- calls -----------------------------------------------------------------------------------------
def retry_call(policy=None):
    """A ``call(func, *args, operation=..., **kwargs)`` function over a RetryPolicy, for code without a module."""
    policy = policy or RetryPolicy()

    def call(func, *args, **kwargs):
        operation = kwargs.pop("operation", None)
        return policy.call(func, *args, _operation=operation, **kwargs)
    return call


DEFAULT_POOL = 10  # oss2.defaults.connection_pool_size


def _nocrc(bucket, workers=None):
    """The same bucket client with oss2's own streaming CRC switched off (made once per client).

    oss2 computes its client CRC in 8 KiB steps in Python, which costs more CPU than the transfer.
    The code here computes the CRC-64 of whole parts in one call instead and compares it with the
    service's ``x-oss-hash-crc64ecma`` itself, so nothing is checked less. With more than 10 workers
    the clone gets its own connection pool of that size (oss2's default pool holds 10 connections).
    """
    pool = max(DEFAULT_POOL, workers or 0)
    cached = getattr(bucket, "_cai_ack_nocrc", None)
    if cached is not None and cached[0] >= pool:
        return cached[1]
    clone = copy.copy(bucket)
    clone.enable_crc = False
    if pool > DEFAULT_POOL and OssSession is not None:
        clone.session = OssSession(pool_size=pool + 2)
    try:
        bucket._cai_ack_nocrc = (pool, clone)  # pylint: disable=protected-access
    except AttributeError:
        pass
    return clone


def _code(exc):
    return getattr(exc, "code", None) or getattr(getattr(exc, "cause", None), "code", None)


def is_not_found(exc, *codes):
    """True for an AlicloudError/oss2 error with HTTP 404 and, when given, one of ``codes``."""
    status = getattr(exc, "http_status", None) or getattr(exc, "status", None)
    if status != 404:
        return False
    return not codes or _code(exc) in codes


def list_objects(call, bucket, prefix=""):
    """Every object under ``prefix`` (all pages): ``{key: {"size", "etag", "last_modified"}}``."""
    out = {}
    token = ""
    while True:
        result = call(bucket.list_objects_v2, prefix=prefix, continuation_token=token, max_keys=1000,
                      operation="list objects under %s" % (prefix or "the bucket root"))
        for obj in result.object_list:
            out[obj.key] = {"size": obj.size, "etag": (obj.etag or "").strip('"'), "last_modified": obj.last_modified}
        if not result.is_truncated or not result.next_continuation_token:
            return out
        token = result.next_continuation_token


def head_object(call, bucket, key):
    """``{"size", "etag", "crc64"}`` of one object, or None when it does not exist."""
    try:
        result = call(bucket.head_object, key, operation="read the metadata of %s" % key)
    except AlicloudError as exc:
        if is_not_found(exc):
            return None
        raise
    return {"size": result.content_length, "etag": (result.etag or "").strip('"'), "crc64": result.server_crc}


def list_uploads(call, bucket, prefix=""):
    """Pending multipart uploads under ``prefix`` (all pages): ``[{"key", "upload_id", "initiated"}]``."""
    out = []
    key_marker, id_marker = "", ""
    while True:
        result = call(bucket.list_multipart_uploads, prefix=prefix, key_marker=key_marker, upload_id_marker=id_marker,
                      max_uploads=1000, operation="list multipart uploads under %s" % (prefix or "the bucket root"))
        for upload in result.upload_list:
            out.append({"key": upload.key, "upload_id": upload.upload_id, "initiated": upload.initiation_date})
        if not result.is_truncated:
            return out
        key_marker, id_marker = result.next_key_marker, result.next_upload_id_marker


def list_parts(call, bucket, key, upload_id):
    """Parts already stored for an upload (all pages): ``{part_number: {"size", "etag"}}``."""
    out = {}
    marker = ""
    while True:
        result = call(bucket.list_parts, key, upload_id, marker=marker, max_parts=1000,
                      operation="list the parts of %s" % key)
        for part in result.parts:
            out[part.part_number] = {"size": part.size, "etag": (part.etag or "").strip('"').upper()}
        if not result.is_truncated:
            return out
        marker = result.next_marker


def abort_upload(call, bucket, key, upload_id):
    """Abort one multipart upload; an upload that is already gone counts as done."""
    try:
        call(bucket.abort_multipart_upload, key, upload_id, operation="abort the multipart upload of %s" % key)
    except AlicloudError as exc:
        if not is_not_found(exc):
            raise


def delete_objects(call, bucket, keys):
    """Delete ``keys`` in batches of 1000; returns how many were deleted."""
    keys = list(keys)
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        call(bucket.batch_delete_objects, batch, operation="delete %d objects" % len(batch))
    return len(keys)


# -- buckets -----------------------------------------------------------------------------------------
def bucket_facts(info):
    """The snake_case ``bucket`` result of an oss2 GetBucketInfo answer."""
    rule = getattr(info, "bucket_encryption_rule", None)
    algorithm = getattr(rule, "sse_algorithm", None) if rule is not None else None
    location = info.location or ""
    return {
        "name": info.name,
        "exists": True,
        "location": location,
        "region": location[4:] if location.startswith("oss-") else location,
        "creation_date": info.creation_date,
        "storage_class": info.storage_class,
        "data_redundancy_type": getattr(info, "data_redundancy_type", None),
        "acl": info.acl.grant if getattr(info, "acl", None) is not None else None,
        "versioning": getattr(info, "versioning_status", None),
        "server_side_encryption": {
            "algorithm": algorithm,
            "kms_key_id": getattr(rule, "kms_master_keyid", None) if algorithm else None,
        },
        "extranet_endpoint": info.extranet_endpoint,
        "intranet_endpoint": info.intranet_endpoint,
    }


def get_bucket(call, bucket):
    """``bucket_facts`` of the client's bucket, or None when it does not exist."""
    try:
        info = call(bucket.get_bucket_info, operation="read bucket %s" % bucket.bucket_name)
    except AlicloudError as exc:
        if is_not_found(exc, "NoSuchBucket"):
            return None
        raise
    return bucket_facts(info)


def empty_bucket(call, bucket, prefix=""):
    """Delete every object and abort every multipart upload under ``prefix``; returns the counts."""
    objects = delete_objects(call, bucket, list_objects(call, bucket, prefix))
    uploads = list_uploads(call, bucket, prefix)
    for upload in uploads:
        abort_upload(call, bucket, upload["key"], upload["upload_id"])
    return {"objects": objects, "uploads": len(uploads)}


# -- local tree --------------------------------------------------------------------------------------
def scan_local(root, exclude=None, symlinks="follow"):
    """Regular files below ``root``: ``(files, skipped)``.

    ``files`` maps the ``/``-separated relative name to ``{"path", "size", "mtime_ns"}``; ``skipped``
    lists ``{"name", "reason"}`` for symlinks (``symlinks: skip``), broken symlinks, directory loops,
    special files and names that are not valid UTF-8. Excluded names are left out of both.
    """
    files, skipped = {}, []
    root = os.path.abspath(root)
    seen_dirs = set()

    def walk(directory, rel_dir):
        st_dir = os.stat(directory)
        ident = (st_dir.st_dev, st_dir.st_ino)
        if ident in seen_dirs:
            skipped.append({"name": rel_dir, "reason": "directory loop"})
            return
        seen_dirs.add(ident)
        with os.scandir(directory) as entries:
            entries = sorted(entries, key=lambda e: e.name)
        for entry in entries:
            name = entry.name if not rel_dir else rel_dir + "/" + entry.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                skipped.append({"name": name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                                "reason": "name is not valid UTF-8"})
                continue
            if is_excluded(name, exclude):
                continue
            is_link = entry.is_symlink()
            if is_link and symlinks == "skip":
                skipped.append({"name": name, "reason": "symlink"})
                continue
            try:
                st = os.stat(entry.path)  # follows links
            except OSError:
                skipped.append({"name": name, "reason": "broken symlink" if is_link else "unreadable"})
                continue
            if stat.S_ISDIR(st.st_mode):
                walk(entry.path, name)
            elif stat.S_ISREG(st.st_mode):
                files[name] = {"path": entry.path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            else:
                skipped.append({"name": name, "reason": "not a regular file"})

    walk(root, "")
    return files, skipped


# -- streaming multipart writer -------------------------------------------------------------------------
class MultipartStreamWriter:
    """Write one OSS object from a stream of bytes fed in order, without knowing its size up front.

    ::

        writer = MultipartStreamWriter(bucket, "models/qwen/model-00001.safetensors", call=module.call,
                                       part_size=16 * MIB, workers=4)
        with writer:                  # start(); abort() if the block raises
            for chunk in ciphertext:  # bytes-like, any sizes
                writer.write(chunk)
        result = writer.result        # close() ran at the end of the with-block

    * Parts of exactly ``part_size`` bytes (the last one shorter) are uploaded by ``workers`` threads.
      ``write`` blocks while ``max_pending`` parts (default ``workers``) wait or are in flight, so at
      most ``(max_pending + 1) * part_size`` bytes are held, whatever the object size.
    * A stream shorter than one part is sent with a single PutObject at ``close``.
    * Each part's CRC-64 is compared with the service's answer; at ``close`` the combined CRC of all
      parts is compared with the completed object's ``x-oss-hash-crc64ecma``. A mismatch deletes the
      object and raises.
    * Any failure (or ``abort()``) aborts the multipart upload unless ``abort_on_error=False``,
      which leaves the uploaded parts for a later ``resume=True`` run.
    * ``resume=True``: ``start()`` looks for the newest pending upload of ``key`` (ListMultipartUploads)
      and its parts (ListParts). A part fed again whose size and MD5 match the stored part's ETag is
      not sent again (deterministic streams). For streams that cannot be regenerated identically,
      ``stored_prefix`` is the number of leading bytes already stored in full-size parts; a caller
      that can continue from there calls ``skip(n)`` before the first ``write`` and feeds the rest; the
      skipped bytes are read back (ranged GET) at ``close`` to check the object's CRC-64 end to end.
    * Objects are written with ``x-oss-object-acl: private``; ``headers`` adds or overrides headers
      (for example ``x-oss-server-side-encryption``).

    ``result`` (after ``close``): ``{"key", "size", "crc64", "etag", "parts", "parts_sent",
    "parts_reused", "bytes_sent", "bytes_reused", "upload_id", "peak_pending_parts", "seconds"}``.
    """

    def __init__(self, bucket, key, call=None, part_size=DEFAULT_PART_SIZE, workers=4, max_pending=None,
                 headers=None, resume=False, abort_on_error=True):
        if part_size_error(part_size):
            raise ValueError("part_size %s" % part_size_error(part_size))
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError("workers must be between 1 and %d" % MAX_WORKERS)
        self.bucket = _nocrc(bucket, workers)
        self.key = key
        self.call = call or retry_call()
        self.part_size = part_size
        self.workers = workers
        self.max_pending = max_pending or workers
        if self.max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.headers = dict(PRIVATE_HEADERS)
        self.headers.update(headers or {})
        self.resume = resume
        self.abort_on_error = abort_on_error
        self.upload_id = None
        self.result = None
        self.remote_parts = {}
        self._buffer = None
        self._buffered = 0
        self._next_part = 1
        self._parts = {}            # number -> (etag, size, crc or None)
        self._skipped_bytes = 0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_pending)
        self._pending = 0
        self.peak_pending_parts = 0
        self._error = None
        self._futures = []
        self._executor = None
        self._started = False
        self._closed = False
        self._stale = []
        self._t0 = None
        self.bytes_sent = 0
        self.bytes_reused = 0
        self.parts_sent = 0
        self.parts_reused = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self):
        """Find the upload to resume (``resume=True``); no request otherwise. Returns self."""
        if self._started:
            return self
        self._started = True
        self._t0 = time.monotonic()
        if self.resume:
            uploads = [u for u in list_uploads(self.call, self.bucket, self.key) if u["key"] == self.key]
            if uploads:
                newest = max(uploads, key=lambda u: (u["initiated"] or 0, u["upload_id"]))
                self.upload_id = newest["upload_id"]
                self._stale = [u["upload_id"] for u in uploads if u is not newest]
                try:
                    self.remote_parts = list_parts(self.call, self.bucket, self.key, self.upload_id)
                except AlicloudError as exc:
                    if not is_not_found(exc):
                        raise
                    self.upload_id, self.remote_parts = None, {}
        return self

    @property
    def stored_prefix(self):
        """Bytes at the start of the object already stored as consecutive full-size parts."""
        number, total = 1, 0
        while self.remote_parts.get(number, {}).get("size") == self.part_size:
            total += self.part_size
            number += 1
        return total

    def skip(self, nbytes):
        """Declare that the first ``nbytes`` (a multiple of ``part_size``, at most ``stored_prefix``)
        are already stored; the next ``write`` continues after them."""
        self._check_open()
        if self._next_part != 1 or self._buffered:
            raise ValueError("skip() must come before the first write()")
        if nbytes % self.part_size or nbytes > self.stored_prefix:
            raise ValueError("can skip only a multiple of part_size up to stored_prefix (%d bytes), not %d" % (self.stored_prefix, nbytes))
        for number in range(1, nbytes // self.part_size + 1):
            self._parts[number] = (self.remote_parts[number]["etag"], self.part_size, None)
        self._next_part = nbytes // self.part_size + 1
        self._skipped_bytes = nbytes
        self.bytes_reused += nbytes
        self.parts_reused += nbytes // self.part_size

    def _check_open(self):
        if not self._started:
            self.start()
        if self._closed:
            raise ValueError("the writer is closed")
        if self._error is not None:
            raise self._error

    def write(self, data):
        """Append ``data`` (bytes-like) to the object; blocks while too many parts are pending.

        The data is copied once, into the part buffer, so the caller may reuse its buffer at once.
        """
        self._check_open()
        view = memoryview(data).cast("B")
        pos = 0
        total = len(view)
        while pos < total:
            if self._buffer is None:
                self._buffer = bytearray(self.part_size)
            take = min(self.part_size - self._buffered, total - pos)
            with memoryview(self._buffer) as target:  # bytearray[a:b] = view would copy the view first
                target[self._buffered:self._buffered + take] = view[pos:pos + take]
            self._buffered += take
            pos += take
            if self._buffered == self.part_size:
                payload, self._buffer, self._buffered = self._buffer, None, 0
                self._submit(payload)
        return total

    def write_from_file(self, fileobj):
        """Append everything ``fileobj`` (opened in binary mode) still holds; reads straight into part
        buffers, with no intermediate copy. Returns the number of bytes read."""
        self._check_open()
        total = 0
        while True:
            if self._buffer is None:
                self._buffer = bytearray(self.part_size)
            with memoryview(self._buffer) as view, view[self._buffered:] as free:
                n = fileobj.readinto(free)
            if not n:
                return total
            self._buffered += n
            total += n
            if self._buffered == self.part_size:
                payload, self._buffer, self._buffered = self._buffer, None, 0
                self._submit(payload)

    def _take_tail(self):
        """The partly filled last part (the buffer itself, shrunk), or b""."""
        if self._buffer is None:
            return b""
        payload = self._buffer
        del payload[self._buffered:]
        self._buffer, self._buffered = None, 0
        return payload

    def _ensure_upload(self):
        if self.upload_id is None:
            result = self.call(self.bucket.init_multipart_upload, self.key, headers=self.headers,
                               operation="start the multipart upload of %s" % self.key)
            self.upload_id = result.upload_id
            self.remote_parts = {}

    def _submit(self, payload):
        if self._error is not None:
            raise self._error
        number = self._next_part
        if number > MAX_PARTS:
            raise ValueError("%s needs more than %d parts of %d bytes: use a larger part_size" % (self.key, MAX_PARTS, self.part_size))
        self._next_part += 1
        self._ensure_upload()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="oss-part")
        self._slots.acquire()  # pylint: disable=consider-using-with
        with self._lock:
            self._pending += 1
            self.peak_pending_parts = max(self.peak_pending_parts, self._pending)
        if self._error is not None:
            self._release()
            raise self._error
        # the list is emptied by the worker, so that the part's memory is freed before its slot is released
        self._futures.append(self._executor.submit(self._upload_part, number, [payload]))

    def _release(self):
        with self._lock:
            self._pending -= 1
        self._slots.release()

    def _upload_part(self, number, holder):
        try:
            self._send_part(number, holder)
        except Exception as exc:  # pylint: disable=broad-except
            with self._lock:
                if self._error is None:
                    self._error = exc if isinstance(exc, AlicloudError) else AlicloudError.from_exception(
                        exc, "upload part %d of %s" % (number, self.key))
            exc = None  # the traceback holds the part's data
        finally:
            holder.clear()
            self._release()

    def _send_part(self, number, holder):
        """Send one part (or reuse the stored one); every reference to its data is gone on return."""
        payload = holder.pop()
        size = len(payload)
        crc = crc64(payload)
        stored = self.remote_parts.get(number)
        if stored and stored["size"] == size and stored["etag"] == hashlib.md5(payload).hexdigest().upper():
            with self._lock:
                self._parts[number] = (stored["etag"], size, crc)
                self.parts_reused += 1
                self.bytes_reused += size
            return
        result = self.call(self.bucket.upload_part, self.key, self.upload_id, number, payload,
                           operation="upload part %d of %s" % (number, self.key))
        etag, server_crc, request_id = result.etag, result.crc, result.request_id
        del result, payload  # the response keeps the request, and so the body
        if server_crc is not None and server_crc != crc:
            raise AlicloudError("part %d: CRC-64 sent %d, service computed %d" % (number, crc, server_crc),
                                operation="upload part %d of %s" % (number, self.key), code="InconsistentCRC",
                                request_id=request_id)
        with self._lock:
            self._parts[number] = (etag, size, crc)
            self.parts_sent += 1
            self.bytes_sent += size

    def _wait(self):
        for future in self._futures:
            future.result()
        self._futures = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def close(self):
        """Send what is left, complete the upload and check the CRC-64; returns ``result``."""
        if self.result is not None:
            return self.result
        try:
            self._check_open()
            if self._next_part == 1:
                # less than one part in all: one PutObject; a resumed upload found by start() is garbage then
                if self.upload_id is not None:
                    self._stale.append(self.upload_id)
                    self.upload_id = None
                self.result = self._put_small(self._take_tail())
            else:
                if self._buffered:
                    self._submit(self._take_tail())
                self._wait()
                if self._error is not None:
                    raise self._error
                self.result = self._complete()
        except BaseException:
            if self.abort_on_error:
                try:
                    self.abort()
                except AlicloudError:
                    pass  # the original failure matters more
            else:
                self._wait()
            self._closed = True
            raise
        self._closed = True
        # older interrupted uploads of the same key that were not resumed are garbage now
        for upload_id in self._stale:
            try:
                abort_upload(self.call, self.bucket, self.key, upload_id)
            except AlicloudError:
                pass  # best effort: the object itself is complete and checked
        return self.result

    def _put_small(self, payload):
        crc = crc64(payload)
        result = self.call(self.bucket.put_object, self.key, payload, headers=self.headers,
                           operation="upload %s" % self.key)
        if result.crc is not None and result.crc != crc:
            self._delete_bad_object()
            raise AlicloudError("CRC-64 sent %d, service computed %d" % (crc, result.crc), operation="upload %s" % self.key,
                                code="InconsistentCRC", request_id=result.request_id)
        self.bytes_sent += len(payload)
        self.parts_sent += 1
        return self._result(len(payload), crc, result.etag, 1)

    def _complete(self):
        numbers = sorted(self._parts)
        if numbers != list(range(1, len(numbers) + 1)):
            raise AlicloudError("parts %s are missing" % sorted(set(range(1, max(numbers) + 1)) - set(numbers)),
                                operation="complete %s" % self.key)
        infos = [PartInfo(n, self._parts[n][0]) for n in numbers]
        result = self.call(self.bucket.complete_multipart_upload, self.key, self.upload_id, infos,
                           operation="complete the multipart upload of %s" % self.key)
        size = sum(self._parts[n][1] for n in numbers)
        if self._skipped_bytes:
            prefix_crc = self._read_back_crc(self._skipped_bytes)
            fresh = [(self._parts[n][2], self._parts[n][1]) for n in numbers if self._parts[n][2] is not None]
            crc = combine_parts([(prefix_crc, self._skipped_bytes)] + fresh)
        else:
            crc = combine_parts([(self._parts[n][2], self._parts[n][1]) for n in numbers])
        if result.crc is not None and result.crc != crc:
            self._delete_bad_object()
            raise AlicloudError("object CRC-64 expected %d, service computed %d; the object was deleted" % (crc, result.crc),
                                operation="complete the multipart upload of %s" % self.key, code="InconsistentCRC",
                                request_id=result.request_id)
        return self._result(size, crc if result.crc is None else result.crc, result.etag, len(numbers))

    def _read_back_crc(self, nbytes):
        def fetch():
            stream = self.bucket.get_object(self.key, byte_range=(0, nbytes - 1))
            crc = 0
            got = 0
            while True:
                block = stream.read(4 * MIB)
                if not block:
                    break
                crc = crc64(block, crc)
                got += len(block)
            if got != nbytes:
                raise ConnectionError("read %d of %d bytes" % (got, nbytes))
            return crc
        return self.call(fetch, operation="read back the first %d bytes of %s" % (nbytes, self.key))

    def _delete_bad_object(self):
        try:
            self.call(self.bucket.delete_object, self.key, operation="delete the inconsistent object %s" % self.key)
        except AlicloudError:
            pass

    def _result(self, size, crc, etag, parts):
        return {
            "key": self.key, "size": size, "crc64": crc, "etag": etag, "parts": parts,
            "parts_sent": self.parts_sent, "parts_reused": self.parts_reused,
            "bytes_sent": self.bytes_sent, "bytes_reused": self.bytes_reused,
            "upload_id": self.upload_id, "peak_pending_parts": self.peak_pending_parts,
            "seconds": round(time.monotonic() - (self._t0 or time.monotonic()), 3),
        }

    def abort(self):
        """Stop, wait for the threads and abort the multipart upload (its parts are deleted)."""
        if self._error is None:
            self._error = AlicloudError("the upload was aborted", operation="upload %s" % self.key)
        self._wait()
        if self.upload_id is not None:
            abort_upload(self.call, self.bucket, self.key, self.upload_id)
            self.upload_id = None
        self._closed = True

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif not self._closed:
            if self.abort_on_error:
                try:
                    self.abort()
                except AlicloudError:
                    pass
            else:
                self._error = self._error or AlicloudError("interrupted", operation="upload %s" % self.key)
                self._wait()
                self._closed = True
        return False


# -- files ------------------------------------------------------------------------------------------
def upload_file(bucket, key, path, call=None, part_size=DEFAULT_PART_SIZE, workers=4, headers=None, resume=True,
                abort_on_error=False):
    """Upload a local file to ``key``; returns the writer's ``result`` (plus ``resumed``).

    A file up to ``part_size`` is one PutObject. Larger files go in parts through
    ``MultipartStreamWriter``; with ``resume=True`` (the default) a pending upload of the same key is
    reused and only the parts whose content differs (size or MD5 against the stored ETag) or that are
    missing are sent. Failures leave the parts in place for the next run (``abort_on_error=False``).
    """
    size = os.path.getsize(path)
    part_size = choose_part_size(size, part_size)
    writer = MultipartStreamWriter(bucket, key, call=call, part_size=part_size, workers=workers, headers=headers,
                                   resume=resume and size > part_size, abort_on_error=abort_on_error)
    with writer:
        with open(path, "rb") as f:
            writer.write_from_file(f)
    result = dict(writer.result)
    if os.path.getsize(path) != size or result["size"] != size:
        raise AlicloudError("%s changed while it was uploaded (%d bytes before, %d sent)" % (path, size, result["size"]),
                            operation="upload %s" % key)
    result["resumed"] = result["parts_reused"] > 0
    return result


def download_file(bucket, key, dest, call=None, part_size=DEFAULT_PART_SIZE, workers=4, mode=0o600):
    """Download ``key`` to ``dest`` with parallel ranged GETs (If-Match on the ETag), check the combined
    CRC-64 against the object's, and rename into place atomically. Returns ``{"key", "size", "crc64"}``."""
    call = call or retry_call()
    client = _nocrc(bucket, workers)
    meta = head_object(call, client, key)
    if meta is None:
        raise AlicloudError("object %s does not exist" % key, operation="download %s" % key, code="NoSuchKey", http_status=404)
    size, etag, expected = meta["size"], meta["etag"], meta["crc64"]
    part_size = choose_part_size(size, part_size)
    ranges = split_parts(size, part_size)
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = os.path.join(directory, ".%s.oss-download-%s" % (os.path.basename(dest)[:100], os.urandom(6).hex()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    crcs = {}
    try:
        if size:
            os.ftruncate(fd, size)

        def fetch(number, offset, length):
            def once():
                stream = client.get_object(key, byte_range=(offset, offset + length - 1), headers={"If-Match": '"%s"' % etag})
                try:
                    # one read of the whole range (oss2's read() without a size loops over 8 KiB chunks)
                    data = stream.read(length)
                    while 0 < len(data) < length:
                        more = stream.read(length - len(data))
                        if not more:
                            break
                        data += more
                except Exception as exc:  # pylint: disable=broad-except
                    raise ConnectionError("reading part %d of %s failed: %s" % (number, key, exc)) from exc
                if len(data) != length:
                    raise ConnectionError("part %d of %s: got %d of %d bytes" % (number, key, len(data), length))
                return data
            data = call(once, operation="download part %d of %s" % (number, key))
            view = memoryview(data)
            written = 0
            while written < length:
                written += os.pwrite(fd, view[written:], offset + written)
            crcs[number] = (crc64(data), length)

        work = [r for r in ranges if r[2]]
        if work:
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(work))), thread_name_prefix="oss-get") as pool:
                for future in [pool.submit(fetch, *r) for r in work]:
                    future.result()
        os.fsync(fd)
        os.close(fd)
        fd = None
        actual = combine_parts([crcs[n] for n in sorted(crcs)])
        if expected is not None and actual != expected:
            raise AlicloudError("CRC-64 of the downloaded data %d differs from the object's %d" % (actual, expected),
                                operation="download %s" % key, code="InconsistentCRC")
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return {"key": key, "size": size, "crc64": actual if size else 0}
