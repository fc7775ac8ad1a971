"""ACK (CS) actions of the emulator, driven through the official alibabacloud_cs20151215 client."""

import json
import subprocess
import time

import pytest
from alibabacloud_cs20151215 import models as cm
from alibabacloud_ecs20140526 import models as em
from alibabacloud_tea_openapi.exceptions import ClientException

from sandbox.alicloud.testing import ecs_client

REGION = "cn-beijing"
VPC = "vpc-sbx000000000000000001"
VSW_L = "vsw-sbx00000000000000000l"
VSW_H = "vsw-sbx00000000000000000h"
SG = "sg-sbx0000000000000000001"
TEE = "ecs.gn8v-tee.4xlarge"


def error_of(func):
    with pytest.raises(ClientException) as info:
        func()
    return info.value


def create_cluster(cs, name="vllm-tee", **kw):
    params = dict(name=name, cluster_type="ManagedKubernetes", cluster_spec="ack.pro.small", profile="Default",
                  region_id=REGION, kubernetes_version="1.32.1-aliyun.1", vpcid=VPC, vswitch_ids=[VSW_L],
                  container_cidr="172.20.0.0/16", service_cidr="172.21.0.0/20", endpoint_public_access=True,
                  snat_entry=True, addons=[cm.Addon(name="flannel"), cm.Addon(name="csi-plugin")],
                  tags=[cm.Tag(key="project", value="vllm")], timezone="Asia/Shanghai")
    params.update(kw)
    return cs.create_cluster(cm.CreateClusterRequest(**params))


def pool_request(name="gpu-tee", desired=0, **kw):
    sg = dict(instance_types=[TEE], vswitch_ids=[VSW_L], desired_size=desired, system_disk_category="cloud_essd",
              system_disk_size=200, system_disk_performance_level="PL1", image_type="AliyunLinux3", instance_charge_type="PostPaid",
              key_pair="kp1", security_group_ids=[SG], tags=[cm.CreateClusterNodePoolRequestScalingGroupTags(key="project", value="vllm")],
              data_disks=[cm.DataDisk(category="cloud_essd", size=500, auto_format=True, file_system="ext4", mount_target="/mnt/models")])
    sg.update(kw)
    return cm.CreateClusterNodePoolRequest(
        nodepool_info=cm.CreateClusterNodePoolRequestNodepoolInfo(name=name, type="ess"),
        scaling_group=cm.CreateClusterNodePoolRequestScalingGroup(**sg),
        kubernetes_config=cm.CreateClusterNodePoolRequestKubernetesConfig(
            labels=[cm.Tag(key="ack.aliyun.com/nvidia-driver-version", value="550.144.03")],
            taints=[cm.Taint(key="nvidia.com/gpu", value="tee", effect="NoSchedule")],
            runtime="containerd", runtime_version="1.6.36", cms_enabled=False, unschedulable=False),
        auto_scaling=cm.CreateClusterNodePoolRequestAutoScaling(enable=False),
        management=cm.CreateClusterNodePoolRequestManagement(enable=False),
        tee_config=cm.CreateClusterNodePoolRequestTeeConfig(tee_enable=True))


@pytest.fixture
def cluster(cs):
    body = create_cluster(cs).body
    return body.cluster_id


@pytest.fixture
def pool(cs, cluster):
    return cs.create_cluster_node_pool(cluster, pool_request()).body.nodepool_id


def run_instance(emu, **kw):
    ecs = ecs_client(emu)
    params = dict(region_id=REGION, instance_type=TEE, image_family="acs:alibaba_cloud_linux_3_2104_lts_x64_uefi",
                  v_switch_id=VSW_L, security_group_id=SG)
    params.update(kw)
    return ecs.run_instances(em.RunInstancesRequest(**params)).body.instance_id_sets.instance_id_set[0]


# -- clusters ---------------------------------------------------------------------------------------------


