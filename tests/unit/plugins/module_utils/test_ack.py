# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of plugins/module_utils/ack.py: validation, normalisation, desired vs current, call helpers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ansible_collections.confidential_ai.ack.plugins.module_utils import ack
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy


# -- validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["vllm-tee", "a", "x" * 63, "pool_1", "\u96c6\u7fa4-1"])
def test_good_names(name):
    assert ack.check_name(name) is None


@pytest.mark.parametrize("name, fragment", [
    ("", "1 to 63"), ("x" * 64, "1 to 63"), ("-lead", "must not start with a hyphen"), ("has space", "letters"),
    ("dot.ted", "letters"),
])
def test_bad_names_name_the_field(name, fragment):
    err = ack.check_name(name, "name")
    assert err and err.startswith("name") and fragment in err


def test_ids():
    assert ack.check_id("c" + "a" * 32, "cluster_id") is None
    assert "cluster_id" in ack.check_id("cluster-1", "cluster_id")
    assert "vswitch_ids" in ack.check_id("vpc-123456", "vswitch_id", "vswitch_ids")
    assert ack.check_id(None, "vpc_id") is None


def test_cidr_plan_ok():
    assert ack.check_cluster_cidrs("172.21.0.0/20", "172.20.0.0/16", 26) == []
    assert ack.check_cluster_cidrs(None, "10.0.0.0/8", None) == []


@pytest.mark.parametrize("service, pod, fragment", [
    ("172.21.0.0/33", None, "service_cidr '172.21.0.0/33' is not a valid CIDR"),
    ("172.21.0.1/20", None, "has host bits set"),
    (None, "banana", "pod_cidr 'banana' is not a valid CIDR"),
    (None, "8.8.0.0/16", "pod_cidr 8.8.0.0/16 must be inside"),
    ("172.16.0.0/12", None, "prefix length from /16 to /24"),
    ("172.21.0.0/25", None, "prefix length from /16 to /24"),
    (None, "172.20.0.0/26", "too small"),
    ("172.20.0.0/20", "172.20.0.0/16", "service_cidr 172.20.0.0/20 overlaps pod_cidr 172.20.0.0/16"),
    (None, "172.16.0.0/12", "overlaps pod_cidr"),   # against the default service CIDR 172.19.0.0/20
    ("fd00::/64", None, "IPv4"),
    ("10.1.0.0", None, "IPv4 CIDR"),
])
def test_cidr_plan_errors(service, pod, fragment):
    errors = ack.check_cluster_cidrs(service, pod, None)
    assert any(fragment in e for e in errors), errors


def test_node_cidr_mask_rules():
    assert any("node_cidr_mask must be from 24 to 28" in e for e in ack.check_cluster_cidrs(None, "172.20.0.0/16", 30))
    assert any("longer than the pod_cidr prefix" in e for e in ack.check_cluster_cidrs(None, "172.20.0.0/24", 24))


def test_cidrs_against_the_vpc():
    errors = ack.check_cluster_cidrs("192.168.0.0/20", "172.20.0.0/16", None, ["192.168.0.0/16"])
    assert errors == ["service_cidr 192.168.0.0/20 overlaps the VPC CIDR block 192.168.0.0/16"]


@pytest.mark.parametrize("labels, fragment", [
    ({"-bad": "x"}, "not a valid Kubernetes label key"),
    ({"Example.COM/x": "y"}, "invalid prefix"),
    ({"a/b/c": "y"}, "invalid prefix"),
    ({"k": "v" * 64}, "not a valid Kubernetes label value"),
    ({"k": "has space"}, "not a valid Kubernetes label value"),
    ({"": "v"}, "non-empty"),
])
def test_bad_labels(labels, fragment):
    errors = ack.check_labels(labels)
    assert errors and all(e.startswith("labels") for e in errors) and any(fragment in e for e in errors), errors


def test_good_labels():
    assert ack.check_labels({ack.NVIDIA_DRIVER_LABEL: "550.144.03", "workload": "vllm", "empty": ""}) == []


def test_taints():
    assert ack.check_taints([{"key": "nvidia.com/gpu", "value": "tee", "effect": "NoSchedule"}]) == []
    errors = ack.check_taints([{"key": "a", "value": "", "effect": "Sometimes"},
                               {"key": "b", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}])
    assert any("taints[0].effect" in e for e in errors)
    assert any("taints[2] repeats key 'b'" in e for e in errors)


