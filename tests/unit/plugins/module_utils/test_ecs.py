# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of plugins/module_utils/ecs.py: validation, normalisation, paging, images, tokens, comparison."""

from __future__ import annotations

import pytest

from ansible_collections.confidential_ai.ack.plugins.module_utils import ecs


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ab", "vllm-tee-worker-1", "a" * 128, "Node_1.example:x", "\u8282\u70b9-1"])
def test_valid_instance_names(name):
    assert ecs.validate_instance_name(name) is None


@pytest.mark.parametrize("name, fragment", [
    ("a", "not a valid instance name"),
    ("1abc", "not a valid instance name"),
    ("-abc", "not a valid instance name"),
    ("a b", "not a valid instance name"),
    ("a*", "not a valid instance name"),
    ("a" * 129, "129 characters long"),
    ("http://x", "http://"),
])
def test_invalid_instance_names(name, fragment):
    message = ecs.validate_instance_name(name)
    assert message and fragment in message and message.startswith("name")


@pytest.mark.parametrize("password, ok", [
    ("Abcdef12", True),
    ("abcdef1!", True),
    ("ABCDEF1!", True),
    ("Abc1!", False),            # too short
    ("A" * 31 + "b1", False),    # too long
    ("abcdefgh", False),         # one class
    ("abcdefg1", False),         # two classes
    ("Abcdefg1 ", False),        # space is not allowed
    ("Abcdefg1\u00e9", False),   # nor non-ASCII
])
def test_password_rules(password, ok):
    message = ecs.validate_password(password)
    assert (message is None) == ok, message
    if message:
        assert message.startswith("password")


def test_tag_rules_name_the_field():
    assert ecs.validate_tags({"project": "cai", "n": 1}) == []
    assert ecs.validate_tags({"ack.aliyun.com": "c123"}) == []
    errors = ecs.validate_tags({"aliyun-x": "v", "acs:y": "v", "k": "acs:z", "u": "see https://x", "": "v"})
    assert len(errors) == 5 and all(e.startswith("tags") for e in errors)
    assert ecs.validate_tags({"k%d" % i: "v" for i in range(21)}) == ["tags has 21 entries; ECS allows at most 20"]
    assert any("longer than 128" in e for e in ecs.validate_tags({"k": "v" * 129}))


def test_id_patterns():
    assert ecs.VSWITCH_ID_RE.match("vsw-sbx00000000000000000l")
    assert not ecs.VSWITCH_ID_RE.match("vsw_123") and not ecs.VSWITCH_ID_RE.match("sg-123")
    assert ecs.SECURITY_GROUP_ID_RE.match("sg-sbx0000000000000000001")
    assert ecs.INSTANCE_ID_RE.match("i-2zeabcdefghij1234567") and not ecs.INSTANCE_ID_RE.match("i-ABC")
    assert ecs.INSTANCE_TYPE_RE.match("ecs.gn8v-tee.4xlarge") and ecs.INSTANCE_TYPE_RE.match("ecs.gn8v-tee-8x.16xlarge")
    assert not ecs.INSTANCE_TYPE_RE.match("gn8v-tee.4xlarge") and not ecs.INSTANCE_TYPE_RE.match("ecs.")
    assert ecs.ZONE_ID_RE.match("cn-beijing-l") and not ecs.ZONE_ID_RE.match("Beijing L")


# -- normalisation ---------------------------------------------------------------------------

