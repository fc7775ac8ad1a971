#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_instance
short_description: Create, start, stop and delete an ECS instance (for example an ecs.gn8v-tee GPU TEE worker)
version_added: 0.1.0
description:
  - Makes one ECS instance, found by O(instance_id), else by O(name) (the exact C(InstanceName)), else by
    all of O(tags), be V(present), V(running), V(stopped) or V(absent).
  - This is step 3.3 of the manual procedure (create an C(ecs.gn8v-tee) instance in the cluster's VPC, zone L,
    with Alibaba Cloud Linux 3.2104 LTS 64-bit), done idempotently.
  - "Before creating, a preflight checks, with read-only calls only: the vSwitch exists and is in O(zone_id);
    the security groups exist and are in the vSwitch's VPC; the instance type exists (C(DescribeInstanceTypes))
    and has stock in the zone (C(DescribeAvailableResource)), else the task fails with the list of the zones that
    do have stock; the image resolves and the system disk is at least as large as the image."
  - "Creation uses a deterministic C(ClientToken) derived from the request (secrets excluded), so a create whose
    answer was lost, retried by the module or re-run by the playbook, returns the instance already made instead
    of a second one. ECS remembers a token for a day or more: when a token answers with an instance that was
    deleted since, or ECS says it was used with other parameters, the module moves to the next token of a
    deterministic sequence (this costs up to 10 seconds of polling once)."
  - "Changed in place: O(tags) (C(TagResources), C(UntagResources) with O(purge_tags)); O(name) (when the instance
    is found by O(instance_id) or O(tags)), O(description) and O(deletion_protection) (C(ModifyInstanceAttribute));
    the running state (C(StartInstance), C(StopInstance))."
  - "Fixed at creation: O(zone_id), O(vswitch_id), O(instance_type), O(image_id), O(security_group_ids),
    O(key_pair_name), O(internet_max_bandwidth_out), O(charge_type), O(internet_charge_type), O(host_name). When
    one of them is set and differs from the instance, the task fails and names the fields. O(image),
    O(system_disk), O(password), O(user_data) and O(period) are used only at creation and never compared (ECS
    does not return them, or a newer image of the family may exist)."