def test_create_cluster_and_describe(cs):
    resp = create_cluster(cs)
    body = resp.body
    assert body is not None and body.cluster_id.startswith("c") and len(body.cluster_id) == 33
    assert body.task_id.startswith("T-") and body.request_id
    task = cs.describe_task_info(body.task_id).body
    assert task.state == "success" and task.task_type == "cluster_create" and task.cluster_id == body.cluster_id
    detail = cs.describe_cluster_detail(body.cluster_id).body
    assert detail.state == "running" and detail.name == "vllm-tee"
    assert detail.cluster_spec == "ack.pro.small" and detail.cluster_type == "ManagedKubernetes"
    assert detail.vpc_id == VPC and detail.vswitch_ids == [VSW_L] and detail.region_id == REGION
    assert detail.current_version == "1.32.1-aliyun.1" and detail.size == 0
    assert [(t.key, t.value) for t in detail.tags] == [("project", "vllm")]
    assert json.loads(detail.master_url)["api_server_endpoint"].startswith("https://")
    assert detail.created.endswith("+08:00")
    listed = cs.describe_clusters_v1(cm.DescribeClustersV1Request(name="vllm")).body
    assert [c.cluster_id for c in listed.clusters] == [body.cluster_id]
    assert listed.page_info.total_count == 1
    assert cs.describe_clusters_v1(cm.DescribeClustersV1Request(name="other")).body.clusters == []


def test_create_cluster_client_token_and_duplicate_name(alicloud, cs):
    first = create_cluster(cs, client_token="ct-1").body
    again = create_cluster(cs, client_token="ct-1").body
    assert (first.cluster_id, first.task_id) == (again.cluster_id, again.task_id)
    err = error_of(lambda: create_cluster(cs))
    assert err.code == "ClusterNameAlreadyExist" and err.status_code == 400
    assert len(cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters) == 1
    assert alicloud.requests()[-2]["code"] == "ClusterNameAlreadyExist"


@pytest.mark.parametrize("kw,code", [
    ({"name": ""}, "InvalidParameter"),
    ({"cluster_type": "Nope"}, "InvalidParameter"),
    ({"kubernetes_version": "1.0.0"}, "InvalidParameter"),
    ({"vswitch_ids": ["vsw-missing"]}, "InvalidParameter"),
    ({"vswitch_ids": []}, "InvalidParameter"),
    ({"region_id": "cn-hangzhou"}, "InvalidParameter"),
    ({"addons": [cm.Addon(name="no-such-addon")]}, "AddonNotFound"),
])
def test_create_cluster_errors(cs, kw, code):
    err = error_of(lambda: create_cluster(cs, **kw))
    assert err.code == code and 400 <= err.status_code < 500
    assert err.request_id != "None"
    assert cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters == []


def test_cluster_lifecycle_on_the_clock(alicloud, cs):
    alicloud.set_clock(1.0, durations={"cs.cluster.create": 3600.0})
    body = create_cluster(cs).body
    assert cs.describe_cluster_detail(body.cluster_id).body.state == "initial"
    assert cs.describe_task_info(body.task_id).body.state == "running"
    err = error_of(lambda: cs.create_cluster_node_pool(body.cluster_id, pool_request()))
    assert err.code == "ErrorClusterState"
    err = error_of(lambda: cs.describe_cluster_user_kubeconfig(body.cluster_id, cm.DescribeClusterUserKubeconfigRequest()))
    assert err.code == "ErrorClusterState"
    alicloud.set_clock(0.0)
    assert cs.describe_cluster_detail(body.cluster_id).body.state == "running"
    assert cs.describe_task_info(body.task_id).body.state == "success"


def test_cluster_creation_failure(alicloud, cs):
    alicloud.set_faults(lifecycle={"cs.cluster.create": 1.0})
    body = create_cluster(cs).body
    assert cs.describe_cluster_detail(body.cluster_id).body.state == "failed"
    task = cs.describe_task_info(body.task_id).body
    assert task.state == "fail" and task.error.code and task.error.message
    # a failed cluster can be deleted
    cs.delete_cluster(body.cluster_id, cm.DeleteClusterRequest())
    assert error_of(lambda: cs.describe_cluster_detail(body.cluster_id)).code == "ErrorClusterNotFound"


