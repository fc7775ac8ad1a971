"""trustee_policy and trustee_info through ansible-playbook against the Trustee stand-in (test double)."""

import base64
import json
import os

from conftest import http, mint_jwt, run_playbook

RESTRICTIVE = """package policy

default allow = false

allow {
    input.tee == "tdx"
    data["resource-path"] == "default/aliyun/model-decryption-key"
}
"""

POLICY_LADDER = r"""
- name: Bad attestation policy id
  confidential_ai.ack.trustee_policy:
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    attestation_policies:
      - id: "../etc"
        policy: "package policy\n"
  register: bad_id
  ignore_errors: true
- name: Public key given as admin key
  confidential_ai.ack.trustee_policy:
    url: "{{ url }}"
    admin_key: "{{ public_pem }}"
    resource_policy: "{{ restrictive }}"
  register: bad_key
  ignore_errors: true
- name: Bad inputs failed clearly
  ansible.builtin.assert:
    that:
      - bad_id.failed and 'attestation_policies[0].id' in bad_id.msg
      - bad_key.failed and bad_key.msg is search('^admin_key')

- name: Check mode
  confidential_ai.ack.trustee_policy: &set
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    resource_policy: "{{ restrictive }}"
    attestation_policies:
      - id: default
        policy: "{{ as_policy }}"
      - id: gpu
        policy: "{{ as_policy }}"
  check_mode: true
  diff: true
  register: p_check
- name: Read back after check mode
  confidential_ai.ack.trustee_info:
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    gather: [resource_policy]
  register: i_check
- name: Set
  confidential_ai.ack.trustee_policy: *set
  register: p_set
- name: Again
  confidential_ai.ack.trustee_policy: *set
  register: p_noop
- name: Change one attestation policy, delete another
  confidential_ai.ack.trustee_policy:
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    attestation_policies:
      - id: default
        policy: "{{ as_policy }}# v2\n"
      - id: gpu
        state: absent
  register: p_change
- name: Delete again
  confidential_ai.ack.trustee_policy:
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    attestation_policies:
      - id: gpu
        state: absent
  register: p_del_again
- name: Info
  confidential_ai.ack.trustee_info:
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    gather: [health, resource_policy, attestation_policies]
  register: info
- name: Results
  ansible.builtin.assert:
    that:
      - p_check.changed
      - p_check.resource_policy.changed
      - p_check.diff | length == 3
      - "'default allow = true' in i_check.resource_policy"
      - p_set.changed
      - not p_noop.changed
      - p_noop.attestation_policies | map(attribute='changed') | list == [false, false]
      - p_change.changed
      - p_change.attestation_policies | map(attribute='changed') | list == [true, true]
      - not p_del_again.changed
      - info.resource_policy == restrictive
      - "'gpu' not in info.attestation_policies"
      - "'default' in info.attestation_policies"
      - info.healthy
"""


def test_policy_ladder(stack, tmp_path):
    with open(stack.admin_pub_path, encoding="ascii") as handle:
        public_pem = handle.read()
    as_policy = "package policy\n\ndefault allow = true\n"
    result = run_playbook(str(tmp_path), POLICY_LADDER, {
        "url": stack.gateway_url, "admin_key_path": stack.admin_key_path, "restrictive": RESTRICTIVE,
        "as_policy": as_policy, "public_pem": public_pem})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    with open(stack.kbs_policy, encoding="utf-8") as handle:
        assert handle.read() == RESTRICTIVE
    status, body, _h = http("GET", stack.gateway_url + "/api/kbs/v0/resource-policy", headers={"Authorization": "Bearer " + mint_jwt(stack.admin_key)})
    assert status == 200 and base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)).decode() == RESTRICTIVE
    with open(os.path.join(stack.as_policy_dir, "opa", "default.rego"), encoding="utf-8") as handle:
        assert handle.read() == as_policy + "# v2\n"
    assert not os.path.exists(os.path.join(stack.as_policy_dir, "opa", "gpu.rego"))


def test_info_health_resources_audit(stack_factory, tmp_path):
    stack = stack_factory()
    token = mint_jwt(stack.admin_key)
    assert http("POST", stack.gateway_url + "/api/kbs/v0/resource/default/aliyun/model-decryption-key", b"k", {"Authorization": "Bearer " + token})[0] == 200
    assert http("GET", stack.gateway_url + "/api/kbs/v0/resource/default/aliyun/model-decryption-key")[0] == 401
    tasks = r"""
- name: Everything
  confidential_ai.ack.trustee_info:
    url: "{{ url }}"
    gather: [health, resources, audit, attestation_policies]
    audit_limit: 1
  register: info
- name: Dump
  ansible.builtin.copy:
    content: "{{ info | to_json }}"
    dest: "{{ out }}"
"""
    out = tmp_path / "info.json"
    assert run_playbook(str(tmp_path), tasks, {"url": stack.gateway_url, "out": str(out)}).returncode == 0
    info = json.loads(out.read_text())
    assert info["healthy"] is True and info["unhealthy"] == []
    assert info["resources"] == ["default/aliyun/model-decryption-key"]
    assert info["changed"] is False
    resources_audit = info["audit"]["resources"]
    assert resources_audit["total"] == 2 and len(resources_audit["data"]) == 1
    assert resources_audit["data"][0]["method"] == "GET" and resources_audit["data"][0]["status"] == 401
    assert "default" in info["attestation_policies"]

    stack.procs["rvps"].stop()
    assert run_playbook(str(tmp_path), tasks, {"url": stack.gateway_url, "out": str(out)}).returncode == 0
    info = json.loads(out.read_text())
    assert info["healthy"] is False and info["unhealthy"] == ["rvps"]
    assert info["health"]["rvps"]["status"] == "error"
