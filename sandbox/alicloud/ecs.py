"""ECS (RPC, version 2014-05-26) actions of the emulator.

Parameters arrive flattened in the query (``Tag.1.Key``, ``InstanceId.1``, ``SystemDisk.Category``);
booleans as ``True``/``False``; ``DescribeInstances.InstanceIds`` as a JSON string. Responses use
PascalCase keys and double-wrapped lists (``{"Instances":{"Instance":[...]}}``), see the wire
reference section 8. Error codes follow section 6.3.
"""

import base64
import binascii
import fnmatch
import hashlib
import ipaddress
import json
import re
import secrets
import time
import uuid

from .server import ApiError
from .state import phase_end, phase_value, start_phase

ACTIONS = {}

# Instance status timelines ([fraction of the duration, status]).
CREATE_STEPS = [[0, "Pending"], [0.3, "Starting"], [1.0, "Running"]]
START_STEPS = [[0, "Starting"], [1.0, "Running"]]
STOP_STEPS = [[0, "Stopping"], [1.0, "Stopped"]]
GONE = "__released__"

# Parameters that are not part of the RunInstances "same request" fingerprint (legacy signing extras).
_UNFINGERPRINTED = {"Signature", "SignatureNonce", "SignatureMethod", "SignatureVersion", "Timestamp", "AccessKeyId",
                    "SecurityToken", "Format", "Version", "Action", "ClientToken", "DryRun"}
_DISK_CATEGORIES = ("cloud_essd", "cloud_auto", "cloud_efficiency", "cloud_ssd", "cloud_essd_entry", "cloud")


def action(name, mutating=False):
    def register(func):
        ACTIONS[name] = {"func": func, "mutating": mutating}
        return func
    return register


def ecs_time(epoch):
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(epoch))


def _check_region(call, required=True):
    region = call.require("RegionId") if required else call.param("RegionId", call.catalog.region)
    if region != call.catalog.region:
        raise ApiError("InvalidRegionId.NotFound", "The specified RegionId %s does not exist." % region, 404)
    return region


def _dry_run(call):
    if call.bool_param("DryRun"):
        raise ApiError("DryRunOperation", "Request validation has been passed with DryRun flag set.", 400)


def _page(call, items, default_size=10, max_size=100):
    number = call.int_param("PageNumber", 1, 1)
    size = call.int_param("PageSize", default_size, 1, max_size)
    start = (number - 1) * size
    return items[start:start + size], number, size


