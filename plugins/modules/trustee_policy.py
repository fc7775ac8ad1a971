#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: trustee_policy
short_description: Set the Trustee KBS resource policy and attestation policies
version_added: 0.1.0
description:
  - Sets the KBS resource policy (which attestation tokens may read which resource) and the
    attestation service policies of a Trustee 1.5.2 server through its gateway API.
  - Policies are sent base64url-encoded without padding, as the 1.5.2 API requires, and read
    back before and after the change, so a repeated run reports no change and a write that did
    not take effect fails.
  - The resource policy needs the admin token. Trustee 1.5.2 checks no token for attestation
    policies; the module sends one anyway.
author:
  - confidential_ai.ack contributors (@confidential-ai)
extends_documentation_fragment:
  - confidential_ai.ack.trustee
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
options:
  url:
    description:
      - Base URL of the Trustee gateway, for example V(https://trustee.example.com:8081). A trailing C(/api) is accepted.
    type: str
    required: true
    aliases: [trustee_url]
  resource_policy:
    description:
      - The rego text of the KBS resource policy (C(package policy), rule C(allow)).
      - Compared byte for byte with the policy read back; a missing final newline is a difference.
    type: str
  attestation_policies:
    description:
      - Attestation service policies to set or delete.
    type: list
    elements: dict
    suboptions:
      id:
        description:
          - The policy id, for example V(default) (the id the KBS asks for).
        type: str
        required: true
      policy:
        description:
          - The rego text. Required when O(attestation_policies[].state=present).
        type: str
      state:
        description:
          - V(absent) deletes the policy.
        type: str
        choices: [present, absent]
        default: present
notes:
  - One of O(admin_key) or O(admin_key_path) is required.
  - Trustee 1.5.2 checks that a policy parses only as far as its rego compiler does; a policy
    that compiles but never allows anything is accepted. Test the policy before relying on it.
  - The resource policy only protects anything once the KBS has C(insecure_key = false).
  - Tested against the Trustee 1.5.2 stand-in of this collection's test suite, which does not
    compile rego (it only checks for a C(package) line), not against a real Trustee.
seealso:
  - module: confidential_ai.ack.trustee_resource
  - module: confidential_ai.ack.trustee_info
"""

EXAMPLES = r"""
- name: Only TDX tokens that passed the default attestation policy may read the model key
  confidential_ai.ack.trustee_policy:
    url: https://trustee.example.com:8081
    ca_path: /etc/pki/trustee-ca.pem
    admin_key: "{{ vault_trustee_admin_key }}"
    resource_policy: "{{ lookup('ansible.builtin.template', 'kbs-resource-policy.rego.j2') }}"
    attestation_policies:
      - id: default
        policy: "{{ lookup('ansible.builtin.file', 'as-default.rego') }}"
  delegate_to: localhost

- name: Remove an attestation policy that is no longer used
  confidential_ai.ack.trustee_policy:
    url: https://trustee.example.com:8081
    admin_key_path: ~/.config/trustee/admin.key
    attestation_policies:
      - id: old-policy
        state: absent
  delegate_to: localhost
"""

RETURN = r"""
resource_policy:
  description: What happened to the resource policy.
  returned: when O(resource_policy) is set
  type: dict
  contains:
    changed:
      description: Whether the policy was (or in check mode would be) replaced.
      type: bool
      sample: true
attestation_policies:
  description: What happened to each attestation policy, in the order given.
  returned: when O(attestation_policies) is set
  type: list
  elements: dict
  contains:
    id:
      description: The policy id.
      type: str
      sample: default
    state:
      description: The requested state.
      type: str
      sample: present
    changed:
      description: Whether the policy was (or in check mode would be) set or deleted.
      type: bool
      sample: false
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.confidential_ai.ack.plugins.module_utils.trustee import (
    HAS_CRYPTOGRAPHY,
    TrusteeClient,
    TrusteeError,
    load_admin_key,
    trustee_argument_spec,
    validate_policy_id,
)


def policy_needs_change(current, desired, state="present"):
    """Pure decision: current is the read-back text or None when absent."""
    if state == "absent":
        return current is not None
    return current != desired


def _diff_entry(name, before, after):
    return {"before_header": name, "after_header": name, "before": before or "", "after": after or ""}


def main():
    argument_spec = trustee_argument_spec()
    argument_spec["url"]["required"] = True
    argument_spec.update(
        resource_policy=dict(type="str"),
        attestation_policies=dict(
            type="list",
            elements="dict",
            options=dict(
                id=dict(type="str", required=True),
                policy=dict(type="str"),
                state=dict(type="str", default="present", choices=["present", "absent"]),
            ),
            required_if=[("state", "present", ("policy",))],
        ),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("admin_key", "admin_key_path")],
        required_one_of=[("admin_key", "admin_key_path"), ("resource_policy", "attestation_policies")],
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))
    params = module.params
    result = dict(changed=False)
    diffs = []
    try:
        for index, item in enumerate(params["attestation_policies"] or []):
            validate_policy_id(item["id"], "attestation_policies[%d].id" % index)
        admin_key = load_admin_key(params["admin_key"], params["admin_key_path"])
        client = TrusteeClient(params["url"], admin_key, params["validate_certs"], params["ca_path"], params["timeout"], params["retries"])

        if params["resource_policy"] is not None:
            desired = params["resource_policy"]
            current = client.get_resource_policy()
            changed = policy_needs_change(current, desired)
            if changed and not module.check_mode:
                client.set_resource_policy(desired)
                if client.get_resource_policy() != desired:
                    module.fail_json(msg="the resource policy read back after setting it differs from resource_policy")
            if changed:
                diffs.append(_diff_entry("resource-policy", current, desired))
            result["resource_policy"] = dict(changed=changed)
            result["changed"] |= changed

        outcomes = []
        for item in params["attestation_policies"] or []:
            current = client.get_attestation_policy(item["id"])
            changed = policy_needs_change(current, item["policy"], item["state"])
            if changed and not module.check_mode:
                if item["state"] == "present":
                    client.set_attestation_policy(item["id"], item["policy"])
                    if client.get_attestation_policy(item["id"]) != item["policy"]:
                        module.fail_json(msg="attestation policy %s read back after setting it differs from the given policy" % item["id"])
                else:
                    client.delete_attestation_policy(item["id"])
            if changed:
                diffs.append(_diff_entry("attestation-policy/%s" % item["id"], current, item["policy"] if item["state"] == "present" else None))
            outcomes.append(dict(id=item["id"], state=item["state"], changed=changed))
            result["changed"] |= changed
        if params["attestation_policies"] is not None:
            result["attestation_policies"] = outcomes
    except TrusteeError as exc:
        module.fail_json(msg=exc.message, status=exc.status, **result)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
