#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ack_kubeconfig
short_description: Write the kubeconfig of an ACK cluster to a private file
version_added: 0.1.0
description:
  - Fetches the cluster's kubeconfig for the calling RAM identity (C(DescribeClusterUserKubeconfig)),
    for the public or the VPC-internal API server endpoint, long-lived or temporary, and writes it to
    O(dest) with mode 0600 (written to a temporary file in the same directory, then renamed over O(dest)).
  - The content is never printed or returned; the module returns the path, the API server URL, the
    context and the expiry. The content and the credentials in it are registered as no-log values, so
    they are masked even in error messages.
  - "How C(changed) is computed: for a long-lived kubeconfig (no O(temporary_duration_minutes)) the file
    is rewritten only when its parsed content (clusters, servers, CA data, contexts, users and their
    credentials; comments and formatting ignored) differs from what the service returns, or its mode is
    not 0600. A temporary kubeconfig carries new credentials on every call, so with
    O(temporary_duration_minutes) the file is always rewritten and C(changed) is always true."
  - The fetch is a read, so it also runs in check mode (the file is not written).
  - O(state=absent) deletes O(dest).
options:
  cluster_id:
    description:
      - Id of the cluster.
    type: str
    required: true
  dest:
    description:
      - Path of the kubeconfig file.
    type: path
    required: true
  state:
    description:
      - Whether O(dest) should hold the kubeconfig.
    type: str
    choices: [present, absent]
    default: present
  private_ip_address:
    description:
      - Use the VPC-internal API server endpoint (for hosts in the cluster's VPC) instead of the public one.
    type: bool
    default: false
  temporary_duration_minutes:
    description:
      - Ask for a temporary kubeconfig valid this many minutes (15 to 4320). Without it the service
        returns a long-lived one.
    type: int
  create_parent_dirs:
    description:
      - Create the missing parent directories of O(dest) with mode 0700. Without it a missing directory is an error.
    type: bool
    default: false
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
  - confidential_ai.ack.attributes.ACTION_GROUP
attributes:
  check_mode:
    details: The kubeconfig is fetched (a read) and compared; O(dest) is not written.
  diff_mode:
    support: partial
    details: The diff shows the API server, the context and whether the credentials change, never the credentials.
seealso:
  - module: confidential_ai.ack.ack_cluster
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: Kubeconfig for Helm and kubectl on the controller
  confidential_ai.ack.ack_kubeconfig:
    region: cn-beijing
    cluster_id: "{{ ack.cluster.cluster_id }}"
    dest: "{{ lookup('env', 'HOME') }}/.kube/vllm-tee.yaml"
    create_parent_dirs: true
  register: kube

- name: A one-hour kubeconfig for the VPC-internal endpoint
  confidential_ai.ack.ack_kubeconfig:
    cluster_id: "{{ ack.cluster.cluster_id }}"
    dest: /run/vllm/kubeconfig
    private_ip_address: true
    temporary_duration_minutes: 60
"""

RETURN = r"""
kubeconfig:
  description: Where the kubeconfig is and what it points at. Never the content.
  returned: always
  type: dict
  contains:
    path:
      description: The file.
      type: str
      sample: /root/.kube/vllm-tee.yaml
    cluster_id:
      description: Cluster id.
      type: str
    server:
      description: API server URL of the current context.
      returned: when O(state=present)
      type: str
      sample: https://203.0.113.10:6443
    current_context:
      description: Current context.
      returned: when O(state=present)
      type: str
    expiration:
      description: When the credentials expire (RFC 3339, UTC), as the service says.
      returned: when O(state=present)
      type: str
      sample: "2029-11-25T04:00:00Z"
    private_ip_address:
      description: Whether it uses the VPC-internal endpoint.
      returned: when O(state=present)
      type: bool
    temporary:
      description: Whether it is a temporary kubeconfig.
      returned: when O(state=present)
      type: bool
"""

import os
import stat
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils import ack

try:
    from alibabacloud_cs20151215 import models as cs_models
except ImportError:
    cs_models = None

YAML_IMPORT_ERROR = None
try:
    import yaml
except ImportError:
    yaml = None
    YAML_IMPORT_ERROR = traceback.format_exc()

SECRET_KEYS = ("token", "client-key-data", "client-certificate-data", "password")


def parse(text):
    """The kubeconfig as a dict, or None when it is not YAML."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def credentials_of(config):
    """Every credential value in a parsed kubeconfig (for no_log)."""
    values = []
    for entry in (config or {}).get("users") or []:
        user = (entry or {}).get("user") or {}
        for key in SECRET_KEYS:
            if user.get(key):
                values.append(str(user[key]))
    return values


def identity(config):
    """What the kubeconfig points at, without secrets: server, context, user names."""
    config = config or {}
    contexts = dict((c.get("name"), c.get("context") or {}) for c in config.get("contexts") or [] if isinstance(c, dict))
    clusters = dict((c.get("name"), c.get("cluster") or {}) for c in config.get("clusters") or [] if isinstance(c, dict))
    current = config.get("current-context")
    context = contexts.get(current) or (list(contexts.values())[0] if contexts else {})
    cluster = clusters.get(context.get("cluster")) or (list(clusters.values())[0] if clusters else {})
    return {
        "server": cluster.get("server"),
        "current_context": current,
        "users": sorted(str(u.get("name")) for u in config.get("users") or [] if isinstance(u, dict)),
    }


def main():
    module = AlicloudModule(
        argument_spec=dict(
            cluster_id=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            private_ip_address=dict(type="bool", default=False),
            temporary_duration_minutes=dict(type="int"),
            create_parent_dirs=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    dest = p["dest"]
    parent = os.path.dirname(os.path.abspath(dest))
    errors = [ack.check_id(p["cluster_id"], "cluster_id")]
    minutes = p["temporary_duration_minutes"]
    if minutes is not None and not 15 <= minutes <= 4320:
        errors.append("temporary_duration_minutes must be from 15 to 4320 (got %d)" % minutes)
    if os.path.isdir(dest):
        errors.append("dest %s is a directory; give a file path" % dest)
    if p["state"] == "present" and not os.path.isdir(parent) and not p["create_parent_dirs"]:
        errors.append("dest: directory %s does not exist (set create_parent_dirs: true to create it with mode 0700)" % parent)
    errors = [e for e in errors if e]
    if errors:
        module.fail_json(msg="; ".join(errors))
    result = {"path": dest, "cluster_id": p["cluster_id"]}

    if p["state"] == "absent":
        exists = os.path.lexists(dest)
        if exists and not module.check_mode:
            os.unlink(dest)
        diff = {"before": {"path": dest if exists else None}, "after": {"path": None}}
        module.exit_json(changed=exists, kubeconfig=result, **({"diff": diff} if module._diff else {}))

    if yaml is None:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    cs = module.client("cs")
    request = cs_models.DescribeClusterUserKubeconfigRequest(private_ip_address=p["private_ip_address"],
                                                             temporary_duration_minutes=minutes)
    try:
        body = ack.body_map(module.call(cs.describe_cluster_user_kubeconfig, p["cluster_id"], request,
                                        operation="get the kubeconfig of cluster %s" % p["cluster_id"]))
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    content = body.get("config") or ""
    if content:
        module.no_log_values.add(content)
    wanted = parse(content)
    if wanted is None:
        module.fail_json(msg="the service returned a kubeconfig for cluster %s that is not YAML" % p["cluster_id"])
    for value in credentials_of(wanted):
        module.no_log_values.add(value)

    current = None
    mode_ok = True
    if os.path.isfile(dest):
        try:
            with open(dest, encoding="utf-8") as handle:
                current_text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            module.fail_json(msg="dest: cannot read %s: %s" % (dest, exc))
        if current_text:
            module.no_log_values.add(current_text)
        current = parse(current_text)
        for value in credentials_of(current):
            module.no_log_values.add(value)
        mode_ok = stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    temporary = minutes is not None
    content_changed = temporary or current != wanted
    changed = content_changed or not mode_ok

    ident = identity(wanted)
    result.update(server=ident["server"], current_context=ident["current_context"], expiration=body.get("expiration"),
                  private_ip_address=p["private_ip_address"], temporary=temporary)
    if changed and not module.check_mode:
        try:
            if not os.path.isdir(parent):
                os.makedirs(parent, mode=0o700)
            if content_changed:
                ack.write_private(dest, content, 0o600)
            else:
                os.chmod(dest, 0o600)
        except OSError as exc:
            module.fail_json(msg="dest: cannot write %s: %s" % (dest, exc.strerror or exc), kubeconfig=result)
    out = dict(changed=changed, kubeconfig=result)
    if module._diff:
        before = dict(identity(current), credentials="present") if current is not None else {}
        after = dict(ident, credentials="replaced" if content_changed and current is not None else "present")
        out["diff"] = {"before": before, "after": after}
    module.exit_json(**out)


if __name__ == "__main__":
    main()
