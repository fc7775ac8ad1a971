#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ack_cluster
short_description: Create, update or delete an ACK managed (Pro) Kubernetes cluster
version_added: 0.1.0
description:
  - Manages an ACK managed cluster (C(cluster_type=ManagedKubernetes), C(profile=Default)) in an
    existing VPC and vSwitches, as step 3.1 of the confidential vLLM deployment does in the console.
  - The cluster is found by O(cluster_id), or else by its exact O(name) in the region (the service
    matches names fuzzily; this module compares them exactly). More than one cluster with the name is
    an error.
  - "Creation sends a deterministic C(client_token) derived from the name, region, VPC and vSwitches, and
    looks the cluster up by name before any retry, so a retried or repeated create never makes a second
    cluster. If the token belonged to a cluster that has since been deleted, the module notices (the
    answer names a cluster that is gone) and creates again with a token derived from the stale id."
  - Creation follows the returned task (C(DescribeTaskInfo)) and then the cluster
    (C(DescribeClusterDetail)) until the state is C(running).
  - "What can change later (C(ModifyCluster)): O(name) (when the cluster is given by O(cluster_id)),
    O(deletion_protection), O(endpoint_public_access), O(timezone), O(resource_group_id),
    O(security_group_id), O(vswitch_ids) (control-plane vSwitches, replaced as a whole) and O(cluster_spec)
    between C(ack.pro.*) tiers. Tags change through C(TagResources) and C(UntagResources)."
  - "Fixed at creation, refused with an error that names them: O(vpc_id), O(service_cidr), O(pod_cidr),
    O(node_cidr_mask), O(proxy_mode), O(ip_stack), O(kubernetes_version) (upgrades are a separate ACK flow)
    and O(cluster_spec) between Basic and Pro. O(network_plugin), O(pod_vswitch_ids), O(snat_entry),
    O(is_enterprise_security_group) and O(addons) are used only at creation and are not compared (the
    service does not report all of them back)."
  - The CIDR plan is checked before any call (valid, private, prefix lengths, service and pod blocks
    not overlapping); before a create the module also reads the VPC and its vSwitches (C(DescribeVpcs),
    C(DescribeVSwitches)) to check the vSwitches belong to O(vpc_id) and the blocks do not overlap the VPC.
  - O(state=absent) deletes the cluster and waits until it is gone. It refuses while node pools remain,
    unless O(remove_node_pools=true), in which case every pool is force-deleted first (its nodes are
    removed, and instances the pool created are released) and the module waits for each.
