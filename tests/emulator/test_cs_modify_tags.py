"""ModifyCluster, TagResources and UntagResources of the emulator, driven through the official alibabacloud_cs20151215 client."""

import json

import pytest
from alibabacloud_cs20151215 import models as cm
from alibabacloud_tea_openapi.exceptions import ClientException

from sandbox.alicloud.testing import EmulatorProcess, cs_client

REGION = "cn-beijing"
VPC = "vpc-sbx000000000000000001"
VSW_L = "vsw-sbx00000000000000000l"
VSW_K = "vsw-sbx00000000000000000k"
SG = "sg-sbx0000000000000000001"


def error_of(func):
    with pytest.raises(ClientException) as info:
        func()
    return info.value


def create_cluster(cs, name="vllm-tee", **kw):
    params = dict(name=name, cluster_type="ManagedKubernetes", cluster_spec="ack.pro.small", profile="Default",
                  region_id=REGION, kubernetes_version="1.32.1-aliyun.1", vpcid=VPC, vswitch_ids=[VSW_L],
                  endpoint_public_access=False, tags=[cm.Tag(key="project", value="vllm")])
    params.update(kw)
    return cs.create_cluster(cm.CreateClusterRequest(**params)).body.cluster_id


def tags_of(cs, cid):
    return {t.key: t.value for t in cs.describe_cluster_detail(cid).body.tags or []}


def listed_tags(cs, cid):
    clusters = cs.describe_clusters_v1(cm.DescribeClustersV1Request(cluster_id=cid)).body.clusters
    assert len(clusters) == 1
    return {t.key: t.value for t in clusters[0].tags or []}


def tag(cs, ids, tags, resource_type="CLUSTER"):
    return cs.tag_resources(cm.TagResourcesRequest(region_id=REGION, resource_type=resource_type, resource_ids=ids,
                                                   tags=[cm.Tag(key=k, value=v) for k, v in tags.items()]))


def untag(cs, ids, keys=None, remove_all=None):
    return cs.untag_resources(cm.UntagResourcesRequest(region_id=REGION, resource_type="CLUSTER", resource_ids=ids,
                                                       tag_keys=keys, all=remove_all))


@pytest.fixture
def cluster(cs):
    return create_cluster(cs)


def mutating_since(emu, before):
    return [(r["action"], r["status"], r["code"]) for r in emu.requests()[before:] if r["mutating"]]


# -- ModifyCluster -------------------------------------------------------------------------------------------


def test_modify_cluster_changes_fields_and_answers_with_a_task(alicloud, cs, cluster):
    before = len(alicloud.requests())
    resp = cs.modify_cluster(cluster, cm.ModifyClusterRequest(
        deletion_protection=True, cluster_name="vllm-renamed", resource_group_id="rg-acfm000000000001",
        security_group_id=SG, vswitch_ids=[VSW_K, VSW_L], cluster_spec="ack.pro.xlarge", timezone="Europe/Berlin",
        maintenance_window=cm.MaintenanceWindow(enable=True, maintenance_time="2026-01-01T03:00:00.000+08:00",
                                                duration="3h", weekly_period="Monday,Thursday")))
    body = resp.body
    assert resp.status_code == 200
    assert body.cluster_id == cluster and body.task_id and body.request_id
    assert cs.describe_task_info(body.task_id).body.state == "success"
    detail = cs.describe_cluster_detail(cluster).body
    assert detail.deletion_protection is True
    assert detail.name == "vllm-renamed"
    assert detail.resource_group_id == "rg-acfm000000000001"
    assert detail.security_group_id == SG
    assert detail.vswitch_ids == [VSW_K, VSW_L]
    assert detail.cluster_spec == "ack.pro.xlarge"
    assert detail.timezone == "Europe/Berlin"
    assert detail.maintenance_window.enable is True and detail.maintenance_window.weekly_period == "Monday,Thursday"
    assert detail.maintenance_window.duration == "3h"
    assert mutating_since(alicloud, before) == [("ModifyCluster", 200, None)]
    # deletion protection now blocks DeleteCluster, and lifting it lets the delete through
    assert error_of(lambda: cs.delete_cluster(cluster, cm.DeleteClusterRequest())).code == "ErrorDeletionProtection"
    cs.modify_cluster(cluster, cm.ModifyClusterRequest(deletion_protection=False))
    assert cs.delete_cluster(cluster, cm.DeleteClusterRequest()).status_code == 202


