#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_zone_info
short_description: Zones of a region and the stock of instance types in them
version_added: 0.1.0
description:
  - Lists the zones of a region (C(DescribeZones)) and, for each instance type asked for, whether
    each zone has stock (C(DescribeAvailableResource)).
  - Use it to choose the zone of the gn8v-tee node pool and instance before creating anything,
    because gn8v-tee types are offered in few zones and sell out.
options:
  instance_types:
    description:
      - Instance types to check the stock of, for example V(ecs.gn8v-tee.4xlarge).
    type: list
    elements: str
    default: []
  zone_id:
    description:
      - Only this zone.
    type: str
  charge_type:
    description:
      - Billing method the stock is checked for.
    type: str
    choices: [PostPaid, PrePaid]
    default: PostPaid
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.INFO_MODULE
  - confidential_ai.ack.attributes.ACTION_GROUP
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: Find the zones of cn-beijing with gn8v-tee stock
  confidential_ai.ack.ecs_zone_info:
    region: cn-beijing
    instance_types:
      - ecs.gn8v-tee.4xlarge
  register: zones

- name: Use the first zone that has stock
  ansible.builtin.set_fact:
    gpu_zone: "{{ zones.zones_with_stock['ecs.gn8v-tee.4xlarge'] | first }}"
"""

RETURN = r"""
zones:
  description: The zones of the region, with the stock of each instance type asked for.
  returned: always
  type: list
  elements: dict
  contains:
    zone_id:
      description: Zone id.
      type: str
      sample: cn-beijing-l
    local_name:
      description: Display name of the zone.
      type: str
      sample: Beijing Zone L
    instance_types:
      description: Instance types the zone offers.
      type: list
      elements: str
    stock:
      description:
        - For each instance type asked for, C(status) (C(Available) or C(SoldOut)), C(status_category)
          (C(WithStock), C(ClosedWithStock), C(WithoutStock), C(ClosedWithoutStock)) and C(in_stock).
        - An instance type the zone does not offer has no entry.
      type: dict
      sample: {"ecs.gn8v-tee.4xlarge": {"status": "Available", "status_category": "WithStock", "in_stock": true}}
zones_with_stock:
  description: For each instance type asked for, the zones that have stock.
  returned: always
  type: dict
  sample: {"ecs.gn8v-tee.4xlarge": ["cn-beijing-l"]}
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils.ecs import describe_stock, describe_zones, zones_with_stock


def main():
    module = AlicloudModule(
        argument_spec=dict(
            instance_types=dict(type="list", elements="str", default=[]),
            zone_id=dict(type="str"),
            charge_type=dict(type="str", choices=["PostPaid", "PrePaid"], default="PostPaid"),
        ),
        supports_check_mode=True,
    )
    client = module.client("ecs")
    try:
        zones = describe_zones(module, client)
        if module.params["zone_id"]:
            zones = [z for z in zones if z["zone_id"] == module.params["zone_id"]]
            if not zones:
                module.fail_json(msg="zone_id %s is not a zone of region %s" % (module.params["zone_id"], module.region))
        stock_by_type = {}
        for instance_type in module.params["instance_types"]:
            stock_by_type[instance_type] = describe_stock(module, client, instance_type, module.params["zone_id"],
                                                          module.params["charge_type"])
    except AlicloudError as exc:
        module.fail_alicloud(exc)

    for zone in zones:
        zone["stock"] = {t: s[zone["zone_id"]] for t, s in stock_by_type.items() if zone["zone_id"] in s}
    module.exit_json(
        changed=False,
        zones=zones,
        zones_with_stock={t: zones_with_stock(s) for t, s in stock_by_type.items()},
    )


if __name__ == "__main__":
    main()
