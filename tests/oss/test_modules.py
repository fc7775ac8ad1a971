# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""oss_bucket and oss_sync run in-process (main() with patched exits) against the emulator's OSS, for
what the integration ladders cannot set up with modules alone: a public bucket, an interrupted upload
left by a killed process, injected faults, and keys that would escape the download directory.

Run from the collection root ($COLL):
    python -m pytest -q -p no:cacheprovider --ansible-unit-inject-only tests/oss
"""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest

oss2 = pytest.importorskip("oss2")

from ansible.module_utils import basic  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.confidential_ai.ack.plugins.module_utils import oss  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.confidential_ai.ack.plugins.modules import oss_bucket, oss_sync  # noqa: E402  pylint: disable=wrong-import-position

from sandbox.alicloud.testing import EmulatorProcess  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024
CALL = oss.retry_call()


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def _exit_json(self, **kwargs):  # pylint: disable=unused-argument
    kwargs.setdefault("changed", False)
    raise ExitJson(kwargs)


def _fail_json(self, **kwargs):  # pylint: disable=unused-argument
    raise FailJson(kwargs)


@pytest.fixture(autouse=True)
def patched_exits(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with EmulatorProcess(state_dir=str(tmp_path_factory.mktemp("oss-modules-emulator"))) as process:
        yield process


def run(module, emu, args, check_mode=False):
    ak, sk = emu.static_key
    full = dict(access_key=ak, secret_key=sk, region=emu.region, protocol="http", endpoints={"oss": emu.oss_endpoint},
                max_attempts=10)
    full.update(args)
    if check_mode:
        full["_ansible_check_mode"] = True
    with patch_module_args(full):
        with pytest.raises((ExitJson, FailJson)) as info:
            module.main()
    return info.type is ExitJson, info.value.args[0]


@pytest.fixture
def bucket(emu, request):
    ak, sk = emu.static_key
    name = "mod-%s" % hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    client = oss2.Bucket(oss2.AuthV4(ak, sk), emu.oss_endpoint, name, region=emu.region)
    client.create_bucket(oss2.BUCKET_ACL_PUBLIC_READ)  # the worst case: a world-readable bucket
    emu.clear_faults()
    yield client
    emu.clear_faults()
    oss.empty_bucket(CALL, client)
    client.delete_bucket()


def test_public_bucket_is_made_private(emu, bucket):
    success, result = run(oss_bucket, emu, {"name": bucket.bucket_name}, check_mode=True)
    assert success and result["changed"] and result["bucket"]["acl"] == "private"
    assert bucket.get_bucket_acl().acl == "public-read"  # check mode changed nothing
    success, result = run(oss_bucket, emu, {"name": bucket.bucket_name})
    assert success and result["changed"], result
    assert bucket.get_bucket_acl().acl == "private"
    assert result["bucket"]["server_side_encryption"]["algorithm"] == "AES256"
    success, result = run(oss_bucket, emu, {"name": bucket.bucket_name})
    assert success and not result["changed"]


def test_synced_objects_are_private_even_in_a_public_bucket(emu, bucket, tmp_path):
    (tmp_path / "a.bin").write_bytes(os.urandom(300 * 1024))
    (tmp_path / "b.txt").write_bytes(b"small")
    success, result = run(oss_sync, emu, {"bucket": bucket.bucket_name, "prefix": "p", "path": str(tmp_path), "part_size": "100KiB"})
    assert success, result
    assert result["sync"]["uploaded"] == ["a.bin", "b.txt"]
    for key in ("p/a.bin", "p/b.txt"):
        # On the real service an object ACL overrides the bucket's, so these are not readable anonymously.
        # (The emulator's anonymous access looks at the bucket ACL only, so that part is not checked here.)
        assert bucket.get_object_acl(key).acl == "private"


def test_oss_sync_resumes_an_interrupted_upload(emu, bucket, tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    data = random.Random(4).randbytes(4 * MIB + 100)
    (src / "w.bin").write_bytes(data)
    # what a killed run leaves: a pending upload with the first three parts
    upload_id = bucket.init_multipart_upload("m/w.bin").upload_id
    for number in (1, 2, 3):
        bucket.upload_part("m/w.bin", upload_id, number, data[(number - 1) * MIB:number * MIB])
    success, result = run(oss_sync, emu, {"bucket": bucket.bucket_name, "prefix": "m", "path": str(src), "part_size": "1MiB"})
    assert success, result
    sync = result["sync"]
    assert sync["resumed"] == ["w.bin"]
    assert sync["bytes_resumed"] == 3 * MIB and sync["bytes_sent"] == MIB + 100
    assert oss.head_object(CALL, bucket, "m/w.bin")["crc64"] == oss.crc64(data)
    assert oss.list_uploads(CALL, bucket, "") == []


def test_oss_sync_through_faults(emu, bucket, tmp_path):
    src = tmp_path / "model"
    (src / "d").mkdir(parents=True)
    files = {"big.bin": random.Random(1).randbytes(3 * MIB + 5), "d/small.json": b'{"a": 1}', "empty": b""}
    for name, content in files.items():
        (src / name).write_bytes(content)
    emu.set_faults(rates={"oss:UploadPart": {"drop": 0.2}, "oss": {"http503": 0.05, "throttling": 0.05}}, seed=5)
    success, result = run(oss_sync, emu, {"bucket": bucket.bucket_name, "path": str(src), "part_size": "512KiB", "workers": 3})
    emu.clear_faults()
    assert success, result
    assert result["sync"]["files_sent"] == 3
    assert any(r.get("fault") for r in emu.requests())
    for name, content in files.items():
        assert bucket.get_object(name).read() == content


def test_download_refuses_keys_that_escape_the_directory(emu, bucket, tmp_path):
    bucket.put_object("x/ok.bin", b"ok")
    bucket.put_object("x/a/../../escape.bin", b"evil")
    dest = tmp_path / "dest"
    success, result = run(oss_sync, emu, {"bucket": bucket.bucket_name, "prefix": "x", "path": str(dest), "direction": "download"})
    assert not success
    assert "a/../../escape.bin" in result["msg"]
    assert not dest.exists()


def test_check_mode_reports_without_sending(emu, bucket, tmp_path):
    (tmp_path / "f").write_bytes(b"12345")
    before = len(emu.requests())
    success, result = run(oss_sync, emu, {"bucket": bucket.bucket_name, "path": str(tmp_path)}, check_mode=True)
    assert success and result["changed"]
    assert result["sync"]["uploaded"] == ["f"] and result["sync"]["bytes_sent"] == 5
    assert [r for r in emu.requests()[before:] if r["mutating"]] == []
    json.dumps(result)  # the result is JSON-serialisable
