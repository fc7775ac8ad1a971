# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACK (CS, API version 2015-12-15) logic shared by the ack_* modules.

Three layers, so that most of it is pure and unit-tested:

* validation of user input before any call (names, CIDRs, labels, taints, tags);
* normalisation of the service's objects into flat snake_case dicts (``normalize_cluster``,
  ``normalize_node_pool``, ``normalize_node``, ``normalize_task``) and desired-vs-current
  comparison (``cluster_changes``, ``node_pool_changes``);
* thin call helpers that go through ``AlicloudModule.call`` / ``AlicloudModule.wait`` (the one retry
  policy and the one waiter): look-ups by name, paging, task waiting, "create once" with a look-up
  before every retry.

Error codes the emulator uses as placeholders (ErrorNodePoolNotFound, ...) are never matched here:
"not found" is recognised by HTTP 404 or a code containing ``NotFound``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
import time

try:
    from alibabacloud_cs20151215 import models as cs_models
except ImportError:  # reported by AlicloudModule.client("cs")
    cs_models = None

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError

# -- constants -----------------------------------------------------------------------------------

CLUSTER_SPECS = ("ack.standard", "ack.pro.small", "ack.pro.xlarge", "ack.pro.2xlarge", "ack.pro.4xlarge")
# ImageType values of the node pool scaling group (SDK model ModifyClusterNodePoolRequestScalingGroup).
IMAGE_TYPES = ("AliyunLinux3Security", "AliyunLinux3", "AliyunLinux3Arm64", "AliyunLinux3ContainerOptimized",
               "AliyunLinux", "AliyunLinuxSecurity", "ContainerOS", "CentOS", "Windows", "WindowsCore")
DISK_CATEGORIES = ("cloud_essd", "cloud_auto", "cloud_essd_entry", "cloud_ssd", "cloud_efficiency")
TAINT_EFFECTS = ("NoSchedule", "NoExecute", "PreferNoSchedule")
NVIDIA_DRIVER_LABEL = "ack.aliyun.com/nvidia-driver-version"
TEE_FAMILY = "ecs.gn8v-tee"
MIN_SYSTEM_DISK_GIB = 100

TASK_FAILED_STATES = ("fail", "failed", "canceled", "cancelled")
CLUSTER_FAILED_STATES = ("failed", "delete_failed", "deleted")
CLUSTER_GONE_STATES = ("deleted",)
# Tag keys the service sets on its own resources; never purged, never compared.
SYSTEM_TAG_PREFIXES = ("ack.aliyun.com", "acs:", "aliyun")

PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
DEFAULT_SERVICE_CIDR = "172.19.0.0/20"

NAME_RE = re.compile(r"^[0-9A-Za-z\u4e00-\u9fff][-0-9A-Za-z_\u4e00-\u9fff]{0,62}$")
INSTANCE_TYPE_RE = re.compile(r"^ecs\.[a-z0-9][a-z0-9-]*\.[a-z0-9-]+$")
ID_RES = {
    "cluster_id": re.compile(r"^c[0-9a-z]{10,64}$"),
    "nodepool_id": re.compile(r"^np[0-9a-z]{10,64}$"),
    "vpc_id": re.compile(r"^vpc-[0-9a-z]{4,64}$"),
    "vswitch_id": re.compile(r"^vsw-[0-9a-z]{4,64}$"),
    "security_group_id": re.compile(r"^sg-[0-9a-z]{4,64}$"),
    "instance_id": re.compile(r"^i-[0-9a-z]{4,64}$"),
}
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
LABEL_PREFIX_RE = re.compile(r"^%s(\.%s)*$" % (_DNS_LABEL, _DNS_LABEL))
LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


# -- validation (pure) ------------------------------------------------------------------------------

