# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ECS calls and logic shared by the ECS modules (zones, stock, instances, images, tokens).

Each call returns plain snake_case dicts (or wire-shaped maps where noted).
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import client_token

try:
    from alibabacloud_ecs20140526 import models as ecs_models
except ImportError:  # the modules report the missing library through AlicloudModule.client()
    ecs_models = None

# DescribeAvailableResource: stock is there when Status is Available; ClosedWithStock is low stock
# (the service suggests another type), WithoutStock / ClosedWithoutStock are sold out.
IN_STOCK_CATEGORIES = ("WithStock", "ClosedWithStock")


def describe_zones(module, client):
    """Zones of the module's region: ``[{zone_id, local_name, instance_types}]``."""
    request = ecs_models.DescribeZonesRequest(region_id=module.region, verbose=True)
    body = module.call(client.describe_zones, request, operation="describe zones").body
    zones = []
    for zone in (body.zones.zone if body and body.zones else []):
        types = zone.available_instance_types.instance_types if zone.available_instance_types else None
        zones.append({
            "zone_id": zone.zone_id,
            "local_name": zone.local_name,
            "instance_types": sorted(types or []),
        })
    return zones


def describe_stock(module, client, instance_type, zone_id=None, charge_type="PostPaid"):
    """Stock of ``instance_type`` per zone: ``{zone_id: {status, status_category, in_stock}}``.

    A zone that does not offer the type at all is absent from the answer (the service returns an
    empty list, not an error).
    """
    request = ecs_models.DescribeAvailableResourceRequest(
        region_id=module.region,
        destination_resource="InstanceType",
        resource_type="instance",
        instance_charge_type=charge_type,
        instance_type=instance_type,
        zone_id=zone_id,
    )
    body = module.call(client.describe_available_resource, request,
                       operation="describe the stock of %s" % instance_type).body
    stock = {}
    zones = body.available_zones.available_zone if body and body.available_zones else []
    for zone in zones:
        resources = zone.available_resources.available_resource if zone.available_resources else []
        for resource in resources:
            if resource.type != "InstanceType" or not resource.supported_resources:
                continue
            for supported in resource.supported_resources.supported_resource:
                if supported.value != instance_type:
                    continue
                stock[zone.zone_id] = {
                    "status": supported.status,
                    "status_category": supported.status_category,
                    "in_stock": supported.status == "Available" and supported.status_category in IN_STOCK_CATEGORIES,
                }
    return stock


def zones_with_stock(stock):
    """The zone ids of a ``describe_stock`` answer that have stock, sorted."""
    return sorted(zone for zone, info in stock.items() if info["in_stock"])


# ---------------------------------------------------------------------------------------------
# Instances: constants, validation, normalisation, lookup, images, tokens, comparison.
#
# The functions that talk to ECS take ``(module, client, ...)`` and return plain dicts; the rest
# is pure logic with unit tests (tests/unit/plugins/module_utils/test_ecs.py). SDK models are turned
# into their wire-shaped maps (``body.to_map()``: PascalCase keys, double-wrapped lists) at once,
# so the normalisers read the documented wire format and never SDK classes.

INSTANCE_STATUSES = ("Pending", "Starting", "Running", "Stopping", "Stopped")
MAX_IDS_PER_CALL = 100          # DescribeInstances.InstanceIds, TagResources.ResourceId.N
MAX_RESULTS = 100               # DescribeInstances.MaxResults upper bound
MAX_TAGS = 20
MIN_SYSTEM_DISK_GIB = 20        # the smallest public image; the module also checks the image's own size
MAX_SYSTEM_DISK_GIB = 2048
MAX_USER_DATA_BYTES = 32 * 1024
DEFAULT_IMAGE = "Alibaba Cloud Linux 3.2104 LTS 64-bit"
UEFI_SUFFIX = "_uefi"
ALINUX3_FAMILY = "acs:alibaba_cloud_linux_3_2104_lts_x64"
# Console names of public images -> image family (the UEFI family is the family + "_uefi").
IMAGE_ALIASES = {
    "alibaba cloud linux 3.2104 lts 64-bit": ALINUX3_FAMILY,
    "alibaba cloud linux 3.2104 lts 64-bit uefi": ALINUX3_FAMILY + UEFI_SUFFIX,
    "alibaba cloud linux 3": ALINUX3_FAMILY,
    "alinux3": ALINUX3_FAMILY,
    "aliyun linux 3": ALINUX3_FAMILY,
}

