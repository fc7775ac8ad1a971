"""ECS tags (TagResources, UntagResources, ListTagResources) and ModifyInstanceAttribute through the official client."""

import base64
import json

import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException

VSW_L = "vsw-sbx00000000000000000l"
SG = "sg-sbx0000000000000000001"
TEE = "ecs.gn8v-tee.4xlarge"
UEFI_FAMILY = "acs:alibaba_cloud_linux_3_2104_lts_x64_uefi"
REGION = "cn-beijing"


def run(ecs, amount=1, tags=None, **kw):
    params = {"region_id": REGION, "instance_type": TEE, "image_family": UEFI_FAMILY, "v_switch_id": VSW_L,
              "security_group_id": SG, "amount": amount,
              "tag": [m.RunInstancesRequestTag(key=k, value=v) for k, v in (tags or {}).items()]}
    params.update(kw)
    return ecs.run_instances(m.RunInstancesRequest(**params)).body.instance_id_sets.instance_id_set


def instance(ecs, iid):
    found = ecs.describe_instances(m.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([iid]))).body.instances.instance
    assert len(found) == 1
    return found[0]


def tags_of(ecs, iid):
    return [(t.tag_key, t.tag_value) for t in instance(ecs, iid).tags.tag]


def tag(ecs, ids, pairs, resource_type="instance", region=REGION):
    return ecs.tag_resources(m.TagResourcesRequest(
        region_id=region, resource_type=resource_type, resource_id=list(ids),
        tag=[m.TagResourcesRequestTag(key=k, value=v) for k, v in pairs]))


def untag(ecs, ids, keys=None, remove_all=None, resource_type="instance"):
    return ecs.untag_resources(m.UntagResourcesRequest(region_id=REGION, resource_type=resource_type, resource_id=list(ids),
                                                       tag_key=keys, all=remove_all))


def modify(ecs, iid, **kw):
    return ecs.modify_instance_attribute(m.ModifyInstanceAttributeRequest(instance_id=iid, **kw))


def error_of(func, *args, **kw):
    with pytest.raises(ClientException) as info:
        func(*args, **kw)
    return info.value


# -- TagResources / UntagResources ------------------------------------------------------------------


def test_tag_resources_adds_and_overwrites_and_shows_in_describe(alicloud, ecs):
    first, second = run(ecs, amount=2, tags={"project": "cai", "role": "gpu"})
    resp = tag(ecs, [first, second], [("role", "inference"), ("owner", "ml"), ("empty", None)])
    assert resp.status_code == 200 and resp.body.request_id
    for iid in (first, second):
        # an existing key keeps its place and gets the new value; new keys are appended; no value = ""
        assert tags_of(ecs, iid) == [("project", "cai"), ("role", "inference"), ("owner", "ml"), ("empty", "")]
    entry = [e for e in alicloud.requests() if e["request_id"] == resp.body.request_id][0]
    assert entry["action"] == "TagResources" and entry["mutating"] and entry["status"] == 200


def test_tag_filters_of_describe_instances_see_new_tags(ecs):
    tagged, other = run(ecs, amount=2)
    tag(ecs, [tagged], [("stage", "prod")])
    body = ecs.describe_instances(m.DescribeInstancesRequest(
        region_id=REGION, tag=[m.DescribeInstancesRequestTag(key="stage", value="prod")])).body
    assert [i.instance_id for i in body.instances.instance] == [tagged]
    untag(ecs, [tagged], keys=["stage"])
    body = ecs.describe_instances(m.DescribeInstancesRequest(
        region_id=REGION, tag=[m.DescribeInstancesRequestTag(key="stage")])).body
    assert body.instances.instance == [] and body.total_count == 0
    assert tags_of(ecs, other) == []