def test_tags():
    assert ack.check_tags({"project": "vllm"}) == []
    assert any("aliyun" in e for e in ack.check_tags({"aliyun-x": "1"}))
    assert any("http" in e for e in ack.check_tags({"k": "https://example.com"}))
    assert any("at most 20" in e for e in ack.check_tags(dict(("k%d" % i, "v") for i in range(21))))
    assert any("1 to 64" in e for e in ack.check_tags({"k" * 65: "v"}, key_max=64))


def test_instance_type_warning_only_for_other_families():
    assert ack.instance_type_warnings(["ecs.gn8v-tee.4xlarge", "ecs.gn8v-tee-8x.16xlarge"]) == []
    warnings = ack.instance_type_warnings(["ecs.gn8v-tee.4xlarge", "ecs.g7.xlarge"])
    assert len(warnings) == 1 and "ecs.g7.xlarge" in warnings[0] and "gn8v-tee.4xlarge" not in warnings[0].split(" are ")[0]


# -- normalisation ---------------------------------------------------------------------------------------

CLUSTER = {
    "cluster_id": "c" + "1" * 32, "name": "vllm-tee", "state": "running", "cluster_type": "ManagedKubernetes",
    "cluster_spec": "ack.pro.small", "profile": "Default", "region_id": "cn-beijing", "vpc_id": "vpc-1234",
    "vswitch_ids": ["vsw-1111"], "security_group_id": "sg-1111", "container_cidr": "172.20.0.0/16",
    "service_cidr": "172.21.0.0/20", "node_cidr_mask": "26", "proxy_mode": "ipvs", "ip_stack": "ipv4",
    "current_version": "1.32.1-aliyun.1", "deletion_protection": False, "timezone": "Asia/Shanghai",
    "master_url": json.dumps({"api_server_endpoint": "https://203.0.113.5:6443", "intranet_api_server_endpoint": "https://192.168.12.5:6443"}),
    "meta_data": json.dumps({"Addons": [{"name": "flannel"}, {"name": "csi-plugin"}]}),
    "tags": [{"key": "project", "value": "vllm"}, {"key": "ack.aliyun.com", "value": "c111"}],
}


def test_normalize_cluster():
    out = ack.normalize_cluster(CLUSTER)
    assert out["kubernetes_version"] == "1.32.1-aliyun.1"
    assert out["pod_cidr"] == "172.20.0.0/16"
    assert out["node_cidr_mask"] == 26
    assert out["api_server_endpoint"] == "https://203.0.113.5:6443" and out["endpoint_public_access"] is True
    assert out["tags"] == {"project": "vllm", "ack.aliyun.com": "c111"}
    assert out["addons"] == ["flannel", "csi-plugin"]
    assert ack.normalize_cluster(None) is None


def test_normalize_cluster_tolerates_odd_master_url():
    out = ack.normalize_cluster(dict(CLUSTER, master_url="not json", meta_data=None, vswitch_ids=None, vswitch_id="vsw-9999"))
    assert out["api_server_endpoint"] is None and out["endpoint_public_access"] is False
    assert out["vswitch_ids"] == ["vsw-9999"] and out["addons"] == []


POOL = {
    "nodepool_info": {"nodepool_id": "np" + "2" * 32, "name": "gpu-tee", "type": "ess"},
    "scaling_group": {"instance_types": ["ecs.gn8v-tee.4xlarge"], "vswitch_ids": ["vsw-llll"], "image_type": "AliyunLinux3Security",
                      "system_disk_category": "cloud_essd", "system_disk_size": 100, "desired_size": 0,
                      "tags": [{"key": "project", "value": "vllm"}], "security_group_ids": ["sg-1111"]},
    "kubernetes_config": {"labels": [{"key": ack.NVIDIA_DRIVER_LABEL, "value": "550.144.03"}],
                          "taints": [{"key": "nvidia.com/gpu", "value": "tee", "effect": "NoSchedule"}]},
    "auto_scaling": {"enable": False}, "tee_config": {"tee_enable": False}, "management": {"enable": False},
    "status": {"state": "active", "total_nodes": 1, "healthy_nodes": 1},
}


