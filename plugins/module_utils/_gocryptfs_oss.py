# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A gocryptfs CIPHERDIR streamed straight into OSS (``oss://bucket/prefix``), with no local ciphertext.

The objects under the prefix are exactly the files of a CIPHERDIR, key = prefix + ciphertext path:
``gocryptfs.conf``, a ``gocryptfs.diriv`` in every directory (so no directory is ever empty and no
directory marker object is needed), EME-encrypted names, ``gocryptfs.longname.*`` with their
``.name`` objects, and file contents. A prefix mounted with ossfs (or the OSS CSI driver) is therefore
a CIPHERDIR that gocryptfs mounts, and it is what ``oss_sync`` would upload from a local CIPHERDIR.
Symlinks cannot be stored in OSS and are refused; modes and mtimes are not kept.

How a run works (``encrypt_tree_to_oss``):

1. list the prefix; read ``gocryptfs.conf`` and unwrap the master key (a wrong password fails here,
   before any write); with no conf, a new one is made (the prefix must then be empty);
2. read back every directory's ``gocryptfs.diriv`` and every ``.name`` object and decrypt every name
   (so existing directories keep their IVs and unchanged files keep their object keys);
3. plan against the local manifest (keyed, like the local one: HMAC-SHA256 under a key derived from the
   master key): a file whose size and mtime match, whose object still has the recorded ETag and the
   right ciphertext size, is skipped; a file whose mtime changed is re-hashed (keyed GMAC per 4 MiB
   segment) and only re-sent when its content changed; entries gone from the source are deleted. Every
   object key (new directories get their IVs now) is computed before the first write;
4. delete what is gone, abort multipart uploads a killed run left under the prefix, write the objects of
   new directories, then stream the files: ``workers`` forked processes encrypt 4 MiB chunks into a
   shared memory ring of ``2 * workers`` slots; this process feeds the chunks in order to one
   ``MultipartStreamWriter`` per object (parts uploaded by ``upload_workers`` threads; at most two more
   objects finishing in the background). Memory is bounded by the slots and the part buffers, whatever
   the file sizes; the per-part and whole-object CRC-64 checks of the writer apply;
5. write the manifest (also every 30 s while running, so an interrupted run keeps what it finished).

``verify_oss_tree`` reads everything back with ranged GETs and decrypts it with this package's reader.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import mmap
import multiprocessing
import os
import threading
import time

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError
from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_core import (
    BLOCK_SIZE,
    CBLOCK_SIZE,
    CONF_NAME,
    DEFAULT_CREATOR,
    DIRIV_LEN,
    DIRIV_NAME,
    HEADER_LEN,
    LONGNAME_FILE_MAX,
    LONGNAME_SUFFIX,
    SCRYPT_N,
    ContentCipher,
    CorruptDataError,
    GocryptfsError,
    Keys,
    SegmentMac,
    block_count,
    cipher_entry_name,
    cipher_offset,
    ciphertext_size,
    decrypt_name,
    encrypt_name,
    init_conf,
    iter_encrypt_range,
    load_master_key,
    long_name_hash,
    make_buffers,
    name_type,
    normalize_password,
    parse_header,
    plaintext_size,
    random_bytes_nonzero,
)
from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_tree import (
    Manifest,
    default_workers,
    hash_segments,
    scan_source,
)
from ansible_collections.confidential_ai.ack.plugins.module_utils.oss import (
    MAX_KEY_BYTES,
    MIB,
    MIN_PART_SIZE,
    MultipartStreamWriter,
    abort_upload,
    bucket_name_error,
    choose_part_size,
    delete_objects,
    is_not_found,
    list_objects,
    list_uploads,
    normalize_prefix,
    part_size_error,
)

OSS_SCHEME = 'oss://'
STREAM_BLOCKS = 1024            # 4 MiB of plaintext per encryption task, shared-memory slot and digest segment
DEFAULT_PART_SIZE = 8 * MIB
DEFAULT_UPLOAD_WORKERS = 4
CLOSERS = 2                     # objects whose last parts are still being sent while the next one streams
MANIFEST_SAVE_SECONDS = 30.0
DEFAULT_STATE_DIR = '~/.cache/cai-ack'


# ---------------------------------------------------------------------------------------------
# Destinations and small objects

def is_oss_url(value):
    return isinstance(value, str) and value.startswith(OSS_SCHEME)


def parse_oss_url(url):
    """``oss://bucket/some/prefix`` -> ``('bucket', 'some/prefix/')`` (prefix ``''`` for the bucket root)."""
    if not is_oss_url(url):
        raise GocryptfsError('%r is not an oss://bucket/prefix URL' % (url,))
    rest = url[len(OSS_SCHEME):]
    bucket, dummy, prefix = rest.partition('/')
    reason = bucket_name_error(bucket)
    if reason:
        raise GocryptfsError('dest %s: the bucket name %r %s' % (url, bucket, reason))
    try:
        prefix = normalize_prefix(prefix)
    except ValueError as exc:
        raise GocryptfsError('dest %s: %s' % (url, exc))
    return bucket, prefix