options:
  name:
    description:
      - Cluster name, 1 to 63 letters, digits, Chinese characters, hyphens or underscores, not starting with a hyphen.
      - Required to create a cluster. With O(cluster_id) set, a different O(name) renames the cluster.
    type: str
  cluster_id:
    description:
      - Id of an existing cluster. When set, the module never creates a cluster.
    type: str
  state:
    description:
      - Whether the cluster should exist.
    type: str
    choices: [present, absent]
    default: present
  cluster_spec:
    description:
      - Cluster edition. V(ack.pro.small) is ACK Pro, V(ack.standard) is ACK Basic.
    type: str
    choices: [ack.standard, ack.pro.small, ack.pro.xlarge, ack.pro.2xlarge, ack.pro.4xlarge]
    default: ack.pro.small
  kubernetes_version:
    description:
      - Kubernetes version such as V(1.32.1-aliyun.1). Omitted, the service picks its latest creatable
        version. Compared with the running version when set; it cannot be changed by this module.
    type: str
  vpc_id:
    description:
      - Id of the existing VPC. Required to create.
    type: str
  vswitch_ids:
    description:
      - Control-plane vSwitches in O(vpc_id) (1 to 3, in different zones for high availability). Required to create.
    type: list
    elements: str
  network_plugin:
    description:
      - Container network plugin, used at creation. V(flannel) needs O(pod_cidr); V(terway-eniip) needs O(pod_vswitch_ids).
    type: str
    choices: [flannel, terway-eniip]
    default: flannel
  pod_cidr:
    description:
      - Pod network CIDR block for Flannel (the API's C(container_cidr)), for example V(172.20.0.0/16). Required to
        create a Flannel cluster. Private, at most /24, must not overlap O(service_cidr) or the VPC.
    type: str
  pod_vswitch_ids:
    description:
      - Terway pod vSwitches (one per node vSwitch zone). Used at creation with O(network_plugin=terway-eniip).
    type: list
    elements: str
  service_cidr:
    description:
      - Service CIDR block, /16 to /24, private. The service default is C(172.19.0.0/20).
    type: str
  node_cidr_mask:
    description:
      - Flannel only. Prefix length of each node's pod block (24 to 28); 26 gives 64 pod addresses per node.
    type: int
  proxy_mode:
    description:
      - kube-proxy mode. The service default is V(ipvs).
    type: str
    choices: [ipvs, iptables, nftables]
  ip_stack:
    description:
      - IP stack of the cluster.
    type: str
    choices: [ipv4, dual]
  snat_entry:
    description:
      - Create a NAT gateway and SNAT rules so nodes can reach the Internet. Used at creation only.
    type: bool
    default: false
  endpoint_public_access:
    description:
      - Expose the API server through an EIP. V(false) on creation when not set.
    type: bool
  security_group_id:
    description:
      - Existing security group for the control plane and nodes. Without it ACK creates one.
    type: str
  is_enterprise_security_group:
    description:
      - When ACK creates the security group, make it an advanced (enterprise) group. Used at creation only.
    type: bool
  resource_group_id:
    description:
      - Resource group of the cluster.
    type: str
  timezone:
    description:
      - Time zone of the cluster, such as V(Asia/Shanghai).
    type: str
  deletion_protection:
    description:
      - Refuse deletion through the console and the API. V(false) on creation when not set.
    type: bool
  tags:
    description:
      - Cluster tags. Keys and values may not start with C(aliyun) or C(acs:). Tags the service sets
        itself (keys starting with C(ack.aliyun.com)) are never compared or removed.
    type: dict
  purge_tags:
    description:
      - Remove tags not in O(tags). Only when O(tags) is set.
    type: bool
    default: true
  addons:
    description:
      - Add-ons to install at creation (C(name), optional C(config) as a JSON string, C(version),
        C(disabled) to suppress a default add-on). The O(network_plugin) add-on is added when missing.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Add-on name as listed by C(ListAddons), for example V(csi-plugin).
        type: str
        required: true
      config:
        description: Add-on configuration, a JSON string.
        type: str
      version:
        description: Add-on version; the service picks one when omitted.
        type: str
      disabled:
        description: Do not install this default add-on.
        type: bool
        default: false
  remove_node_pools:
    description:
      - With O(state=absent), force-delete every node pool of the cluster first. Without it the module
        refuses to delete a cluster that still has node pools.
    type: bool
    default: false
  retain_all_resources:
    description:
      - With O(state=absent), keep every cloud resource the cluster created.
    type: bool
    default: false
  retain_resources:
    description:
      - With O(state=absent), ids of cluster resources to keep.
    type: list
    elements: str
  delete_options:
    description:
      - With O(state=absent), what to do with each kind of resource the cluster created.
    type: list
    elements: dict
    suboptions:
      resource_type:
        description: Kind of resource.
        type: str
        required: true
        choices: [SLB, ALB, SLS_Data, SLS_ControlPlane, PrivateZone]
      delete_mode:
        description: Delete or keep them.
        type: str
        required: true
        choices: [delete, retain]
  wait:
    description:
      - Wait until the cluster is C(running) (or gone, for O(state=absent)).
      - With V(false) the module returns as soon as the service has accepted the request, with the cluster in
        its current state (C(initial) after a create, C(deleting) after a delete).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait in all; an ACK Pro cluster takes about ten minutes to create. The budget covers every
        wait of the run together (the task, then the cluster; each node pool, then the cluster for O(state=absent)).
      - When it runs out the module fails with C(WaitTimeout), returns the cluster as it is, and undoes nothing. Running
        the task again waits for the same cluster (it is found by name or id), so no second cluster is created.
    type: int
    default: 1800
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
  - confidential_ai.ack.attributes.ACTION_GROUP
notes:
  - Supports check mode (no mutating call; reads are made) and diff mode.
  - The cluster has no nodes; add the gn8v-tee node pool with M(confidential_ai.ack.ack_node_pool).
seealso:
  - module: confidential_ai.ack.ack_cluster_info
  - module: confidential_ai.ack.ack_node_pool
  - module: confidential_ai.ack.ack_kubeconfig
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: ACK Pro cluster for the confidential vLLM service
  confidential_ai.ack.ack_cluster:
    name: vllm-tee
    region: cn-beijing
    vpc_id: vpc-2zeexample0000000001
    vswitch_ids: [vsw-2zeexample000000000l]
    pod_cidr: 172.20.0.0/16
    service_cidr: 172.21.0.0/20
    snat_entry: true
    endpoint_public_access: true
    deletion_protection: true
    tags:
      project: vllm
  register: ack

- name: Delete it with its node pools (disable deletion protection first)
  confidential_ai.ack.ack_cluster:
    cluster_id: "{{ ack.cluster.cluster_id }}"
    state: absent
    remove_node_pools: true
"""

RETURN = r"""
cluster:
  description: The cluster (after the change; the prediction in check mode). Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    cluster_id:
      description: Cluster id (null in check mode before creation).
      type: str
      sample: c5b2f8e4a1d9c4e0b8f1a2c3d4e5f6a7b
    name:
      description: Cluster name.
      type: str
    state:
      description: C(initial), C(running), C(failed), C(updating), C(deleting), ...
      type: str
      sample: running
    cluster_spec:
      description: Edition.
      type: str
      sample: ack.pro.small
    kubernetes_version:
      description: Current Kubernetes version.
      type: str
      sample: 1.32.1-aliyun.1
    region_id:
      description: Region.
      type: str
    vpc_id:
      description: VPC.
      type: str
    vswitch_ids:
      description: Control-plane vSwitches.
      type: list
      elements: str
    service_cidr:
      description: Service CIDR block.
      type: str
    pod_cidr:
      description: Pod CIDR block (Flannel).
      type: str
    node_cidr_mask:
      description: Per-node pod prefix length (Flannel).
      type: int
    security_group_id:
      description: Security group.
      type: str
    deletion_protection:
      description: Whether deletion is refused.
      type: bool
    endpoint_public_access:
      description: Whether the API server has a public endpoint.
      type: bool
    api_server_endpoint:
      description: Public API server URL, when there is one.
      type: str
    intranet_api_server_endpoint:
      description: VPC-internal API server URL.
      type: str
    tags:
      description: Tags, as a dict.
      type: dict
    addons:
      description: Add-ons named at creation.
      type: list
      elements: str
    created:
      description: Creation time (RFC 3339).
      type: str
  sample:
    cluster_id: c5b2f8e4a1d9c4e0b8f1a2c3d4e5f6a7b
    name: vllm-tee
    state: running
task:
  description: The last ACK task the module followed (create, modify or delete), when there was one.
  returned: when a task was followed
  type: dict
  sample: {"task_id": "T-5faa48fb31b6b8078d000006", "state": "success", "task_type": "cluster_create"}
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule, client_token
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_waiter import WaitTimeout
from ansible_collections.confidential_ai.ack.plugins.module_utils import ack

try:
    from alibabacloud_cs20151215 import models as cs_models
except ImportError:
    cs_models = None
try:
    from alibabacloud_ecs20140526 import models as ecs_models
except ImportError:
    ecs_models = None

DIFF_KEYS = ("cluster_id", "name", "cluster_spec", "kubernetes_version", "vpc_id", "vswitch_ids", "service_cidr", "pod_cidr",
             "node_cidr_mask", "proxy_mode", "security_group_id", "resource_group_id", "timezone", "deletion_protection",
             "endpoint_public_access", "tags")


def argument_spec():
    return dict(
        name=dict(type="str"),
        cluster_id=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        cluster_spec=dict(type="str", choices=list(ack.CLUSTER_SPECS), default="ack.pro.small"),
        kubernetes_version=dict(type="str"),
        vpc_id=dict(type="str"),
        vswitch_ids=dict(type="list", elements="str"),
        network_plugin=dict(type="str", choices=["flannel", "terway-eniip"], default="flannel"),
        pod_cidr=dict(type="str"),
        pod_vswitch_ids=dict(type="list", elements="str"),
        service_cidr=dict(type="str"),
        node_cidr_mask=dict(type="int"),
        proxy_mode=dict(type="str", choices=["ipvs", "iptables", "nftables"]),
        ip_stack=dict(type="str", choices=["ipv4", "dual"]),
        snat_entry=dict(type="bool", default=False),
        endpoint_public_access=dict(type="bool"),
        security_group_id=dict(type="str"),
        is_enterprise_security_group=dict(type="bool"),
        resource_group_id=dict(type="str"),
        timezone=dict(type="str"),
        deletion_protection=dict(type="bool"),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=True),
        addons=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            config=dict(type="str"),
            version=dict(type="str"),
            disabled=dict(type="bool", default=False),
        )),
        remove_node_pools=dict(type="bool", default=False),
        retain_all_resources=dict(type="bool", default=False),
        retain_resources=dict(type="list", elements="str"),
        delete_options=dict(type="list", elements="dict", options=dict(
            resource_type=dict(type="str", required=True, choices=["SLB", "ALB", "SLS_Data", "SLS_ControlPlane", "PrivateZone"]),
            delete_mode=dict(type="str", required=True, choices=["delete", "retain"]),
        )),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
    )