def test_modify_cluster_api_server_eip(cs, cluster):
    assert json.loads(cs.describe_cluster_detail(cluster).body.master_url)["api_server_endpoint"] == ""
    cs.modify_cluster(cluster, cm.ModifyClusterRequest(api_server_eip=True, api_server_eip_id="eip-sbx0000000001"))
    endpoint = json.loads(cs.describe_cluster_detail(cluster).body.master_url)["api_server_endpoint"]
    assert endpoint.startswith("https://%s." % cluster) and endpoint.endswith(":6443")
    cs.modify_cluster(cluster, cm.ModifyClusterRequest(api_server_eip=False))
    assert json.loads(cs.describe_cluster_detail(cluster).body.master_url)["api_server_endpoint"] == ""


def test_modify_cluster_client_token_is_idempotent(alicloud, cs, cluster):
    first = cs.modify_cluster(cluster, cm.ModifyClusterRequest(deletion_protection=True, client_token="tok-1")).body
    again = cs.modify_cluster(cluster, cm.ModifyClusterRequest(deletion_protection=True, client_token="tok-1")).body
    assert first.task_id == again.task_id
    tasks = cs.describe_cluster_tasks(cluster, cm.DescribeClusterTasksRequest()).body.tasks
    assert sorted(t.task_type for t in tasks) == ["cluster_create", "cluster_update"]
    del alicloud


def test_modify_unknown_cluster(alicloud, cs):
    before = len(alicloud.requests())
    err = error_of(lambda: cs.modify_cluster("c00000000000000000000000000000000", cm.ModifyClusterRequest(deletion_protection=True)))
    assert err.code == "ErrorClusterNotFound" and err.status_code == 404
    assert mutating_since(alicloud, before) == [("ModifyCluster", 404, "ErrorClusterNotFound")]


@pytest.mark.parametrize("request_kw, code", [
    (dict(cluster_spec="ack.standard"), "InvalidParameter"),
    (dict(cluster_name="-bad"), "InvalidParameter"),
    (dict(security_group_id="sg-missing"), "InvalidParameter"),
    (dict(vswitch_ids=["vsw-missing"]), "InvalidParameter"),
    (dict(api_server_eip=True, api_server_eip_id="not-an-eip"), "InvalidParameter"),
    (dict(resource_group_id="group-1"), "InvalidParameter"),
    (dict(ingress_loadbalancer_id="lb-1"), "InvalidParameter"),
    (dict(maintenance_window=cm.MaintenanceWindow(enable=True, weekly_period="Caturday", maintenance_time="03:00")),
     "InvalidParameter"),
])
def test_modify_cluster_refuses_bad_input_all_or_nothing(cs, cluster, request_kw, code):
    before = cs.describe_cluster_detail(cluster).body.to_map()
    err = error_of(lambda: cs.modify_cluster(cluster, cm.ModifyClusterRequest(deletion_protection=True, **request_kw)))
    assert err.code == code and err.status_code == 400
    after = cs.describe_cluster_detail(cluster).body.to_map()
    assert after == before and after["deletion_protection"] is False


def test_modify_cluster_name_taken(cs, cluster):
    create_cluster(cs, name="other")
    err = error_of(lambda: cs.modify_cluster(cluster, cm.ModifyClusterRequest(cluster_name="other")))
    assert err.code == "ClusterNameAlreadyExist"
    assert cs.describe_cluster_detail(cluster).body.name == "vllm-tee"


def test_modify_cluster_spec_only_between_pro_tiers(cs):
    cid = create_cluster(cs, cluster_spec="ack.standard")
    err = error_of(lambda: cs.modify_cluster(cid, cm.ModifyClusterRequest(cluster_spec="ack.pro.small")))
    assert err.code == "InvalidParameter" and "ack.pro" in err.message
    assert cs.describe_cluster_detail(cid).body.cluster_spec == "ack.standard"


def test_modify_cluster_refused_while_deleting(alicloud, cs, cluster):
    alicloud.set_clock(1.0)
    cs.delete_cluster(cluster, cm.DeleteClusterRequest())
    err = error_of(lambda: cs.modify_cluster(cluster, cm.ModifyClusterRequest(deletion_protection=True)))
    assert err.code == "ErrorClusterState"


