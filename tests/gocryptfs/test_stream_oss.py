# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gocryptfs_encrypt with dest=oss://bucket/prefix, against the emulator's OSS (a separate process on 127.0.0.1).

* stream the edge-case tree, download the prefix with the collection's OSS download helper, mount the
  download read-only with the REAL gocryptfs and compare SHA-256 of every file, then ``gocryptfs -fsck``;
* idempotence from the emulator's request log: a re-run makes no mutating request; a changed file is
  the only object re-sent, under the same key; removed entries' objects are deleted; directory IVs stay;
* a wrong password, a foreign prefix and check mode make no mutating request;
* bounded memory for a 64 MiB file (tracemalloc in-process, VmHWM of a child process with 2 workers);
* verify=reader catches a corrupted object; the module end to end through main().

Run from the collection root ($COLL):
    python -m pytest -q -p no:cacheprovider --ansible-unit-inject-only tests/gocryptfs/test_stream_oss.py
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

pytest.importorskip('cryptography')
oss2 = pytest.importorskip('oss2')

from ansible.module_utils import basic  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.confidential_ai.ack.plugins.module_utils import gocryptfs as g  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.confidential_ai.ack.plugins.module_utils import oss  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.confidential_ai.ack.plugins.modules import gocryptfs_encrypt  # noqa: E402  pylint: disable=wrong-import-position

from sandbox.alicloud.testing import REPO_ROOT, EmulatorProcess  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1048576
PASSWORD = 'stream-test-password'
CALL = oss.retry_call()
FAST = dict(scrypt_n=1024)     # module_utils-level tests; the module tests use the real N=65536
GOCRYPTFS = shutil.which('gocryptfs')
FUSERMOUNT = shutil.which('fusermount3') or shutil.which('fusermount') or 'fusermount3'
HAVE_FUSE = bool(GOCRYPTFS) and os.path.exists('/dev/fuse')
WRITE_ACTIONS = {'PutObject', 'InitiateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload'}


@pytest.fixture(scope='module')
def emu(tmp_path_factory):
    with EmulatorProcess(state_dir=str(tmp_path_factory.mktemp('stream-oss-emulator'))) as process:
        yield process


@pytest.fixture
def bucket(emu, request):
    ak, sk = emu.static_key
    name = 'gs-%s' % hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    client = oss2.Bucket(oss2.AuthV4(ak, sk), emu.oss_endpoint, name, region=emu.region)
    client.create_bucket()
    emu.clear_faults()
    yield client
    emu.clear_faults()
    oss.empty_bucket(CALL, client)
    client.delete_bucket()


def mutating_since(emu, since):
    """Mutating requests logged after the first ``since`` entries of the request log (it only grows)."""
    return [r for r in emu.requests()[since:] if r['mutating']]


def now(emu):
    return len(emu.requests())


def write_random(path, size, seed=None):
    data = os.urandom(size) if seed is None else hashlib.sha256(seed).digest() * (size // 32 + 1)
    with open(str(path), 'wb') as handle:
        handle.write(data[:size])


def make_tree(root):
    """The edge cases of issue 5 (no symlinks: OSS keeps none)."""
    root.mkdir()
    with open(str(root / 'model-00001-of-00002.safetensors'), 'wb') as handle:   # > 4 MiB, not block aligned
        for dummy in range(5):
            handle.write(os.urandom(MIB))
        handle.write(os.urandom(1234))
    write_random(root / 'model-00002-of-00002.safetensors', 300000)
    (root / 'b4095').write_bytes(os.urandom(4095))
    (root / 'b4096').write_bytes(os.urandom(4096))
    (root / 'b4097').write_bytes(os.urandom(4097))
    (root / 'empty').write_bytes(b'')
    (root / 'config.json').write_bytes(b'{"model_type": "qwen2"}\n')
    (root / 'nested' / 'deeper' / 'deepest').mkdir(parents=True)
    (root / 'nested' / 'tokenizer.json').write_bytes(os.urandom(70000))
    (root / 'nested' / 'deeper' / 'deepest' / 'vocab.txt').write_bytes(b'a\nb\n')
    (root / ('c' * 200)).write_bytes(b'two hundred characters\n')
    (root / 'nested' / ('d' * 200)).mkdir()
    (root / 'nested' / ('d' * 200) / 'inside').write_bytes(b'inside a long-named dir')
    (root / u'mod\u00e8le \u6a21\u578b.txt').write_bytes(b'utf-8 name')
    (root / 'empty-dir').mkdir()
    return root


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(MIB), b''):
            h.update(block)
    return h.hexdigest()


