#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ack_node_pool
short_description: Create, update or delete an ACK node pool for confidential-computing GPU nodes
version_added: 0.1.0
description:
  - Manages a node pool of an ACK cluster as step 3.2 of the confidential vLLM deployment describes it
    ("a node pool to manage the confidential computing instances"); vSwitch in the zone that sells
    gn8v-tee, no auto scaling, Alibaba Cloud Linux 3, system disk of 100 GiB or more, expected number of
    nodes 0, and the node label C(ack.aliyun.com/nvidia-driver-version=550.144.03).
  - The pool is found by O(nodepool_id) or by its exact O(name) in the cluster. Auto scaling is always
    off (C(auto_scaling.enable=false)); the pool keeps O(desired_size) nodes.
  - C(CreateClusterNodePool) takes no client token, so before any retry of a create the module looks
    the pool up by name again; a create that was carried out but whose answer was lost is found, not
    repeated.
  - Creation and updates follow the returned task (C(DescribeTaskInfo)) and then the pool until it is
    C(active) with O(desired_size) healthy nodes.
  - "Updates go through C(ModifyClusterNodePool), which accepts (SDK model) the name, instance types,
    vSwitches, image, system and data disks, desired size, security groups, key pair, ECS tags, labels,
    taints, the managed-pool switch and the confidential-computing switch. Changes to the scaling group
    apply to nodes created later; label and taint changes reach existing nodes only with O(update_nodes=true)."
  - "Fixed at creation by this module (an error names them): O(tee_enable) and O(instance_charge_type).
    The API would take a change, but the nodes already in the pool were built with the old setting, so
    the pool would misdescribe them; recreate the pool instead."
  - "Clearing every label, taint, ECS tag, data disk or security group of an existing pool is refused:
    C(ModifyClusterNodePool) reads an empty list as 'not specified' (wire reference section 5.2)."
  - A pool whose instance types are not C(ecs.gn8v-tee) types is created, with a warning; only
    gn8v-tee nodes are TDX confidential VMs with a GPU TEE.
