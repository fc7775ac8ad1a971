#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ack_node_attach
short_description: Add existing ECS instances to an ACK node pool and wait until they are Ready
version_added: 0.1.0
description:
  - Adds running ECS instances to a node pool with C(AttachInstancesToNodePool) (the "automatic"
    addition) and waits until every one of them is a C(Ready) node of the pool.
  - "B(Warning: the automatic addition re-initialises the instance's system disk) with the node pool's
    image, as ACK's automatic node addition does; anything installed on the system disk is lost, B(including an
    NVIDIA driver and CUDA installed by hand). For the gn8v-tee nodes of the confidential vLLM deployment,
    whose driver is installed by hand before the node joins (deployment guide step 3.4), use the manual
    addition instead: M(confidential_ai.ack.ack_node_attach_script) gives the command to run on the
    instance, which keeps the system disk; then run this module for the same instances to wait until
    they are Ready (they are already in the pool, so it makes no call but the reads)."
  - With the automatic addition, a driver comes from the node pool's label C(ack.aliyun.com/nvidia-driver-version)
    instead, which ACK reads when it initialises the node.
  - O(format_disk) is about data disks only (the last uninitialised data disk is formatted for container
    data); O(keep_instance_name) keeps the ECS instance name.
  - Idempotent; instances that are already nodes of the pool are not attached again (no call), only
    waited for. An instance that is a node of another pool of the cluster is an error.
  - O(state=absent) removes the instances from the pool (C(RemoveNodePoolNodes)) and waits until they are
    gone; with O(release_node=true) the instances are released too.
options:
  cluster_id:
    description:
      - Id of the cluster.
    type: str
    required: true
  nodepool_id:
    description:
      - Id of the node pool.
    type: str
    required: true
  instance_ids:
    description:
      - ECS instance ids. They must be C(Running) and in the cluster's VPC.
    type: list
    elements: str
    required: true
  state:
    description:
      - Whether the instances should be nodes of the pool.
    type: str
    choices: [present, absent]
    default: present
  format_disk:
    description:
      - Store container data on the instance's last data disk, formatting it if it has no file system
        (its data is lost). Does not concern the system disk, which the automatic addition re-initialises anyway.
    type: bool
    default: false
  keep_instance_name:
    description:
      - Keep the ECS instance names.
    type: bool
    default: true
  password:
    description:
      - Root password to set on the instances (the system disk is re-initialised). Never compared or returned.
    type: str
  release_node:
    description:
      - With O(state=absent), release the ECS instances after removing them.
    type: bool
    default: false
  drain_node:
    description:
      - With O(state=absent), drain the nodes before removing them.
    type: bool
    default: true
  wait:
    description:
      - Wait until every instance is a Ready node of the pool (or gone, for O(state=absent)).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait. A node takes several minutes to join.
    type: int
    default: 1800
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
  - confidential_ai.ack.attributes.ACTION_GROUP
seealso:
  - module: confidential_ai.ack.ack_node_attach_script
  - module: confidential_ai.ack.ack_node_pool
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: Automatic addition (re-initialises the system disk; not for a hand-installed driver)
  confidential_ai.ack.ack_node_attach:
    region: cn-beijing
    cluster_id: "{{ ack.cluster.cluster_id }}"
    nodepool_id: "{{ pool.node_pool.nodepool_id }}"
    instance_ids: [i-2zeexample00000000001]
  register: attached

- name: Show the node names
  ansible.builtin.debug:
    msg: "{{ attached.attachment.nodes | map(attribute='node_name') | list }}"

- name: After running the attach script on the node (manual addition), wait until it is Ready
  confidential_ai.ack.ack_node_attach:
    cluster_id: "{{ ack.cluster.cluster_id }}"
    nodepool_id: "{{ pool.node_pool.nodepool_id }}"
    instance_ids: ["{{ tee_instance_id }}"]
    wait_timeout: 1200

- name: Remove the node from the pool, keeping the instance
  confidential_ai.ack.ack_node_attach:
    cluster_id: "{{ ack.cluster.cluster_id }}"
    nodepool_id: "{{ pool.node_pool.nodepool_id }}"
    instance_ids: [i-2zeexample00000000001]
    state: absent
