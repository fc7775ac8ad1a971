#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: oss_sync
short_description: Mirror a local directory to an OSS prefix, or an OSS prefix to a local directory
version_added: 0.1.0
description:
  - With O(direction=upload), makes the objects under O(prefix) in O(bucket) mirror the regular files
    below O(path); with O(direction=download), makes O(path) mirror the objects under O(prefix).
  - A file is sent when the other side lacks it, has another size, or has the same size but another
    CRC-64 (C(x-oss-hash-crc64ecma), the checksum OSS keeps for every object). Unchanged files are skipped,
    so a second run makes no change and no mutating request.
  - Files larger than O(part_size) are uploaded in parts, O(workers) at a time. An interrupted upload
    (killed run, lost network) is resumed by the next run; the pending multipart upload of the object is
    found again, every stored part is checked against the local data (size and MD5), and only the missing
    or different parts are sent. Every part's CRC-64 and the whole object's are compared with the service's.
  - Downloads use parallel ranged GETs into a temporary file next to the destination, check the CRC-64 of
    the whole object, and rename the file into place.
  - Objects are always uploaded with the C(private) object ACL, whatever the bucket's ACL, so nothing this
    module writes is world-readable. Downloaded files are created with mode C(0600), new directories C(0700).
options:
  bucket:
    description:
      - Bucket name (see M(confidential_ai.ack.oss_bucket) to create it).
    type: str
    required: true
  prefix:
    description:
      - The "directory" in the bucket, for example V(models/qwen2.5-7b). Leading and trailing slashes are ignored;
        the object of the file C(a/b.bin) is C(<prefix>/a/b.bin). Empty means the bucket root.
    type: str
    default: ""
  path:
    description:
      - The local directory. With O(direction=upload) it must exist; with O(direction=download) it is created when missing.
    type: path
    required: true
    aliases: [local_path]
  direction:
    description:
      - V(upload) copies local files to OSS; V(download) copies objects to local files.
    type: str
    choices: [upload, download]
    default: upload
  delete:
    description:
      - Also delete what the destination has and the source does not (objects under the prefix when uploading,
        local files when downloading). Names matched by O(exclude) are never deleted.
    type: bool
    default: false
  exclude:
    description:
      - fnmatch patterns of relative names to leave out, matched against the whole relative name, each parent
        directory and the base name (V(*.tmp), V(.git), V(cache/*)).
    type: list
    elements: str
    default: []
  symlinks:
    description:
      - What to do with symlinks below O(path) when uploading. V(follow) uploads what a link points to (a file,
        or a directory's files; loops are detected and reported), V(skip) leaves links out. Object storage
        keeps no links; broken links are reported under C(sync.ignored) either way.
    type: str
    choices: [follow, skip]
    default: follow
  part_size:
    description:
      - Size of a multipart part, in bytes or with a unit (V(8MiB), V(64M), V(512KiB)); between 100 KiB and 5 GiB.
        Files up to this size are sent with one request. For very large files the part size is doubled until
        the file fits in 10000 parts.
      - Memory used is about O(workers) + 1 times the part size.
    type: raw
    default: 8MiB
  workers:
    description:
      - Parts (or small files) transferred in parallel, 1 to 64.
    type: int
    default: 4
extends_documentation_fragment:
  - confidential_ai.ack.alicloud
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
  - confidential_ai.ack.attributes.ACTION_GROUP
notes:
  - Deciding that a file is unchanged reads it to compute its CRC-64 (several GB/s with the optional C(fastcrc)
    Python package, otherwise about 200 MB/s with C(crcmod)) and costs one HEAD request per object of the same size.
  - Keys ending in C(/) (directory markers made by consoles) are ignored in both directions.
  - Do not run two syncs of the same prefix at the same time; a resumed upload takes over the newest pending
    upload of an object, and older pending uploads of that object are aborted once it is complete.
  - Object keys must be valid UTF-8; local names that are not are reported under C(sync.ignored). A download fails
    before writing anything when a key would escape O(path) (C(..), absolute or empty segments).
author:
  - confidential_ai.ack contributors (@confidential-ai)
"""

EXAMPLES = r"""
- name: Upload the encrypted model
  confidential_ai.ack.oss_sync:
    bucket: cai-models-prod
    prefix: qwen2.5-7b-instruct
    path: /srv/models/qwen2.5-7b-instruct.enc
    part_size: 16MiB
    workers: 4
    delete: true
    exclude: ["*.partial"]
  register: upload

- name: Show what was sent
  ansible.builtin.debug:
    msg: "{{ upload.sync.files_sent }} files, {{ upload.sync.bytes_sent }} bytes, {{ upload.sync.throughput_mib_s }} MiB/s"

- name: What would a download change? (nothing is written)
  confidential_ai.ack.oss_sync:
    bucket: cai-models-prod
    prefix: qwen2.5-7b-instruct
    path: /srv/models/check
    direction: download
  check_mode: true
"""

RETURN = r"""
sync:
  description: What was transferred, skipped and deleted (in check mode, what would be).
  returned: always
  type: dict
  contains:
    direction:
      description: V(upload) or V(download).
      type: str
    bucket:
      description: Bucket name.
      type: str
    prefix:
      description: The prefix as used in keys (empty, or ending with C(/)).
      type: str
      sample: qwen2.5-7b-instruct/
    path:
      description: The local directory.
      type: str
    uploaded:
      description: Relative names uploaded (upload direction).
      type: list
      elements: str
      sample: [config.json, model-00001-of-00004.safetensors]
    downloaded:
      description: Relative names downloaded (download direction).
      type: list
      elements: str
    skipped:
      description: Relative names left alone because both sides have the same size and CRC-64.
      type: list
      elements: str
    deleted:
      description: Relative names deleted from the destination (O(delete=true)).
      type: list
      elements: str
    reasons:
      description: Why each transferred name was sent, V(new), V(size), V(crc) or V(unknown) (no CRC-64 on one side).
      type: dict
      sample: {"config.json": "crc"}
    resumed:
      description: Relative names whose upload reused parts stored by an interrupted run.
      type: list
      elements: str
    ignored:
      description: Local entries left out, with the reason (symlink, broken symlink, directory loop, not a regular file, name not UTF-8).
      type: list
      elements: dict
    bytes_sent:
      description: Bytes transferred in the direction of the sync (in check mode, the bytes that would be).
      type: int
    bytes_resumed:
      description: Bytes of resumed uploads that were already stored and not sent again.
      type: int
    bytes_skipped:
      description: Bytes of the skipped files.
      type: int
    files_sent:
      description: Number of files transferred.
      type: int
    files_skipped:
      description: Number of files skipped.
      type: int
    files_deleted:
      description: Number of files or objects deleted.
      type: int
    seconds:
      description: Wall time of the run.
      type: float
    throughput_mib_s:
      description: C(bytes_sent) in MiB divided by C(seconds).
      type: float
    crc_backend:
      description: The CRC-64 implementation used, V(fastcrc), V(crcmod) or V(python).
      type: str
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import AlicloudError, AlicloudModule
from ansible_collections.confidential_ai.ack.plugins.module_utils.oss import (
    CRC_BACKEND,
    MAX_KEY_BYTES,
    MAX_WORKERS,
    MIB,
    bucket_name_error,
    choose_part_size,
    delete_objects,
    download_file,
    file_crc64,
    head_object,
    is_excluded,
    list_objects,
    normalize_prefix,
    parse_size,
    part_size_error,
    plan_sync,
    safe_relative_name,
    scan_local,
    upload_file,
)


def validate(module):
    """Every check that needs no request; fails naming the field."""
    params = module.params
    reason = bucket_name_error(params["bucket"])
    if reason:
        module.fail_json(msg="bucket %r is not a valid bucket name: it %s" % (params["bucket"], reason))
    try:
        part_size = parse_size(params["part_size"])
    except ValueError as exc:
        module.fail_json(msg="part_size: %s" % exc)
    reason = part_size_error(part_size)
    if reason:
        module.fail_json(msg="part_size %s %s" % (params["part_size"], reason))
    if not 1 <= params["workers"] <= MAX_WORKERS:
        module.fail_json(msg="workers must be between 1 and %d, not %d" % (MAX_WORKERS, params["workers"]))
    try:
        prefix = normalize_prefix(params["prefix"])
    except ValueError as exc:
        module.fail_json(msg="prefix: %s" % exc)
    if len(prefix.encode("utf-8")) > MAX_KEY_BYTES:
        module.fail_json(msg="prefix is longer than the 1023 bytes an object key may have")
    path = params["path"]
    if params["direction"] == "upload" and not os.path.isdir(path):
        module.fail_json(msg="path %s is not a directory (direction: upload reads from it)" % path)
    if params["direction"] == "download" and os.path.exists(path) and not os.path.isdir(path):
        module.fail_json(msg="path %s exists and is not a directory" % path)
    return part_size, prefix


class Memo:
    """Calls ``func(name)`` once per name."""

    def __init__(self, func):
        self.func = func
        self.values = {}

    def __call__(self, name):
        if name not in self.values:
            self.values[name] = self.func(name)
        return self.values[name]


def remote_listing(module, client, prefix):
    """``{relative name: size}`` of the objects under the prefix (directory markers left out)."""
    objects = list_objects(module.call, client, prefix)
    return {key[len(prefix):]: meta["size"] for key, meta in objects.items()
            if key.startswith(prefix) and key != prefix and not key.endswith("/")}


def run_parallel(workers, func, items):
    """``func(item)`` for each item, ``workers`` at a time; returns the results in order, first error raised."""
    if not items:
        return []
    if workers == 1 or len(items) == 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="oss-sync") as pool:
        futures = [pool.submit(func, item) for item in items]
        return [f.result() for f in futures]


def upload(module, client, prefix, part_size, local, plan):
    """Send the planned files; returns (bytes_sent, bytes_resumed, resumed names)."""
    params = module.params
    names = [name for name, dummy_reason in plan["transfer"]]
    small = [n for n in names if local[n]["size"] <= part_size]
    large = [n for n in names if local[n]["size"] > part_size]

    def send(name):
        return upload_file(client, prefix + name, local[name]["path"], call=module.call, part_size=part_size, workers=params["workers"])

    results = run_parallel(params["workers"], send, small)  # one PutObject each: files in parallel
    results += [send(name) for name in large]                # parts in parallel, one file at a time
    resumed = sorted(r["key"][len(prefix):] for r in results if r["resumed"])
    return sum(r["bytes_sent"] for r in results), sum(r["bytes_reused"] for r in results), resumed


def download(module, client, prefix, part_size, remote, plan):
    params = module.params
    root = params["path"]
    os.makedirs(root, mode=0o700, exist_ok=True)
    names = [name for name, dummy_reason in plan["transfer"]]
    small = [n for n in names if remote[n] <= part_size]
    large = [n for n in names if remote[n] > part_size]

    def fetch(name):
        dest = os.path.join(root, *name.split("/"))
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        return download_file(client, prefix + name, dest, call=module.call, part_size=part_size, workers=params["workers"])

    results = run_parallel(params["workers"], fetch, small)
    results += [fetch(name) for name in large]
    return sum(r["size"] for r in results)


def listing_text(entries):
    return "".join("%s (%d bytes)\n" % (name, entries[name]) for name in sorted(entries))


def main():
    module = AlicloudModule(
        argument_spec=dict(
            bucket=dict(type="str", required=True),
            prefix=dict(type="str", default=""),
            path=dict(type="path", required=True, aliases=["local_path"]),
            direction=dict(type="str", choices=["upload", "download"], default="upload"),
            delete=dict(type="bool", default=False),
            exclude=dict(type="list", elements="str", default=[]),
            symlinks=dict(type="str", choices=["follow", "skip"], default="follow"),
            part_size=dict(type="raw", default="8MiB"),
            workers=dict(type="int", default=4),
        ),
        supports_check_mode=True,
    )
    params = module.params
    part_size, prefix = validate(module)
    started = time.monotonic()
    direction = params["direction"]
    exclude = params["exclude"]
    client = module.client("oss", bucket=params["bucket"])

    ignored = []
    local = {}
    try:
        remote = remote_listing(module, client, prefix)
        remote = {n: s for n, s in remote.items() if not is_excluded(n, exclude)}
        if direction == "upload" or os.path.isdir(params["path"]):
            local, ignored = scan_local(params["path"], exclude, params["symlinks"] if direction == "upload" else "skip")
        if direction == "upload":
            too_long = [n for n in local if len((prefix + n).encode("utf-8")) > MAX_KEY_BYTES]
            if too_long:
                module.fail_json(msg="path: these names make object keys longer than 1023 bytes: %s" % ", ".join(sorted(too_long)[:10]))
        else:
            unsafe = sorted(n for n in remote if safe_relative_name(n))
            if unsafe:
                module.fail_json(msg="prefix %s holds keys that cannot be written below path safely: %s" % (prefix, ", ".join(unsafe[:10])))
        # part sizes follow the file size for huge files, so the same file always gets the same parts (resume)
        for entry in local.values():
            choose_part_size(entry["size"], part_size)

        local_sizes = {n: e["size"] for n, e in local.items()}

        def local_crc(name):
            return file_crc64(local[name]["path"])

        def remote_crc(name):
            meta = head_object(module.call, client, prefix + name)
            return meta["crc64"] if meta else None

        if direction == "upload":
            source, dest = local_sizes, remote
            plan = plan_sync(source, dest, Memo(local_crc), Memo(remote_crc), delete=params["delete"])
        else:
            source, dest = remote, local_sizes
            plan = plan_sync(source, dest, Memo(remote_crc), Memo(local_crc), delete=params["delete"])

        transfer_names = [n for n, dummy_reason in plan["transfer"]]
        bytes_sent = sum(source[n] for n in transfer_names)
        bytes_resumed, resumed = 0, []
        if not module.check_mode:
            if direction == "upload":
                bytes_sent, bytes_resumed, resumed = upload(module, client, prefix, part_size, local, plan)
                if plan["delete"]:
                    delete_objects(module.call, client, [prefix + n for n in plan["delete"]])
            else:
                bytes_sent = download(module, client, prefix, part_size, remote, plan)
                for name in plan["delete"]:
                    os.unlink(local[name]["path"])
    except AlicloudError as exc:
        module.fail_alicloud(exc)
    except (OSError, ValueError) as exc:
        module.fail_json(msg="path %s: %s" % (params["path"], exc))

    seconds = time.monotonic() - started
    changed = bool(plan["transfer"] or plan["delete"])
    sync = {
        "direction": direction,
        "bucket": params["bucket"],
        "prefix": prefix,
        "path": params["path"],
        "uploaded": transfer_names if direction == "upload" else [],
        "downloaded": transfer_names if direction == "download" else [],
        "skipped": plan["skip"],
        "deleted": plan["delete"],
        "reasons": dict(plan["transfer"]),
        "resumed": resumed,
        "ignored": ignored,
        "bytes_sent": bytes_sent,
        "bytes_resumed": bytes_resumed,
        "bytes_skipped": sum(source[n] for n in plan["skip"]),
        "files_sent": len(transfer_names),
        "files_skipped": len(plan["skip"]),
        "files_deleted": len(plan["delete"]),
        "seconds": round(seconds, 3),
        "throughput_mib_s": round(bytes_sent / MIB / seconds, 2) if seconds > 0 else 0.0,
        "crc_backend": CRC_BACKEND,
    }
    if ignored:
        module.warn("%d local entries were left out (see sync.ignored): %s" % (
            len(ignored), ", ".join("%s (%s)" % (i["name"], i["reason"]) for i in ignored[:5])))
    result = dict(changed=changed, sync=sync)
    if module._diff:
        after = dict(dest)
        for name in plan["delete"]:
            after.pop(name, None)
        for name in transfer_names:
            after[name] = source[name]
        where = "oss://%s/%s" % (params["bucket"], prefix) if direction == "upload" else params["path"]
        result["diff"] = {"before_header": where, "after_header": where, "before": listing_text(dest), "after": listing_text(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
