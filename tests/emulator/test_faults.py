"""Injected faults reach the official SDKs as the real service's would (wire reference sections 6.2 and 7)."""

import json
import random
import urllib.error

import pytest
from alibabacloud_cs20151215 import models as cm
from alibabacloud_ecs20140526 import models as em
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from darabonba.exceptions import UnretryableException
from darabonba.policy.retry import RetryCondition, RetryOptions

from sandbox.alicloud.core import FaultPlan
from sandbox.alicloud.testing import cs_client, ecs_client

REGION = "cn-beijing"


def regions(client):
    return client.describe_regions(em.DescribeRegionsRequest())


def test_throttling_without_retry_after_is_a_client_exception(alicloud, ecs):
    alicloud.set_faults(rates={"ecs": {"throttling": 1.0}})
    with pytest.raises(ClientException) as info:
        regions(ecs)
    err = info.value
    assert not isinstance(err, ThrottlingException)
    assert err.code == "Throttling.User" and err.status_code == 400 and err.name == "ClientException"
    entry = alicloud.requests()[-1]
    assert entry["fault"] == "throttling" and entry["code"] == "Throttling.User"


def test_throttling_with_retry_after_is_a_throttling_exception(alicloud, ecs):
    alicloud.set_faults(rates={"*": {"throttling_retry_after": 1.0}}, retry_after_ms=1500)
    with pytest.raises(ThrottlingException) as info:
        regions(ecs)
    assert info.value.code == "Throttling.User" and info.value.retry_after == 1500
    assert info.value.name == "ThrottlingException"


@pytest.mark.parametrize("kind,status,code", [("http500", 500, "InternalError"), ("http503", 503, "ServiceUnavailable")])
def test_server_errors(alicloud, cs, kind, status, code):
    alicloud.set_faults(rates={"cs": {kind: 1.0}})
    with pytest.raises(ServerException) as info:
        cs.describe_clusters_v1(cm.DescribeClustersV1Request())
    assert info.value.status_code == status and info.value.code == code
    assert info.value.request_id != "None"


def test_dropped_connection_is_unretryable(alicloud, ecs):
    alicloud.set_faults(rates={"ecs:DescribeRegions": {"drop": 1.0}})
    with pytest.raises(UnretryableException) as info:
        regions(ecs)
    assert info.value.name == "UnretryableException"
    assert "Connection aborted" in str(info.value) or "RemoteDisconnected" in str(info.value)
    assert alicloud.requests()[-1]["fault"] == "drop"
    # the scope is one action: another action still works
    assert ecs.describe_zones(em.DescribeZonesRequest(region_id=REGION)).body.zones.zone


def test_scopes_and_switching_at_run_time(alicloud, ecs, cs):
    alicloud.set_faults(rates={"ecs:RunInstances": {"http503": 1.0}})
    with pytest.raises(ServerException):
        ecs.run_instances(em.RunInstancesRequest(region_id=REGION))
    assert regions(ecs).body is not None
    assert cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters == []
    alicloud.clear_faults()
    with pytest.raises(ClientException) as info:
        ecs.run_instances(em.RunInstancesRequest(region_id=REGION))
    assert info.value.code == "MissingParameter"  # the fault is gone; the request reaches validation


def test_matching_scopes_add_up():
    plan = FaultPlan(seed=5, rates={"*": {"http500": 0.25}, "ecs": {"http503": 0.25}, "ecs:RunInstances": {"throttling": 0.5}})
    run = [plan.pick("ecs", "RunInstances") for dummy in range(400)]
    assert None not in run and set(run) == {"throttling", "http500", "http503"}  # 0.5 + 0.25 + 0.25: every request
    assert set(plan.pick("ecs", "DescribeRegions") for dummy in range(400)) == {None, "http500", "http503"}
    assert set(plan.pick("cs", "DescribeClustersV1") for dummy in range(400)) == {None, "http500"}
    assert set(plan.pick("oss", "PutObject") for dummy in range(400)) == {None, "http500"}


def test_one_matching_scope_keeps_the_seeded_sequence():
    plan = FaultPlan(seed=9, rates={"ecs:RunInstances": {"throttling": 0.3, "http503": 0.2}, "cs": {"drop": 1.0}})
    rng = random.Random(9)
    expected = []
    for dummy in range(200):
        roll = rng.random()
        expected.append("throttling" if roll < 0.3 else "http503" if roll < 0.5 else None)
    assert [plan.pick("ecs", "RunInstances") for dummy in range(200)] == expected
    assert plan.pick("ecs", "DescribeRegions") is None  # no matching scope: no roll, no fault


