"""The trustee role's protections and the switches that weaken them, without a Trustee host.

ansible-playbook runs the role's preflight (the warnings), renders the role's configuration
templates with the role's own variables, runs the version lock tasks against a scratch dnf.conf,
and computes the firewalld rules, all on localhost. Each switch must produce its warning and the
weakened configuration; with the defaults there is no warning and the configuration is hardened.
"""

import json
import os
import re

import pytest

from conftest import REPO_ROOT, run_playbook

TEMPLATES = os.path.join(REPO_ROOT, "roles", "trustee", "templates")
RENDERED = ["kbs-config.toml", "gateway.yml", "resource-policy.rego", "attestation-policy.rego",
            "dropin-as.conf", "dropin-as-restful.conf", "dropin-kbs.conf", "sgx_default_qcnl.conf"]
SWITCHES = ["trustee_insecure_accept_unsigned_tokens", "trustee_insecure_expose_internal_ports", "trustee_insecure_http_gateway",
            "trustee_insecure_allow_all_resource_policy", "trustee_insecure_debug_logging", "trustee_insecure_skip_gpu_attestation",
            "trustee_insecure_no_version_lock", "trustee_insecure_allow_sample_model_key"]
SAMPLE_KEY = "0Bn4Q1wwY9fN3P"  # printed in the public documentation

TASKS = """
- name: Preflight of the role
  ansible.builtin.include_role:
    name: confidential_ai.ack.trustee
    tasks_from: preflight
    public: true
- name: Render the configuration the role writes
  ansible.builtin.template:
    src: "{{ templates }}/{{ item }}.j2"
    dest: "{{ out }}/{{ item }}"
    mode: "0644"
  loop: "{{ rendered }}"
- name: The version lock tasks, against a scratch dnf.conf
  ansible.builtin.include_role:
    name: confidential_ai.ack.trustee
    tasks_from: version_lock
- name: The firewalld rules the role would add and remove
  ansible.builtin.copy:
    content: "{{ {'wanted': _trustee_gateway_rich_rules, 'stale': _trustee_firewall_stale_rules, 'services': _trustee_firewall_services} | to_json }}"
    dest: "{{ out }}/firewall.json"
    mode: "0644"
  vars:
    _trustee_firewall:
      stdout_lines: "{{ firewall_listing }}"
"""

FIREWALL_LISTING = [
    'rule family="ipv4" source address="10.0.0.0/16" port port="8081" protocol="tcp" accept',
    'rule family="ipv4" source address="0.0.0.0/0" port port="8081" protocol="tcp" accept',
    'rule family="ipv4" source address="192.0.2.0/24" port port="22" protocol="tcp" accept',
    "service trustee-open",
]


def _run(tmp_path, **overrides):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dnf.conf").write_text("[main]\ngpgcheck=1\n")
    extra = {
        "templates": TEMPLATES, "out": str(out), "rendered": RENDERED, "firewall_listing": FIREWALL_LISTING,
        "trustee_admin_key_generate": True, "trustee_dnf_backend": "dnf4", "trustee_model_key": "",
        "_trustee_dnf_conf": str(out / "dnf.conf"),
    }
    extra.update(overrides)
    result = run_playbook(str(tmp_path), TASKS, extra)
    files = {}
    if result.returncode == 0:
        files = {name: (out / name).read_text() for name in RENDERED + ["dnf.conf", "firewall.json"]}
    return result, files


def _warned(stdout):
    return set(re.findall(r"WARNING: .*?\(because (trustee_\w+) is true\)", stdout, re.S))