WIRE_INSTANCE = {
    "InstanceId": "i-2zeabc", "InstanceName": "tee-1", "HostName": "iZ2zeabcZ", "Description": "",
    "Status": "Running", "StoppedMode": "Not-applicable", "RegionId": "cn-beijing", "ZoneId": "cn-beijing-l",
    "InstanceType": "ecs.gn8v-tee.4xlarge", "InstanceTypeFamily": "ecs.gn8v-tee", "Cpu": 16, "Memory": 98304,
    "GPUAmount": 1, "GPUSpec": "NVIDIA H20", "ImageId": "img-1", "OSName": "Alinux", "OSNameEn": "Alibaba Cloud Linux",
    "OSType": "linux", "InstanceChargeType": "PostPaid", "InternetChargeType": "PayByTraffic",
    "InternetMaxBandwidthOut": 5, "KeyPairName": "", "DeletionProtection": False,
    "CreationTime": "2025-01-01T00:00Z", "StartTime": "2025-01-01T00:01Z", "ExpiredTime": "",
    "VpcAttributes": {"VpcId": "vpc-1", "VSwitchId": "vsw-1", "PrivateIpAddress": {"IpAddress": ["192.168.12.10"]}},
    "PublicIpAddress": {"IpAddress": ["203.0.113.7"]},
    "EipAddress": {"IpAddress": "", "AllocationId": ""},
    "SecurityGroupIds": {"SecurityGroupId": ["sg-1", "sg-2"]},
    "Tags": {"Tag": [{"TagKey": "project", "TagValue": "cai"}, {"TagKey": "empty"}]},
    "NetworkInterfaces": {"NetworkInterface": [{"NetworkInterfaceId": "eni-1", "MacAddress": "00:16:3e:00:00:01",
                                                "PrimaryIpAddress": "192.168.12.10", "Type": "Primary"}]},
    "OperationLocks": {"LockReason": [{"LockReason": "financial"}]},
}


def test_normalize_instance():
    inst = ecs.normalize_instance(WIRE_INSTANCE)
    assert inst["instance_id"] == "i-2zeabc" and inst["name"] == "tee-1" and inst["status"] == "Running"
    assert inst["private_ip"] == "192.168.12.10" and inst["private_ips"] == ["192.168.12.10"]
    assert inst["public_ip"] == "203.0.113.7" and inst["eip_address"] is None
    assert inst["vpc_id"] == "vpc-1" and inst["vswitch_id"] == "vsw-1"
    assert inst["security_group_ids"] == ["sg-1", "sg-2"]
    assert inst["tags"] == {"project": "cai", "empty": ""}
    assert inst["key_pair_name"] is None and inst["deletion_protection"] is False
    assert inst["memory_mib"] == 98304 and inst["gpu_amount"] == 1
    assert inst["network_interface_id"] == "eni-1" and inst["operation_locks"] == ["financial"]
    assert inst["os_name"] == "Alibaba Cloud Linux" and inst["expired_time"] is None
    assert all(key == key.lower() for key in inst)


def test_normalize_instance_with_eip_and_sparse_answer():
    raw = {"InstanceId": "i-1", "EipAddress": {"IpAddress": "198.51.100.9"}}
    inst = ecs.normalize_instance(raw)
    assert inst["public_ip"] == "198.51.100.9" and inst["eip_address"] == "198.51.100.9"
    assert inst["private_ip"] is None and inst["security_group_ids"] == [] and inst["tags"] == {}


def test_a_single_object_where_a_list_belongs_is_tolerated():
    assert ecs.tags_from_wire({"Tags": {"Tag": {"TagKey": "a", "TagValue": "b"}}}) == {"a": "b"}
    assert ecs.tags_from_wire({"Tags": None}) == {}


# -- paging ------------------------------------------------------------------------------------

def pages(data, size):
    """A fetch function over ``data`` with NextToken paging, recording the tokens it got."""
    calls = []

    def fetch(token):
        calls.append(token)
        start = int(token) if token else 0
        nxt = str(start + size) if start + size < len(data) else ""
        return data[start:start + size], nxt
    return fetch, calls


@pytest.mark.parametrize("count, size, expected_calls", [(0, 10, 1), (5, 10, 1), (10, 10, 1), (11, 10, 2), (250, 100, 3)])
def test_paginate_reads_every_page(count, size, expected_calls):
    data = list(range(count))
    fetch, calls = pages(data, size)
    assert list(ecs.paginate(fetch)) == data
    assert len(calls) == expected_calls and calls[0] is None