def default_manifest_path(state_dir, bucket, prefix):
    """``<state_dir>/manifests/<bucket>/<sha256(prefix)[:32]>.json`` (state_dir defaults to ~/.cache/cai-ack)."""
    base = os.path.expanduser(state_dir or DEFAULT_STATE_DIR)
    digest = hashlib.sha256(('%s\0%s' % (bucket, prefix)).encode('utf-8')).hexdigest()[:32]
    return os.path.join(base, 'manifests', bucket, digest + '.json')


def _norm_etag(etag):
    return (etag or '').strip('"').upper()


def get_small_object(call, bucket, key, limit):
    """The content of a small object (at most ``limit`` bytes, else CorruptDataError), or None if missing."""
    def once():
        stream = bucket.get_object(key)
        parts = []
        total = 0
        while total <= limit:
            block = stream.read(limit + 1 - total)
            if not block:
                break
            parts.append(block)
            total += len(block)
        return b''.join(parts)
    try:
        data = call(once, operation='read %s' % key)
    except AlicloudError as exc:
        if is_not_found(exc):
            return None
        raise
    if len(data) > limit:
        raise CorruptDataError('%s is larger than %d bytes' % (key, limit))
    return data


def put_small_object(call, bucket, key, data, headers=None):
    """One PutObject (private ACL, CRC-64 checked) through MultipartStreamWriter; returns its result."""
    writer = MultipartStreamWriter(bucket, key, call=call, part_size=max(MIN_PART_SIZE, len(data) + 1), workers=1,
                                   headers=headers)
    with writer:
        writer.write(data)
    return writer.result


def _check_diriv(iv, key):
    if iv is None:
        raise CorruptDataError('%s is missing' % key)
    if len(iv) != DIRIV_LEN or not any(iv):
        raise CorruptDataError('%s is not 16 non-zero bytes' % key)
    return iv


# ---------------------------------------------------------------------------------------------
# Opening / creating the CIPHERDIR in OSS

class OssCipherdir:
    """What ``open_oss_cipherdir`` found: master key, whether it is new, the listing of the prefix."""

    def __init__(self, bucket_name, prefix, master_key, created, objects, conf=None):
        self.bucket_name = bucket_name
        self.prefix = prefix
        self.master_key = master_key
        self.created = created
        self.objects = objects
        self.conf = conf

    @property
    def url(self):
        return '%s%s/%s' % (OSS_SCHEME, self.bucket_name, self.prefix)


def open_oss_cipherdir(call, bucket, prefix, password, scrypt_n=SCRYPT_N, creator=DEFAULT_CREATOR, random=os.urandom):
    """List ``prefix`` and unwrap the master key of its ``gocryptfs.conf`` (read-only: nothing is written).

    Returns an ``OssCipherdir``. With no conf under the prefix a new conf and master key are made in
    memory (``created`` true; ``conf`` holds the bytes to upload) - refused when the prefix holds other
    objects. A wrong password raises WrongPasswordError.
    """
    password = normalize_password(password)
    objects = list_objects(call, bucket, prefix)
    conf_key = prefix + CONF_NAME
    name = getattr(bucket, 'bucket_name', '?')
    if conf_key in objects:
        conf = get_small_object(call, bucket, conf_key, 1 << 20)
        if conf is None:
            raise GocryptfsError('%s disappeared while being read' % conf_key)
        return OssCipherdir(name, prefix, load_master_key(conf, password), False, objects)
    real = [k for k in objects if not k.endswith('/')]
    if real:
        raise GocryptfsError('oss://%s/%s holds %d objects but no %s; refusing to write into it (for example %s)'
                             % (name, prefix, len(real), CONF_NAME, ', '.join(sorted(real)[:3])))
    conf, master_key = init_conf(password, scrypt_n=scrypt_n, creator=creator, random=random)
    return OssCipherdir(name, prefix, master_key, True, objects, conf=conf)


# ---------------------------------------------------------------------------------------------
# Scanning the objects: decrypt every name

class OssEntry:
    """One entry of the CIPHERDIR in OSS: plaintext rel path (bytes), ciphertext rel path (str), kind 'f'/'d'."""

    __slots__ = ('rel', 'crel', 'kind', 'size', 'etag', 'iv', 'name_key')

    def __init__(self, rel, crel, kind, size=None, etag=None, iv=None, name_key=None):
        self.rel = rel
        self.crel = crel
        self.kind = kind
        self.size = size
        self.etag = etag
        self.iv = iv
        self.name_key = name_key


