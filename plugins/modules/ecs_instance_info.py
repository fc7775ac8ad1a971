#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_instance_info
short_description: List ECS instances, filtered by ids, name, tags, zone, status and network
version_added: 0.1.0
description:
  - Lists the instances of a region with C(DescribeInstances), every page (C(NextToken) paging, 100 instances
    a page), and returns them in the same shape as M(confidential_ai.ack.ecs_instance) returns one.
  - Every filter given must match. With no filter, every instance of the region is listed.
options:
  instance_ids:
    description:
      - Only these instances (C(i-...)). Any number; they are asked for 100 at a time.
    type: list
    elements: str
  name:
    description:
      - Instance name; C(*) is a wildcard (for example V(vllm-tee-*)), as in the ECS console.
    type: str
  tags:
    description:
      - Only instances with all these tags. A tag whose value is empty or null matches any value of that key.
    type: dict
  zone_id:
    description:
      - Only instances in this zone.
    type: str
  status:
    description:
      - Only instances in this status.
    type: str
    choices: [Pending, Starting, Running, Stopping, Stopped]
  vpc_id:
    description:
      - Only instances in this VPC.
    type: str
  vswitch_id:
    description:
      - Only instances in this vSwitch.
    type: str
  instance_type:
    description:
      - Only instances of this type.
    type: str
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.INFO_MODULE
  - confidential_ai.ack.attributes.ACTION_GROUP
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: The running gn8v-tee workers of the project
  confidential_ai.ack.ecs_instance_info:
    region: cn-beijing
    instance_type: ecs.gn8v-tee.4xlarge
    status: Running
    tags:
      project: confidential-ai
  register: workers

- name: Their private addresses
  ansible.builtin.debug:
    msg: "{{ workers.instances | map(attribute='private_ip') | list }}"
"""

RETURN = r"""
instances:
  description:
    - The matching instances, in the order ECS lists them. Each has the fields of the C(instance) result of
      M(confidential_ai.ack.ecs_instance) (instance_id, name, status, zone_id, instance_type, private_ip, public_ip,
      vswitch_id, security_group_ids, image_id, tags, creation_time, ...).
  returned: always
  type: list
  elements: dict
  sample:
    - instance_id: i-2zeabcdefghij1234567
      name: vllm-tee-worker-1
      status: Running
      zone_id: cn-beijing-l
      instance_type: ecs.gn8v-tee.4xlarge
      private_ip: 192.168.12.10
      public_ip: null
      tags: {project: confidential-ai}
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils.ecs import (
    INSTANCE_ID_RE, VSWITCH_ID_RE, ZONE_ID_RE, describe_instances, normalize_tags, tags_match, validate_tags,
)


def validate_params(params):
    """Messages for filter values that cannot be right; each names its option."""
    errors = []
    bad = [i for i in params["instance_ids"] or [] if not INSTANCE_ID_RE.match(i or "")]
    if bad:
        errors.append("instance_ids: %s not an instance id (i-...)" % ", ".join(repr(b) for b in bad))
    if params["zone_id"] is not None and not ZONE_ID_RE.match(params["zone_id"]):
        errors.append("zone_id %r is not a zone id such as cn-beijing-l" % params["zone_id"])
    if params["vswitch_id"] is not None and not VSWITCH_ID_RE.match(params["vswitch_id"]):
        errors.append("vswitch_id %r is not a vSwitch id (vsw-...)" % params["vswitch_id"])
    if params["vpc_id"] is not None and not params["vpc_id"].startswith("vpc-"):
        errors.append("vpc_id %r is not a VPC id (vpc-...)" % params["vpc_id"])
    if params["tags"] is not None:
        errors.extend(validate_tags(params["tags"]))
    return errors


def main():
    module = AlicloudModule(
        argument_spec=dict(
            instance_ids=dict(type="list", elements="str"),
            name=dict(type="str"),
            tags=dict(type="dict"),
            zone_id=dict(type="str"),
            status=dict(type="str", choices=["Pending", "Starting", "Running", "Stopping", "Stopped"]),
            vpc_id=dict(type="str"),
            vswitch_id=dict(type="str"),
            instance_type=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    errors = validate_params(p)
    if errors:
        module.fail_json(msg="; ".join(errors))
    if p["zone_id"] and not p["zone_id"].startswith(module.region + "-"):
        module.fail_json(msg="zone_id %s is not a zone of region %s" % (p["zone_id"], module.region))
    tags = normalize_tags(p["tags"]) if p["tags"] is not None else None
    client = module.client("ecs")
    try:
        instances = describe_instances(
            module, client, instance_ids=p["instance_ids"], name=p["name"], tags=tags, zone_id=p["zone_id"],
            status=p["status"], vpc_id=p["vpc_id"], vswitch_id=p["vswitch_id"], instance_type=p["instance_type"])
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    if tags:
        instances = [i for i in instances if tags_match(i["tags"], tags)]
    module.exit_json(changed=False, instances=instances)


if __name__ == "__main__":
    main()