def test_paginate_stops_on_a_repeated_token():
    def fetch(token):  # pylint: disable=unused-argument
        return [1], "same"
    with pytest.raises(ValueError, match="twice"):
        list(ecs.paginate(fetch))


def test_paginate_page_limit():
    counter = iter(range(10 ** 6))

    def fetch(token):  # pylint: disable=unused-argument
        return [], str(next(counter))
    with pytest.raises(ValueError, match="more than 3 pages"):
        list(ecs.paginate(fetch, max_pages=3))


def test_chunks():
    assert ecs.chunks(range(250), 100) == [list(range(100)), list(range(100, 200)), list(range(200, 250))]
    assert not ecs.chunks([], 100)


def test_tags_match():
    have = {"project": "cai", "env": "prod"}
    assert ecs.tags_match(have, {"project": "cai"})
    assert ecs.tags_match(have, {"project": None}) and ecs.tags_match(have, {"env": ""})
    assert not ecs.tags_match(have, {"project": "other"})
    assert not ecs.tags_match(have, {"missing": None})
    assert ecs.tags_match(have, {})


# -- images --------------------------------------------------------------------------------------

TEE_TYPE = {"InstanceTypeId": "ecs.gn8v-tee.4xlarge", "InstanceTypeFamily": "ecs.gn8v-tee",
            "SupportedBootModes": {"SupportedBootMode": ["UEFI"]}}
GENERAL_TYPE = {"InstanceTypeId": "ecs.g7.xlarge", "InstanceTypeFamily": "ecs.g7",
                "SupportedBootModes": {"SupportedBootMode": ["BIOS", "UEFI"]}}


def test_needs_uefi():
    assert ecs.needs_uefi(TEE_TYPE)
    assert not ecs.needs_uefi(GENERAL_TYPE)
    # a TEE type is UEFI even when the answer lacks boot modes
    assert ecs.needs_uefi({"InstanceTypeId": "ecs.gn8v-tee-8x.16xlarge", "InstanceTypeFamily": "ecs.gn8v-tee"})
    # a UEFI-only type of any family
    assert ecs.needs_uefi({"InstanceTypeId": "ecs.x.large", "SupportedBootModes": {"SupportedBootMode": ["UEFI-Preferred"]}})
    assert not ecs.needs_uefi({"InstanceTypeId": "ecs.c7.large"})


@pytest.mark.parametrize("image, uefi, family", [
    ("Alibaba Cloud Linux 3.2104 LTS 64-bit", False, "acs:alibaba_cloud_linux_3_2104_lts_x64"),
    ("Alibaba Cloud Linux 3.2104 LTS 64-bit", True, "acs:alibaba_cloud_linux_3_2104_lts_x64_uefi"),
    ("alibaba cloud linux 3.2104 lts 64 bit", False, "acs:alibaba_cloud_linux_3_2104_lts_x64"),
    ("Alibaba Cloud Linux 3.2104 LTS 64 bit UEFI", False, "acs:alibaba_cloud_linux_3_2104_lts_x64_uefi"),
    ("alinux3", True, "acs:alibaba_cloud_linux_3_2104_lts_x64_uefi"),
    ("acs:some_family", True, "acs:some_family"),   # a family given as such is used as it is
])
def test_image_family_for(image, uefi, family):
    assert ecs.image_family_for(image, uefi) == family


def test_unknown_image_name_names_the_option():
    with pytest.raises(ecs.EcsInputError, match="^image 'Ubuntu 22.04'.*image_id"):
        ecs.image_family_for("Ubuntu 22.04", False)


def test_choose_image_takes_the_newest_available():
    images = [
        {"ImageId": "old", "CreationTime": "2024-08-19T07:00:00Z", "Status": "Available"},
        {"ImageId": "new", "CreationTime": "2025-01-17T07:00:00Z", "Status": "Available"},
        {"ImageId": "newest-but-deprecated", "CreationTime": "2025-06-01T00:00:00Z", "Status": "Deprecated"},
    ]
    assert ecs.choose_image(images)["ImageId"] == "new"
    assert ecs.choose_image(images[2:]) is None
    assert ecs.choose_image([]) is None


