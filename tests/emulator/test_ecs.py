"""ECS actions of the emulator, driven through the official alibabacloud_ecs20140526 client."""

import json

import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException

VSW_L = "vsw-sbx00000000000000000l"
VSW_H = "vsw-sbx00000000000000000h"
SG = "sg-sbx0000000000000000001"
TEE = "ecs.gn8v-tee.4xlarge"
UEFI_FAMILY = "acs:alibaba_cloud_linux_3_2104_lts_x64_uefi"
REGION = "cn-beijing"


def run(ecs, **kw):
    params = {"region_id": REGION, "instance_type": TEE, "image_family": UEFI_FAMILY, "v_switch_id": VSW_L,
              "security_group_id": SG, "system_disk": m.RunInstancesRequestSystemDisk(category="cloud_essd", size="100")}
    params.update(kw)
    return ecs.run_instances(m.RunInstancesRequest(**params))


def describe(ecs, **kw):
    kw.setdefault("region_id", REGION)
    return ecs.describe_instances(m.DescribeInstancesRequest(**kw))


def error_of(func, *args):
    with pytest.raises(ClientException) as info:
        func(*args)
    return info.value


# -- RunInstances -----------------------------------------------------------------------------------


def test_run_instances_creates_running_instance_with_addresses(ecs):
    resp = run(ecs, instance_name="tee-node", host_name="tee-node", internet_max_bandwidth_out=10,
               tag=[m.RunInstancesRequestTag(key="project", value="vllm")])
    assert resp.status_code == 200
    assert resp.body is not None and resp.body.request_id
    ids = resp.body.instance_id_sets.instance_id_set
    assert len(ids) == 1 and ids[0].startswith("i-") and len(ids[0]) == 22
    body = describe(ecs, instance_ids=json.dumps(ids)).body
    assert body is not None and body.total_count == 1
    inst = body.instances.instance[0]
    assert inst.instance_id == ids[0]
    assert inst.status == "Running"  # clock scale 0: the lifecycle completes at once
    assert inst.instance_name == "tee-node" and inst.host_name == "tee-node"
    assert inst.zone_id == "cn-beijing-l" and inst.region_id == REGION
    assert inst.instance_type == TEE and inst.instance_type_family == "ecs.gn8v-tee"
    assert inst.image_id == "aliyun_3_x64_20G_uefi_alibase_20250117.vhd"  # newest image of the family
    assert inst.gpuamount == 1 and inst.gpuspec and inst.cpu == 16 and inst.memory == 96 * 1024
    private = inst.vpc_attributes.private_ip_address.ip_address
    assert len(private) == 1 and private[0].startswith("192.168.12.")
    assert inst.vpc_attributes.v_switch_id == VSW_L and inst.vpc_attributes.vpc_id == "vpc-sbx000000000000000001"
    assert inst.public_ip_address.ip_address and inst.public_ip_address.ip_address[0].startswith("203.0.113.")
    assert inst.security_group_ids.security_group_id == [SG]
    assert [(t.tag_key, t.tag_value) for t in inst.tags.tag] == [("project", "vllm")]
    assert inst.network_interfaces.network_interface[0].primary_ip_address == private[0]
    assert inst.creation_time.endswith("Z") and inst.start_time


def test_run_instances_without_bandwidth_has_no_public_ip(ecs):
    ids = run(ecs).body.instance_id_sets.instance_id_set
    inst = describe(ecs, instance_ids=json.dumps(ids)).body.instances.instance[0]
    assert inst.public_ip_address.ip_address == []
    assert inst.internet_max_bandwidth_out == 0


def test_run_instances_amount_creates_several_with_distinct_ips(ecs):
    ids = run(ecs, amount=3, instance_name="w", unique_suffix=True).body.instance_id_sets.instance_id_set
    assert len(set(ids)) == 3
    insts = describe(ecs, instance_ids=json.dumps(ids)).body.instances.instance
    ips = {i.vpc_attributes.private_ip_address.ip_address[0] for i in insts}
    assert len(ips) == 3
    assert sorted(i.instance_name for i in insts) == ["w001", "w002", "w003"]


def test_client_token_is_idempotent(alicloud, ecs):
    before = len(alicloud.requests())
    first = run(ecs, client_token="tok-1").body.instance_id_sets.instance_id_set
    second = run(ecs, client_token="tok-1").body.instance_id_sets.instance_id_set
    assert first == second
    assert describe(ecs).body.total_count == 1
    err = error_of(lambda: run(ecs, client_token="tok-1", instance_name="other"))
    assert err.code == "IdempotenceParamNotMatch" and err.status_code == 400
    assert describe(ecs).body.total_count == 1
    calls = [r for r in alicloud.requests()[before:] if r["mutating"]]
    assert [(r["action"], r["status"]) for r in calls] == [("RunInstances", 200), ("RunInstances", 200), ("RunInstances", 400)]