def test_normalize_node_pool():
    out = ack.normalize_node_pool(POOL, "c1")
    assert out["nodepool_id"] == "np" + "2" * 32 and out["cluster_id"] == "c1" and out["state"] == "active"
    assert out["labels"] == {ack.NVIDIA_DRIVER_LABEL: "550.144.03"}
    assert out["taints"] == [{"key": "nvidia.com/gpu", "value": "tee", "effect": "NoSchedule"}]
    assert out["tags"] == {"project": "vllm"} and out["tee_enable"] is False and out["total_nodes"] == 1


def test_normalize_node_ready_flag():
    assert ack.normalize_node({"instance_id": "i-1", "state": "running", "node_status": "Ready"})["ready"] is True
    assert ack.normalize_node({"instance_id": "i-1", "state": "initial", "node_status": "NotReady"})["ready"] is False
    assert ack.normalize_node({"instance_id": "i-1", "state": "running", "node_status": "NotReady"})["ready"] is False


def test_task_failure_reasons():
    ok = ack.normalize_task({"task_id": "T-1", "state": "success"})
    assert ack.task_failure(ok) is None
    bad = ack.normalize_task({"task_id": "T-1", "task_type": "nodepool_attach", "state": "fail",
                              "error": {"code": "AttachInstanceFailed", "message": "boom"},
                              "task_result": [{"data": "i-1", "status": "failed"}, {"data": "i-2", "status": "success"}]})
    reason = ack.task_failure(bad)
    assert "AttachInstanceFailed: boom" in reason and "i-1" in reason and "i-2" not in reason
    assert ack.task_failure(ack.normalize_task({"task_id": "T", "state": "failed"}))


# -- desired vs current -------------------------------------------------------------------------------------

def current_cluster(**kw):
    return dict(ack.normalize_cluster(CLUSTER), **kw)


def test_cluster_no_change():
    desired = {"service_cidr": "172.21.0.0/20", "pod_cidr": "172.20.0.0/16", "cluster_spec": "ack.pro.small",
               "vswitch_ids": ["vsw-1111"], "tags": {"project": "vllm"}}
    assert ack.cluster_changes(desired, current_cluster()) == ({}, [], ({}, []))


def test_cluster_fixed_fields():
    desired = {"service_cidr": "172.22.0.0/20", "pod_cidr": "172.20.0.0/16", "vpc_id": "vpc-9999",
               "kubernetes_version": "1.33.1-aliyun.1", "cluster_spec": "ack.pro.small"}
    updates, fixed, dummy = ack.cluster_changes(desired, current_cluster())
    assert updates == {}
    assert sorted(f[0] for f in fixed) == ["kubernetes_version", "service_cidr", "vpc_id"]
    message = ack.fixed_message("cluster", "c1", fixed)
    assert "service_cidr is '172.21.0.0/20', wanted '172.22.0.0/20'" in message and "UpgradeCluster" in message


def test_cluster_spec_pro_tiers_change_basic_does_not():
    updates, fixed, dummy = ack.cluster_changes({"cluster_spec": "ack.pro.xlarge"}, current_cluster())
    assert updates == {"cluster_spec": ("ack.pro.small", "ack.pro.xlarge")} and fixed == []
    updates, fixed, dummy = ack.cluster_changes({"cluster_spec": "ack.pro.small"}, current_cluster(cluster_spec="ack.standard"))
    assert updates == {} and fixed == [("cluster_spec", "ack.standard", "ack.pro.small")]


def test_cluster_updates_and_tags():
    desired = {"deletion_protection": True, "endpoint_public_access": False, "tags": {"project": "vllm", "env": "prod"},
               "purge_tags": True}
    have = current_cluster(tags={"project": "x", "old": "1", "ack.aliyun.com": "c1"})
    updates, fixed, (to_set, to_remove) = ack.cluster_changes(desired, have)
    assert fixed == []
    assert updates == {"deletion_protection": (False, True), "endpoint_public_access": (True, False)}
    assert to_set == {"project": "vllm", "env": "prod"} and to_remove == ["old"]   # the system tag is never purged
    dummy, dummy2, (to_set, to_remove) = ack.cluster_changes({"tags": {}, "purge_tags": False}, current_cluster())
    assert to_set == {} and to_remove == []