# -- stock ---------------------------------------------------------------------------------------

def test_stock_problem_lists_the_zones_with_stock():
    stock = {
        "cn-beijing-k": {"status": "Available", "status_category": "WithStock", "in_stock": True},
        "cn-beijing-l": {"status": "SoldOut", "status_category": "WithoutStock", "in_stock": False},
        "cn-beijing-h": {"status": "Available", "status_category": "ClosedWithStock", "in_stock": True},
    }
    assert ecs.stock_problem(stock, "cn-beijing-k", "ecs.t", "cn-beijing") is None
    message = ecs.stock_problem(stock, "cn-beijing-l", "ecs.t", "cn-beijing")
    assert message == ("instance_type ecs.t has no stock in zone cn-beijing-l (SoldOut, WithoutStock); "
                       "zones of cn-beijing with stock: cn-beijing-h, cn-beijing-k")
    message = ecs.stock_problem(stock, "cn-beijing-a", "ecs.t", "cn-beijing")
    assert message.startswith("instance_type ecs.t is not offered in zone cn-beijing-a;")
    assert ecs.stock_problem({}, "cn-beijing-l", "ecs.t", "cn-beijing").endswith("no zone of cn-beijing has stock of it now")


# -- tokens --------------------------------------------------------------------------------------

REQUEST = {"RegionId": "cn-beijing", "InstanceType": "ecs.gn8v-tee.4xlarge", "InstanceName": "tee-1",
           "VSwitchId": "vsw-1", "SecurityGroupIds": ["sg-1"], "SystemDisk": {"Size": "100", "Category": "cloud_essd"},
           "Tag": [{"Key": "project", "Value": "cai"}], "Amount": 1}


def test_token_is_deterministic_and_64_ascii_characters():
    token = ecs.instance_client_token(ecs.run_identity(REQUEST))
    assert token == ecs.instance_client_token(ecs.run_identity(dict(REQUEST)))
    assert len(token) == 64 and token.isascii()


def test_token_ignores_the_token_itself_and_dry_run():
    base = ecs.instance_client_token(ecs.run_identity(REQUEST))
    assert ecs.instance_client_token(ecs.run_identity(dict(REQUEST, ClientToken="x", DryRun=True))) == base


@pytest.mark.parametrize("change", [
    {"InstanceName": "tee-2"}, {"InstanceType": "ecs.gn8v-tee.6xlarge"}, {"VSwitchId": "vsw-2"},
    {"SystemDisk": {"Size": "200", "Category": "cloud_essd"}}, {"Tag": [{"Key": "project", "Value": "other"}]},
    {"RegionId": "cn-shanghai"}, {"UserData": "aGk="},
])
def test_token_changes_with_the_request(change):
    assert ecs.instance_client_token(ecs.run_identity(dict(REQUEST, **change))) != \
        ecs.instance_client_token(ecs.run_identity(REQUEST))


def test_secrets_never_enter_the_token():
    with_password = ecs.run_identity(dict(REQUEST, Password="S3cret-Passw0rd", UserData="c2VjcmV0"))
    assert "S3cret-Passw0rd" not in repr(with_password) and "c2VjcmV0" not in repr(with_password)
    assert with_password["Password"] == "(set)" and len(with_password["UserData"]) == 64
    # a different password gives the same token (it cannot be compared, and must not be guessable from it)
    other = ecs.run_identity(dict(REQUEST, Password="0ther-Passw0rd", UserData="c2VjcmV0"))
    assert ecs.instance_client_token(with_password) == ecs.instance_client_token(other)