@pytest.mark.parametrize("kw,code,status", [
    ({"instance_type": "ecs.nope.large"}, "InvalidInstanceType.ValueNotSupported", 400),
    ({"instance_type": "ecs.gn8v-tee.4xlarge", "v_switch_id": VSW_H}, "InvalidInstanceType.ZoneNotSupported", 403),
    ({"image_family": None, "image_id": "m-doesnotexist"}, "InvalidImageId.NotFound", 404),
    ({"v_switch_id": "vsw-missing"}, "InvalidVSwitchId.NotFound", 404),
    ({"security_group_id": "sg-missing"}, "InvalidSecurityGroupId.NotFound", 404),
    ({"zone_id": "cn-beijing-h"}, "InvalidParameter.Mismatch", 400),
    ({"region_id": "cn-hangzhou"}, "InvalidRegionId.NotFound", 404),
    ({"instance_type": None}, "MissingParameter", 400),
    ({"system_disk": m.RunInstancesRequestSystemDisk(category="floppy")}, "InvalidSystemDiskCategory.ValueNotSupported", 400),
    ({"system_disk": m.RunInstancesRequestSystemDisk(category="cloud_essd", size="10")}, "InvalidSystemDiskSize.LessThanImageSize", 404),
    ({"password": "short"}, "InvalidPassword.Malformed", 400),
    ({"amount": 101}, "InvalidParameter", 400),
])
def test_run_instances_errors(alicloud, ecs, kw, code, status):
    err = error_of(lambda: run(ecs, **kw))
    assert err.code == code
    assert err.status_code == status
    assert err.request_id and err.request_id != "None"
    assert describe(ecs).body.total_count == 0
    assert alicloud.requests()[-2]["code"] == code  # [-1] is the DescribeInstances above


def test_run_instances_dry_run_creates_nothing(ecs):
    err = error_of(lambda: run(ecs, dry_run=True))
    assert err.code == "DryRunOperation"
    assert describe(ecs).body.total_count == 0


def test_run_instances_no_stock(alicloud, ecs):
    alicloud.set_faults(stockouts=[["cn-beijing-l", TEE]])
    err = error_of(lambda: run(ecs))
    assert err.code == "OperationDenied.NoStock" and err.status_code == 403
    assert describe(ecs).body.total_count == 0


def test_run_instances_quota(alicloud, ecs):
    alicloud.set_faults(quota={"RunInstances": "QuotaExceed.AfterpayInstance"})
    err = error_of(lambda: run(ecs))
    assert err.code == "QuotaExceed.AfterpayInstance"
    assert describe(ecs).body.total_count == 0


# -- lifecycle on a clock ------------------------------------------------------------------------------


def test_instance_moves_pending_starting_running_on_the_clock(alicloud, ecs):
    alicloud.set_clock(1.0, durations={"ecs.instance.start": 3600.0})
    ids = run(ecs).body.instance_id_sets.instance_id_set
    assert describe(ecs, instance_ids=json.dumps(ids)).body.instances.instance[0].status == "Pending"
    alicloud.set_clock(0.0)
    assert describe(ecs, instance_ids=json.dumps(ids)).body.instances.instance[0].status == "Running"
    alicloud.set_clock(1.0, durations={"ecs.instance.start": 90.0})


def test_starting_phase_is_visible(alicloud, ecs):
    alicloud.set_clock(0.001, durations={"ecs.instance.start": 1000.0})  # 1 s, Starting after 0.3 s
    ids = run(ecs).body.instance_id_sets.instance_id_set
    seen = set()
    import time  # pylint: disable=import-outside-toplevel
    deadline = time.time() + 5
    while time.time() < deadline:
        status = describe(ecs, instance_ids=json.dumps(ids)).body.instances.instance[0].status
        seen.add(status)
        if status == "Running":
            break
        time.sleep(0.1)
    assert {"Pending", "Starting", "Running"} <= seen
    alicloud.set_clock(0.0, durations={"ecs.instance.start": 90.0})


# -- DescribeInstances filters and paging ------------------------------------------------------------------