class OssScan:
    def __init__(self, prefix):
        self.prefix = prefix
        self.entries = {}       # plaintext rel -> OssEntry
        self.unknown = []       # keys that do not decrypt with this key
        self.stale = []         # keys safe to delete: .name objects without their entry
        self.root_iv = None
        self.objects = {}       # crel -> {"size", "etag", ...}
        self.markers = []       # crel of directory marker objects ("dir/") written by other tools
        self.reads = 0          # GET requests made for dirivs and .name objects

    def keys_under(self, crel):
        """Every object key of a ciphertext entry (a file, or a directory and everything below it)."""
        base = crel + '/'
        keys = [self.prefix + c for c in self.objects if c == crel or c.startswith(base)]
        keys.extend(self.prefix + m for m in self.markers if m.startswith(base))
        return keys


def _bjoin(parent, name):
    return parent + b'/' + name if parent else name


def _sjoin(parent, name):
    return parent + '/' + name if parent else name


def scan_oss(call, bucket, prefix, objects, keys):
    """Decrypt every object name under ``prefix`` (``objects`` from ``list_objects``) with ``keys``."""
    scan = OssScan(prefix)
    tree = {}
    for key, meta in objects.items():
        crel = key[len(prefix):]
        if not crel or crel.endswith('/'):
            if crel:
                scan.markers.append(crel)   # directory marker objects written by other tools: ignored
            continue
        parts = crel.split('/')
        if '' in parts:
            scan.unknown.append(key)
            continue
        scan.objects[crel] = meta
        for i, part in enumerate(parts):
            node = tree.setdefault('/'.join(parts[:i]), {}).setdefault(part, [False, False])
            node[0 if i == len(parts) - 1 else 1] = True
    if CONF_NAME not in scan.objects:
        raise CorruptDataError('%s%s is missing' % (prefix, CONF_NAME))

    def read(crel, limit):
        scan.reads += 1
        return get_small_object(call, bucket, prefix + crel, limit)

    scan.root_iv = _check_diriv(read(DIRIV_NAME, DIRIV_LEN) if DIRIV_NAME in scan.objects else None, prefix + DIRIV_NAME)
    stack = [('', b'', scan.root_iv)]
    while stack:
        cdir, rdir, iv = stack.pop()
        children = tree.get(cdir, {})
        for name in sorted(children):
            is_obj, is_dir = children[name]
            crel = _sjoin(cdir, name)
            ctype = name_type(name)
            if not is_dir and (ctype in ('diriv', 'longname_file') or (ctype == 'conf' and not cdir)):
                continue
            if is_obj and is_dir:
                scan.unknown.append(prefix + crel)
                continue
            name_key = None
            try:
                if ctype == 'long':
                    ncrel = crel + LONGNAME_SUFFIX
                    encoded = read(ncrel, LONGNAME_FILE_MAX) if ncrel in scan.objects else None
                    if encoded is None:
                        raise CorruptDataError('missing .name object')
                    encoded = encoded.decode('ascii')
                    if long_name_hash(encoded) != name:
                        raise CorruptDataError('.name object does not match its hash')
                    name_key = prefix + ncrel
                else:
                    encoded = name
                plain = decrypt_name(keys.names, iv, encoded)
            except (CorruptDataError, UnicodeDecodeError):
                scan.unknown.append(prefix + crel)
                continue
            rel = _bjoin(rdir, plain)
            if rel in scan.entries:
                scan.unknown.append(prefix + crel)
                continue
            if is_dir:
                entry = OssEntry(rel, crel, 'd', name_key=name_key)
                ivcrel = crel + '/' + DIRIV_NAME
                try:
                    entry.iv = _check_diriv(read(ivcrel, DIRIV_LEN) if ivcrel in scan.objects else None, prefix + ivcrel)
                except CorruptDataError:
                    entry.iv = None     # broken directory: the planner replaces it
                if entry.iv is not None:
                    stack.append((crel, rel, entry.iv))
            else:
                meta = scan.objects[crel]
                entry = OssEntry(rel, crel, 'f', size=meta['size'], etag=_norm_etag(meta.get('etag')), name_key=name_key)
            scan.entries[rel] = entry
        for name in sorted(children):
            if name_type(name) == 'longname_file' and children[name][0] and not children[name][1]:
                base = name[:-len(LONGNAME_SUFFIX)]
                if base not in children:
                    scan.stale.append(prefix + _sjoin(cdir, name))
    return scan


# ---------------------------------------------------------------------------------------------
# Planning

class NewDir:
    __slots__ = ('se', 'crel', 'iv', 'name_key', 'name_data')

    def __init__(self, se, crel, iv, name_key, name_data):
        self.se = se
        self.crel = crel
        self.iv = iv
        self.name_key = name_key
        self.name_data = name_data