def validate(module):
    """Every check that needs no call; fails the module naming the field."""
    p = module.params
    errors = []
    if p["wait_timeout"] < 1:
        errors.append("wait_timeout must be a positive number of seconds")
    errors.append(ack.check_name(p["name"], "name"))
    errors.append(ack.check_id(p["cluster_id"], "cluster_id"))
    errors.append(ack.check_id(p["vpc_id"], "vpc_id"))
    errors.append(ack.check_id(p["security_group_id"], "security_group_id"))
    for field in ("vswitch_ids", "pod_vswitch_ids"):
        for vsw in p[field] or []:
            errors.append(ack.check_id(vsw, "vswitch_id", field))
    if p["vswitch_ids"] is not None and not 1 <= len(p["vswitch_ids"]) <= 5:
        errors.append("vswitch_ids must list 1 to 5 vSwitches")
    errors.extend(ack.check_cluster_cidrs(p["service_cidr"], p["pod_cidr"], p["node_cidr_mask"]))
    errors.extend(ack.check_tags(p["tags"], "tags", key_max=64))
    if p["network_plugin"] == "terway-eniip" and p["pod_cidr"]:
        errors.append("pod_cidr is for Flannel; with network_plugin terway-eniip give pod_vswitch_ids")
    if p["network_plugin"] == "flannel" and p["pod_vswitch_ids"]:
        errors.append("pod_vswitch_ids is for Terway; with network_plugin flannel give pod_cidr")
    errors = [e for e in errors if e]
    if errors:
        module.fail_json(msg="; ".join(errors))


