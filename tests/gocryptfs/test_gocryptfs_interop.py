# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Round trips against the real gocryptfs binary and FUSE (Debian's gocryptfs 2.3 in CI).

* our writer -> ``gocryptfs -ro`` mount -> every file's SHA-256, mode, symlink target identical;
  ``gocryptfs -fsck`` clean; ``gocryptfs-xray -dumpmasterkey`` agrees on the master key;
* ``gocryptfs -init`` + mount + copy -> our reader -> identical;
* one flipped ciphertext byte -> ``-fsck`` fails and so does our reader;
* the module's ``fuse`` method and ``verify: gocryptfs``.

The mount helpers here are this file's own (not the code under test). Passwords always go through
``-passfile`` on a 0600 file, never argv; every mount is unmounted in ``finally``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest

pytest.importorskip('cryptography')

from ansible_collections.confidential_ai.ack.plugins.module_utils import gocryptfs as g  # noqa: E402

GOCRYPTFS = shutil.which('gocryptfs')
FUSERMOUNT = shutil.which('fusermount3') or shutil.which('fusermount') or 'fusermount3'
if not os.path.exists('/dev/fuse'):
    pytest.skip('/dev/fuse is missing: these tests need FUSE', allow_module_level=True)
if not GOCRYPTFS:
    pytest.skip('the gocryptfs binary is not installed (apt-get install gocryptfs)', allow_module_level=True)

PASSWORD = 'interop-test-password'


@pytest.fixture
def passfile(tmp_path):
    path = tmp_path / 'passfile'
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(PASSWORD + '\n')
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    return str(path)


@contextlib.contextmanager
def gocryptfs_mount(cipherdir, mountpoint, passfile, readonly=True):
    os.makedirs(mountpoint, exist_ok=True)
    argv = [GOCRYPTFS, '-q', '-passfile', passfile] + (['-ro'] if readonly else []) + [cipherdir, mountpoint]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    try:
        yield mountpoint
    finally:
        subprocess.run([FUSERMOUNT, '-u', mountpoint], check=True, capture_output=True)


