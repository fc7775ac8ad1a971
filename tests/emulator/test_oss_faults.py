"""OSS emulator faults, request log and restart persistence, seen through oss2."""

import json
import os

import oss2
import pytest
from oss2 import exceptions as oe

from sandbox.alicloud.oss_testing import OssEmulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with OssEmulator(tmp_path_factory.mktemp("oss-faults")) as e:
        e.bucket("faults").create_bucket()
        e.bucket("faults").put_object("present.txt", b"here")
        yield e


@pytest.fixture(autouse=True)
def _no_faults(emu):
    emu.faults.configure(rates={})
    yield
    emu.faults.configure(rates={})


@pytest.mark.parametrize("kind,status,code", [
    ("http500", 500, "InternalError"),
    ("http503", 503, "ServiceUnavailable"),
    ("throttling", 503, "TotalQpsLimitExceeded"),
    ("throttling_retry_after", 429, "QpsLimitExceeded"),
])
def test_error_faults_reach_oss2_as_server_errors(emu, kind, status, code):
    bucket = emu.bucket("faults")
    emu.faults.configure(rates={"oss:PutObject": {kind: 1.0}})
    with pytest.raises(oe.ServerError) as err:
        bucket.put_object("faulty.txt", b"never stored")
    assert (err.value.status, err.value.code) == (status, code)
    assert err.value.request_id and err.value.message
    if kind == "throttling_retry_after":
        assert err.value.headers["Retry-After"] == "1"
    assert bucket.get_object("present.txt").read() == b"here"  # other actions are unaffected
    emu.faults.configure(rates={})
    assert not bucket.object_exists("faulty.txt")  # the faulted call changed nothing
    entry = [e for e in emu.log() if e["request_id"] == err.value.request_id][0]
    assert entry == dict(entry, action="PutObject", mutating=True, status=status, code=code, fault=kind)


def test_fault_on_head_comes_through_x_oss_err(emu):
    emu.faults.configure(rates={"oss:GetObjectMeta": {"http503": 1.0}})
    with pytest.raises(oe.ServerError) as err:
        emu.bucket("faults").object_exists("present.txt")
    assert (err.value.status, err.value.code) == (503, "ServiceUnavailable")


def test_dropped_connection_is_a_request_error(emu):
    bucket = emu.bucket("faults")
    emu.faults.configure(rates={"oss:PutObject": {"drop": 1.0}})
    before = len(emu.log())
    with pytest.raises(oe.RequestError) as err:
        bucket.put_object("dropped.txt", b"x" * 100000)
    assert err.value.status == -2
    emu.faults.configure(rates={})
    assert not bucket.object_exists("dropped.txt")
    dropped = [e for e in emu.log()[before:] if e["fault"] == "drop"]
    assert len(dropped) == 1 and dropped[0]["status"] is None and dropped[0]["action"] == "PutObject"


def test_listing_iterators_retry_5xx_like_against_the_service(emu):
    bucket = emu.bucket("faults")
    emu.faults.configure(seed=7, rates={"oss:ListObjectsV2": {"http500": 0.5}})
    before = len(emu.log())
    keys = [o.key for o in oss2.ObjectIteratorV2(bucket)]
    assert keys == ["present.txt"]
    listed = [e for e in emu.log()[before:] if e["action"] == "ListObjectsV2"]
    assert len(listed) == 3 and listed[-1]["status"] == 200  # seed 7: two faults in a row, then success
    assert all(e["fault"] == "http500" for e in listed[:-1])


def test_request_log_has_no_secrets(emu):
    emu.bucket("faults", sts=True).get_object("present.txt").read()
    with open(emu.request_log.path, encoding="utf-8") as f:
        text = f.read()
    for entry in emu.credentials.keys.values():
        assert entry["secret"] not in text
        if entry.get("security_token"):
            assert entry["security_token"] not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(set(line) == {"time", "service", "action", "mutating", "status", "code", "request_id", "fault"} for line in lines)
    gets = [line for line in lines if line["action"] == "GetObject"]
    assert gets and all(not line["mutating"] for line in gets)


