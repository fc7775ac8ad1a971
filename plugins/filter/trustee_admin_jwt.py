# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: trustee_admin_jwt
short_description: Mint a short-lived Trustee KBS admin token
version_added: 0.1.0
description:
  - Signs a compact JWT (C(alg=EdDSA), claims C(iat) and C(exp)) with the KBS admin Ed25519
    private key, on the controller, for bearer-token calls to the Trustee admin API
    (resources, resource policy) made with M(ansible.builtin.uri).
  - Keep the private key in a vault; the token is a credential too, so use it with C(no_log).
options:
  _input:
    description: The Ed25519 private key, PEM.
    type: str
    required: true
  lifetime:
    description: Seconds the token is valid.
    type: int
    default: 300
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: Read the KBS resource policy back
  ansible.builtin.uri:
    url: https://trustee.example.com:8081/api/kbs/v0/resource-policy
    headers:
      Authorization: "Bearer {{ trustee_admin_private_key | confidential_ai.ack.trustee_admin_jwt }}"
    return_content: true
  no_log: true
"""

RETURN = r"""
_value:
  description: The token, C(header.claims.signature) in base64url.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.confidential_ai.ack.plugins.module_utils.trustee import (
    TrusteeError,
    load_admin_key,
    mint_admin_jwt,
)


def trustee_admin_jwt(private_key_pem, lifetime=300):
    try:
        return mint_admin_jwt(load_admin_key(content=private_key_pem), lifetime=int(lifetime))
    except TrusteeError as exc:
        raise AnsibleFilterError("trustee_admin_jwt: %s" % exc) from exc


class FilterModule:
    def filters(self):
        return {"trustee_admin_jwt": trustee_admin_jwt}