def check_name(value, field="name"):
    """Error text for an ACK cluster or node pool name, or None (1-63 characters, no leading hyphen)."""
    if value is None:
        return None
    if not 1 <= len(value) <= 63:
        return "%s must be 1 to 63 characters long (got %d)" % (field, len(value))
    if not NAME_RE.match(value):
        return ("%s %r may hold only letters, digits, Chinese characters, hyphens and underscores, "
                "and must not start with a hyphen" % (field, value))
    return None


def check_id(value, kind, field=None):
    """Error text when ``value`` does not look like an id of ``kind`` (see ID_RES), or None."""
    if value is None:
        return None
    if not ID_RES[kind].match(value):
        return "%s %r does not look like a %s" % (field or kind, value, kind.replace("_", " "))
    return None


def parse_cidr(value, field):
    """An ``ipaddress.IPv4Network`` for ``value``; raises ValueError naming ``field`` when malformed."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError("%s %r is not a valid CIDR block (%s)" % (field, value, exc)) from None
    if net.version != 4 or "/" not in value:
        raise ValueError("%s %r must be an IPv4 CIDR block such as 172.20.0.0/16" % (field, value))
    return net


def _is_private(net):
    return any(net.subnet_of(parent) for parent in PRIVATE_NETWORKS)


def check_cluster_cidrs(service_cidr=None, pod_cidr=None, node_cidr_mask=None, vpc_cidrs=()):
    """Error texts for the cluster's network plan (empty when it is sound).

    Rules from the CreateCluster field documentation: both blocks private (10/8, 172.16/12,
    192.168/16); service CIDR prefix /16 to /24; pod CIDR no longer than /24 and node_cidr_mask
    (24-28) inside it; service and pod CIDRs, and either of them and the VPC, must not overlap.
    """
    errors = []
    nets = {}
    for field, value in (("service_cidr", service_cidr), ("pod_cidr", pod_cidr)):
        if value is None:
            continue
        try:
            net = parse_cidr(value, field)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if not _is_private(net):
            errors.append("%s %s must be inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16" % (field, value))
            continue
        nets[field] = net
    service = nets.get("service_cidr")
    if service is not None and not 16 <= service.prefixlen <= 24:
        errors.append("service_cidr %s must have a prefix length from /16 to /24" % service)
    pod = nets.get("pod_cidr")
    if pod is not None and pod.prefixlen > 24:
        errors.append("pod_cidr %s is too small: the prefix length must be /24 or shorter" % pod)
    if node_cidr_mask is not None:
        if not 24 <= node_cidr_mask <= 28:
            errors.append("node_cidr_mask must be from 24 to 28 (got %s)" % node_cidr_mask)
        elif pod is not None and node_cidr_mask <= pod.prefixlen:
            errors.append("node_cidr_mask /%s must be longer than the pod_cidr prefix /%s" % (node_cidr_mask, pod.prefixlen))
    if service is None and pod is not None and service_cidr is None:
        service = ipaddress.ip_network(DEFAULT_SERVICE_CIDR)
    if service is not None and pod is not None and service.overlaps(pod):
        errors.append("service_cidr %s overlaps pod_cidr %s" % (service, pod))
    for vpc_value in vpc_cidrs or ():
        try:
            vpc = ipaddress.ip_network(vpc_value, strict=False)
        except ValueError:
            continue
        for field in ("service_cidr", "pod_cidr"):
            net = nets.get(field)
            if net is not None and net.overlaps(vpc):
                errors.append("%s %s overlaps the VPC CIDR block %s" % (field, net, vpc))
    return errors


def check_label_key(key, field="labels"):
    """Error text for a Kubernetes label or taint key, or None."""
    if not isinstance(key, str) or not key:
        return "%s: a key must be a non-empty string" % field
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix or len(prefix) > 253 or not LABEL_PREFIX_RE.match(prefix):
            return "%s: key %r has an invalid prefix (a DNS subdomain, at most 253 characters)" % (field, key)
    if not name or len(name) > 63 or not LABEL_NAME_RE.match(name):
        return ("%s: key %r is not a valid Kubernetes label key (name part: 1-63 characters, alphanumerics, "
                "'-', '_' or '.', starting and ending with an alphanumeric)" % (field, key))
    return None


def check_label_value(key, value, field="labels"):
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 63 or not LABEL_NAME_RE.match(value):
        return "%s: value %r of key %r is not a valid Kubernetes label value (at most 63 characters, alphanumerics, '-', '_' or '.')" % (
            field, value, key)
    return None


def check_labels(labels, field="labels"):
    errors = []
    for key, value in (labels or {}).items():
        err = check_label_key(key, field) or check_label_value(key, value, field)
        if err:
            errors.append(err)
    return errors


def check_taints(taints, field="taints"):
    errors = []
    seen = set()
    for index, taint in enumerate(taints or []):
        where = "%s[%d]" % (field, index)
        err = check_label_key(taint.get("key"), where) or check_label_value(taint.get("key"), taint.get("value"), where)
        if err:
            errors.append(err)
        if taint.get("effect") not in TAINT_EFFECTS:
            errors.append("%s.effect must be one of %s (got %r)" % (where, ", ".join(TAINT_EFFECTS), taint.get("effect")))
        ident = (taint.get("key"), taint.get("effect"))
        if ident in seen:
            errors.append("%s repeats key %r with effect %s" % (where, taint.get("key"), taint.get("effect")))
        seen.add(ident)
    return errors


def check_tags(tags, field="tags", key_max=128):
    """Error texts for resource tags (at most 20; keys and values may not start with aliyun/acs: or hold a URL scheme)."""
    errors = []
    tags = tags or {}
    if len(tags) > 20:
        errors.append("%s: at most 20 tags (got %d)" % (field, len(tags)))
    for key, value in tags.items():
        value = "" if value is None else str(value)
        if not key or len(key) > key_max:
            errors.append("%s: key %r must be 1 to %d characters" % (field, key, key_max))
        if len(value) > 128:
            errors.append("%s: value of %r must be at most 128 characters" % (field, key))
        for text, what in ((key, "key"), (value, "value")):
            low = text.lower()
            if low.startswith(("aliyun", "acs:")) or "http://" in low or "https://" in low:
                errors.append("%s: %s %r may not start with 'aliyun' or 'acs:' or contain http:// or https://" % (field, what, text))
    return errors


def instance_type_warnings(instance_types):
    """Warnings for instance types outside the confidential-computing family this collection targets."""
    other = [t for t in instance_types or [] if not t.startswith(TEE_FAMILY + ".") and not t.startswith(TEE_FAMILY + "-")]
    if not other:
        return []
    return ["instance_types %s are not %s types: nodes of this pool will not be TDX confidential VMs with GPU TEE, "
            "which the vLLM confidential-inference deployment requires" % (", ".join(other), TEE_FAMILY)]


# -- small converters (pure) -----------------------------------------------------------------------

def tags_to_dict(tags):
    """[{key, value}] -> {key: value} (None and malformed entries skipped)."""
    out = {}
    for tag in tags or []:
        if isinstance(tag, dict) and tag.get("key"):
            out[tag["key"]] = "" if tag.get("value") is None else tag["value"]
    return out


def dict_to_tags(tags):
    return [{"key": k, "value": "" if v is None else str(v)} for k, v in sorted((tags or {}).items())]


def user_tags(tags):
    """Tags without the ones the service manages (SYSTEM_TAG_PREFIXES)."""
    return {k: v for k, v in (tags or {}).items() if not k.startswith(SYSTEM_TAG_PREFIXES)}


def _json_or(value, default=None):
    if isinstance(value, (dict, list)):
        return value
    if not value:
        return default
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return default


def normalize_taints(taints):
    out = []
    for taint in taints or []:
        if isinstance(taint, dict) and taint.get("key"):
            out.append({"key": taint["key"], "value": taint.get("value") or "", "effect": taint.get("effect") or "NoSchedule"})
    return sorted(out, key=lambda t: (t["key"], t["effect"], t["value"]))


def normalize_data_disks(disks):
    out = []
    for disk in disks or []:
        if not isinstance(disk, dict):
            continue
        item = {"category": disk.get("category") or "cloud_essd", "size": int(disk.get("size") or 0)}
        for key in ("performance_level", "encrypted", "auto_format", "file_system", "mount_target"):
            if disk.get(key) not in (None, ""):
                item[key] = disk[key]
        out.append(item)
    return out


# -- normalisation of service objects (pure) ---------------------------------------------------------

CLUSTER_KEYS = ("cluster_id", "name", "state", "cluster_type", "cluster_spec", "profile", "region_id", "zone_id", "vpc_id",
                "vswitch_ids", "security_group_id", "resource_group_id", "service_cidr", "node_cidr_mask", "proxy_mode",
                "ip_stack", "network_mode", "cluster_domain", "deletion_protection", "timezone", "size", "created", "updated",
                "init_version", "next_version")


def normalize_cluster(raw):
    """DescribeClusterDetail / DescribeClustersV1 item -> flat snake_case dict."""
    if not raw:
        return None
    out = {key: raw.get(key) for key in CLUSTER_KEYS}
    out["vswitch_ids"] = list(raw.get("vswitch_ids") or ([raw["vswitch_id"]] if raw.get("vswitch_id") else []))
    out["kubernetes_version"] = raw.get("current_version")
    out["pod_cidr"] = raw.get("container_cidr") or None
    if out["node_cidr_mask"] not in (None, ""):
        try:
            out["node_cidr_mask"] = int(out["node_cidr_mask"])
        except (TypeError, ValueError):
            pass
    master = _json_or(raw.get("master_url"), {}) or {}
    out["api_server_endpoint"] = master.get("api_server_endpoint") or None
    out["intranet_api_server_endpoint"] = master.get("intranet_api_server_endpoint") or None
    out["endpoint_public_access"] = bool(out["api_server_endpoint"])
    out["tags"] = tags_to_dict(raw.get("tags"))
    meta = _json_or(raw.get("meta_data"), {}) or {}
    out["addons"] = [a.get("name") for a in meta.get("Addons") or [] if isinstance(a, dict) and a.get("name")] if isinstance(meta, dict) else []
    out["deletion_protection"] = bool(raw.get("deletion_protection"))
    return out


def normalize_node_pool(raw, cluster_id=None):
    """DescribeClusterNodePoolDetail / DescribeClusterNodePools item -> flat snake_case dict."""
    if not raw:
        return None
    info = raw.get("nodepool_info") or {}
    sg = raw.get("scaling_group") or {}
    kc = raw.get("kubernetes_config") or {}
    status = raw.get("status") or {}
    auto = raw.get("auto_scaling") or {}
    tee = raw.get("tee_config") or {}
    management = raw.get("management") or {}
    out = {
        "nodepool_id": info.get("nodepool_id"),
        "name": info.get("name"),
        "cluster_id": cluster_id,
        "type": info.get("type"),
        "is_default": bool(info.get("is_default")),
        "region_id": info.get("region_id"),
        "resource_group_id": info.get("resource_group_id"),
        "created": info.get("created"),
        "updated": info.get("updated"),
        "state": status.get("state"),
        "instance_types": list(sg.get("instance_types") or []),
        "vswitch_ids": list(sg.get("vswitch_ids") or []),
        "image_type": sg.get("image_type"),
        "image_id": sg.get("image_id"),
        "system_disk_category": sg.get("system_disk_category"),
        "system_disk_size": sg.get("system_disk_size"),
        "system_disk_performance_level": sg.get("system_disk_performance_level") or None,
        "data_disks": normalize_data_disks(sg.get("data_disks")),
        "desired_size": sg.get("desired_size") if sg.get("desired_size") is not None else 0,
        "instance_charge_type": sg.get("instance_charge_type"),
        "security_group_ids": list(sg.get("security_group_ids") or ([sg["security_group_id"]] if sg.get("security_group_id") else [])),
        "key_pair": sg.get("key_pair") or None,
        "scaling_group_id": sg.get("scaling_group_id"),
        "tags": tags_to_dict(sg.get("tags")),
        "labels": tags_to_dict(kc.get("labels")),
        "taints": normalize_taints(kc.get("taints")),
        "runtime": kc.get("runtime"),
        "runtime_version": kc.get("runtime_version"),
        "auto_scaling_enabled": bool(auto.get("enable")),
        "management_enabled": bool(management.get("enable")),
        "tee_enable": bool(tee.get("tee_enable")),
        "total_nodes": status.get("total_nodes") or 0,
        "healthy_nodes": status.get("healthy_nodes") or 0,
        "initial_nodes": status.get("initial_nodes") or 0,
        "failed_nodes": status.get("failed_nodes") or 0,
        "removing_nodes": status.get("removing_nodes") or 0,
    }
    return out


def normalize_node(raw):
    """DescribeClusterNodes item -> flat dict with a ``ready`` flag."""
    if not raw:
        return None
    keys = ("instance_id", "node_name", "nodepool_id", "instance_name", "host_name", "instance_type", "instance_type_family",
            "instance_role", "instance_status", "state", "node_status", "instance_charge_type", "image_id", "creation_time",
            "source", "error_message")
    out = {key: raw.get(key) for key in keys}
    out["ip_address"] = list(raw.get("ip_address") or [])
    out["ready"] = raw.get("node_status") == "Ready" and raw.get("state") == "running"
    return out


def normalize_task(raw):
    if not raw:
        return None
    error = raw.get("error") or {}
    return {
        "task_id": raw.get("task_id"),
        "task_type": raw.get("task_type"),
        "state": raw.get("state"),
        "cluster_id": raw.get("cluster_id"),
        "created": raw.get("created"),
        "updated": raw.get("updated"),
        "error_code": error.get("code") or None,
        "error_message": error.get("message") or None,
        "task_result": [dict(r) for r in raw.get("task_result") or [] if isinstance(r, dict)],
    }


def task_failure(task):
    """Reason text when a normalised task failed, else None."""
    if task and task.get("state") in TASK_FAILED_STATES:
        parts = ["task %s (%s) ended in state %s" % (task.get("task_id"), task.get("task_type"), task.get("state"))]
        if task.get("error_code") or task.get("error_message"):
            parts.append("%s: %s" % (task.get("error_code") or "error", task.get("error_message") or ""))
        failed = [r.get("data") for r in task.get("task_result") or [] if r.get("status") == "failed"]
        if failed:
            parts.append("failed items: %s" % ", ".join(str(f) for f in failed))
        return "; ".join(parts)
    return None


# -- desired vs current (pure) --------------------------------------------------------------------------

# option -> (key in the normalised cluster, how it can change)
CLUSTER_FIXED = {
    "vpc_id": "vpc_id",
    "service_cidr": "service_cidr",
    "pod_cidr": "pod_cidr",
    "node_cidr_mask": "node_cidr_mask",
    "proxy_mode": "proxy_mode",
    "ip_stack": "ip_stack",
    "kubernetes_version": "kubernetes_version",
}
CLUSTER_UPDATABLE = ("name", "deletion_protection", "endpoint_public_access", "timezone", "resource_group_id",
                     "security_group_id", "vswitch_ids", "cluster_spec")
FIXED_REASONS = {
    "kubernetes_version": "upgrade the cluster with the ACK upgrade flow (UpgradeCluster), not with ack_cluster",
    "cluster_spec": "only a change between ack.pro.* tiers is possible through ModifyCluster; Basic to Pro is a migration",
}


def _same(a, b):
    if isinstance(a, list) and isinstance(b, list):
        return sorted(a) == sorted(b)
    return a == b


def cluster_changes(desired, current):
    """Compare the user's options (None = not managed) with a normalised cluster.

    Returns ``(updates, fixed, tags)``: updates ``{option: (before, after)}`` that ModifyCluster can
    make, fixed ``[(option, before, after)]`` that cannot change after creation, and tags
    ``(to_set: dict, to_remove: list)`` (removal only when ``purge_tags``).
    """
    updates = {}
    fixed = []
    for option, key in CLUSTER_FIXED.items():
        want = desired.get(option)
        if want is None:
            continue
        have = current.get(key)
        if have is None or have == "":
            continue  # the service does not report it (list answers, other network plugin): nothing to compare
        if option == "service_cidr" or option == "pod_cidr":
            same = _cidr_equal(want, have)
        else:
            same = _same(want, have)
        if not same:
            fixed.append((option, have, want))
    for option in CLUSTER_UPDATABLE:
        want = desired.get(option)
        if want is None:
            continue
        have = current.get(option)
        if _same(want, have):
            continue
        if option == "cluster_spec" and not (str(have or "").startswith("ack.pro.") and want.startswith("ack.pro.")):
            fixed.append((option, have, want))
            continue
        updates[option] = (have, want)
    to_set, to_remove = {}, []
    if desired.get("tags") is not None:
        have_tags = user_tags(current.get("tags"))
        want_tags = {k: "" if v is None else str(v) for k, v in desired["tags"].items()}
        to_set = {k: v for k, v in want_tags.items() if have_tags.get(k) != v}
        if desired.get("purge_tags", True):
            to_remove = sorted(k for k in have_tags if k not in want_tags)
    return updates, fixed, (to_set, to_remove)


def _cidr_equal(a, b):
    try:
        return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)
    except ValueError:
        return a == b


def fixed_message(kind, ident, fixed):
    parts = []
    for option, have, want in fixed:
        text = "%s is %r, wanted %r" % (option, have, want)
        if option in FIXED_REASONS:
            text += " (%s)" % FIXED_REASONS[option]
        parts.append(text)
    return ("cannot change %s %s: %s. These settings are fixed once the %s exists; recreate it to change them, "
            "or set the options to the current values" % (kind, ident, "; ".join(parts), kind))


NODE_POOL_UPDATABLE = ("name", "instance_types", "vswitch_ids", "image_type", "image_id", "system_disk_category",
                       "system_disk_size", "system_disk_performance_level", "desired_size", "security_group_ids",
                       "key_pair", "labels", "taints", "tags", "data_disks", "management_enabled", "resource_group_id")
NODE_POOL_FIXED = ("tee_enable", "instance_charge_type")
NODE_POOL_FIXED_REASONS = {
    "tee_enable": "a pool's confidential-computing setting is chosen at creation: its nodes were built for it",
    "instance_charge_type": "the billing method of a pool is chosen at creation by this module",
}


def node_pool_changes(desired, current):
    """``(updates {option: (before, after)}, fixed [(option, before, after)])`` for a node pool.

    ``desired`` holds the module's view of each option (None = not managed); list options are
    compared as sets, except ``instance_types`` and ``vswitch_ids`` whose order is a priority.
    """
    updates = {}
    fixed = []
    for option in NODE_POOL_FIXED:
        want = desired.get(option)
        if want is not None and want != current.get(option):
            fixed.append((option, current.get(option), want))
    for option in NODE_POOL_UPDATABLE:
        want = desired.get(option)
        if want is None:
            continue
        have = current.get(option)
        if option in ("instance_types", "vswitch_ids"):
            same = list(want) == list(have or [])
        elif option == "taints":
            same = normalize_taints(want) == normalize_taints(have)
        elif option == "data_disks":
            same = normalize_data_disks(want) == normalize_data_disks(have)
        elif option == "tags":
            same = {k: str(v) for k, v in want.items()} == user_tags(have)
        elif option == "security_group_ids":
            same = sorted(want) == sorted(have or [])
        elif option == "system_disk_size" or option == "desired_size":
            same = have is not None and int(want) == int(have)
        else:
            same = want == have
        if not same:
            updates[option] = (have, want)
    return updates, fixed


def node_pool_modify_body(updates, update_nodes=False):
    """The ModifyClusterNodePool body (plain dict) for the ``updates`` of ``node_pool_changes``."""
    body = {}
    scaling = {}
    kube = {}
    info = {}
    for option, (dummy, want) in updates.items():
        if option in ("name", "resource_group_id"):
            info[option] = want
        elif option == "labels":
            kube["labels"] = dict_to_tags(want)
        elif option == "taints":
            kube["taints"] = normalize_taints(want)
        elif option == "tags":
            scaling["tags"] = dict_to_tags(want)
        elif option == "management_enabled":
            body["management"] = {"enable": bool(want)}
        elif option == "data_disks":
            scaling["data_disks"] = normalize_data_disks(want)
        else:
            scaling[option] = want
    if info:
        body["nodepool_info"] = info
    if scaling:
        body["scaling_group"] = scaling
    if kube:
        body["kubernetes_config"] = kube
        body["update_nodes"] = bool(update_nodes)
    return body


def cleared_lists(updates):
    """Options the update would empty; ModifyClusterNodePool reads an empty list as "not specified"."""
    return sorted(option for option, (have, want) in updates.items()
                  if option in ("labels", "taints", "tags", "data_disks", "security_group_ids") and not want and have)


def diff_view(before, after, keys):
    """A ``{"before": ..., "after": ...}`` pair restricted to ``keys`` (for module diff output)."""
    return {
        "before": {k: before.get(k) for k in keys} if before else {},
        "after": {k: after.get(k) for k in keys} if after else {},
    }


# -- calls (through the shared retry policy) ---------------------------------------------------------------

def is_not_found(error):
    """True for a 404, or a code that says NotFound (never a hard-coded placeholder code)."""
    code = getattr(error, "code", None) or ""
    return getattr(error, "http_status", None) == 404 or "NotFound" in code


def body_map(response):
    """The response body of a Tea call as a plain dict (lists and strings passed through)."""
    body = getattr(response, "body", None)
    if body is None:
        return {}
    if isinstance(body, (str, list, dict)):
        return body
    return body.to_map()


def describe_cluster(module, client, cluster_id):
    """The normalised cluster, or None when it does not exist."""
    try:
        resp = module.call(client.describe_cluster_detail, cluster_id, operation="describe cluster %s" % cluster_id)
    except AlicloudError as exc:
        if is_not_found(exc):
            return None
        raise
    return normalize_cluster(body_map(resp))


def find_clusters(module, client, name=None, page_size=50):
    """Every cluster (normalised) with exactly ``name`` in the module's region; the service matches names fuzzily."""
    found = []
    page = 1
    while True:
        request = cs_models.DescribeClustersV1Request(name=name, region_id=module.region, page_number=page, page_size=page_size)
        body = body_map(module.call(client.describe_clusters_v1, request, operation="list clusters"))
        items = body.get("clusters") or []
        for item in items:
            cluster = normalize_cluster(item)
            if name is None or cluster["name"] == name:
                found.append(cluster)
        total = (body.get("page_info") or {}).get("total_count") or 0
        if not items or page * page_size >= int(total):
            return found
        page += 1