def current_pool(**kw):
    return dict(ack.normalize_node_pool(POOL, "c1"), **kw)


def test_node_pool_no_change():
    desired = {"instance_types": ["ecs.gn8v-tee.4xlarge"], "vswitch_ids": ["vsw-llll"], "image_type": "AliyunLinux3Security",
               "system_disk_size": 100, "labels": {ack.NVIDIA_DRIVER_LABEL: "550.144.03"}, "tee_enable": False,
               "taints": [{"key": "nvidia.com/gpu", "value": "tee", "effect": "NoSchedule"}], "tags": {"project": "vllm"},
               "security_group_ids": ["sg-1111"], "management_enabled": False, "instance_charge_type": None}
    assert ack.node_pool_changes(desired, current_pool()) == ({}, [])


def test_node_pool_updates_and_body():
    desired = {"labels": {ack.NVIDIA_DRIVER_LABEL: "550.144.03", "workload": "vllm"}, "desired_size": 2,
               "instance_types": ["ecs.gn8v-tee.6xlarge", "ecs.gn8v-tee.4xlarge"], "name": "renamed", "tags": {"project": "x"},
               "management_enabled": True}
    updates, fixed = ack.node_pool_changes(desired, current_pool())
    assert fixed == [] and set(updates) == {"labels", "desired_size", "instance_types", "name", "tags", "management_enabled"}
    body = ack.node_pool_modify_body(updates, update_nodes=True)
    assert body["nodepool_info"] == {"name": "renamed"}
    assert body["scaling_group"]["desired_size"] == 2
    assert body["scaling_group"]["instance_types"] == ["ecs.gn8v-tee.6xlarge", "ecs.gn8v-tee.4xlarge"]
    assert body["scaling_group"]["tags"] == [{"key": "project", "value": "x"}]
    assert {"key": "workload", "value": "vllm"} in body["kubernetes_config"]["labels"]
    assert body["update_nodes"] is True and body["management"] == {"enable": True}


def test_node_pool_order_of_instance_types_matters_security_groups_do_not():
    updates, dummy = ack.node_pool_changes({"instance_types": ["b", "a"]}, current_pool(instance_types=["a", "b"]))
    assert "instance_types" in updates
    updates, dummy = ack.node_pool_changes({"security_group_ids": ["sg-2", "sg-1"]}, current_pool(security_group_ids=["sg-1", "sg-2"]))
    assert updates == {}


def test_node_pool_fixed_and_cleared():
    dummy, fixed = ack.node_pool_changes({"tee_enable": True}, current_pool())
    assert fixed == [("tee_enable", False, True)]
    updates, dummy = ack.node_pool_changes({"taints": []}, current_pool())
    assert ack.cleared_lists(updates) == ["taints"]
    updates, dummy = ack.node_pool_changes({"taints": [{"key": "x", "effect": "NoExecute"}]}, current_pool())
    assert ack.cleared_lists(updates) == []


def test_diff_view():
    view = ack.diff_view({"a": 1, "b": 2}, {}, ("a",))
    assert view == {"before": {"a": 1}, "after": {}}


# -- call helpers -------------------------------------------------------------------------------------------

class FakeModule:
    """The slice of AlicloudModule the helpers use: region, call (with a real RetryPolicy), check_mode."""

    def __init__(self):
        self.region = "cn-beijing"
        self.check_mode = False
        self.retry = RetryPolicy(max_attempts=5, sleep=lambda s: None)
        self.calls = []

    def call(self, func, *args, **kwargs):
        kwargs.pop("operation", None)
        self.calls.append(getattr(func, "__name__", "call"))
        return self.retry.call(func, *args, **kwargs)


def answer(body):
    return SimpleNamespace(body=SimpleNamespace(to_map=lambda: body))


def test_is_not_found():
    assert ack.is_not_found(AlicloudError("x", code="ErrorClusterNotFound", http_status=404))
    assert ack.is_not_found(AlicloudError("x", code="InvalidInstanceId.NotFound", http_status=400))
    assert not ack.is_not_found(AlicloudError("x", code="Throttling.User", http_status=400))


def test_create_once_looks_up_before_retrying():
    module = FakeModule()
    made = []

    def create():
        made.append(1)
        # the service did the work but the answer was lost
        raise AlicloudError("reset", kind="connection")

    how, what = ack.create_once(module, create, lambda: {"id": "np-made"} if made else None, "create")
    assert (how, what) == ("found", {"id": "np-made"}) and len(made) == 1