def test_defaults_are_hardened_and_silent(tmp_path):
    result, files = _run(tmp_path, trustee_gateway_allowed_cidrs=["10.0.0.0/16", "fd00::/64"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout
    assert re.search(r"^insecure_key = false$", files["kbs-config.toml"], re.M)
    assert re.search(r'^trusted_certs_paths = \["/etc/trustee/cai-ack/as-ca.pem"\]$', files["kbs-config.toml"], re.M)
    assert 'sockets = ["127.0.0.1:8080"]' in files["kbs-config.toml"]
    assert "insecure_http: false" in files["gateway.yml"] and 'level: "info"' in files["gateway.yml"]
    assert "default allow = false" in files["resource-policy.rego"]
    assert 'claims["tdx.nvidia_gpu.0.cc_enabled"] == true' in files["resource-policy.rego"]
    assert "gpu_verified" in files["attestation-policy.rego"]
    for dropin in ("dropin-as.conf", "dropin-as-restful.conf"):
        assert "--socket 127.0.0.1:" in files[dropin]
    assert all("RUST_LOG=info" in files[d] for d in ("dropin-as.conf", "dropin-as-restful.conf", "dropin-kbs.conf"))
    assert files["dnf.conf"] == "[main]\nexcludepkgs=trustee*\ngpgcheck=1\n"
    # no alicloud_region in the inventory: the PCCS of cn-beijing
    assert "PCCS_URL=https://sgx-dcap-server-vpc.cn-beijing.aliyuncs.com/sgx/certification/v4/\n" in files["sgx_default_qcnl.conf"]
    firewall = json.loads(files["firewall.json"])
    assert firewall["wanted"] == [
        'rule family="ipv4" source address="10.0.0.0/16" port port="8081" protocol="tcp" accept',
        'rule family="ipv6" source address="fd00::/64" port port="8081" protocol="tcp" accept']
    # the open-to-all rule for 8081 goes; the wanted one and the rule for another port stay
    assert firewall["stale"] == ['rule family="ipv4" source address="0.0.0.0/0" port port="8081" protocol="tcp" accept']
    assert firewall["services"] == ["trustee-open"]


def test_every_switch_warns_and_weakens(tmp_path):
    switches = {name: True for name in SWITCHES}
    result, files = _run(tmp_path, trustee_model_key=SAMPLE_KEY, _trustee_firewalld_running=True, **switches)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _warned(result.stdout) == set(SWITCHES)
    assert "WARNING: firewalld is running and trustee_gateway_allowed_cidrs is empty" in result.stdout
    assert re.search(r"^insecure_key = true$", files["kbs-config.toml"], re.M)
    assert "trusted_certs_paths" not in files["kbs-config.toml"]
    assert 'sockets = ["0.0.0.0:8080"]' in files["kbs-config.toml"]
    assert "insecure_http: true" in files["gateway.yml"] and 'level: "debug"' in files["gateway.yml"]
    assert "default allow = true" in files["resource-policy.rego"]
    assert "nvidia_gpu" not in files["attestation-policy.rego"]
    for dropin in ("dropin-as.conf", "dropin-as-restful.conf"):
        assert "--socket 0.0.0.0:" in files[dropin]
    assert "RUST_LOG=debug" in files["dropin-kbs.conf"]
    assert "excludepkgs" not in files["dnf.conf"]


def test_skipping_gpu_attestation_alone(tmp_path):
    result, files = _run(tmp_path, trustee_insecure_skip_gpu_attestation=True, alicloud_region="cn-shanghai")
    assert result.returncode == 0, result.stdout + result.stderr
    # the inventory-wide region selects the PCCS
    assert "PCCS_URL=https://sgx-dcap-server-vpc.cn-shanghai.aliyuncs.com/sgx/certification/v4/\n" in files["sgx_default_qcnl.conf"]
    assert _warned(result.stdout) == {"trustee_insecure_skip_gpu_attestation"}
    # still deny by default, still TDX and policy "default", but no GPU claim is required
    assert "default allow = false" in files["resource-policy.rego"] and 'input.tee == "tdx"' in files["resource-policy.rego"]
    assert "nvidia_gpu" not in files["resource-policy.rego"]
    assert "nvidia_gpu" not in files["attestation-policy.rego"] and "tdx_verified" in files["attestation-policy.rego"]


@pytest.mark.parametrize("overrides, message", [
    ({"trustee_model_key": SAMPLE_KEY}, "trustee_insecure_allow_sample_model_key=true"),
    ({"trustee_version_lock": False}, "Set here: trustee_version_lock."),
    ({"trustee_require_gpu_attestation": False}, "trustee_insecure_skip_gpu_attestation=true"),
])
def test_refused_inputs(tmp_path, overrides, message):
    result, _files = _run(tmp_path, **overrides)
    assert result.returncode != 0
    assert message in result.stdout
    assert SAMPLE_KEY not in result.stdout
