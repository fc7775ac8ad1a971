#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: trustee_info
short_description: Read the health, resources, policies and audit records of a Trustee server
version_added: 0.1.0
description:
  - Reads the state of a Trustee 1.5.2 server through its gateway API.
  - The health of the four components (gateway, kbs, as, rvps) comes from
    C(/api/services-health), which always answers HTTP 200; the module reads the body.
  - Trustee 1.5.2 has no version endpoint. O(gather=package) reads the installed C(trustee)
    package version with C(rpm) on the host where the module runs (run it on the Trustee host).
author:
  - confidential_ai.ack contributors (@confidential-ai)
extends_documentation_fragment:
  - confidential_ai.ack.trustee
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.INFO_MODULE
options:
  gather:
    description:
      - What to read. V(resource_policy) needs the admin key.
      - V(audit) reads the most recent attestation and resource audit records (gateway memory, 3 days, 1000 rows).
    type: list
    elements: str
    choices: [health, resources, resource_policy, attestation_policies, audit, package]
    default: [health, resources]
  audit_limit:
    description:
      - How many of the most recent records of each audit kind to return.
    type: int
    default: 20
notes:
  - O(admin_key) or O(admin_key_path) is only needed for O(gather=resource_policy); O(url) is not needed when O(gather) is only V(package).
  - Tested against the Trustee 1.5.2 stand-in of this collection's test suite, not against a real Trustee.
seealso:
  - module: confidential_ai.ack.trustee_resource
  - module: confidential_ai.ack.trustee_policy
"""

EXAMPLES = r"""
- name: Wait until all four Trustee components report ok
  confidential_ai.ack.trustee_info:
    url: https://trustee.example.com:8081
    ca_path: /etc/pki/trustee-ca.pem
  delegate_to: localhost
  register: trustee
  until: trustee.healthy
  retries: 15
  delay: 2

- name: Check that the sidecar fetched the model key
  confidential_ai.ack.trustee_info:
    url: https://trustee.example.com:8081
    gather: [audit]
    audit_limit: 50
  delegate_to: localhost
  register: trustee_audit

- name: Installed package version (on the Trustee host)
  confidential_ai.ack.trustee_info:
    gather: [package]
  register: trustee_pkg
"""

RETURN = r"""
health:
  description: The body of C(/api/services-health); each component has C(status) (V(ok) or V(error)), C(timestamp), and C(message) on error.
  returned: when V(health) is gathered
  type: dict
  sample: {"gateway": {"status": "ok"}, "kbs": {"status": "ok"}, "as": {"status": "ok"}, "rvps": {"status": "ok"}}
healthy:
  description: Whether gateway, kbs, as and rvps all report V(ok).
  returned: when V(health) is gathered
  type: bool
  sample: true
unhealthy:
  description: The components that are missing or not V(ok).
  returned: when V(health) is gathered
  type: list
  elements: str
  sample: ["rvps"]
resources:
  description: The resource ids the KBS lists, as C(<repository>/<type>/<tag>).
  returned: when V(resources) is gathered
  type: list
  elements: str
  sample: ["default/aliyun/model-decryption-key"]
resource_policy:
  description: The KBS resource policy text.
  returned: when V(resource_policy) is gathered
  type: str
  sample: "package policy\ndefault allow = false\n"
attestation_policies:
  description: Attestation policy ids mapped to the hash the attestation service reports.
  returned: when V(attestation_policies) is gathered
  type: dict
  sample: {"default": "6b2f..."}
audit:
  description: The most recent audit records, newest first, as the gateway returns them (C(data), C(total)).
  returned: when V(audit) is gathered
  type: dict
  contains:
    attestation:
      description: Attestation records (KBS and attestation service).
      type: dict
    resources:
      description: Resource request records.
      type: dict
version:
  description: The installed C(trustee) package version, or null when C(rpm) or the package is missing.
  returned: when V(package) is gathered
  type: str
  sample: 1.5.2
release:
  description: The installed C(trustee) package release.
  returned: when V(package) is gathered and the package is installed
  type: str
  sample: "1"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.confidential_ai.ack.plugins.module_utils.trustee import (
    HAS_CRYPTOGRAPHY,
    TrusteeClient,
    TrusteeError,
    key_id_path,
    load_admin_key,
    trustee_argument_spec,
)

COMPONENTS = ("gateway", "kbs", "as", "rvps")


def summarize_health(health):
    """Pure: (healthy, [not ok components]) from a services-health body."""
    if not isinstance(health, dict):
        return False, list(COMPONENTS)
    bad = [name for name in COMPONENTS if not isinstance(health.get(name), dict) or health[name].get("status") != "ok"]
    return not bad, bad


def package_version(module):
    rpm = module.get_bin_path("rpm")
    if rpm is None:
        return None, None
    rc, out, _err = module.run_command([rpm, "-q", "--qf", "%{VERSION} %{RELEASE}\\n", "trustee"])
    if rc != 0:
        return None, None
    version, release = out.strip().splitlines()[-1].split(" ", 1)
    return version, release


def main():
    argument_spec = trustee_argument_spec()
    argument_spec.update(
        gather=dict(type="list", elements="str", default=["health", "resources"],
                    choices=["health", "resources", "resource_policy", "attestation_policies", "audit", "package"]),
        audit_limit=dict(type="int", default=20),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("admin_key", "admin_key_path")],
        supports_check_mode=True,
    )
    params = module.params
    gather = set(params["gather"])
    result = dict(changed=False)
    if gather - {"package"} and not params["url"]:
        module.fail_json(msg="url is required to gather %s" % ", ".join(sorted(gather - {"package"})))
    if params["audit_limit"] < 1:
        module.fail_json(msg="audit_limit must be at least 1")
    try:
        admin_key = None
        if "resource_policy" in gather:
            if not (params["admin_key"] or params["admin_key_path"]):
                module.fail_json(msg="gather=resource_policy needs admin_key or admin_key_path")
            if not HAS_CRYPTOGRAPHY:
                module.fail_json(msg=missing_required_lib("cryptography"))
            admin_key = load_admin_key(params["admin_key"], params["admin_key_path"])
        client = None
        if params["url"]:
            client = TrusteeClient(params["url"], admin_key, params["validate_certs"], params["ca_path"], params["timeout"], params["retries"])
        if "health" in gather:
            result["health"] = client.services_health()
            result["healthy"], result["unhealthy"] = summarize_health(result["health"])
        if "resources" in gather:
            result["resources"] = [key_id_path(item) for item in client.list_resources()]
        if "resource_policy" in gather:
            result["resource_policy"] = client.get_resource_policy()
        if "attestation_policies" in gather:
            result["attestation_policies"] = client.list_attestation_policies()
        if "audit" in gather:
            result["audit"] = dict(
                attestation=client.audit("attestation", params["audit_limit"]),
                resources=client.audit("resources", params["audit_limit"]),
            )
    except TrusteeError as exc:
        module.fail_json(msg=exc.message, status=exc.status, **result)
    if "package" in gather:
        version, release = package_version(module)
        result["version"] = version
        if release is not None:
            result["release"] = release
    module.exit_json(**result)


if __name__ == "__main__":
    main()