def test_token_generations_differ_and_are_stable():
    identity = ecs.run_identity(REQUEST)
    tokens = [ecs.instance_client_token(identity, g) for g in range(ecs.MAX_TOKEN_GENERATIONS)]
    assert len(set(tokens)) == len(tokens)
    assert tokens == [ecs.instance_client_token(identity, g) for g in range(ecs.MAX_TOKEN_GENERATIONS)]


class Err:
    def __init__(self, code):
        self.code = code


def test_token_conflict_detection():
    assert ecs.is_token_conflict(Err("IdempotenceParamNotMatch"))
    assert ecs.is_token_conflict(Err("InvalidParameter.IdempotenceParamNotMatch"))
    assert not ecs.is_token_conflict(Err("Idempotence.Processing"))
    assert not ecs.is_token_conflict(Err("OperationDenied.NoStock"))
    assert not ecs.is_token_conflict(Err(None))


# -- desired vs current ----------------------------------------------------------------------------

CURRENT = ecs.normalize_instance(WIRE_INSTANCE)


def test_nothing_managed_nothing_changes():
    changes = ecs.compare_instance({}, CURRENT)
    assert changes == {"update": {}, "tags_add": {}, "tags_remove": [], "fixed": []}


def test_same_values_no_change():
    desired = {"name": "tee-1", "description": "", "deletion_protection": False, "tags": {"project": "cai"},
               "zone_id": "cn-beijing-l", "vswitch_id": "vsw-1", "instance_type": "ecs.gn8v-tee.4xlarge",
               "security_group_ids": ["sg-2", "sg-1"], "internet_max_bandwidth_out": 5, "charge_type": "PostPaid"}
    changes = ecs.compare_instance(desired, CURRENT)
    assert changes == {"update": {}, "tags_add": {}, "tags_remove": [], "fixed": []}


def test_updatable_fields():
    changes = ecs.compare_instance({"name": "tee-2", "description": "gpu", "deletion_protection": True}, CURRENT)
    assert changes["update"] == {"name": "tee-2", "description": "gpu", "deletion_protection": True}
    assert changes["fixed"] == []


def test_tags_add_replace_and_purge():
    changes = ecs.compare_instance({"tags": {"project": "other", "new": 1}}, CURRENT)
    assert changes["tags_add"] == {"project": "other", "new": "1"} and changes["tags_remove"] == []
    purged = ecs.compare_instance({"tags": {"project": "cai"}}, CURRENT, purge_tags=True)
    assert purged["tags_add"] == {} and purged["tags_remove"] == ["empty"]
    assert ecs.apply_changes(CURRENT, purged)["tags"] == {"project": "cai"}
    assert ecs.apply_changes(CURRENT, changes)["tags"] == {"project": "other", "new": "1", "empty": ""}


def test_fixed_fields_are_reported_not_updated():
    changes = ecs.compare_instance({"instance_type": "ecs.gn8v-tee.6xlarge", "security_group_ids": ["sg-3"],
                                    "key_pair_name": "ops", "description": "x"}, CURRENT)
    assert changes["update"] == {"description": "x"}
    assert changes["fixed"] == [("instance_type", "ecs.gn8v-tee.6xlarge", "ecs.gn8v-tee.4xlarge"),
                                ("security_group_ids", ["sg-3"], ["sg-1", "sg-2"]),
                                ("key_pair_name", "ops", None)]
    message = ecs.fixed_field_message(changes["fixed"], "i-2zeabc")
    assert "instance_type is 'ecs.gn8v-tee.4xlarge', the task wants 'ecs.gn8v-tee.6xlarge'" in message
    assert "security_group_ids" in message and "key_pair_name" in message and "fixed at creation" in message


def test_apply_changes_does_not_touch_the_original():
    changes = ecs.compare_instance({"name": "tee-2", "tags": {"a": "b"}}, CURRENT)
    after = ecs.apply_changes(CURRENT, changes)
    assert after["name"] == "tee-2" and after["tags"]["a"] == "b"
    assert CURRENT["name"] == "tee-1" and "a" not in CURRENT["tags"]
