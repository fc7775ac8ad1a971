#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ack_node_attach_script
short_description: Get the command that joins an existing instance to an ACK node pool (manual addition)
version_added: 0.1.0
description:
  - Calls C(DescribeClusterAttachScripts) for a node pool and returns the shell command that, run as root
    on an ECS instance in the cluster's VPC, joins it to the pool. This is the "manual addition" the
    deployment guide uses (step 3.5), because it keeps the instance's system disk, and with it an NVIDIA
    driver installed by hand beforehand. Contrast M(confidential_ai.ack.ack_node_attach), which
    re-initialises the system disk.
  - After running the command on the node, wait for it with M(confidential_ai.ack.ack_node_attach)
    (the instance is then already in the pool, so that module makes no call and only waits until the node is Ready).
  - "The command holds a join token. Two ways to use it:
    with O(dest), the module writes it into an executable script (mode 0700, atomic) and returns only the
    path; the token is then never in the module's result, so nothing can print it. Copy and run the
    script on the node (for example with M(ansible.builtin.script)) and delete it afterwards.
    Without O(dest), the command is returned under C(attach_script.command), and the task B(must) set
    C(no_log: true): a module cannot hide a value it returns for use (adding it to C(no_log_values)
    would mask it in the result too), so the task has to."
  - The call is a read as far as the cluster is concerned, so it also runs in check mode (the service
    does issue a new token each time). Without O(dest) the module reports C(changed=false); with O(dest)
    it reports C(changed=true) because each call writes a new token (in check mode the file is not written).
options:
  cluster_id:
    description:
      - Id of the cluster.
    type: str
    required: true
  nodepool_id:
    description:
      - Id of the node pool the node joins.
    type: str
    required: true
  arch:
    description:
      - CPU architecture of the node.
    type: str
    choices: [amd64, arm, arm64]
    default: amd64
  format_disk:
    description:
      - Let the script format the instance's last uninitialised data disk and put container data on it
        (the data on that disk is lost). The system disk is kept either way.
    type: bool
    default: false
  keep_instance_name:
    description:
      - Keep the ECS instance name (otherwise it becomes C(worker-k8s-for-cs-<cluster id>)).
    type: bool
    default: true
  one_time_token:
    description:
      - Make the join token usable once.
    type: bool
    default: true
  expired:
    description:
      - Expiry of the join token, as a UNIX time. Mutually exclusive with O(expires_in).
    type: int
  expires_in:
    description:
      - Expiry of the join token, in seconds from now. Mutually exclusive with O(expired).
    type: int
  options:
    description:
      - Node access options, a JSON string (ACK Edge clusters only).
    type: str
  rds_instances:
    description:
      - RDS instances whose whitelist gets the node's address.
    type: list
    elements: str
  dest:
    description:
      - Write the command into an executable script at this path (mode 0700) instead of returning it.
        The directory must exist. Extra arguments given to the script are passed on to the attach script.
    type: path
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
  - confidential_ai.ack.attributes.ACTION_GROUP
attributes:
  check_mode:
    details: The service is called in check mode too (it is a read); O(dest) is not written.
  diff_mode:
    support: none
    details: The script holds a secret; no diff is shown.
seealso:
  - module: confidential_ai.ack.ack_node_attach
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: Attach script for the gpu-tee pool, written to a private file
  confidential_ai.ack.ack_node_attach_script:
    region: cn-beijing
    cluster_id: "{{ ack.cluster.cluster_id }}"
    nodepool_id: "{{ pool.node_pool.nodepool_id }}"
    expires_in: 3600
    dest: /root/.ack-attach.sh
  register: attach

- name: Run it on the gn8v-tee instance (the driver installed there is kept)
  ansible.builtin.script: /root/.ack-attach.sh
  delegate_to: "{{ tee_node }}"

- name: Or get the command itself; the task must not log it
  confidential_ai.ack.ack_node_attach_script:
    cluster_id: "{{ ack.cluster.cluster_id }}"
    nodepool_id: "{{ pool.node_pool.nodepool_id }}"
  register: attach_cmd
  no_log: true
"""

RETURN = r"""
attach_script:
  description: The attach command, or where it was written.
  returned: always
  type: dict
  contains:
    cluster_id:
      description: Cluster id.
      type: str
    nodepool_id:
      description: Node pool id.
      type: str
    command:
      description:
        - The shell command to run as root on the node. It holds a join token; register it only in a task
          with C(no_log=true).
      returned: when O(dest) is not set
      type: str
      sample: "curl -fsSL https://.../attach_node.sh | bash -s -- --openapi-token ... --ess true --cluster-id c..."
    path:
      description: Path of the script holding the command.
      returned: when O(dest) is set
      type: str
      sample: /root/.ack-attach.sh
    expires_at:
      description: Expiry of the token (UNIX time) when the module set one.
      returned: when O(expired) or O(expires_in) is set
      type: int
    one_time_token:
      description: Whether the token works once.
      type: bool
