# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ecs_instance and ecs_instance_info: option validation and the pure helpers, without any cloud call."""

from __future__ import annotations

import base64

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.confidential_ai.ack.plugins.modules import ecs_instance, ecs_instance_info

pytest.importorskip("alibabacloud_ecs20140526")


class Exited(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs.get("msg"))
        self.kwargs = kwargs


@pytest.fixture(autouse=True)
def capture(monkeypatch):
    def leave(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(kwargs)

    def fail(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(dict(kwargs, failed=True))

    def no_client(self, service, bucket=None):  # pylint: disable=unused-argument
        raise AssertionError("a cloud client was built although the input is invalid")

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", leave)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail)
    monkeypatch.setattr(ecs_instance.AlicloudModule, "client", no_client)
    monkeypatch.setenv("ALIBABA_CLOUD_CONFIG_FILE", "/nonexistent/aliyun.json")
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")


CONN = {"access_key": "ak", "secret_key": "sk", "region": "cn-beijing"}


def run(module, args):
    with patch_module_args(dict(CONN, **args)):
        with pytest.raises(Exited) as info:
            module.main()
    return info.value.kwargs


def defaults(**overrides):
    """The params dict AnsibleModule would build from the spec's defaults plus ``overrides``."""
    params = {}
    for name, spec in ecs_instance.argument_spec().items():
        params[name] = spec.get("default")
    params["system_disk"] = {"size": 100, "category": "cloud_essd", "performance_level": None}
    params.update(overrides)
    return params


# -- validate_params ---------------------------------------------------------------------------------

def test_defaults_are_valid():
    assert ecs_instance.validate_params(defaults(name="tee-1")) == []


@pytest.mark.parametrize("overrides, fragment", [
    ({"wait_timeout": -1}, "wait_timeout must not be negative"),
    ({"instance_id": "x-1"}, "instance_id 'x-1' is not an instance id"),
    ({"name": "n" * 129}, "name is 129 characters long"),
    ({"description": "d" * 257}, "description is longer than 256"),
    ({"host_name": "h"}, "host_name must be 2 to 64"),
    ({"tags": {"aliyun:x": "1"}}, "tags key 'aliyun:x'"),
    ({"zone_id": "L"}, "zone_id 'L' is not a zone id"),
    ({"vswitch_id": "vpc-1"}, "vswitch_id 'vpc-1' is not a vSwitch id"),
    ({"security_group_ids": []}, "security_group_ids must not be empty"),
    ({"security_group_ids": ["sg-1", "x"]}, "security_group_ids: 'x' not a security group id"),
    ({"security_group_ids": ["sg-%d" % i for i in range(6)]}, "at most 5 security groups"),
    ({"instance_type": "ecs"}, "instance_type 'ecs' is not an instance type"),
    ({"system_disk": {"size": 19, "category": "cloud_essd"}}, "system_disk.size must be 20 to 2048 GiB (got 19)"),
    ({"system_disk": {"size": 4096, "category": "cloud_essd"}}, "system_disk.size must be 20 to 2048 GiB (got 4096)"),
    ({"password": "short"}, "password must be 8 to 30"),
    ({"user_data": "x" * (32 * 1024 + 1)}, "user_data is 32769 bytes"),
    ({"internet_max_bandwidth_out": 101}, "internet_max_bandwidth_out must be 0 to 100"),
    ({"internet_max_bandwidth_out": -1}, "internet_max_bandwidth_out must be 0 to 100"),
    ({"period": 2}, "period applies only with charge_type=PrePaid"),
    ({"period": 61, "charge_type": "PrePaid"}, "period must be 1 to 60"),
])
def test_each_bad_value_is_named(overrides, fragment):
    errors = ecs_instance.validate_params(defaults(**dict({"name": "tee-1"}, **overrides)))
    assert len(errors) == 1 and fragment in errors[0], errors


def test_all_problems_are_reported_at_once():
    errors = ecs_instance.validate_params(defaults(name="1", vswitch_id="x", wait_timeout=-1))
    assert len(errors) == 3


def test_the_password_is_never_in_a_message():
    errors = ecs_instance.validate_params(defaults(name="tee-1", password="Secret value"))
    assert errors and "Secret value" not in " ".join(errors)


# -- main: refused before any client is built ----------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    ({"name": "tee-1", "system_disk": {"size": 10}}, "system_disk.size"),
    ({"name": "tee-1", "zone_id": "cn-shanghai-a"}, "zone_id cn-shanghai-a is not a zone of region cn-beijing"),
    ({"name": "tee-1", "key_pair_name": "k", "password": "Abcdefg1!"}, "key_pair_name|password"),
    ({"instance_type": "ecs.g7.xlarge"}, "instance_id, name, tags"),
    ({"name": "tee-1", "tags": "not-a-dict"}, "tags"),
])
def test_main_refuses_bad_input_without_a_client(args, fragment):
    result = run(ecs_instance, args)
    assert result["failed"] and fragment in result["msg"], result["msg"]