def list_node_pools(module, client, cluster_id, name=None):
    request = cs_models.DescribeClusterNodePoolsRequest(nodepool_name=name)
    body = body_map(module.call(client.describe_cluster_node_pools, cluster_id, request,
                                operation="list the node pools of cluster %s" % cluster_id))
    pools = [normalize_node_pool(p, cluster_id) for p in body.get("nodepools") or []]
    if name is not None:
        pools = [p for p in pools if p["name"] == name]
    return pools


def describe_node_pool(module, client, cluster_id, nodepool_id):
    try:
        resp = module.call(client.describe_cluster_node_pool_detail, cluster_id, nodepool_id,
                           operation="describe node pool %s" % nodepool_id)
    except AlicloudError as exc:
        if is_not_found(exc):
            return None
        raise
    return normalize_node_pool(body_map(resp), cluster_id)


def list_nodes(module, client, cluster_id, nodepool_id=None, instance_ids=None, page_size=100):
    """Nodes of a cluster (optionally one pool, optionally some instances), all pages, normalised."""
    nodes = []
    page = 1
    ids = ",".join(instance_ids) if instance_ids else None
    while True:
        request = cs_models.DescribeClusterNodesRequest(nodepool_id=nodepool_id, instance_ids=ids,
                                                        page_number=str(page), page_size=str(page_size))
        body = body_map(module.call(client.describe_cluster_nodes, cluster_id, request,
                                    operation="list the nodes of cluster %s" % cluster_id))
        items = body.get("nodes") or []
        nodes.extend(normalize_node(n) for n in items)
        total = int((body.get("page") or {}).get("total_count") or 0)
        if not items or page * page_size >= total:
            return nodes
        page += 1


