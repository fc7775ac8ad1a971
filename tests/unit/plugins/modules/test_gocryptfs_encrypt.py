# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module-level tests of gocryptfs_encrypt (python method; the FUSE paths live in tests/gocryptfs)."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip('cryptography')

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.confidential_ai.ack.plugins.module_utils import gocryptfs as g  # noqa: E402
from ansible_collections.confidential_ai.ack.plugins.modules import gocryptfs_encrypt  # noqa: E402

PASSWORD = 'unit-test-password'


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ExitJson(kwargs)


def _fail_json(self, **kwargs):
    raise FailJson(kwargs)


@pytest.fixture(autouse=True)
def patched_exits(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail_json)


def run(args, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises((ExitJson, FailJson)) as info:
            gocryptfs_encrypt.main()
    return info.type is ExitJson, info.value.args[0]


def ok(args, check_mode=False):
    success, result = run(args, check_mode)
    assert success, result
    return result


def fail(args, check_mode=False):
    success, result = run(args, check_mode)
    assert not success, result
    return result


@pytest.fixture
def model(tmp_path):
    src = tmp_path / 'model'
    (src / 'nested').mkdir(parents=True)
    (src / 'model-00001-of-00002.safetensors').write_bytes(os.urandom(5 * 1048576 + 3))
    (src / 'model-00002-of-00002.safetensors').write_bytes(os.urandom(8192))
    (src / 'config.json').write_bytes(b'{"model_type": "qwen2"}\n')
    (src / 'empty').write_bytes(b'')
    (src / 'nested' / ('n' * 200)).write_bytes(b'long name\n')
    return src


def snapshot(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(path)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, str(path))] = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
    return out


def test_encrypt_then_idempotent(model, tmp_path):
    dest = tmp_path / 'enc'
    args = dict(src=str(model), dest=str(dest), password=PASSWORD, workers=2)
    first = ok(args)
    assert first['changed'] and first['created']
    assert first['files_total'] == 5 and first['files_encrypted'] == 5 and first['files_skipped'] == 0
    assert first['bytes_encrypted'] == first['bytes_total'] == sum(p.stat().st_size for p in model.rglob('*') if p.is_file())
    assert first['method'] == 'python' and first['dest'] == str(dest) and first['workers'] == 2
    assert first['manifest'] == str(dest) + '.cai-manifest.json'
    assert os.stat(first['manifest']).st_mode & 0o777 == 0o600
    assert PASSWORD not in json.dumps(first)

    key, created = g.open_cipherdir(str(dest), PASSWORD)
    assert not created
    assert g.verify_tree(str(model), str(dest), key) == []
    conf = json.loads((dest / 'gocryptfs.conf').read_text())
    assert conf['ScryptObject']['N'] == 65536

    before = snapshot(dest)
    second = ok(args)
    assert not second['changed'] and not second['created']
    assert second['files_encrypted'] == 0 and second['files_skipped'] == 5 and second['bytes_encrypted'] == 0
    assert snapshot(dest) == before


def test_check_mode_reports_and_writes_nothing(model, tmp_path):
    dest = tmp_path / 'enc'
    args = dict(src=str(model), dest=str(dest), password=PASSWORD)
    result = ok(args, check_mode=True)
    assert result['changed'] and result['created'] and result['files_encrypted'] == 5
    assert not dest.exists() and not os.path.exists(str(dest) + '.cai-manifest.json')

    ok(args)
    before = snapshot(dest)
    (model / 'config.json').write_bytes(b'{"model_type": "qwen3"}\n')
    result = ok(args, check_mode=True)
    assert result['changed'] and result['files_encrypted'] == 1 and result['files_skipped'] == 4
    assert snapshot(dest) == before
    result = ok(args)
    assert result['changed'] and result['files_encrypted'] == 1
    assert not ok(args, check_mode=True)['changed']


def test_password_file_matches_password_with_or_without_newline(model, tmp_path):
    dest = tmp_path / 'enc'
    ok(dict(src=str(model), dest=str(dest), password=PASSWORD))
    for content in (PASSWORD + '\n', PASSWORD):       # cat << EOF, echo -n
        pfile = tmp_path / 'pw'
        pfile.write_text(content)
        result = ok(dict(src=str(model), dest=str(dest), password_file=str(pfile)))
        assert not result['changed']


def test_wrong_password_fails_and_changes_nothing(model, tmp_path):
    dest = tmp_path / 'enc'
    ok(dict(src=str(model), dest=str(dest), password=PASSWORD))
    (model / 'config.json').write_bytes(b'changed')
    before = snapshot(dest)
    result = fail(dict(src=str(model), dest=str(dest), password='not-the-password'))
    assert 'wrong password' in result['msg']
    assert snapshot(dest) == before
    result = fail(dict(src=str(model), dest=str(dest), password='not-the-password'), check_mode=True)
    assert 'wrong password' in result['msg']


def test_password_options_are_exclusive_and_required(model, tmp_path):
    pfile = tmp_path / 'pw'
    pfile.write_text('x\n')
    result = fail(dict(src=str(model), dest=str(tmp_path / 'enc'), password='x', password_file=str(pfile)))
    assert 'mutually exclusive' in result['msg']
    result = fail(dict(src=str(model), dest=str(tmp_path / 'enc')))
    assert 'one of the following is required' in result['msg']
    assert not (tmp_path / 'enc').exists()