INSTANCE_NAME_RE = re.compile(r"^[A-Za-z\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5:_.\-]{1,127}$")
INSTANCE_ID_RE = re.compile(r"^i-[a-z0-9]{1,64}$")
VSWITCH_ID_RE = re.compile(r"^vsw-[a-z0-9]{1,64}$")
SECURITY_GROUP_ID_RE = re.compile(r"^sg-[a-z0-9]{1,64}$")
INSTANCE_TYPE_RE = re.compile(r"^ecs\.[a-z0-9][a-z0-9-]*\.[a-z0-9-]+$")
ZONE_ID_RE = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_PASSWORD_SPECIALS = "()`~!@#$%^&*-_+=|{}[]:;'<>,.?/"


class EcsInputError(ValueError):
    """A desired instance that cannot be made; the message names the option at fault."""


def validate_instance_name(name, field="name"):
    """None when ``name`` is a valid InstanceName (2-128 characters, starts with a letter), else a message."""
    if name.startswith(("http://", "https://")):
        return "%s must not start with http:// or https://" % field
    if len(name) > 128:
        return "%s is %d characters long; ECS allows at most 128" % (field, len(name))
    if not INSTANCE_NAME_RE.match(name):
        return ("%s %r is not a valid instance name: 2 to 128 characters, starting with a letter, then letters, "
                "digits, colons, underscores, periods or hyphens" % (field, name))
    return None


def validate_password(password, field="password"):
    """None when ``password`` meets the ECS rules (8-30 characters, three of four character classes)."""
    if not 8 <= len(password) <= 30:
        return "%s must be 8 to 30 characters long (got %d)" % (field, len(password))
    classes = [any(c.isupper() for c in password), any(c.islower() for c in password),
               any(c.isdigit() for c in password), any(c in _PASSWORD_SPECIALS for c in password)]
    allowed = set(_PASSWORD_SPECIALS)
    if any(not (c.isascii() and (c.isalnum() or c in allowed)) for c in password):
        return "%s may only contain letters, digits and the special characters %s" % (field, _PASSWORD_SPECIALS)
    if sum(classes) < 3:
        return "%s must contain at least three of: upper-case letters, lower-case letters, digits, special characters" % field
    return None


def validate_tags(tags, field="tags"):
    """A list of messages (empty when ``tags`` is a valid ECS tag dict)."""
    errors = []
    if len(tags) > MAX_TAGS:
        errors.append("%s has %d entries; ECS allows at most %d" % (field, len(tags), MAX_TAGS))
    for key, value in tags.items():
        key = str(key)
        value = "" if value is None else str(value)
        if not key or len(key) > 128:
            errors.append("%s key %r must be 1 to 128 characters long" % (field, key))
        elif key.startswith(("aliyun", "acs:")):
            errors.append("%s key %r must not start with aliyun or acs:" % (field, key))
        if len(value) > 128:
            errors.append("%s value of %r is longer than 128 characters" % (field, key))
        if value.startswith("acs:"):
            errors.append("%s value of %r must not start with acs:" % (field, key))
        if any(marker in text for text in (key, value) for marker in ("http://", "https://")):
            errors.append("%s entry %r must not contain http:// or https://" % (field, key))
    return errors


def normalize_tags(tags):
    """A tag dict with string keys and values (None -> "")."""
    return {str(k): ("" if v is None else str(v)) for k, v in (tags or {}).items()}


def _wrapped(raw, outer, inner):
    """``raw[outer][inner]`` as a list (the ECS double-wrapped list), [] when absent."""
    value = raw.get(outer) if raw else None
    if not isinstance(value, dict):
        return []
    items = value.get(inner)
    if items is None:
        return []
    return items if isinstance(items, list) else [items]


def tags_from_wire(raw):
    """``{"Tags": {"Tag": [{"TagKey", "TagValue"}]}}`` -> ``{key: value}``."""
    return {t.get("TagKey"): t.get("TagValue") or "" for t in _wrapped(raw, "Tags", "Tag") if t.get("TagKey")}