"""

RETURN = r"""
attachment:
  description: The attachment of O(instance_ids) to the node pool (after the change; the prediction in check mode).
  returned: always
  type: dict
  contains:
    cluster_id:
      description: Cluster id.
      type: str
      sample: c5b2f8e4a1d9c4e0b8f1a2c3d4e5f6a7b
    nodepool_id:
      description: Node pool id.
      type: str
      sample: np3c1a9e0b2d4f6a8c0e1f2a3b4c5d6e7
    instance_ids:
      description: The instances asked for, without duplicates, in the order given.
      type: list
      elements: str
    nodes:
      description: The nodes of the pool for O(instance_ids). Empty after O(state=absent).
      type: list
      elements: dict
      contains:
        instance_id:
          description: ECS instance id.
          type: str
        node_name:
          description: Kubernetes node name.
          type: str
          sample: cn-beijing.192.168.12.10
        nodepool_id:
          description: Node pool id.
          type: str
        state:
          description: C(initial), C(running), C(failed), C(removing), ...
          type: str
        node_status:
          description: C(Ready), C(NotReady), C(Unknown), C(Offline).
          type: str
        ready:
          description: Whether the node is running and Ready.
          type: bool
        ip_address:
          description: Private addresses.
          type: list
          elements: str
        instance_type:
          description: Instance type.
          type: str
        source:
          description: How the node came into the pool.
          type: str
    attached:
      description: The instances this run attached (O(state=present)); empty when none was.
      type: list
      elements: str
    removed:
      description: The instances this run removed from the pool (O(state=absent)); empty when none was.
      type: list
      elements: str
    task:
      description: The last ACK task the module followed (or, with O(wait=false), started).
      returned: when there was one
      type: dict
      sample: {"task_id": "T-5faa48fb31b6b8078d000006", "state": "success", "task_type": "nodepool_attach"}
  sample:
    cluster_id: c5b2f8e4a1d9c4e0b8f1a2c3d4e5f6a7b
    nodepool_id: np3c1a9e0b2d4f6a8c0e1f2a3b4c5d6e7
    instance_ids: [i-2zeexample00000000001]
    nodes:
      - instance_id: i-2zeexample00000000001
        node_name: cn-beijing.192.168.12.10
        nodepool_id: np3c1a9e0b2d4f6a8c0e1f2a3b4c5d6e7
        state: running
        node_status: Ready
        ready: true
    attached: [i-2zeexample00000000001]
    removed: []
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils import ack

try:
    from alibabacloud_cs20151215 import models as cs_models
except ImportError:
    cs_models = None


class AttachManager:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.cs = module.client("cs")
        self.cid = self.p["cluster_id"]
        self.pid = self.p["nodepool_id"]
        self.ids = list(dict.fromkeys(self.p["instance_ids"]))
        self.changed = False
        self.done = []
        self.task = None

    def timeout(self):
        return self.p["wait_timeout"]

    def nodes(self):
        """The cluster's nodes among the instances, by instance id (every pool)."""
        return dict((n["instance_id"], n) for n in ack.list_nodes(self.module, self.cs, self.cid, instance_ids=self.ids))

    def check_targets(self):
        if ack.describe_cluster(self.module, self.cs, self.cid) is None:
            self.module.fail_json(msg="cluster_id %s was not found" % self.cid)
        if ack.describe_node_pool(self.module, self.cs, self.cid, self.pid) is None:
            self.module.fail_json(msg="nodepool_id %s was not found in cluster %s" % (self.pid, self.cid))

    def follow(self, task_id, operation):
        if task_id:
            self.task = ack.wait_task(self.module, self.cs, task_id, self.timeout(), operation) or {"task_id": task_id}

    def present(self):
        self.check_targets()
        nodes = self.nodes()
        elsewhere = ["%s (node pool %s)" % (i, n["nodepool_id"]) for i, n in nodes.items() if n["nodepool_id"] != self.pid]
        if elsewhere:
            self.module.fail_json(msg="instance_ids: %s already belong to another node pool of cluster %s" % (", ".join(elsewhere), self.cid))
        removing = [i for i, n in nodes.items() if n["state"] == "removing"]
        if removing:
            self.module.fail_json(msg="instance_ids: %s are being removed from the pool; run again once they are gone" % ", ".join(removing))
        to_attach = [i for i in self.ids if i not in nodes]
        if to_attach:
            self.changed = True
            self.done = to_attach
            if self.module.check_mode:
                predicted = [nodes.get(i) or {"instance_id": i, "nodepool_id": self.pid, "state": None, "node_status": None,
                                              "ready": False} for i in self.ids]
                return predicted
            body = {"instances": to_attach, "format_disk": self.p["format_disk"], "keep_instance_name": self.p["keep_instance_name"]}
            if self.p["password"]:
                body["password"] = self.p["password"]
            request = cs_models.AttachInstancesToNodePoolRequest().from_map(body)

            def lookup():
                now = self.nodes()
                return now if all(i in now for i in to_attach) else None
            how, result = ack.create_once(self.module, lambda: self.cs.attach_instances_to_node_pool(self.cid, self.pid, request), lookup,
                                          "attach %s to node pool %s" % (", ".join(to_attach), self.pid))
            if how == "created" and self.p["wait"]:
                self.follow(ack.body_map(result).get("task_id"), "attach instances to node pool %s" % self.pid)
            elif how == "created":
                self.task = {"task_id": ack.body_map(result).get("task_id")}
        if self.module.check_mode or not self.p["wait"]:
            current = self.nodes()
            return [current[i] for i in self.ids if i in current]
        return self.wait_ready()

    def wait_ready(self):
        def fetch():
            return ack.list_nodes(self.module, self.cs, self.cid, self.pid, self.ids)

        def done(nodes):
            by_id = dict((n["instance_id"], n) for n in nodes)
            return all(i in by_id and by_id[i]["ready"] for i in self.ids)

        def failed(nodes):
            bad = ["%s: %s" % (n["instance_id"], n["error_message"] or "failed to join") for n in nodes if n["state"] == "failed"]
            return "; ".join(bad) or None

        def describe(nodes):
            by_id = dict((n["instance_id"], n) for n in nodes)
            return ", ".join("%s %s" % (i, "%s/%s" % (by_id[i]["state"], by_id[i]["node_status"]) if i in by_id else "not in the pool")
                             for i in self.ids)
        nodes = self.module.wait(fetch, done, timeout=self.timeout(), delay=ack.poll_delay(self.timeout()), is_failed=failed,
                                 describe=describe, operation="wait for the nodes of node pool %s to be Ready" % self.pid)
        by_id = dict((n["instance_id"], n) for n in nodes)
        return [by_id[i] for i in self.ids]

    def absent(self):
        if ack.describe_cluster(self.module, self.cs, self.cid) is None or \
                ack.describe_node_pool(self.module, self.cs, self.cid, self.pid) is None:
            return []
        nodes = self.nodes()
        in_pool = [i for i in self.ids if i in nodes and nodes[i]["nodepool_id"] == self.pid]
        to_remove = [i for i in in_pool if nodes[i]["state"] != "removing"]
        if to_remove:
            self.changed = True
            self.done = to_remove
            if self.module.check_mode:
                return []
            request = cs_models.RemoveNodePoolNodesRequest(instance_ids=to_remove, release_node=self.p["release_node"],
                                                           drain_node=self.p["drain_node"])
            answer = ack.body_map(self.module.call(self.cs.remove_node_pool_nodes, self.cid, self.pid, request,
                                                   operation="remove %s from node pool %s" % (", ".join(to_remove), self.pid)))
            if self.p["wait"]:
                self.follow(answer.get("task_id"), "remove nodes from node pool %s" % self.pid)
            else:
                self.task = {"task_id": answer.get("task_id")}
        if in_pool and self.p["wait"] and not self.module.check_mode:
            self.module.wait(lambda: ack.list_nodes(self.module, self.cs, self.cid, self.pid, in_pool), lambda nodes: not nodes,
                             timeout=self.timeout(), delay=ack.poll_delay(self.timeout()),
                             describe=lambda nodes: "still in the pool: %s" % ", ".join(n["instance_id"] for n in nodes),
                             operation="remove nodes from node pool %s" % self.pid)
        return []