def test_modify_cluster_survives_restart(tmp_path):
    emu = EmulatorProcess(state_dir=str(tmp_path / "state"), clock_scale=0.0)
    emu.start()
    try:
        cs = cs_client(emu)
        cid = create_cluster(cs)
        cs.modify_cluster(cid, cm.ModifyClusterRequest(deletion_protection=True, cluster_name="kept"))
        tag(cs, [cid], {"env": "test"})
    finally:
        emu.stop()
    emu = EmulatorProcess(state_dir=str(tmp_path / "state"), clock_scale=0.0)
    emu.start()
    try:
        detail = cs_client(emu).describe_cluster_detail(cid).body
        assert detail.deletion_protection is True and detail.name == "kept"
        assert {t.key: t.value for t in detail.tags} == {"project": "vllm", "env": "test"}
    finally:
        emu.stop()


# -- TagResources / UntagResources --------------------------------------------------------------------------


def test_tag_and_untag_cluster(alicloud, cs, cluster):
    before = len(alicloud.requests())
    resp = tag(cs, [cluster], {"env": "test", "project": "vllm2"})
    assert resp.status_code == 200 and resp.body.request_id
    assert tags_of(cs, cluster) == {"project": "vllm2", "env": "test"}
    assert listed_tags(cs, cluster) == {"project": "vllm2", "env": "test"}
    resp = untag(cs, [cluster], keys=["project", "absent"])
    assert resp.status_code == 200 and resp.body.request_id
    assert tags_of(cs, cluster) == {"env": "test"}
    assert mutating_since(alicloud, before) == [("TagResources", 200, None), ("UntagResources", 200, None)]


def test_untag_all(cs, cluster):
    other = create_cluster(cs, name="second")
    tag(cs, [cluster, other], {"a": "1", "b": "2"})
    assert tags_of(cs, other) == {"project": "vllm", "a": "1", "b": "2"}
    untag(cs, [cluster, other], remove_all=True)
    assert tags_of(cs, cluster) == {} and tags_of(cs, other) == {}


def test_untag_without_keys_or_all_removes_nothing(cs, cluster):
    untag(cs, [cluster])
    assert tags_of(cs, cluster) == {"project": "vllm"}


def test_tag_unknown_cluster_is_all_or_nothing(alicloud, cs, cluster):
    before = len(alicloud.requests())
    err = error_of(lambda: tag(cs, [cluster, "c00000000000000000000000000000000"], {"env": "x"}))
    assert err.code == "ErrorClusterNotFound" and err.status_code == 404
    assert tags_of(cs, cluster) == {"project": "vllm"}
    err = error_of(lambda: untag(cs, ["c00000000000000000000000000000000"], keys=["project"]))
    assert err.code == "ErrorClusterNotFound" and err.status_code == 404
    assert mutating_since(alicloud, before) == [("TagResources", 404, "ErrorClusterNotFound"),
                                                ("UntagResources", 404, "ErrorClusterNotFound")]


@pytest.mark.parametrize("ids, tags, resource_type, code", [
    (None, {"env": "x"}, "CLUSTER", "MissingParameter.ResourceIds"),
    ("cluster", {}, "CLUSTER", "MissingParameter.Tags"),
    ("cluster", {"env": "x"}, "INSTANCE", "InvalidParameter"),
    ("cluster", {"aliyun:x": "1"}, "CLUSTER", "InvalidTagKey.Malformed"),
    ("cluster", {"k": "https://x"}, "CLUSTER", "InvalidTagValue.Malformed"),
    ("cluster", {"k%d" % i: "v" for i in range(21)}, "CLUSTER", "NumberExceed.Tags"),
])
def test_tag_refuses_bad_input(cs, cluster, ids, tags, resource_type, code):
    ids = [cluster] if ids == "cluster" else ids
    err = error_of(lambda: tag(cs, ids, tags, resource_type))
    assert err.code == code and err.status_code == 400
    assert tags_of(cs, cluster) == {"project": "vllm"}


def test_tag_quota_of_twenty(cs, cluster):
    tag(cs, [cluster], {"k%d" % i: "v" for i in range(19)})
    assert len(tags_of(cs, cluster)) == 20
    tag(cs, [cluster], {"k0": "new"})
    assert tags_of(cs, cluster)["k0"] == "new"
    err = error_of(lambda: tag(cs, [cluster], {"one-more": "v"}))
    assert err.code == "OperationDenied.QuotaExceed"
    assert len(tags_of(cs, cluster)) == 20
