#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: oss_bucket
short_description: A private OSS bucket with server-side encryption
version_added: 0.1.0
description:
  - Creates or deletes an Object Storage Service (OSS) bucket, for example the bucket that holds the
    gocryptfs-encrypted model that the vLLM pods mount.
  - The bucket is always B(private). An existing bucket with a public ACL is made private.
  - Server-side encryption by default is always on (C(PutBucketEncryption)), with OSS-managed keys
    (V(AES256), the default), KMS (V(KMS), with O(kms_key_id)) or V(SM4).
  - O(storage_class) and O(data_redundancy_type) are fixed when the bucket is created; asking for
    another value for an existing bucket fails and names the field.
  - O(state=absent) refuses to delete a bucket that still has objects or unfinished multipart uploads
    unless O(force=true), which deletes the objects and aborts the uploads first.
  - Bucket tags are not managed (the local emulator the collection is tested against does not
    implement bucket tagging).
options:
  name:
    description:
      - Bucket name, 3 to 63 characters, lowercase letters, digits and hyphens, starting and ending with a letter or digit.
      - Checked before any request is made.
    type: str
    required: true
    aliases: [bucket]
  state:
    description:
      - V(present) creates the bucket or brings its ACL and encryption to what is asked; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  storage_class:
    description:
      - Storage class of a new bucket. When not set, a new bucket gets V(Standard) and an existing bucket's class is not checked.
    type: str
    choices: [Standard, IA, Archive, ColdArchive, DeepColdArchive]
  data_redundancy_type:
    description:
      - Redundancy of a new bucket, locally (V(LRS)) or zone (V(ZRS)) redundant. When not set, the service default applies.
    type: str
    choices: [LRS, ZRS]
  server_side_encryption:
    description:
      - Default server-side encryption of objects written to the bucket.
    type: str
    choices: [AES256, KMS, SM4]
    default: AES256
  kms_key_id:
    description:
      - The KMS key (CMK id) used when O(server_side_encryption=KMS). Required then, and not allowed otherwise.
    type: str
  force:
    description:
      - With O(state=absent), delete every object and abort every multipart upload of the bucket, then the bucket.
    type: bool
    default: false
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
  - confidential_ai.ack.attributes.ACTION_GROUP
notes:
  - OSS has no idempotency token for C(PutBucket). When the answer to a create is lost and the retry gets
    C(BucketAlreadyExists), the module reads the bucket and carries on if it is readable with the same keys
    (that is, it is ours).
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: A private, AES-256 encrypted bucket for the encrypted model
  confidential_ai.ack.oss_bucket:
    name: cai-models-prod
    region: cn-beijing

- name: The same with a KMS key
  confidential_ai.ack.oss_bucket:
    name: cai-models-prod
    server_side_encryption: KMS
    kms_key_id: "{{ kms_key_id }}"

- name: Delete the bucket and everything in it
  confidential_ai.ack.oss_bucket:
    name: cai-models-test
    state: absent
    force: true
