"""OSS emulator multipart uploads through oss2: resumable upload/download, resume, part errors, listings."""

import hashlib
import os

import oss2
import pytest
from oss2 import exceptions as oe
from oss2.models import PartInfo

from sandbox.alicloud.oss_crc import crc64, crc64_combine
from sandbox.alicloud.oss_testing import OssEmulator

MIB = 1 << 20


class _Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with OssEmulator(tmp_path_factory.mktemp("oss-multipart")) as e:
        e.bucket("mp-v1").create_bucket()
        e.bucket("mp-v4", v4=True).create_bucket()
        yield e


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _actions(emu, start):
    return [entry["action"] for entry in emu.log()[start:]]


def test_crc64_combine_matches_oss2():
    a, b = os.urandom(1000), os.urandom(123457)
    oss2_crc = oss2.utils.Crc64(0)
    assert crc64_combine(crc64(a), crc64(b), len(b)) == oss2_crc.combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    assert crc64(b"123456789") == 11051210869376104954


@pytest.mark.parametrize("v4", [False, True])
def test_resumable_upload_and_ranged_download_round_trip(emu, tmp_path, v4):
    bucket = emu.bucket("mp-v4" if v4 else "mp-v1", v4=v4)
    assert bucket.enable_crc  # the default: every part and the completed object are CRC-checked by oss2
    src = tmp_path / "model.safetensors"
    src.write_bytes(os.urandom(25 * MIB + 12345))
    start = len(emu.log())
    result = oss2.resumable_upload(bucket, "models/model.safetensors", str(src), store=oss2.ResumableStore(root=str(tmp_path / "ckpt")),
                                   multipart_threshold=5 * MIB, part_size=5 * MIB, num_threads=3)
    actions = _actions(emu, start)
    assert actions.count("InitiateMultipartUpload") == 1 and actions.count("UploadPart") == 6
    assert actions.count("CompleteMultipartUpload") == 1
    assert result.etag.endswith("-6")
    assert result.crc == crc64(src.read_bytes())

    head = bucket.head_object("models/model.safetensors")
    assert head.content_length == src.stat().st_size and head.object_type == "Multipart"
    assert head.server_crc == result.crc

    dst = tmp_path / "download.bin"
    start = len(emu.log())
    oss2.resumable_download(bucket, "models/model.safetensors", str(dst), multiget_threshold=MIB, part_size=4 * MIB, num_threads=3,
                            store=oss2.ResumableDownloadStore(root=str(tmp_path / "dckpt")))
    assert _actions(emu, start).count("GetObject") == 7
    assert _sha(dst) == _sha(src)

    dst2 = tmp_path / "whole.bin"
    bucket.get_object_to_file("models/model.safetensors", str(dst2))  # CRC compared by oss2 (InconsistentError otherwise)
    assert _sha(dst2) == _sha(src)
    piece = bucket.get_object("models/model.safetensors", byte_range=(5 * MIB - 10, 5 * MIB + 9)).read()
    assert piece == src.read_bytes()[5 * MIB - 10:5 * MIB + 10]  # a range across the boundary of two parts


def test_interrupted_resumable_upload_resumes(emu, tmp_path):
    bucket = emu.bucket("mp-v1")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(6 * MIB))
    store = oss2.ResumableStore(root=str(tmp_path / "ckpt"))
    done = []

    def stop_after_two_parts(consumed, _total):
        done.append(consumed)
        if consumed >= 2 * MIB:
            raise _Interrupt()

    with pytest.raises(_Interrupt):
        oss2.resumable_upload(bucket, "resume.bin", str(src), store=store, multipart_threshold=MIB, part_size=MIB, num_threads=1,
                              progress_callback=stop_after_two_parts)
    assert not bucket.object_exists("resume.bin")
    uploads = list(oss2.MultipartUploadIterator(bucket, prefix="resume.bin"))
    assert len(uploads) == 1
    parts_before = [p.part_number for p in oss2.PartIterator(bucket, "resume.bin", uploads[0].upload_id)]
    assert parts_before == [1, 2]

    start = len(emu.log())
    oss2.resumable_upload(bucket, "resume.bin", str(src), store=store, multipart_threshold=MIB, part_size=MIB, num_threads=1)
    actions = _actions(emu, start)
    assert "InitiateMultipartUpload" not in actions  # the same upload id was reused
    assert actions.count("ListParts") >= 1 and actions.count("UploadPart") == 4
    assert bucket.get_object("resume.bin").read() == src.read_bytes()
    assert not list(oss2.MultipartUploadIterator(bucket, prefix="resume.bin"))