options:
  state:
    description:
      - V(present) the instance exists (a new instance starts, as ECS starts every new instance; an existing
        one keeps its running state).
      - V(running) the instance exists and is C(Running) (a stopped instance is started).
      - V(stopped) the instance exists and is C(Stopped) (a new instance is created, waited for until
        C(Running), then stopped).
      - V(absent) the instance does not exist. A running instance is first stopped gracefully and waited for,
        then deleted; with O(force=true) it is deleted at once (C(DeleteInstance) with C(Force), like pulling
        the plug).
    type: str
    choices: [present, running, stopped, absent]
    default: present
  instance_id:
    description:
      - The id of an existing instance (C(i-...)). When set, it alone identifies the instance; the task never
        creates one.
    type: str
  name:
    description:
      - The instance name (C(InstanceName)), 2 to 128 characters, starting with a letter; letters, digits,
        colons, underscores, periods and hyphens.
      - Without O(instance_id), the instance is found by this exact name; more than one instance with the name
        is an error.
    type: str
  description:
    description:
      - Instance description (up to 256 characters). Changed in place.
    type: str
  host_name:
    description:
      - Host name of the operating system. Fixed at creation.
    type: str
  tags:
    description:
      - Tags of the instance, at most 20. Values are strings.
      - Without O(instance_id) and O(name), the instance is found by these tags (all must match).
      - Changed in place; tags not listed are kept unless O(purge_tags=true).
    type: dict
  purge_tags:
    description:
      - Remove the instance tags not listed in O(tags). Off by default, because ACK adds its own tags to
        instances attached to a cluster.
    type: bool
    default: false
  zone_id:
    description:
      - Zone, for example V(cn-beijing-l). Optional, as the vSwitch fixes the zone; when set, it must match the
        zone of O(vswitch_id).
    type: str
  vswitch_id:
    description:
      - vSwitch (C(vsw-...)) in the cluster's VPC. Required to create.
    type: str
  security_group_ids:
    description:
      - Security groups (C(sg-...)) in the vSwitch's VPC. Required to create.
    type: list
    elements: str
  instance_type:
    description:
      - Instance type, for example V(ecs.gn8v-tee.4xlarge). Required to create.
    type: str
  image_id:
    description:
      - Image id. Mutually exclusive with O(image).
    type: str
  image:
    description:
      - The image by name, when no O(image_id) is given; resolved with C(DescribeImages) to the newest
        C(Available) public image of its family that the instance type can boot.
      - V(Alibaba Cloud Linux 3.2104 LTS 64-bit) (also V(Alibaba Cloud Linux 3), V(alinux3)) is the family
        C(acs:alibaba_cloud_linux_3_2104_lts_x64). For instance types that boot only UEFI, and for TEE types
        (C(ecs.gn8v-tee.*), which run as Intel TDX guests), the UEFI variant
        C(acs:alibaba_cloud_linux_3_2104_lts_x64_uefi) is used instead.
      - A value starting with C(acs:) is used as the image family as it is.
      - When neither O(image_id) nor O(image) is set, V(Alibaba Cloud Linux 3.2104 LTS 64-bit) is used.
    type: str
  system_disk:
    description:
      - System disk. Used at creation only.
    type: dict
    suboptions:
      size:
        description:
          - Size in GiB, from 20 to 2048, and at least the size of the image (checked before creating).
          - The default, 100, is what the manual procedure asks for gn8v-tee nodes (drivers, CUDA and
            container images).
        type: int
        default: 100
      category:
        description:
          - Disk category.
        type: str
        choices: [cloud_essd, cloud_auto, cloud_efficiency, cloud_ssd, cloud_essd_entry]
        default: cloud_essd
      performance_level:
        description:
          - ESSD performance level.
        type: str
        choices: [PL0, PL1, PL2, PL3]
  key_pair_name:
    description:
      - SSH key pair to log in with. Mutually exclusive with O(password). Fixed at creation.
    type: str
  password:
    description:
      - Login password, 8 to 30 characters with three of upper case, lower case, digits and special characters.
        Used at creation only; never logged, never part of the client token.
    type: str
  user_data:
    description:
      - User data (for example a cloud-init script) as text, at most 32 KiB. The module encodes it in Base64.
        Used at creation only.
    type: str
  internet_max_bandwidth_out:
    description:
      - Public bandwidth in Mbit/s, 0 to 100. More than 0 gives the instance a public IP address. Fixed at
        creation; 0 when not set.
    type: int
  internet_charge_type:
    description:
      - Billing of public traffic. Fixed at creation; V(PayByTraffic) when not set.
    type: str
    choices: [PayByTraffic, PayByBandwidth]
  charge_type:
    description:
      - Billing method of the instance. Fixed at creation; V(PostPaid) when not set.
    type: str
    choices: [PostPaid, PrePaid]
  period:
    description:
      - Subscription length in months for O(charge_type=PrePaid). Used at creation only; 1 when not set.
    type: int
  deletion_protection:
    description:
      - Protect the instance from deletion. Changed in place.
      - With O(state=absent), V(false) lets the task turn protection off before deleting; otherwise a
        protected instance makes the task fail.
    type: bool
  stopped_mode:
    description:
      - How O(state=stopped) stops the instance. V(StopCharging) releases the compute resources (no
        charge for them), so a later start can fail when the type is sold out, which is common for gn8v-tee.
    type: str
    choices: [KeepCharging, StopCharging]
    default: KeepCharging
  force:
    description:
      - With O(state=absent), delete a running instance at once (C(Force), no graceful stop).
      - With O(state=stopped), stop without a graceful operating-system shutdown (C(ForceStop)).
    type: bool
    default: false
  wait:
    description:
      - Wait until the instance reaches the state asked for (C(Running), C(Stopped), or gone).
      - Waits the task cannot do without (a graceful stop before a delete, C(Running) before a stop) always
        happen.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds the whole task may spend waiting, over all its waits.
    type: int
    default: 600
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
  - confidential_ai.ack.attributes.ACTION_GROUP