def test_main_hides_the_password_even_when_refusing():
    result = run(ecs_instance, {"name": "tee-1", "password": "Abcdefg1!", "wait_timeout": -1})
    assert result["failed"] and "wait_timeout" in result["msg"]
    assert "Abcdefg1!" not in repr(result)


@pytest.mark.parametrize("args, fragment", [
    ({"instance_ids": ["web-1"]}, "instance_ids: 'web-1'"),
    ({"status": "running"}, "status"),
    ({"zone_id": "cn-shanghai-a"}, "zone_id cn-shanghai-a is not a zone of region cn-beijing"),
    ({"vpc_id": "net-1"}, "vpc_id 'net-1'"),
    ({"tags": {"acs:x": "1"}}, "tags key 'acs:x'"),
])
def test_info_refuses_bad_filters(args, fragment, monkeypatch):
    monkeypatch.setattr(ecs_instance_info.AlicloudModule, "client", ecs_instance.AlicloudModule.client)
    result = run(ecs_instance_info, args)
    assert result["failed"] and fragment in result["msg"], result["msg"]


# -- pure helpers ------------------------------------------------------------------------------------

def test_user_data_is_base64_of_utf8():
    text = "#!/bin/sh\necho \u00e9\n"
    encoded = ecs_instance.encode_user_data(text)
    assert base64.b64decode(encoded).decode("utf-8") == text


def test_desired_fields_leave_the_identity_name_alone():
    params = defaults(name="tee-1", tags={"a": 1}, instance_type="ecs.g7.xlarge")
    by_name = ecs_instance.desired_fields(params, "name")
    assert by_name["name"] is None and by_name["tags"] == {"a": "1"} and by_name["instance_type"] == "ecs.g7.xlarge"
    by_id = ecs_instance.desired_fields(dict(params, instance_id="i-1"), "instance_id")
    assert by_id["name"] == "tee-1"
    # options used only at creation are never compared
    assert not {"image", "system_disk", "password", "user_data", "period"} & set(by_name)
    # unset options are not managed
    assert ecs_instance.desired_fields(defaults(name="x"), "name")["internet_max_bandwidth_out"] is None


def test_projection():
    assert ecs_instance.projection(None) == {}
    shown = ecs_instance.projection({"instance_id": "i-1", "status": "Running", "private_ip": "10.0.0.1"})
    assert shown["instance_id"] == "i-1" and "private_ip" not in shown and set(shown) == set(ecs_instance.DIFF_FIELDS)


def test_argument_spec_matches_the_documentation():
    import yaml  # pylint: disable=import-outside-toplevel
    for module in (ecs_instance,):
        documented = yaml.safe_load(module.DOCUMENTATION)["options"]
        spec = module.argument_spec()
        assert set(documented) == set(spec)
        for name, doc in documented.items():
            assert doc.get("type") == spec[name].get("type"), name
            assert doc.get("default") == spec[name].get("default"), name
            assert doc.get("choices") == spec[name].get("choices"), name
        assert spec["password"]["no_log"] is True
