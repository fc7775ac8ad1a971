# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ecs_instance and ecs_instance_info run in-process against the local emulator (official SDK, real HTTP).

What the integration target cannot reach through ansible-playbook:

* the ClientToken: DescribeInstances may lag behind RunInstances (wire reference 8.1), so the
  module's lookup can miss an instance it made a moment ago. The lag is simulated by making the
  module's lookup see nothing (the only thing replaced; every SDK call goes to the emulator), and
  the repeated create must get the same instance back, not a twin;
* paging of ecs_instance_info over more instances than one page (100) holds, and over more ids than
  one DescribeInstances call accepts (100).

Needs the repository root on sys.path (run pytest from it); skipped otherwise.
"""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.confidential_ai.ack.plugins.modules import ecs_instance, ecs_instance_info

testing = pytest.importorskip("sandbox.alicloud.testing")
ecs_models = pytest.importorskip("alibabacloud_ecs20140526.models")


class Exited(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs.get("msg"))
        self.kwargs = kwargs


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with testing.EmulatorProcess(state_dir=str(tmp_path_factory.mktemp("ecs-emulator"))) as emu:
        yield emu


@pytest.fixture
def emu(emulator, monkeypatch):
    def leave(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(kwargs)

    def fail(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(dict(kwargs, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", leave)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail)
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_REGION_ID", "ALIBABA_CLOUD_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_CONFIG_FILE", "/nonexistent/aliyun.json")
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    emulator.reset()
    emulator.clear_faults()
    emulator.set_clock(0.0)
    # reset drops the resources, not the request log: remember where this test starts
    emulator.log_start = len(emulator.requests())
    yield emulator
    emulator.clear_faults()


def run(emu, module, **args):
    ak, sk = emu.static_key
    conn = {"access_key": ak, "secret_key": sk, "region": emu.region, "protocol": "http",
            "endpoints": {"ecs": emu.api_endpoint}}
    with patch_module_args(dict(conn, **args)):
        with pytest.raises(Exited) as info:
            module.main()
    return info.value.kwargs


def all_instances(emu):
    client = testing.ecs_client(emu)
    body = client.describe_instances(ecs_models.DescribeInstancesRequest(region_id=emu.region, max_results=100)).body
    return body.to_map()["Instances"]["Instance"]


def log(emu):
    return emu.requests()[emu.log_start:]


def calls(emu, action):
    return [r for r in log(emu) if r["action"] == action]


TEE = {"name": "tee-token", "instance_type": "ecs.gn8v-tee.4xlarge", "vswitch_id": "vsw-sbx00000000000000000l",
       "security_group_ids": ["sg-sbx0000000000000000001"], "tags": {"project": "cai"}, "state": "running"}


def test_a_create_repeated_while_describe_lags_returns_the_same_instance(emu, monkeypatch):
    first = run(emu, ecs_instance, **TEE)
    assert first["changed"] and first["instance"]["status"] == "Running"
    # DescribeInstances has not caught up yet: the module's lookup sees nothing and it creates again
    monkeypatch.setattr(ecs_instance, "lookup_instances", lambda *a, **k: [])
    second = run(emu, ecs_instance, **TEE)
    assert second["instance"]["instance_id"] == first["instance"]["instance_id"]
    assert [i["InstanceId"] for i in all_instances(emu)] == [first["instance"]["instance_id"]]
    runs = calls(emu, "RunInstances")
    assert len(runs) == 2 and all(r["status"] == 200 for r in runs)


def test_without_the_lookup_a_different_request_makes_a_different_instance(emu, monkeypatch):
    # the control experiment: the token, not luck, made the test above pass
    monkeypatch.setattr(ecs_instance, "lookup_instances", lambda *a, **k: [])
    first = run(emu, ecs_instance, **TEE)
    other = dict(TEE)
    other["tags"] = {"project": "other"}
    second = run(emu, ecs_instance, **other)
    assert first["instance"]["instance_id"] != second["instance"]["instance_id"]
    assert len(all_instances(emu)) == 2


def test_a_token_used_with_other_parameters_moves_to_the_next_generation(emu, monkeypatch):
    # the password is not part of the token (a secret), so a new password reuses the token with other
    # parameters: ECS refuses (IdempotenceParamNotMatch) and the module takes the next token
    monkeypatch.setattr(ecs_instance, "lookup_instances", lambda *a, **k: [])
    first = run(emu, ecs_instance, **dict(TEE, password="Sandbox-Passw0rd"))
    second = run(emu, ecs_instance, **dict(TEE, password="Other-Passw0rd"))
    assert first["instance"]["instance_id"] != second["instance"]["instance_id"]
    codes = [r["code"] for r in calls(emu, "RunInstances")]
    assert codes == [None, "IdempotenceParamNotMatch", None]
    # and the walk is deterministic: the same second request again lands on the same instance
    third = run(emu, ecs_instance, **dict(TEE, password="Other-Passw0rd"))
    assert third["instance"]["instance_id"] == second["instance"]["instance_id"]
    assert len(all_instances(emu)) == 2


def test_check_mode_makes_no_mutating_call(emu):
    result = run(emu, ecs_instance, _ansible_check_mode=True, _ansible_diff=True, **TEE)
    assert result["changed"] and result["actions"] == ["create"]
    assert result["diff"]["after"]["image_id"] == "aliyun_3_x64_20G_uefi_alibase_20250117.vhd"
    assert [r for r in log(emu) if r["mutating"]] == [] and all_instances(emu) == []


def make_instances(emu, count, name, zone_letter="h"):
    client = testing.ecs_client(emu)
    made = []
    batch = 0
    while count > 0:
        amount = min(count, 100)
        body = client.run_instances(ecs_models.RunInstancesRequest(
            region_id=emu.region, instance_type="ecs.g7.xlarge", image_family="acs:alibaba_cloud_linux_3_2104_lts_x64",
            v_switch_id="vsw-sbx00000000000000000%s" % zone_letter, security_group_ids=["sg-sbx0000000000000000001"],
            instance_name="%s%d-" % (name, batch), unique_suffix=True, amount=amount,
            tag=[ecs_models.RunInstancesRequestTag(key="batch", value=name)])).body
        made.extend(body.instance_id_sets.instance_id_set)
        count -= amount
        batch += 1
    return made


def test_info_reads_every_page(emu):
    ids = make_instances(emu, 205, "bulk") + make_instances(emu, 3, "other", "k")
    before = len(calls(emu, "DescribeInstances"))
    everything = run(emu, ecs_instance_info)["instances"]
    assert len(everything) == 208 and len({i["instance_id"] for i in everything}) == 208
    assert len(calls(emu, "DescribeInstances")) - before == 3       # 100 + 100 + 8
    tagged = run(emu, ecs_instance_info, tags={"batch": "bulk"})["instances"]
    assert sorted(i["instance_id"] for i in tagged) == sorted(ids[:205])
    by_zone = run(emu, ecs_instance_info, zone_id="cn-beijing-k")["instances"]
    assert sorted(i["name"] for i in by_zone) == ["other0-001", "other0-002", "other0-003"]
    wildcard = run(emu, ecs_instance_info, name="bulk1-*")["instances"]
    assert sorted(i["name"] for i in wildcard) == ["bulk1-%03d" % n for n in range(1, 101)]


def test_info_asks_for_ids_a_hundred_at_a_time(emu):
    ids = make_instances(emu, 150, "many")
    before = len(calls(emu, "DescribeInstances"))
    found = run(emu, ecs_instance_info, instance_ids=ids)["instances"]
    assert sorted(i["instance_id"] for i in found) == sorted(ids)
    asked = calls(emu, "DescribeInstances")[before:]
    assert len(asked) == 2
    assert run(emu, ecs_instance_info, instance_ids=[])["instances"] == []


def test_info_filters_by_status(emu):
    made = make_instances(emu, 2, "st")
    client = testing.ecs_client(emu)
    client.stop_instance(ecs_models.StopInstanceRequest(instance_id=made[0]))
    stopped = run(emu, ecs_instance_info, status="Stopped")["instances"]
    running = run(emu, ecs_instance_info, status="Running", name="st0-*")["instances"]
    assert [i["instance_id"] for i in stopped] == [made[0]]
    assert [i["instance_id"] for i in running] == [made[1]]
    assert json.dumps(stopped)  # plain data, serialisable as a module result


def test_a_new_instance_that_fails_to_start_fails_the_task(emu):
    emu.set_faults(lifecycle={"ecs.instance.start": 1.0})
    result = run(emu, ecs_instance, **TEE)
    assert result["failed"] and result["error"]["code"] == "WaitFailed"
    assert "went to Stopped instead of Running" in result["msg"] and result["actions"] == ["create"]
    # the instance exists (stopped): a re-run with state=running finds it and starts it
    emu.clear_faults()
    again = run(emu, ecs_instance, **TEE)
    assert again["actions"] == ["start"] and again["instance"]["status"] == "Running"
    assert len(all_instances(emu)) == 1


def test_stock_out_lists_the_zones_with_stock(emu):
    emu.set_faults(stockouts=[["cn-beijing-l", "ecs.g8i.xlarge"], ["cn-beijing-h", "ecs.g8i.xlarge"]])
    g8i = dict(TEE)
    g8i["instance_type"] = "ecs.g8i.xlarge"
    result = run(emu, ecs_instance, **g8i)
    assert result["failed"]
    assert result["msg"] == ("instance_type ecs.g8i.xlarge has no stock in zone cn-beijing-l (SoldOut, WithoutStock); "
                             "zones of cn-beijing with stock: cn-beijing-i, cn-beijing-k")
    assert [r for r in log(emu) if r["mutating"]] == []
