"""OSS emulator through the unmodified oss2 client: buckets, objects, listings (V1, V4 and STS signing)."""

import base64
import hashlib
import os
import socket

import oss2
import pytest
from oss2 import exceptions as oe
from oss2.models import ServerSideEncryptionRule

from sandbox.alicloud.oss_crc import crc64
from sandbox.alicloud.oss_testing import OssEmulator

AUTH_MODES = ["v1", "v4", "sts-v1", "sts-v4"]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with OssEmulator(tmp_path_factory.mktemp("oss-objects")) as e:
        yield e


def _bucket(emu, mode, name):
    return emu.bucket(name, v4=mode.endswith("v4"), sts=mode.startswith("sts"))


@pytest.fixture(params=AUTH_MODES)
def bucket(request, emu):
    name = "objects-" + request.param
    b = _bucket(emu, request.param, name)
    b.create_bucket(oss2.BUCKET_ACL_PRIVATE)
    yield b
    for obj in oss2.ObjectIteratorV2(b):
        b.delete_object(obj.key)


def test_bucket_lifecycle(emu):
    b = emu.bucket("lifecycle-bucket", v4=True)
    b.create_bucket(oss2.BUCKET_ACL_PRIVATE, oss2.models.BucketCreateConfig(oss2.BUCKET_STORAGE_CLASS_STANDARD))
    info = b.get_bucket_info()
    assert info.name == "lifecycle-bucket"
    assert info.acl.grant == "private"
    assert info.location == "oss-cn-beijing"
    assert info.storage_class == "Standard"
    assert info.extranet_endpoint == "oss-cn-beijing.aliyuncs.com"
    assert info.owner.id
    assert info.bucket_encryption_rule.sse_algorithm is None
    assert b.get_bucket_location().location == "oss-cn-beijing"
    assert "lifecycle-bucket" in [x.name for x in oss2.BucketIterator(emu.service())]

    # PutBucket again by the owner changes the ACL (the service behaves the same way)
    b.create_bucket(oss2.BUCKET_ACL_PUBLIC_READ)
    assert b.get_bucket_acl().acl == "public-read"
    b.put_bucket_acl(oss2.BUCKET_ACL_PRIVATE)
    assert b.get_bucket_acl().acl == "private"
    with pytest.raises(oe.ServerError) as err:
        b.create_bucket(oss2.BUCKET_ACL_PRIVATE, oss2.models.BucketCreateConfig(oss2.BUCKET_STORAGE_CLASS_IA))
    assert (err.value.status, err.value.code) == (409, "BucketAlreadyExists")

    b.put_object("keep.txt", b"x")
    with pytest.raises(oe.BucketNotEmpty) as err:
        b.delete_bucket()
    assert err.value.status == 409 and err.value.request_id
    b.delete_object("keep.txt")
    b.delete_bucket()
    with pytest.raises(oe.NoSuchBucket):
        b.get_bucket_info()
    with pytest.raises(oe.NoSuchBucket):
        b.delete_bucket()


def test_bucket_encryption_and_private_acl(emu):
    b = emu.bucket("sse-bucket")
    b.create_bucket(oss2.BUCKET_ACL_PRIVATE)
    with pytest.raises(oe.NoSuchServerSideEncryptionRule):
        b.get_bucket_encryption()
    b.put_bucket_encryption(ServerSideEncryptionRule(sse_algorithm="AES256"))
    assert b.get_bucket_encryption().sse_algorithm == "AES256"
    assert b.get_bucket_info().bucket_encryption_rule.sse_algorithm == "AES256"
    put = b.put_object("secret.bin", b"data")
    assert put.headers["x-oss-server-side-encryption"] == "AES256"
    assert b.head_object("secret.bin").headers["x-oss-server-side-encryption"] == "AES256"
    b.put_bucket_encryption(ServerSideEncryptionRule(sse_algorithm="KMS", kms_master_keyid="key-1234"))
    rule = b.get_bucket_encryption()
    assert (rule.sse_algorithm, rule.kms_master_keyid) == ("KMS", "key-1234")
    with pytest.raises(oe.InvalidArgument):
        b.put_bucket_encryption(ServerSideEncryptionRule(sse_algorithm="ROT13"))
    b.delete_bucket_encryption()
    with pytest.raises(oe.NoSuchServerSideEncryptionRule):
        b.get_bucket_encryption()
    # private bucket: an anonymous client is refused
    anon = oss2.Bucket(oss2.AnonymousAuth(), emu.endpoint, "sse-bucket")
    with pytest.raises(oe.AccessDenied):
        anon.get_object("secret.bin")