def test_multipart_errors(emu):
    bucket = emu.bucket("mp-v1")
    with pytest.raises(oe.NoSuchUpload):
        bucket.upload_part("k.bin", "0000NOSUCHUPLOAD", 1, b"x")
    with pytest.raises(oe.NoSuchUpload):
        bucket.complete_multipart_upload("k.bin", "0000NOSUCHUPLOAD", [PartInfo(1, "ETAG")])
    with pytest.raises(oe.NoSuchUpload):
        bucket.abort_multipart_upload("k.bin", "0000NOSUCHUPLOAD")
    with pytest.raises(oe.NoSuchUpload):
        bucket.list_parts("k.bin", "0000NOSUCHUPLOAD")

    upload_id = bucket.init_multipart_upload("k.bin", headers={"x-oss-meta-kind": "weights"}).upload_id
    assert bucket.list_parts("k.bin", upload_id).parts == []  # ListParts right after Initiate (resumable_upload does this)
    with pytest.raises(oe.NoSuchUpload):  # the upload belongs to another key
        bucket.upload_part("other.bin", upload_id, 1, b"x")
    with pytest.raises(oe.InvalidArgument):
        bucket.upload_part("k.bin", upload_id, 10001, b"x")
    small = [bucket.upload_part("k.bin", upload_id, n, b"%d" % n * 10) for n in (1, 2)]
    with pytest.raises(oe.ServerError) as err:
        bucket.complete_multipart_upload("k.bin", upload_id, [PartInfo(n + 1, r.etag) for n, r in enumerate(small)])
    assert (err.value.status, err.value.code) == (400, "EntityTooSmall")
    with pytest.raises(oe.ServerError) as err:
        bucket.complete_multipart_upload("k.bin", upload_id, [PartInfo(1, "0" * 32)])
    assert err.value.code == "InvalidPart"
    with pytest.raises(oe.InvalidDigest):
        bucket.upload_part("k.bin", upload_id, 3, b"abc", headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})

    big1 = os.urandom(200 * 1024)
    r1 = bucket.upload_part("k.bin", upload_id, 1, big1)  # re-uploading a part replaces it
    r2 = bucket.upload_part("k.bin", upload_id, 2, b"tail")
    assert r1.crc == crc64(big1) and r1.etag == hashlib.md5(big1).hexdigest().upper()
    listed = bucket.list_parts("k.bin", upload_id)
    assert [(p.part_number, p.size, p.etag) for p in listed.parts] == [(1, len(big1), r1.etag), (2, 4, r2.etag)]
    assert not listed.is_truncated
    page = bucket.list_parts("k.bin", upload_id, max_parts=1)
    assert page.is_truncated and page.next_marker == "1"
    done = bucket.complete_multipart_upload("k.bin", upload_id, [PartInfo(1, r1.etag, size=len(big1), part_crc=r1.crc),
                                                                 PartInfo(2, r2.etag, size=4, part_crc=r2.crc)])
    md5s = hashlib.md5(hashlib.md5(big1).digest() + hashlib.md5(b"tail").digest()).hexdigest().upper()
    assert done.etag == md5s + "-2"
    assert done.crc == crc64(big1 + b"tail")
    obj = bucket.get_object("k.bin")
    assert obj.read() == big1 + b"tail" and obj.headers["x-oss-meta-kind"] == "weights"
    with pytest.raises(oe.NoSuchUpload):
        bucket.complete_multipart_upload("k.bin", upload_id, [PartInfo(1, r1.etag)])


def test_abort_and_list_multipart_uploads(emu):
    bucket = emu.bucket("mp-v4", v4=True)
    ids = {}
    for key in ("a/1.bin", "a/2.bin", "b/1.bin", "c.bin", "c.bin"):
        ids.setdefault(key, []).append(bucket.init_multipart_upload(key).upload_id)
    listed = [(u.key, u.upload_id) for u in oss2.MultipartUploadIterator(bucket, max_uploads=2)]
    assert sorted(listed) == sorted((k, i) for k, v in ids.items() for i in v)
    top = bucket.list_multipart_uploads(delimiter="/")
    assert top.prefix_list == ["a/", "b/"] and [u.key for u in top.upload_list] == ["c.bin", "c.bin"]
    with pytest.raises(oe.BucketNotEmpty):  # open uploads keep a bucket from being deleted
        bucket.delete_bucket()
    for key, upload_ids in ids.items():
        for upload_id in upload_ids:
            bucket.abort_multipart_upload(key, upload_id)
    assert not list(oss2.MultipartUploadIterator(bucket))
    with pytest.raises(oe.NoSuchUpload):
        bucket.upload_part("c.bin", ids["c.bin"][0], 1, b"x")