options:
  cluster_id:
    description:
      - Id of the cluster.
    type: str
    required: true
  name:
    description:
      - Pool name, 1 to 63 letters, digits, Chinese characters, hyphens or underscores, not starting with a hyphen.
      - Required to create. With O(nodepool_id) set, a different name renames the pool.
    type: str
  nodepool_id:
    description:
      - Id of an existing pool. When set, the module never creates a pool.
    type: str
  state:
    description:
      - Whether the pool should exist.
    type: str
    choices: [present, absent]
    default: present
  vswitch_ids:
    description:
      - vSwitches of the nodes (1 to 8), in the cluster's VPC. Their zones decide where nodes are created;
        for gn8v-tee choose vSwitches in a zone that sells it (see M(confidential_ai.ack.ecs_zone_info)).
        Required to create.
    type: list
    elements: str
  instance_types:
    description:
      - Instance types in order of preference (1 to 10), for example V(ecs.gn8v-tee.4xlarge). Required to create.
    type: list
    elements: str
  image_type:
    description:
      - Operating system of the nodes (the API's C(image_type)). V(AliyunLinux3) is Alibaba Cloud Linux 3;
        V(AliyunLinux3Security) is its UEFI variant.
      - The default is the UEFI variant because Intel TDX guests boot through UEFI firmware (TDVF), so a
        gn8v-tee node needs a UEFI-bootable image. Whether ACK would pick a UEFI image by itself for
        V(AliyunLinux3) on a UEFI-only type is not known.
    type: str
    choices: [AliyunLinux3Security, AliyunLinux3, AliyunLinux3Arm64, AliyunLinux3ContainerOptimized, AliyunLinux,
              AliyunLinuxSecurity, ContainerOS, CentOS, Windows, WindowsCore]
    default: AliyunLinux3Security
  image_id:
    description:
      - A specific image; overrides the default image of O(image_type).
    type: str
  system_disk_category:
    description:
      - System disk category.
    type: str
    choices: [cloud_essd, cloud_auto, cloud_essd_entry, cloud_ssd, cloud_efficiency]
    default: cloud_essd
  system_disk_size:
    description:
      - System disk size in GiB, 100 to 2048. The deployment needs at least 100 GiB for the NVIDIA driver,
        CUDA and container images; smaller values are refused.
    type: int
    default: 100
  system_disk_performance_level:
    description:
      - ESSD performance level.
    type: str
    choices: [PL0, PL1, PL2, PL3]
  data_disks:
    description:
      - Data disks of the nodes.
    type: list
    elements: dict
    suboptions:
      category:
        description: Disk category.
        type: str
        choices: [cloud_essd, cloud_auto, cloud_essd_entry, cloud_ssd, cloud_efficiency]
        default: cloud_essd
      size:
        description: Size in GiB.
        type: int
        required: true
      performance_level:
        description: ESSD performance level.
        type: str
        choices: [PL0, PL1, PL2, PL3]
      encrypted:
        description: Encrypt the disk.
        type: bool
      auto_format:
        description: Format and mount the disk.
        type: bool
      file_system:
        description: File system when formatted.
        type: str
      mount_target:
        description: Mount point when formatted.
        type: str
  desired_size:
    description:
      - Number of nodes the pool keeps. V(0) on creation when not set (nodes are added later with
        M(confidential_ai.ack.ack_node_attach) or the attach script); not managed afterwards unless set.
      - Lowering it below the number of nodes in the pool removes nodes, which is refused unless
        O(allow_scale_in=true). Nodes added by attaching existing instances may count towards it.
    type: int
  allow_scale_in:
    description:
      - Allow a O(desired_size) lower than the pool's current node count.
    type: bool
    default: false
  labels:
    description:
      - Kubernetes labels of the nodes. The driver label from O(nvidia_driver_version) is added to them.
      - This is the complete set; labels not listed are removed.
    type: dict
    default: {}
  nvidia_driver_version:
    description:
      - Value of the node label C(ack.aliyun.com/nvidia-driver-version), which makes ACK install that
        NVIDIA driver on nodes it initialises. ACK reads it only when a node is added, and falls back
        silently to its default driver for a version it does not support.
      - Set to an empty string to leave the label out.
    type: str
    default: "550.144.03"
  taints:
    description:
      - Kubernetes taints of the nodes (the complete set). Not managed when not set.
    type: list
    elements: dict
    suboptions:
      key:
        description: Taint key.
        type: str
        required: true
      value:
        description: Taint value.
        type: str
        default: ""
      effect:
        description: Taint effect.
        type: str
        choices: [NoSchedule, NoExecute, PreferNoSchedule]
        default: NoSchedule
  tags:
    description:
      - ECS tags put on the node instances. Not managed when not set.
    type: dict
  security_group_ids:
    description:
      - Security groups of the nodes. The cluster's security group when not set at creation.
    type: list
    elements: str
  key_pair:
    description:
      - SSH key pair of the nodes ACK creates.
    type: str
  login_password:
    description:
      - Root password of the nodes ACK creates (instead of O(key_pair)). Used at creation only; it cannot
        be read back, so it is never compared.
    type: str
  instance_charge_type:
    description:
      - Billing of the nodes ACK creates. Fixed at creation by this module.
    type: str
    choices: [PostPaid]
    default: PostPaid
  tee_enable:
    description:
      - The pool's C(tee_config.tee_enable) ("confidential computing node pool").
      - "Default V(false), a decision: the field dates from ACK's SGX confidential-computing clusters;
        gn8v-tee instances have TDX and the GPU TEE on by default ('no additional configuration is needed
        to enable the confidential VM feature', deployment guide step 3), and the guide's node pool
        settings do not set it. Whether a gn8v-tee pool needs or accepts it is not documented; set it to
        V(true) if the service asks for it. Fixed at creation by this module."
    type: bool
    default: false
  management:
    description:
      - Managed node pool (automatic repair and upgrades). Off by default because automatic repair may
        replace a node, and with it a hand-installed driver.
    type: bool
    default: false
  resource_group_id:
    description:
      - Resource group of the node instances.
    type: str
  update_nodes:
    description:
      - Push label and taint changes to the nodes already in the pool.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), delete a pool that still has nodes; they are removed from the cluster and
        instances the pool created are released.
    type: bool
    default: false
  wait:
    description:
      - Wait until the pool is active with its desired nodes healthy (or gone, for O(state=absent)).
      - With V(false) the module returns as soon as the service has accepted the request, with the pool in
        its current state (C(initial) after a create).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait in all. The budget covers every wait of the run together (a cluster still being
        created, the task, then the pool).
      - When it runs out the module fails with C(WaitTimeout), returns the pool as it is, and undoes nothing. Running
        the task again waits for the same pool (it is found by name or id), so no second pool is created.
    type: int
    default: 900
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
  - confidential_ai.ack.attributes.ACTION_GROUP
notes:
  - Supports check mode (no mutating call) and diff mode.
seealso:
  - module: confidential_ai.ack.ack_node_pool_info
  - module: confidential_ai.ack.ack_node_attach
  - module: confidential_ai.ack.ack_node_attach_script
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: Node pool for the gn8v-tee nodes, in zone L, no nodes yet
  confidential_ai.ack.ack_node_pool:
    region: cn-beijing
    cluster_id: "{{ ack.cluster.cluster_id }}"
    name: gpu-tee
    vswitch_ids: [vsw-2zeexample000000000l]
    instance_types: [ecs.gn8v-tee.4xlarge]
    system_disk_size: 200
    taints:
      - {key: nvidia.com/gpu, value: tee, effect: NoSchedule}
  register: pool

- name: Delete it with its nodes
  confidential_ai.ack.ack_node_pool:
    cluster_id: "{{ ack.cluster.cluster_id }}"
    nodepool_id: "{{ pool.node_pool.nodepool_id }}"
    state: absent
    force: true
"""

RETURN = r"""
node_pool:
  description: The node pool (after the change; the prediction in check mode). Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    nodepool_id:
      description: Pool id (null in check mode before creation).
      type: str
      sample: np1f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c
    name:
      description: Pool name.
      type: str
    cluster_id:
      description: Cluster id.
      type: str
    state:
      description: C(initial), C(active), C(scaling), C(updating), C(removing), C(deleting).
      type: str
      sample: active
    instance_types:
      description: Instance types.
      type: list
      elements: str
    vswitch_ids:
      description: vSwitches.
      type: list
      elements: str
    image_type:
      description: Image type.
      type: str
    system_disk_category:
      description: System disk category.
      type: str
    system_disk_size:
      description: System disk size, GiB.
      type: int
    desired_size:
      description: Desired number of nodes.
      type: int
    labels:
      description: Node labels.
      type: dict
    taints:
      description: Node taints.
      type: list
      elements: dict
    tags:
      description: ECS tags of the nodes.
      type: dict
    tee_enable:
      description: The pool's confidential-computing switch.
      type: bool
    auto_scaling_enabled:
      description: Always false for pools this module makes.
      type: bool
    total_nodes:
      description: Nodes in the pool.
      type: int
    healthy_nodes:
      description: Healthy nodes.
      type: int
  sample:
    nodepool_id: np1f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c
    name: gpu-tee
    state: active
    labels: {"ack.aliyun.com/nvidia-driver-version": "550.144.03"}
task:
  description: The last ACK task the module followed.
  returned: when a task was followed
  type: dict
  sample: {"task_id": "T-5faa48fb31b6b8078d000007", "state": "success", "task_type": "nodepool_create"}
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
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

DIFF_KEYS = ("nodepool_id", "name", "instance_types", "vswitch_ids", "image_type", "image_id", "system_disk_category",
             "system_disk_size", "system_disk_performance_level", "data_disks", "desired_size", "security_group_ids", "key_pair",
             "labels", "taints", "tags", "tee_enable", "management_enabled", "resource_group_id")
DISK_CHOICES = list(ack.DISK_CATEGORIES)
PL_CHOICES = ["PL0", "PL1", "PL2", "PL3"]


def argument_spec():
    return dict(
        cluster_id=dict(type="str", required=True),
        name=dict(type="str"),
        nodepool_id=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        vswitch_ids=dict(type="list", elements="str"),
        instance_types=dict(type="list", elements="str"),
        image_type=dict(type="str", choices=list(ack.IMAGE_TYPES), default="AliyunLinux3Security"),
        image_id=dict(type="str"),
        system_disk_category=dict(type="str", choices=DISK_CHOICES, default="cloud_essd"),
        system_disk_size=dict(type="int", default=100),
        system_disk_performance_level=dict(type="str", choices=PL_CHOICES),
        data_disks=dict(type="list", elements="dict", options=dict(
            category=dict(type="str", choices=DISK_CHOICES, default="cloud_essd"),
            size=dict(type="int", required=True),
            performance_level=dict(type="str", choices=PL_CHOICES),
            encrypted=dict(type="bool"),
            auto_format=dict(type="bool"),
            file_system=dict(type="str"),
            mount_target=dict(type="str"),
        )),
        desired_size=dict(type="int"),
        allow_scale_in=dict(type="bool", default=False),
        labels=dict(type="dict", default={}),
        nvidia_driver_version=dict(type="str", default="550.144.03"),
        taints=dict(type="list", elements="dict", options=dict(
            key=dict(type="str", required=True, no_log=False),
            value=dict(type="str", default=""),
            effect=dict(type="str", choices=list(ack.TAINT_EFFECTS), default="NoSchedule"),
        )),
        tags=dict(type="dict"),
        security_group_ids=dict(type="list", elements="str"),
        key_pair=dict(type="str", no_log=False),
        login_password=dict(type="str", no_log=True),
        instance_charge_type=dict(type="str", choices=["PostPaid"], default="PostPaid"),
        tee_enable=dict(type="bool", default=False),
        management=dict(type="bool", default=False),
        resource_group_id=dict(type="str"),
        update_nodes=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=900),
    )