notes:
  - The stock preflight runs only when the instance has to be created. The zone list in its message comes
    from C(DescribeAvailableResource) for the region.
  - gn8v-tee instances have Intel TDX and NVIDIA CC on by default, so the module sends no
    C(SecurityOptions.ConfidentialComputingMode); it only picks a UEFI image for them.
  - Check mode runs the lookups and the preflight (read-only calls) and makes no change.
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: A gn8v-tee worker in zone L of the cluster VPC (step 3.3 of the procedure)
  confidential_ai.ack.ecs_instance:
    region: cn-beijing
    name: vllm-tee-worker-1
    instance_type: ecs.gn8v-tee.4xlarge
    vswitch_id: vsw-2zeexamplezonel000000
    security_group_ids: [sg-2zeexample0000000000]
    image: Alibaba Cloud Linux 3.2104 LTS 64-bit
    system_disk:
      size: 200
      category: cloud_essd
    key_pair_name: ops
    internet_max_bandwidth_out: 10
    tags:
      project: confidential-ai
    state: running
  register: worker

- name: Stop it (keep the resources reserved)
  confidential_ai.ack.ecs_instance:
    region: cn-beijing
    name: vllm-tee-worker-1
    state: stopped

- name: Delete it (stopped gracefully first)
  confidential_ai.ack.ecs_instance:
    region: cn-beijing
    instance_id: "{{ worker.instance.instance_id }}"
    state: absent
"""

RETURN = r"""
instance:
  description: The instance after the task; empty when it is absent. In check mode, what it would be
    (C(instance_id) is null for an instance that would be created).
  returned: always
  type: dict
  contains:
    instance_id: {description: Instance id., type: str, sample: i-2zeabcdefghij1234567}
    name: {description: Instance name., type: str}
    host_name: {description: Host name., type: str}
    description: {description: Description., type: str}
    status: {description: "C(Pending), C(Starting), C(Running), C(Stopping) or C(Stopped).", type: str}
    stopped_mode: {description: "C(KeepCharging), C(StopCharging) or C(Not-applicable).", type: str}
    region_id: {description: Region., type: str}
    zone_id: {description: Zone., type: str, sample: cn-beijing-l}
    instance_type: {description: Instance type., type: str, sample: ecs.gn8v-tee.4xlarge}
    instance_type_family: {description: Instance type family., type: str}
    cpu: {description: vCPUs., type: int}
    memory_mib: {description: Memory in MiB., type: int}
    gpu_amount: {description: GPUs., type: int}
    gpu_spec: {description: GPU model., type: str}
    image_id: {description: Image id., type: str}
    os_name: {description: Operating system name., type: str}
    os_type: {description: Operating system type., type: str}
    vpc_id: {description: VPC., type: str}
    vswitch_id: {description: vSwitch., type: str}
    private_ip: {description: Primary private address., type: str}
    private_ips: {description: Private addresses., type: list, elements: str}
    public_ip: {description: "Public (or elastic) address; null without one.", type: str}
    public_ips: {description: Public addresses., type: list, elements: str}
    eip_address: {description: Elastic IP address bound to the instance., type: str}
    network_interface_id: {description: Primary network interface., type: str}
    mac_address: {description: MAC address of the primary interface., type: str}
    security_group_ids: {description: Security groups., type: list, elements: str}
    tags: {description: Tags., type: dict}
    key_pair_name: {description: Key pair., type: str}
    charge_type: {description: "C(PostPaid) or C(PrePaid).", type: str}
    internet_charge_type: {description: Billing of public traffic., type: str}
    internet_max_bandwidth_out: {description: Public bandwidth in Mbit/s., type: int}
    deletion_protection: {description: Deletion protection., type: bool}
    creation_time: {description: "Creation time, C(yyyy-MM-ddTHH:mmZ).", type: str}
    start_time: {description: Last start time., type: str}
    expired_time: {description: Expiry time (subscriptions)., type: str}
    operation_locks: {description: "Lock reasons (for example C(financial)); empty when none.", type: list, elements: str}