def test_untag_resources_by_key_and_all(ecs):
    iid = run(ecs, tags={"a": "1", "b": "2", "c": "3"})[0]
    untag(ecs, [iid], keys=["b", "not-there"])  # a key the instance does not have is no error
    assert tags_of(ecs, iid) == [("a", "1"), ("c", "3")]
    untag(ecs, [iid], keys=["a"], remove_all=True)  # All only counts without TagKey.N
    assert tags_of(ecs, iid) == [("c", "3")]
    untag(ecs, [iid])  # neither keys nor All: nothing to remove
    assert tags_of(ecs, iid) == [("c", "3")]
    untag(ecs, [iid], remove_all=True)
    assert tags_of(ecs, iid) == []


@pytest.mark.parametrize("call,status,code", [
    (lambda ecs, iid: tag(ecs, ["i-2zenotthere000000000"], [("k", "v")]), 404, "InvalidResourceId.NotFound"),
    (lambda ecs, iid: tag(ecs, [iid, "i-2zenotthere000000000"], [("k", "v")]), 404, "InvalidResourceId.NotFound"),
    (lambda ecs, iid: tag(ecs, [iid], [("k", "v")], resource_type="vm"), 404, "InvalidResourceType.NotFound"),
    (lambda ecs, iid: tag(ecs, [iid], [("k", "v")], resource_type="disk"), 404, "InvalidResourceId.NotFound"),
    (lambda ecs, iid: tag(ecs, [iid], [("k", "v")], resource_type=None), 400, "MissingParameter.ResourceType"),
    (lambda ecs, iid: tag(ecs, [], [("k", "v")]), 400, "MissingParameter"),
    (lambda ecs, iid: tag(ecs, [iid], []), 400, "MissingParameter.Tags"),
    (lambda ecs, iid: tag(ecs, [iid], [("k", "v")], region="cn-hangzhou"), 404, "InvalidRegionId.NotFound"),
    (lambda ecs, iid: tag(ecs, [iid] * 51, [("k", "v")]), 400, "NumberExceed.ResourceIds"),
    (lambda ecs, iid: tag(ecs, [iid], [("k%d" % n, "v") for n in range(21)]), 400, "NumberExceed.Tags"),
    (lambda ecs, iid: tag(ecs, [iid], [("k", "v"), ("k", "w")]), 400, "Duplicate.TagKey"),
    (lambda ecs, iid: tag(ecs, [iid], [("", "v")]), 400, "InvalidTagKey.Malformed"),
    (lambda ecs, iid: tag(ecs, [iid], [("aliyun-x", "v")]), 400, "InvalidTagKey.Malformed"),
    (lambda ecs, iid: tag(ecs, [iid], [("acs:x", "v")]), 400, "InvalidTagKey.Malformed"),
    (lambda ecs, iid: tag(ecs, [iid], [("k" * 129, "v")]), 400, "InvalidTagKey.Malformed"),
    (lambda ecs, iid: tag(ecs, [iid], [("k", "see https://example.invalid")]), 400, "InvalidTagValue.Malformed"),
    (lambda ecs, iid: tag(ecs, [iid], [("k", "v" * 129)]), 400, "InvalidTagValue.Malformed"),
    (lambda ecs, iid: untag(ecs, ["i-2zenotthere000000000"], keys=["k"]), 404, "InvalidResourceId.NotFound"),
    (lambda ecs, iid: untag(ecs, [iid], keys=["k", "k"]), 400, "Duplicate.TagKey"),
    (lambda ecs, iid: untag(ecs, [iid], keys=["k"], resource_type="Instance"), 404, "InvalidResourceType.NotFound"),
])
def test_tag_errors_change_nothing(alicloud, ecs, call, status, code):
    iid = run(ecs, tags={"keep": "me"})[0]
    before = len(alicloud.requests())
    err = error_of(call, ecs, iid)
    assert (err.status_code, err.code) == (status, code)
    assert err.request_id != "None"
    assert tags_of(ecs, iid) == [("keep", "me")]
    log = alicloud.requests()[before:]
    assert log[0]["code"] == code and log[0]["status"] == status


