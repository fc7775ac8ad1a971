"""The emulator as a process: start-up time, endpoints file, loopback only, clean stop, persistence, request log."""

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error

import pytest
from alibabacloud_cs20151215 import models as cm
from alibabacloud_ecs20140526 import models as em
from alibabacloud_tea_openapi.exceptions import ClientException

from sandbox.alicloud.testing import REPO_ROOT, EmulatorProcess, cs_client, ecs_client

REGION = "cn-beijing"


def test_startup_endpoints_and_clean_stop(tmp_path):
    emu = EmulatorProcess(state_dir=str(tmp_path / "state"))
    emu.start()
    try:
        assert emu.startup_seconds < 2.0, "start-up took %.2f s" % emu.startup_seconds
        with open(tmp_path / "state" / "endpoints.json", encoding="utf-8") as f:
            on_disk = json.load(f)
        assert on_disk == emu.endpoints
        assert set(on_disk) == {"api_endpoint", "oss_endpoint", "admin_url", "region", "pid"}
        assert on_disk["api_endpoint"].startswith("127.0.0.1:") and on_disk["region"] == REGION
        assert on_disk["oss_endpoint"].startswith("http://127.0.0.1:")
        assert on_disk["admin_url"] == "http://%s/_emulator" % on_disk["api_endpoint"]
        assert on_disk["pid"] == emu.proc.pid
        assert emu.health()["status"] == "ok"
        mode = stat.S_IMODE(os.stat(tmp_path / "state" / "credentials.json").st_mode)
        assert mode == 0o600
        ak, sk = emu.static_key
        sts_ak, sts_sk, token = emu.sts_key
        assert ak != sts_ak and sk and sts_sk and token
    finally:
        code = emu.stop()
    assert code == 0


def test_refuses_non_loopback_host(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sandbox.alicloud", "serve", "--state-dir", str(tmp_path), "--host", "0.0.0.0"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=20, check=False)
    assert proc.returncode != 0 and "non-loopback" in proc.stderr
    assert not (tmp_path / "endpoints.json").exists()


def test_state_survives_restart(tmp_path):
    emu = EmulatorProcess(state_dir=str(tmp_path / "state"))
    emu.start()
    try:
        ecs = ecs_client(emu)
        req = em.RunInstancesRequest(region_id=REGION, instance_type="ecs.g8i.xlarge", image_family="acs:alibaba_cloud_linux_3_2104_lts_x64",
                                     v_switch_id="vsw-sbx00000000000000000h", security_group_id="sg-sbx0000000000000000001",
                                     client_token="persist-1")
        iid = ecs.run_instances(req).body.instance_id_sets.instance_id_set[0]
        cs = cs_client(emu)
        cid = cs.create_cluster(cm.CreateClusterRequest(name="persist", region_id=REGION, cluster_type="ManagedKubernetes",
                                                        cluster_spec="ack.pro.small", vswitch_ids=["vsw-sbx00000000000000000l"])).body.cluster_id
        keys = (emu.static_key, emu.sts_key)
        emu.restart()
        assert (emu.static_key, emu.sts_key) == keys
        ecs, cs = ecs_client(emu), cs_client(emu)
        inst = ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.instances.instance
        assert [i.instance_id for i in inst] == [iid] and inst[0].status == "Running"
        assert ecs.run_instances(req).body.instance_id_sets.instance_id_set == [iid]  # the ClientToken is remembered
        assert cs.describe_cluster_detail(cid).body.state == "running"
        emu.reset()
        assert ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.total_count == 0
        assert cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters == []
    finally:
        emu.stop()


def test_request_log_has_no_secrets(alicloud, ecs):
    ecs.describe_regions(em.DescribeRegionsRequest())
    ecs_client(alicloud, sts=True).describe_regions(em.DescribeRegionsRequest())
    with open(os.path.join(alicloud.state_dir, "requests.jsonl"), encoding="utf-8") as f:
        text = f.read()
    sk = alicloud.static_key[1]
    sts_ak, sts_sk, token = alicloud.sts_key
    for secret in (sk, sts_sk, token):
        assert secret not in text
    entries = alicloud.requests()
    last = entries[-1]
    assert set(last) == {"time", "service", "action", "mutating", "status", "code", "request_id", "fault"}
    assert (last["service"], last["action"], last["mutating"], last["status"]) == ("ecs", "DescribeRegions", False, 200)
    assert "Signature=" not in text and "ACS3-HMAC" not in text and "Credential=" not in text and sts_ak not in text
    assert alicloud.requests(since=last["time"])[-1] == last


def test_config_files_read_at_start(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "fault-config").write_text(json.dumps({"rates": {"ecs:DescribeRegions": {"http503": 1.0}}}), encoding="utf-8")
    (state / "catalog.json").write_text(json.dumps({"stock": {"cn-beijing-l/ecs.gn8v-tee.4xlarge": 2}}), encoding="utf-8")
    extra = tmp_path / "faults.json"
    extra.write_text(json.dumps({"quota": {"CreateCluster": "QuotaExceeded.Cluster"}, "seed": 5}), encoding="utf-8")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": {"LTAIextra": {"secret": "extra-secret"}}}), encoding="utf-8")
    with EmulatorProcess(state_dir=str(state), fault_config=str(extra), extra_args=["--credentials", str(keys)]) as emu:
        extra_client = ecs_client(emu, access_key_id="LTAIextra", access_key_secret="extra-secret")
        assert extra_client.describe_zones(em.DescribeZonesRequest(region_id=REGION)).body.zones.zone
        snap = emu.admin("GET", "/faults")
        assert snap["rates"] == {"ecs:DescribeRegions": {"http503": 1.0}}
        assert snap["quota"] == {"CreateCluster": "QuotaExceeded.Cluster"} and snap["seed"] == 5
        # catalog.json: only two gn8v-tee.4xlarge left in zone L
        ecs = ecs_client(emu)
        req = em.RunInstancesRequest(region_id=REGION, instance_type="ecs.gn8v-tee.4xlarge", amount=3, min_amount=1,
                                     image_family="acs:alibaba_cloud_linux_3_2104_lts_x64_uefi",
                                     v_switch_id="vsw-sbx00000000000000000l", security_group_id="sg-sbx0000000000000000001")
        assert len(ecs.run_instances(req).body.instance_id_sets.instance_id_set) == 2  # MinAmount: as many as stock allows
        req.min_amount = None
        req.amount = 1
        with pytest.raises(ClientException) as info:
            ecs.run_instances(req)
        assert info.value.code == "OperationDenied.NoStock"


def test_reset_keeps_the_request_log_unless_asked(alicloud, ecs):
    ecs.describe_regions(em.DescribeRegionsRequest())
    logged = alicloud.requests()
    assert logged
    assert alicloud.reset() == {"status": "reset", "requests_cleared": False}
    assert alicloud.requests()[:len(logged)] == logged  # the default is unchanged: the log stays
    iid = ecs.run_instances(em.RunInstancesRequest(
        region_id=REGION, instance_type="ecs.g7.xlarge", image_family="acs:alibaba_cloud_linux_3_2104_lts_x64",
        v_switch_id="vsw-sbx00000000000000000h", security_group_id="sg-sbx0000000000000000001")).body.instance_id_sets.instance_id_set[0]
    assert alicloud.reset(requests=True) == {"status": "reset", "requests_cleared": True}
    assert alicloud.requests() == []
    assert ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([iid]))).body.total_count == 0
    ecs.describe_regions(em.DescribeRegionsRequest())
    assert [(e["action"], e["status"]) for e in alicloud.requests()] == [("DescribeInstances", 200), ("DescribeRegions", 200)]
    for bad in ({"requests": "yes"}, {"request": True}):
        with pytest.raises(urllib.error.HTTPError) as err:
            alicloud.admin("POST", "/reset", bad)
        assert err.value.code == 400
    assert len(alicloud.requests()) == 2  # a refused reset changes nothing