def test_put_get_head_delete(bucket):
    data = os.urandom(300_000)
    key = "dir/sub dir/\u00fcber+%.safetensors"
    result = bucket.put_object(key, data, headers={"x-oss-meta-owner": "vllm", "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode()})
    assert result.status == 200
    assert result.etag == hashlib.md5(data).hexdigest().upper()
    assert result.crc == crc64(data)
    assert result.request_id

    got = bucket.get_object(key)
    body = got.read()
    assert body == data
    assert got.client_crc == got.server_crc == crc64(data)
    assert got.content_type == "application/octet-stream"  # unknown extension: no Content-Type sent
    assert got.headers["x-oss-meta-owner"] == "vllm"
    assert got.object_type == "Normal"

    head = bucket.head_object(key)
    assert head.content_length == len(data)
    assert head.etag == result.etag
    assert head.server_crc == crc64(data)
    meta = bucket.get_object_meta(key)
    assert meta.content_length == len(data) and meta.etag == result.etag

    rng = bucket.get_object(key, byte_range=(1000, 1999))
    assert rng.status == 206
    assert rng.headers["Content-Range"] == "bytes 1000-1999/%d" % len(data)
    assert rng.read() == data[1000:2000]
    assert rng.server_crc == crc64(data)  # whole-object CRC on ranged reads
    assert bucket.get_object(key, byte_range=(None, 10)).read() == data[-10:]
    assert bucket.get_object(key, byte_range=(len(data) - 5, None)).read() == data[-5:]
    whole = bucket.get_object(key, byte_range=(len(data) + 10, len(data) + 20))  # invalid range: the whole object, 200
    assert whole.status == 200 and whole.read() == data

    assert bucket.object_exists(key)
    bucket.delete_object(key)
    assert not bucket.object_exists(key)
    bucket.delete_object(key)  # deleting a missing key is not an error
    with pytest.raises(oe.NoSuchKey) as err:
        bucket.get_object(key)
    assert err.value.status == 404 and err.value.details["Key"] == key and err.value.ec
    with pytest.raises(oe.NotFound) as err:
        bucket.head_object(key)
    assert err.value.code == "NoSuchKey"  # decoded from x-oss-err


def test_content_md5_mismatch_is_rejected(bucket):
    with pytest.raises(oe.InvalidDigest) as err:
        bucket.put_object("bad-md5.txt", b"payload", headers={"Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()})
    assert err.value.status == 400
    assert not bucket.object_exists("bad-md5.txt")


def test_object_exists_missing_bucket_raises(emu):
    b = emu.bucket("no-such-bucket-here")
    with pytest.raises(oe.NoSuchBucket):
        b.object_exists("x")
    with pytest.raises(oe.NoSuchBucket):
        b.put_object("x", b"1")
    with pytest.raises(oe.NoSuchBucket):
        b.list_objects_v2()


def test_conditional_get_and_copy(bucket):
    bucket.put_object("cond.txt", b"hello world", headers={"Content-Type": "text/plain", "x-oss-meta-a": "1"})
    etag = bucket.head_object("cond.txt").etag
    assert bucket.get_object("cond.txt", headers={"If-Match": '"%s"' % etag}).read() == b"hello world"
    with pytest.raises(oe.PreconditionFailed):
        bucket.get_object("cond.txt", headers={"If-Match": '"0123"'})
    with pytest.raises(oe.NotModified):
        bucket.get_object("cond.txt", headers={"If-None-Match": '"%s"' % etag})
    bucket.copy_object(bucket.bucket_name, "cond.txt", "copy.txt")
    copied = bucket.get_object("copy.txt")
    assert copied.read() == b"hello world" and copied.headers["x-oss-meta-a"] == "1" and copied.content_type == "text/plain"
    bucket.update_object_meta("copy.txt", {"x-oss-meta-b": "2", "Content-Type": "application/json"})
    head = bucket.head_object("copy.txt")
    assert head.headers.get("x-oss-meta-b") == "2" and "x-oss-meta-a" not in head.headers
    assert head.content_type == "application/json"
    assert bucket.get_object("cond.txt").read() == b"hello world"  # the source is untouched
    bucket.put_object_acl("copy.txt", oss2.OBJECT_ACL_PUBLIC_READ)
    assert bucket.get_object_acl("copy.txt").acl == "public-read"


def test_listing_v1_v2_with_continuation(bucket):
    keys = sorted(["a.txt", "b.txt"] + ["dir/%02d.bin" % i for i in range(12)] + ["dir/sub/x.bin", "dir/sub/y.bin", "z/\u00e9 space.txt"])
    for k in keys:
        bucket.put_object(k, b"k")
    assert [o.key for o in oss2.ObjectIterator(bucket, max_keys=5)] == keys
    assert [o.key for o in oss2.ObjectIteratorV2(bucket, max_keys=4)] == keys

    page = bucket.list_objects_v2(prefix="dir/", delimiter="/", max_keys=5)
    assert page.is_truncated and [o.key for o in page.object_list] == ["dir/%02d.bin" % i for i in range(5)]
    seen, prefixes, token = [], [], ""
    while True:
        page = bucket.list_objects_v2(prefix="dir/", delimiter="/", max_keys=5, continuation_token=token)
        seen += [o.key for o in page.object_list]
        prefixes += page.prefix_list
        if not page.is_truncated:
            break
        token = page.next_continuation_token
    assert seen == ["dir/%02d.bin" % i for i in range(12)]
    assert prefixes == ["dir/sub/"]

    top = bucket.list_objects(delimiter="/")
    assert [o.key for o in top.object_list] == ["a.txt", "b.txt"]
    assert top.prefix_list == ["dir/", "z/"] and not top.is_truncated
    first = bucket.list_objects(delimiter="/", max_keys=3)
    assert first.is_truncated and first.next_marker == "dir/"
    rest = bucket.list_objects(delimiter="/", marker=first.next_marker)
    assert rest.prefix_list == ["z/"] and not rest.object_list
    v2 = bucket.list_objects_v2(start_after="dir/11.bin", fetch_owner=True)
    assert [o.key for o in v2.object_list] == ["dir/sub/x.bin", "dir/sub/y.bin", "z/\u00e9 space.txt"]
    assert v2.object_list[0].owner.id and v2.object_list[0].size == 1 and v2.object_list[0].storage_class == "Standard"

    result = bucket.batch_delete_objects(keys[:5] + ["never-existed"])
    assert sorted(result.deleted_keys) == sorted(keys[:5] + ["never-existed"])
    assert [o.key for o in oss2.ObjectIteratorV2(bucket)] == keys[5:]


def test_chunked_body_from_a_generator(bucket):
    pieces = [os.urandom(70000), b"", os.urandom(5), os.urandom(300000)]
    result = bucket.put_object("streamed.bin", (p for p in pieces))  # sent with Transfer-Encoding: chunked
    data = b"".join(pieces)
    assert result.crc == crc64(data) and result.etag == hashlib.md5(data).hexdigest().upper()
    assert bucket.get_object("streamed.bin").read() == data


def test_oversized_put_is_refused_before_the_body(emu):
    b = emu.bucket("oversized")
    b.create_bucket()
    auth = emu.auth()
    req = oss2.http.Request("PUT", "%s/oversized/huge.bin" % emu.endpoint, headers={"Content-Length": str(6 << 30)}, region=emu.region, product="oss")
    auth._sign_request(req, "oversized", "huge.bin")  # pylint: disable=protected-access
    host, port = emu.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as conn:
        head = "PUT /oversized/huge.bin HTTP/1.1\r\nHost: %s:%d\r\n" % (host, port)
        head += "".join("%s: %s\r\n" % (k, v) for k, v in req.headers.items() if v is not None) + "\r\n"
        conn.sendall(head.encode() + b"x" * 1024)
        chunks = []
        while True:  # the emulator answers and then closes: read to the end
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        answer = b"".join(chunks).decode("utf-8", "replace")
    assert "Connection: close" in answer
    assert answer.startswith("HTTP/1.1 400") and "<Code>EntityTooLarge</Code>" in answer
    assert not b.object_exists("huge.bin")


def test_batch_delete_of_more_than_1000_keys_is_refused_whole(bucket):
    bucket.put_object("keep/a.txt", b"a")
    keys = ["keep/a.txt"] + ["gone/%04d" % i for i in range(1000)]
    with pytest.raises(oe.MalformedXml) as err:
        bucket.batch_delete_objects(keys)  # 1001 keys: oss2 sends them, the service refuses
    assert (err.value.status, err.value.code, err.value.ec) == (400, "MalformedXML", "0016-00000609")
    assert err.value.request_id
    assert bucket.object_exists("keep/a.txt")  # nothing was deleted
    assert sorted(bucket.batch_delete_objects(keys[:1000]).deleted_keys) == sorted(keys[:1000])  # 1000 is the limit
    assert not bucket.object_exists("keep/a.txt")


def test_batch_delete_with_a_wrong_content_md5_is_refused(bucket, monkeypatch):
    bucket.put_object("keep/b.txt", b"b")
    # oss2 always computes Content-MD5 itself (and signs it): make it compute a wrong one
    monkeypatch.setattr(oss2.utils, "content_md5", lambda data: base64.b64encode(hashlib.md5(b"not the body").digest()).decode())
    with pytest.raises(oe.InvalidDigest) as err:
        bucket.batch_delete_objects(["keep/b.txt"])
    assert (err.value.status, err.value.code) == (400, "InvalidDigest")
    assert err.value.details["Content-MD5"] == base64.b64encode(hashlib.md5(b"not the body").digest()).decode()
    monkeypatch.undo()
    assert bucket.object_exists("keep/b.txt")


@pytest.mark.parametrize("mode", ["v1", "v4"])
def test_bucket_level_calls_on_a_missing_bucket(emu, mode):
    b = _bucket(emu, mode, "never-created-bucket")
    calls = [("ListObjects", b.list_objects), ("ListMultipartUploads", b.list_multipart_uploads),
             ("DeleteMultipleObjects", lambda: b.batch_delete_objects(["x"]))]
    for action, call in calls:
        with pytest.raises(oe.NoSuchBucket) as err:
            call()
        assert (err.value.status, err.value.code, err.value.ec) == (404, "NoSuchBucket", "0015-00000101"), action
        assert err.value.details["BucketName"] == "never-created-bucket"
        entry = emu.log()[-1]
        assert (entry["action"], entry["status"], entry["code"]) == (action, 404, "NoSuchBucket")
    with pytest.raises(oe.NoSuchBucket):
        list(oss2.ObjectIterator(b))
    with pytest.raises(oe.NoSuchBucket):
        list(oss2.MultipartUploadIterator(b))