def create_body(module, vpc_id):
    p = module.params
    addons = [dict((k, v) for k, v in a.items() if v not in (None, False) or k == "name") for a in p["addons"]]
    if not any(a["name"] == p["network_plugin"] for a in addons):
        addons.insert(0, {"name": p["network_plugin"]})
    body = {
        "name": p["name"],
        "region_id": module.region,
        "cluster_type": "ManagedKubernetes",
        "profile": "Default",
        "cluster_spec": p["cluster_spec"],
        "kubernetes_version": p["kubernetes_version"],
        "vpcid": vpc_id,
        "vswitch_ids": p["vswitch_ids"],
        "container_cidr": p["pod_cidr"],
        "pod_vswitch_ids": p["pod_vswitch_ids"],
        "service_cidr": p["service_cidr"],
        "node_cidr_mask": str(p["node_cidr_mask"]) if p["node_cidr_mask"] is not None else None,
        "proxy_mode": p["proxy_mode"],
        "ip_stack": p["ip_stack"],
        "snat_entry": p["snat_entry"],
        "endpoint_public_access": bool(p["endpoint_public_access"]),
        "security_group_id": p["security_group_id"],
        "is_enterprise_security_group": p["is_enterprise_security_group"],
        "resource_group_id": p["resource_group_id"],
        "timezone": p["timezone"],
        "deletion_protection": bool(p["deletion_protection"]),
        "tags": ack.dict_to_tags(p["tags"]) if p["tags"] else None,
        "addons": addons,
    }
    return dict((k, v) for k, v in body.items() if v is not None)