def test_delete_cluster(cs, cluster):
    resp = cs.delete_cluster(cluster, cm.DeleteClusterRequest(
        retain_all_resources=False, retain_resources=["sg-1"],
        delete_options=[cm.DeleteClusterRequestDeleteOptions(delete_mode="delete", resource_type="SLB")]))
    assert resp.status_code == 202 and resp.body.task_id and resp.body.cluster_id == cluster
    assert cs.describe_task_info(resp.body.task_id).body.state == "success"
    err = error_of(lambda: cs.describe_cluster_detail(cluster))
    assert err.code == "ErrorClusterNotFound" and err.status_code == 404
    err = error_of(lambda: cs.delete_cluster(cluster, cm.DeleteClusterRequest()))
    assert err.code == "ErrorClusterNotFound"


def test_delete_cluster_refused_while_node_pools_remain(alicloud, cs, cluster, pool):
    before = len(alicloud.requests())
    err = error_of(lambda: cs.delete_cluster(cluster, cm.DeleteClusterRequest()))
    assert err.code == "DependencyResourceExist" and err.status_code == 400
    assert pool in err.message
    assert cs.describe_cluster_detail(cluster).body.state == "running"
    cs.delete_cluster_nodepool(cluster, pool, cm.DeleteClusterNodepoolRequest())
    assert cs.delete_cluster(cluster, cm.DeleteClusterRequest()).status_code == 202
    log = [r for r in alicloud.requests()[before:] if r["mutating"]]
    assert [(r["action"], r["status"]) for r in log] == [("DeleteCluster", 400), ("DeleteClusterNodepool", 200), ("DeleteCluster", 202)]


def test_delete_cluster_with_deletion_protection(cs):
    cid = create_cluster(cs, deletion_protection=True).body.cluster_id
    assert error_of(lambda: cs.delete_cluster(cid, cm.DeleteClusterRequest())).code == "ErrorDeletionProtection"


def test_task_not_found(cs):
    err = error_of(lambda: cs.describe_task_info("T-000000000000000000000000"))
    assert err.code == "ErrorTaskNotFound" and err.status_code == 404


def test_describe_cluster_tasks(cs, cluster):
    tasks = cs.describe_cluster_tasks(cluster, cm.DescribeClusterTasksRequest()).body
    assert [t.task_type for t in tasks.tasks] == ["cluster_create"]
    assert tasks.page_info.total_count == 1


# -- node pools -----------------------------------------------------------------------------------------------


def test_node_pool_create_describe_modify_delete(cs, cluster):
    resp = cs.create_cluster_node_pool(cluster, pool_request()).body
    assert resp.nodepool_id.startswith("np") and resp.task_id
    assert cs.describe_task_info(resp.task_id).body.state == "success"
    detail = cs.describe_cluster_node_pool_detail(cluster, resp.nodepool_id).body
    assert detail is not None
    assert detail.status.state == "active" and detail.status.total_nodes == 0 and detail.status.healthy_nodes == 0
    assert detail.nodepool_info.name == "gpu-tee" and detail.nodepool_info.nodepool_id == resp.nodepool_id
    assert detail.scaling_group.instance_types == [TEE] and detail.scaling_group.vswitch_ids == [VSW_L]
    assert detail.scaling_group.desired_size == 0 and detail.scaling_group.system_disk_size == 200
    assert detail.scaling_group.scaling_group_id.startswith("asg-")
    assert [(label.key, label.value) for label in detail.kubernetes_config.labels] == [("ack.aliyun.com/nvidia-driver-version", "550.144.03")]
    assert detail.kubernetes_config.taints[0].effect == "NoSchedule"
    assert detail.tee_config.tee_enable is True and detail.auto_scaling.enable is False
    listed = cs.describe_cluster_node_pools(cluster, cm.DescribeClusterNodePoolsRequest()).body
    assert [p.nodepool_info.nodepool_id for p in listed.nodepools] == [resp.nodepool_id]
    assert listed.nodepools[0].status.state == "active"
    assert cs.describe_cluster_node_pools(cluster, cm.DescribeClusterNodePoolsRequest(nodepool_name="cpu")).body.nodepools == []

    # Modify only the label list: the empty arrays the SDK adds to scaling_group must not wipe data disks or tags.
    mod = cs.modify_cluster_node_pool(cluster, resp.nodepool_id, cm.ModifyClusterNodePoolRequest(
        kubernetes_config=cm.ModifyClusterNodePoolRequestKubernetesConfig(labels=[cm.Tag(key="workload", value="vllm")]),
        scaling_group=cm.ModifyClusterNodePoolRequestScalingGroup(system_disk_size=300), update_nodes=True)).body
    assert mod.nodepool_id == resp.nodepool_id and mod.task_id
    detail = cs.describe_cluster_node_pool_detail(cluster, resp.nodepool_id).body
    assert [(label.key, label.value) for label in detail.kubernetes_config.labels] == [("workload", "vllm")]
    assert detail.scaling_group.system_disk_size == 300
    assert len(detail.scaling_group.data_disks) == 1 and detail.scaling_group.tags[0].key == "project"
    assert detail.status.state == "active"

    delete = cs.delete_cluster_nodepool(cluster, resp.nodepool_id, cm.DeleteClusterNodepoolRequest()).body
    assert delete.task_id and cs.describe_task_info(delete.task_id).body.state == "success"
    err = error_of(lambda: cs.describe_cluster_node_pool_detail(cluster, resp.nodepool_id))
    assert err.code == "ErrorNodePoolNotFound" and err.status_code == 404


