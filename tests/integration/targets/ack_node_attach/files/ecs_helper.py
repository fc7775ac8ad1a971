# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper: create, describe or delete ECS instances in the emulator with the official ECS SDK.

The ack_node_attach target needs gn8v-tee instances to attach, and must not depend on the
ecs_instance module (written separately). Run with the playbook's Python:

    python ecs_helper.py create NAME [NAME...]   -> {"instances": [{"instance_id", "status", ...}]}
    python ecs_helper.py describe ID [ID...]     -> the same shape (missing ids are left out)
    python ecs_helper.py delete ID [ID...]       -> {"deleted": [ids]}

Credentials and endpoint come from the environment (EMU_ACCESS_KEY, EMU_SECRET_KEY, EMU_ENDPOINT,
EMU_REGION), never from the command line.
"""

import json
import os
import sys
import time

from alibabacloud_ecs20140526 import models
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi.utils_models import Config

ZONE = "cn-beijing-l"
VSWITCH = "vsw-sbx00000000000000000l"
SECURITY_GROUP = "sg-sbx0000000000000000001"
IMAGE = "aliyun_3_x64_20G_uefi_alibase_20250117.vhd"
INSTANCE_TYPE = "ecs.gn8v-tee.4xlarge"


def client():
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(var, None)
    return Client(Config(access_key_id=os.environ["EMU_ACCESS_KEY"], access_key_secret=os.environ["EMU_SECRET_KEY"],
                         endpoint=os.environ["EMU_ENDPOINT"], protocol="http", region_id=os.environ["EMU_REGION"]))


def describe(ecs, ids):
    request = models.DescribeInstancesRequest(region_id=os.environ["EMU_REGION"], instance_ids=json.dumps(ids), page_size=100)
    body = ecs.describe_instances(request).body
    found = body.instances.instance if body and body.instances else []
    return [{"instance_id": i.instance_id, "status": i.status, "name": i.instance_name, "host_name": i.host_name,
             "zone_id": i.zone_id, "instance_type": i.instance_type} for i in found]


def create(ecs, names):
    ids = []
    for name in names:
        request = models.RunInstancesRequest(
            region_id=os.environ["EMU_REGION"], zone_id=ZONE, v_switch_id=VSWITCH, security_group_id=SECURITY_GROUP,
            image_id=IMAGE, instance_type=INSTANCE_TYPE, instance_name=name, host_name=name, amount=1,
            system_disk=models.RunInstancesRequestSystemDisk(category="cloud_essd", size=100),
            client_token="ack-node-attach-it-%s" % name)
        ids.extend(ecs.run_instances(request).body.instance_id_sets.instance_id_set)
    deadline = time.monotonic() + 120
    while True:
        found = describe(ecs, ids)
        if len(found) == len(ids) and all(i["status"] == "Running" for i in found):
            return found
        if time.monotonic() > deadline:
            raise SystemExit("instances not Running after 120 s: %s" % found)
        time.sleep(0.5)


def delete(ecs, ids):
    if ids:
        ecs.delete_instances(models.DeleteInstancesRequest(region_id=os.environ["EMU_REGION"], instance_id=ids, force=True))
    return ids


def main(argv):
    action, args = argv[1], argv[2:]
    ecs = client()
    if action == "create":
        print(json.dumps({"instances": create(ecs, args)}))
    elif action == "describe":
        print(json.dumps({"instances": describe(ecs, args)}))
    elif action == "delete":
        print(json.dumps({"deleted": delete(ecs, [a for a in args if a])}))
    else:
        raise SystemExit("unknown action %s" % action)


if __name__ == "__main__":
    main(sys.argv)