def effective_labels(params):
    labels = dict((k, "" if v is None else str(v)) for k, v in (params["labels"] or {}).items())
    if params["nvidia_driver_version"]:
        labels[ack.NVIDIA_DRIVER_LABEL] = params["nvidia_driver_version"]
    return labels


def validate(module):
    p = module.params
    errors = []
    if p["wait_timeout"] < 1:
        errors.append("wait_timeout must be a positive number of seconds")
    errors.append(ack.check_id(p["cluster_id"], "cluster_id"))
    errors.append(ack.check_id(p["nodepool_id"], "nodepool_id"))
    errors.append(ack.check_name(p["name"], "name"))
    if p["vswitch_ids"] is not None:
        if not 1 <= len(p["vswitch_ids"]) <= 8:
            errors.append("vswitch_ids must list 1 to 8 vSwitches")
        errors.extend(ack.check_id(v, "vswitch_id", "vswitch_ids") for v in p["vswitch_ids"])
    if p["instance_types"] is not None:
        if not 1 <= len(p["instance_types"]) <= 10:
            errors.append("instance_types must list 1 to 10 instance types")
        for itype in p["instance_types"]:
            if not ack.INSTANCE_TYPE_RE.match(itype):
                errors.append("instance_types: %r is not an instance type such as ecs.gn8v-tee.4xlarge" % itype)
    for sg in p["security_group_ids"] or []:
        errors.append(ack.check_id(sg, "security_group_id", "security_group_ids"))
    if p["system_disk_size"] < ack.MIN_SYSTEM_DISK_GIB:
        errors.append("system_disk_size must be at least %d GiB (got %d): the node needs room for the NVIDIA driver, CUDA and "
                      "container images" % (ack.MIN_SYSTEM_DISK_GIB, p["system_disk_size"]))
    elif p["system_disk_size"] > 2048:
        errors.append("system_disk_size must be at most 2048 GiB (got %d)" % p["system_disk_size"])
    if p["desired_size"] is not None and not 0 <= p["desired_size"] <= 1000:
        errors.append("desired_size must be from 0 to 1000 (got %d)" % p["desired_size"])
    for index, disk in enumerate(p["data_disks"] or []):
        if not 20 <= disk["size"] <= 65536:
            errors.append("data_disks[%d].size must be from 20 to 65536 GiB (got %d)" % (index, disk["size"]))
    errors.extend(ack.check_labels(effective_labels(p), "labels"))
    errors.extend(ack.check_taints(p["taints"], "taints"))
    errors.extend(ack.check_tags(p["tags"], "tags"))
    if p["key_pair"] and p["login_password"]:
        errors.append("key_pair and login_password are mutually exclusive")
    errors = [e for e in errors if e]
    if errors:
        module.fail_json(msg="; ".join(errors))
    for warning in ack.instance_type_warnings(p["instance_types"]):
        module.warn(warning)