def tree_digest(root):
    """rel path -> ('d', None) or ('f', sha256) for every entry below ``root`` (modes are not kept in OSS)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            out[rel] = ('d', None) if stat.S_ISDIR(os.lstat(full).st_mode) else ('f', sha256_file(full))
    return out


def listing(bucket, prefix):
    return {k: v['etag'] for k, v in oss.list_objects(CALL, bucket, prefix).items()}


def stream(bucket, src, manifest, prefix='models/m', password=PASSWORD, **kw):
    args = dict(workers=2, manifest_path=str(manifest), part_size=MIB, upload_workers=3)
    args.update(FAST)
    args.update(kw)
    return g.encrypt_tree_to_oss(str(src), bucket, prefix, password, CALL, **args)


def download_prefix(bucket, prefix, dest):
    """Every object under ``prefix`` to ``dest`` with the collection's download helper (ranged GETs, CRC-64)."""
    os.makedirs(dest)
    for key in oss.list_objects(CALL, bucket, prefix):
        oss.download_file(bucket, key, os.path.join(dest, key[len(prefix):]), call=CALL)
    return dest


@pytest.fixture
def passfile(tmp_path):
    path = str(tmp_path / 'passfile')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(PASSWORD + '\n')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    return path


@contextlib.contextmanager
def gocryptfs_mount(cipherdir, mountpoint, passfile):
    os.makedirs(mountpoint)
    subprocess.run([GOCRYPTFS, '-q', '-ro', '-passfile', passfile, cipherdir, mountpoint], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)
    try:
        yield mountpoint
    finally:
        subprocess.run([FUSERMOUNT, '-u', mountpoint], check=True, capture_output=True)


def master_key_of(bucket, prefix):
    return g.load_master_key(bucket.get_object(prefix + 'gocryptfs.conf').read(), PASSWORD)


# ---------------------------------------------------------------------------------------------

