#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ack_cluster_info
short_description: List ACK clusters or describe one
version_added: 0.1.0
description:
  - Lists the ACK clusters of the region (C(DescribeClustersV1), every page), or describes one cluster
    (C(DescribeClusterDetail)) when O(cluster_id) is set.
  - O(name) is an exact match (the service's own name filter is fuzzy; the module filters again).
  - Each cluster found is read in detail (C(DescribeClusterDetail)), because the list answer lacks some
    fields such as C(node_cidr_mask).
options:
  cluster_id:
    description:
      - Describe only this cluster. A cluster that does not exist gives an empty list, not an error.
    type: str
  name:
    description:
      - Only clusters with exactly this name.
    type: str
  cluster_spec:
    description:
      - Only clusters of this edition.
    type: str
    choices: [ack.standard, ack.pro.small, ack.pro.xlarge, ack.pro.2xlarge, ack.pro.4xlarge]
  node_pools:
    description:
      - Also list the node pools of each cluster found (one C(DescribeClusterNodePools) call per cluster).
    type: bool
    default: false
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.INFO_MODULE
  - confidential_ai.ack.attributes.ACTION_GROUP
seealso:
  - module: confidential_ai.ack.ack_cluster
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: Find the cluster by name
  confidential_ai.ack.ack_cluster_info:
    region: cn-beijing
    name: vllm-tee
  register: found

- name: Its id
  ansible.builtin.debug:
    msg: "{{ found.clusters[0].cluster_id }}"
  when: found.clusters | length == 1
"""

RETURN = r"""
clusters:
  description:
    - The clusters found, in the shape M(confidential_ai.ack.ack_cluster) returns under C(cluster).
    - With O(node_pools=true) each has C(node_pools), in the shape M(confidential_ai.ack.ack_node_pool) returns.
  returned: always
  type: list
  elements: dict
  sample: [{"cluster_id": "c5b2f8e4a1d9c4e0b8f1a2c3d4e5f6a7b", "name": "vllm-tee", "state": "running", "cluster_spec": "ack.pro.small"}]
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils import ack


def main():
    module = AlicloudModule(
        argument_spec=dict(
            cluster_id=dict(type="str"),
            name=dict(type="str"),
            cluster_spec=dict(type="str", choices=list(ack.CLUSTER_SPECS)),
            node_pools=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    error = ack.check_id(p["cluster_id"], "cluster_id") or ack.check_name(p["name"], "name")
    if error:
        module.fail_json(msg=error)
    cs = module.client("cs")
    try:
        if p["cluster_id"]:
            cluster = ack.describe_cluster(module, cs, p["cluster_id"])
            clusters = [cluster] if cluster else []
        else:
            # the list answer lacks some fields (node_cidr_mask, ...): read each cluster's detail
            clusters = [ack.describe_cluster(module, cs, c["cluster_id"]) or c for c in ack.find_clusters(module, cs, p["name"])]
        if p["name"]:
            clusters = [c for c in clusters if c["name"] == p["name"]]
        if p["cluster_spec"]:
            clusters = [c for c in clusters if c["cluster_spec"] == p["cluster_spec"]]
        if p["node_pools"]:
            for cluster in clusters:
                cluster["node_pools"] = ack.list_node_pools(module, cs, cluster["cluster_id"])
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    module.exit_json(changed=False, clusters=clusters)


if __name__ == "__main__":
    main()
