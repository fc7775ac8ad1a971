"""OSS through oss2: object ACL against bucket ACL for anonymous requests, and bucket tagging."""

import oss2
import pytest
from oss2 import exceptions as oe
from oss2.models import Tagging, TaggingRule

from sandbox.alicloud.oss_testing import OssEmulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with OssEmulator(tmp_path_factory.mktemp("oss-acl-tags")) as e:
        yield e


def anonymous(emu, name):
    return oss2.Bucket(oss2.AnonymousAuth(), emu.endpoint, name)


def readable(bucket, key):
    """True when an anonymous GET and HEAD both succeed, False when both are refused with AccessDenied."""
    outcomes = []
    for call in (lambda: bucket.get_object(key).read(), lambda: bucket.head_object(key)):
        try:
            call()
            outcomes.append(True)
        except oe.AccessDenied:
            outcomes.append(False)
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


@pytest.mark.parametrize("bucket_acl,object_acl,expected", [
    (oss2.BUCKET_ACL_PUBLIC_READ, oss2.OBJECT_ACL_DEFAULT, True),
    (oss2.BUCKET_ACL_PUBLIC_READ, oss2.OBJECT_ACL_PRIVATE, False),      # the object ACL wins
    (oss2.BUCKET_ACL_PRIVATE, oss2.OBJECT_ACL_DEFAULT, False),
    (oss2.BUCKET_ACL_PRIVATE, oss2.OBJECT_ACL_PUBLIC_READ, True),       # the object ACL wins
    (oss2.BUCKET_ACL_PRIVATE, oss2.OBJECT_ACL_PUBLIC_READ_WRITE, True),
    (oss2.BUCKET_ACL_PUBLIC_READ_WRITE, oss2.OBJECT_ACL_PRIVATE, False),
])
def test_object_acl_takes_precedence_for_anonymous_reads(emu, bucket_acl, object_acl, expected):
    name = "acl-%s-%s" % (bucket_acl, object_acl)
    owner = emu.bucket(name)
    owner.create_bucket(bucket_acl)
    owner.put_object("obj.txt", b"payload", headers={"x-oss-object-acl": object_acl})
    assert owner.get_object_acl("obj.txt").acl == object_acl
    assert readable(anonymous(emu, name), "obj.txt") is expected
    assert owner.get_object("obj.txt").read() == b"payload"  # the owner always reads


def test_changing_the_object_acl_changes_anonymous_access(emu):
    owner = emu.bucket("acl-switch")
    owner.create_bucket(oss2.BUCKET_ACL_PUBLIC_READ)
    owner.put_object("model.bin", b"weights")
    anon = anonymous(emu, "acl-switch")
    assert anon.get_object("model.bin").read() == b"weights"
    owner.put_object_acl("model.bin", oss2.OBJECT_ACL_PRIVATE)
    with pytest.raises(oe.AccessDenied) as err:
        anon.get_object("model.bin")
    assert "object acl" in err.value.message
    assert anon.object_exists("other-missing-key") is False  # no object ACL: the public bucket answers NoSuchKey
    owner.put_object_acl("model.bin", oss2.OBJECT_ACL_DEFAULT)
    assert anon.get_object("model.bin").read() == b"weights"


def test_anonymous_writes_follow_the_object_acl(emu):
    owner = emu.bucket("acl-writes")
    owner.create_bucket(oss2.BUCKET_ACL_PRIVATE)
    owner.put_object("open.txt", b"v1", headers={"x-oss-object-acl": oss2.OBJECT_ACL_PUBLIC_READ_WRITE})
    anon = anonymous(emu, "acl-writes")
    anon.put_object("open.txt", b"v2")
    assert owner.get_object("open.txt").read() == b"v2"
    with pytest.raises(oe.AccessDenied):  # a new key falls back to the private bucket ACL
        anon.put_object("new.txt", b"x")
    with pytest.raises(oe.AccessDenied):
        anon.delete_object("open.txt")


# -- bucket tagging -------------------------------------------------------------------------------------


def tagging(pairs):
    rule = TaggingRule()
    for key, value in pairs:
        rule.tagging_rule[key] = value  # not rule.add(): it refuses an empty key before the server can
    return Tagging(rule)


def test_bucket_tagging_put_get_delete(emu):
    b = emu.bucket("tagged-bucket", v4=True)
    b.create_bucket(oss2.BUCKET_ACL_PRIVATE)
    assert b.get_bucket_tagging().tag_set.tagging_rule == {}
    b.put_bucket_tagging(tagging([("project", "cai"), ("owner", "ml"), ("empty", "")]))
    assert b.get_bucket_tagging().tag_set.tagging_rule == {"project": "cai", "owner": "ml", "empty": ""}
    b.put_bucket_tagging(tagging([("project", "vllm")]))  # Put replaces the whole set
    assert b.get_bucket_tagging().tag_set.tagging_rule == {"project": "vllm"}
    b.put_bucket_tagging(tagging([("a", "1"), ("b", "2"), ("c", "3")]))
    b.delete_bucket_tagging(params={"tagging": "a,c"})  # only these keys
    assert b.get_bucket_tagging().tag_set.tagging_rule == {"b": "2"}
    result = b.delete_bucket_tagging()
    assert result.status == 204
    assert b.get_bucket_tagging().tag_set.tagging_rule == {}
    log = [e["action"] for e in emu.log() if e["action"].endswith("BucketTags")]
    assert log.count("PutBucketTags") == 3 and log.count("DeleteBucketTags") == 2


def test_bucket_tags_survive_a_restart(tmp_path):
    with OssEmulator(tmp_path) as first:
        b = first.bucket("persisted-tags")
        b.create_bucket()
        b.put_bucket_tagging(tagging([("k", "v")]))
    with OssEmulator(tmp_path) as second:
        assert second.bucket("persisted-tags").get_bucket_tagging().tag_set.tagging_rule == {"k": "v"}


@pytest.mark.parametrize("pairs", [
    [("", "v")],
    [("k" * 65, "v")],
    [("Aliyun-x", "v")],
    [("acs:x", "v")],
    [("https://x", "v")],
    [("k", "v" * 129)],
    [("k%d" % n, "v") for n in range(21)],
])
def test_bucket_tagging_errors(emu, pairs):
    b = emu.bucket("tag-errors")
    b.create_bucket()
    b.put_bucket_tagging(tagging([("keep", "me")]))
    with pytest.raises(oe.ServerError) as err:
        b.put_bucket_tagging(tagging(pairs))
    assert (err.value.status, err.value.code) == (400, "InvalidTag")
    assert b.get_bucket_tagging().tag_set.tagging_rule == {"keep": "me"}


def test_bucket_tagging_of_a_missing_bucket_and_anonymous(emu):
    with pytest.raises(oe.NoSuchBucket):
        emu.bucket("no-such-tag-bucket").get_bucket_tagging()
    owner = emu.bucket("public-tags")
    owner.create_bucket(oss2.BUCKET_ACL_PUBLIC_READ_WRITE)
    with pytest.raises(oe.AccessDenied):
        anonymous(emu, "public-tags").put_bucket_tagging(tagging([("k", "v")]))