def test_layout_is_a_cipherdir_that_real_gocryptfs_mounts(emu, bucket, tmp_path, passfile):
    src = make_tree(tmp_path / 'model')
    since = now(emu)
    stats = stream(bucket, src, tmp_path / 'manifest.json', verify=True)
    assert stats['problems'] == []
    assert stats['created'] and stats['changed']
    assert stats['files_encrypted'] == stats['files_total'] == 12
    assert stats['bytes_uploaded'] == sum(g.ciphertext_size(os.path.getsize(os.path.join(d, f)))
                                          for d, dummy, fs in os.walk(str(src)) for f in fs)
    objects = oss.list_objects(CALL, bucket, 'models/m/')
    # every object of a CIPHERDIR: 12 files + conf + 6 diriv + 2 .name (the long file and the long dir)
    assert len(objects) == stats['objects_written'] == 12 + 1 + 6 + 2
    assert sum(1 for k in objects if k.endswith('/gocryptfs.diriv')) == 6
    assert sum(1 for k in objects if k.endswith('.name')) == 2
    assert all(oss.safe_relative_name(k[len('models/m/'):]) is None for k in objects)
    # the multipart path really ran (the > 4 MiB file in 1 MiB parts) and every object is private
    actions = [r['action'] for r in mutating_since(emu, since)]
    assert actions.count('CompleteMultipartUpload') == 1 and actions.count('UploadPart') == 6
    assert bucket.get_object_acl('models/m/gocryptfs.conf').acl == 'private'

    cipherdir = download_prefix(bucket, 'models/m/', str(tmp_path / 'download'))
    # our own reader agrees first (a tree downloaded from OSS is a plain CIPHERDIR)
    assert g.verify_tree(str(src), cipherdir, master_key_of(bucket, 'models/m/'), check_modes=False) == []
    if not HAVE_FUSE:
        pytest.skip('the real gocryptfs and /dev/fuse are needed for the mount part')
    with gocryptfs_mount(cipherdir, str(tmp_path / 'mnt'), passfile) as mnt:
        assert tree_digest(mnt) == tree_digest(str(src))
    proc = subprocess.run([GOCRYPTFS, '-fsck', '-passfile', passfile, cipherdir], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode == 0, proc.stdout.decode()
    info = subprocess.run([GOCRYPTFS, '-info', cipherdir], capture_output=True, check=True).stdout.decode()
    assert 'HKDF GCMIV128 DirIV EMENames LongNames Raw64' in info


def test_rerun_makes_no_mutating_request_and_changes_go_alone(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    manifest = tmp_path / 'manifest.json'
    stream(bucket, src, manifest)
    assert stat.S_IMODE(os.stat(str(manifest)).st_mode) == 0o600
    text = manifest.read_text()
    assert 'model-00001' not in text and 'nested' not in text      # keyed: no plaintext names
    before = listing(bucket, 'models/m/')

    since = now(emu)
    stats = stream(bucket, src, manifest)
    assert mutating_since(emu, since) == []
    assert not stats['changed'] and stats['objects_written'] == 0 and stats['files_skipped'] == 12
    assert listing(bucket, 'models/m/') == before

    # same size, new content and mtime: re-encrypted alone, same object key (multipart: 6 parts)
    big = src / 'model-00001-of-00002.safetensors'
    with open(str(big), 'r+b') as handle:
        handle.seek(4 * MIB)
        handle.write(b'changed!')
    since = now(emu)
    stats = stream(bucket, src, manifest)
    assert stats['files_encrypted'] == 1 and stats['files_rehashed'] == 1 and stats['objects_written'] == 1
    after = listing(bucket, 'models/m/')
    assert set(after) == set(before)
    changed = [k for k in after if after[k] != before[k]]
    assert len(changed) == 1 and oss.head_object(CALL, bucket, changed[0])['size'] == g.ciphertext_size(5 * MIB + 1234)
    multipart = ['CompleteMultipartUpload', 'InitiateMultipartUpload', 'UploadPart']
    assert sorted(set(r['action'] for r in mutating_since(emu, since))) == multipart
    # touched but identical: re-hashed, nothing sent
    os.utime(str(src / 'config.json'), ns=(0, 1234567890123456789))
    since = now(emu)
    stats = stream(bucket, src, manifest)
    assert stats['files_rehashed'] == 1 and stats['files_encrypted'] == 0 and mutating_since(emu, since) == []
    # a small file changed: exactly one PutObject
    (src / 'nested' / 'tokenizer.json').write_bytes(os.urandom(70001))
    since = now(emu)
    stats = stream(bucket, src, manifest)
    assert [r['action'] for r in mutating_since(emu, since)] == ['PutObject']
    assert stats['files_encrypted'] == 1
    assert g.verify_oss_tree(str(src), bucket, 'models/m', master_key_of(bucket, 'models/m/'), CALL) == []


def test_removed_entries_are_deleted_and_dirivs_stay(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    manifest = tmp_path / 'manifest.json'
    stream(bucket, src, manifest)
    before = listing(bucket, 'models/m/')
    dirivs = {k: v for k, v in before.items() if k.endswith('gocryptfs.diriv')}

    (src / ('c' * 200)).unlink()                        # a long-named file: its .name object goes too
    shutil.rmtree(str(src / 'nested' / 'deeper'))       # a directory with a subdirectory
    (src / 'nested' / 'new.bin').write_bytes(os.urandom(5000))
    stats = stream(bucket, src, manifest)
    assert stats['entries_removed'] == 2
    assert stats['objects_deleted'] == 2 + 3            # file + its .name; deeper/ and deepest/ dirivs + vocab.txt
    after = listing(bucket, 'models/m/')
    gone = set(before) - set(after)
    assert len(gone) == 5 and sum(1 for k in gone if k.endswith('.name')) == 1
    assert len(set(after) - set(before)) == 1           # new.bin only
    # every directory that is still there kept its IV object untouched
    for key, etag in dirivs.items():
        if key in after:
            assert after[key] == etag
    assert g.verify_oss_tree(str(src), bucket, 'models/m', master_key_of(bucket, 'models/m/'), CALL) == []
    # a file that became a directory of the same name
    (src / 'b4095').unlink()
    (src / 'b4095').mkdir()
    (src / 'b4095' / 'x').write_bytes(b'x')
    stats = stream(bucket, src, manifest)
    assert stats['entries_removed'] == 1 and stats['dirs_created'] == 1
    assert g.verify_oss_tree(str(src), bucket, 'models/m', master_key_of(bucket, 'models/m/'), CALL) == []


def test_wrong_password_and_foreign_prefix_write_nothing(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    stream(bucket, src, tmp_path / 'manifest.json')
    (src / 'new').write_bytes(b'new')
    since = now(emu)
    with pytest.raises(g.WrongPasswordError):
        stream(bucket, src, tmp_path / 'manifest.json', password='not-the-password')
    assert mutating_since(emu, since) == []
    bucket.put_object('other/README', b'hello')
    since = now(emu)
    with pytest.raises(g.GocryptfsError, match='no gocryptfs.conf'):
        stream(bucket, src, tmp_path / 'm2.json', prefix='other')
    # an object that is not part of this CIPHERDIR under the prefix is refused, not deleted
    bucket.put_object('models/m/README', b'hello')
    since = now(emu)
    with pytest.raises(g.GocryptfsError, match='do not decrypt'):
        stream(bucket, src, tmp_path / 'manifest.json')
    assert mutating_since(emu, since) == []


def test_check_mode_reads_only(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    since = now(emu)
    stats = stream(bucket, src, tmp_path / 'manifest.json', check_mode=True)
    assert stats['changed'] and stats['created'] and stats['files_encrypted'] == 12
    assert stats['objects_written'] == 21 and stats['bytes_uploaded'] > 5 * MIB
    assert mutating_since(emu, since) == [] and listing(bucket, 'models/m/') == {}
    assert not (tmp_path / 'manifest.json').exists()
    stream(bucket, src, tmp_path / 'manifest.json')
    (src / 'b4097').write_bytes(os.urandom(4097))
    (src / 'empty').unlink()
    since = now(emu)
    stats = stream(bucket, src, tmp_path / 'manifest.json', check_mode=True)
    assert stats['changed'] and stats['files_encrypted'] == 1 and stats['objects_deleted'] == 1
    assert mutating_since(emu, since) == []


def test_left_over_multipart_upload_is_aborted(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    manifest = tmp_path / 'manifest.json'
    stream(bucket, src, manifest)
    key = next(k for k in listing(bucket, 'models/m/') if not k.endswith(('.diriv', '.conf', '.name')))
    bucket.init_multipart_upload(key)       # what a killed run leaves behind
    stats = stream(bucket, src, manifest)
    assert stats['uploads_aborted'] == 1 and stats['changed']
    assert oss.list_uploads(CALL, bucket, 'models/m/') == []
    assert not stream(bucket, src, manifest)['changed']


def test_without_manifest_everything_is_sent_again_under_the_same_keys(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    stream(bucket, src, tmp_path / 'manifest.json')
    before = listing(bucket, 'models/m/')
    stats = stream(bucket, src, tmp_path / 'other-manifest.json', workers=1)
    assert stats['manifest_ignored'] == 'not found' and stats['files_encrypted'] == 12
    after = listing(bucket, 'models/m/')
    assert set(after) == set(before)
    assert g.verify_oss_tree(str(src), bucket, 'models/m', master_key_of(bucket, 'models/m/'), CALL) == []


def test_transient_faults_are_retried(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    emu.set_faults(rates={'oss:UploadPart': {'drop': 0.2}, 'oss': {'http503': 0.05, 'throttling': 0.05}}, seed=7)
    stats = stream(bucket, src, tmp_path / 'manifest.json', upload_workers=2)
    emu.clear_faults()
    assert stats['files_encrypted'] == 12
    assert any(r['fault'] for r in emu.requests())
    assert g.verify_oss_tree(str(src), bucket, 'models/m', master_key_of(bucket, 'models/m/'), CALL) == []
    assert oss.list_uploads(CALL, bucket, 'models/m/') == []


def test_hard_failure_aborts_the_upload_and_keeps_what_finished(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    manifest = tmp_path / 'manifest.json'
    impatient = oss.retry_call(RetryPolicy(max_attempts=2, base=0.01))
    emu.set_faults(rates={'oss:UploadPart': {'http500': 1.0}}, seed=1)
    with pytest.raises(AlicloudError):
        g.encrypt_tree_to_oss(str(src), bucket, 'models/m', PASSWORD, impatient, workers=2, manifest_path=str(manifest),
                              part_size=MIB, upload_workers=2, **FAST)
    emu.clear_faults()
    assert oss.list_uploads(CALL, bucket, 'models/m/') == []        # the failed object's upload was aborted
    # files sent before the multipart one (b4095, b4096, b4097, the 200-character name, config.json, empty)
    # are in the manifest: the next run skips them and sends the rest
    stats = stream(bucket, src, manifest)
    assert stats['files_skipped'] >= 4 and stats['files_encrypted'] == 12 - stats['files_skipped']
    assert g.verify_oss_tree(str(src), bucket, 'models/m', master_key_of(bucket, 'models/m/'), CALL) == []


def test_verify_reader_detects_a_flipped_byte(emu, bucket, tmp_path):
    src = make_tree(tmp_path / 'model')
    stream(bucket, src, tmp_path / 'manifest.json', prefix='')
    key_master = master_key_of(bucket, '')
    assert g.verify_oss_tree(str(src), bucket, '', key_master, CALL) == []
    scan = g.scan_oss(CALL, bucket, '', oss.list_objects(CALL, bucket, ''), g.Keys(key_master))
    key = scan.entries[b'b4097'].crel
    data = bytearray(bucket.get_object(key).read())
    data[4170] ^= 1         # the tag of block #1 (bytes 4146-4178: nonce, 1 byte, tag)
    bucket.put_object(key, bytes(data))
    problems = g.verify_oss_tree(str(src), bucket, '', key_master, CALL)
    assert len(problems) == 1 and 'b4097' in problems[0] and 'block #1' in problems[0]


def test_memory_is_bounded_in_process(emu, bucket, tmp_path):
    """tracemalloc: streaming a 64 MiB file holds a few parts, not the file (one process, 1 MiB parts)."""
    src = tmp_path / 'model'
    src.mkdir()
    with open(str(src / 'big.safetensors'), 'wb') as handle:
        for dummy in range(64):
            handle.write(os.urandom(MIB))
    tracemalloc.start()
    try:
        stats = stream(bucket, src, tmp_path / 'manifest.json', workers=1, upload_workers=2)
        dummy, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats['bytes_uploaded'] == g.ciphertext_size(64 * MIB)
    # 1 filling + 2 pending 1 MiB parts, plus the 4 MiB chunk lives in an mmap (not traced): far below 64 MiB
    assert peak < 8 * MIB, peak


CHILD = textwrap.dedent('''
    import json, sys
    import oss2
    from ansible_collections.confidential_ai.ack.plugins.module_utils import gocryptfs as g, oss

    def status(field):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024

    cfg = json.loads(sys.argv[1])
    bucket = oss2.Bucket(oss2.AuthV4(cfg['ak'], cfg['sk']), cfg['endpoint'], cfg['bucket'], region=cfg['region'])
    bucket.get_bucket_info()
    before = status('VmRSS')
    stats = g.encrypt_tree_to_oss(cfg['src'], bucket, 'big', 'pw', oss.retry_call(), workers=2, part_size=4 << 20,
                                  upload_workers=2, scrypt_n=1024, manifest_path=cfg['manifest'])
    print(json.dumps({'before': before, 'hwm': status('VmHWM'), 'uploaded': stats['bytes_uploaded']}))
''')


def test_memory_is_bounded_vmhwm_with_worker_processes(emu, bucket, tmp_path):
    """The peak RSS of the process that uploads (VmHWM) grows by far less than the 64 MiB file."""
    src = tmp_path / 'model'
    src.mkdir()
    with open(str(src / 'big.safetensors'), 'wb') as handle:
        for dummy in range(64):
            handle.write(os.urandom(MIB))
    ak, sk = emu.static_key
    cfg = dict(ak=ak, sk=sk, endpoint=emu.oss_endpoint, bucket=bucket.bucket_name, region=emu.region, src=str(src),
               manifest=str(tmp_path / 'manifest.json'))
    collections_root = os.path.dirname(os.path.dirname(os.path.dirname(REPO_ROOT)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([collections_root] + [p for p in sys.path if p]))
    proc = subprocess.run([sys.executable, '-c', CHILD, json.dumps(cfg)], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['uploaded'] == g.ciphertext_size(64 * MIB)
    growth = out['hwm'] - out['before']
    # 4 shared 4 MiB slots + (2 pending + 1 filling) 4 MiB parts = 28 MiB by design
    assert growth < 48 * MIB, growth / MIB


# ---------------------------------------------------------------------------------------------
# The module (main() with patched exits), real scrypt parameters

class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def _exit_json(self, **kwargs):  # pylint: disable=unused-argument
    kwargs.setdefault('changed', False)
    raise ExitJson(kwargs)


def _fail_json(self, **kwargs):  # pylint: disable=unused-argument
    raise FailJson(kwargs)


def run_module(emu, args, check_mode=False):
    ak, sk = emu.static_key
    full = dict(access_key=ak, secret_key=sk, region=emu.region, protocol='http', endpoints={'oss': emu.oss_endpoint})
    full.update(args)
    if check_mode:
        full['_ansible_check_mode'] = True
    with patch_module_args(full):
        with pytest.raises((ExitJson, FailJson)) as info:
            gocryptfs_encrypt.main()
    return info.type is ExitJson, info.value.args[0]


def test_module_end_to_end(emu, bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail_json)
    monkeypatch.setenv('ALIBABA_CLOUD_ECS_METADATA_DISABLED', 'true')
    src = make_tree(tmp_path / 'model')
    dest = 'oss://%s/models/qwen' % bucket.bucket_name
    args = dict(src=str(src), dest=dest, password=PASSWORD, state_dir=str(tmp_path / 'state'), part_size='1MiB', workers=2)

    since = now(emu)
    success, result = run_module(emu, args, check_mode=True)
    assert success and result['changed'] and result['objects_written'] == 21, result
    assert mutating_since(emu, since) == []

    success, result = run_module(emu, dict(args, verify='reader'))
    assert success and result['changed'] and result['verified'] == 'reader', result
    assert result['dest'] == dest + '/' and result['bucket'] == bucket.bucket_name and result['prefix'] == 'models/qwen/'
    assert result['files_encrypted'] == 12 and result['objects_written'] == 21 and result['throughput_mib_s'] > 0
    manifest = result['manifest']
    assert manifest.startswith(str(tmp_path / 'state' / 'manifests' / bucket.bucket_name) + '/')
    assert stat.S_IMODE(os.stat(manifest).st_mode) == 0o600
    assert PASSWORD not in json.dumps(result)
    conf = json.loads(bucket.get_object('models/qwen/gocryptfs.conf').read())
    assert conf['ScryptObject']['N'] == 65536

    since = now(emu)
    success, result = run_module(emu, args)
    assert success and not result['changed'] and result['objects_written'] == 0, result
    assert mutating_since(emu, since) == []

    password_file = tmp_path / 'key'
    password_file.write_text('wrong-password\n')
    since = now(emu)
    without_password = dict((k, v) for k, v in args.items() if k != 'password')
    success, result = run_module(emu, dict(without_password, password_file=str(password_file)))
    assert not success and 'wrong password' in result['msg']
    assert mutating_since(emu, since) == []

    success, result = run_module(emu, dict(args, dest='oss://gs-no-such-bucket/x'))
    assert not success and result['error']['code'] == 'NoSuchBucket', result