def test_describe_instances_filters(ecs):
    a = run(ecs, instance_name="vllm-a", tag=[m.RunInstancesRequestTag(key="role", value="gpu")]).body.instance_id_sets.instance_id_set[0]
    b = run(ecs, instance_name="vllm-b", instance_type="ecs.g8i.xlarge", v_switch_id=VSW_H, image_family=None,
            image_id="aliyun_3_x64_20G_alibase_20250117.vhd").body.instance_id_sets.instance_id_set[0]

    def names(body):
        return sorted(i.instance_id for i in body.instances.instance)
    assert names(describe(ecs, instance_name="vllm-*").body) == sorted([a, b])
    assert names(describe(ecs, instance_name="vllm-a").body) == [a]
    assert names(describe(ecs, zone_id="cn-beijing-h").body) == [b]
    assert names(describe(ecs, tag=[m.DescribeInstancesRequestTag(key="role", value="gpu")]).body) == [a]
    assert names(describe(ecs, tag=[m.DescribeInstancesRequestTag(key="role", value="cpu")]).body) == []
    assert names(describe(ecs, status="Running").body) == sorted([a, b])
    assert names(describe(ecs, status="Stopped").body) == []
    assert names(describe(ecs, instance_ids=json.dumps([b, "i-2zenotthere00000000"])).body) == [b]
    assert names(describe(ecs, instance_type="ecs.g8i.xlarge").body) == [b]
    err = error_of(lambda: describe(ecs, instance_ids="not-json"))
    assert err.code == "InvalidParameter"


def test_describe_instances_paging(ecs):
    ids = run(ecs, amount=12).body.instance_id_sets.instance_id_set
    page1 = describe(ecs, page_number=1, page_size=5).body
    page3 = describe(ecs, page_number=3, page_size=5).body
    assert page1.total_count == 12 and page1.page_size == 5 and len(page1.instances.instance) == 5
    assert len(page3.instances.instance) == 2
    seen = []
    token = None
    rounds = 0
    while True:
        kw = {"max_results": 10}
        if token:
            kw["next_token"] = token
        body = describe(ecs, **kw).body
        seen += [i.instance_id for i in body.instances.instance]
        token = body.next_token
        rounds += 1
        if not token:
            break
    assert rounds == 2 and sorted(seen) == sorted(ids)


def test_describe_instance_status(ecs):
    ids = run(ecs, amount=2).body.instance_id_sets.instance_id_set
    body = ecs.describe_instance_status(m.DescribeInstanceStatusRequest(region_id=REGION, instance_id=[ids[0]])).body
    assert body.total_count == 1
    assert body.instance_statuses.instance_status[0].instance_id == ids[0]
    assert body.instance_statuses.instance_status[0].status == "Running"
    all_ = ecs.describe_instance_status(m.DescribeInstanceStatusRequest(region_id=REGION)).body
    assert all_.total_count == 2
    err = error_of(lambda: ecs.describe_instance_status(m.DescribeInstanceStatusRequest()))
    assert err.code == "MissingRegionId"


# -- start / stop / delete ------------------------------------------------------------------------------------


def status_of(ecs, iid):
    return describe(ecs, instance_ids=json.dumps([iid])).body.instances.instance[0].status


def test_stop_start_delete_single(ecs):
    iid = run(ecs).body.instance_id_sets.instance_id_set[0]
    err = error_of(lambda: ecs.start_instance(m.StartInstanceRequest(instance_id=iid)))
    assert err.code == "IncorrectInstanceStatus" and err.status_code == 403
    err = error_of(lambda: ecs.delete_instance(m.DeleteInstanceRequest(instance_id=iid)))
    assert err.code == "IncorrectInstanceStatus"
    assert ecs.stop_instance(m.StopInstanceRequest(instance_id=iid)).body.request_id
    assert status_of(ecs, iid) == "Stopped"
    err = error_of(lambda: ecs.stop_instance(m.StopInstanceRequest(instance_id=iid)))
    assert err.code == "IncorrectInstanceStatus"
    assert ecs.start_instance(m.StartInstanceRequest(instance_id=iid)).body.request_id
    assert status_of(ecs, iid) == "Running"
    ecs.stop_instance(m.StopInstanceRequest(instance_id=iid, stopped_mode="StopCharging"))
    inst = describe(ecs, instance_ids=json.dumps([iid])).body.instances.instance[0]
    assert inst.stopped_mode == "StopCharging"
    assert ecs.delete_instance(m.DeleteInstanceRequest(instance_id=iid)).body.request_id
    assert describe(ecs, instance_ids=json.dumps([iid])).body.total_count == 0
    err = error_of(lambda: ecs.delete_instance(m.DeleteInstanceRequest(instance_id=iid)))
    assert err.code == "InvalidInstanceId.NotFound" and err.status_code == 404


