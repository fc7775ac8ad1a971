#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ack_node_pool_info
short_description: List the node pools of an ACK cluster, optionally with their nodes
version_added: 0.1.0
description:
  - Lists the node pools of a cluster (C(DescribeClusterNodePools)), or describes one
    (C(DescribeClusterNodePoolDetail)) when O(nodepool_id) is set; optionally with the nodes of each
    pool (C(DescribeClusterNodes), every page).
options:
  cluster_id:
    description:
      - Id of the cluster.
    type: str
    required: true
  nodepool_id:
    description:
      - Only this pool. A pool that does not exist gives an empty list.
    type: str
  name:
    description:
      - Only pools with exactly this name.
    type: str
  nodes:
    description:
      - Also list the nodes of each pool.
    type: bool
    default: false
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.INFO_MODULE
  - confidential_ai.ack.attributes.ACTION_GROUP
seealso:
  - module: confidential_ai.ack.ack_node_pool
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: The gpu-tee pool and its nodes
  confidential_ai.ack.ack_node_pool_info:
    region: cn-beijing
    cluster_id: "{{ ack.cluster.cluster_id }}"
    name: gpu-tee
    nodes: true
  register: pools

- name: Ready nodes
  ansible.builtin.debug:
    msg: "{{ pools.node_pools[0].nodes | selectattr('ready') | map(attribute='node_name') | list }}"
"""

RETURN = r"""
node_pools:
  description:
    - The pools, in the shape M(confidential_ai.ack.ack_node_pool) returns under C(node_pool).
    - With O(nodes=true) each has C(nodes), in the shape of the C(attachment.nodes) that M(confidential_ai.ack.ack_node_attach) returns.
  returned: always
  type: list
  elements: dict
  sample: [{"nodepool_id": "np1f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c", "name": "gpu-tee", "state": "active", "desired_size": 0}]
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils import ack


def main():
    module = AlicloudModule(
        argument_spec=dict(
            cluster_id=dict(type="str", required=True),
            nodepool_id=dict(type="str"),
            name=dict(type="str"),
            nodes=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    error = ack.check_id(p["cluster_id"], "cluster_id") or ack.check_id(p["nodepool_id"], "nodepool_id") or ack.check_name(p["name"])
    if error:
        module.fail_json(msg=error)
    cs = module.client("cs")
    try:
        if ack.describe_cluster(module, cs, p["cluster_id"]) is None:
            module.fail_json(msg="cluster_id %s was not found" % p["cluster_id"])
        if p["nodepool_id"]:
            pool = ack.describe_node_pool(module, cs, p["cluster_id"], p["nodepool_id"])
            pools = [pool] if pool else []
        else:
            pools = ack.list_node_pools(module, cs, p["cluster_id"], p["name"])
        if p["name"]:
            pools = [pool for pool in pools if pool["name"] == p["name"]]
        if p["nodes"]:
            for pool in pools:
                pool["nodes"] = ack.list_nodes(module, cs, p["cluster_id"], pool["nodepool_id"])
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    module.exit_json(changed=False, node_pools=pools)


if __name__ == "__main__":
    main()