actions:
  description: What the task did (or would do in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [create, stop]
"""

import base64
import time

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_waiter import WaitTimeout
from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils.ecs import (
    INSTANCE_ID_RE, INSTANCE_TYPE_RE, MAX_SYSTEM_DISK_GIB, MAX_TOKEN_GENERATIONS, MAX_USER_DATA_BYTES,
    MIN_SYSTEM_DISK_GIB, SECURITY_GROUP_ID_RE, VSWITCH_ID_RE, ZONE_ID_RE, EcsInputError, apply_changes,
    compare_instance, describe_instance_type, describe_security_groups, describe_stock, describe_vswitch,
    ecs_models, fixed_field_message, get_instance, instance_client_token, is_token_conflict, lookup_instances,
    normalize_tags, resolve_image, run_identity, stock_problem, validate_instance_name, validate_password,
    validate_tags,
)

WAIT_DELAY = 3
VISIBLE_TIMEOUT = 10  # seconds a new instance may take to show in DescribeInstances
DIFF_FIELDS = ("instance_id", "name", "description", "status", "tags", "deletion_protection", "zone_id",
               "vswitch_id", "instance_type", "image_id", "security_group_ids", "key_pair_name",
               "internet_max_bandwidth_out", "charge_type")


def argument_spec():
    return dict(
        state=dict(type="str", default="present", choices=["present", "running", "stopped", "absent"]),
        instance_id=dict(type="str"),
        name=dict(type="str"),
        description=dict(type="str"),
        host_name=dict(type="str"),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=False),
        zone_id=dict(type="str"),
        vswitch_id=dict(type="str"),
        security_group_ids=dict(type="list", elements="str"),
        instance_type=dict(type="str"),
        image_id=dict(type="str"),
        image=dict(type="str"),
        system_disk=dict(type="dict", apply_defaults=True, options=dict(
            size=dict(type="int", default=100),
            category=dict(type="str", default="cloud_essd",
                          choices=["cloud_essd", "cloud_auto", "cloud_efficiency", "cloud_ssd", "cloud_essd_entry"]),
            performance_level=dict(type="str", choices=["PL0", "PL1", "PL2", "PL3"]),
        )),
        key_pair_name=dict(type="str", no_log=False),
        password=dict(type="str", no_log=True),
        user_data=dict(type="str"),
        internet_max_bandwidth_out=dict(type="int"),
        internet_charge_type=dict(type="str", choices=["PayByTraffic", "PayByBandwidth"]),
        charge_type=dict(type="str", choices=["PostPaid", "PrePaid"]),
        period=dict(type="int"),
        deletion_protection=dict(type="bool"),
        stopped_mode=dict(type="str", default="KeepCharging", choices=["KeepCharging", "StopCharging"]),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
    )


def validate_params(params):
    """Messages for every option value ECS would refuse (checked before any call); each names its option."""
    errors = []
    if params["wait_timeout"] < 0:
        errors.append("wait_timeout must not be negative (got %d)" % params["wait_timeout"])
    if params["instance_id"] is not None and not INSTANCE_ID_RE.match(params["instance_id"]):
        errors.append("instance_id %r is not an instance id (i-...)" % params["instance_id"])
    if params["name"] is not None:
        problem = validate_instance_name(params["name"])
        if problem:
            errors.append(problem)
    if params["description"] is not None:
        if len(params["description"]) > 256:
            errors.append("description is longer than 256 characters")
        elif params["description"].startswith(("http://", "https://")):
            errors.append("description must not start with http:// or https://")
    if params["host_name"] is not None and not 2 <= len(params["host_name"]) <= 64:
        errors.append("host_name must be 2 to 64 characters long")
    if params["tags"] is not None:
        errors.extend(validate_tags(params["tags"]))
    if params["zone_id"] is not None and not ZONE_ID_RE.match(params["zone_id"]):
        errors.append("zone_id %r is not a zone id such as cn-beijing-l" % params["zone_id"])
    if params["vswitch_id"] is not None and not VSWITCH_ID_RE.match(params["vswitch_id"]):
        errors.append("vswitch_id %r is not a vSwitch id (vsw-...)" % params["vswitch_id"])
    if params["security_group_ids"] is not None:
        if not params["security_group_ids"]:
            errors.append("security_group_ids must not be empty")
        bad = [g for g in params["security_group_ids"] if not SECURITY_GROUP_ID_RE.match(g or "")]
        if bad:
            errors.append("security_group_ids: %s not a security group id (sg-...)" % ", ".join(repr(b) for b in bad))
        if len(params["security_group_ids"]) > 5:
            errors.append("security_group_ids: an instance can be in at most 5 security groups")
    if params["instance_type"] is not None and not INSTANCE_TYPE_RE.match(params["instance_type"]):
        errors.append("instance_type %r is not an instance type such as ecs.gn8v-tee.4xlarge" % params["instance_type"])
    disk = params["system_disk"] or {}
    size = disk.get("size")
    if size is not None and not MIN_SYSTEM_DISK_GIB <= size <= MAX_SYSTEM_DISK_GIB:
        errors.append("system_disk.size must be %d to %d GiB (got %d)" % (MIN_SYSTEM_DISK_GIB, MAX_SYSTEM_DISK_GIB, size))
    if params["password"] is not None:
        problem = validate_password(params["password"])
        if problem:
            errors.append(problem)
    if params["user_data"] is not None and len(params["user_data"].encode("utf-8")) > MAX_USER_DATA_BYTES:
        errors.append("user_data is %d bytes; ECS accepts at most %d" % (len(params["user_data"].encode("utf-8")), MAX_USER_DATA_BYTES))
    bandwidth = params["internet_max_bandwidth_out"]
    if bandwidth is not None and not 0 <= bandwidth <= 100:
        errors.append("internet_max_bandwidth_out must be 0 to 100 Mbit/s (got %d)" % bandwidth)
    if params["period"] is not None:
        if params["charge_type"] != "PrePaid":
            errors.append("period applies only with charge_type=PrePaid")
        elif not 1 <= params["period"] <= 60:
            errors.append("period must be 1 to 60 months")
    return errors


def desired_fields(params, identified_by):
    """The fields the task manages (None = not managed), in the normalised instance's terms."""
    desired = {
        "description": params["description"],
        "deletion_protection": params["deletion_protection"],
        "tags": normalize_tags(params["tags"]) if params["tags"] is not None else None,
        "zone_id": params["zone_id"],
        "vswitch_id": params["vswitch_id"],
        "instance_type": params["instance_type"],
        "image_id": params["image_id"],
        "security_group_ids": params["security_group_ids"],
        "key_pair_name": params["key_pair_name"],
        "internet_max_bandwidth_out": params["internet_max_bandwidth_out"],
        "charge_type": params["charge_type"],
        "internet_charge_type": params["internet_charge_type"],
        "host_name": params["host_name"],
        "name": params["name"] if identified_by != "name" else None,
    }
    return desired


def encode_user_data(text):
    """User data as ECS wants it: Base64 of the UTF-8 bytes."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def projection(instance):
    """The fields shown in the diff."""
    if not instance:
        return {}
    return {k: instance.get(k) for k in DIFF_FIELDS}


class InstanceTask:
    """One run of the module: lookup, preflight, create/update/start/stop/delete, waits."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.check = module.check_mode
        self.actions = []
        self.deadline = time.monotonic() + max(self.params["wait_timeout"], 0)

    # -- helpers -------------------------------------------------------------------------------
    def act(self, name):
        self.actions.append(name)

    def remaining(self):
        return max(self.deadline - time.monotonic(), 0)

    def call(self, func, request, operation):
        return self.module.call(func, request, operation=operation)

    def wait_status(self, instance_id, target, operation, fresh=False):
        """Wait until the instance has status ``target``; a start that ends Stopped is a failure."""
        seen = []

        def fetch():
            return get_instance(self.module, self.client, instance_id)

        def is_failed(instance):
            if instance is None:
                return "instance %s disappeared" % instance_id
            seen.append(instance["status"])
            if target == "Running" and instance["status"] == "Stopped":
                if fresh or any(s != "Stopped" for s in seen[:-1]):
                    return "instance %s went to Stopped instead of Running (the start failed)" % instance_id
            return None

        return self.module.wait(fetch, lambda i: i is not None and i["status"] == target, timeout=self.remaining(),
                                delay=WAIT_DELAY, is_failed=is_failed, operation=operation,
                                describe=lambda i: i["status"] if i else "gone")

    def wait_gone(self, instance_id):
        return self.module.wait(lambda: get_instance(self.module, self.client, instance_id), lambda i: i is None,
                                timeout=self.remaining(), delay=WAIT_DELAY, operation="wait for the deletion of %s" % instance_id,
                                describe=lambda i: i["status"] if i else "gone")

    def fail(self, msg):
        self.module.fail_json(msg=msg, actions=self.actions)

    # -- create ----------------------------------------------------------------------------------
    def preflight(self):
        """Read-only checks before a create; returns the facts the create needs."""
        p = self.params
        missing = [f for f in ("instance_type", "vswitch_id", "security_group_ids") if not p[f]]
        if missing:
            self.fail("no instance matches %s; to create it, set %s (missing: %s)" % (
                self.identity_text(), ", ".join(("instance_type", "vswitch_id", "security_group_ids")), ", ".join(missing)))
        region = self.module.region
        vswitch = describe_vswitch(self.module, self.client, p["vswitch_id"])
        if vswitch is None:
            self.fail("vswitch_id %s does not exist in region %s" % (p["vswitch_id"], region))
        zone = vswitch.get("ZoneId")
        if p["zone_id"] and p["zone_id"] != zone:
            self.fail("zone_id %s does not match vswitch_id %s, which is in zone %s" % (p["zone_id"], p["vswitch_id"], zone))
        groups = describe_security_groups(self.module, self.client, p["security_group_ids"])
        unknown = [g for g in p["security_group_ids"] if g not in groups]
        if unknown:
            self.fail("security_group_ids: %s not found in region %s" % (", ".join(unknown), region))
        elsewhere = [g for g in p["security_group_ids"] if groups[g].get("VpcId") != vswitch.get("VpcId")]
        if elsewhere:
            self.fail("security_group_ids: %s not in VPC %s of vswitch_id %s" % (", ".join(elsewhere), vswitch.get("VpcId"), p["vswitch_id"]))
        type_info = describe_instance_type(self.module, self.client, p["instance_type"])
        if type_info is None:
            self.fail("instance_type %s does not exist in region %s" % (p["instance_type"], region))
        stock = describe_stock(self.module, self.client, p["instance_type"], None, p["charge_type"] or "PostPaid")
        problem = stock_problem(stock, zone, p["instance_type"], region)
        if problem:
            self.fail(problem)
        try:
            image = resolve_image(self.module, self.client, type_info, image_id=p["image_id"], image=p["image"])
        except EcsInputError as exc:
            self.fail(str(exc))
        image_size = int(image.get("Size") or 0)
        if p["system_disk"]["size"] < image_size:
            self.fail("system_disk.size %d GiB is smaller than the image %s (%d GiB)" % (
                p["system_disk"]["size"], image.get("ImageId"), image_size))
        return {"zone_id": zone, "vswitch": vswitch, "type": type_info, "image": image}

    def run_request(self, facts):
        p = self.params
        disk = p["system_disk"]
        prepaid = p["charge_type"] == "PrePaid"
        tags = normalize_tags(p["tags"])
        return ecs_models.RunInstancesRequest(
            region_id=self.module.region,
            zone_id=facts["zone_id"],
            instance_type=p["instance_type"],
            image_id=facts["image"]["ImageId"],
            v_switch_id=p["vswitch_id"],
            security_group_ids=list(p["security_group_ids"]),
            instance_name=p["name"],
            host_name=p["host_name"],
            description=p["description"],
            tag=[ecs_models.RunInstancesRequestTag(key=k, value=v) for k, v in sorted(tags.items())] or None,
            system_disk=ecs_models.RunInstancesRequestSystemDisk(category=disk["category"], size=str(disk["size"]),
                                                                 performance_level=disk.get("performance_level")),
            key_pair_name=p["key_pair_name"],
            password=p["password"],
            user_data=encode_user_data(p["user_data"]) if p["user_data"] is not None else None,
            internet_max_bandwidth_out=p["internet_max_bandwidth_out"] or 0,
            internet_charge_type=p["internet_charge_type"] or "PayByTraffic",
            instance_charge_type=p["charge_type"] or "PostPaid",
            period=(p["period"] or 1) if prepaid else None,
            period_unit="Month" if prepaid else None,
            deletion_protection=p["deletion_protection"],
            amount=1,
        )

    def would_be(self, facts):
        """The instance a create would make (check mode)."""
        p = self.params
        return {
            "instance_id": None, "name": p["name"], "description": p["description"] or "",
            "status": "Stopped" if p["state"] == "stopped" else "Running", "tags": normalize_tags(p["tags"]),
            "deletion_protection": bool(p["deletion_protection"]), "zone_id": facts["zone_id"],
            "vswitch_id": p["vswitch_id"], "vpc_id": facts["vswitch"].get("VpcId"), "instance_type": p["instance_type"],
            "image_id": facts["image"]["ImageId"], "security_group_ids": list(p["security_group_ids"]),
            "key_pair_name": p["key_pair_name"], "internet_max_bandwidth_out": p["internet_max_bandwidth_out"] or 0,
            "charge_type": p["charge_type"] or "PostPaid", "internet_charge_type": p["internet_charge_type"] or "PayByTraffic",
            "host_name": p["host_name"],
        }

    def create(self):
        facts = self.preflight()
        self.act("create")
        if self.check:
            return self.would_be(facts)
        request = self.run_request(facts)
        identity = run_identity(request.to_map())
        for generation in range(MAX_TOKEN_GENERATIONS):
            request.client_token = instance_client_token(identity, generation)
            try:
                body = self.call(self.client.run_instances, request, "create instance %s" % self.identity_text()).body
            except AlicloudError as exc:
                if is_token_conflict(exc):
                    continue  # this token made another instance earlier: next generation
                raise
            raw = body.to_map() if body is not None else {}
            ids = (raw.get("InstanceIdSets") or {}).get("InstanceIdSet") or []
            if not ids:
                self.fail("RunInstances answered without an instance id (request id %s)" % raw.get("RequestId"))
            instance = self.await_visible(ids[0])
            if instance is None:
                continue  # the token answered with an instance deleted since: next generation
            if self.params["wait"] or self.params["state"] == "stopped":
                instance = self.wait_status(instance["instance_id"], "Running", "wait for the new instance to run", fresh=True)
            return instance
        self.fail("could not create the instance: %d client tokens in a row were taken by other or deleted instances" % (
            MAX_TOKEN_GENERATIONS))
        return None

    def await_visible(self, instance_id):
        """The new instance once DescribeInstances shows it; None when it does not within VISIBLE_TIMEOUT."""
        try:
            return self.module.wait(lambda: get_instance(self.module, self.client, instance_id), lambda i: i is not None,
                                    timeout=min(VISIBLE_TIMEOUT, max(self.remaining(), 1)), delay=1,
                                    operation="find the new instance %s" % instance_id,
                                    describe=lambda i: i["status"] if i else "not visible")
        except WaitTimeout:
            return None

    # -- update -----------------------------------------------------------------------------------
    def update(self, instance, changes):
        """Apply in-place changes; returns the instance as it now is (or would be)."""
        iid = instance["instance_id"]
        region = self.module.region
        if changes["tags_add"]:
            self.act("tag")
            if not self.check:
                self.call(self.client.tag_resources, ecs_models.TagResourcesRequest(
                    region_id=region, resource_type="instance", resource_id=[iid],
                    tag=[ecs_models.TagResourcesRequestTag(key=k, value=v) for k, v in sorted(changes["tags_add"].items())]),
                    "tag instance %s" % iid)
        if changes["tags_remove"]:
            self.act("untag")
            if not self.check:
                self.call(self.client.untag_resources, ecs_models.UntagResourcesRequest(
                    region_id=region, resource_type="instance", resource_id=[iid], tag_key=list(changes["tags_remove"])),
                    "untag instance %s" % iid)
        if changes["update"]:
            self.act("modify")
            if not self.check:
                update = changes["update"]
                self.call(self.client.modify_instance_attribute, ecs_models.ModifyInstanceAttributeRequest(
                    instance_id=iid, instance_name=update.get("name"), description=update.get("description"),
                    deletion_protection=update.get("deletion_protection")), "modify instance %s" % iid)
        if self.check:
            return apply_changes(instance, changes)
        return get_instance(self.module, self.client, iid) or instance

    # -- running state ----------------------------------------------------------------------------
    def ensure_running(self, instance):
        iid, status = instance["instance_id"], instance["status"]
        if status == "Running":
            return instance
        if status in ("Pending", "Starting"):
            if self.params["wait"] and not self.check:
                return self.wait_status(iid, "Running", "wait for instance %s to run" % iid)
            return instance
        self.act("start")
        if self.check:
            return dict(instance, status="Running")
        if status == "Stopping":
            self.wait_status(iid, "Stopped", "wait for instance %s to stop before starting it" % iid)
        self.call(self.client.start_instance, ecs_models.StartInstanceRequest(instance_id=iid), "start instance %s" % iid)
        if self.params["wait"]:
            return self.wait_status(iid, "Running", "wait for instance %s to run" % iid)
        return get_instance(self.module, self.client, iid) or instance

    def ensure_stopped(self, instance, must_wait=False, force=False):
        iid, status = instance["instance_id"], instance["status"]
        wait = self.params["wait"] or must_wait
        if status == "Stopped":
            return instance
        if status == "Stopping":
            if wait and not self.check:
                return self.wait_status(iid, "Stopped", "wait for instance %s to stop" % iid)
            return instance
        self.act("stop")
        if self.check:
            return dict(instance, status="Stopped")
        if status in ("Pending", "Starting"):
            self.wait_status(iid, "Running", "wait for instance %s to run before stopping it" % iid)
        self.call(self.client.stop_instance, ecs_models.StopInstanceRequest(
            instance_id=iid, force_stop=force, stopped_mode=self.params["stopped_mode"]), "stop instance %s" % iid)
        if wait:
            return self.wait_status(iid, "Stopped", "wait for instance %s to stop" % iid)
        return get_instance(self.module, self.client, iid) or instance

    # -- delete -----------------------------------------------------------------------------------
    def delete(self, instance):
        iid = instance["instance_id"]
        if instance["deletion_protection"]:
            if self.params["deletion_protection"] is not False:
                self.fail("instance %s has deletion protection; set deletion_protection: false in this task to turn it "
                          "off and delete the instance" % iid)
            instance = self.update(instance, {"update": {"deletion_protection": False}, "tags_add": {}, "tags_remove": []})
        force = self.params["force"]
        if not force and instance["status"] != "Stopped":
            instance = self.ensure_stopped(instance, must_wait=True)
        self.act("delete")
        if self.check:
            return
        self.call(self.client.delete_instance, ecs_models.DeleteInstanceRequest(
            instance_id=iid, force=True if force else None, force_stop=True if force else None,
            terminate_subscription=True if instance.get("charge_type") == "PrePaid" else None), "delete instance %s" % iid)
        if self.params["wait"]:
            self.wait_gone(iid)

    # -- main -------------------------------------------------------------------------------------
    def identified_by(self):
        if self.params["instance_id"]:
            return "instance_id"
        return "name" if self.params["name"] else "tags"

    def identity_text(self):
        key = self.identified_by()
        return "%s=%s" % (key, self.params[key])

    def lookup(self):
        p = self.params
        by = self.identified_by()
        found = lookup_instances(self.module, self.client, instance_id=p["instance_id"] if by == "instance_id" else None,
                                 name=p["name"] if by == "name" else None,
                                 tags=normalize_tags(p["tags"]) if by == "tags" else None)
        if len(found) > 1:
            self.fail("%d instances match %s: %s; address one with instance_id" % (
                len(found), self.identity_text(), ", ".join(i["instance_id"] for i in found)))
        return found[0] if found else None

    def run(self):
        p = self.params
        current = self.lookup()
        state = p["state"]
        if state == "absent":
            if current is not None:
                self.delete(current)
            return current, None
        if current is None:
            if self.identified_by() == "instance_id":
                self.fail("instance_id %s does not exist in region %s (to create an instance, identify it by name or "
                          "tags instead)" % (p["instance_id"], self.module.region))
            instance = self.create()
        else:
            changes = compare_instance(desired_fields(p, self.identified_by()), current, p["purge_tags"])
            if changes["fixed"]:
                self.fail(fixed_field_message(changes["fixed"], current["instance_id"]))
            instance = self.update(current, changes)
        if state == "running" and instance.get("instance_id"):
            instance = self.ensure_running(instance)
        elif state == "stopped" and instance.get("instance_id"):
            instance = self.ensure_stopped(instance, force=p["force"])
        return current, instance


def main():
    module = AlicloudModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_one_of=[("instance_id", "name", "tags")],
        mutually_exclusive=[("key_pair_name", "password"), ("image_id", "image")],
    )
    errors = validate_params(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors))
    zone = module.params["zone_id"]
    if zone and not zone.startswith(module.region + "-"):
        module.fail_json(msg="zone_id %s is not a zone of region %s" % (zone, module.region))
    client = module.client("ecs")
    task = InstanceTask(module, client)
    try:
        before, after = task.run()
    except AlicloudError as exc:
        module.fail_alicloud(exc, actions=task.actions)
    result = dict(changed=bool(task.actions), instance=after or {}, actions=task.actions)
    if module._diff:
        result["diff"] = {"before": projection(before), "after": projection(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