def test_exits_when_the_process_that_started_it_is_gone(tmp_path):
    # ansible-test units forks a child per test and ends it with os._exit: no fixture teardown runs.
    # The middle process here does the same; the emulator it started must stop by itself.
    state = tmp_path / "state"
    script = (
        "import os, sys\n"
        "from sandbox.alicloud.testing import EmulatorProcess\n"
        "emu = EmulatorProcess(state_dir=sys.argv[1]).start()\n"
        "print(emu.proc.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    middle = subprocess.run([sys.executable, "-c", script, str(state)], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=30, check=True)
    pid = int(middle.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail("the emulator (pid %d) outlived its parent by 10 s" % pid)


def test_a_restart_resumes_lifecycles_but_forgets_admin_clock_and_faults(tmp_path):
    # clock scale 1: an ACK Pro cluster takes the real 540 s, so it is certainly still being created at the restart
    emu = EmulatorProcess(state_dir=str(tmp_path / "state"), clock_scale=1.0)
    emu.start()
    try:
        cs = cs_client(emu)
        created = cs.create_cluster(cm.CreateClusterRequest(name="in-flight", region_id=REGION, cluster_type="ManagedKubernetes",
                                                            cluster_spec="ack.pro.small", vswitch_ids=["vsw-sbx00000000000000000l"])).body
        assert cs.describe_cluster_detail(created.cluster_id).body.state == "initial"
        assert cs.describe_task_info(created.task_id).body.state == "running"
        emu.set_clock(2.0, durations={"cs.task": 1.0})
        emu.set_faults(rates={"ecs:DescribeZones": {"http503": 1.0}}, seed=9)

        emu.restart()  # same command line: --clock-scale 1.0, no fault config
        clock = emu.admin("GET", "/clock")
        assert clock["scale"] == 1.0 and clock["durations"]["cs.task"] == 5.0  # the admin-set clock is gone
        faults = emu.admin("GET", "/faults")
        assert (faults["rates"], faults["seed"]) == ({}, 0)  # so are the admin-set faults
        assert ecs_client(emu).describe_zones(em.DescribeZonesRequest(region_id=REGION)).body.zones.zone
        cs = cs_client(emu)
        assert cs.describe_cluster_detail(created.cluster_id).body.state == "initial"  # resumed, not restarted or lost
        assert cs.describe_task_info(created.task_id).body.state == "running"

        emu.clock_scale = 0.0005  # 0.27 s: measured from the creation time kept in the state, so already over
        emu.restart()
        cs = cs_client(emu)
        assert cs.describe_cluster_detail(created.cluster_id).body.state == "running"
        assert cs.describe_task_info(created.task_id).body.state == "success"
        assert [c.cluster_id for c in cs.describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters] == [created.cluster_id]
    finally:
        emu.stop()