@pytest.mark.parametrize("kw,code", [
    ({"instance_types": []}, "InvalidParameter"),
    ({"instance_types": ["ecs.nope"]}, "InvalidParameter"),
    ({"vswitch_ids": ["vsw-missing"]}, "InvalidParameter"),
    ({"vswitch_ids": [VSW_H]}, "InvalidParameter"),  # gn8v-tee is not sold in zone H
    ({"system_disk_size": 10}, "InvalidParameter"),
])
def test_node_pool_create_errors(alicloud, cs, cluster, kw, code):
    before = len(alicloud.requests())
    err = error_of(lambda: cs.create_cluster_node_pool(cluster, pool_request(**kw)))
    assert err.code == code and err.status_code == 400
    assert cs.describe_cluster_node_pools(cluster, cm.DescribeClusterNodePoolsRequest()).body.nodepools == []
    assert [r["status"] for r in alicloud.requests()[before:] if r["mutating"]] == [400]


def test_node_pool_errors_for_missing_objects(cs, cluster, pool):
    assert error_of(lambda: cs.create_cluster_node_pool("c" + "0" * 32, pool_request())).code == "ErrorClusterNotFound"
    assert error_of(lambda: cs.create_cluster_node_pool(cluster, pool_request())).code == "NodePoolNameAlreadyExist"
    err = error_of(lambda: cs.modify_cluster_node_pool(cluster, "np" + "0" * 32, cm.ModifyClusterNodePoolRequest()))
    assert err.code == "ErrorNodePoolNotFound"
    err = error_of(lambda: cs.delete_cluster_nodepool(cluster, "np" + "0" * 32, cm.DeleteClusterNodepoolRequest()))
    assert err.code == "ErrorNodePoolNotFound"
    assert pool


def test_node_pool_lifecycle_on_the_clock(alicloud, cs, cluster):
    alicloud.set_clock(1.0, durations={"cs.nodepool.create": 3600.0})
    resp = cs.create_cluster_node_pool(cluster, pool_request()).body
    assert cs.describe_cluster_node_pool_detail(cluster, resp.nodepool_id).body.status.state == "initial"
    assert cs.describe_task_info(resp.task_id).body.state == "running"
    alicloud.set_clock(0.0)
    assert cs.describe_cluster_node_pool_detail(cluster, resp.nodepool_id).body.status.state == "active"