def fsck(cipherdir, passfile):
    proc = subprocess.run([GOCRYPTFS, '-fsck', '-passfile', passfile, cipherdir], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace')


def tree_digest(root):
    """rel path -> (kind, mode, sha256 | link target) of every entry below ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ('l', None, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ('d', stat.S_IMODE(st.st_mode), None)
            else:
                h = hashlib.sha256()
                with open(full, 'rb') as handle:
                    for block in iter(lambda: handle.read(1 << 20), b''):
                        h.update(block)
                out[rel] = ('f', stat.S_IMODE(st.st_mode), h.hexdigest())
    return out


def make_edge_tree(root):
    """The edge cases of issue 5, plus name-length boundaries and a UTF-8 name."""
    root.mkdir()
    with open(str(root / 'model-00001.safetensors'), 'wb') as handle:       # > 4 MiB, not block aligned
        for dummy in range(5):
            handle.write(os.urandom(1048576))
        handle.write(os.urandom(1234))
    (root / 'exact-1-block').write_bytes(os.urandom(4096))
    (root / 'exact-3-blocks').write_bytes(os.urandom(3 * 4096))
    (root / 'b4095').write_bytes(os.urandom(4095))
    (root / 'b4097').write_bytes(os.urandom(4097))
    (root / 'one').write_bytes(b'A')
    (root / 'empty').write_bytes(b'')
    (root / 'nested' / 'deeper' / 'deepest').mkdir(parents=True)
    (root / 'nested' / 'config.json').write_bytes(b'{"a": 1}\n')
    (root / 'nested' / 'deeper' / 'deepest' / 'tokenizer.json').write_bytes(os.urandom(70000))
    (root / 'nested' / ('c' * 200)).write_bytes(b'two hundred characters\n')
    (root / ('d' * 175)).write_bytes(b'175: short name')
    (root / ('e' * 176)).write_bytes(b'176: long name')
    (root / ('f' * 255)).write_bytes(b'255: longest')
    (root / ('g' * 200)).mkdir()                                               # a long-named directory
    (root / ('g' * 200) / 'inside').write_bytes(b'inside a long-named dir')
    (root / u'mod\u00e8le \u6a21\u578b.txt').write_bytes(b'utf-8 name')
    (root / 'empty-dir').mkdir()
    (root / 'link-to-config').symlink_to('nested/config.json')
    (root / 'dangling').symlink_to('does/not/exist')
    os.chmod(str(root / 'b4095'), 0o600)
    os.chmod(str(root / 'one'), 0o755)
    os.chmod(str(root / 'nested'), 0o750)
    return root


def write_with_ours(src, cipherdir, workers=2):
    key, created = g.open_cipherdir(cipherdir, PASSWORD)
    assert created
    stats = g.encrypt_tree(src, cipherdir, key, workers=workers, manifest_path=cipherdir + '.manifest.json',
                           segment_blocks=256)
    return key, stats


def test_our_writer_mounts_in_gocryptfs(tmp_path, passfile):
    src = make_edge_tree(tmp_path / 'src')
    cipherdir = str(tmp_path / 'cipher')
    key, stats = write_with_ours(str(src), cipherdir)
    assert stats['files_encrypted'] == 15
    expected = tree_digest(str(src))
    with gocryptfs_mount(cipherdir, str(tmp_path / 'mnt'), passfile) as mnt:
        assert tree_digest(mnt) == expected
    code, output = fsck(cipherdir, passfile)
    assert code == 0, output
    assert 'no problems found' in output

    info = subprocess.run([GOCRYPTFS, '-info', cipherdir], check=True, capture_output=True, text=True).stdout
    assert 'FeatureFlags:      HKDF GCMIV128 DirIV EMENames LongNames Raw64' in info or \
        ' '.join(['HKDF', 'GCMIV128', 'DirIV', 'EMENames', 'LongNames', 'Raw64']) in info
    assert 'N=65536 R=8 P=1 KeyLen=32' in info

    xray = shutil.which('gocryptfs-xray')
    if xray:
        with open(passfile, 'rb') as stdin:
            dumped = subprocess.run([xray, '-dumpmasterkey', os.path.join(cipherdir, 'gocryptfs.conf')], stdin=stdin,
                                    check=True, capture_output=True, text=True).stdout
        assert key.hex() in dumped.replace(' ', '').replace('-', '')


def test_incremental_update_still_mounts(tmp_path, passfile):
    src = make_edge_tree(tmp_path / 'src')
    cipherdir = str(tmp_path / 'cipher')
    key, dummy = write_with_ours(str(src), cipherdir)
    (src / 'b4097').write_bytes(os.urandom(9000))
    os.remove(str(src / 'exact-1-block'))
    shutil.rmtree(str(src / 'nested' / 'deeper'))
    (src / 'new-dir').mkdir()
    (src / 'new-dir' / 'new-file').write_bytes(os.urandom(5000))
    stats = g.encrypt_tree(str(src), cipherdir, key, workers=2, manifest_path=cipherdir + '.manifest.json', segment_blocks=256)
    assert stats['files_encrypted'] == 2 and stats['entries_removed'] == 2 and stats['dirs_created'] == 1
    with gocryptfs_mount(cipherdir, str(tmp_path / 'mnt'), passfile) as mnt:
        assert tree_digest(mnt) == tree_digest(str(src))
    code, output = fsck(cipherdir, passfile)
    assert code == 0, output


def test_gocryptfs_written_tree_read_by_our_reader(tmp_path, passfile):
    src = make_edge_tree(tmp_path / 'src')
    cipherdir = str(tmp_path / 'cipher')
    os.mkdir(cipherdir)
    subprocess.run([GOCRYPTFS, '-init', '-q', '-passfile', passfile, cipherdir], check=True, stdin=subprocess.DEVNULL,
                   capture_output=True)
    with gocryptfs_mount(cipherdir, str(tmp_path / 'mnt'), passfile, readonly=False) as mnt:
        for name in os.listdir(str(src)):
            s = os.path.join(str(src), name)
            d = os.path.join(mnt, name)
            if os.path.isdir(s) and not os.path.islink(s):
                shutil.copytree(s, d, symlinks=True)
            elif os.path.islink(s):
                os.symlink(os.readlink(s), d)
            else:
                shutil.copy2(s, d)
        for dirpath, dirnames, dummy in os.walk(str(src)):   # copytree leaves modes; make sure of it
            for name in dirnames:
                rel = os.path.relpath(os.path.join(dirpath, name), str(src))
                os.chmod(os.path.join(mnt, rel), stat.S_IMODE(os.lstat(os.path.join(dirpath, name)).st_mode))
    with open(os.path.join(cipherdir, 'gocryptfs.conf'), 'rb') as handle:
        key = g.load_master_key(handle.read(), PASSWORD)
    out = str(tmp_path / 'decrypted')
    g.decrypt_tree(cipherdir, out, key)
    assert tree_digest(out) == tree_digest(str(src))
    assert g.verify_tree(str(src), cipherdir, key) == []


def _flip(path, offset):
    with open(path, 'r+b') as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def test_flipped_byte_fails_fsck_and_our_reader(tmp_path, passfile):
    src = make_edge_tree(tmp_path / 'src')
    cipherdir = str(tmp_path / 'cipher')
    key, dummy = write_with_ours(str(src), cipherdir)
    entry = [e for e in g.walk_cipherdir(cipherdir, key) if e.rel == b'model-00001.safetensors'][0]
    _flip(os.path.join(cipherdir, os.fsdecode(entry.crel)), 18 + 4128 + 100)        # inside block #1
    code, output = fsck(cipherdir, passfile)
    assert code == 26, output                           # gocryptfs' exit code for corruption
    assert 'corrupt block #1' in output
    problems = g.verify_tree(str(src), cipherdir, key)
    assert problems == ['model-00001.safetensors: corrupt block #1 (authentication failed)']
    with pytest.raises(g.CorruptDataError, match='block #1'):
        g.decrypt_file(os.path.join(cipherdir, os.fsdecode(entry.crel)), g.Keys(key).content)
    assert g.verify_with_gocryptfs(str(src), cipherdir, PASSWORD)     # the independent path fails too


def test_fuse_method_and_gocryptfs_verification(tmp_path):
    src = make_edge_tree(tmp_path / 'src')
    cipherdir = str(tmp_path / 'cipher')
    manifest = cipherdir + '.manifest.json'
    stats = g.encrypt_tree_via_mount(str(src), cipherdir, PASSWORD, manifest_path=manifest)
    assert stats['changed'] and stats['files_encrypted'] == 15
    with open(os.path.join(cipherdir, 'gocryptfs.conf')) as handle:
        assert json.load(handle)['Creator'].startswith('gocryptfs')       # written by the real binary
    key, dummy = g.open_cipherdir(cipherdir, PASSWORD, create=False)
    assert g.verify_tree(str(src), cipherdir, key) == []
    assert g.verify_with_gocryptfs(str(src), cipherdir, PASSWORD) == []

    again = g.encrypt_tree_via_mount(str(src), cipherdir, PASSWORD, manifest_path=manifest)
    assert not again['changed'] and again['files_skipped'] == 15
    # the python method shares the manifest and sees nothing to do either
    assert not g.encrypt_tree(str(src), cipherdir, key, manifest_path=manifest)['changed']

    (src / 'one').write_bytes(b'B')
    changed = g.encrypt_tree_via_mount(str(src), cipherdir, PASSWORD, manifest_path=manifest)
    assert changed['files_encrypted'] == 1 and changed['files_skipped'] == 14
    assert g.verify_with_gocryptfs(str(src), cipherdir, PASSWORD) == []


def test_module_with_gocryptfs_verification(tmp_path):
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.confidential_ai.ack.plugins.modules import gocryptfs_encrypt

    class Done(Exception):
        pass

    def capture(self, **kwargs):
        raise Done(kwargs)

    src = make_edge_tree(tmp_path / 'src')
    args = dict(src=str(src), dest=str(tmp_path / 'cipher'), password=PASSWORD, verify='gocryptfs', workers=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(basic.AnsibleModule, 'exit_json', capture)
        mp.setattr(basic.AnsibleModule, 'fail_json', capture)
        with patch_module_args(args), pytest.raises(Done) as info:
            gocryptfs_encrypt.main()
    result = info.value.args[0]
    assert not result.get('failed'), result
    assert result['verified'] == 'gocryptfs' and result['files_encrypted'] == 15