def desired_view(params):
    """The module's wanted state in the normalised pool's terms (None = not managed)."""
    p = params
    return {
        "name": p["name"] if p["nodepool_id"] else None,
        "instance_types": p["instance_types"],
        "vswitch_ids": p["vswitch_ids"],
        "image_type": p["image_type"],
        "image_id": p["image_id"],
        "system_disk_category": p["system_disk_category"],
        "system_disk_size": p["system_disk_size"],
        "system_disk_performance_level": p["system_disk_performance_level"],
        "data_disks": p["data_disks"],
        "desired_size": p["desired_size"],
        "security_group_ids": p["security_group_ids"],
        "key_pair": p["key_pair"],
        "labels": effective_labels(p),
        "taints": ack.normalize_taints(p["taints"]) if p["taints"] is not None else None,
        "tags": p["tags"],
        "tee_enable": p["tee_enable"],
        "instance_charge_type": p["instance_charge_type"],
        "management_enabled": p["management"],
        "resource_group_id": p["resource_group_id"],
    }


def create_body(params):
    p = params
    scaling = {
        "vswitch_ids": p["vswitch_ids"],
        "instance_types": p["instance_types"],
        "image_type": p["image_type"],
        "image_id": p["image_id"],
        "system_disk_category": p["system_disk_category"],
        "system_disk_size": p["system_disk_size"],
        "system_disk_performance_level": p["system_disk_performance_level"],
        "data_disks": ack.normalize_data_disks(p["data_disks"]) if p["data_disks"] else None,
        "desired_size": p["desired_size"] or 0,
        "instance_charge_type": p["instance_charge_type"],
        "security_group_ids": p["security_group_ids"],
        "key_pair": p["key_pair"],
        "login_password": p["login_password"],
        "tags": ack.dict_to_tags(p["tags"]) if p["tags"] else None,
    }
    info = {"name": p["name"], "type": "ess", "resource_group_id": p["resource_group_id"]}
    return {
        "nodepool_info": dict((k, v) for k, v in info.items() if v is not None),
        "scaling_group": dict((k, v) for k, v in scaling.items() if v is not None),
        "kubernetes_config": {"labels": ack.dict_to_tags(effective_labels(p)), "taints": ack.normalize_taints(p["taints"] or []),
                              "runtime": "containerd"},
        "auto_scaling": {"enable": False},
        "management": {"enable": bool(p["management"])},
        "tee_config": {"tee_enable": bool(p["tee_enable"])},
    }