def test_tag_quota_is_all_or_nothing(ecs):
    full, small = run(ecs, amount=2)
    tag(ecs, [full], [("k%02d" % n, "v") for n in range(19)])
    err = error_of(tag, ecs, [small, full], [("x", "1"), ("y", "2")])  # full would have 21
    assert (err.status_code, err.code) == (400, "OperationDenied.QuotaExceed")
    assert tags_of(ecs, small) == [] and len(tags_of(ecs, full)) == 19
    tag(ecs, [small, full], [("k00", "changed"), ("x", "1")])  # an overwrite does not count: 20 is allowed
    assert len(tags_of(ecs, full)) == 20 and ("k00", "changed") in tags_of(ecs, full)


def test_released_instance_cannot_be_tagged(alicloud, ecs):
    iid = run(ecs)[0]
    alicloud.set_clock(1000.0)  # the release takes a while: the instance is "being released" meanwhile
    ecs.delete_instance(m.DeleteInstanceRequest(instance_id=iid, force=True))
    err = error_of(tag, ecs, [iid], [("k", "v")])
    assert (err.status_code, err.code) == (404, "InvalidResourceId.NotFound")


# -- ListTagResources -------------------------------------------------------------------------------------


def test_list_tag_resources(ecs):
    first, second, third = run(ecs, amount=3, tags={"project": "cai"})
    tag(ecs, [first], [("role", "gpu")])
    tag(ecs, [second], [("role", "cpu")])

    def listed(**kw):
        kw.setdefault("region_id", REGION)
        kw.setdefault("resource_type", "instance")
        body = ecs.list_tag_resources(m.ListTagResourcesRequest(**kw)).body
        return body.next_token, [(r.resource_id, r.resource_type, r.tag_key, r.tag_value) for r in body.tag_resources.tag_resource]

    token, rows = listed(resource_id=[second, "i-2zenotthere000000000"])
    assert token == "" and rows == [(second, "instance", "project", "cai"), (second, "instance", "role", "cpu")]
    token, rows = listed(tag=[m.ListTagResourcesRequestTag(key="role", value="gpu")])
    assert rows == [(first, "instance", "project", "cai"), (first, "instance", "role", "gpu")]
    rows = listed(tag_filter=[m.ListTagResourcesRequestTagFilter(tag_key="role", tag_values=["gpu", "cpu"])])[1]
    assert {r[0] for r in rows} == {first, second}
    rows = listed(tag_filter=[m.ListTagResourcesRequestTagFilter(tag_key="project")])[1]
    assert {r[0] for r in rows} == {first, second, third} and len(rows) == 5
    err = error_of(ecs.list_tag_resources, m.ListTagResourcesRequest(region_id=REGION, resource_type="instance"))
    assert err.code == "MissingParameter"


def test_list_tag_resources_pages_by_fifty(ecs):
    ids = run(ecs, amount=3)
    tag(ecs, ids, [("k%02d" % n, "v") for n in range(20)])  # 60 rows
    body = ecs.list_tag_resources(m.ListTagResourcesRequest(region_id=REGION, resource_type="instance", resource_id=ids)).body
    assert len(body.tag_resources.tag_resource) == 50 and body.next_token
    rest = ecs.list_tag_resources(m.ListTagResourcesRequest(region_id=REGION, resource_type="instance", resource_id=ids,
                                                            next_token=body.next_token)).body
    assert len(rest.tag_resources.tag_resource) == 10 and rest.next_token == ""


# -- ModifyInstanceAttribute -----------------------------------------------------------------------------


