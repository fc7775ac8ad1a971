# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parts of the ack_* modules: request bodies, desired views, validation, secret handling, files."""

from __future__ import annotations

import os
import stat

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.confidential_ai.ack.plugins.module_utils import ack
from ansible_collections.confidential_ai.ack.plugins.modules import (
    ack_cluster,
    ack_kubeconfig,
    ack_node_attach,
    ack_node_attach_script,
    ack_node_pool,
)


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

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", leave)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail)
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_REGION_ID", "ALIBABA_CLOUD_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_CONFIG_FILE", "/nonexistent/aliyun.json")
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")


CREDS = {"access_key": "ak", "secret_key": "sk", "region": "cn-beijing", "endpoints": {"cs": "127.0.0.1:9", "ecs": "127.0.0.1:9"},
         "protocol": "http", "max_attempts": 1, "api_timeout": 1}


def run(module, args):
    """Run a module's main() with ``args``; return what it exited or failed with."""
    with patch_module_args(dict(CREDS, **args)):
        with pytest.raises(Exited) as info:
            module.main()
    return info.value.kwargs


def params(spec_fn, **overrides):
    """The module's parameters with defaults, as AnsibleModule would fill them."""
    with patch_module_args(overrides):
        module = basic.AnsibleModule(argument_spec=spec_fn(), supports_check_mode=True)
    return module.params


# -- ack_cluster ------------------------------------------------------------------------------------

class FakeModule:
    region = "cn-beijing"

    def __init__(self, p):
        self.params = p


def test_cluster_create_body():
    p = params(ack_cluster.argument_spec, name="vllm-tee", vpc_id="vpc-1234", vswitch_ids=["vsw-1111"], pod_cidr="172.20.0.0/16",
               node_cidr_mask=26, tags={"project": "vllm"}, addons=[{"name": "csi-plugin"}])
    body = ack_cluster.create_body(FakeModule(p), "vpc-1234")
    assert body["cluster_type"] == "ManagedKubernetes" and body["profile"] == "Default" and body["cluster_spec"] == "ack.pro.small"
    assert body["vpcid"] == "vpc-1234" and body["container_cidr"] == "172.20.0.0/16" and body["node_cidr_mask"] == "26"
    assert body["addons"] == [{"name": "flannel"}, {"name": "csi-plugin"}]   # the network plugin first, added once
    assert body["tags"] == [{"key": "project", "value": "vllm"}]
    assert body["deletion_protection"] is False and body["endpoint_public_access"] is False and body["snat_entry"] is False
    assert "service_cidr" not in body and "kubernetes_version" not in body   # unset options are not sent


def test_cluster_create_body_terway_keeps_a_given_plugin_entry():
    p = params(ack_cluster.argument_spec, name="x", network_plugin="terway-eniip", pod_vswitch_ids=["vsw-2222"],
               addons=[{"name": "terway-eniip", "config": "{}"}])
    body = ack_cluster.create_body(FakeModule(p), "vpc-1234")
    assert body["addons"] == [{"name": "terway-eniip", "config": "{}"}] and body["pod_vswitch_ids"] == ["vsw-2222"]
    assert "container_cidr" not in body


def test_cluster_predicted_in_check_mode():
    p = params(ack_cluster.argument_spec, name="x", pod_cidr="172.20.0.0/16")
    body = ack_cluster.create_body(FakeModule(p), "vpc-1234")
    cluster = ack_cluster.predicted(FakeModule(p), body)
    assert cluster["cluster_id"] is None and cluster["service_cidr"] == ack.DEFAULT_SERVICE_CIDR and cluster["addons"] == ["flannel"]


@pytest.mark.parametrize("args, fragment", [
    ({"name": "x", "pod_cidr": "300.1.0.0/16"}, "pod_cidr"),
    ({"name": "x", "pod_cidr": "172.20.0.0/16", "service_cidr": "172.20.0.0/20"}, "overlaps"),
    ({"name": "x", "network_plugin": "terway-eniip", "pod_cidr": "172.20.0.0/16"}, "pod_cidr is for Flannel"),
    ({"name": "x", "wait_timeout": 0}, "wait_timeout"),
    ({"name": "x", "vswitch_ids": []}, "vswitch_ids"),
    ({"cluster_id": "nope"}, "cluster_id"),
])
def test_cluster_validation_fails_before_any_call(args, fragment):
    result = run(ack_cluster, args)
    assert result["failed"] and fragment in result["msg"]


