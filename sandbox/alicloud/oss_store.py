"""On-disk state of the OSS emulator.

Layout under ``<state_dir>/oss/``::

    buckets/<bucket>/bucket.json                      bucket settings (ACL, SSE, creation time, ...)
    buckets/<bucket>/objects/<sha256(key)>.json       one metadata file per object
    buckets/<bucket>/data/<data id>/<segment>         object bytes: one segment for PutObject,
                                                      one per part for a completed multipart upload
    buckets/<bucket>/uploads/<upload id>/upload.json  an open multipart upload
    buckets/<bucket>/uploads/<upload id>/<n>.json     its part <n>, bytes in the file the JSON names
    buckets/<bucket>/tmp/                             bodies being received

Object bytes are never held in memory: bodies are streamed to ``tmp/`` and renamed into place, and a
completed multipart upload keeps its part files as segments (no copy). Metadata JSON files are written
to a temporary name and renamed, so a crash leaves either the old or the new version. The metadata
(not the bytes) is also kept in memory, guarded by one lock, and reloaded from disk at start.
"""

import hashlib
import json
import os
import shutil
import threading
import time
import uuid

from .oss_common import OssError, no_such_bucket, no_such_key, no_such_upload


def _write_json(path, data):
    tmp = "%s.%s.tmp" % (path, uuid.uuid4().hex)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, sort_keys=True)
    os.replace(tmp, path)


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def key_file_name(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json"


class BucketState:
    def __init__(self, root, info):
        self.root = root
        self.info = info
        self.objects = {}   # key -> metadata dict
        self.uploads = {}   # upload id -> upload dict (with "parts": {number: part dict})

    @property
    def name(self):
        return self.info["name"]

    def path(self, *parts):
        return os.path.join(self.root, *parts)


class OssStore:
    def __init__(self, state_dir):
        self.root = os.path.join(state_dir, "oss", "buckets")
        os.makedirs(self.root, exist_ok=True)
        self.lock = threading.RLock()
        self.buckets = {}
        self._load()

    # -- loading -----------------------------------------------------------------------------
    def _load(self):
        for name in sorted(os.listdir(self.root)):
            broot = os.path.join(self.root, name)
            info_path = os.path.join(broot, "bucket.json")
            if not os.path.isfile(info_path):
                continue
            b = BucketState(broot, _read_json(info_path))
            for sub in ("objects", "data", "uploads", "tmp"):
                os.makedirs(b.path(sub), exist_ok=True)
            shutil.rmtree(b.path("tmp"), ignore_errors=True)
            os.makedirs(b.path("tmp"), exist_ok=True)
            for fn in os.listdir(b.path("objects")):
                if fn.endswith(".json"):
                    meta = _read_json(b.path("objects", fn))
                    b.objects[meta["key"]] = meta
                elif fn.endswith(".tmp"):
                    os.unlink(b.path("objects", fn))
            referenced = {m["data_id"] for m in b.objects.values()}
            for data_id in os.listdir(b.path("data")):
                if data_id not in referenced:  # left over from a crash between the rename and the metadata write
                    shutil.rmtree(b.path("data", data_id), ignore_errors=True)
            for upload_id in os.listdir(b.path("uploads")):
                udir = b.path("uploads", upload_id)
                if not os.path.isfile(os.path.join(udir, "upload.json")):
                    shutil.rmtree(udir, ignore_errors=True)
                    continue
                upload = _read_json(os.path.join(udir, "upload.json"))
                upload["parts"] = {}
                used = set()
                for fn in os.listdir(udir):
                    if fn.endswith(".json") and fn != "upload.json":
                        part = _read_json(os.path.join(udir, fn))
                        upload["parts"][part["number"]] = part
                        used.add(part["file"])
                for fn in os.listdir(udir):
                    if fn.endswith(".data") and fn not in used:
                        os.unlink(os.path.join(udir, fn))
                b.uploads[upload_id] = upload
            self.buckets[b.name] = b

    # -- buckets -----------------------------------------------------------------------------
    def bucket(self, name):
        b = self.buckets.get(name)
        if b is None:
            raise no_such_bucket(name)
        return b

    def create_bucket(self, name, acl, storage_class, redundancy, region):
        """Create a bucket, or update the ACL of an existing one (the service does the same for its owner)."""
        with self.lock:
            b = self.buckets.get(name)
            if b is not None:
                if storage_class and storage_class != b.info["storage_class"]:
                    raise OssError(409, "BucketAlreadyExists", "Cannot modify existing bucket's storage class.", [("BucketName", name)])
                if redundancy and redundancy != b.info["redundancy"]:
                    raise OssError(409, "BucketAlreadyExists", "Bucket already exists can't modify data redundancy type.",
                                   [("BucketName", name)])
                if acl:
                    b.info["acl"] = acl
                    _write_json(b.path("bucket.json"), b.info)
                return b, False
            broot = os.path.join(self.root, name)
            for sub in ("objects", "data", "uploads", "tmp"):
                os.makedirs(os.path.join(broot, sub), exist_ok=True)
            info = {"name": name, "created": time.time(), "acl": acl or "private", "storage_class": storage_class or "Standard",
                    "redundancy": redundancy or "LRS", "region": region, "sse": None}
            b = BucketState(broot, info)
            _write_json(b.path("bucket.json"), info)
            self.buckets[name] = b
            return b, True

    def update_bucket(self, name, **changes):
        with self.lock:
            b = self.bucket(name)
            b.info.update(changes)
            _write_json(b.path("bucket.json"), b.info)
            return b

    def delete_bucket(self, name):
        with self.lock:
            b = self.bucket(name)
            if b.objects or b.uploads:
                raise OssError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.", [("BucketName", name)])
            del self.buckets[name]
            trash = os.path.join(self.root, ".deleted-%s-%s" % (name, uuid.uuid4().hex))
            os.rename(b.root, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- objects -----------------------------------------------------------------------------
    def new_tmp_path(self, bucket):
        return self.bucket(bucket).path("tmp", uuid.uuid4().hex)

    def get_object(self, bucket, key):
        with self.lock:
            b = self.bucket(bucket)
            meta = b.objects.get(key)
            if meta is None:
                raise no_such_key(key)
            return b, dict(meta)

    def segment_paths(self, b, meta):
        return [(b.path("data", meta["data_id"], name), size) for name, size in meta["segments"]]

    def _install(self, b, meta):
        """Write the metadata of an object whose data dir is in place; return the old data dir to remove."""
        _write_json(b.path("objects", key_file_name(meta["key"])), meta)
        old = b.objects.get(meta["key"])
        b.objects[meta["key"]] = meta
        if old is not None and old["data_id"] != meta["data_id"]:
            return b.path("data", old["data_id"])
        return None

    def put_object(self, bucket, meta, tmp_path, forbid_overwrite=False):
        """Move a received body into place as object ``meta["key"]``."""
        old_dir = None
        try:
            with self.lock:
                b = self.bucket(bucket)
                if forbid_overwrite and meta["key"] in b.objects:
                    raise OssError(409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten.",
                                   [("Key", meta["key"])])
                data_id = uuid.uuid4().hex
                os.makedirs(b.path("data", data_id))
                os.rename(tmp_path, b.path("data", data_id, "0"))
                meta["data_id"] = data_id
                meta["segments"] = [["0", meta["size"]]]
                old_dir = self._install(b, meta)
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
        if old_dir:
            shutil.rmtree(old_dir, ignore_errors=True)
        return meta

    def copy_object(self, src_bucket, src_key, dst_bucket, dst_meta_fn, forbid_overwrite=False):
        """Copy an object by hard-linking its segments. ``dst_meta_fn(src_meta)`` builds the new metadata."""
        with self.lock:
            sb = self.bucket(src_bucket)
            src = sb.objects.get(src_key)
            if src is None:
                raise no_such_key(src_key)
            db = self.bucket(dst_bucket)
            meta = dst_meta_fn(dict(src))
            if forbid_overwrite and meta["key"] in db.objects:
                raise OssError(409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten.",
                               [("Key", meta["key"])])
            data_id = uuid.uuid4().hex
            os.makedirs(db.path("data", data_id))
            for name, dummy_size in src["segments"]:
                os.link(sb.path("data", src["data_id"], name), db.path("data", data_id, name))
            meta["data_id"] = data_id
            meta["segments"] = [list(s) for s in src["segments"]]
            old_dir = self._install(db, meta)
        if old_dir:
            shutil.rmtree(old_dir, ignore_errors=True)
        return meta

    def update_object(self, bucket, key, **changes):
        with self.lock:
            b = self.bucket(bucket)
            meta = b.objects.get(key)
            if meta is None:
                raise no_such_key(key)
            meta = dict(meta, **changes)
            self._install(b, meta)
            return meta

    def delete_object(self, bucket, key):
        """Delete one object; return True when it existed (deleting a missing key is not an error)."""
        with self.lock:
            b = self.bucket(bucket)
            meta = b.objects.pop(key, None)
            if meta is None:
                return False
            path = b.path("objects", key_file_name(key))
            if os.path.exists(path):
                os.unlink(path)
            data_dir = b.path("data", meta["data_id"])
        shutil.rmtree(data_dir, ignore_errors=True)
        return True

    def sorted_keys(self, bucket):
        with self.lock:
            b = self.bucket(bucket)
            return sorted(b.objects), dict(b.objects)

    # -- multipart ---------------------------------------------------------------------------
    def init_upload(self, bucket, key, headers_meta):
        with self.lock:
            b = self.bucket(bucket)
            upload_id = uuid.uuid4().hex.upper()
            udir = b.path("uploads", upload_id)
            os.makedirs(udir)
            upload = {"upload_id": upload_id, "key": key, "initiated": time.time(), "meta": headers_meta}
            _write_json(os.path.join(udir, "upload.json"), upload)
            upload = dict(upload, parts={})
            b.uploads[upload_id] = upload
            return upload

    def get_upload(self, bucket, key, upload_id):
        with self.lock:
            b = self.bucket(bucket)
            upload = b.uploads.get(upload_id)
            if upload is None or upload["key"] != key:
                raise no_such_upload(upload_id)
            return b, upload

    def put_part(self, bucket, key, upload_id, part, tmp_path):
        old_file = None
        try:
            with self.lock:
                b, upload = self.get_upload(bucket, key, upload_id)
                udir = b.path("uploads", upload_id)
                part["file"] = "%05d-%s.data" % (part["number"], uuid.uuid4().hex[:8])
                os.rename(tmp_path, os.path.join(udir, part["file"]))
                _write_json(os.path.join(udir, "%05d.json" % part["number"]), part)
                old = upload["parts"].get(part["number"])
                upload["parts"][part["number"]] = part
                if old is not None:
                    old_file = os.path.join(udir, old["file"])
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
        if old_file and os.path.exists(old_file):
            os.unlink(old_file)
        return part

    def abort_upload(self, bucket, key, upload_id):
        with self.lock:
            b = self.get_upload(bucket, key, upload_id)[0]
            del b.uploads[upload_id]
            udir = b.path("uploads", upload_id)
            trash = b.path("tmp", "aborted-" + upload_id)
            os.rename(udir, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def complete_upload(self, bucket, key, upload_id, chosen, meta):
        """Turn the chosen parts (list of part dicts, in order) into object ``key`` described by ``meta``."""
        with self.lock:
            b = self.get_upload(bucket, key, upload_id)[0]
            udir = b.path("uploads", upload_id)
            data_id = uuid.uuid4().hex
            ddir = b.path("data", data_id)
            os.makedirs(ddir)
            segments = []
            for i, part in enumerate(chosen):
                name = "%05d" % i
                os.rename(os.path.join(udir, part["file"]), os.path.join(ddir, name))
                segments.append([name, part["size"]])
            meta["data_id"] = data_id
            meta["segments"] = segments
            old_dir = self._install(b, meta)
            del b.uploads[upload_id]
            trash = b.path("tmp", "completed-" + upload_id)
            os.rename(udir, trash)
        shutil.rmtree(trash, ignore_errors=True)
        if old_dir:
            shutil.rmtree(old_dir, ignore_errors=True)
        return meta

    def list_uploads(self, bucket):
        with self.lock:
            b = self.bucket(bucket)
            return sorted(((u["key"], u["upload_id"], u["initiated"]) for u in b.uploads.values()))

    def list_parts(self, bucket, key, upload_id):
        with self.lock:
            upload = self.get_upload(bucket, key, upload_id)[1]
            return [dict(upload["parts"][n]) for n in sorted(upload["parts"])]