def test_node_pool_with_desired_size_creates_ready_nodes(alicloud, cs, cluster):
    resp = cs.create_cluster_node_pool(cluster, pool_request(desired=2)).body
    task = cs.describe_task_info(resp.task_id).body
    assert task.state == "success" and len(task.task_result) == 2
    detail = cs.describe_cluster_node_pool_detail(cluster, resp.nodepool_id).body
    assert detail.status.total_nodes == 2 and detail.status.healthy_nodes == 2
    nodes = cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest(nodepool_id=resp.nodepool_id)).body
    assert nodes.page.total_count == 2
    assert all(n.node_status == "Ready" and n.state == "running" and n.instance_type == TEE for n in nodes.nodes)
    assert all(n.node_name == "%s.%s" % (REGION, n.ip_address[0]) for n in nodes.nodes)
    # the instances are real ECS instances
    ids = [n.instance_id for n in nodes.nodes]
    insts = ecs_client(alicloud).describe_instances(em.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps(ids))).body
    assert insts.total_count == 2
    # scale in via Modify: one instance is released
    cs.modify_cluster_node_pool(cluster, resp.nodepool_id, cm.ModifyClusterNodePoolRequest(
        scaling_group=cm.ModifyClusterNodePoolRequestScalingGroup(desired_size=1)))
    assert cs.describe_cluster_node_pool_detail(cluster, resp.nodepool_id).body.status.total_nodes == 1
    # delete without force is refused while nodes remain; force deletes nodes and releases their instances
    err = error_of(lambda: cs.delete_cluster_nodepool(cluster, resp.nodepool_id, cm.DeleteClusterNodepoolRequest()))
    assert err.code == "ErrorNodePoolNotEmpty"
    cs.delete_cluster_nodepool(cluster, resp.nodepool_id, cm.DeleteClusterNodepoolRequest(force=True))
    assert cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest()).body.nodes == []
    assert ecs_client(alicloud).describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.total_count == 0


def test_node_pool_scale_out_without_stock_fails_the_task(alicloud, cs, cluster):
    alicloud.set_faults(stockouts=[["cn-beijing-l", TEE]])
    resp = cs.create_cluster_node_pool(cluster, pool_request(desired=1)).body
    task = cs.describe_task_info(resp.task_id).body
    assert task.state == "fail" and task.error.code == "OperationDenied.NoStock"


def test_scale_cluster_node_pool(cs, cluster, pool):
    task_id = cs.scale_cluster_node_pool(cluster, pool, cm.ScaleClusterNodePoolRequest(count=1)).body.task_id
    assert cs.describe_task_info(task_id).body.state == "success"
    assert cs.describe_cluster_node_pool_detail(cluster, pool).body.status.healthy_nodes == 1


# -- attaching existing instances ------------------------------------------------------------------------------


def test_attach_instances_to_node_pool(alicloud, cs, cluster, pool):
    iid = run_instance(alicloud)
    resp = cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(
        instances=[iid], format_disk=False, keep_instance_name=True)).body
    assert resp.task_id and resp.request_id
    task = cs.describe_task_info(resp.task_id).body
    assert task.state == "success" and [(r.data, r.status) for r in task.task_result] == [(iid, "success")]
    nodes = cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest(nodepool_id=pool)).body.nodes
    assert [(n.instance_id, n.node_status, n.state, n.instance_status) for n in nodes] == [(iid, "Ready", "running", "Running")]
    assert cs.describe_cluster_detail(cluster).body.size == 1
    err = error_of(lambda: cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(instances=[iid])))
    assert err.code == "ErrorInstanceAlreadyAttached"


def test_attach_rejects_stopped_and_missing_instances(alicloud, cs, cluster, pool):
    iid = run_instance(alicloud)
    ecs_client(alicloud).stop_instance(em.StopInstanceRequest(instance_id=iid))
    before = len(alicloud.requests())
    err = error_of(lambda: cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(instances=[iid])))
    assert err.code == "IncorrectInstanceStatus" and err.status_code == 400 and "Stopped" in err.message
    err = error_of(lambda: cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(instances=["i-2zenotthere00000000"])))
    assert err.code == "InvalidInstanceId.NotFound"
    err = error_of(lambda: cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(instances=[])))
    assert err.code == "InvalidParameter"
    assert cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest()).body.nodes == []
    assert all(r["status"] >= 400 for r in alicloud.requests()[before:] if r["mutating"])