"""

RETURN = r"""
bucket:
  description: The bucket after the run (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    name:
      description: Bucket name.
      type: str
      sample: cai-models-prod
    exists:
      description: Whether the bucket exists.
      type: bool
    location:
      description: Location id.
      type: str
      sample: oss-cn-beijing
    region:
      description: Region id.
      type: str
      sample: cn-beijing
    creation_date:
      description: When the bucket was created.
      type: str
      sample: "2026-11-25T03:00:00.000Z"
    storage_class:
      description: Storage class.
      type: str
      sample: Standard
    data_redundancy_type:
      description: V(LRS) or V(ZRS).
      type: str
    acl:
      description: Bucket ACL, always C(private) after a run with O(state=present).
      type: str
      sample: private
    versioning:
      description: Versioning status, when the service reports it.
      type: str
    server_side_encryption:
      description: Default encryption, C(algorithm) and C(kms_key_id).
      type: dict
      sample: {"algorithm": "AES256", "kms_key_id": null}
    extranet_endpoint:
      description: Public endpoint of the region.
      type: str
      sample: oss-cn-beijing.aliyuncs.com
    intranet_endpoint:
      description: VPC endpoint of the region.
      type: str
      sample: oss-cn-beijing-internal.aliyuncs.com
deleted:
  description: With O(state=absent) and O(force=true), how many objects were deleted and uploads aborted (or would be, in check mode).
  returned: when a bucket was deleted with force
  type: dict
  sample: {"objects": 12, "uploads": 1}
"""

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils.oss import (
    bucket_name_error,
    empty_bucket,
    get_bucket,
    list_objects,
    list_uploads,
)

try:
    import oss2
    from oss2.models import BucketCreateConfig, ServerSideEncryptionRule
except ImportError:  # AlicloudModule.client() reports the missing library
    oss2 = BucketCreateConfig = ServerSideEncryptionRule = None


def desired_encryption(params):
    return {"algorithm": params["server_side_encryption"],
            "kms_key_id": params["kms_key_id"] if params["server_side_encryption"] == "KMS" else None}


def put_encryption(module, client, name):
    wanted = desired_encryption(module.params)
    rule = ServerSideEncryptionRule(sse_algorithm=wanted["algorithm"], kms_master_keyid=wanted["kms_key_id"])
    module.call(client.put_bucket_encryption, rule, operation="set the default encryption of bucket %s" % name)


def create(module, client, name):
    params = module.params
    config = BucketCreateConfig(params["storage_class"] or "Standard", params["data_redundancy_type"])
    try:
        module.call(client.create_bucket, oss2.BUCKET_ACL_PRIVATE, config, operation="create bucket %s" % name)
    except AlicloudError as exc:
        # a lost answer to an earlier attempt: the bucket is there, and ours if we can read it
        if exc.code != "BucketAlreadyExists" or get_bucket(module.call, client) is None:
            raise
    put_encryption(module, client, name)


def present(module, client, name, before):
    params = module.params
    wanted_sse = desired_encryption(params)
    if before is None:
        if not module.check_mode:
            create(module, client, name)
            after = get_bucket(module.call, client)
        else:
            after = {"name": name, "exists": True, "storage_class": params["storage_class"] or "Standard",
                     "data_redundancy_type": params["data_redundancy_type"], "acl": "private",
                     "server_side_encryption": wanted_sse}
        return True, after

    for field in ("storage_class", "data_redundancy_type"):
        if params[field] and before.get(field) and params[field] != before[field]:
            module.fail_json(msg="%s of bucket %s is %s and cannot be changed to %s after creation" % (field, name, before[field], params[field]),
                             bucket=before)
    changes = []
    if before["acl"] != "private":
        changes.append("acl")
    if before["server_side_encryption"] != wanted_sse:
        changes.append("server_side_encryption")
    if not changes:
        return False, before
    if module.check_mode:
        after = dict(before, acl="private", server_side_encryption=wanted_sse)
        return True, after
    if "acl" in changes:
        module.call(client.put_bucket_acl, oss2.BUCKET_ACL_PRIVATE, operation="make bucket %s private" % name)
    if "server_side_encryption" in changes:
        put_encryption(module, client, name)
    return True, get_bucket(module.call, client)


def absent(module, client, name, before):
    if before is None:
        return False, {"name": name, "exists": False}, None
    call = module.call
    if not module.params["force"]:
        first = call(client.list_objects_v2, max_keys=1, operation="list objects of bucket %s" % name).object_list
        uploads = list_uploads(call, client) if not first else []
        if first or uploads:
            what = "objects" if first else "unfinished multipart uploads"
            module.fail_json(msg="bucket %s is not empty (it has %s); set force: true to delete its content with it" % (name, what),
                             bucket=before)
        deleted = None
    elif module.check_mode:
        deleted = {"objects": len(list_objects(call, client)), "uploads": len(list_uploads(call, client))}
    else:
        deleted = empty_bucket(call, client)
    if not module.check_mode:
        try:
            call(client.delete_bucket, operation="delete bucket %s" % name)
        except AlicloudError as exc:
            if exc.code != "NoSuchBucket":
                raise
    return True, {"name": name, "exists": False}, deleted


def main():
    module = AlicloudModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["bucket"]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            storage_class=dict(type="str", choices=["Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive"]),
            data_redundancy_type=dict(type="str", choices=["LRS", "ZRS"]),
            server_side_encryption=dict(type="str", choices=["AES256", "KMS", "SM4"], default="AES256"),
            kms_key_id=dict(type="str"),
            force=dict(type="bool", default=False),
        ),
        required_if=[("server_side_encryption", "KMS", ["kms_key_id"])],
        supports_check_mode=True,
    )
    name = module.params["name"]
    reason = bucket_name_error(name)
    if reason:
        module.fail_json(msg="name %r is not a valid bucket name: it %s" % (name, reason))
    if module.params["kms_key_id"] and module.params["server_side_encryption"] != "KMS":
        module.fail_json(msg="kms_key_id is only used with server_side_encryption: KMS")

    client = module.client("oss", bucket=name)
    deleted = None
    try:
        before = get_bucket(module.call, client)
        if module.params["state"] == "present":
            changed, after = present(module, client, name, before)
        else:
            changed, after, deleted = absent(module, client, name, before)
    except AlicloudError as exc:
        module.fail_alicloud(exc)

    result = dict(changed=changed, bucket=after)
    if deleted is not None:
        result["deleted"] = deleted
    if module._diff:
        result["diff"] = {"before": before or {"name": name, "exists": False}, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