# -- ack_node_pool ------------------------------------------------------------------------------------

def pool_params(**kw):
    base = dict(cluster_id="c" + "1" * 32, name="gpu-tee", vswitch_ids=["vsw-llll"], instance_types=["ecs.gn8v-tee.4xlarge"])
    base.update(kw)
    return params(ack_node_pool.argument_spec, **base)


def test_pool_defaults_follow_the_deployment_guide():
    body = ack_node_pool.create_body(pool_params())
    sg = body["scaling_group"]
    assert sg["system_disk_size"] == 100 and sg["desired_size"] == 0 and sg["image_type"] == "AliyunLinux3Security"
    assert sg["instance_charge_type"] == "PostPaid" and "login_password" not in sg
    assert body["auto_scaling"] == {"enable": False} and body["tee_config"] == {"tee_enable": False}
    assert body["management"] == {"enable": False} and body["nodepool_info"] == {"name": "gpu-tee", "type": "ess"}
    assert body["kubernetes_config"]["labels"] == [{"key": ack.NVIDIA_DRIVER_LABEL, "value": "550.144.03"}]
    assert body["kubernetes_config"]["taints"] == []


def test_pool_labels_merge_the_driver_label_and_can_drop_it():
    assert ack_node_pool.effective_labels(pool_params(labels={"workload": "vllm"})) == {
        "workload": "vllm", ack.NVIDIA_DRIVER_LABEL: "550.144.03"}
    assert ack_node_pool.effective_labels(pool_params(labels={"a": "b"}, nvidia_driver_version="")) == {"a": "b"}


def test_pool_desired_view_leaves_unset_options_unmanaged():
    view = ack_node_pool.desired_view(pool_params())
    assert view["desired_size"] is None and view["taints"] is None and view["tags"] is None and view["name"] is None
    view = ack_node_pool.desired_view(pool_params(nodepool_id="np" + "2" * 32, desired_size=1, taints=[{"key": "k"}]))
    assert view["name"] == "gpu-tee" and view["desired_size"] == 1
    assert view["taints"] == [{"key": "k", "value": "", "effect": "NoSchedule"}]


@pytest.mark.parametrize("args, fragment", [
    ({"system_disk_size": 99}, "system_disk_size must be at least 100 GiB (got 99)"),
    ({"desired_size": -3}, "desired_size"),
    ({"instance_types": ["g7.xlarge"]}, "instance_types"),
    ({"labels": {"Bad/Prefix/x": "1"}}, "labels"),
    ({"data_disks": [{"size": 5}]}, "data_disks[0].size"),
    ({"key_pair": "kp", "login_password": "Passw0rd-x"}, "mutually exclusive"),
])
def test_pool_validation(args, fragment):
    base = dict(cluster_id="c" + "1" * 32, name="gpu-tee")
    base.update(args)
    result = run(ack_node_pool, base)
    assert result["failed"] and fragment in result["msg"]


def test_secrets_are_no_log():
    assert ack_node_pool.argument_spec()["login_password"]["no_log"] is True
    result = run(ack_node_attach, dict(cluster_id="c" + "1" * 32, nodepool_id="np" + "1" * 32, instance_ids=["i-1234"],
                                       password="short"))
    assert result["failed"] and "password must be 8 to 30 characters" in result["msg"] and "short" not in result["msg"].split(":")[0]


# -- ack_node_attach_script ------------------------------------------------------------------------------

COMMAND = "curl -fsSL http://127.0.0.1:1/_emulator/attach_node.sh | bash -s -- --openapi-token 0123456789abcdef --ess true"


def test_secrets_of_the_attach_command():
    assert ack_node_attach_script.secrets_of(COMMAND) == ["0123456789abcdef"]
    assert ack_node_attach_script.secrets_of("bash x.sh --openapi-token='abc123' --x") == ["abc123"]
    assert ack_node_attach_script.secrets_of("no token here") == []