def test_node_join_on_the_clock(alicloud, cs, cluster, pool):
    iid = run_instance(alicloud)
    alicloud.set_clock(1.0, durations={"cs.node.join": 3600.0})
    task_id = cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(instances=[iid])).body.task_id
    node = cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest()).body.nodes[0]
    assert (node.state, node.node_status) == ("initial", "NotReady")
    assert cs.describe_task_info(task_id).body.state == "running"
    assert cs.describe_cluster_node_pool_detail(cluster, pool).body.status.initial_nodes == 1
    alicloud.set_clock(0.0)
    node = cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest()).body.nodes[0]
    assert (node.state, node.node_status) == ("running", "Ready")
    assert cs.describe_task_info(task_id).body.state == "success"


def test_node_join_failure(alicloud, cs, cluster, pool):
    iid = run_instance(alicloud)
    alicloud.set_faults(lifecycle={"cs.node.join": 1.0})
    task_id = cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(instances=[iid])).body.task_id
    task = cs.describe_task_info(task_id).body
    assert task.state == "fail" and task.error.code == "AttachInstanceFailed"
    assert cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest(state="failed")).body.page.total_count == 1


def test_remove_node_pool_nodes(alicloud, cs, cluster, pool):
    keep, drop = run_instance(alicloud), run_instance(alicloud)
    cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(instances=[keep, drop]))
    filtered = cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest(instance_ids=drop)).body.nodes
    assert [n.instance_id for n in filtered] == [drop]
    resp = cs.remove_node_pool_nodes(cluster, pool, cm.RemoveNodePoolNodesRequest(instance_ids=[drop], release_node=True, drain_node=True)).body
    assert cs.describe_task_info(resp.task_id).body.state == "success"
    nodes = cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest()).body.nodes
    assert [n.instance_id for n in nodes] == [keep]
    listed = ecs_client(alicloud).describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.instances.instance
    assert [i.instance_id for i in listed] == [keep]  # release_node=True released the ECS instance
    err = error_of(lambda: cs.remove_node_pool_nodes(cluster, pool, cm.RemoveNodePoolNodesRequest(instance_ids=[drop])))
    assert err.code == "InvalidParameter"
    # without release_node the instance stays
    cs.remove_node_pool_nodes(cluster, pool, cm.RemoveNodePoolNodesRequest(instance_ids=[keep]))
    assert ecs_client(alicloud).describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.total_count == 1


def test_describe_cluster_nodes_paging_and_errors(alicloud, cs, cluster, pool):
    ids = [run_instance(alicloud) for dummy in range(3)]
    cs.attach_instances_to_node_pool(cluster, pool, cm.AttachInstancesToNodePoolRequest(instances=ids))
    page = cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest(page_size="2", page_number="2")).body
    assert page.page.total_count == 3 and len(page.nodes) == 1
    assert cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest(state="initial")).body.nodes == []
    assert error_of(lambda: cs.describe_cluster_nodes("c" + "0" * 32, cm.DescribeClusterNodesRequest())).code == "ErrorClusterNotFound"