def test_state_survives_restart(tmp_path):
    state = tmp_path / "state"
    big = os.urandom(300 * 1024)
    with OssEmulator(state) as first:
        bucket = first.bucket("persist", v4=True)
        bucket.create_bucket(oss2.BUCKET_ACL_PRIVATE)
        bucket.put_object("dir/small.txt", b"persisted", headers={"x-oss-meta-x": "y"})
        upload_id = bucket.init_multipart_upload("mp.bin").upload_id
        r1 = bucket.upload_part("mp.bin", upload_id, 1, big)
        open_id = bucket.init_multipart_upload("still-open.bin").upload_id
        bucket.upload_part("still-open.bin", open_id, 1, b"part one")
        r2 = bucket.upload_part("mp.bin", upload_id, 2, b"end")
        bucket.complete_multipart_upload("mp.bin", upload_id, [oss2.models.PartInfo(1, r1.etag), oss2.models.PartInfo(2, r2.etag)])
        head_before = bucket.head_object("mp.bin")
        endpoint_before = first.endpoint
    with pytest.raises(oe.RequestError):  # the first emulator is really gone
        oss2.Bucket(first.auth(), endpoint_before, "persist", connect_timeout=2).get_object("dir/small.txt")
    with OssEmulator(state) as second:
        bucket = second.bucket("persist", v4=True)
        got = bucket.get_object("dir/small.txt")
        assert got.read() == b"persisted" and got.headers["x-oss-meta-x"] == "y"
        head = bucket.head_object("mp.bin")
        assert (head.etag, head.server_crc, head.content_length) == (head_before.etag, head_before.server_crc, len(big) + 3)
        assert bucket.get_object("mp.bin").read() == big + b"end"
        assert bucket.get_bucket_acl().acl == "private"
        parts = bucket.list_parts("still-open.bin", open_id).parts
        assert [(p.part_number, p.size) for p in parts] == [(1, 8)]
        bucket.abort_multipart_upload("still-open.bin", open_id)
        assert [o.key for o in oss2.ObjectIteratorV2(bucket)] == ["dir/small.txt", "mp.bin"]
    files = [os.path.join(root, f) for root, dummy_dirs, fs in os.walk(state) for f in fs]
    assert not [f for f in files if f.endswith(".tmp")]


def _dropped_after(emu, before, action):
    entries = [e for e in emu.log()[before:] if e["action"] == action]
    assert len(entries) == 1 and entries[0]["fault"] == "drop_after" and entries[0]["mutating"]
    return entries[0]


def test_drop_after_put_object_stores_the_object(emu):
    bucket = emu.bucket("faults")
    data = os.urandom(150000)
    emu.faults.configure(rates={"oss:PutObject": {"drop_after": 1.0}})
    before = len(emu.log())
    with pytest.raises(oe.RequestError) as err:
        bucket.put_object("answer-lost.bin", data)
    assert err.value.status == -2
    emu.faults.configure(rates={})
    assert _dropped_after(emu, before, "PutObject")["status"] == 200  # the answer that was never sent
    assert bucket.get_object("answer-lost.bin").read() == data
    bucket.delete_object("answer-lost.bin")


def test_drop_after_upload_part_and_complete(emu):
    bucket = emu.bucket("faults", v4=True)
    parts = [os.urandom(120 * 1024), b"tail"]
    upload_id = bucket.init_multipart_upload("mp-answer-lost.bin").upload_id
    emu.faults.configure(rates={"oss:UploadPart": {"drop_after": 1.0}})
    before = len(emu.log())
    with pytest.raises(oe.RequestError):
        bucket.upload_part("mp-answer-lost.bin", upload_id, 1, parts[0])
    emu.faults.configure(rates={})
    _dropped_after(emu, before, "UploadPart")
    listed = bucket.list_parts("mp-answer-lost.bin", upload_id).parts
    assert [(p.part_number, p.size) for p in listed] == [(1, len(parts[0]))]  # the part arrived
    second = bucket.upload_part("mp-answer-lost.bin", upload_id, 2, parts[1])
    infos = [oss2.models.PartInfo(1, listed[0].etag), oss2.models.PartInfo(2, second.etag)]
    emu.faults.configure(rates={"oss:CompleteMultipartUpload": {"drop_after": 1.0}})
    before = len(emu.log())
    with pytest.raises(oe.RequestError):
        bucket.complete_multipart_upload("mp-answer-lost.bin", upload_id, infos)
    emu.faults.configure(rates={})
    _dropped_after(emu, before, "CompleteMultipartUpload")
    assert bucket.get_object("mp-answer-lost.bin").read() == b"".join(parts)  # the object is complete
    with pytest.raises(oe.NoSuchUpload):  # a retried Complete finds the upload gone, as on the service
        bucket.complete_multipart_upload("mp-answer-lost.bin", upload_id, infos)
    bucket.delete_object("mp-answer-lost.bin")


def test_drop_after_get_object_sends_no_byte(emu):
    bucket = emu.bucket("faults")
    emu.faults.configure(rates={"oss:GetObject": {"drop_after": 1.0}})
    with pytest.raises(oe.RequestError):
        bucket.get_object("present.txt").read()
    before = len(emu.log())
    with pytest.raises(oe.RequestError):  # an error answer is lost too
        bucket.get_object("missing.txt")
    entry = emu.log()[before:][0]
    assert (entry["status"], entry["code"], entry["fault"]) == (404, "NoSuchKey", "drop_after")
    emu.faults.configure(rates={})
    assert bucket.get_object("present.txt").read() == b"here"