def _token_page(call, items, low=10, high=100, default=None):
    """NextToken/MaxResults paging: returns (page, next_token)."""
    size = call.int_param("MaxResults", default or high)
    size = min(max(size, low), high)
    token = call.param("NextToken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)[1])
        except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
            raise ApiError("InvalidNextToken.Malformed", "The specified NextToken is not valid.") from None
    page = items[start:start + size]
    nxt = ""
    if start + size < len(items):
        nxt = base64.urlsafe_b64encode(("page:%d" % (start + size)).encode()).decode()
    return page, nxt


# ---------------------------------------------------------------------------------------------
# lifecycle


def advance(emu, now):
    """Apply finished transitions of every instance. Returns True when something changed."""
    instances = emu.state["instances"]
    changed = False
    for iid in list(instances):
        inst = instances[iid]
        value, done = phase_value(inst, emu.clock, now)
        if value is None:
            continue
        if value != inst["Status"] and value != GONE:
            inst["Status"] = value
            changed = True
        if done:
            end = phase_end(inst, emu.clock)
            del inst["_phase"]
            changed = True
            if value == GONE:
                del instances[iid]
            elif value == "Running":
                inst["StartTime"] = ecs_time(end)
                inst["_running_since"] = end
    return changed


def get_instance(call, iid, code_status=404):
    inst = call.state["instances"].get(iid)
    if inst is None or inst.get("_phase", {}).get("steps", [[0, None]])[-1][1] == GONE:
        raise ApiError("InvalidInstanceId.NotFound", "The specified InstanceId %s does not exist." % iid, code_status)
    return inst


def allocate_private_ip(state, vswitch):
    net = ipaddress.ip_network(vswitch["CidrBlock"])
    counters = state["ip_counters"]
    last = counters.get(vswitch["VSwitchId"], 9)
    last += 1
    if last >= net.num_addresses - 3:
        raise ApiError("InvalidVSwitchId.IpNotEnough", "The specified VSwitch %s has not enough IP addresses." % vswitch["VSwitchId"], 400)
    counters[vswitch["VSwitchId"]] = last
    return str(net.network_address + last)


def allocate_public_ip(state):
    counters = state["ip_counters"]
    last = counters.get("public", 0) + 1
    counters["public"] = last
    nets = [ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("198.51.100.0/24")]
    net = nets[(last // 250) % 2]
    return str(net.network_address + 1 + (last % 250))


def new_instance_id():
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "i-2ze" + "".join(secrets.choice(alphabet) for dummy in range(17))


def create_instance(emu, now, spec):
    """Create one instance from a normalised ``spec`` dict; returns the instance record.

    Used by RunInstances and by ACK node pool scale-out. ``spec`` keys: zone, vswitch, type, image,
    security_groups, name, host_name, description, tags [(k, v)], bandwidth_out, charge_type,
    internet_charge_type, key_pair, deletion_protection, system_disk {category,size,pl}, data_disks,
    metadata (HttpEndpoint, HttpTokens), client_token, user_data_sha256, ram_role.
    """
    state = emu.state
    itype = emu.catalog.instance_types[spec["type"]]
    image = emu.catalog.images[spec["image"]]
    vswitch = emu.catalog.vswitches[spec["vswitch"]]
    iid = new_instance_id()
    while iid in state["instances"]:
        iid = new_instance_id()
    ip = allocate_private_ip(state, vswitch)
    public = [allocate_public_ip(state)] if spec.get("bandwidth_out", 0) > 0 else []
    mac = "00:16:3e:%02x:%02x:%02x" % tuple(secrets.token_bytes(3))
    name = spec.get("name") or iid
    host = spec.get("host_name") or ("iZ%sZ" % iid[2:])
    inst = {
        "InstanceId": iid, "InstanceName": name, "HostName": host, "Description": spec.get("description", ""),
        "Status": "Pending", "StoppedMode": "Not-applicable", "InstanceType": itype["InstanceTypeId"],
        "InstanceTypeFamily": itype["InstanceTypeFamily"], "RegionId": emu.catalog.region, "ZoneId": spec["zone"],
        "ImageId": image["ImageId"], "OSName": image["OSName"], "OSNameEn": image["OSNameEn"], "OSType": image["OSType"],
        "Cpu": itype["CpuCoreCount"], "Memory": int(itype["MemorySize"] * 1024), "GPUAmount": itype["GPUAmount"],
        "GPUSpec": itype["GPUSpec"], "CreationTime": ecs_time(now), "StartTime": "", "ExpiredTime": "2099-12-31T15:59Z",
        "AutoReleaseTime": "", "InstanceChargeType": spec.get("charge_type", "PostPaid"),
        "InternetChargeType": spec.get("internet_charge_type", "PayByTraffic"),
        "InternetMaxBandwidthOut": spec.get("bandwidth_out", 0), "InternetMaxBandwidthIn": 100 if public else 0,
        "KeyPairName": spec.get("key_pair", ""), "DeletionProtection": bool(spec.get("deletion_protection")),
        "InstanceNetworkType": "vpc", "IoOptimized": True, "DeviceAvailable": True, "Recyclable": False,
        "ResourceGroupId": spec.get("resource_group_id", ""), "SpotStrategy": "NoSpot", "SaleCycle": "",
        "SerialNumber": str(uuid.uuid4()), "CreditSpecification": "", "DeploymentSetId": "", "ClusterId": "",
        "LocalStorageAmount": 0, "LocalStorageCapacity": 0, "VlanId": "", "HpcClusterId": "",
        "VpcAttributes": {"VpcId": vswitch["VpcId"], "VSwitchId": vswitch["VSwitchId"], "NatIpAddress": "",
                          "PrivateIpAddress": {"IpAddress": [ip]}},
        "PublicIpAddress": {"IpAddress": public},
        "InnerIpAddress": {"IpAddress": []},
        "RdmaIpAddress": {"IpAddress": []},
        "EipAddress": {"IpAddress": "", "AllocationId": "", "InternetChargeType": "", "Bandwidth": 0},
        "SecurityGroupIds": {"SecurityGroupId": list(spec["security_groups"])},
        "Tags": {"Tag": [{"TagKey": k, "TagValue": v} for k, v in spec.get("tags", [])]},
        "NetworkInterfaces": {"NetworkInterface": [{
            "NetworkInterfaceId": "eni-2ze" + secrets.token_hex(8)[:17], "MacAddress": mac, "PrimaryIpAddress": ip,
            "Type": "Primary", "PrivateIpSets": {"PrivateIpSet": [{"PrivateIpAddress": ip, "Primary": True}]},
            "Ipv6Sets": {"Ipv6Set": []}, "Ipv4PrefixSets": {"Ipv4PrefixSet": []}, "Ipv6PrefixSets": {"Ipv6PrefixSet": []}}]},
        "OperationLocks": {"LockReason": []},
        "MetadataOptions": {"HttpEndpoint": spec.get("metadata", {}).get("HttpEndpoint", "enabled"),
                            "HttpTokens": spec.get("metadata", {}).get("HttpTokens", "optional"), "HttpPutResponseHopLimit": 1},
        "SecurityOptions": {"ConfidentialComputingMode": spec.get("confidential_mode", ""),
                            "TrustedSystemMode": spec.get("trusted_mode", ""), "EnableSecureBoot": False},
        "CpuOptions": {"CoreCount": max(itype["CpuCoreCount"] // 2, 1), "ThreadsPerCore": 2, "Numa": ""},
        "_system_disk": spec.get("system_disk", {}), "_data_disks": spec.get("data_disks", []),
        "_vpc": vswitch["VpcId"], "_created": now,
    }
    if itype["InstanceTypeFamily"] == "ecs.gn8v-tee":
        inst["SecurityOptions"]["ConfidentialComputingMode"] = inst["SecurityOptions"]["ConfidentialComputingMode"] or "TDX"
    start_phase(inst, "ecs.instance.start", CREATE_STEPS, now)
    state["instances"][iid] = inst
    return inst


def public_view(inst):
    return {k: v for k, v in inst.items() if not k.startswith("_")}


def release_instance(emu, inst, now):
    """Start releasing ``inst`` (it disappears when ecs.instance.delete has elapsed)."""
    start_phase(inst, "ecs.instance.delete", [[0, inst["Status"]], [1.0, GONE]], now)


def is_released(inst):
    phase = inst.get("_phase")
    return bool(phase) and phase["steps"][-1][1] == GONE


# ---------------------------------------------------------------------------------------------
# RunInstances


def _resolve_image(call, instance_type):
    image_id = call.param("ImageId")
    family = call.param("ImageFamily")
    images = call.catalog.images
    if image_id:
        if image_id not in images:
            raise ApiError("InvalidImageId.NotFound", "The specified ImageId %s does not exist." % image_id, 404)
        return image_id
    if family:
        matches = sorted((img for img in images.values() if img["ImageFamily"] == family and img["Status"] == "Available"),
                         key=lambda img: img["CreationTime"])
        if not matches:
            raise ApiError("InvalidImageFamily.NotFound", "The specified ImageFamily %s does not exist." % family, 404)
        return matches[-1]["ImageId"]
    del instance_type
    raise ApiError("MissingParameter", 'The input parameter "ImageId" that is mandatory for processing this request is not supplied.')


def _fingerprint(call):
    items = sorted((k, v) for k, v in call.query.items() if k not in _UNFINGERPRINTED)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def validate_placement(emu, zone, vswitch_id, security_groups, instance_type):
    """Checks shared by RunInstances and ACK node pools; returns the zone."""
    catalog = emu.catalog
    vswitch = catalog.vswitches.get(vswitch_id)
    if vswitch is None:
        raise ApiError("InvalidVSwitchId.NotFound", "The specified VSwitchId %s does not exist." % vswitch_id, 404)
    if zone and zone != vswitch["ZoneId"]:
        raise ApiError("InvalidParameter.Mismatch", "The specified vSwitch %s is not in zone %s." % (vswitch_id, zone))
    zone = vswitch["ZoneId"]
    for sg in security_groups:
        group = catalog.security_groups.get(sg)
        if group is None:
            raise ApiError("InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId %s does not exist." % sg, 404)
        if group["VpcId"] != vswitch["VpcId"]:
            raise ApiError("InvalidParameter.Mismatch", "The security group %s and the vSwitch %s are in different VPCs." % (sg, vswitch_id))
    if instance_type not in catalog.instance_types:
        raise ApiError("InvalidInstanceType.ValueNotSupported", "The specified InstanceType %s is not valid." % instance_type)
    if not catalog.type_in_zone(instance_type, zone):
        raise ApiError("InvalidInstanceType.ZoneNotSupported",
                       "The specified zone %s does not support the instance type %s." % (zone, instance_type), 403)
    return zone


def stock_left(emu, zone, instance_type):
    """Instances of ``instance_type`` that may still be created in ``zone`` (a big number = plenty)."""
    if emu.faults.no_stock(zone, instance_type):
        return 0
    limit = emu.catalog.stock.get("%s/%s" % (zone, instance_type))
    if limit is None:
        return 10 ** 6
    used = sum(1 for i in emu.state["instances"].values()
               if i["ZoneId"] == zone and i["InstanceType"] == instance_type and not is_released(i))
    return max(int(limit) - used, 0)


@action("RunInstances", mutating=True)
def run_instances(call):
    _check_region(call)
    token = call.param("ClientToken")
    if token is not None and (len(token) > 64 or not token.isascii()):
        raise ApiError("InvalidClientToken.Malformed", "The specified ClientToken is not valid.")
    fingerprint = _fingerprint(call)
    if token and token in call.state["ecs_tokens"]:
        seen = call.state["ecs_tokens"][token]
        if seen["fingerprint"] != fingerprint:
            raise ApiError("IdempotenceParamNotMatch", "The ClientToken %s was used with different parameters." % token)
        _dry_run(call)
        return {"InstanceIdSets": {"InstanceIdSet": list(seen["instance_ids"])}, "TradePrice": 0.0}
    itype = call.param("InstanceType")
    if not itype:
        raise ApiError("MissingParameter", 'The input parameter "InstanceType" that is mandatory for processing this request is not supplied.')
    image_id = _resolve_image(call, itype)
    vswitch_id = call.param("VSwitchId")
    if not vswitch_id:
        raise ApiError("MissingParameter", 'The input parameter "VSwitchId" that is mandatory for processing this request is not supplied.')
    groups = call.list_param("SecurityGroupIds") or ([call.param("SecurityGroupId")] if call.param("SecurityGroupId") else [])
    if not groups:
        raise ApiError("MissingParameter", 'The input parameter "SecurityGroupId" that is mandatory for processing this request is not supplied.')
    zone = validate_placement(call.emu, call.param("ZoneId"), vswitch_id, groups, itype)
    amount = call.int_param("Amount", 1, 1, 100)
    min_amount = call.int_param("MinAmount", None, 1, 100)
    if min_amount is not None and min_amount > amount:
        raise ApiError("InvalidParameter.Amount", "MinAmount must not be greater than Amount.")
    category = call.param("SystemDisk.Category", "cloud_efficiency")
    if category not in _DISK_CATEGORIES:
        raise ApiError("InvalidSystemDiskCategory.ValueNotSupported", "The specified SystemDisk.Category %s is not valid." % category)
    size = call.int_param("SystemDisk.Size", 40, 1, 2048, code="InvalidSystemDiskSize")
    if size < call.catalog.images[image_id]["Size"]:
        raise ApiError("InvalidSystemDiskSize.LessThanImageSize", "The specified SystemDisk.Size is less than the image size.", 404)
    bandwidth = call.int_param("InternetMaxBandwidthOut", 0, 0, 100, code="InvalidInternetMaxBandwidthOut.ValueNotSupported")
    password = call.param("Password")
    if password is not None and not 8 <= len(password) <= 30:
        raise ApiError("InvalidPassword.Malformed", "The specified Password is not valid (8-30 characters).")
    user_data = call.param("UserData")
    if user_data is not None:
        try:
            raw = base64.b64decode(user_data, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("InvalidUserData.Base64FormatInvalid", "The specified UserData is not Base64 encoded.") from None
        if len(raw) > 32 * 1024:
            raise ApiError("InvalidUserData.SizeExceeded", "The specified UserData exceeds 32 KB.")
    tags = [(t.get("Key"), t.get("Value", "")) for t in call.obj_list("Tag")]
    if len(tags) > 20 or any(not tag[0] for tag in tags):
        raise ApiError("InvalidTagKey.Malformed", "Tag.N.Key must be set, at most 20 tags.")
    charge = call.param("InstanceChargeType", "PostPaid")
    if charge not in ("PostPaid", "PrePaid"):
        raise ApiError("InvalidInstanceChargeType.ValueNotSupported", "The specified InstanceChargeType is not valid.")
    available = stock_left(call.emu, zone, itype)
    if available < (min_amount or amount):
        raise ApiError("OperationDenied.NoStock",
                       "The requested resource is sold out in the specified zone; try other types of resources or other regions and zones.",
                       403)
    _dry_run(call)
    count = min(amount, available)
    data_disks = [{"Size": d.get("Size"), "Category": d.get("Category", "cloud_efficiency")} for d in call.obj_list("DataDisk")]
    name = call.param("InstanceName")
    host = call.param("HostName")
    unique = call.bool_param("UniqueSuffix")
    ids = []
    for n in range(count):
        suffix = ("%03d" % (n + 1)) if (unique and count > 1) else ""
        spec = {
            "zone": zone, "vswitch": vswitch_id, "type": itype, "image": image_id, "security_groups": groups,
            "name": (name + suffix) if name else None, "host_name": (host + suffix) if host else None,
            "description": call.param("Description", ""), "tags": tags, "bandwidth_out": bandwidth, "charge_type": charge,
            "internet_charge_type": call.param("InternetChargeType", "PayByTraffic"), "key_pair": call.param("KeyPairName", ""),
            "deletion_protection": call.bool_param("DeletionProtection"),
            "system_disk": {"Category": category, "Size": size, "PerformanceLevel": call.param("SystemDisk.PerformanceLevel", "")},
            "data_disks": data_disks, "resource_group_id": call.param("ResourceGroupId", ""),
            "metadata": {"HttpEndpoint": call.param("HttpEndpoint", "enabled"), "HttpTokens": call.param("HttpTokens", "optional")},
            "confidential_mode": call.param("SecurityOptions.ConfidentialComputingMode", ""),
            "trusted_mode": call.param("SecurityOptions.TrustedSystemMode", ""),
        }
        inst = create_instance(call.emu, call.now, spec)
        if call.emu.faults.lifecycle_fails("ecs.instance.start"):
            inst["_phase"]["steps"][-1][1] = "Stopped"
        ids.append(inst["InstanceId"])
    if token:
        call.state["ecs_tokens"][token] = {"fingerprint": fingerprint, "instance_ids": ids, "time": call.now}
    return {"InstanceIdSets": {"InstanceIdSet": ids}, "TradePrice": 0.0}


# ---------------------------------------------------------------------------------------------
# DescribeInstances / DescribeInstanceStatus


def _json_list(call, name):
    value = call.json_param(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError("InvalidParameter", 'The specified parameter "%s" must be a JSON array of strings.' % name)
    if len(value) > 100:
        raise ApiError("InvalidParameter", 'The specified parameter "%s" has more than 100 entries.' % name)
    return value


def _visible(call):
    return sorted((i for i in call.state["instances"].values() if not is_released(i)), key=lambda i: (i["_created"], i["InstanceId"]))


def _matches(call, inst, ids, tags):
    checks = (
        ("ZoneId", inst["ZoneId"]), ("VpcId", inst["VpcAttributes"]["VpcId"]), ("VSwitchId", inst["VpcAttributes"]["VSwitchId"]),
        ("InstanceType", inst["InstanceType"]), ("InstanceTypeFamily", inst["InstanceTypeFamily"]), ("ImageId", inst["ImageId"]),
        ("Status", inst["Status"]), ("InstanceChargeType", inst["InstanceChargeType"]), ("KeyPairName", inst["KeyPairName"]),
        ("ResourceGroupId", inst["ResourceGroupId"]), ("InternetChargeType", inst["InternetChargeType"]),
    )
    for name, value in checks:
        want = call.param(name)
        if want is not None and want != value:
            return False
    if call.param("SecurityGroupId") and call.param("SecurityGroupId") not in inst["SecurityGroupIds"]["SecurityGroupId"]:
        return False
    name = call.param("InstanceName")
    if name is not None and not fnmatch.fnmatchcase(inst["InstanceName"], name):
        return False
    if ids is not None and inst["InstanceId"] not in ids:
        return False
    inst_tags = {t["TagKey"]: t["TagValue"] for t in inst["Tags"]["Tag"]}
    for key, value in tags:
        if key not in inst_tags or (value is not None and inst_tags[key] != value):
            return False
    for param, field in (("PrivateIpAddresses", inst["VpcAttributes"]["PrivateIpAddress"]["IpAddress"]),
                         ("PublicIpAddresses", inst["PublicIpAddress"]["IpAddress"])):
        wanted = _json_list(call, param)
        if wanted is not None and not set(wanted) & set(field):
            return False
    return True


@action("DescribeInstances")
def describe_instances(call):
    _check_region(call)
    ids = _json_list(call, "InstanceIds")
    tags = [(t.get("Key"), t.get("Value")) for t in call.obj_list("Tag")]
    status = call.param("Status")
    if status is not None and status not in ("Pending", "Running", "Starting", "Stopping", "Stopped"):
        raise ApiError("InvalidStatus.ValueNotSupported", "The specified Status %s is not valid." % status)
    _dry_run(call)
    found = [i for i in _visible(call) if _matches(call, i, ids, tags)]
    body = {"TotalCount": len(found)}
    if call.param("NextToken") is not None or call.param("MaxResults") is not None:
        page, nxt = _token_page(call, found)
        body.update({"NextToken": nxt, "PageNumber": 1, "PageSize": len(page)})
    else:
        page, number, size = _page(call, found)
        body.update({"PageNumber": number, "PageSize": size, "NextToken": ""})
    body["Instances"] = {"Instance": [public_view(i) for i in page]}
    return body


@action("DescribeInstanceStatus")
def describe_instance_status(call):
    _check_region(call)
    ids = call.list_param("InstanceId")
    zone = call.param("ZoneId")
    found = [i for i in _visible(call) if (not ids or i["InstanceId"] in ids) and (not zone or i["ZoneId"] == zone)]
    page, number, size = _page(call, found, 10, 50)
    return {"TotalCount": len(found), "PageNumber": number, "PageSize": size,
            "InstanceStatuses": {"InstanceStatus": [{"InstanceId": i["InstanceId"], "Status": i["Status"]} for i in page]}}


# ---------------------------------------------------------------------------------------------
# Start / Stop / Delete


def _start(call, inst):
    if inst["Status"] != "Stopped" or inst.get("_phase"):
        raise ApiError("IncorrectInstanceStatus", "The current status of the resource does not support this operation.", 403)
    if stock_left(call.emu, inst["ZoneId"], inst["InstanceType"]) <= 0 and inst["StoppedMode"] == "StopCharging":
        raise ApiError("OperationDenied.NoStock", "The requested resource is sold out in the specified zone.", 403)


def _stop(inst):
    if inst["Status"] != "Running" or inst.get("_phase"):
        raise ApiError("IncorrectInstanceStatus", "The current status of the resource does not support this operation.", 403)


def _do_start(call, inst):
    prev = inst["Status"]
    inst["Status"] = "Starting"
    inst["StoppedMode"] = "Not-applicable"
    start_phase(inst, "ecs.instance.start", START_STEPS, call.now)
    return prev


def _do_stop(call, inst):
    prev = inst["Status"]
    inst["Status"] = "Stopping"
    mode = call.param("StoppedMode", "KeepCharging")
    if mode not in ("KeepCharging", "StopCharging"):
        raise ApiError("InvalidParameter", "The specified StoppedMode %s is not valid." % mode)
    inst["StoppedMode"] = mode
    start_phase(inst, "ecs.instance.stop", STOP_STEPS, call.now)
    return prev


@action("StartInstance", mutating=True)
def start_instance(call):
    inst = get_instance(call, call.require("InstanceId"))
    _start(call, inst)
    _dry_run(call)
    _do_start(call, inst)
    return {}


@action("StopInstance", mutating=True)
def stop_instance(call):
    inst = get_instance(call, call.require("InstanceId"))
    _stop(inst)
    _dry_run(call)
    _do_stop(call, inst)
    return {}


def _batch(call, check, do, target):
    _check_region(call)
    ids = call.list_param("InstanceId")
    if not ids:
        raise ApiError("MissingParameter", 'The input parameter "InstanceId" that is mandatory for processing this request is not supplied.')
    if len(ids) > 100:
        raise ApiError("InvalidParameter", "At most 100 InstanceId values are allowed.")
    mode = call.param("BatchOptimization", "AllTogether")
    insts = [get_instance(call, iid) for iid in ids]
    responses = []
    if mode == "AllTogether":
        for inst in insts:
            check(inst)
        _dry_run(call)
    elif mode != "SuccessFirst":
        raise ApiError("InvalidParameter", "The specified BatchOptimization %s is not valid." % mode)
    elif call.bool_param("DryRun"):
        _dry_run(call)
    for inst in insts:
        try:
            check(inst)
        except ApiError as err:
            responses.append({"InstanceId": inst["InstanceId"], "Code": err.code, "Message": err.message,
                              "PreviousStatus": inst["Status"], "CurrentStatus": inst["Status"]})
            continue
        prev = do(call, inst)
        responses.append({"InstanceId": inst["InstanceId"], "Code": "200", "Message": "success",
                          "PreviousStatus": prev, "CurrentStatus": target})
    return {"InstanceResponses": {"InstanceResponse": responses}}


@action("StartInstances", mutating=True)
def start_instances(call):
    return _batch(call, lambda inst: _start(call, inst), _do_start, "Starting")


@action("StopInstances", mutating=True)
def stop_instances(call):
    return _batch(call, _stop, _do_stop, "Stopping")


def _check_delete(call, inst):
    if inst["DeletionProtection"]:
        raise ApiError("InvalidOperation.DeletionProtection", "The instance %s has deletion protection enabled." % inst["InstanceId"], 403)
    if not call.bool_param("Force") and (inst["Status"] != "Stopped" or inst.get("_phase")):
        raise ApiError("IncorrectInstanceStatus", "The current status of the resource does not support this operation.", 403)


@action("DeleteInstance", mutating=True)
def delete_instance(call):
    inst = get_instance(call, call.require("InstanceId"))
    _check_delete(call, inst)
    _dry_run(call)
    release_instance(call.emu, inst, call.now)
    return {}


@action("DeleteInstances", mutating=True)
def delete_instances(call):
    _check_region(call)
    ids = call.list_param("InstanceId")
    if not ids:
        raise ApiError("MissingParameter", 'The input parameter "InstanceId" that is mandatory for processing this request is not supplied.')
    insts = [get_instance(call, iid) for iid in ids]
    for inst in insts:
        _check_delete(call, inst)
    _dry_run(call)
    for inst in insts:
        release_instance(call.emu, inst, call.now)
    return {}


# ---------------------------------------------------------------------------------------------
# Tags (TagResources, UntagResources, ListTagResources) and ModifyInstanceAttribute


# ResourceType values TagResources accepts; only "instance" has resources in the emulator.
TAG_RESOURCE_TYPES = ("instance", "disk", "snapshot", "image", "securitygroup", "volume", "eni", "ddh", "ddhcluster", "keypair",
                      "launchtemplate", "reservedinstance", "snapshotpolicy", "elasticityassurance", "capacityreservation", "command",
                      "invocation", "activation", "managedinstance")
MAX_TAGS_PER_RESOURCE = 20
MAX_TAG_RESOURCE_IDS = 50
_INSTANCE_NAME_RE = re.compile(r"^[A-Za-z\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5.:_-]{1,127}$")
_HOST_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])$")


def _malformed_tag_key(key):
    return (not key or len(key) > 128 or key.startswith(("aliyun", "acs:")) or "http://" in key or "https://" in key)


def _malformed_tag_value(value):
    return len(value) > 128 or "http://" in value or "https://" in value


def _tag_resources(call, ids_required=True):
    """Check RegionId, ResourceType and ResourceId.N of a tag call; return the instances (in request order)."""
    _check_region(call)
    rtype = call.param("ResourceType")
    if rtype is None:
        raise ApiError("MissingParameter.ResourceType", "The parameter - ResourceType should not be null")
    if rtype not in TAG_RESOURCE_TYPES:
        raise ApiError("InvalidResourceType.NotFound", "The ResourceType provided does not exist in our records.", 404)
    ids = call.list_param("ResourceId")
    if not ids and ids_required:
        raise ApiError("MissingParameter", 'The input parameter "ResourceId" that is mandatory for processing this request is not supplied.')
    if len(ids) > MAX_TAG_RESOURCE_IDS:
        raise ApiError("NumberExceed.ResourceIds", "The ResourceIds parameter's number is exceed , Valid : %d" % MAX_TAG_RESOURCE_IDS)
    return rtype, ids


def _tagged_instances(call, rtype, ids):
    """The instances named by ``ids``; any id that is not an instance of ``rtype`` is InvalidResourceId.NotFound."""
    found = []
    for rid in ids:
        inst = call.state["instances"].get(rid)
        if rtype != "instance" or inst is None or is_released(inst):
            raise ApiError("InvalidResourceId.NotFound", "The specified ResourceIds are not found in our records.", 404)
        if inst not in found:
            found.append(inst)
    return found


def _tag_keys_checked(keys):
    if len(keys) > MAX_TAGS_PER_RESOURCE:
        raise ApiError("NumberExceed.Tags", "The Tags parameter's number is exceed , Valid : %d" % MAX_TAGS_PER_RESOURCE)
    if len(set(keys)) != len(keys):
        raise ApiError("Duplicate.TagKey", "The Tag.N.Key contain duplicate key.")
    for key in keys:
        if _malformed_tag_key(key):
            raise ApiError("InvalidTagKey.Malformed", "The specified Tag.n.Key is not valid.")


@action("TagResources", mutating=True)
def tag_resources(call):
    rtype, ids = _tag_resources(call)
    tags = [(t.get("Key"), t.get("Value") or "") for t in call.obj_list("Tag")]
    if not tags:
        raise ApiError("MissingParameter.Tags", "The parameter - Tags should not be null")
    _tag_keys_checked([k for k, dummy in tags])
    if any(_malformed_tag_value(v) for dummy, v in tags):
        raise ApiError("InvalidTagValue.Malformed", "The specified Tag.n.Value is not valid.")
    instances = _tagged_instances(call, rtype, ids)
    for inst in instances:  # all or nothing: check every resource before changing one
        keys = {t["TagKey"] for t in inst["Tags"]["Tag"]} | {k for k, dummy in tags}
        if len(keys) > MAX_TAGS_PER_RESOURCE:
            raise ApiError("OperationDenied.QuotaExceed", "The quota of tags on resource is beyond permitted range.")
    for inst in instances:
        current = inst["Tags"]["Tag"]
        for key, value in tags:
            for tag in current:
                if tag["TagKey"] == key:
                    tag["TagValue"] = value  # an existing key gets the new value
                    break
            else:
                current.append({"TagKey": key, "TagValue": value})
    return {}


@action("UntagResources", mutating=True)
def untag_resources(call):
    rtype, ids = _tag_resources(call)
    keys = call.list_param("TagKey")
    _tag_keys_checked(keys)
    remove_all = call.bool_param("All")
    instances = _tagged_instances(call, rtype, ids)
    for inst in instances:
        if keys:  # All only counts when no TagKey.N is given; unknown keys are no error
            inst["Tags"]["Tag"] = [t for t in inst["Tags"]["Tag"] if t["TagKey"] not in keys]
        elif remove_all:
            inst["Tags"]["Tag"] = []
    return {}


@action("ListTagResources")
def list_tag_resources(call):
    rtype, ids = _tag_resources(call, ids_required=False)
    tags = [(t.get("Key"), t.get("Value")) for t in call.obj_list("Tag")]
    if len(tags) > MAX_TAGS_PER_RESOURCE:
        raise ApiError("NumberExceed.Tags", "The Tags parameter's number is exceed , Valid : %d" % MAX_TAGS_PER_RESOURCE)
    filters = []
    for entry in call.obj_list("TagFilter"):
        values = [v for k, v in sorted(((int(k.split(".", 1)[1]), v) for k, v in entry.items()
                                        if k.startswith("TagValues.") and k.split(".", 1)[1].isdigit()))]
        if not entry.get("TagKey"):
            raise ApiError("InvalidTagKey.Malformed", "The specified TagFilter.n.TagKey is not valid.")
        filters.append((entry["TagKey"], values))
    if not ids and not tags and not filters:
        raise ApiError("MissingParameter", "Specify at least one of ResourceId.N, Tag.N and TagFilter.N.")
    rows = []
    if rtype == "instance":
        for inst in _visible(call):
            if ids and inst["InstanceId"] not in ids:
                continue  # unknown ids are no error: they have no tags
            have = {t["TagKey"]: t["TagValue"] for t in inst["Tags"]["Tag"]}
            if any(k not in have or (v is not None and have[k] != v) for k, v in tags):
                continue
            if any(k not in have or (values and have[k] not in values) for k, values in filters):
                continue
            rows.extend({"ResourceId": inst["InstanceId"], "ResourceType": rtype, "TagKey": t["TagKey"], "TagValue": t["TagValue"]}
                        for t in inst["Tags"]["Tag"])
    page, nxt = _token_page(call, rows, 50, 50, 50)
    return {"NextToken": nxt, "TagResources": {"TagResource": page}}


def _password_ok(password):
    classes = sum((any(c.islower() for c in password), any(c.isupper() for c in password), any(c.isdigit() for c in password),
                   any(not c.isalnum() for c in password)))
    return 8 <= len(password) <= 30 and classes >= 3 and password.isascii()


# ModifyInstanceAttribute parameters the SDK can send that the emulator does not model: refused, so that nobody
# believes a change happened.
_MODIFY_NOT_EMULATED = ("CreditSpecification", "CpuOptions", "RemoteConnectionOptions", "PrivateDnsNameOptions",
                        "NetworkInterfaceQueueNumber", "EnableJumboFrame", "EnableNetworkEncryption")


@action("ModifyInstanceAttribute", mutating=True)
def modify_instance_attribute(call):
    inst = get_instance(call, call.require("InstanceId"))
    query = call.query
    for name in _MODIFY_NOT_EMULATED:
        if any(k == name or k.startswith(name + ".") for k in query):
            raise ApiError("InvalidParameter", 'The parameter "%s" is not supported by the emulator.' % name)
    changes = {}
    if "InstanceName" in query:
        name = query["InstanceName"]
        if not _INSTANCE_NAME_RE.match(name):
            raise ApiError("InvalidInstanceName.Malformed", 'The specified parameter "InstanceName" is not valid.')
        changes["InstanceName"] = name
    if "Description" in query:
        description = query["Description"]
        if len(description) > 256 or description.startswith(("http://", "https://")):
            raise ApiError("InvalidDescription.Malformed", 'The specified parameter "Description" is not valid.')
        changes["Description"] = description
    if "HostName" in query:
        host = query["HostName"]
        if len(host) < 2 or not _HOST_NAME_RE.match(host) or ".." in host or "--" in host or ".-" in host or "-." in host:
            raise ApiError("InvalidHostName.Malformed", 'The specified parameter "HostName" is not valid.')
        changes["HostName"] = host
    if call.param("DeletionProtection") is not None:
        changes["DeletionProtection"] = call.bool_param("DeletionProtection")
    if call.param("Recyclable") is not None:
        changes["Recyclable"] = call.bool_param("Recyclable")
    groups = call.list_param("SecurityGroupIds")
    if groups:
        if len(set(groups)) != len(groups) or len(groups) > 5:
            raise ApiError("InvalidParameter", 'The specified parameter "SecurityGroupIds" is not valid (1-5 distinct groups).')
        for sg in groups:
            group = call.catalog.security_groups.get(sg)
            if group is None:
                raise ApiError("InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId %s does not exist." % sg, 404)
            if group["VpcId"] != inst["VpcAttributes"]["VpcId"]:
                raise ApiError("InvalidParameter.Mismatch", "The security group %s is not in the VPC of instance %s." % (
                    sg, inst["InstanceId"]))
        changes["SecurityGroupIds"] = {"SecurityGroupId": list(groups)}
    if "Password" in query:
        if not _password_ok(query["Password"]):
            raise ApiError("InvalidPassword.Malformed", 'The specified parameter "Password" is not valid.')
        if inst["Status"] in ("Pending", "Starting"):
            raise ApiError("IncorrectInstanceStatus", "The current status of the resource does not support this operation.", 403)
    if "UserData" in query:
        try:
            raw = base64.b64decode(query["UserData"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("InvalidUserData.Base64FormatInvalid", "The specified UserData is not Base64 encoded.") from None
        if len(raw) > 32 * 1024:
            raise ApiError("InvalidUserData.SizeExceeded", 'The specified parameter "UserData" exceeds the size.')
        if inst["Status"] != "Stopped" or inst.get("_phase"):
            raise ApiError("IncorrectInstanceStatus", "The current status of the resource does not support this operation.", 403)
        changes["_user_data_sha256"] = hashlib.sha256(raw).hexdigest()
    inst.update(changes)  # the password is checked, never stored
    return {}


# ---------------------------------------------------------------------------------------------
# Catalogue calls


@action("DescribeAvailableResource")
def describe_available_resource(call):
    _check_region(call)
    dest = call.require("DestinationResource")
    if dest not in ("Zone", "IoOptimized", "InstanceType", "Network", "ddh", "SystemDisk", "DataDisk"):
        raise ApiError("InvalidDestinationResource.ValueNotSupported", "The specified DestinationResource %s is not valid." % dest)
    charge = call.param("InstanceChargeType", "PostPaid")
    if charge not in ("PostPaid", "PrePaid"):
        raise ApiError("InvalidInstanceChargeType.ValueNotSupported", "The specified InstanceChargeType is not valid.")
    want_zone = call.param("ZoneId")
    want_type = call.param("InstanceType")
    zones = []
    for zone in call.catalog.zones:
        if want_zone and zone != want_zone:
            continue
        types = [t for t in call.catalog.instance_types if call.catalog.type_in_zone(t, zone)]
        if want_type:
            types = [t for t in types if t == want_type]
            if not types:
                continue
        resources = []
        for type_id in types:
            left = stock_left(call.emu, zone, type_id)
            resources.append({"Value": type_id, "Status": "Available" if left > 0 else "SoldOut",
                              "StatusCategory": "WithStock" if left > 0 else "WithoutStock"})
        if dest == "Zone":
            res = [{"Type": "Zone", "SupportedResources": {"SupportedResource": [
                {"Value": zone, "Status": "Available", "StatusCategory": "WithStock"}]}}]
        elif dest == "InstanceType":
            res = [{"Type": "InstanceType", "SupportedResources": {"SupportedResource": resources}}]
        elif dest in ("SystemDisk", "DataDisk"):
            res = [{"Type": dest, "SupportedResources": {"SupportedResource": [
                {"Value": c, "Status": "Available", "StatusCategory": "WithStock", "Min": 20 if dest == "SystemDisk" else 20,
                 "Max": 2048 if dest == "SystemDisk" else 32768, "Unit": "GiB"} for c in _DISK_CATEGORIES[:4]]}}]
        elif dest == "Network":
            res = [{"Type": "Network", "SupportedResources": {"SupportedResource": [
                {"Value": "vpc", "Status": "Available", "StatusCategory": "WithStock"}]}}]
        else:
            res = [{"Type": dest, "SupportedResources": {"SupportedResource": [
                {"Value": "optimized", "Status": "Available", "StatusCategory": "WithStock"}]}}]
        zone_ok = any(r["Status"] == "Available" for r in resources) or not types
        zones.append({"RegionId": call.catalog.region, "ZoneId": zone, "Status": "Available" if zone_ok else "SoldOut",
                      "StatusCategory": "WithStock" if zone_ok else "WithoutStock", "AvailableResources": {"AvailableResource": res}})
    return {"AvailableZones": {"AvailableZone": zones}}


def _num(call, name):
    value = call.param(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise ApiError("InvalidParameter", 'The specified parameter "%s" is not a number.' % name) from None


@action("DescribeInstanceTypes")
def describe_instance_types(call):
    # The SDK sends no RegionId here: the region is the emulator's one.
    wanted = call.list_param("InstanceTypes")
    families = call.list_param("InstanceTypeFamilies") or ([call.param("InstanceTypeFamily")] if call.param("InstanceTypeFamily") else [])
    gpu_spec = call.param("GPUSpec")
    bounds = [("MinimumGPUAmount", "GPUAmount", 1), ("MaximumGPUAmount", "GPUAmount", -1),
              ("MinimumCpuCoreCount", "CpuCoreCount", 1), ("MaximumCpuCoreCount", "CpuCoreCount", -1),
              ("MinimumMemorySize", "MemorySize", 1), ("MaximumMemorySize", "MemorySize", -1)]
    limits = [(field, sign, _num(call, name)) for name, field, sign in bounds]
    found = []
    for type_id, entry in sorted(call.catalog.instance_types.items()):
        if wanted and type_id not in wanted:
            continue
        if families and entry["InstanceTypeFamily"] not in families:
            continue
        if call.param("InstanceCategory") and entry["InstanceCategory"] != call.param("InstanceCategory"):
            continue
        if call.param("CpuArchitecture") and entry["CpuArchitecture"] != call.param("CpuArchitecture"):
            continue
        if gpu_spec and gpu_spec.lower() not in entry["GPUSpec"].lower():
            continue
        if any(limit is not None and (entry[field] - limit) * sign < 0 for field, sign, limit in limits):
            continue
        found.append({k: v for k, v in entry.items() if k != "zones"})
    page, nxt = _token_page(call, found, 1, 1600, 1600)
    return {"NextToken": nxt, "InstanceTypes": {"InstanceType": page}}


@action("DescribeImages")
def describe_images(call):
    _check_region(call)
    statuses = (call.param("Status") or "Available").split(",")
    found = []
    for image in sorted(call.catalog.images.values(), key=lambda img: (img["CreationTime"], img["ImageId"]), reverse=True):
        if call.param("ImageId") and image["ImageId"] not in call.param("ImageId").split(","):
            continue
        if call.param("ImageName") and call.param("ImageName").replace("*", "") not in image["ImageName"]:
            continue
        checks = (("ImageFamily", "ImageFamily"), ("ImageOwnerAlias", "ImageOwnerAlias"), ("OSType", "OSType"),
                  ("Architecture", "Architecture"), ("Usage", "Usage"))
        if any(call.param(p) and call.param(p) != image[f] for p, f in checks):
            continue
        if "ALL" not in statuses and image["Status"] not in statuses:
            continue
        itype = call.param("InstanceType")
        if itype:
            entry = call.catalog.instance_types.get(itype)
            if entry is None or image["BootMode"] not in entry["SupportedBootModes"]["SupportedBootMode"]:
                continue
        found.append(image)
    _dry_run(call)
    page, number, size = _page(call, found)
    return {"RegionId": call.catalog.region, "TotalCount": len(found), "PageNumber": number, "PageSize": size,
            "Images": {"Image": page}}


@action("DescribeZones")
def describe_zones(call):
    _check_region(call)
    zones = []
    for zone in call.catalog.zones:
        types = [t for t in sorted(call.catalog.instance_types) if call.catalog.type_in_zone(t, zone)]
        families = sorted({call.catalog.instance_types[t]["InstanceTypeFamily"] for t in types})
        letter = zone.rsplit("-", 1)[-1].upper()
        zones.append({
            "ZoneId": zone, "LocalName": "Beijing Zone %s" % letter, "ZoneType": "AvailabilityZone",
            "AvailableInstanceTypes": {"InstanceTypes": types},
            "AvailableResourceCreation": {"ResourceTypes": ["VSwitch", "IoOptimized", "Instance", "Disk"]},
            "AvailableDiskCategories": {"DiskCategories": list(_DISK_CATEGORIES[:4])},
            "AvailableVolumeCategories": {"VolumeCategories": []},
            "AvailableResources": {"ResourcesInfo": [{
                "IoOptimized": True, "InstanceTypes": {"supportedInstanceType": types},
                "InstanceTypeFamilies": {"supportedInstanceTypeFamily": families},
                "SystemDiskCategories": {"supportedSystemDiskCategory": list(_DISK_CATEGORIES[:4])},
                "DataDiskCategories": {"supportedDataDiskCategory": list(_DISK_CATEGORIES[:4])},
                "NetworkTypes": {"supportedNetworkCategory": ["vpc"]}}]},
            "AvailableDedicatedHostTypes": {"DedicatedHostType": []},
            "DedicatedHostGenerations": {"DedicatedHostGeneration": []},
        })
    return {"Zones": {"Zone": zones}}


@action("DescribeRegions")
def describe_regions(call):
    region = call.catalog.region
    return {"Regions": {"Region": [{"RegionId": region, "LocalName": "China (Beijing)",
                                    "RegionEndpoint": "ecs.%s.aliyuncs.com" % region, "Status": "available"}]}}


@action("DescribeVpcs")
def describe_vpcs(call):
    _check_region(call)
    want = call.param("VpcId")
    vpcs = []
    for vpc in call.catalog.vpcs.values():
        if want and vpc["VpcId"] not in want.split(","):
            continue
        vsws = [v["VSwitchId"] for v in call.catalog.vswitches.values() if v["VpcId"] == vpc["VpcId"]]
        vpcs.append(dict(vpc, RegionId=call.catalog.region, Status="Available", IsDefault=False, Description="",
                         CreationTime="2025-01-01T00:00:00Z", VSwitchIds={"VSwitchId": vsws}, VRouterId="vrt-sbx0001",
                         UserCidrs={"UserCidr": []}))
    page, number, size = _page(call, vpcs, 10, 50)
    return {"TotalCount": len(vpcs), "PageNumber": number, "PageSize": size, "Vpcs": {"Vpc": page}}


@action("DescribeVSwitches")
def describe_vswitches(call):
    _check_region(call)
    found = []
    for vsw in call.catalog.vswitches.values():
        if call.param("VSwitchId") and vsw["VSwitchId"] != call.param("VSwitchId"):
            continue
        if call.param("VpcId") and vsw["VpcId"] != call.param("VpcId"):
            continue
        if call.param("ZoneId") and vsw["ZoneId"] != call.param("ZoneId"):
            continue
        found.append(dict(vsw, Status="Available", IsDefault=False, Description="", CreationTime="2025-01-01T00:00:00Z",
                          AvailableIpAddressCount=200))
    page, number, size = _page(call, found, 10, 50)
    return {"TotalCount": len(found), "PageNumber": number, "PageSize": size, "VSwitches": {"VSwitch": page}}


@action("DescribeSecurityGroups")
def describe_security_groups(call):
    _check_region(call)
    ids = _json_list(call, "SecurityGroupIds")
    found = []
    for group in call.catalog.security_groups.values():
        if call.param("SecurityGroupId") and group["SecurityGroupId"] != call.param("SecurityGroupId"):
            continue
        if ids is not None and group["SecurityGroupId"] not in ids:
            continue
        if call.param("VpcId") and group["VpcId"] != call.param("VpcId"):
            continue
        found.append(dict(group, Description="", CreationTime="2025-01-01T00:00:00Z", ResourceGroupId="",
                          ServiceManaged=False, Tags={"Tag": []}))
    return {"TotalCount": len(found), "PageNumber": 1, "PageSize": len(found), "NextToken": "",
            "RegionId": call.catalog.region, "SecurityGroups": {"SecurityGroup": found}}