def test_an_action_scope_does_not_hide_the_global_one(alicloud, ecs):
    alicloud.set_faults(rates={"*": {"http500": 1.0}, "ecs:DescribeRegions": {"throttling": 0.0}})
    with pytest.raises(ServerException) as info:
        regions(ecs)
    assert (info.value.status_code, info.value.code) == (500, "InternalError")
    alicloud.set_faults(rates={"ecs": {"throttling": 0.5}, "ecs:DescribeRegions": {"http503": 0.5}}, seed=4)
    codes = []
    for dummy in range(16):
        with pytest.raises((ClientException, ServerException)) as info:  # 0.5 + 0.5: every request fails
            regions(ecs)
        codes.append((type(info.value).__name__, info.value.code))
    assert set(codes) == {("ClientException", "Throttling.User"), ("ServerException", "ServiceUnavailable")}


def test_seeded_rates_are_reproducible(alicloud, ecs):
    def pattern():
        out = []
        for dummy in range(20):
            try:
                regions(ecs)
                out.append("ok")
            except ClientException as err:
                out.append(err.code)
        return out
    alicloud.set_faults(rates={"ecs": {"throttling": 0.5}}, seed=7)
    first = pattern()
    alicloud.set_faults(rates={"ecs": {"throttling": 0.5}}, seed=7)
    second = pattern()
    assert first == second
    assert "ok" in first and "Throttling.User" in first


def test_sdk_retry_policy_recovers(alicloud):
    retry = RetryOptions({"retryable": True, "retryCondition": [RetryCondition({
        "maxAttempts": 8, "exception": ["ThrottlingException", "ServerException"],
        "errorCode": ["Throttling.User", "ServiceUnavailable"], "backoff": {"policy": "Fixed", "period": 10}, "maxDelay": 100})],
        "noRetryCondition": []})
    ecs = ecs_client(alicloud, retry_options=retry)
    alicloud.set_faults(rates={"ecs": {"throttling_retry_after": 0.4, "http503": 0.3}}, seed=3, retry_after_ms=20)
    before = len(alicloud.requests())
    for dummy in range(5):
        assert regions(ecs).body.regions.region[0].region_id == REGION
    log = alicloud.requests()[before:]
    assert len(log) > 5 and {e["fault"] for e in log} >= {"throttling_retry_after", None}


def test_quota_errors(alicloud, cs, ecs):
    alicloud.set_faults(quota={"cs:CreateCluster": "QuotaExceeded.Cluster"})
    with pytest.raises(ClientException) as info:
        cs.create_cluster(cm.CreateClusterRequest(name="x", region_id=REGION, cluster_type="ManagedKubernetes",
                                                  vswitch_ids=["vsw-sbx00000000000000000l"]))
    assert info.value.code == "QuotaExceeded.Cluster" and info.value.status_code == 400
    assert cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters == []
    assert alicloud.requests()[-2]["fault"] == "quota"
    assert ecs.describe_zones(em.DescribeZonesRequest(region_id=REGION)).body is not None


def test_faults_read_from_the_admin_endpoint(alicloud):
    alicloud.set_faults(rates={"cs": {"http500": 0.25}}, stockouts=[["cn-beijing-l", "ecs.gn8v-tee.4xlarge"]])
    snap = alicloud.admin("GET", "/faults")
    assert snap["rates"] == {"cs": {"http500": 0.25}}
    assert snap["stockouts"] == [["cn-beijing-l", "ecs.gn8v-tee.4xlarge"]]
    with pytest.raises(urllib.error.HTTPError) as info:  # the admin endpoint rejects unknown fault kinds
        alicloud.set_faults(rates={"cs": {"meteor": 1.0}})
    assert info.value.code == 400
    assert json.loads(info.value.read()) == {"error": "unknown fault kind 'meteor'"}
    assert json.dumps(alicloud.admin("GET", "/faults")["rates"]) == json.dumps({"cs": {"http500": 0.25}})


def test_sts_client_sees_faults_too(alicloud):
    alicloud.set_faults(rates={"ecs": {"http500": 1.0}})
    with pytest.raises(ServerException):
        regions(ecs_client(alicloud, sts=True))
    assert cs_client(alicloud, sts=True).describe_clusters_v1(cm.DescribeClustersV1Request()).body is not None


# -- drop_after: the request is executed, the answer is lost ------------------------------------------------

G7 = dict(region_id=REGION, instance_type="ecs.g7.xlarge", image_family="acs:alibaba_cloud_linux_3_2104_lts_x64",
          v_switch_id="vsw-sbx00000000000000000l", security_group_id="sg-sbx0000000000000000001")