class FileJob:
    """One file to encrypt and upload."""

    __slots__ = ('se', 'src', 'crel', 'key', 'name_key', 'name_data', 'size', 'csize', 'nseg', 'hashes', 'done',
                 'writer', 'file_id', 'replaces')

    def __init__(self, se, src, crel, key, name_key=None, name_data=None, replaces=False):
        self.se = se
        self.src = src
        self.crel = crel
        self.key = key
        self.name_key = name_key
        self.name_data = name_data
        self.size = se.st.st_size
        self.csize = ciphertext_size(self.size)
        self.nseg = -(-block_count(self.size) // STREAM_BLOCKS)
        self.hashes = [None] * self.nseg
        self.done = 0
        self.writer = None
        self.file_id = None
        self.replaces = replaces


class OssPlan:
    def __init__(self, src_root, prefix, root_iv):
        self.src_root = src_root
        self.prefix = prefix
        self.root_iv = root_iv
        self.delete = []        # object keys to delete
        self.removed = 0        # entries removed (gone from the source, changed type, broken)
        self.stale = 0          # stale .name objects
        self.uploads = []       # pending multipart uploads to abort
        self.mkdir = []         # NewDir
        self.dirs_total = 0
        self.jobs = []          # FileJob to send
        self.skip = []          # (SrcEntry, OssEntry, manifest entry)
        self.rehash = []        # (SrcEntry, OssEntry, manifest entry)
        self.files_total = 0
        self.bytes_total = 0

    @property
    def bytes_to_encrypt(self):
        return sum(job.size for job in self.jobs)

    def objects_to_write(self, created):
        count = (2 if created else 0) + len(self.jobs)
        count += sum(1 + (1 if d.name_data is not None else 0) for d in self.mkdir)
        count += sum(1 for job in self.jobs if job.name_data is not None)
        return count


def check_source_for_oss(src):
    """Scan the plaintext tree and refuse what OSS cannot hold (symlinks); returns the scan."""
    entries = scan_source(os.fsencode(os.path.abspath(src)))
    _refuse_symlinks(entries)
    return entries


def _refuse_symlinks(src_entries):
    links = [e.rel for e in src_entries if e.kind == 'l']
    if links:
        raise GocryptfsError('object storage keeps no symlinks, and the source has %d: %s. Replace them with what they point to '
                             '(for example cp -rL) or encrypt to a local directory' % (len(links), ', '.join(os.fsdecode(r) for r in links[:5])))


def plan_oss(src_root, src_entries, scan, manifest, keys, prefix, root_iv=None, random=os.urandom, uploads=None):
    """What to delete, create and send so that the objects under ``prefix`` are the CIPHERDIR of the source.

    ``scan`` is None for a new CIPHERDIR, whose root IV is then ``root_iv``. Every object key is
    computed (new directories get their IV here) and checked against the OSS key length limit before
    anything is written. ``manifest`` None: every existing file is sent again.
    """
    if scan is not None:
        root_iv = scan.root_iv
    plan = OssPlan(src_root, prefix, root_iv)
    plan.uploads = list(uploads or [])
    existing = dict(scan.entries) if scan is not None else {}
    src_map = dict((e.rel, e) for e in src_entries)
    if scan is not None:
        plan.delete.extend(scan.stale)
        plan.stale = len(scan.stale)
    removed_dirs = []
    for rel in sorted(existing):
        entry = existing[rel]
        se = src_map.get(rel)
        if se is None or se.kind != entry.kind or (entry.kind == 'd' and entry.iv is None):
            if any(rel.startswith(d + b'/') for d in removed_dirs):
                continue
            plan.removed += 1
            plan.delete.extend(scan.keys_under(entry.crel))
            if entry.name_key:
                plan.delete.append(entry.name_key)
            if entry.kind == 'd':
                removed_dirs.append(rel)
    for rel in list(existing):
        se = src_map.get(rel)
        entry = existing[rel]
        if (se is None or se.kind != entry.kind or (entry.kind == 'd' and entry.iv is None)
                or any(rel.startswith(d + b'/') for d in removed_dirs)):
            del existing[rel]

    dirinfo = {b'': ('', root_iv)}

    def place(rel, longest_suffix):
        """(crel, name_key, name_data) of a new entry; refuses keys longer than OSS allows."""
        parent, dummy, base = rel.rpartition(b'/')
        pcrel, piv = dirinfo[parent]
        disk, name_data = cipher_entry_name(encrypt_name(keys.names, piv, base))
        crel = _sjoin(pcrel, disk)
        name_key = prefix + crel + LONGNAME_SUFFIX if name_data is not None else None
        if len((prefix + crel + longest_suffix).encode('utf-8')) > MAX_KEY_BYTES:
            raise GocryptfsError('the object key for %s would be longer than %d bytes (nesting too deep for OSS)'
                                 % (os.fsdecode(rel), MAX_KEY_BYTES))
        return crel, name_key, name_data

    for se in src_entries:
        if se.kind != 'd':
            continue
        plan.dirs_total += 1
        entry = existing.get(se.rel)
        if entry is not None:
            dirinfo[se.rel] = (entry.crel, entry.iv)
            continue
        crel, name_key, name_data = place(se.rel, '/' + DIRIV_NAME)
        iv = random_bytes_nonzero(random, DIRIV_LEN, 'directory IV')
        plan.mkdir.append(NewDir(se, crel, iv, name_key, name_data))
        dirinfo[se.rel] = (crel, iv)

    for se in src_entries:
        if se.kind != 'f':
            continue
        plan.files_total += 1
        size = se.st.st_size
        plan.bytes_total += size
        entry = existing.get(se.rel)
        src = os.path.join(src_root, se.rel)
        if entry is None:
            crel, name_key, name_data = place(se.rel, LONGNAME_SUFFIX)
            plan.jobs.append(FileJob(se, src, crel, prefix + crel, name_key, name_data))
            continue
        me = manifest.get(se.rel) if manifest is not None else None
        if (me is not None and me.get('size') == size and me.get('cipher') == entry.crel and me.get('etag')
                and _norm_etag(me.get('etag')) == entry.etag and entry.size == ciphertext_size(size)):
            if me.get('mtime_ns') == se.st.st_mtime_ns:
                plan.skip.append((se, entry, me))
                continue
            if me.get('digest'):
                plan.rehash.append((se, entry, me))
                continue
        plan.jobs.append(FileJob(se, src, entry.crel, prefix + entry.crel, replaces=True))
    return plan


def _resolve_rehash(plan, manifest):
    """Re-hash files whose mtime changed: unchanged content joins ``skip`` (mtime updated), else ``jobs``."""
    rehashed = len(plan.rehash)
    for se, entry, me in plan.rehash:
        src = os.path.join(plan.src_root, se.rel)
        hashes = hash_segments(src, se.st.st_size, STREAM_BLOCKS, manifest.segment_key)
        if manifest.content_digest(se.st.st_size, hashes) == me.get('digest'):
            me = dict(me, mtime_ns=se.st.st_mtime_ns)
            plan.skip.append((se, entry, me))
        else:
            plan.jobs.append(FileJob(se, src, entry.crel, plan.prefix + entry.crel, replaces=True))
    plan.rehash = []
    return rehashed


# ---------------------------------------------------------------------------------------------
# Encryption workers (forked processes writing into a shared memory ring)

class _StreamState:
    def __init__(self, content_key, segment_key, mem, slot_bytes, random):
        self.cipher = ContentCipher(content_key, random)
        self.segment_key = segment_key
        self.mem = memoryview(mem)
        self.slot_bytes = slot_bytes
        self.buffers = make_buffers()

    def run(self, task):
        slot, src, file_id, first_block, nblocks, size, seg, want_hash = task
        hasher = SegmentMac(self.segment_key, seg) if want_hash else None
        pos = base = slot * self.slot_bytes
        fd = os.open(src, os.O_RDONLY)
        try:
            for chunk in iter_encrypt_range(self.cipher, fd, file_id, first_block, nblocks, size,
                                            include_header=(first_block == 0), hasher=hasher, buffers=self.buffers):
                n = len(chunk)
                self.mem[pos:pos + n] = chunk
                pos += n
        finally:
            os.close(fd)
        return slot, pos - base, hasher.digest() if hasher is not None else None


_STREAM = None


def _stream_init(content_key, segment_key, mem, slot_bytes, random):
    global _STREAM  # pylint: disable=global-statement
    _STREAM = _StreamState(content_key, segment_key, mem, slot_bytes, random)


def _stream_run(task):
    return _STREAM.run(task)


def _cancel(pool):
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except TypeError:   # Python < 3.9
        pool.shutdown(wait=True)


def _noop():
    return os.getpid()


class _Done:
    """A finished "future" for in-process encryption (workers=1)."""

    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


class _Streamer:
    """Feed the planned files through the encryption ring into one MultipartStreamWriter per object."""

    def __init__(self, bucket, call, keys, segment_key, workers, part_size, upload_workers, digest, random, on_done, headers=None):
        self.bucket = bucket
        self.call = call
        self.keys = keys
        self.segment_key = segment_key
        self.workers = workers
        self.part_size = part_size
        self.upload_workers = upload_workers
        self.digest = digest
        self.random = random
        self.on_done = on_done
        self.headers = headers
        self.slot_bytes = HEADER_LEN + STREAM_BLOCKS * CBLOCK_SIZE
        self.nslots = 2 * workers if workers > 1 else 1
        self.peak_slots = 0

    def _writer(self, job):
        part_size = choose_part_size(job.csize, self.part_size)
        if job.csize < part_size:
            part_size = max(MIN_PART_SIZE, job.csize + 1)   # one PutObject, no oversized buffer
        nparts = -(-job.csize // part_size) if job.csize else 1
        return MultipartStreamWriter(self.bucket, job.key, call=self.call, part_size=part_size,
                                     workers=max(1, min(self.upload_workers, nparts)), max_pending=self.upload_workers,
                                     headers=self.headers).start()

    def _chunks(self, jobs, file_ids):
        for job in jobs:
            if job.size == 0:
                yield job, None, 0, 0
                continue
            job.file_id = file_ids.new_file_id()
            nblocks = block_count(job.size)
            for seg in range(job.nseg):
                first = seg * STREAM_BLOCKS
                yield job, seg, first, min(STREAM_BLOCKS, nblocks - first)

    def run(self, jobs):
        mem = mmap.mmap(-1, self.nslots * self.slot_bytes)
        view = memoryview(mem)
        pool = None
        state = None
        closer = None
        closing = {}
        current = []
        try:
            if self.workers > 1:
                ctx = multiprocessing.get_context('fork')
                pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=ctx, initializer=_stream_init,
                    initargs=(self.keys.content, self.segment_key, mem, self.slot_bytes, self.random))
                pool.submit(_noop).result()     # fork every worker now, before this process starts threads
            else:
                state = _StreamState(self.keys.content, self.segment_key, mem, self.slot_bytes, self.random)
            closer = concurrent.futures.ThreadPoolExecutor(max_workers=CLOSERS, thread_name_prefix='gocryptfs-oss-close')
            chunks = self._chunks(jobs, ContentCipher(self.keys.content, self.random))
            free = list(range(self.nslots))
            inflight = collections.deque()
            exhausted = False

            def reap(futures):
                for fut in futures:
                    job = closing.pop(fut)
                    result = fut.result()
                    if result['size'] != job.csize:
                        raise GocryptfsError('internal error: %s has %d bytes, want %d' % (job.key, result['size'], job.csize))
                    self.on_done(job, result)

            def finish(job):
                st_now = os.stat(job.src)
                if st_now.st_size != job.size or st_now.st_mtime_ns != job.se.st.st_mtime_ns:
                    raise GocryptfsError('%s changed while being encrypted; run again' % os.fsdecode(job.se.rel))
                while len(closing) >= CLOSERS:
                    done, dummy = concurrent.futures.wait(list(closing), return_when=concurrent.futures.FIRST_COMPLETED)
                    reap(done)
                current.remove(job)
                closing[closer.submit(job.writer.close)] = job

            while True:
                while free and not exhausted:
                    item = next(chunks, None)
                    if item is None:
                        exhausted = True
                        break
                    job, seg, first, nblocks = item
                    if seg is None:
                        inflight.append((None, job, None, None))
                        continue
                    slot = free.pop()
                    task = (slot, job.src, job.file_id, first, nblocks, job.size, seg, self.digest)
                    fut = pool.submit(_stream_run, task) if pool is not None else _Done(state.run(task))
                    inflight.append((fut, job, seg, slot))
                    self.peak_slots = max(self.peak_slots, self.nslots - len(free))
                if not inflight:
                    break
                fut, job, seg, slot = inflight.popleft()
                if job.writer is None:
                    job.writer = self._writer(job)
                    current.append(job)
                if fut is not None:
                    rslot, nbytes, tag = fut.result()
                    base = rslot * self.slot_bytes
                    job.writer.write(view[base:base + nbytes])
                    free.append(slot)
                    job.hashes[seg] = tag
                    job.done += 1
                if job.done == job.nseg:
                    finish(job)
                ready = [f for f in closing if f.done()]
                if ready:
                    reap(ready)
            reap(list(concurrent.futures.as_completed(list(closing))))
        except BaseException:
            if pool is not None:
                _cancel(pool)
                pool = None
            for job in current:
                try:
                    job.writer.abort()
                except AlicloudError:
                    pass
            for fut in list(closing):
                try:
                    reap([fut])
                except Exception:  # pylint: disable=broad-except
                    pass        # the writer aborted its own upload; the first error is what matters
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            if closer is not None:
                closer.shutdown(wait=True)
            if state is not None:
                state.mem.release()
            view.release()
            try:
                mem.close()
            except BufferError:
                pass        # a view is still referenced (a traceback); the mapping goes with it


# ---------------------------------------------------------------------------------------------
# The run

def _stats(plan, created, check_mode, workers, note):
    return dict(
        files_total=plan.files_total,
        bytes_total=plan.bytes_total,
        files_encrypted=len(plan.jobs),
        files_skipped=len(plan.skip),
        files_rehashed=0,
        bytes_encrypted=plan.bytes_to_encrypt,
        entries_removed=plan.removed,
        stale_removed=plan.stale,
        dirs_created=len(plan.mkdir),
        dirs_total=plan.dirs_total,
        symlinks_written=0,
        metadata_updated=0,
        objects_written=plan.objects_to_write(created),
        objects_deleted=len(plan.delete),
        uploads_aborted=len(plan.uploads),
        bytes_uploaded=sum(job.csize for job in plan.jobs),
        created=created,
        check_mode=check_mode,
        workers=workers,
        manifest_ignored=note,
    )


def _changed(stats):
    return bool(stats['created'] or stats['files_encrypted'] or stats['objects_deleted'] or stats['dirs_created']
                or stats['uploads_aborted'])


def encrypt_tree_to_oss(src, bucket, prefix, password, call, workers=None, manifest_path=None, check_mode=False, digest=True,
                        part_size=DEFAULT_PART_SIZE, upload_workers=DEFAULT_UPLOAD_WORKERS, headers=None, verify=False,
                        scrypt_n=SCRYPT_N, random=os.urandom):
    """Make the objects under ``prefix`` of ``bucket`` (an ``oss2.Bucket``) the gocryptfs CIPHERDIR of ``src``.

    ``call`` runs one SDK call through the retry policy (``module.call``, or ``oss.retry_call()``).
    ``workers`` encryption processes (default: usable CPUs); ``part_size`` and ``upload_workers`` are
    passed to each object's ``MultipartStreamWriter``. Without ``manifest_path`` every file is sent
    again. Nothing is written before the password has opened an existing ``gocryptfs.conf`` and every
    object key has been computed. In ``check_mode`` only reads are made. ``verify`` runs
    ``verify_oss_tree`` afterwards (not in check mode) and puts its list under ``problems``.
    Returns a dict of counters.
    """
    started = time.monotonic()
    prefix = normalize_prefix(prefix)
    workers = default_workers() if not workers else int(workers)
    if workers < 1:
        raise GocryptfsError('workers must be >= 1')
    if part_size_error(part_size):
        raise GocryptfsError('part_size %s' % part_size_error(part_size))
    if not 1 <= upload_workers <= 64:
        raise GocryptfsError('upload_workers must be between 1 and 64')
    src_root = os.fsencode(os.path.abspath(src))
    src_entries = scan_source(src_root)
    _refuse_symlinks(src_entries)

    cdir = open_oss_cipherdir(call, bucket, prefix, password, scrypt_n=scrypt_n, random=random)
    keys = Keys(cdir.master_key)
    manifest = Manifest(cdir.master_key, STREAM_BLOCKS)
    note = None
    if manifest_path:
        note = manifest.load(manifest_path)
        if note is not None:
            manifest.entries = {}
    scan = None
    reads = 0
    if not cdir.created:
        scan = scan_oss(call, bucket, prefix, cdir.objects, keys)
        reads = scan.reads
        if scan.unknown:
            raise GocryptfsError('oss://%s/%s holds objects that do not decrypt with this key (not this CIPHERDIR, or '
                                 'written with another password?): %s' % (cdir.bucket_name, prefix, ', '.join(scan.unknown[:10])))
    uploads = list_uploads(call, bucket, prefix) if not cdir.created else []
    root_iv = random_bytes_nonzero(random, DIRIV_LEN, 'directory IV') if cdir.created else None
    plan = plan_oss(src_root, src_entries, scan, manifest if manifest_path else None, keys, prefix, root_iv, random, uploads)
    rehashed = _resolve_rehash(plan, manifest)
    stats = _stats(plan, cdir.created, check_mode, workers, note)
    stats['files_rehashed'] = rehashed
    stats['dest'] = cdir.url
    stats['reads'] = reads
    if check_mode:
        stats['changed'] = _changed(stats)
        stats['seconds'] = round(time.monotonic() - started, 3)
        stats['throughput_mib_s'] = 0.0
        return stats

    fresh = Manifest(cdir.master_key, STREAM_BLOCKS)
    for se, entry, me in plan.skip:
        fresh.entries[fresh.path_id(se.rel)] = dict(me)
    lock = threading.Lock()
    last_save = [time.monotonic()]
    written = [0]
    uploaded = [0]

    def save(force=False):
        if not manifest_path:
            return
        with lock:
            if force or time.monotonic() - last_save[0] >= MANIFEST_SAVE_SECONDS:
                fresh.save(manifest_path)
                last_save[0] = time.monotonic()

    def on_done(job, result):
        value = fresh.content_digest(job.size, job.hashes) if digest else None
        with lock:
            fresh.put(job.se.rel, job.size, job.se.st.st_mtime_ns, job.se.st.st_mode & 0o7777, value, job.crel)
            fresh.entries[fresh.path_id(job.se.rel)]['etag'] = _norm_etag(result.get('etag'))
            written[0] += 1
            uploaded[0] += result['size']
        save()

    def put(key, data):
        put_small_object(call, bucket, key, data, headers)
        written[0] += 1

    try:
        if plan.delete:
            delete_objects(call, bucket, sorted(set(plan.delete)))
        for upload in plan.uploads:
            abort_upload(call, bucket, upload['key'], upload['upload_id'])
        if cdir.created:
            put(prefix + DIRIV_NAME, plan.root_iv)
            put(prefix + CONF_NAME, cdir.conf)
        for nd in plan.mkdir:
            if nd.name_data is not None:
                put(nd.name_key, nd.name_data)
            put(prefix + nd.crel + '/' + DIRIV_NAME, nd.iv)
        for job in plan.jobs:
            if job.name_data is not None:
                put(job.name_key, job.name_data)
        streamer = _Streamer(bucket, call, keys, fresh.segment_key, workers, part_size, upload_workers, digest, random, on_done,
                             headers)
        streamer.run(plan.jobs)
    finally:
        save(force=True)
    stats['objects_written'] = written[0]
    stats['bytes_uploaded'] = uploaded[0]
    stats['changed'] = _changed(stats)
    seconds = time.monotonic() - started
    stats['seconds'] = round(seconds, 3)
    stats['throughput_mib_s'] = round(stats['bytes_encrypted'] / 1048576.0 / seconds, 1) if seconds > 0 and stats['bytes_encrypted'] else 0.0
    if verify:
        started = time.monotonic()
        stats['problems'] = verify_oss_tree(src_root, bucket, prefix, cdir.master_key, call, workers=min(4, upload_workers))
        stats['verify_seconds'] = round(time.monotonic() - started, 3)
    return stats


# ---------------------------------------------------------------------------------------------
# Verification: ranged GETs + this package's reader

def _get_range(call, bucket, key, start, end, etag):
    length = end - start + 1

    def once():
        stream = bucket.get_object(key, byte_range=(start, end), headers={'If-Match': '"%s"' % etag} if etag else None)
        data = stream.read(length)
        while 0 < len(data) < length:
            more = stream.read(length - len(data))
            if not more:
                break
            data += more
        if len(data) != length:
            raise ConnectionError('%s: got %d of %d bytes at offset %d' % (key, len(data), length, start))
        return data
    return call(once, operation='read bytes %d-%d of %s' % (start, end, key))


def object_plaintext_sha256(call, bucket, key, csize, content_key, etag=None, range_blocks=STREAM_BLOCKS):
    """SHA-256 of the plaintext of one ciphertext object, read with ranged GETs of ``range_blocks`` blocks."""
    digest = hashlib.sha256()
    size = plaintext_size(csize)
    if size == 0:
        if csize == HEADER_LEN:
            parse_header(_get_range(call, bucket, key, 0, HEADER_LEN - 1, etag))
        return digest.hexdigest()
    cipher = ContentCipher(content_key)
    out = memoryview(bytearray(range_blocks * BLOCK_SIZE))
    total = block_count(size)
    file_id = None
    block = 0
    while block < total:
        count = min(range_blocks, total - block)
        start = 0 if block == 0 else cipher_offset(block)
        end = min(cipher_offset(block + count), csize) - 1
        data = memoryview(_get_range(call, bucket, key, start, end, etag))
        if block == 0:
            file_id = parse_header(bytes(data[:HEADER_LEN]))
            data = data[HEADER_LEN:]
        n = cipher.decrypt_blocks(file_id, block, data, out)
        digest.update(out[:n])
        block += count
    return digest.hexdigest()


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb', buffering=0) as handle:
        for data in iter(lambda: handle.read(1 << 20), b''):
            digest.update(data)
    return digest.hexdigest()


def verify_oss_tree(src, bucket, prefix, master_key, call, workers=4):
    """Compare the plaintext tree ``src`` with the CIPHERDIR under ``prefix``, read back from OSS.

    Lists the prefix, decrypts every name, checks the structure and every object's size, then
    downloads every file object with ranged GETs, decrypts it with this package's reader and compares
    its SHA-256 with the source file's (``workers`` files at a time, in threads). Costs one GET of
    every byte written. Returns a list of problems (empty when everything matches).
    """
    prefix = normalize_prefix(prefix)
    keys = Keys(master_key)
    src_root = os.fsencode(os.path.abspath(src))
    objects = list_objects(call, bucket, prefix)
    scan = scan_oss(call, bucket, prefix, objects, keys)
    problems = ['undecryptable object %s' % key for key in scan.unknown]
    src_map = dict((e.rel, e) for e in scan_source(src_root))
    for rel in sorted(set(src_map) - set(scan.entries)):
        problems.append('missing in OSS: %s' % os.fsdecode(rel))
    for rel in sorted(set(scan.entries) - set(src_map)):
        problems.append('not in the source: %s' % os.fsdecode(rel))
    pairs = []
    for rel in sorted(set(src_map) & set(scan.entries)):
        se, entry = src_map[rel], scan.entries[rel]
        if se.kind != entry.kind:
            problems.append('type differs: %s' % os.fsdecode(rel))
        elif se.kind == 'f':
            if entry.size != ciphertext_size(se.st.st_size):
                problems.append('size differs: %s (object %d bytes, want %d)' % (os.fsdecode(rel), entry.size, ciphertext_size(se.st.st_size)))
                continue
            pairs.append((rel, entry))

    def check(pair):
        rel, entry = pair
        try:
            got = object_plaintext_sha256(call, bucket, prefix + entry.crel, entry.size, keys.content, entry.etag)
        except CorruptDataError as exc:
            return '%s: %s' % (os.fsdecode(rel), exc)
        if got != _sha256_file(os.path.join(src_root, rel)):
            return 'content differs: %s' % os.fsdecode(rel)
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix='gocryptfs-oss-verify') as pool:
        problems.extend(p for p in pool.map(check, pairs) if p)
    return problems