def main():
    module = AlicloudModule(
        argument_spec=dict(
            cluster_id=dict(type="str", required=True),
            nodepool_id=dict(type="str", required=True),
            instance_ids=dict(type="list", elements="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            format_disk=dict(type="bool", default=False),
            keep_instance_name=dict(type="bool", default=True),
            password=dict(type="str", no_log=True),
            release_node=dict(type="bool", default=False),
            drain_node=dict(type="bool", default=True),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=1800),
        ),
        supports_check_mode=True,
    )
    p = module.params
    errors = [ack.check_id(p["cluster_id"], "cluster_id"), ack.check_id(p["nodepool_id"], "nodepool_id")]
    if not p["instance_ids"]:
        errors.append("instance_ids must list at least one instance")
    elif len(p["instance_ids"]) > 100:
        errors.append("instance_ids: at most 100 instances per run")
    errors.extend(ack.check_id(i, "instance_id", "instance_ids") for i in p["instance_ids"] or [])
    if p["wait_timeout"] < 1:
        errors.append("wait_timeout must be a positive number of seconds")
    if p["password"] is not None and not 8 <= len(p["password"]) <= 30:
        errors.append("password must be 8 to 30 characters")
    errors = [e for e in errors if e]
    if errors:
        module.fail_json(msg="; ".join(errors))
    manager = AttachManager(module)
    try:
        nodes = manager.present() if p["state"] == "present" else manager.absent()
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    attachment = dict(cluster_id=manager.cid, nodepool_id=manager.pid, instance_ids=manager.ids, nodes=nodes,
                      attached=manager.done if p["state"] == "present" else [],
                      removed=manager.done if p["state"] == "absent" else [])
    if manager.task:
        attachment["task"] = manager.task
    result = dict(changed=manager.changed, attachment=attachment)
    if module._diff:
        if p["state"] == "present":
            before, after = sorted(i for i in manager.ids if i not in manager.done), sorted(manager.ids)
        else:
            before, after = sorted(manager.done), []
        result["diff"] = {"before": {"instance_ids": before}, "after": {"instance_ids": after}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