def test_attach_script_joins_a_node(alicloud, cs, cluster, pool):
    iid = run_instance(alicloud)
    resp = cs.describe_cluster_attach_scripts(cluster, cm.DescribeClusterAttachScriptsRequest(
        nodepool_id=pool, format_disk=False, keep_instance_name=True, one_time_token=True))
    script = resp.body
    assert isinstance(script, str) and "--openapi-token" in script and alicloud.api_endpoint in script
    # run the command as a node would (it talks only to the emulator on 127.0.0.1)
    proc = subprocess.run(["bash", "-c", script + " --instance-id " + iid], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["instance_id"] == iid
    nodes = cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest(nodepool_id=pool)).body.nodes
    assert [(n.instance_id, n.node_status) for n in nodes] == [(iid, "Ready")]
    # a one-time token cannot be used twice
    other = run_instance(alicloud)
    proc = subprocess.run(["bash", "-c", script + " --instance-id " + other], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0
    assert alicloud.requests()[-1]["code"] == "ErrorAttachTokenInvalid"


def test_attach_script_errors(cs, cluster):
    err = error_of(lambda: cs.describe_cluster_attach_scripts(cluster, cm.DescribeClusterAttachScriptsRequest(nodepool_id="np" + "0" * 32)))
    assert err.code == "ErrorNodePoolNotFound"
    err = error_of(lambda: cs.describe_cluster_attach_scripts("c" + "0" * 32, cm.DescribeClusterAttachScriptsRequest(nodepool_id="np1")))
    assert err.code == "ErrorClusterNotFound"


# -- kubeconfig, versions, add-ons --------------------------------------------------------------------------------


def test_user_kubeconfig_placeholder_and_stand_in(alicloud, cs, cluster):
    body = cs.describe_cluster_user_kubeconfig(cluster, cm.DescribeClusterUserKubeconfigRequest(temporary_duration_minutes=60)).body
    assert "apiVersion: v1" in body.config and "emulator.invalid" in body.config and cluster in body.config
    expires = time.mktime(time.strptime(body.expiration, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 3000 < expires - time.time() < 3700
    alicloud.set_kubernetes("http://127.0.0.1:18443", token="kube-token")
    try:
        config = cs.describe_cluster_user_kubeconfig(cluster, cm.DescribeClusterUserKubeconfigRequest()).body.config
        assert 'server: "http://127.0.0.1:18443"' in config and "kube-token" in config
        assert alicloud.admin("GET", "/kubernetes") == {"server": "http://127.0.0.1:18443", "has_credentials": True}
    finally:
        alicloud.admin("PUT", "/kubernetes", {"server": None})
    err = error_of(lambda: cs.describe_cluster_user_kubeconfig(cluster, cm.DescribeClusterUserKubeconfigRequest(temporary_duration_minutes=5)))
    assert err.code == "InvalidParameter"
    err = error_of(lambda: cs.describe_cluster_user_kubeconfig("c" + "0" * 32, cm.DescribeClusterUserKubeconfigRequest()))
    assert err.code == "ErrorClusterNotFound"


def test_kubernetes_versions_and_addons(cs, cluster):
    versions = cs.describe_kubernetes_version_metadata(cm.DescribeKubernetesVersionMetadataRequest(
        region=REGION, cluster_type="ManagedKubernetes")).body
    assert "1.32.1-aliyun.1" in [v.version for v in versions] and all(v.creatable for v in versions)
    addons = cs.list_addons(cm.ListAddonsRequest(cluster_id=cluster)).body.addons
    assert "ack-cai" in [a.name for a in addons]
    installed = cs.list_cluster_addon_instances(cluster).body.addons
    assert sorted(a.name for a in installed) == ["csi-plugin", "flannel"]
    task_id = cs.install_cluster_addons(cluster, cm.InstallClusterAddonsRequest(body=[cm.InstallClusterAddonsRequestBody(name="ack-cai")])).body.task_id
    assert cs.describe_task_info(task_id).body.state == "success"
    assert cs.get_cluster_addon_instance(cluster, "ack-cai").body.state == "active"
    assert error_of(lambda: cs.get_cluster_addon_instance(cluster, "nope")).code == "AddonNotFound"


def test_more_error_paths(cs, cluster):
    missing = "c" + "0" * 32
    assert error_of(lambda: cs.describe_cluster_node_pools(missing, cm.DescribeClusterNodePoolsRequest())).code == "ErrorClusterNotFound"
    assert error_of(lambda: cs.describe_cluster_detail(missing)).code == "ErrorClusterNotFound"
    err = error_of(lambda: cs.describe_clusters_v1(cm.DescribeClustersV1Request(page_size=1000)))
    assert err.code == "InvalidParameter"
    err = error_of(lambda: cs.describe_cluster_nodes(cluster, cm.DescribeClusterNodesRequest(state="sleeping")))
    assert err.code == "InvalidParameter"
    err = error_of(lambda: cs.remove_node_pool_nodes(cluster, "np" + "0" * 32, cm.RemoveNodePoolNodesRequest(instance_ids=["i-1"])))
    assert err.code == "ErrorNodePoolNotFound"
    err = error_of(lambda: cs.describe_kubernetes_version_metadata(cm.DescribeKubernetesVersionMetadataRequest()))
    assert err.code == "InvalidParameter"