def test_force_delete_running(ecs):
    iid = run(ecs).body.instance_id_sets.instance_id_set[0]
    ecs.delete_instance(m.DeleteInstanceRequest(instance_id=iid, force=True))
    assert describe(ecs).body.total_count == 0


def test_batch_start_stop_delete(ecs):
    ids = run(ecs, amount=2).body.instance_id_sets.instance_id_set
    body = ecs.stop_instances(m.StopInstancesRequest(region_id=REGION, instance_id=ids)).body
    entries = body.instance_responses.instance_response
    assert sorted(e.instance_id for e in entries) == sorted(ids)
    assert all(e.code == "200" and e.previous_status == "Running" and e.current_status == "Stopping" for e in entries)
    assert {status_of(ecs, i) for i in ids} == {"Stopped"}
    err = error_of(lambda: ecs.stop_instances(m.StopInstancesRequest(region_id=REGION, instance_id=ids)))
    assert err.code == "IncorrectInstanceStatus"
    body = ecs.start_instances(m.StartInstancesRequest(region_id=REGION, instance_id=ids)).body
    assert len(body.instance_responses.instance_response) == 2
    assert {status_of(ecs, i) for i in ids} == {"Running"}
    err = error_of(lambda: ecs.delete_instances(m.DeleteInstancesRequest(region_id=REGION, instance_id=ids)))
    assert err.code == "IncorrectInstanceStatus"
    ecs.delete_instances(m.DeleteInstancesRequest(region_id=REGION, instance_id=ids, force=True))
    assert describe(ecs).body.total_count == 0
    err = error_of(lambda: ecs.delete_instances(m.DeleteInstancesRequest(region_id=REGION, instance_id=ids, force=True)))
    assert err.code == "InvalidInstanceId.NotFound"


def test_stop_unknown_instance(ecs):
    err = error_of(lambda: ecs.stop_instance(m.StopInstanceRequest(instance_id="i-2zenotthere00000000")))
    assert err.code == "InvalidInstanceId.NotFound" and err.status_code == 404


# -- catalogue calls -------------------------------------------------------------------------------------------


def test_describe_available_resource(alicloud, ecs):
    req = m.DescribeAvailableResourceRequest(region_id=REGION, destination_resource="InstanceType", resource_type="instance",
                                             instance_charge_type="PostPaid", instance_type=TEE, zone_id="cn-beijing-l")
    body = ecs.describe_available_resource(req).body
    zones = body.available_zones.available_zone
    assert [z.zone_id for z in zones] == ["cn-beijing-l"]
    res = zones[0].available_resources.available_resource[0]
    assert res.type == "InstanceType"
    sup = res.supported_resources.supported_resource
    assert [(s.value, s.status, s.status_category) for s in sup] == [(TEE, "Available", "WithStock")]
    alicloud.set_faults(stockouts=[["cn-beijing-l", TEE]])
    sup = ecs.describe_available_resource(req).body.available_zones.available_zone[0].available_resources.available_resource[0]
    assert [(s.status, s.status_category) for s in sup.supported_resources.supported_resource] == [("SoldOut", "WithoutStock")]
    req.zone_id = "cn-beijing-h"
    assert ecs.describe_available_resource(req).body.available_zones.available_zone == []
    err = error_of(lambda: ecs.describe_available_resource(m.DescribeAvailableResourceRequest(region_id=REGION)))
    assert err.code == "MissingParameter"


def test_describe_instance_types_gn8v_tee(ecs):
    body = ecs.describe_instance_types(m.DescribeInstanceTypesRequest(instance_type_family="ecs.gn8v-tee")).body
    types = {t.instance_type_id: t for t in body.instance_types.instance_type}
    assert set(types) == {"ecs.gn8v-tee.4xlarge", "ecs.gn8v-tee.6xlarge", "ecs.gn8v-tee-8x.16xlarge", "ecs.gn8v-tee-8x.48xlarge"}
    small = types["ecs.gn8v-tee.4xlarge"]
    assert small.cpu_core_count == 16 and small.gpuamount == 1 and small.gpumemory_size == 96.0
    assert "H20" in small.gpuspec and small.memory_size > 0
    assert types["ecs.gn8v-tee-8x.48xlarge"].gpuamount == 8
    one = ecs.describe_instance_types(m.DescribeInstanceTypesRequest(instance_types=[TEE])).body.instance_types.instance_type
    assert [t.instance_type_id for t in one] == [TEE]
    many_gpus = ecs.describe_instance_types(m.DescribeInstanceTypesRequest(minimum_gpuamount=8)).body.instance_types.instance_type
    assert {t.instance_type_id for t in many_gpus} == {"ecs.gn8v-tee-8x.16xlarge", "ecs.gn8v-tee-8x.48xlarge"}