def predicted(module, body):
    """The cluster as check mode predicts it."""
    p = module.params
    return {
        "cluster_id": None, "name": p["name"], "state": None, "cluster_type": "ManagedKubernetes", "profile": "Default",
        "cluster_spec": p["cluster_spec"], "region_id": module.region, "vpc_id": body.get("vpcid"),
        "vswitch_ids": p["vswitch_ids"], "kubernetes_version": p["kubernetes_version"],
        "service_cidr": p["service_cidr"] or ack.DEFAULT_SERVICE_CIDR, "pod_cidr": p["pod_cidr"],
        "node_cidr_mask": p["node_cidr_mask"], "proxy_mode": p["proxy_mode"], "ip_stack": p["ip_stack"],
        "security_group_id": p["security_group_id"], "resource_group_id": p["resource_group_id"], "timezone": p["timezone"],
        "deletion_protection": bool(p["deletion_protection"]), "endpoint_public_access": bool(p["endpoint_public_access"]),
        "tags": dict(p["tags"] or {}), "addons": [a["name"] for a in body.get("addons", [])],
    }


class ClusterManager:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.cs = module.client("cs")
        self.changed = False
        self.task = None
        self.diff = {"before": {}, "after": {}}
        self.deadline = ack.Deadline(self.p["wait_timeout"])
        # the cluster being waited for and the state wanted, for the message of a wait that times out
        self.waiting = None

    # -- helpers -----------------------------------------------------------------------------
    def timeout(self):
        """Seconds left of wait_timeout, which bounds all the waits of this run together."""
        return self.deadline.remaining()

    def timeout_failure(self, exc):
        """Fail for a wait that ran out, saying what exists and that a re-run only waits."""
        cluster_id, goal = self.waiting or (None, None)
        cluster = None
        if cluster_id:
            try:
                cluster = ack.describe_cluster(self.module, self.cs, cluster_id)
            except AlicloudError:
                cluster = None
        if goal == "running":
            rerun = "it finds this cluster (by name or id) and neither creates it again nor repeats a change already made"
        else:
            rerun = "it finds this cluster and does not delete it twice"
        msg = ack.timeout_message("cluster", cluster_id, goal, (cluster or {}).get("state", "gone" if goal == "deleted" else None),
                                  self.p["wait_timeout"], rerun)
        result = dict(changed=self.changed, cluster=cluster or {})
        if self.task:
            result["task"] = self.task
        self.module.fail_alicloud(exc, msg=msg, **result)

    def find(self):
        if self.p["cluster_id"]:
            return ack.describe_cluster(self.module, self.cs, self.p["cluster_id"])
        if not self.p["name"]:
            self.module.fail_json(msg="name or cluster_id is required")
        found = [c for c in ack.find_clusters(self.module, self.cs, self.p["name"]) if c["state"] not in ack.CLUSTER_GONE_STATES]
        if len(found) > 1:
            self.module.fail_json(msg="%d clusters are named %s (%s); give cluster_id" % (
                len(found), self.p["name"], ", ".join(c["cluster_id"] for c in found)))
        if not found:
            return None
        # list items lack some fields (node_cidr_mask, ...): read the detail
        return ack.describe_cluster(self.module, self.cs, found[0]["cluster_id"]) or found[0]

    def wait_state(self, cluster_id, want, operation):
        def fetch():
            return ack.describe_cluster(self.module, self.cs, cluster_id) or {"state": "gone"}

        def failed(cluster):
            if cluster["state"] in ack.CLUSTER_FAILED_STATES or cluster["state"] == "gone":
                return "cluster %s is %s" % (cluster_id, cluster["state"])
            return None
        return self.module.wait(fetch, lambda c: c["state"] == want, timeout=self.timeout(),
                                delay=self.deadline.delay, is_failed=failed,
                                describe=lambda c: "cluster %s is %s" % (cluster_id, c["state"]), operation=operation)

    def wait_gone(self, cluster_id, operation):
        def failed(cluster):
            if cluster and cluster["state"] == "delete_failed":
                return "cluster %s is delete_failed" % cluster_id
            return None
        return self.module.wait(lambda: ack.describe_cluster(self.module, self.cs, cluster_id),
                                lambda c: c is None or c["state"] == "deleted", timeout=self.timeout(),
                                delay=self.deadline.delay, is_failed=failed,
                                describe=lambda c: "cluster %s is %s" % (cluster_id, c["state"] if c else "gone"),
                                operation=operation)

    def follow(self, task_id, operation):
        if task_id:
            self.task = {"task_id": task_id}
            self.task = ack.wait_task(self.module, self.cs, task_id, self.timeout(), operation,
                                      delay=self.deadline.delay) or self.task

    # -- present --------------------------------------------------------------------------------
    def preflight(self, vpc_id):
        """Read the VPC and vSwitches: the vSwitches must be in the VPC, the CIDRs must not overlap it."""
        if ecs_models is None:
            return
        ecs = self.module.client("ecs")
        try:
            vpcs = self.module.call(ecs.describe_vpcs, ecs_models.DescribeVpcsRequest(region_id=self.module.region, vpc_id=vpc_id),
                                    operation="describe VPC %s" % vpc_id).body
            vpc_list = vpcs.vpcs.vpc if vpcs and vpcs.vpcs else []
            if not vpc_list:
                self.module.fail_json(msg="vpc_id %s was not found in region %s" % (vpc_id, self.module.region))
            cidrs = [vpc_list[0].cidr_block] if vpc_list[0].cidr_block else []
            request = ecs_models.DescribeVSwitchesRequest(region_id=self.module.region, vpc_id=vpc_id, page_size=50)
            vsws = self.module.call(ecs.describe_vswitches, request, operation="list the vSwitches of %s" % vpc_id).body
            known = {v.v_switch_id for v in (vsws.v_switches.v_switch if vsws and vsws.v_switches else [])}
        except AlicloudError as exc:
            if exc.kind == "client" and exc.http_status in (401, 403):
                self.module.warn("could not read VPC %s to check the vSwitches and CIDRs (%s); continuing" % (vpc_id, exc))
                return
            self.module.fail_alicloud(exc)
        missing = [v for v in self.p["vswitch_ids"] + (self.p["pod_vswitch_ids"] or []) if v not in known]
        if missing and len(known) < 50:
            self.module.fail_json(msg="vswitch_ids: %s not in VPC %s" % (", ".join(missing), vpc_id))
        errors = ack.check_cluster_cidrs(self.p["service_cidr"] or ack.DEFAULT_SERVICE_CIDR, self.p["pod_cidr"], None, cidrs)
        if errors:
            self.module.fail_json(msg="; ".join(errors))

    def create(self):
        p = self.p
        missing = [f for f in ("name", "vpc_id", "vswitch_ids") if not p[f]]
        if p["network_plugin"] == "flannel" and not p["pod_cidr"]:
            missing.append("pod_cidr")
        if p["network_plugin"] == "terway-eniip" and not p["pod_vswitch_ids"]:
            missing.append("pod_vswitch_ids")
        if missing:
            self.module.fail_json(msg="to create a cluster, set %s" % ", ".join(missing))
        self.preflight(p["vpc_id"])
        body = create_body(self.module, p["vpc_id"])
        self.changed = True
        if self.module.check_mode:
            cluster = predicted(self.module, body)
            self.diff = ack.diff_view({}, cluster, DIFF_KEYS)
            return cluster
        identity = {"name": p["name"], "region": self.module.region, "vpc": p["vpc_id"], "vswitches": sorted(p["vswitch_ids"])}
        cluster_id, task_id = self.create_call(body, client_token("ack_cluster", identity))
        cluster = ack.describe_cluster(self.module, self.cs, cluster_id)
        if cluster is None or cluster["state"] in ("deleting", "deleted"):
            # the token was remembered for a cluster deleted since: create with a token derived from it
            identity["after"] = cluster_id
            cluster_id, task_id = self.create_call(body, client_token("ack_cluster", identity))
        self.waiting = (cluster_id, "running")
        if p["wait"]:
            self.follow(task_id, "create cluster %s" % p["name"])
            cluster = self.wait_state(cluster_id, "running", "create cluster %s" % p["name"])
        else:
            self.task = {"task_id": task_id}
            cluster = ack.describe_cluster(self.module, self.cs, cluster_id)
        self.diff = ack.diff_view({}, cluster, DIFF_KEYS)
        return cluster

    def create_call(self, body, token):
        request = cs_models.CreateClusterRequest().from_map(dict(body, client_token=token))

        def lookup():
            found = [c for c in ack.find_clusters(self.module, self.cs, self.p["name"]) if c["state"] not in ("deleting", "deleted")]
            return found[0] if found else None
        how, result = ack.create_once(self.module, lambda: self.cs.create_cluster(request), lookup,
                                      "create cluster %s" % self.p["name"])
        if how == "found":
            return result["cluster_id"], None
        answer = ack.body_map(result)
        return answer.get("cluster_id"), answer.get("task_id")

    def update(self, cluster):
        p = self.p
        self.waiting = (cluster["cluster_id"], "running")
        if cluster["state"] == "initial" and p["wait"] and not self.module.check_mode:
            cluster = self.wait_state(cluster["cluster_id"], "running", "wait for cluster %s" % cluster["cluster_id"])
        desired = {k: p[k] for k in ack.CLUSTER_FIXED}
        desired.update({k: p[k] for k in ack.CLUSTER_UPDATABLE if k != "name"})
        desired["tags"] = p["tags"]
        desired["purge_tags"] = p["purge_tags"]
        if p["cluster_id"] and p["name"]:
            desired["name"] = p["name"]
        if p["vpc_id"] is None:
            desired.pop("vpc_id")
        updates, fixed, (tags_set, tags_remove) = ack.cluster_changes(desired, cluster)
        if fixed:
            self.module.fail_json(msg=ack.fixed_message("cluster", cluster["cluster_id"], fixed), cluster=cluster)
        if not updates and not tags_set and not tags_remove:
            return cluster
        if cluster["state"] in ack.CLUSTER_FAILED_STATES:
            self.module.fail_json(msg="cluster %s is in state %s and cannot be updated" % (cluster["cluster_id"], cluster["state"]),
                                  cluster=cluster)
        self.changed = True
        after = dict(cluster)
        for option, (dummy, want) in updates.items():
            after[option] = want
        after["tags"] = dict((k, v) for k, v in cluster["tags"].items() if k not in tags_remove)
        after["tags"].update(tags_set)
        self.diff = ack.diff_view(cluster, after, DIFF_KEYS)
        if self.module.check_mode:
            return after
        cid = cluster["cluster_id"]
        if updates:
            names = {"name": "cluster_name", "endpoint_public_access": "api_server_eip"}
            body = dict((names.get(k, k), want) for k, (dummy, want) in updates.items())
            request = cs_models.ModifyClusterRequest().from_map(body)
            answer = ack.body_map(self.module.call(self.cs.modify_cluster, cid, request, operation="modify cluster %s" % cid))
            if p["wait"]:
                self.follow(answer.get("task_id"), "modify cluster %s" % cid)
        if tags_set:
            request = cs_models.TagResourcesRequest().from_map({
                "region_id": self.module.region, "resource_ids": [cid], "resource_type": "CLUSTER",
                "tags": ack.dict_to_tags(tags_set)})
            self.module.call(self.cs.tag_resources, request, operation="tag cluster %s" % cid)
        if tags_remove:
            request = cs_models.UntagResourcesRequest(region_id=self.module.region, resource_ids=[cid], resource_type="CLUSTER",
                                                      tag_keys=tags_remove)
            self.module.call(self.cs.untag_resources, request, operation="untag cluster %s" % cid)
        if p["wait"] and updates:
            return self.wait_state(cid, "running", "modify cluster %s" % cid)
        return ack.describe_cluster(self.module, self.cs, cid) or after

    def present(self):
        cluster = self.find()
        if cluster is None and self.p["cluster_id"]:
            self.module.fail_json(msg="cluster_id %s was not found" % self.p["cluster_id"])
        if cluster is not None and cluster["state"] == "deleting":
            self.module.fail_json(msg="cluster %s (%s) is being deleted; run again once it is gone" % (
                cluster["name"], cluster["cluster_id"]), cluster=cluster)
        if cluster is None:
            return self.create()
        if cluster["state"] == "failed":
            self.module.fail_json(msg="cluster %s (%s) is in state failed; delete it with state=absent and create it again" % (
                cluster["name"], cluster["cluster_id"]), cluster=cluster)
        return self.update(cluster)

    # -- absent ---------------------------------------------------------------------------------
    def absent(self):
        cluster = self.find()
        if cluster is None:
            return {}
        cid = cluster["cluster_id"]
        self.waiting = (cid, "deleted")
        if cluster["state"] == "deleting":
            if self.p["wait"] and not self.module.check_mode:
                self.wait_gone(cid, "wait for cluster %s to be deleted" % cid)
            return {}
        if cluster["state"] == "initial" and self.p["wait"] and not self.module.check_mode:
            # still being created: the service refuses the delete until the creation has ended
            cluster = self.module.wait(lambda: ack.describe_cluster(self.module, self.cs, cid) or {"state": "gone"},
                                       lambda c: c["state"] != "initial", timeout=self.timeout(),
                                       delay=self.deadline.delay,
                                       describe=lambda c: "cluster %s is %s" % (cid, c["state"]),
                                       operation="wait for the creation of cluster %s to end" % cid)
            if cluster["state"] == "gone":
                return {}
        if cluster["deletion_protection"]:
            self.module.fail_json(msg="cluster %s has deletion_protection enabled; set deletion_protection: false "
                                      "with state=present first" % cid, cluster=cluster)
        pools = ack.list_node_pools(self.module, self.cs, cid)
        if pools and not self.p["remove_node_pools"]:
            self.module.fail_json(msg="cluster %s still has node pools (%s); delete them first or set remove_node_pools: true" % (
                cid, ", ".join("%s %s" % (n["name"], n["nodepool_id"]) for n in pools)), cluster=cluster)
        self.changed = True
        self.diff = ack.diff_view(cluster, {}, DIFF_KEYS)
        if self.module.check_mode:
            return {}
        for pool in pools:
            self.delete_pool(cid, pool)
        request = cs_models.DeleteClusterRequest().from_map(dict((k, v) for k, v in {
            "retain_all_resources": self.p["retain_all_resources"],
            "retain_resources": self.p["retain_resources"],
            "delete_options": self.p["delete_options"]}.items() if v is not None))
        try:
            answer = ack.body_map(self.module.call(self.cs.delete_cluster, cid, request, operation="delete cluster %s" % cid))
        except AlicloudError as exc:
            if ack.is_not_found(exc):
                return {}
            raise
        if self.p["wait"]:
            self.follow(answer.get("task_id"), "delete cluster %s" % cid)
            self.wait_gone(cid, "delete cluster %s" % cid)
        else:
            self.task = {"task_id": answer.get("task_id")}
        return {}

    def delete_pool(self, cid, pool):
        pid = pool["nodepool_id"]
        if pool["state"] != "deleting":
            request = cs_models.DeleteClusterNodepoolRequest(force=True)
            try:
                self.module.call(self.cs.delete_cluster_nodepool, cid, pid, request, operation="delete node pool %s" % pid)
            except AlicloudError as exc:
                if not ack.is_not_found(exc):
                    raise
        self.module.wait(lambda: ack.describe_node_pool(self.module, self.cs, cid, pid), lambda p: p is None,
                         timeout=self.timeout(), delay=self.deadline.delay,
                         describe=lambda p: "node pool %s is %s" % (pid, p["state"] if p else "gone"),
                         operation="delete node pool %s" % pid)


def main():
    module = AlicloudModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_one_of=[["name", "cluster_id"]],
    )
    validate(module)
    manager = ClusterManager(module)
    try:
        cluster = manager.present() if module.params["state"] == "present" else manager.absent()
    except WaitTimeout as exc:
        manager.timeout_failure(exc)
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    result = dict(changed=manager.changed, cluster=cluster or {})
    if manager.task:
        result["task"] = manager.task
    if module._diff:
        result["diff"] = manager.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