def test_script_is_private_and_passes_arguments(tmp_path):
    path = tmp_path / "attach.sh"
    text = ack_node_attach_script.script_text(COMMAND, "c1", "np1")
    ack.write_private(str(path), text, 0o700)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    body = path.read_text()
    assert body.startswith("#!/bin/bash\n") and 'true "$@"\n' in body and "node pool np1 of cluster c1" in body
    assert [p.name for p in tmp_path.iterdir()] == ["attach.sh"]   # no temporary file left


@pytest.mark.parametrize("args, fragment", [
    ({"expires_in": 30}, "expires_in"),
    ({"expired": 1}, "expired"),
    ({"dest": "/nonexistent-dir-for-test/attach.sh"}, "dest"),
    ({"nodepool_id": "pool"}, "nodepool_id"),
])
def test_attach_script_validation(args, fragment):
    base = dict(cluster_id="c" + "1" * 32, nodepool_id="np" + "1" * 32)
    base.update(args)
    result = run(ack_node_attach_script, base)
    assert result["failed"] and fragment in result["msg"]


def test_attach_validation():
    result = run(ack_node_attach, dict(cluster_id="c" + "1" * 32, nodepool_id="np" + "1" * 32, instance_ids=["i-1234", "host-1"]))
    assert result["failed"] and "instance_ids 'host-1'" in result["msg"] and "i-1234" not in result["msg"]


# -- ack_kubeconfig ------------------------------------------------------------------------------------------

KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    server: https://203.0.113.5:6443
    certificate-authority-data: Q0E=
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: "user-1"
  name: ctx-1
current-context: ctx-1
kind: Config
users:
- name: "user-1"
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
# expires 2029-01-01T00:00:00Z
"""


def test_kubeconfig_identity_and_credentials():
    parsed = ack_kubeconfig.parse(KUBECONFIG)
    assert ack_kubeconfig.identity(parsed) == {"server": "https://203.0.113.5:6443", "current_context": "ctx-1", "users": ["user-1"]}
    assert sorted(ack_kubeconfig.credentials_of(parsed)) == ["Q0VSVA==", "S0VZ"]
    assert ack_kubeconfig.parse("{not: yaml: at all") is None
    assert ack_kubeconfig.parse("- a list") is None


def test_kubeconfig_comparison_ignores_comments_and_layout():
    rewritten = KUBECONFIG.replace("# expires 2029-01-01T00:00:00Z", "# expires 2030-01-01T00:00:00Z").replace('"user-1"', "user-1")
    assert ack_kubeconfig.parse(rewritten) == ack_kubeconfig.parse(KUBECONFIG)


def test_kubeconfig_write_private(tmp_path):
    path = tmp_path / "config"
    path.write_text("old")
    os.chmod(path, 0o644)
    ack.write_private(str(path), KUBECONFIG)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_text() == KUBECONFIG


@pytest.mark.parametrize("args, fragment", [
    ({"dest": "/nonexistent-dir-for-test/config"}, "create_parent_dirs"),
    ({"dest": "/tmp/x-config", "temporary_duration_minutes": 14}, "temporary_duration_minutes"),
    ({"dest": "/tmp"}, "is a directory"),
])
def test_kubeconfig_validation(args, fragment):
    result = run(ack_kubeconfig, dict(cluster_id="c" + "1" * 32, **args))
    assert result["failed"] and fragment in result["msg"]


def test_kubeconfig_absent_in_check_mode_keeps_the_file(tmp_path):
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    result = run(ack_kubeconfig, dict(cluster_id="c" + "1" * 32, dest=str(path), state="absent", _ansible_check_mode=True))
    assert result["changed"] and path.exists()
    result = run(ack_kubeconfig, dict(cluster_id="c" + "1" * 32, dest=str(path), state="absent"))
    assert result["changed"] and not path.exists()
    result = run(ack_kubeconfig, dict(cluster_id="c" + "1" * 32, dest=str(path), state="absent"))
    assert not result["changed"]