"""

import os
import re
import time

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils import ack

try:
    from alibabacloud_cs20151215 import models as cs_models
except ImportError:
    cs_models = None

TOKEN_RE = re.compile(r"--openapi-token[= ]+['\"]?([^'\"\s]+)")


def secrets_of(command):
    """The join token(s) in an attach command (what must never be logged)."""
    return TOKEN_RE.findall(command or "")


def script_text(command, cluster_id, nodepool_id):
    return ("#!/bin/bash\n"
            "# ACK attach command for node pool %s of cluster %s, written by confidential_ai.ack.ack_node_attach_script.\n"
            "# It holds a join token: keep this file private and delete it once the node has joined.\n"
            "set -euo pipefail\n"
            "%s \"$@\"\n") % (nodepool_id, cluster_id, command.strip())


def main():
    module = AlicloudModule(
        argument_spec=dict(
            cluster_id=dict(type="str", required=True),
            nodepool_id=dict(type="str", required=True),
            arch=dict(type="str", choices=["amd64", "arm", "arm64"], default="amd64"),
            format_disk=dict(type="bool", default=False),
            keep_instance_name=dict(type="bool", default=True),
            one_time_token=dict(type="bool", default=True, no_log=False),
            expired=dict(type="int"),
            expires_in=dict(type="int"),
            options=dict(type="str"),
            rds_instances=dict(type="list", elements="str"),
            dest=dict(type="path"),
        ),
        supports_check_mode=True,
        mutually_exclusive=[["expired", "expires_in"]],
    )
    p = module.params
    errors = [ack.check_id(p["cluster_id"], "cluster_id"), ack.check_id(p["nodepool_id"], "nodepool_id")]
    now = int(time.time())
    expires_at = p["expired"]
    if p["expires_in"] is not None:
        if p["expires_in"] < 60:
            errors.append("expires_in must be at least 60 seconds (got %d)" % p["expires_in"])
        expires_at = now + p["expires_in"]
    elif expires_at is not None and expires_at <= now:
        errors.append("expired %d is in the past; give a future UNIX time or use expires_in" % expires_at)
    if p["dest"]:
        parent = os.path.dirname(os.path.abspath(p["dest"]))
        if not os.path.isdir(parent):
            errors.append("dest: directory %s does not exist" % parent)
        elif os.path.isdir(p["dest"]):
            errors.append("dest %s is a directory; give a file path" % p["dest"])
    errors = [e for e in errors if e]
    if errors:
        module.fail_json(msg="; ".join(errors))

    cs = module.client("cs")
    body = {
        "nodepool_id": p["nodepool_id"], "arch": p["arch"], "format_disk": p["format_disk"],
        "keep_instance_name": p["keep_instance_name"], "one_time_token": p["one_time_token"], "expired": expires_at,
        "options": p["options"], "rds_instances": p["rds_instances"],
    }
    request = cs_models.DescribeClusterAttachScriptsRequest().from_map(dict((k, v) for k, v in body.items() if v is not None))
    try:
        response = module.call(cs.describe_cluster_attach_scripts, p["cluster_id"], request,
                               operation="get the attach script of node pool %s" % p["nodepool_id"])
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    command = response.body if isinstance(response.body, str) else ack.body_map(response)
    if not isinstance(command, str) or not command.strip():
        module.fail_json(msg="the service returned no attach command for node pool %s" % p["nodepool_id"])
    command = command.strip()

    result = {"cluster_id": p["cluster_id"], "nodepool_id": p["nodepool_id"], "one_time_token": p["one_time_token"]}
    if expires_at is not None:
        result["expires_at"] = expires_at
    if not p["dest"]:
        result["command"] = command
        module.exit_json(changed=False, attach_script=result)

    # With dest, the command never leaves the module: mask the token everywhere, including failures.
    for value in secrets_of(command) + [command]:
        module.no_log_values.add(value)
    result["path"] = p["dest"]
    if not module.check_mode:
        try:
            ack.write_private(p["dest"], mode=0o700, text=script_text(command, p["cluster_id"], p["nodepool_id"]))
        except OSError as exc:
            module.fail_json(msg="dest: cannot write %s: %s" % (p["dest"], exc.strerror or exc))
    module.exit_json(changed=True, attach_script=result)


if __name__ == "__main__":
    main()