def normalize_instance(raw):
    """A DescribeInstances instance (wire map) as the snake_case dict the modules return."""
    vpc = raw.get("VpcAttributes") or {}
    private_ips = _wrapped(vpc, "PrivateIpAddress", "IpAddress")
    public_ips = _wrapped(raw, "PublicIpAddress", "IpAddress")
    eip = raw.get("EipAddress") or {}
    interfaces = _wrapped(raw, "NetworkInterfaces", "NetworkInterface")
    primary = next((n for n in interfaces if n.get("Type") == "Primary"), interfaces[0] if interfaces else {})
    locks = [lock.get("LockReason") for lock in _wrapped(raw, "OperationLocks", "LockReason") if lock.get("LockReason")]
    return {
        "instance_id": raw.get("InstanceId"),
        "name": raw.get("InstanceName"),
        "host_name": raw.get("HostName"),
        "description": raw.get("Description") or "",
        "status": raw.get("Status"),
        "stopped_mode": raw.get("StoppedMode"),
        "region_id": raw.get("RegionId"),
        "zone_id": raw.get("ZoneId"),
        "instance_type": raw.get("InstanceType"),
        "instance_type_family": raw.get("InstanceTypeFamily"),
        "cpu": raw.get("Cpu"),
        "memory_mib": raw.get("Memory"),
        "gpu_amount": raw.get("GPUAmount"),
        "gpu_spec": raw.get("GPUSpec"),
        "image_id": raw.get("ImageId"),
        "os_name": raw.get("OSNameEn") or raw.get("OSName"),
        "os_type": raw.get("OSType"),
        "vpc_id": vpc.get("VpcId"),
        "vswitch_id": vpc.get("VSwitchId"),
        "private_ip": private_ips[0] if private_ips else (primary.get("PrimaryIpAddress") or None),
        "private_ips": list(private_ips),
        "public_ip": (public_ips[0] if public_ips else None) or eip.get("IpAddress") or None,
        "public_ips": list(public_ips),
        "eip_address": eip.get("IpAddress") or None,
        "network_interface_id": primary.get("NetworkInterfaceId"),
        "mac_address": primary.get("MacAddress"),
        "security_group_ids": list(_wrapped(raw, "SecurityGroupIds", "SecurityGroupId")),
        "tags": tags_from_wire(raw),
        "key_pair_name": raw.get("KeyPairName") or None,
        "charge_type": raw.get("InstanceChargeType"),
        "internet_charge_type": raw.get("InternetChargeType"),
        "internet_max_bandwidth_out": raw.get("InternetMaxBandwidthOut"),
        "deletion_protection": bool(raw.get("DeletionProtection")),
        "creation_time": raw.get("CreationTime"),
        "start_time": raw.get("StartTime") or None,
        "expired_time": raw.get("ExpiredTime") or None,
        "operation_locks": locks,
    }


def paginate(fetch, max_pages=10000):
    """Every item of a NextToken-paged listing. ``fetch(next_token)`` returns ``(items, next_token)``.

    The first call gets ``None``; paging stops at an empty or missing token. A token seen twice
    (a service or emulator bug) raises ValueError rather than looping forever.
    """
    token = None
    seen = set()
    for dummy in range(max_pages):
        items, token = fetch(token)
        yield from items
        if not token:
            return
        if token in seen:
            raise ValueError("the service returned the NextToken %r twice" % token)
        seen.add(token)
    raise ValueError("more than %d pages" % max_pages)