def test_bad_inputs(model, tmp_path):
    result = fail(dict(src=str(model), dest=str(tmp_path / 'enc'), password='two\nlines'))
    assert 'newline' in result['msg']
    result = fail(dict(src=str(tmp_path / 'missing'), dest=str(tmp_path / 'enc'), password=PASSWORD))
    assert 'not a directory' in result['msg']
    result = fail(dict(src=str(model), dest=str(tmp_path / 'enc'), password=PASSWORD, workers=0))
    assert 'workers' in result['msg']
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'data').write_bytes(b'x')
    result = fail(dict(src=str(model), dest=str(foreign), password=PASSWORD))
    assert 'not empty' in result['msg']
    pfile = tmp_path / 'multi'
    pfile.write_text('a\nb\n')
    result = fail(dict(src=str(model), dest=str(tmp_path / 'enc'), password_file=str(pfile)))
    assert 'more than one line' in result['msg']


def test_verify_reader_and_custom_manifest(model, tmp_path):
    dest = tmp_path / 'enc'
    manifest = tmp_path / 'state' / 'manifest.json'
    args = dict(src=str(model), dest=str(dest), password=PASSWORD, verify='reader', manifest=str(manifest), workers=1)
    result = ok(args)
    assert result['verified'] == 'reader' and result['manifest'] == str(manifest) and manifest.exists()
    assert not ok(args)['changed']


def test_verify_reader_detects_corruption(model, tmp_path):
    dest = tmp_path / 'enc'
    args = dict(src=str(model), dest=str(dest), password=PASSWORD)
    ok(args)
    key, dummy = g.open_cipherdir(str(dest), PASSWORD)
    big = [e for e in g.walk_cipherdir(str(dest), key) if e.rel == b'model-00001-of-00002.safetensors'][0]
    path = os.path.join(str(dest), os.fsdecode(big.crel))
    with open(path, 'r+b') as handle:
        handle.seek(4096 * 3)
        byte = handle.read(1)
        handle.seek(4096 * 3)
        handle.write(bytes([byte[0] ^ 0x40]))
    result = fail(dict(args, verify='reader'))
    assert 'Verification (reader)' in result['msg'] and 'corrupt block #2' in result['msg']


def test_fuse_method_check_mode_needs_no_binary(model, tmp_path):
    dest = tmp_path / 'enc'
    result = ok(dict(src=str(model), dest=str(dest), password=PASSWORD, method='fuse', gocryptfs_binary='/nonexistent'),
                check_mode=True)
    assert result['changed'] and result['method'] == 'fuse' and result['files_encrypted'] == 5
    assert not dest.exists()


@pytest.mark.parametrize('extra, word', [
    (dict(dest='oss://Bad_Bucket/prefix'), 'bucket name'),
    (dict(dest='oss://bucket/a/../b'), "'..'"),
    (dict(method='fuse'), 'method=fuse'),
    (dict(verify='gocryptfs'), 'verify=gocryptfs'),
    (dict(part_size='10KiB'), 'part_size'),
    (dict(part_size='lots'), 'part_size'),
    (dict(upload_workers=0), 'upload_workers'),
    (dict(), 'credentials'),        # everything valid, but no credentials: they are looked up last
])
def test_oss_dest_bad_inputs_fail_before_any_cloud_call(model, tmp_path, monkeypatch, extra, word):
    for var in ('ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALIBABA_CLOUD_SECURITY_TOKEN',
                'ALIBABA_CLOUD_PROFILE', 'ALIBABA_CLOUD_REGION_ID'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('ALIBABA_CLOUD_ECS_METADATA_DISABLED', 'true')
    monkeypatch.setenv('ALIBABA_CLOUD_CONFIG_FILE', str(tmp_path / 'no-aliyun-config.json'))
    args = dict(src=str(model), dest='oss://bucket/prefix', password=PASSWORD, state_dir=str(tmp_path / 'state'))
    args.update(extra)
    result = fail(args)
    assert word in result['msg'], result
    assert not (tmp_path / 'state').exists()


def test_oss_dest_refuses_symlinks_before_credentials(model, tmp_path, monkeypatch):
    monkeypatch.setenv('ALIBABA_CLOUD_ECS_METADATA_DISABLED', 'true')
    (model / 'link').symlink_to('config.json')
    result = fail(dict(src=str(model), dest='oss://bucket/prefix', password=PASSWORD, state_dir=str(tmp_path / 'state')))
    assert 'symlinks' in result['msg'] and 'link' in result['msg']


def test_local_dest_needs_no_cloud_options(model, tmp_path, monkeypatch):
    """A local dest never resolves credentials: no cloud option, no environment, no aliyun config."""
    for var in ('ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALIBABA_CLOUD_REGION_ID'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('ALIBABA_CLOUD_CONFIG_FILE', str(tmp_path / 'no-aliyun-config.json'))
    result = ok(dict(src=str(model), dest=str(tmp_path / 'enc'), password=PASSWORD, workers=1))
    assert result['changed'] and result['files_encrypted'] == 5
    assert 'objects_written' not in result and 'bucket' not in result
