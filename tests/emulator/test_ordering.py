"""Lists come back in a stable order: creation time, then id; the same after a restart and across pages."""

import json

from alibabacloud_cs20151215 import models as cm
from alibabacloud_ecs20140526 import models as em

from sandbox.alicloud.testing import EmulatorProcess, cs_client, ecs_client

REGION = "cn-beijing"
VSW_L = "vsw-sbx00000000000000000l"
G7 = dict(region_id=REGION, instance_type="ecs.g7.xlarge", image_family="acs:alibaba_cloud_linux_3_2104_lts_x64",
          v_switch_id=VSW_L, security_group_id="sg-sbx0000000000000000001")


def run(ecs, amount=1):
    return ecs.run_instances(em.RunInstancesRequest(amount=amount, **G7)).body.instance_id_sets.instance_id_set


def instance_ids(ecs, **kw):
    body = ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION, **kw)).body
    return [i.instance_id for i in body.instances.instance], body


def create_instances(ecs):
    """Three instances of one RunInstances call (one creation time), then two of their own; the expected order."""
    batch = run(ecs, amount=3)
    later = [run(ecs)[0], run(ecs)[0]]
    return sorted(batch) + later


def test_describe_instances_order_and_paging(ecs):
    expected = create_instances(ecs)
    assert instance_ids(ecs)[0] == expected
    assert instance_ids(ecs, instance_ids=json.dumps(list(reversed(expected))))[0] == expected  # not the request order
    pages = [instance_ids(ecs, page_number=n, page_size=2)[0] for n in (1, 2, 3)]
    assert sum(pages, []) == expected and [len(p) for p in pages] == [2, 2, 1]
    seen, token = [], None
    while True:
        ids, body = instance_ids(ecs, max_results=10, next_token=token)
        seen += ids
        token = body.next_token
        if not token:
            break
    assert seen == expected
    statuses = ecs.describe_instance_status(em.DescribeInstanceStatusRequest(region_id=REGION, page_size=50)).body
    assert [s.instance_id for s in statuses.instance_statuses.instance_status] == expected


def test_order_survives_a_restart(tmp_path):
    emu = EmulatorProcess(state_dir=str(tmp_path / "state"))
    emu.start()
    try:
        ecs, cs = ecs_client(emu), cs_client(emu)
        expected_instances = create_instances(ecs)
        clusters = [cs.create_cluster(cm.CreateClusterRequest(
            name="order-%d" % n, region_id=REGION, cluster_type="ManagedKubernetes", cluster_spec="ack.pro.small",
            vswitch_ids=[VSW_L])).body.cluster_id for n in range(5)]
        pools = [cs.create_cluster_node_pool(clusters[0], cm.CreateClusterNodePoolRequest(
            nodepool_info=cm.CreateClusterNodePoolRequestNodepoolInfo(name="pool-%d" % n, type="ess"),
            scaling_group=cm.CreateClusterNodePoolRequestScalingGroup(instance_types=["ecs.g7.xlarge"], vswitch_ids=[VSW_L],
                                                                      desired_size=0))).body.nodepool_id for n in range(4)]

        def listed():
            return (instance_ids(ecs)[0],
                    [c.cluster_id for c in cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters],
                    [p.nodepool_info.nodepool_id for p in cs.describe_cluster_node_pools(clusters[0], cm.DescribeClusterNodePoolsRequest()).body.nodepools])

        # in creation order (most were made within the same second), whatever their random ids
        assert listed() == (expected_instances, clusters, pools)
        emu.restart()
        ecs, cs = ecs_client(emu), cs_client(emu)
        assert listed() == (expected_instances, clusters, pools)
    finally:
        emu.stop()
