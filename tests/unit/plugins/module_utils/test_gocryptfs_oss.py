# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parts of the OSS streaming path: URLs, default manifest paths, the name scan over a fake
listing, planning (keys, long names, key length limit). The emulator tests live in tests/gocryptfs."""

from __future__ import annotations

import os

import pytest

pytest.importorskip('cryptography')

from ansible_collections.confidential_ai.ack.plugins.module_utils import gocryptfs as g  # noqa: E402
from ansible_collections.confidential_ai.ack.plugins.module_utils import _gocryptfs_oss as go  # noqa: E402
from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_tree import scan_source  # noqa: E402


@pytest.mark.parametrize('url, bucket, prefix', [
    ('oss://models/qwen/v1', 'models', 'qwen/v1/'),
    ('oss://models/qwen/v1/', 'models', 'qwen/v1/'),
    ('oss://models', 'models', ''),
    ('oss://models/', 'models', ''),
])
def test_parse_oss_url(url, bucket, prefix):
    assert g.is_oss_url(url)
    assert g.parse_oss_url(url) == (bucket, prefix)


@pytest.mark.parametrize('url, word', [
    ('oss://Models/x', 'bucket name'),
    ('oss://a/x', 'bucket name'),
    ('oss://models/a/../b', "'..'"),
    ('oss://models/a//b', 'empty'),
    ('/srv/x', 'not an oss://'),
])
def test_parse_oss_url_rejects(url, word):
    with pytest.raises(g.GocryptfsError, match=word):
        g.parse_oss_url(url)


def test_default_manifest_path(tmp_path):
    one = g.default_manifest_path(str(tmp_path), 'models', 'qwen/v1/')
    assert one.startswith(str(tmp_path / 'manifests' / 'models') + '/') and one.endswith('.json')
    assert one == g.default_manifest_path(str(tmp_path), 'models', 'qwen/v1/')
    assert one != g.default_manifest_path(str(tmp_path), 'models', 'qwen/v2/')
    assert 'qwen' not in os.path.basename(one)
    assert g.default_manifest_path(None, 'b1b', '').startswith(os.path.expanduser('~/.cache/cai-ack/manifests/b1b/'))


class FakeStream:
    def __init__(self, data):
        self.data = data

    def read(self, n):
        out, self.data = self.data[:n], self.data[n:]
        return out


class FakeBucket:
    """get_object over a dict; counts reads. Enough for scan_oss, which only reads small objects."""

    bucket_name = 'fake'

    def __init__(self, objects):
        self.objects = objects
        self.reads = []

    def get_object(self, key):
        self.reads.append(key)
        return FakeStream(self.objects[key])


def call(func, *args, **kwargs):
    kwargs.pop('operation', None)
    return func(*args, **kwargs)


def build(prefix, keys, tree):
    """A CIPHERDIR as a dict of objects: tree = {rel: content or None for a directory}."""
    root_iv = os.urandom(16)
    objects = {prefix + 'gocryptfs.conf': b'{}', prefix + 'gocryptfs.diriv': root_iv}
    dirs = {b'': ('', root_iv)}
    for rel in sorted(tree):
        parent, dummy, base = rel.rpartition(b'/')
        pcrel, piv = dirs[parent]
        disk, name_data = g.cipher_entry_name(g.encrypt_name(keys.names, piv, base))
        crel = pcrel + '/' + disk if pcrel else disk
        if name_data is not None:
            objects[prefix + crel + '.name'] = name_data
        if tree[rel] is None:
            iv = os.urandom(16)
            dirs[rel] = (crel, iv)
            objects[prefix + crel + '/gocryptfs.diriv'] = iv
        else:
            objects[prefix + crel] = tree[rel]
    return objects


def listing(objects):
    return dict((k, {'size': len(v), 'etag': 'E' + k[-4:]}) for k, v in objects.items())


def test_scan_oss_decrypts_names_dirs_and_long_names():
    keys = g.Keys(os.urandom(32))
    tree = {b'a.bin': b'x' * 51, b'sub': None, b'sub/' + b'l' * 200: b'y', b'sub/deep': None, b'sub/deep/z': b'',
            b'd' * 180: None, b'd' * 180 + b'/in': b'q'}
    objects = build('p/', keys, tree)
    objects['p/marker/'] = b''                       # a directory marker written by some other tool is ignored
    fake = FakeBucket(objects)
    scan = g.scan_oss(call, fake, 'p/', listing(objects), keys)
    assert scan.unknown == [] and scan.stale == []
    assert sorted(scan.entries) == sorted(tree)
    assert scan.entries[b'sub'].kind == 'd' and scan.entries[b'sub/deep/z'].kind == 'f'
    assert scan.entries[b'sub/' + b'l' * 200].name_key.endswith('.name')
    # removing a directory removes everything below it, markers included
    sub = scan.entries[b'sub'].crel
    objects['p/' + sub + '/'] = b''
    scan = g.scan_oss(call, FakeBucket(objects), 'p/', listing(objects), keys)
    under = scan.keys_under(sub)
    assert 'p/' + sub + '/' in under and 'p/' + sub + '/gocryptfs.diriv' in under and len(under) == 6
    del objects['p/' + sub + '/']
    fake = FakeBucket(objects)
    scan = g.scan_oss(call, fake, 'p/', listing(objects), keys)
    # reads: root diriv, 3 dir dirivs, 2 .name objects - and nothing else (file contents are never read)
    assert len(fake.reads) == 6 == scan.reads
    # an orphan .name object is stale; a foreign object is unknown
    objects['p/gocryptfs.longname.' + 'A' * 43 + '.name'] = b'x'
    objects['p/README'] = b'hello'
    scan = g.scan_oss(call, FakeBucket(objects), 'p/', listing(objects), keys)
    assert scan.stale == ['p/gocryptfs.longname.' + 'A' * 43 + '.name'] and scan.unknown == ['p/README']
    # another master key: nothing decrypts
    other = g.scan_oss(call, FakeBucket(objects), 'p/', listing(objects), g.Keys(os.urandom(32)))
    assert other.entries == {} and len(other.unknown) == 4


def test_plan_new_tree_keys_and_key_length_limit(tmp_path):
    src = tmp_path / 'src'
    (src / 'sub').mkdir(parents=True)
    (src / 'sub' / ('n' * 200)).write_bytes(b'z')
    (src / 'f').write_bytes(b'1234')
    keys = g.Keys(os.urandom(32))
    root = os.fsencode(str(src))
    plan = go.plan_oss(root, scan_source(root), None, None, keys, 'pre/', root_iv=os.urandom(16))
    assert len(plan.mkdir) == 1 and len(plan.jobs) == 2 and plan.objects_to_write(True) == 2 + 1 + 2 + 1
    assert all(job.key.startswith('pre/') for job in plan.jobs)
    long_job = next(job for job in plan.jobs if job.name_data is not None)
    assert long_job.name_key == long_job.key + '.name' and long_job.key.split('/')[-1].startswith('gocryptfs.longname.')
    # the same tree under a prefix that leaves no room for the long name's key is refused before any write
    with pytest.raises(g.GocryptfsError, match='longer than 1023'):
        go.plan_oss(root, scan_source(root), None, None, keys, 'x' * 960 + '/', root_iv=os.urandom(16))