def describe_task(module, client, task_id):
    resp = module.call(client.describe_task_info, task_id, operation="describe task %s" % task_id)
    return normalize_task(body_map(resp))


def wait_task(module, client, task_id, timeout, operation, delay=None):
    """Follow an ACK task until ``success``; raise WaitFailed (with the task's error) or WaitTimeout."""
    if not task_id or module.check_mode:
        return None
    return module.wait(
        lambda: describe_task(module, client, task_id),
        lambda task: task.get("state") == "success",
        timeout=timeout, delay=delay or poll_delay(timeout), is_failed=task_failure,
        describe=lambda task: "task %s is %s" % (task.get("task_id"), task.get("state")),
        operation=operation)


def poll_delay(timeout):
    """Seconds between polls: short for short waits, at most 10 s."""
    return max(0.5, min(10.0, timeout / 60.0))


class Deadline:
    """``wait_timeout`` as one budget for every wait of a run (the task, then the resource).

    A create follows its task and then the resource; a delete of a cluster waits for each node
    pool and then for the cluster. Each wait gets what is left, so the whole run stays within
    ``wait_timeout`` instead of a multiple of it. ``delay`` is the poll interval for the whole budget.
    """

    def __init__(self, seconds, clock=time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self):
        return max(0.0, self._end - self._clock())

    @property
    def delay(self):
        return poll_delay(self.seconds)


def timeout_message(kind, ident, goal, state, wait_timeout, rerun):
    """The message of a run whose ``wait_timeout`` ran out: what exists, what it waited for, what to do."""
    return ("wait_timeout (%ss) ran out waiting for %s %s to be %s; it is %s now and is left as it is. Run the task "
            "again (with a longer wait_timeout) to keep waiting: %s" % (wait_timeout, kind, ident, goal, state or "unknown", rerun))


def create_once(module, create, lookup, operation):
    """Run ``create`` through the retry policy, looking the resource up before every retry.

    A create that timed out or met a 5xx may have been carried out anyway; ``lookup()`` returns
    what it made (or None), so a retry never makes a twin even where the API takes no client token.
    Returns ``("created", response)`` or ``("found", resource)``.
    """
    attempts = []

    def attempt():
        if attempts:
            existing = lookup()
            if existing is not None:
                return ("found", existing)
        attempts.append(1)
        return ("created", create())

    return module.call(attempt, operation=operation)


def write_private(path, text, mode=0o600):
    """Write ``text`` to ``path`` atomically, created with ``mode`` and never wider.

    Used for files that hold credentials (a kubeconfig, a node join script): a temporary file in
    the same directory gets the mode before any byte is written, then replaces ``path``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cai-ack-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
