# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-tree operations on a gocryptfs CIPHERDIR: open/init, scan, plan, encrypt, manifest, read back.

How a run works (``encrypt_tree``):

1. scan the plaintext tree (regular files, directories, symlinks; anything else is refused);
2. scan the existing CIPHERDIR with the master key, decrypting every name (so the mapping plaintext
   path -> ciphertext path comes from the directory itself, not from a side file);
3. load the manifest (if any) and plan: entries that vanished or changed type are removed, new
   directories get a fresh diriv (existing ones keep theirs, so unchanged files keep their names),
   a file whose size and mtime match the manifest is skipped, a file whose size matches but whose
   mtime changed is re-hashed and only re-encrypted if the keyed digest differs;
4. encrypt in worker processes (fork): big files are cut into segments of ``segment_blocks`` blocks
   written with ``os.pwrite`` at their ciphertext offsets; small files are batched; each worker
   keeps two buffers of ``chunk_blocks`` blocks, so memory does not depend on file sizes. Each file
   is written under a temporary name (``.cai-partial-*``, never a valid gocryptfs name) and renamed
   into place when complete;
5. set modes and mtimes (directories bottom-up, last), then write the manifest atomically.

The manifest is a JSON file kept OUTSIDE the CIPHERDIR (gocryptfs reports any entry it cannot
decrypt as corruption, and ``-fsck`` would flag it). It reveals nothing about the plaintext beyond
what the CIPHERDIR already shows: paths are HMAC-SHA256 values, content digests are keyed, all
under a key derived from the master key with HKDF (info ``cai-ack manifest v1``), and the whole
document carries an HMAC so a forged or foreign manifest is ignored (everything is re-encrypted).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import multiprocessing
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import time

from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_core import (
    BLOCK_SIZE,
    CHUNK_BLOCKS,
    CONF_NAME,
    DIRIV_LEN,
    DIRIV_NAME,
    LONGNAME_FILE_MAX,
    LONGNAME_SUFFIX,
    SCRYPT_N,
    DEFAULT_CREATOR,
    ContentCipher,
    CorruptDataError,
    SegmentMac,
    GocryptfsError,
    Keys,
    block_count,
    cipher_entry_name,
    cipher_offset,
    ciphertext_size,
    decrypt_name,
    decrypt_symlink_target,
    encrypt_name,
    encrypt_symlink_target,
    hkdf_sha256,
    init_conf,
    iter_decrypt_file,
    iter_encrypt_range,
    load_master_key,
    long_name_hash,
    make_buffers,
    make_header,
    name_type,
    normalize_password,
    random_bytes_nonzero,
)

MANIFEST_FORMAT = 'confidential_ai.ack gocryptfs manifest'
MANIFEST_VERSION = 1
MANIFEST_INFO = b'cai-ack manifest v1'
SEGMENT_MAC_INFO = b'cai-ack manifest v1 segment mac'
SEGMENT_BLOCKS = 16384          # 64 MiB of plaintext per parallel work unit and per digest segment
BATCH_BYTES = 16 << 20          # small files are batched into tasks of about this size
BATCH_ITEMS = 64
TMP_PREFIX = '.cai-partial-'
_U64 = struct.Struct('>Q')


def _join(parent, name):
    return parent + b'/' + name if parent else name


def _parent(rel):
    idx = rel.rfind(b'/')
    return rel[:idx] if idx >= 0 else b''


def _basename(rel):
    return rel[rel.rfind(b'/') + 1:]


def _show(rel):
    return os.fsdecode(rel) if isinstance(rel, bytes) else rel


def _mode(st):
    return stat.S_IMODE(st.st_mode)


