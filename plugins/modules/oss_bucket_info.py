#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: oss_bucket_info
short_description: Facts about OSS buckets
version_added: 0.1.0
description:
  - Returns one bucket by O(name) (an empty list when it does not exist), or every bucket of the
    account whose name starts with O(prefix), with ACL, storage class and default encryption.
  - Optionally counts the objects, bytes and unfinished multipart uploads of the named bucket.
options:
  name:
    description:
      - Only this bucket.
    type: str
    aliases: [bucket]
  prefix:
    description:
      - Without O(name), only the buckets whose name starts with this (all buckets when not set).
    type: str
  usage:
    description:
      - With O(name), also list the bucket (every page) and return C(objects), C(bytes) and C(uploads).
    type: bool
    default: false
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.INFO_MODULE
  - confidential_ai.ack.attributes.ACTION_GROUP
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: Is the model bucket there, private and encrypted?
  confidential_ai.ack.oss_bucket_info:
    name: cai-models-prod
    usage: true
  register: info

- name: Fail when it is not
  ansible.builtin.assert:
    that:
      - info.buckets | length == 1
      - info.buckets[0].acl == 'private'
      - info.buckets[0].server_side_encryption.algorithm in ['AES256', 'KMS', 'SM4']
"""

RETURN = r"""
buckets:
  description: The buckets found, with the fields of the C(bucket) result of M(confidential_ai.ack.oss_bucket).
  returned: always
  type: list
  elements: dict
  sample:
    - name: cai-models-prod
      exists: true
      region: cn-beijing
      location: oss-cn-beijing
      storage_class: Standard
      acl: private
      server_side_encryption: {"algorithm": "AES256", "kms_key_id": null}
      usage: {"objects": 12, "bytes": 16106127360, "uploads": 0}
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils.oss import bucket_name_error, get_bucket, list_objects, list_uploads

try:
    import oss2
except ImportError:  # AlicloudModule.client() reports the missing library
    oss2 = None

# A valid name for the client that only serves to reach the service (ListBuckets is not bucket-bound).
_SERVICE_PLACEHOLDER = "list-buckets"


def all_bucket_names(module, client, prefix):
    service = oss2.Service(client.auth, client.endpoint, region=client.region, connect_timeout=client.timeout)
    names, marker = [], ""
    while True:
        result = module.call(service.list_buckets, prefix=prefix, marker=marker, max_keys=1000, operation="list buckets")
        names.extend(b.name for b in result.buckets)
        if not result.is_truncated:
            return names
        marker = result.next_marker


def main():
    module = AlicloudModule(
        argument_spec=dict(
            name=dict(type="str", aliases=["bucket"]),
            prefix=dict(type="str"),
            usage=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("name", "prefix")],
        supports_check_mode=True,
    )
    name = module.params["name"]
    if name is not None and bucket_name_error(name):
        module.fail_json(msg="name %r is not a valid bucket name: it %s" % (name, bucket_name_error(name)))
    buckets = []
    try:
        if name:
            client = module.client("oss", bucket=name)
            info = get_bucket(module.call, client)
            if info is not None:
                if module.params["usage"]:
                    objects = list_objects(module.call, client)
                    info["usage"] = {"objects": len(objects), "bytes": sum(o["size"] for o in objects.values()),
                                     "uploads": len(list_uploads(module.call, client))}
                buckets.append(info)
        else:
            for bucket_name in all_bucket_names(module, module.client("oss", bucket=_SERVICE_PLACEHOLDER), module.params["prefix"] or ""):
                info = get_bucket(module.call, module.client("oss", bucket=bucket_name))
                if info is not None:
                    buckets.append(info)
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    module.exit_json(changed=False, buckets=buckets)


if __name__ == "__main__":
    main()