def chunks(items, size):
    """``items`` in lists of at most ``size``."""
    items = list(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


def _tag_filters(model, tags):
    return [model(key=k, value=(v if v not in (None, "") else None)) for k, v in sorted((tags or {}).items())]


def describe_instances(module, client, instance_ids=None, name=None, tags=None, zone_id=None, status=None,
                       vpc_id=None, vswitch_id=None, instance_type=None):
    """Instances matching every filter given, all pages, as normalised dicts (oldest first as ECS lists them).

    ``instance_ids`` is split into calls of 100 (the API limit); an empty list matches nothing.
    ``name`` may use the ``*`` wildcard (ECS semantics). ``tags`` match when the instance has every
    key, with the same value unless the value is None or empty (then any value).
    """
    if instance_ids is not None and not instance_ids:
        return []
    id_groups = chunks(instance_ids, MAX_IDS_PER_CALL) if instance_ids else [None]
    found = {}
    for group in id_groups:
        def fetch(token, group=group):
            request = ecs_models.DescribeInstancesRequest(
                region_id=module.region,
                instance_ids=json.dumps(group) if group else None,
                instance_name=name,
                tag=_tag_filters(ecs_models.DescribeInstancesRequestTag, tags) or None,
                zone_id=zone_id,
                status=status,
                vpc_id=vpc_id,
                v_switch_id=vswitch_id,
                instance_type=instance_type,
                max_results=MAX_RESULTS,
                next_token=token,
            )
            body = module.call(client.describe_instances, request, operation="describe instances").body
            raw = body.to_map() if body is not None else {}
            return _wrapped(raw, "Instances", "Instance"), raw.get("NextToken") or None
        for raw in paginate(fetch):
            instance = normalize_instance(raw)
            found.setdefault(instance["instance_id"], instance)
    return list(found.values())


def tags_match(have, want):
    """True when the tag dict ``have`` holds every key of ``want`` (a None/empty wanted value matches any value)."""
    for key, value in (want or {}).items():
        if key not in have:
            return False
        if value not in (None, "") and have[key] != str(value):
            return False
    return True


def lookup_instances(module, client, instance_id=None, name=None, tags=None):
    """The instances an ``ecs_instance`` task addresses: by id, else exact name, else all the tags."""
    if instance_id:
        return describe_instances(module, client, instance_ids=[instance_id])
    if name:
        return [i for i in describe_instances(module, client, name=name) if i["name"] == name]
    return [i for i in describe_instances(module, client, tags=tags) if tags_match(i["tags"], tags)]


def get_instance(module, client, instance_id):
    """The normalised instance ``instance_id`` or None when it does not exist (any more)."""
    found = describe_instances(module, client, instance_ids=[instance_id])
    return found[0] if found else None


def describe_instance_type(module, client, instance_type):
    """The DescribeInstanceTypes entry (wire map) of ``instance_type`` or None when the region has no such type."""
    request = ecs_models.DescribeInstanceTypesRequest(instance_types=[instance_type])
    body = module.call(client.describe_instance_types, request, operation="describe instance type %s" % instance_type).body
    raw = body.to_map() if body is not None else {}
    return next((t for t in _wrapped(raw, "InstanceTypes", "InstanceType") if t.get("InstanceTypeId") == instance_type), None)


def describe_vswitch(module, client, vswitch_id):
    """The vSwitch (wire map: VSwitchId, VpcId, ZoneId, CidrBlock, ...) or None."""
    request = ecs_models.DescribeVSwitchesRequest(region_id=module.region, v_switch_id=vswitch_id)
    body = module.call(client.describe_vswitches, request, operation="describe vSwitch %s" % vswitch_id).body
    raw = body.to_map() if body is not None else {}
    return next((v for v in _wrapped(raw, "VSwitches", "VSwitch") if v.get("VSwitchId") == vswitch_id), None)


def describe_security_groups(module, client, group_ids):
    """``{security_group_id: wire map}`` for the groups of ``group_ids`` that exist."""
    found = {}
    for group in chunks(group_ids, MAX_IDS_PER_CALL):
        request = ecs_models.DescribeSecurityGroupsRequest(region_id=module.region, security_group_ids=json.dumps(group),
                                                           max_results=MAX_RESULTS)
        body = module.call(client.describe_security_groups, request, operation="describe security groups").body
        raw = body.to_map() if body is not None else {}
        for entry in _wrapped(raw, "SecurityGroups", "SecurityGroup"):
            found[entry.get("SecurityGroupId")] = entry
    return found


# -- images ------------------------------------------------------------------------------------

def needs_uefi(type_info):
    """True when instances of this type must boot a UEFI image.

    That is when DescribeInstanceTypes lists only UEFI boot modes, or the type is a TEE type
    (``ecs.gn8v-tee.*``: Intel TDX is always on, and TDX guests boot UEFI). Types that can boot
    BIOS get the plain image family.
    """
    modes = _wrapped(type_info, "SupportedBootModes", "SupportedBootMode")
    if modes and "BIOS" not in modes and any(m.startswith("UEFI") for m in modes):
        return True
    family = type_info.get("InstanceTypeFamily") or ""
    type_id = type_info.get("InstanceTypeId") or ""
    return family.endswith("-tee") or "-tee." in type_id or "-tee-" in type_id


def _alias_key(text):
    key = " ".join(text.lower().replace("64 bit", "64-bit").split())
    return key


def image_family_for(image, uefi):
    """The image family for the ``image`` option: an ``acs:`` family as given, or a known console name.

    Known names (``Alibaba Cloud Linux 3.2104 LTS 64-bit`` and a few spellings) map to their family,
    with the ``_uefi`` variant when ``uefi`` is true. Raises EcsInputError for unknown names.
    """
    if image.startswith("acs:"):
        return image
    family = IMAGE_ALIASES.get(_alias_key(image))
    if family is None:
        raise EcsInputError("image %r is not a known image name; give image_id, an image family such as %s, "
                            "or one of: %s" % (image, ALINUX3_FAMILY, ", ".join(sorted(IMAGE_ALIASES))))
    if uefi and not family.endswith(UEFI_SUFFIX):
        family += UEFI_SUFFIX
    return family


def choose_image(images):
    """The newest (by CreationTime) Available image of a DescribeImages answer, or None."""
    usable = [i for i in images if (i.get("Status") or "Available") == "Available"]
    if not usable:
        return None
    return sorted(usable, key=lambda i: (i.get("CreationTime") or "", i.get("ImageId") or ""))[-1]


def _describe_images(module, client, **filters):
    images = []
    page = 1
    while True:
        request = ecs_models.DescribeImagesRequest(region_id=module.region, page_number=page, page_size=100, **filters)
        body = module.call(client.describe_images, request, operation="describe images").body
        raw = body.to_map() if body is not None else {}
        batch = _wrapped(raw, "Images", "Image")
        images.extend(batch)
        total = raw.get("TotalCount") or 0
        if not batch or len(images) >= total or page >= 100:
            return images
        page += 1


def resolve_image(module, client, type_info, image_id=None, image=None):
    """The image (wire map) to create an instance of ``type_info`` from.

    With ``image_id``: that image, which must exist and be usable by the type. Otherwise the newest
    image of the family ``image_family_for(image or DEFAULT_IMAGE, needs_uefi(type_info))``, among
    the public (``system``) images usable by the type. Raises EcsInputError with a message naming
    ``image_id`` or ``image``.
    """
    instance_type = type_info.get("InstanceTypeId")
    if image_id:
        found = _describe_images(module, client, image_id=image_id, status="Available")
        if not found:
            raise EcsInputError("image_id %s does not exist or is not Available in region %s" % (image_id, module.region))
        usable = _describe_images(module, client, image_id=image_id, instance_type=instance_type, status="Available")
        if not usable:
            raise EcsInputError("image_id %s (boot mode %s) cannot be used with instance_type %s" % (
                image_id, found[0].get("BootMode"), instance_type))
        return usable[0]
    family = image_family_for(image or DEFAULT_IMAGE, needs_uefi(type_info))
    owner = "system" if family.startswith("acs:") else None
    chosen = choose_image(_describe_images(module, client, image_family=family, image_owner_alias=owner,
                                           instance_type=instance_type, status="Available"))
    if chosen is None:
        raise EcsInputError("image %r: no Available image of family %s can be used with instance_type %s in region %s" % (
            image or DEFAULT_IMAGE, family, instance_type, module.region))
    return chosen


# -- stock -------------------------------------------------------------------------------------

def stock_problem(stock, zone_id, instance_type, region):
    """None when ``describe_stock`` says ``zone_id`` has stock of ``instance_type``, else the failure message.

    The message always lists the zones of the region that do have stock.
    """
    info = stock.get(zone_id)
    if info and info["in_stock"]:
        return None
    with_stock = zones_with_stock(stock)
    if info is None:
        head = "instance_type %s is not offered in zone %s" % (instance_type, zone_id)
    else:
        head = "instance_type %s has no stock in zone %s (%s, %s)" % (
            instance_type, zone_id, info["status"], info["status_category"])
    if with_stock:
        return "%s; zones of %s with stock: %s" % (head, region, ", ".join(with_stock))
    return "%s; no zone of %s has stock of it now" % (head, region)


# -- client tokens ----------------------------------------------------------------------------

MAX_TOKEN_GENERATIONS = 8


def run_identity(request_map):
    """What identifies a RunInstances request for its ClientToken: every parameter but the token.

    Secrets never enter the token: a password is replaced by a marker (changing it therefore does
    not change the token), and user data by its SHA-256.
    """
    identity = {k: v for k, v in request_map.items() if k not in ("ClientToken", "DryRun", "Password")}
    if request_map.get("Password"):
        identity["Password"] = "(set)"
    if request_map.get("UserData"):
        identity["UserData"] = hashlib.sha256(str(request_map["UserData"]).encode("utf-8")).hexdigest()
    return identity


def instance_client_token(identity, generation=0):
    """The ClientToken of generation ``generation`` of a desired instance (64 characters).

    Generation 0 is tried first. When ECS answers a token with instances that no longer exist (the
    token made an instance that was deleted since; ECS remembers tokens for a day or more) or says the
    token was used with other parameters, the module moves on to the next generation. The walk is
    deterministic, so a re-run after a lost answer reaches the same token and gets the same instance.
    """
    return client_token("ecs_instance", {"request": identity, "generation": generation})


def is_token_conflict(error):
    """True for 'this ClientToken was used with other parameters' (IdempotenceParamNotMatch and kin)."""
    code = getattr(error, "code", None) or ""
    return "Idempotence" in code and "Processing" not in code


# -- desired vs current -----------------------------------------------------------------------

# Fields ECS changes in place (the module does: tags with TagResources/UntagResources; name,
# description and deletion protection with ModifyInstanceAttribute). Everything else the module
# compares is fixed at creation as far as this module is concerned.
UPDATABLE_FIELDS = ("name", "description", "deletion_protection")
FIXED_FIELDS = ("zone_id", "vswitch_id", "instance_type", "image_id", "security_group_ids", "key_pair_name",
                "internet_max_bandwidth_out", "charge_type", "internet_charge_type", "host_name")


def compare_instance(desired, current, purge_tags=False):
    """Compare the fields a task sets (``desired``, None = not managed) with an instance (normalised).

    Returns ``{"update": {field: new}, "tags_add": {k: v}, "tags_remove": [k], "fixed": [(field, want, have)]}``.
    ``security_group_ids`` compare as sets; ``tags`` add/replace values, and remove other keys only
    with ``purge_tags``.
    """
    update = {}
    for field in UPDATABLE_FIELDS:
        want = desired.get(field)
        if want is not None and want != current.get(field):
            update[field] = want
    fixed = []
    for field in FIXED_FIELDS:
        want = desired.get(field)
        if want is None:
            continue
        have = current.get(field)
        if field == "security_group_ids":
            if set(want) != set(have or []):
                fixed.append((field, sorted(want), sorted(have or [])))
        elif want != have:
            fixed.append((field, want, have))
    tags_add, tags_remove = {}, []
    want_tags = desired.get("tags")
    have_tags = current.get("tags") or {}
    if want_tags is not None:
        want_tags = normalize_tags(want_tags)
        tags_add = {k: v for k, v in want_tags.items() if have_tags.get(k) != v}
        if purge_tags:
            tags_remove = sorted(k for k in have_tags if k not in want_tags)
    return {"update": update, "tags_add": tags_add, "tags_remove": tags_remove, "fixed": fixed}


def fixed_field_message(fixed, instance_id):
    """The failure text for fields a task wants changed that ECS (or this module) fixes at creation."""
    parts = ["%s is %r, the task wants %r" % (field, have, want) for field, want, have in fixed]
    return ("instance %s: %s. These fields are fixed at creation in ecs_instance; delete and re-create the "
            "instance (state=absent, then present) to change them" % (instance_id, "; ".join(parts)))


def apply_changes(current, changes):
    """The instance as it will be after ``compare_instance`` changes are applied (for diff and check mode)."""
    after = dict(current)
    after.update(changes["update"])
    tags = dict(current.get("tags") or {})
    tags.update(changes["tags_add"])
    for key in changes["tags_remove"]:
        tags.pop(key, None)
    after["tags"] = tags
    return after