def all_instances(ecs):
    return [i.instance_id for i in ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.instances.instance]


def test_drop_after_executes_then_hangs_up_and_the_client_token_survives(alicloud, ecs):
    alicloud.set_faults(rates={"ecs:RunInstances": {"drop_after": 1.0}})
    with pytest.raises(UnretryableException) as info:
        ecs.run_instances(em.RunInstancesRequest(client_token="answer-lost-1", **G7))
    assert "Connection aborted" in str(info.value) or "RemoteDisconnected" in str(info.value)
    created = all_instances(ecs)
    assert len(created) == 1  # the answer was lost, the instance was made
    entry = [e for e in alicloud.requests() if e["action"] == "RunInstances"][-1]
    assert entry == dict(entry, mutating=True, status=200, code=None, fault="drop_after")
    alicloud.clear_faults()
    again = ecs.run_instances(em.RunInstancesRequest(client_token="answer-lost-1", **G7)).body.instance_id_sets.instance_id_set
    assert again == created and all_instances(ecs) == created


def test_drop_after_without_client_token_makes_a_duplicate(alicloud, ecs):
    alicloud.set_faults(rates={"ecs:RunInstances": {"drop_after": 1.0}})
    with pytest.raises(UnretryableException):
        ecs.run_instances(em.RunInstancesRequest(**G7))
    alicloud.clear_faults()
    ecs.run_instances(em.RunInstancesRequest(**G7))
    assert len(all_instances(ecs)) == 2  # why modules send client tokens


def test_drop_after_of_a_refused_request_changes_nothing(alicloud, ecs):
    alicloud.set_faults(rates={"ecs:RunInstances": {"drop_after": 1.0}})
    with pytest.raises(UnretryableException):
        ecs.run_instances(em.RunInstancesRequest(region_id=REGION))  # MissingParameter, then the answer is lost
    entry = alicloud.requests()[-1]
    assert (entry["status"], entry["code"], entry["fault"]) == (400, "MissingParameter", "drop_after")
    assert all_instances(ecs) == []


def test_sdk_retry_after_drop_after_returns_the_same_instance(alicloud):
    retry = RetryOptions({"retryable": True, "retryCondition": [RetryCondition({
        "maxAttempts": 4, "exception": ["RetryError"], "backoff": {"policy": "Fixed", "period": 10}, "maxDelay": 100})],
        "noRetryCondition": []})
    ecs = ecs_client(alicloud, retry_options=retry)
    alicloud.set_faults(rates={"ecs:RunInstances": {"drop_after": 0.5}}, seed=1)  # seed 1: the first attempt is dropped
    before = len(alicloud.requests())
    ids = ecs.run_instances(em.RunInstancesRequest(client_token="answer-lost-2", **G7)).body.instance_id_sets.instance_id_set
    runs = [e for e in alicloud.requests()[before:] if e["action"] == "RunInstances"]
    assert [(e["status"], e["fault"]) for e in runs] == [(200, "drop_after"), (200, None)]
    assert all_instances(ecs) == ids


def test_drop_after_on_cs_create_cluster_with_client_token(alicloud, cs):
    request = cm.CreateClusterRequest(name="answer-lost", region_id=REGION, cluster_type="ManagedKubernetes",
                                      cluster_spec="ack.pro.small", vpcid="vpc-sbx000000000000000001",
                                      vswitch_ids=["vsw-sbx00000000000000000l"], client_token="cs-answer-lost")
    alicloud.set_faults(rates={"cs:CreateCluster": {"drop_after": 1.0}})
    with pytest.raises(UnretryableException):
        cs.create_cluster(request)
    alicloud.clear_faults()
    clusters = cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters
    assert [c.name for c in clusters] == ["answer-lost"]
    assert cs.create_cluster(request).body.cluster_id == clusters[0].cluster_id
    assert len(cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters) == 1


def test_drop_after_is_a_known_kind_and_keeps_old_seeded_sequences(alicloud, ecs):
    assert "drop_after" in alicloud.set_faults(rates={"ecs": {"drop_after": 0.0}})["rates"]["ecs"]

    def pattern(rates):
        alicloud.set_faults(rates=rates, seed=11)
        out = []
        for dummy in range(12):
            try:
                regions(ecs)
                out.append("ok")
            except ClientException as err:
                out.append(err.code)
        return out
    # an explicit zero rate for the new kind leaves the seeded sequence of an old plan unchanged
    assert pattern({"ecs": {"throttling": 0.5}}) == pattern({"ecs": {"throttling": 0.5, "drop_after": 0.0}})