def test_describe_images(ecs):
    body = ecs.describe_images(m.DescribeImagesRequest(region_id=REGION, image_family="acs:alibaba_cloud_linux_3_2104_lts_x64",
                                                       image_owner_alias="system")).body
    assert body.total_count == 2
    images = body.images.image
    assert images[0].image_id == "aliyun_3_x64_20G_alibase_20250117.vhd"  # newest first
    assert images[0].osname_en.startswith("Alibaba Cloud Linux 3.2104 LTS 64")
    assert images[0].architecture == "x86_64" and images[0].ostype == "linux"
    uefi = ecs.describe_images(m.DescribeImagesRequest(region_id=REGION, image_family=UEFI_FAMILY)).body.images.image
    assert [i.boot_mode for i in uefi] == ["UEFI"]
    none = ecs.describe_images(m.DescribeImagesRequest(region_id=REGION, image_id="m-missing")).body
    assert none.total_count == 0 and none.images.image == []


def test_describe_zones_and_network(ecs):
    zones = ecs.describe_zones(m.DescribeZonesRequest(region_id=REGION)).body.zones.zone
    by_id = {z.zone_id: z for z in zones}
    assert "cn-beijing-l" in by_id
    info = by_id["cn-beijing-l"].available_resources.resources_info[0]
    assert TEE in info.instance_types.supported_instance_type
    assert TEE not in by_id["cn-beijing-h"].available_instance_types.instance_types
    vsws = ecs.describe_vswitches(m.DescribeVSwitchesRequest(region_id=REGION, zone_id="cn-beijing-l")).body.v_switches.v_switch
    assert [v.v_switch_id for v in vsws] == [VSW_L]
    sgs = ecs.describe_security_groups(m.DescribeSecurityGroupsRequest(region_id=REGION)).body.security_groups.security_group
    assert [g.security_group_id for g in sgs] == [SG]
    vpcs = ecs.describe_vpcs(m.DescribeVpcsRequest(region_id=REGION)).body.vpcs.vpc
    assert [v.vpc_id for v in vpcs] == ["vpc-sbx000000000000000001"]
    regions = ecs.describe_regions(m.DescribeRegionsRequest()).body.regions.region
    assert [r.region_id for r in regions] == [REGION]


def test_unknown_action_is_not_found(alicloud, ecs):
    from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params  # pylint: disable=import-outside-toplevel
    from darabonba.runtime import RuntimeOptions  # pylint: disable=import-outside-toplevel
    params = Params(action="DescribeNothing", version="2014-05-26", protocol="HTTP", pathname="/", method="POST",
                    auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
    err = error_of(lambda: ecs.call_api(params, OpenApiRequest(query={"RegionId": REGION}), RuntimeOptions()))
    assert err.code == "InvalidApi.NotFound" and err.status_code == 404
    assert alicloud.requests()[-1]["action"] == "DescribeNothing"


def test_more_error_paths(ecs):
    iid = run(ecs).body.instance_id_sets.instance_id_set[0]
    err = error_of(lambda: ecs.start_instances(m.StartInstancesRequest(region_id=REGION, instance_id=[iid])))
    assert err.code == "IncorrectInstanceStatus"
    err = error_of(lambda: ecs.start_instances(m.StartInstancesRequest(region_id=REGION)))
    assert err.code == "MissingParameter"
    err = error_of(lambda: ecs.describe_instance_types(m.DescribeInstanceTypesRequest(next_token="%%%")))
    assert err.code == "InvalidNextToken.Malformed"
    err = error_of(lambda: ecs.describe_images(m.DescribeImagesRequest()))
    assert err.code == "MissingRegionId"
    err = error_of(lambda: ecs.describe_zones(m.DescribeZonesRequest(region_id="cn-shanghai")))
    assert err.code == "InvalidRegionId.NotFound"
    err = error_of(lambda: describe(ecs, status="Exploded"))
    assert err.code == "InvalidStatus.ValueNotSupported"
    err = error_of(lambda: ecs.describe_available_resource(m.DescribeAvailableResourceRequest(region_id=REGION, destination_resource="Moon")))
    assert err.code == "InvalidDestinationResource.ValueNotSupported"