class PoolManager:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.cs = module.client("cs")
        self.cid = self.p["cluster_id"]
        self.changed = False
        self.task = None
        self.diff = {"before": {}, "after": {}}
        self.deadline = ack.Deadline(self.p["wait_timeout"])
        # the pool being waited for and the state wanted, for the message of a wait that times out
        self.waiting = None

    def timeout(self):
        """Seconds left of wait_timeout, which bounds all the waits of this run together."""
        return self.deadline.remaining()

    def timeout_failure(self, exc):
        """Fail for a wait that ran out, saying what exists and that a re-run only waits."""
        pool_id, goal = self.waiting or (None, None)
        pool = None
        if pool_id:
            try:
                pool = ack.describe_node_pool(self.module, self.cs, self.cid, pool_id)
            except AlicloudError:
                pool = None
        if pool_id is None:
            msg = ack.timeout_message("cluster", self.cid, "running", None, self.p["wait_timeout"],
                                      "no node pool was created yet")
        else:
            if goal == "active":
                rerun = "it finds this node pool (by name or id) and neither creates it again nor repeats a change already made"
            else:
                rerun = "it finds this node pool and does not delete it twice"
            state = (pool or {}).get("state", "gone" if goal == "deleted" else None)
            msg = ack.timeout_message("node pool", pool_id, goal, state, self.p["wait_timeout"], rerun)
        result = dict(changed=self.changed, node_pool=pool or {})
        if self.task:
            result["task"] = self.task
        self.module.fail_alicloud(exc, msg=msg, **result)

    def cluster(self):
        cluster = ack.describe_cluster(self.module, self.cs, self.cid)
        if cluster is None:
            self.module.fail_json(msg="cluster_id %s was not found" % self.cid)
        return cluster

    def find(self):
        if self.p["nodepool_id"]:
            return ack.describe_node_pool(self.module, self.cs, self.cid, self.p["nodepool_id"])
        if not self.p["name"]:
            self.module.fail_json(msg="name or nodepool_id is required")
        pools = ack.list_node_pools(self.module, self.cs, self.cid, self.p["name"])
        if len(pools) > 1:
            self.module.fail_json(msg="%d node pools of cluster %s are named %s; give nodepool_id" % (len(pools), self.cid, self.p["name"]))
        return pools[0] if pools else None

    def wait_ready(self, pool_id, desired, operation):
        def fetch():
            return ack.describe_node_pool(self.module, self.cs, self.cid, pool_id) or {"state": "gone"}

        def done(pool):
            return pool["state"] == "active" and (desired is None or pool["healthy_nodes"] >= desired)

        def failed(pool):
            if pool["state"] in ("gone", "failed", "deleting"):
                return "node pool %s is %s" % (pool_id, pool["state"])
            return None
        return self.module.wait(fetch, done, timeout=self.timeout(), delay=self.deadline.delay, is_failed=failed,
                                describe=lambda pool: "node pool %s is %s with %s of %s nodes healthy" % (
                                    pool_id, pool["state"], pool.get("healthy_nodes"), desired),
                                operation=operation)

    def follow(self, task_id, operation):
        if task_id:
            self.task = {"task_id": task_id}
            self.task = ack.wait_task(self.module, self.cs, task_id, self.timeout(), operation,
                                      delay=self.deadline.delay) or self.task

    def preflight(self, cluster):
        """The vSwitches must be in the cluster's VPC (one DescribeVSwitches read)."""
        if ecs_models is None or not cluster.get("vpc_id"):
            return
        ecs = self.module.client("ecs")
        try:
            request = ecs_models.DescribeVSwitchesRequest(region_id=self.module.region, vpc_id=cluster["vpc_id"], page_size=50)
            body = self.module.call(ecs.describe_vswitches, request, operation="list the vSwitches of %s" % cluster["vpc_id"]).body
        except AlicloudError as exc:
            if exc.kind == "client" and exc.http_status in (401, 403):
                self.module.warn("could not read the vSwitches of %s (%s); continuing" % (cluster["vpc_id"], exc))
                return
            raise
        entries = body.v_switches.v_switch if body and body.v_switches else []
        zones = dict((v.v_switch_id, v.zone_id) for v in entries)
        missing = [v for v in self.p["vswitch_ids"] if v not in zones]
        if missing and len(entries) < 50:
            self.module.fail_json(msg="vswitch_ids: %s not in the cluster's VPC %s" % (", ".join(missing), cluster["vpc_id"]))

    def create(self, cluster):
        p = self.p
        missing = [f for f in ("name", "vswitch_ids", "instance_types") if not p[f]]
        if missing:
            self.module.fail_json(msg="to create a node pool, set %s" % ", ".join(missing))
        if cluster["state"] == "initial" and p["wait"] and not self.module.check_mode:
            cluster = self.wait_cluster()
        if cluster["state"] not in ("running", "initial") and not self.module.check_mode:
            self.module.fail_json(msg="cluster %s is %s; node pools can be added to a running cluster" % (self.cid, cluster["state"]))
        self.preflight(cluster)
        body = create_body(p)
        self.changed = True
        if self.module.check_mode:
            pool = dict(desired_view(p), nodepool_id=None, cluster_id=self.cid, name=p["name"], state=None,
                        desired_size=p["desired_size"] or 0, tags=p["tags"] or {}, security_group_ids=p["security_group_ids"] or [],
                        auto_scaling_enabled=False, total_nodes=0, healthy_nodes=0)
            self.diff = ack.diff_view({}, pool, DIFF_KEYS)
            return pool
        request = cs_models.CreateClusterNodePoolRequest().from_map(body)
        how, result = ack.create_once(
            self.module, lambda: self.cs.create_cluster_node_pool(self.cid, request),
            lambda: (ack.list_node_pools(self.module, self.cs, self.cid, p["name"]) or [None])[0],
            "create node pool %s" % p["name"])
        if how == "found":
            pool_id, task_id = result["nodepool_id"], None
        else:
            answer = ack.body_map(result)
            pool_id, task_id = answer.get("nodepool_id"), answer.get("task_id")
        self.waiting = (pool_id, "active")
        if p["wait"]:
            self.follow(task_id, "create node pool %s" % p["name"])
            pool = self.wait_ready(pool_id, p["desired_size"] or 0, "create node pool %s" % p["name"])
        else:
            self.task = {"task_id": task_id} if task_id else None
            pool = ack.describe_node_pool(self.module, self.cs, self.cid, pool_id)
        self.diff = ack.diff_view({}, pool, DIFF_KEYS)
        return pool

    def wait_cluster(self):
        return self.module.wait(lambda: ack.describe_cluster(self.module, self.cs, self.cid) or {"state": "gone"},
                                lambda c: c["state"] == "running", timeout=self.timeout(), delay=self.deadline.delay,
                                is_failed=lambda c: "cluster %s is %s" % (self.cid, c["state"]) if c["state"] in (
                                    "failed", "gone", "deleting") else None,
                                describe=lambda c: "cluster %s is %s" % (self.cid, c["state"]), operation="wait for cluster %s" % self.cid)

    def update(self, pool):
        p = self.p
        updates, fixed = ack.node_pool_changes(desired_view(p), pool)
        if fixed:
            reasons = []
            for option, have, want in fixed:
                reasons.append("%s is %r, wanted %r (%s)" % (option, have, want, ack.NODE_POOL_FIXED_REASONS.get(option, "fixed")))
            self.module.fail_json(msg="cannot change node pool %s: %s; recreate the pool to change it" % (
                pool["nodepool_id"], "; ".join(reasons)), node_pool=pool)
        cleared = ack.cleared_lists(updates)
        if cleared:
            self.module.fail_json(msg="cannot remove every entry of %s from node pool %s: ModifyClusterNodePool reads an empty list "
                                      "as 'not specified'; keep at least one entry or recreate the pool" % (
                                          ", ".join(cleared), pool["nodepool_id"]), node_pool=pool)
        if "desired_size" in updates and updates["desired_size"][1] < pool["total_nodes"] and not p["allow_scale_in"]:
            self.module.fail_json(msg="desired_size %d is below the %d nodes of node pool %s; this would remove nodes. Set "
                                      "allow_scale_in: true to do it" % (updates["desired_size"][1], pool["total_nodes"], pool["nodepool_id"]),
                                  node_pool=pool)
        if not updates:
            return pool
        self.changed = True
        after = dict(pool)
        for option, (dummy, want) in updates.items():
            after[option] = want
        if "tags" in updates:
            after["tags"] = dict((k, str(v)) for k, v in updates["tags"][1].items())
        self.diff = ack.diff_view(pool, after, DIFF_KEYS)
        if self.module.check_mode:
            return after
        body = ack.node_pool_modify_body(updates, p["update_nodes"])
        request = cs_models.ModifyClusterNodePoolRequest().from_map(body)
        pid = pool["nodepool_id"]
        answer = ack.body_map(self.module.call(self.cs.modify_cluster_node_pool, self.cid, pid, request,
                                               operation="modify node pool %s" % pid))
        if p["wait"]:
            self.follow(answer.get("task_id"), "modify node pool %s" % pid)
            desired = updates["desired_size"][1] if "desired_size" in updates else None
            return self.wait_ready(pid, desired, "modify node pool %s" % pid)
        self.task = {"task_id": answer.get("task_id")}
        return ack.describe_node_pool(self.module, self.cs, self.cid, pid) or after

    def present(self):
        cluster = self.cluster()
        pool = self.find()
        if pool is None and self.p["nodepool_id"]:
            self.module.fail_json(msg="nodepool_id %s was not found in cluster %s" % (self.p["nodepool_id"], self.cid))
        if pool is None:
            return self.create(cluster)
        if pool["state"] == "deleting":
            self.module.fail_json(msg="node pool %s is being deleted; run again once it is gone" % pool["nodepool_id"], node_pool=pool)
        self.waiting = (pool["nodepool_id"], "active")
        if pool["state"] != "active" and self.p["wait"] and not self.module.check_mode:
            pool = self.wait_ready(pool["nodepool_id"], None, "wait for node pool %s" % pool["nodepool_id"])
        return self.update(pool)

    def absent(self):
        if ack.describe_cluster(self.module, self.cs, self.cid) is None:
            return {}
        pool = self.find()
        if pool is None:
            return {}
        pid = pool["nodepool_id"]
        self.waiting = (pid, "deleted")
        if pool["state"] != "deleting":
            nodes = ack.list_nodes(self.module, self.cs, self.cid, pid)
            remaining = [n for n in nodes if n["state"] != "removing"]
            if remaining and not self.p["force"]:
                self.module.fail_json(msg="node pool %s still has %d nodes (%s); remove them first or set force: true" % (
                    pid, len(remaining), ", ".join(n["instance_id"] for n in remaining)), node_pool=pool)
            self.changed = True
            self.diff = ack.diff_view(pool, {}, DIFF_KEYS)
            if self.module.check_mode:
                return {}
            request = cs_models.DeleteClusterNodepoolRequest(force=bool(self.p["force"]))
            try:
                answer = ack.body_map(self.module.call(self.cs.delete_cluster_nodepool, self.cid, pid, request,
                                                       operation="delete node pool %s" % pid))
            except AlicloudError as exc:
                if ack.is_not_found(exc):
                    return {}
                raise
            if self.p["wait"]:
                self.follow(answer.get("task_id"), "delete node pool %s" % pid)
            else:
                self.task = {"task_id": answer.get("task_id")}
        if self.p["wait"] and not self.module.check_mode:
            self.module.wait(lambda: ack.describe_node_pool(self.module, self.cs, self.cid, pid), lambda pl: pl is None,
                             timeout=self.timeout(), delay=self.deadline.delay,
                             describe=lambda pl: "node pool %s is %s" % (pid, pl["state"] if pl else "gone"),
                             operation="delete node pool %s" % pid)
        return {}


def main():
    module = AlicloudModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_one_of=[["name", "nodepool_id"]],
    )
    validate(module)
    manager = PoolManager(module)
    try:
        pool = manager.present() if module.params["state"] == "present" else manager.absent()
    except WaitTimeout as exc:
        manager.timeout_failure(exc)
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    result = dict(changed=manager.changed, node_pool=pool or {})
    if manager.task:
        result["task"] = manager.task
    if module._diff:
        result["diff"] = manager.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