def test_create_once_retries_when_nothing_was_made():
    module = FakeModule()
    attempts = []

    def create():
        attempts.append(1)
        if len(attempts) < 3:
            raise AlicloudError("busy", code="Throttling.User", kind="throttling")
        return "created-answer"

    assert ack.create_once(module, create, lambda: None, "create") == ("created", "created-answer")
    assert len(attempts) == 3


def test_create_once_does_not_retry_client_errors():
    module = FakeModule()
    attempts = []

    def create():
        attempts.append(1)
        raise AlicloudError("bad", code="InvalidParameter", http_status=400)

    with pytest.raises(AlicloudError):
        ack.create_once(module, create, lambda: None, "create")
    assert len(attempts) == 1


def test_find_clusters_pages_and_matches_exactly(monkeypatch):
    monkeypatch.setattr(ack, "cs_models", SimpleNamespace(DescribeClustersV1Request=lambda **kw: kw))
    pages = {
        1: {"clusters": [dict(CLUSTER, name="vllm-tee"), dict(CLUSTER, name="vllm-tee-2", cluster_id="c2")],
            "page_info": {"total_count": 3}},
        2: {"clusters": [dict(CLUSTER, name="vllm-tee", cluster_id="c3")], "page_info": {"total_count": 3}},
    }
    client = SimpleNamespace(describe_clusters_v1=lambda request: answer(pages[request["page_number"]]))
    found = ack.find_clusters(FakeModule(), client, "vllm-tee", page_size=2)
    assert [c["cluster_id"] for c in found] == [CLUSTER["cluster_id"], "c3"]


def test_list_nodes_pages(monkeypatch):
    monkeypatch.setattr(ack, "cs_models", SimpleNamespace(DescribeClusterNodesRequest=lambda **kw: kw))
    seen = []

    def describe(cluster_id, request):
        seen.append(request)
        number = int(request["page_number"])
        nodes = [{"instance_id": "i-%d%d" % (number, k), "state": "running", "node_status": "Ready"} for k in range(2 if number == 1 else 1)]
        return answer({"nodes": nodes, "page": {"total_count": 3}})
    nodes = ack.list_nodes(FakeModule(), SimpleNamespace(describe_cluster_nodes=describe), "c1", "np1", ["i-10", "i-11", "i-20"],
                           page_size=2)
    assert [n["instance_id"] for n in nodes] == ["i-10", "i-11", "i-20"]
    assert seen[0]["instance_ids"] == "i-10,i-11,i-20" and seen[0]["page_size"] == "2"


def test_describe_cluster_not_found_is_none():
    def describe(cluster_id):
        raise AlicloudError("gone", code="ErrorClusterNotFound", http_status=404)
    assert ack.describe_cluster(FakeModule(), SimpleNamespace(describe_cluster_detail=describe), "c1") is None


def test_describe_cluster_other_errors_raise():
    def describe(cluster_id):
        raise AlicloudError("denied", code="ErrorCheckAcl", http_status=403)
    with pytest.raises(AlicloudError):
        ack.describe_cluster(FakeModule(), SimpleNamespace(describe_cluster_detail=describe), "c1")


# -- one wait budget per run -------------------------------------------------------------------------

def test_deadline_is_one_budget_for_every_wait():
    now = [100.0]
    deadline = ack.Deadline(30, clock=lambda: now[0])
    assert deadline.remaining() == 30
    now[0] += 25  # the task took 25 s: the wait for the resource gets what is left
    assert deadline.remaining() == 5
    now[0] += 10
    assert deadline.remaining() == 0
    # the poll interval follows the whole budget, not what is left of it
    assert deadline.delay == ack.poll_delay(30)


def test_timeout_message_says_what_exists_and_what_to_do():
    msg = ack.timeout_message("cluster", "c123", "running", "initial", 2, "it finds this cluster")
    assert msg.startswith("wait_timeout (2s) ran out waiting for cluster c123 to be running; it is initial now")
    assert "Run the task again (with a longer wait_timeout) to keep waiting: it finds this cluster" in msg
    assert "it is unknown now" in ack.timeout_message("node pool", "np1", "active", None, 5, "x")
