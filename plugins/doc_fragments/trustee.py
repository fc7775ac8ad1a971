# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How the trustee_* modules reach the Trustee gateway (plugins/module_utils/trustee.py,
    # trustee_argument_spec).
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of the Trustee gateway, for example V(https://trustee.example.com:8081).
        A trailing C(/api) is accepted.
      - Needed for every operation through the gateway API; not for work done on files of the
        host (O(confidential_ai.ack.trustee_resource#module:mode=file)) or for reading the package version.
    type: str
    aliases: [trustee_url]
  admin_key:
    description:
      - The KBS admin Ed25519 private key (PEM, unencrypted), for the admin API (resources, resource
        policy). Keep it in a vault; the admin token is minted from it on the host where the module runs.
      - Mutually exclusive with O(admin_key_path).
    type: str
  admin_key_path:
    description:
      - Path of the admin private key PEM file, on the host where the module runs.
    type: path
  validate_certs:
    description:
      - Verify the gateway's TLS certificate. Only set V(false) for tests.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed the gateway certificate, when it is not publicly trusted.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request.
    type: int
    default: 30
  retries:
    description:
      - How many times to retry a request that could not connect (HTTP errors are not retried).
    type: int
    default: 3
"""