def _write_new_file(path, data, mode):
    """Create ``path`` (must not exist) with ``data`` and final ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def _atomic_write(path, data, mode):
    """Write ``data`` to ``path`` through a temporary file in the same directory and rename."""
    path = os.fsencode(path)
    fd, tmp = tempfile.mkstemp(prefix=os.fsencode(TMP_PREFIX), dir=os.path.dirname(path) or b'.')
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_diriv(directory):
    """Read and check the gocryptfs.diriv of a ciphertext directory (bytes or str path)."""
    path = os.path.join(directory, DIRIV_NAME if isinstance(directory, str) else os.fsencode(DIRIV_NAME))
    try:
        with open(path, 'rb') as handle:
            iv = handle.read(DIRIV_LEN + 1)
    except OSError as exc:
        raise CorruptDataError('cannot read %s: %s' % (_show(path), exc.strerror))
    if len(iv) != DIRIV_LEN or not any(iv):
        raise CorruptDataError('%s is not 16 non-zero bytes' % _show(path))
    return iv


def _new_diriv(directory, random):
    iv = random_bytes_nonzero(random, DIRIV_LEN, 'directory IV')
    _write_new_file(os.path.join(directory, os.fsencode(DIRIV_NAME)), iv, 0o444)
    return iv


# ---------------------------------------------------------------------------------------------
# Opening / creating a CIPHERDIR

def open_cipherdir(cipherdir, password, create=True, check_mode=False, scrypt_n=SCRYPT_N, creator=DEFAULT_CREATOR, random=os.urandom):
    """Open an existing CIPHERDIR with ``password`` or create a new one.

    Returns ``(master_key, created)``. ``master_key`` is None only in check mode when the CIPHERDIR
    does not exist yet. A wrong password raises WrongPasswordError before anything is written. An
    existing non-empty directory without gocryptfs.conf is refused.
    """
    password = normalize_password(password)
    conf_path = os.path.join(cipherdir, CONF_NAME)
    if os.path.exists(conf_path):
        with open(conf_path, 'rb') as handle:
            conf = handle.read(1 << 20)
        master_key = load_master_key(conf, password)
        read_diriv(cipherdir)
        return master_key, False
    if os.path.lexists(cipherdir):
        if not os.path.isdir(cipherdir):
            raise GocryptfsError('%s exists and is not a directory' % cipherdir)
        if os.listdir(cipherdir):
            raise GocryptfsError('%s is not empty and has no %s; refusing to write into it' % (cipherdir, CONF_NAME))
    if not create:
        raise GocryptfsError('%s is not a gocryptfs directory (no %s)' % (cipherdir, CONF_NAME))
    if check_mode:
        return None, True
    conf, master_key = init_conf(password, scrypt_n=scrypt_n, creator=creator, random=random)
    if not os.path.isdir(cipherdir):
        os.makedirs(cipherdir, 0o700)
    _new_diriv(os.fsencode(cipherdir), random)
    _atomic_write(conf_path, conf, 0o400)
    return master_key, True


# ---------------------------------------------------------------------------------------------
# Scanning

class SrcEntry:
    """One plaintext entry: relative path (bytes), kind 'f'/'d'/'l', lstat result, link target."""

    __slots__ = ('rel', 'kind', 'st', 'target')

    def __init__(self, rel, kind, st, target=None):
        self.rel = rel
        self.kind = kind
        self.st = st
        self.target = target


class CipherEntry:
    """One ciphertext entry: plaintext rel path, ciphertext rel path (bytes), kind, lstat, dir IV."""

    __slots__ = ('rel', 'crel', 'kind', 'st', 'iv', 'name_file')

    def __init__(self, rel, crel, kind, st, iv=None, name_file=None):
        self.rel = rel
        self.crel = crel
        self.kind = kind
        self.st = st
        self.iv = iv
        self.name_file = name_file


def _kind(st):
    if stat.S_ISREG(st.st_mode):
        return 'f'
    if stat.S_ISDIR(st.st_mode):
        return 'd'
    if stat.S_ISLNK(st.st_mode):
        return 'l'
    return None


def scan_source(src):
    """List a plaintext tree top-down (parents before children, names sorted). Returns [SrcEntry]."""
    root = os.fsencode(src)
    if not os.path.isdir(root):
        raise GocryptfsError('source %s is not a directory' % _show(root))
    out = []
    stack = [b'']
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
            items = sorted(it, key=lambda e: e.name)
        subdirs = []
        for item in items:
            rel = _join(rel_dir, item.name)
            if len(item.name) > 255:
                raise GocryptfsError('name longer than 255 bytes: %s' % _show(rel))
            st = item.stat(follow_symlinks=False)
            kind = _kind(st)
            if kind is None:
                raise GocryptfsError('%s is not a regular file, directory or symlink (devices, FIFOs and sockets are not supported)'
                                     % _show(rel))
            entry = SrcEntry(rel, kind, st, os.readlink(item.path) if kind == 'l' else None)
            out.append(entry)
            if kind == 'd':
                subdirs.append(rel)
        stack.extend(reversed(subdirs))
    # DFS pre-order above visits a directory's files before its subdirectories' contents: parents
    # always precede children, which is all the writers need.
    return out


class CipherScan:
    """Result of :func:`scan_cipherdir`."""

    def __init__(self):
        self.entries = {}       # plaintext rel -> CipherEntry
        self.stale = []         # ciphertext rel paths we may delete (our partial files, orphan .name files)
        self.unknown = []       # ciphertext rel paths that do not decrypt with this key
        self.root_iv = None


def scan_cipherdir(cipherdir, keys):
    """Walk a CIPHERDIR, decrypting every name with ``keys`` (a Keys instance)."""
    root = os.fsencode(cipherdir)
    scan = CipherScan()
    scan.root_iv = read_diriv(root)
    stack = [(b'', b'', scan.root_iv)]
    while stack:
        crel_dir, rel_dir, iv = stack.pop()
        abs_dir = os.path.join(root, crel_dir) if crel_dir else root
        names = sorted(os.listdir(abs_dir))
        name_files = set(n for n in names if name_type(os.fsdecode(n)) == 'longname_file')
        used_name_files = set()
        for bname in names:
            cname = os.fsdecode(bname)
            ctype = name_type(cname)
            crel = _join(crel_dir, bname)
            if ctype in ('diriv', 'longname_file') or (ctype == 'conf' and not crel_dir):
                continue
            if cname.startswith(TMP_PREFIX):
                scan.stale.append(crel)
                continue
            name_file = None
            try:
                if ctype == 'long':
                    nfile = bname + os.fsencode(LONGNAME_SUFFIX)
                    if nfile not in name_files:
                        raise CorruptDataError('missing .name file')
                    with open(os.path.join(abs_dir, nfile), 'rb') as handle:
                        encoded = handle.read(LONGNAME_FILE_MAX + 1)
                    if len(encoded) > LONGNAME_FILE_MAX:
                        raise CorruptDataError('.name file too big')
                    encoded = encoded.decode('ascii')
                    if long_name_hash(encoded) != cname:
                        raise CorruptDataError('.name file does not match its hash')
                    used_name_files.add(nfile)
                    name_file = _join(crel_dir, nfile)
                else:
                    encoded = cname
                plain = decrypt_name(keys.names, iv, encoded)
            except (CorruptDataError, UnicodeDecodeError):
                scan.unknown.append(crel)
                continue
            rel = _join(rel_dir, plain)
            st = os.lstat(os.path.join(abs_dir, bname))
            kind = _kind(st)
            if kind is None or rel in scan.entries:
                scan.unknown.append(crel)
                continue
            entry = CipherEntry(rel, crel, kind, st, name_file=name_file)
            if kind == 'd':
                try:
                    entry.iv = read_diriv(os.path.join(abs_dir, bname))
                except CorruptDataError:
                    entry.iv = None     # broken directory: the planner replaces it
                if entry.iv is not None:
                    stack.append((crel, rel, entry.iv))
            scan.entries[rel] = entry
        for nfile in sorted(name_files - used_name_files):
            base = nfile[:-len(LONGNAME_SUFFIX)]
            if base not in names:
                scan.stale.append(_join(crel_dir, nfile))
    return scan


def walk_cipherdir(cipherdir, master_key):
    """Return the CipherEntry list of a CIPHERDIR (sorted by plaintext path); unknown entries raise."""
    scan = scan_cipherdir(cipherdir, Keys(master_key))
    if scan.unknown:
        raise CorruptDataError('entries that do not decrypt with this key: %s'
                               % ', '.join(_show(c) for c in scan.unknown[:10]))
    return [scan.entries[k] for k in sorted(scan.entries)]


# ---------------------------------------------------------------------------------------------
# Manifest

class Manifest:
    """Keyed record of what was encrypted: plaintext path id -> size, mtime, mode, digest, ciphertext path.

    Keys and digests are HMAC-SHA256 under ``HKDF(master key, info="cai-ack manifest v1")``.
    """

    def __init__(self, master_key, segment_blocks=SEGMENT_BLOCKS):
        self.key = hkdf_sha256(master_key, MANIFEST_INFO)
        self.segment_key = hkdf_sha256(master_key, SEGMENT_MAC_INFO)
        self.segment_blocks = segment_blocks
        self.entries = {}

    def _mac(self, *parts):
        return hmac.new(self.key, b''.join(parts), hashlib.sha256).hexdigest()

    def path_id(self, rel):
        return self._mac(b'path\0', rel)

    def key_check(self):
        return self._mac(b'key-check\0')

    def content_digest(self, size, segment_hashes):
        """Keyed digest of a file: HMAC over its size and the keyed hash (``SegmentMac``) of each segment."""
        return self._mac(b'content\0', _U64.pack(size), _U64.pack(self.segment_blocks), b''.join(segment_hashes))

    def get(self, rel):
        return self.entries.get(self.path_id(rel))

    def put(self, rel, size, mtime_ns, mode, digest, crel):
        self.entries[self.path_id(rel)] = {
            'size': size, 'mtime_ns': mtime_ns, 'mode': mode, 'digest': digest, 'cipher': os.fsdecode(crel),
        }

    def _body(self):
        return {
            'format': MANIFEST_FORMAT,
            'version': MANIFEST_VERSION,
            'key_check': self.key_check(),
            'segment_blocks': self.segment_blocks,
            'entries': self.entries,
        }

    def _body_mac(self, body):
        return self._mac(b'manifest\0', json.dumps(body, sort_keys=True, separators=(',', ':')).encode('utf-8'))

    def dumps(self):
        body = self._body()
        body['mac'] = self._body_mac(self._body())
        return (json.dumps(body, sort_keys=True, indent=1) + '\n').encode('utf-8')

    def loads(self, data):
        """Load entries from ``data``. Returns None when accepted, else the reason it was ignored."""
        try:
            doc = json.loads(data.decode('utf-8'))
        except (ValueError, UnicodeDecodeError):
            return 'not valid JSON'
        if not isinstance(doc, dict) or doc.get('format') != MANIFEST_FORMAT or doc.get('version') != MANIFEST_VERSION:
            return 'not a version %d manifest' % MANIFEST_VERSION
        if doc.get('key_check') != self.key_check():
            return 'written for another master key'
        mac = doc.pop('mac', None)
        if not isinstance(mac, str) or not hmac.compare_digest(mac, self._body_mac(doc)):
            return 'its MAC does not verify'
        if doc.get('segment_blocks') != self.segment_blocks:
            return 'written with another segment size'
        entries = doc.get('entries')
        if not isinstance(entries, dict):
            return 'no entries'
        self.entries = entries
        return None

    def load(self, path):
        try:
            with open(path, 'rb') as handle:
                data = handle.read()
        except FileNotFoundError:
            return 'not found'
        return self.loads(data)

    def save(self, path):
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        _atomic_write(path, self.dumps(), 0o600)


def hash_segments(path, size, segment_blocks, segment_key, chunk=1 << 20):
    """``SegmentMac`` of each ``segment_blocks``-block segment of a plaintext file (for re-hash checks)."""
    seg_bytes = segment_blocks * BLOCK_SIZE
    hashes = []
    with open(path, 'rb', buffering=0) as handle:
        remaining = size
        while remaining > 0:
            h = SegmentMac(segment_key, len(hashes))
            todo = min(seg_bytes, remaining)
            while todo > 0:
                data = handle.read(min(chunk, todo))
                if not data:
                    raise GocryptfsError('%s shrank while being read' % _show(path))
                h.update(data)
                todo -= len(data)
            remaining -= min(seg_bytes, remaining)
            hashes.append(h.digest())
    return hashes


# ---------------------------------------------------------------------------------------------
# Planning

class Plan:
    """What a run will do. Lists hold SrcEntry / CipherEntry objects."""

    def __init__(self):
        self.stale = []         # ciphertext rel paths to delete
        self.remove = []        # CipherEntry: gone from the source or changed type
        self.mkdir = []         # SrcEntry dirs to create
        self.dirs = []          # (SrcEntry, CipherEntry|None) every directory, top-down
        self.encrypt = []       # (SrcEntry, CipherEntry|None)
        self.skip = []          # (SrcEntry, CipherEntry, manifest entry)
        self.rehash = []        # (SrcEntry, CipherEntry, manifest entry)
        self.links = []         # (SrcEntry, CipherEntry|None) to (re)write
        self.links_ok = []      # (SrcEntry, CipherEntry)
        self.files_total = 0
        self.bytes_total = 0

    @property
    def bytes_to_encrypt(self):
        return sum(se.st.st_size for se, dummy in self.encrypt)


def make_plan(src_entries, scan, manifest, keys, root=None, digest=True):
    """Compare the source with the scanned CIPHERDIR ``root`` (``scan`` may be None for a new one)."""
    plan = Plan()
    src_map = dict((e.rel, e) for e in src_entries)
    existing = dict(scan.entries) if scan is not None else {}
    if scan is not None:
        plan.stale = list(scan.stale)
    removed_dirs = []
    for rel in sorted(existing):
        ce = existing[rel]
        se = src_map.get(rel)
        if se is None or se.kind != ce.kind or (ce.kind == 'd' and ce.iv is None):
            if any(rel.startswith(d + b'/') for d in removed_dirs):
                continue
            plan.remove.append(ce)
            if ce.kind == 'd':
                removed_dirs.append(rel)
    for ce in plan.remove:
        existing.pop(ce.rel, None)
    for rel in list(existing):
        if any(rel.startswith(d + b'/') for d in removed_dirs):
            del existing[rel]

    for se in src_entries:
        ce = existing.get(se.rel)
        if se.kind == 'd':
            if ce is None:
                plan.mkdir.append(se)
            plan.dirs.append((se, ce))
        elif se.kind == 'l':
            ok = False
            if ce is not None and keys is not None:
                try:
                    stored = os.readlink(os.path.join(root, ce.crel))
                    ok = decrypt_symlink_target(keys.content, stored) == se.target
                except (OSError, CorruptDataError):
                    ok = False
            if ok:
                plan.links_ok.append((se, ce))
            else:
                plan.links.append((se, ce))
        else:
            plan.files_total += 1
            size = se.st.st_size
            plan.bytes_total += size
            me = manifest.get(se.rel) if (manifest is not None and ce is not None) else None
            if (me is not None and me.get('size') == size and me.get('cipher') == os.fsdecode(ce.crel)
                    and ce.st.st_size == ciphertext_size(size)):
                if me.get('mtime_ns') == se.st.st_mtime_ns:
                    plan.skip.append((se, ce, me))
                    continue
                if digest and me.get('digest'):
                    plan.rehash.append((se, ce, me))
                    continue
            plan.encrypt.append((se, ce))
    return plan


# ---------------------------------------------------------------------------------------------
# Parallel encryption

class _WorkerState:
    """Per-process encryption state: one AES-GCM context, one pair of buffers."""

    def __init__(self, content_key, segment_key, chunk_blocks, random):
        self.cipher = ContentCipher(content_key, random)
        self.segment_key = segment_key
        self.buffers = make_buffers(chunk_blocks)

    def run(self, items):
        results = []
        for (src, tmp, file_id, first_block, nblocks, size, want_hash, job, seg) in items:
            hasher = SegmentMac(self.segment_key, seg) if want_hash and self.segment_key else None
            src_fd = os.open(src, os.O_RDONLY)
            try:
                dst_fd = os.open(tmp, os.O_WRONLY)
                try:
                    offset = cipher_offset(first_block)
                    for chunk in iter_encrypt_range(self.cipher, src_fd, file_id, first_block, nblocks, size,
                                                    hasher=hasher, buffers=self.buffers):
                        done = 0
                        total = len(chunk)
                        while done < total:
                            done += os.pwrite(dst_fd, chunk[done:], offset + done)
                        offset += total
                finally:
                    os.close(dst_fd)
            finally:
                os.close(src_fd)
            plain = min(size, (first_block + nblocks) * BLOCK_SIZE) - first_block * BLOCK_SIZE
            results.append((job, seg, plain, hasher.digest() if hasher is not None else None))
        return results


_STATE = None


def _worker_init(content_key, segment_key, chunk_blocks, random):
    global _STATE  # pylint: disable=global-statement
    _STATE = _WorkerState(content_key, segment_key, chunk_blocks, random)


def _worker_run(items):
    return _STATE.run(items)


def default_workers():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run_tasks(tasks, workers, content_key, segment_key, chunk_blocks, on_result, random=os.urandom):
    """Run encryption tasks (lists of items) in ``workers`` processes, at most 2 per worker queued.

    ``tasks`` may be a generator (it is consumed lazily, so the caller can create files as they are
    needed). ``on_result`` is called in this process with each task's result list.
    """
    if workers <= 1:
        state = _WorkerState(content_key, segment_key, chunk_blocks, random)
        for task in tasks:
            on_result(state.run(task))
        return
    ctx = multiprocessing.get_context('fork')
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                                  initargs=(content_key, segment_key, chunk_blocks, random))
    ok = False
    try:
        inflight = set()
        for task in tasks:
            if len(inflight) >= 2 * workers:
                done, inflight = concurrent.futures.wait(inflight, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    on_result(fut.result())
            inflight.add(pool.submit(_worker_run, task))
        for fut in concurrent.futures.as_completed(inflight):
            on_result(fut.result())
        ok = True
    finally:
        _shutdown(pool, cancel=not ok)


def _shutdown(pool, cancel):
    if cancel:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        except TypeError:   # Python < 3.9
            pass
    pool.shutdown(wait=True)


class _FileJob:
    __slots__ = ('se', 'src', 'tmp', 'final', 'name_data', 'remaining', 'hashes', 'crel')

    def __init__(self, se, src, tmp, final, name_data, crel):
        self.se = se
        self.src = src
        self.tmp = tmp
        self.final = final
        self.name_data = name_data
        self.remaining = 0
        self.hashes = []
        self.crel = crel


# ---------------------------------------------------------------------------------------------
# Writing (python method)

def _unlink_quiet(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _make_writable_tree(path):
    for dirpath, dirnames, dummy in os.walk(path):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    os.chmod(path, 0o700)


def _remove_cipher_entry(root, ce):
    path = os.path.join(root, ce.crel)
    if ce.kind == 'd':
        _make_writable_tree(path)
        shutil.rmtree(path)
    else:
        _unlink_quiet(path)
    if ce.name_file is not None:
        _unlink_quiet(os.path.join(root, ce.name_file))


def _set_times(path, st, follow=True):
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=follow)


def _meta_differs(cst, sst, with_mode=True):
    return cst.st_mtime_ns != sst.st_mtime_ns or (with_mode and _mode(cst) != _mode(sst))


def _tmp_name(random):
    return os.fsencode(TMP_PREFIX + random_bytes_nonzero(random, 8, 'temporary name').hex())


def _place_name_file(root, parent_crel, disk, name_data):
    """Write gocryptfs.longname.*.name (0444) unless it already holds the right content."""
    if name_data is None:
        return None
    nrel = _join(parent_crel, os.fsencode(disk + LONGNAME_SUFFIX))
    npath = os.path.join(root, nrel)
    try:
        with open(npath, 'rb') as handle:
            if handle.read() == name_data:
                return nrel
    except FileNotFoundError:
        pass
    _atomic_write(npath, name_data, 0o444)
    return nrel


class TreeStats(dict):
    """The result dict of a run."""


def _stats(plan, check_mode, **extra):
    stats = TreeStats(
        files_total=plan.files_total,
        bytes_total=plan.bytes_total,
        files_encrypted=len(plan.encrypt),
        files_skipped=len(plan.skip),
        files_rehashed=len(plan.rehash),
        bytes_encrypted=plan.bytes_to_encrypt,
        entries_removed=len(plan.remove),
        stale_removed=len(plan.stale),
        dirs_created=len(plan.mkdir),
        symlinks_written=len(plan.links),
        metadata_updated=0,
        check_mode=check_mode,
    )
    stats.update(extra)
    return stats


def encrypt_tree(src, cipherdir, master_key, workers=None, progress=None, manifest_path=None, check_mode=False, digest=True,
                 chunk_blocks=CHUNK_BLOCKS, segment_blocks=SEGMENT_BLOCKS, random=os.urandom, allow_unknown=False):
    """Bring CIPHERDIR ``cipherdir`` in line with the plaintext tree ``src``.

    ``cipherdir`` must have been opened or created with :func:`open_cipherdir` (``master_key`` may be
    None only with ``check_mode`` for a CIPHERDIR that does not exist yet). ``workers`` processes
    encrypt (default: usable CPUs). ``progress(done_bytes, total_bytes)`` is called as work completes.
    ``manifest_path`` enables skipping unchanged files; without it every file is encrypted again.
    ``digest`` records (and uses) keyed content digests: a GMAC tag (``SegmentMac``) of each segment,
    computed in the same pass as the encryption, combined by ``Manifest.content_digest`` (HMAC-SHA256).
    Returns a dict of counters (see ``TreeStats``).
    """
    started = time.monotonic()
    workers = default_workers() if not workers else int(workers)
    src_entries = scan_source(src)
    src_root = os.fsencode(os.path.abspath(src))
    root = os.fsencode(os.path.abspath(cipherdir))
    if root == src_root or root.startswith(src_root + b'/') or src_root.startswith(root + b'/'):
        raise GocryptfsError('source and destination must not contain each other')
    keys = Keys(master_key) if master_key is not None else None
    scan = None
    manifest = None
    manifest_note = None
    if keys is not None:
        scan = scan_cipherdir(root, keys)
        if scan.unknown and not allow_unknown:
            raise GocryptfsError('%s contains entries that do not decrypt with this key (not written by gocryptfs with this '
                                 'password?): %s' % (_show(root), ', '.join(_show(c) for c in scan.unknown[:10])))
        manifest = Manifest(master_key, segment_blocks)
        if manifest_path:
            manifest_note = manifest.load(manifest_path)
            if manifest_note is not None:
                manifest.entries = {}
    plan = make_plan(src_entries, scan, manifest if manifest_path else None, keys, root, digest)

    if check_mode:
        # A re-hash decides nothing in check mode without reading: read it (read-only).
        unchanged = []
        for se, ce, me in plan.rehash:
            hashes = hash_segments(os.path.join(src_root, se.rel), se.st.st_size, segment_blocks, manifest.segment_key)
            if manifest.content_digest(se.st.st_size, hashes) == me.get('digest'):
                unchanged.append((se, ce, me))
            else:
                plan.encrypt.append((se, ce))
        meta = _count_meta(plan, unchanged)
        stats = _stats(plan, True, files_skipped=len(plan.skip) + len(unchanged), metadata_updated=meta + len(unchanged),
                       manifest_ignored=manifest_note, workers=workers)
        stats['changed'] = _changed(stats) or (master_key is None)
        stats['seconds'] = round(time.monotonic() - started, 3)
        stats['throughput_mib_s'] = 0.0
        return stats

    if keys is None:
        raise GocryptfsError('a master key is required outside check mode')
    stats, digests = _execute(plan, src_root, root, keys, manifest, workers, progress, digest, chunk_blocks, segment_blocks, random)
    if manifest_path:
        _record_manifest(manifest, digests, src_entries, root, keys, manifest_path)
    stats['manifest_ignored'] = manifest_note
    stats['workers'] = workers
    stats['changed'] = _changed(stats)
    seconds = time.monotonic() - started
    stats['seconds'] = round(seconds, 3)
    stats['throughput_mib_s'] = round(stats['bytes_encrypted'] / 1048576.0 / seconds, 1) if seconds > 0 and stats['bytes_encrypted'] else 0.0
    return stats


def _changed(stats):
    return bool(stats['files_encrypted'] or stats['entries_removed'] or stats['stale_removed'] or stats['dirs_created']
                or stats['symlinks_written'] or stats['metadata_updated'])


def _count_meta(plan, unchanged):
    count = 0
    for se, ce, dummy in plan.skip + unchanged:
        if _meta_differs(ce.st, se.st):
            count += 1
    for se, ce in plan.links_ok:
        if _meta_differs(ce.st, se.st, with_mode=False):
            count += 1
    for se, ce in plan.dirs:
        if ce is not None and _meta_differs(ce.st, se.st):
            count += 1
    return count


def _execute(plan, src_root, root, keys, manifest, workers, progress, digest, chunk_blocks, segment_blocks, random):
    stats = _stats(plan, False)
    meta = 0
    for crel in plan.stale:
        _unlink_quiet(os.path.join(root, crel))
    for ce in plan.remove:
        _remove_cipher_entry(root, ce)

    # Directories: existing ones become writable for the run, new ones are created 0700 and get
    # a diriv; final modes and times are applied at the end, bottom-up.
    dirinfo = {b'': (b'', read_diriv(root))}
    for se, ce in plan.dirs:
        if ce is not None:
            dirinfo[se.rel] = (ce.crel, ce.iv)
            if _mode(ce.st) & 0o700 != 0o700:
                os.chmod(os.path.join(root, ce.crel), _mode(ce.st) | 0o700)
            continue
        pcrel, piv = dirinfo[_parent(se.rel)]
        disk, name_data = cipher_entry_name(encrypt_name(keys.names, piv, _basename(se.rel)))
        _place_name_file(root, pcrel, disk, name_data)
        crel = _join(pcrel, os.fsencode(disk))
        os.mkdir(os.path.join(root, crel), 0o700)
        dirinfo[se.rel] = (crel, _new_diriv(os.path.join(root, crel), random))

    def place(se):
        pcrel, piv = dirinfo[_parent(se.rel)]
        disk, name_data = cipher_entry_name(encrypt_name(keys.names, piv, _basename(se.rel)))
        return pcrel, _join(pcrel, os.fsencode(disk)), disk, name_data

    for se, ce in plan.links:
        pcrel, crel, disk, name_data = place(se)
        tmp = os.path.join(root, _join(pcrel, _tmp_name(random)))
        os.symlink(encrypt_symlink_target(keys.content, se.target, random), tmp)
        _set_times(tmp, se.st, follow=False)
        _place_name_file(root, pcrel, disk, name_data)
        os.replace(tmp, os.path.join(root, crel))
    for se, ce in plan.links_ok:
        if _meta_differs(ce.st, se.st, with_mode=False):
            _set_times(os.path.join(root, ce.crel), se.st, follow=False)
            meta += 1

    # Files whose mtime changed but whose size did not: re-hash and compare the keyed digest.
    for se, ce, me in plan.rehash:
        hashes = hash_segments(os.path.join(src_root, se.rel), se.st.st_size, segment_blocks, manifest.segment_key)
        if manifest.content_digest(se.st.st_size, hashes) == me.get('digest'):
            plan.skip.append((se, ce, me))
            stats['files_skipped'] += 1
            me['mtime_ns'] = se.st.st_mtime_ns
        else:
            plan.encrypt.append((se, ce))
            stats['files_encrypted'] += 1
            stats['bytes_encrypted'] += se.st.st_size
    for se, ce, me in plan.skip:
        cpath = os.path.join(root, ce.crel)
        if _meta_differs(ce.st, se.st):
            if _mode(ce.st) != _mode(se.st):
                os.chmod(cpath, _mode(se.st))
            _set_times(cpath, se.st)
            meta += 1

    digests = _encrypt_files(plan.encrypt, src_root, root, keys, place, workers, progress, digest, chunk_blocks,
                             segment_blocks, manifest, random)

    for se, ce in reversed(plan.dirs):
        path = os.path.join(root, dirinfo[se.rel][0])
        cst = os.lstat(path)
        if _meta_differs(cst, se.st):
            if _mode(cst) != _mode(se.st):
                os.chmod(path, _mode(se.st))
            _set_times(path, se.st)
        if ce is not None and _meta_differs(ce.st, se.st):
            meta += 1
    stats['metadata_updated'] = meta
    return stats, digests


def _encrypt_files(jobs_in, src_root, root, keys, place, workers, progress, digest, chunk_blocks, segment_blocks, manifest, random):
    """Encrypt the planned files; returns {rel: digest or None}."""
    jobs = []
    total = sum(se.st.st_size for se, dummy in jobs_in)
    done = [0]
    digests = {}
    created = set()
    content_cipher = ContentCipher(keys.content, random)

    def finish(job):
        se = job.se
        size = se.st.st_size
        st_now = os.stat(job.src)
        if st_now.st_size != size or st_now.st_mtime_ns != se.st.st_mtime_ns:
            raise GocryptfsError('%s changed while being encrypted; run again' % _show(se.rel))
        if os.stat(job.tmp).st_size != ciphertext_size(size):
            raise GocryptfsError('internal error: wrong ciphertext size for %s' % _show(se.rel))
        os.chmod(job.tmp, _mode(se.st))
        _set_times(job.tmp, se.st)
        pcrel = _parent(job.crel)
        _place_name_file(root, pcrel, os.fsdecode(_basename(job.crel)), job.name_data)
        os.replace(job.tmp, job.final)
        created.remove(job.tmp)
        digests[se.rel] = manifest.content_digest(size, job.hashes) if (digest and manifest is not None) else None

    def tasks():
        batch = []
        batch_bytes = 0
        for se, dummy in jobs_in:
            pcrel, crel, disk, name_data = place(se)
            del disk
            tmp = os.path.join(root, _join(pcrel, _tmp_name(random)))
            src = os.path.join(src_root, se.rel)
            job = _FileJob(se, src, tmp, os.path.join(root, crel), name_data, crel)
            size = se.st.st_size
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            created.add(tmp)
            try:
                if size:
                    file_id = content_cipher.new_file_id()
                    os.write(fd, make_header(file_id))
            finally:
                os.close(fd)
            index = len(jobs)
            jobs.append(job)
            if size == 0:
                finish(job)
                continue
            nblocks = block_count(size)
            nseg = -(-nblocks // segment_blocks)
            job.remaining = nseg
            job.hashes = [None] * nseg
            for seg in range(nseg):
                first = seg * segment_blocks
                item = (src, tmp, file_id, first, min(segment_blocks, nblocks - first), size, digest, index, seg)
                seg_bytes = min(size - first * BLOCK_SIZE, segment_blocks * BLOCK_SIZE)
                if nseg > 1:
                    yield [item]
                    continue
                batch.append(item)
                batch_bytes += seg_bytes
                if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_ITEMS:
                    yield batch
                    batch = []
                    batch_bytes = 0
        if batch:
            yield batch

    def on_result(results):
        for index, seg, nbytes, seg_hash in results:
            job = jobs[index]
            job.hashes[seg] = seg_hash
            job.remaining -= 1
            done[0] += nbytes
            if job.remaining == 0:
                finish(job)
        if progress is not None:
            progress(done[0], total)

    try:
        run_tasks(tasks(), workers, keys.content, manifest.segment_key if manifest is not None else None, chunk_blocks,
                  on_result, random)
    except BaseException:
        for tmp in created:
            _unlink_quiet(tmp)
        raise
    return digests


def _record_manifest(manifest, digests, src_entries, root, keys, manifest_path):
    """Rebuild the manifest from the final CIPHERDIR and the digests just computed or carried over."""
    scan = scan_cipherdir(root, keys)
    fresh = Manifest(keys.master, manifest.segment_blocks)
    for se in src_entries:
        if se.kind != 'f':
            continue
        ce = scan.entries.get(se.rel)
        if ce is None or ce.kind != 'f':
            raise GocryptfsError('internal error: %s missing from the CIPHERDIR after the run' % _show(se.rel))
        old = manifest.get(se.rel)
        if se.rel in digests:
            digest = digests[se.rel]
        else:
            digest = old.get('digest') if old else None
        fresh.put(se.rel, se.st.st_size, se.st.st_mtime_ns, _mode(se.st), digest, ce.crel)
    fresh.save(manifest_path)
    manifest.entries = fresh.entries


# ---------------------------------------------------------------------------------------------
# The reference tool: gocryptfs -init / mount / unmount (method "fuse", and independent checks)

@contextlib.contextmanager
def password_file(password):
    """A 0600 file holding the password plus a newline, in a private 0700 directory, removed on exit."""
    password = normalize_password(password)
    directory = tempfile.mkdtemp(prefix='cai-gocryptfs-')
    path = os.path.join(directory, 'passfile')
    try:
        _write_new_file(os.fsencode(path), password + b'\n', 0o600)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run(argv, what):
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout or b'').decode('utf-8', 'replace').strip()
        raise GocryptfsError('%s failed (exit %d): %s' % (what, proc.returncode, out[-2000:]))
    return proc


def gocryptfs_init(cipherdir, password, binary='gocryptfs'):
    """Create a CIPHERDIR with the real ``gocryptfs -init`` (default parameters); password via -passfile."""
    if not os.path.isdir(cipherdir):
        os.makedirs(cipherdir, 0o700)
    with password_file(password) as pfile:
        _run([binary, '-init', '-q', '-passfile', pfile, cipherdir], 'gocryptfs -init')


def unmount(mountpoint):
    """Unmount a FUSE mount: fusermount3 -u, else fusermount -u, else umount."""
    errors = []
    for argv in (['fusermount3', '-u', mountpoint], ['fusermount', '-u', mountpoint], ['umount', mountpoint]):
        try:
            _run(argv, ' '.join(argv[:2]))
            return
        except (OSError, GocryptfsError) as exc:
            errors.append(str(exc))
    raise GocryptfsError('could not unmount %s: %s' % (mountpoint, '; '.join(errors)))


@contextlib.contextmanager
def mounted(cipherdir, password, readonly=False, binary='gocryptfs'):
    """Mount CIPHERDIR with the real gocryptfs on a private temporary mountpoint; always unmounts."""
    mountpoint = tempfile.mkdtemp(prefix='cai-gocryptfs-mnt-')
    try:
        with password_file(password) as pfile:
            argv = [binary, '-q', '-passfile', pfile]
            if readonly:
                argv.append('-ro')
            _run(argv + [cipherdir, mountpoint], 'gocryptfs mount')
        try:
            yield mountpoint
        finally:
            unmount(mountpoint)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(mountpoint)


def _copy_with_digest(src, dst, size, segment_blocks, segment_key, chunk=1 << 20):
    seg_bytes = segment_blocks * BLOCK_SIZE
    hashes = []
    h = SegmentMac(segment_key, 0) if segment_key else None
    in_seg = 0
    copied = 0
    with open(src, 'rb', buffering=0) as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while copied < size:
                data = fin.read(min(chunk, size - copied, seg_bytes - in_seg))
                if not data:
                    raise GocryptfsError('%s shrank while being copied' % _show(src))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if h is not None:
                    h.update(data)
                copied += len(data)
                in_seg += len(data)
                if in_seg == seg_bytes or copied == size:
                    if h is not None:
                        hashes.append(h.digest())
                        h = SegmentMac(segment_key, len(hashes))
                    in_seg = 0
        finally:
            os.close(fd)
    return hashes


def encrypt_tree_via_mount(src, cipherdir, password, manifest_path=None, check_mode=False, digest=True,
                           segment_blocks=SEGMENT_BLOCKS, binary='gocryptfs'):
    """Method "fuse": same planning as :func:`encrypt_tree`, but the writing is done by the real
    gocryptfs through a FUSE mount (the documented way: init, mount, copy, unmount).

    A missing CIPHERDIR is created with ``gocryptfs -init``. Returns the same counters.
    """
    started = time.monotonic()
    password = normalize_password(password)
    if not os.path.exists(os.path.join(cipherdir, CONF_NAME)):
        open_cipherdir(cipherdir, password, check_mode=True)     # refuses a non-empty foreign directory
        if check_mode:
            return encrypt_tree(src, cipherdir, None, workers=1, manifest_path=manifest_path, check_mode=True, digest=digest,
                                segment_blocks=segment_blocks)
        gocryptfs_init(cipherdir, password, binary)
    master_key, dummy = open_cipherdir(cipherdir, password, create=False)
    if check_mode:
        return encrypt_tree(src, cipherdir, master_key, workers=1, manifest_path=manifest_path, check_mode=True,
                            digest=digest, segment_blocks=segment_blocks)
    src_entries = scan_source(src)
    src_root = os.fsencode(os.path.abspath(src))
    root = os.fsencode(os.path.abspath(cipherdir))
    if root == src_root or root.startswith(src_root + b'/') or src_root.startswith(root + b'/'):
        raise GocryptfsError('source and destination must not contain each other')
    keys = Keys(master_key)
    scan = scan_cipherdir(root, keys)
    if scan.unknown:
        raise GocryptfsError('%s contains entries that do not decrypt with this key: %s'
                             % (_show(root), ', '.join(_show(c) for c in scan.unknown[:10])))
    manifest = Manifest(master_key, segment_blocks)
    note = None
    if manifest_path:
        note = manifest.load(manifest_path)
        if note is not None:
            manifest.entries = {}
    plan = make_plan(src_entries, scan, manifest if manifest_path else None, keys, root, digest)
    stats = _stats(plan, False)
    digests = {}
    meta = 0
    for crel in plan.stale:
        _unlink_quiet(os.path.join(root, crel))
    with mounted(os.fsdecode(root), password, binary=binary) as mnt:
        mnt = os.fsencode(mnt)

        def plain(rel):
            return os.path.join(mnt, rel)

        for ce in plan.remove:
            if ce.kind == 'd':
                _make_writable_tree(plain(ce.rel))
                shutil.rmtree(plain(ce.rel))
            else:
                os.unlink(plain(ce.rel))
        for se, ce in plan.dirs:
            if ce is None:
                os.mkdir(plain(se.rel), 0o700)
            elif _mode(ce.st) & 0o700 != 0o700:
                os.chmod(plain(se.rel), _mode(ce.st) | 0o700)
        for se, ce in plan.links:
            if ce is not None:
                os.unlink(plain(se.rel))
            os.symlink(se.target, plain(se.rel))
            with contextlib.suppress(OSError):
                _set_times(plain(se.rel), se.st, follow=False)
        for se, ce in plan.links_ok:
            if _meta_differs(ce.st, se.st, with_mode=False):
                with contextlib.suppress(OSError):
                    _set_times(plain(se.rel), se.st, follow=False)
                meta += 1
        for se, ce, me in plan.rehash:
            hashes = hash_segments(os.path.join(src_root, se.rel), se.st.st_size, segment_blocks, manifest.segment_key)
            if manifest.content_digest(se.st.st_size, hashes) == me.get('digest'):
                plan.skip.append((se, ce, me))
                stats['files_skipped'] += 1
            else:
                plan.encrypt.append((se, ce))
                stats['files_encrypted'] += 1
                stats['bytes_encrypted'] += se.st.st_size
        for se, ce, me in plan.skip:
            if _meta_differs(ce.st, se.st):
                os.chmod(plain(se.rel), _mode(se.st))
                _set_times(plain(se.rel), se.st)
                meta += 1
        for se, ce in plan.encrypt:
            size = se.st.st_size
            hashes = _copy_with_digest(os.path.join(src_root, se.rel), plain(se.rel), size, segment_blocks,
                                       manifest.segment_key if digest else None)
            st_now = os.stat(os.path.join(src_root, se.rel))
            if st_now.st_size != size or st_now.st_mtime_ns != se.st.st_mtime_ns:
                raise GocryptfsError('%s changed while being encrypted; run again' % _show(se.rel))
            os.chmod(plain(se.rel), _mode(se.st))
            _set_times(plain(se.rel), se.st)
            digests[se.rel] = manifest.content_digest(size, hashes) if digest else None
        for se, ce in reversed(plan.dirs):
            os.chmod(plain(se.rel), _mode(se.st))
            _set_times(plain(se.rel), se.st)
            if ce is not None and _meta_differs(ce.st, se.st):
                meta += 1
    stats['metadata_updated'] = meta
    if manifest_path:
        _record_manifest(manifest, digests, src_entries, root, keys, manifest_path)
    stats['manifest_ignored'] = note
    stats['workers'] = 1
    stats['changed'] = _changed(stats)
    seconds = time.monotonic() - started
    stats['seconds'] = round(seconds, 3)
    stats['throughput_mib_s'] = round(stats['bytes_encrypted'] / 1048576.0 / seconds, 1) if seconds > 0 and stats['bytes_encrypted'] else 0.0
    return stats


# ---------------------------------------------------------------------------------------------
# Reading back (verification)

def decrypt_tree(cipherdir, dst, master_key, chunk_blocks=CHUNK_BLOCKS):
    """Decrypt a whole CIPHERDIR into the new directory ``dst`` (files, dirs, symlinks, modes, mtimes)."""
    keys = Keys(master_key)
    root = os.fsencode(os.path.abspath(cipherdir))
    out = os.fsencode(dst)
    os.makedirs(out, 0o700)
    entries = walk_cipherdir(root, master_key)
    count = 0
    for ce in entries:
        cpath = os.path.join(root, ce.crel)
        ppath = os.path.join(out, ce.rel)
        if ce.kind == 'd':
            os.mkdir(ppath, 0o700)
        elif ce.kind == 'l':
            os.symlink(decrypt_symlink_target(keys.content, os.readlink(cpath)), ppath)
            with contextlib.suppress(OSError):
                _set_times(ppath, ce.st, follow=False)
        else:
            fd = os.open(ppath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                for chunk in iter_decrypt_file(cpath, keys.content, chunk_blocks):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.chmod(ppath, _mode(ce.st))
            _set_times(ppath, ce.st)
        count += 1
    for ce in reversed(entries):
        if ce.kind == 'd':
            ppath = os.path.join(out, ce.rel)
            os.chmod(ppath, _mode(ce.st))
            _set_times(ppath, ce.st)
    return count


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb', buffering=0) as handle:
        for data in iter(lambda: handle.read(1 << 20), b''):
            h.update(data)
    return h.hexdigest()


def _sha256_cipher(path, content_key):
    h = hashlib.sha256()
    for chunk in iter_decrypt_file(path, content_key):
        h.update(chunk)
    return h.hexdigest()


def _verify_pair(args):
    src, cpath, content_key = args
    try:
        return _sha256_file(src), _sha256_cipher(cpath, content_key)
    except GocryptfsError as exc:
        return None, str(exc)


def verify_tree(src, cipherdir, master_key, check_modes=True, workers=None):
    """Compare a plaintext tree with a CIPHERDIR decrypted by this package's reader.

    Returns a list of problems (empty when the trees match): missing/extra entries, type, mode and
    symlink target differences, SHA-256 mismatches and authentication failures.
    """
    keys = Keys(master_key)
    root = os.fsencode(os.path.abspath(cipherdir))
    src_root = os.fsencode(os.path.abspath(src))
    problems = []
    scan = scan_cipherdir(root, keys)
    problems.extend('undecryptable entry %s' % _show(c) for c in scan.unknown)
    src_map = dict((e.rel, e) for e in scan_source(src))
    for rel in sorted(set(src_map) - set(scan.entries)):
        problems.append('missing in the CIPHERDIR: %s' % _show(rel))
    for rel in sorted(set(scan.entries) - set(src_map)):
        problems.append('not in the source: %s' % _show(rel))
    pairs = []
    for rel in sorted(set(src_map) & set(scan.entries)):
        se, ce = src_map[rel], scan.entries[rel]
        if se.kind != ce.kind:
            problems.append('type differs: %s' % _show(rel))
            continue
        if check_modes and se.kind != 'l' and _mode(se.st) != _mode(ce.st):
            problems.append('mode differs: %s (%o != %o)' % (_show(rel), _mode(se.st), _mode(ce.st)))
        if se.kind == 'l':
            try:
                if decrypt_symlink_target(keys.content, os.readlink(os.path.join(root, ce.crel))) != se.target:
                    problems.append('symlink target differs: %s' % _show(rel))
            except CorruptDataError as exc:
                problems.append('symlink %s: %s' % (_show(rel), exc))
        elif se.kind == 'f':
            if ce.st.st_size != ciphertext_size(se.st.st_size):
                problems.append('size differs: %s' % _show(rel))
                continue
            pairs.append((rel, (os.path.join(src_root, rel), os.path.join(root, ce.crel), keys.content)))
    workers = default_workers() if not workers else int(workers)
    if workers > 1 and len(pairs) > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context('fork')) as pool:
            results = list(pool.map(_verify_pair, [p for dummy, p in pairs]))
    else:
        results = [_verify_pair(p) for dummy, p in pairs]
    for (rel, dummy), (want, got) in zip(pairs, results):
        if want is None:
            problems.append('%s: %s' % (_show(rel), got))
        elif want != got:
            problems.append('content differs: %s' % _show(rel))
    return problems


def compare_trees(expected, actual, check_modes=True):
    """Compare two plaintext trees (for example the source and a gocryptfs mount of the CIPHERDIR).

    Returns a list of problems: missing/extra entries, type, mode, symlink target and SHA-256
    differences (empty when the trees match).
    """
    problems = []
    a_root = os.fsencode(os.path.abspath(expected))
    b_root = os.fsencode(os.path.abspath(actual))
    a_map = dict((e.rel, e) for e in scan_source(a_root))
    b_map = dict((e.rel, e) for e in scan_source(b_root))
    for rel in sorted(set(a_map) - set(b_map)):
        problems.append('missing: %s' % _show(rel))
    for rel in sorted(set(b_map) - set(a_map)):
        problems.append('unexpected: %s' % _show(rel))
    for rel in sorted(set(a_map) & set(b_map)):
        ea, eb = a_map[rel], b_map[rel]
        if ea.kind != eb.kind:
            problems.append('type differs: %s' % _show(rel))
        elif ea.kind == 'l':
            if ea.target != eb.target:
                problems.append('symlink target differs: %s' % _show(rel))
        else:
            if check_modes and _mode(ea.st) != _mode(eb.st):
                problems.append('mode differs: %s (%o != %o)' % (_show(rel), _mode(ea.st), _mode(eb.st)))
            if ea.kind == 'f':
                try:
                    same = _sha256_file(os.path.join(a_root, rel)) == _sha256_file(os.path.join(b_root, rel))
                except OSError as exc:
                    problems.append('%s: %s' % (_show(rel), exc))
                    continue
                if not same:
                    problems.append('content differs: %s' % _show(rel))
    return problems


def gocryptfs_fsck(cipherdir, password, binary='gocryptfs'):
    """Run ``gocryptfs -fsck``; returns ``(exit_code, output)`` (0 = no problems, 26 = corruption)."""
    with password_file(password) as pfile:
        proc = subprocess.run([binary, '-fsck', '-q', '-passfile', pfile, cipherdir], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace')


def verify_with_gocryptfs(src, cipherdir, password, binary='gocryptfs', check_modes=True):
    """Independent check with the real gocryptfs: mount read-only, compare every file's SHA-256,
    type, mode and symlink target with ``src``, then run ``gocryptfs -fsck``. Returns problems."""
    with mounted(cipherdir, password, readonly=True, binary=binary) as mnt:
        problems = compare_trees(src, mnt, check_modes)
    code, output = gocryptfs_fsck(cipherdir, password, binary)
    if code != 0:
        problems.append('gocryptfs -fsck exited %d: %s' % (code, output.strip()[-1000:]))
    return problems