def test_modify_instance_attribute(alicloud, ecs):
    iid = run(ecs, instance_name="tee-worker-1", description="old")[0]
    resp = modify(ecs, iid, instance_name="tee-worker-2", description="serves vLLM", host_name="tee-worker-2.cluster",
                  deletion_protection=True)
    assert resp.status_code == 200 and resp.body.request_id
    inst = instance(ecs, iid)
    assert (inst.instance_name, inst.description, inst.host_name, inst.deletion_protection) == (
        "tee-worker-2", "serves vLLM", "tee-worker-2.cluster", True)
    assert inst.status == "Running"  # a metadata change does not touch the lifecycle
    # deletion protection is enforced, and lifting it allows the delete
    err = error_of(ecs.delete_instance, m.DeleteInstanceRequest(instance_id=iid, force=True))
    assert err.code == "InvalidOperation.DeletionProtection"
    modify(ecs, iid, deletion_protection=False)
    assert instance(ecs, iid).deletion_protection is False
    modify(ecs, iid, description="")  # an empty description clears it
    assert instance(ecs, iid).description == ""
    ecs.delete_instance(m.DeleteInstanceRequest(instance_id=iid, force=True))
    entries = [e for e in alicloud.requests() if e["action"] == "ModifyInstanceAttribute"]
    assert len(entries) == 3 and all(e["mutating"] and e["status"] == 200 for e in entries)


def test_modify_security_groups_password_and_user_data(ecs):
    iid = run(ecs)[0]
    modify(ecs, iid, security_group_ids=[SG])
    assert instance(ecs, iid).security_group_ids.security_group_id == [SG]
    modify(ecs, iid, password="Sandbox-Pass1")  # checked, never stored
    assert "Sandbox-Pass1" not in json.dumps(instance(ecs, iid).to_map())
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    err = error_of(modify, ecs, iid, user_data=user_data)
    assert (err.status_code, err.code) == (403, "IncorrectInstanceStatus")  # user data only while Stopped
    ecs.stop_instance(m.StopInstanceRequest(instance_id=iid))
    modify(ecs, iid, user_data=user_data)


@pytest.mark.parametrize("kw,status,code", [
    ({"instance_name": "1starts-with-a-digit"}, 400, "InvalidInstanceName.Malformed"),
    ({"instance_name": "x"}, 400, "InvalidInstanceName.Malformed"),
    ({"instance_name": "has space"}, 400, "InvalidInstanceName.Malformed"),
    ({"instance_name": ""}, 400, "InvalidInstanceName.Malformed"),
    ({"description": "https://example.invalid"}, 400, "InvalidDescription.Malformed"),
    ({"description": "d" * 257}, 400, "InvalidDescription.Malformed"),
    ({"host_name": "-bad"}, 400, "InvalidHostName.Malformed"),
    ({"host_name": "a..b"}, 400, "InvalidHostName.Malformed"),
    ({"host_name": "h" * 65}, 400, "InvalidHostName.Malformed"),
    ({"password": "short"}, 400, "InvalidPassword.Malformed"),
    ({"password": "alllowercaseletters"}, 400, "InvalidPassword.Malformed"),
    ({"user_data": "not base64!"}, 400, "InvalidUserData.Base64FormatInvalid"),
    ({"security_group_ids": ["sg-notthere"]}, 404, "InvalidSecurityGroupId.NotFound"),
    ({"credit_specification": "Unlimited"}, 400, "InvalidParameter"),
])
def test_modify_errors_change_nothing(ecs, kw, status, code):
    iid = run(ecs, instance_name="keep-name", description="keep")[0]
    params = {"description": "changed"}  # a valid change next to the bad one
    params.update(kw)
    err = error_of(modify, ecs, iid, **params)
    assert (err.status_code, err.code) == (status, code)
    inst = instance(ecs, iid)
    assert (inst.instance_name, inst.description) == ("keep-name", "keep")  # all or nothing


def test_modify_unknown_instance(ecs):
    err = error_of(modify, ecs, "i-2zenotthere000000000", instance_name="x-y")
    assert (err.status_code, err.code) == (404, "InvalidInstanceId.NotFound")
    err = error_of(ecs.modify_instance_attribute, m.ModifyInstanceAttributeRequest(instance_name="x-y"))
    assert (err.status_code, err.code) == (400, "MissingParameter")
