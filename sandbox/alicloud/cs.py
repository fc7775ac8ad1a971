"""ACK / CS (ROA, version 2015-12-15) actions of the emulator.

Paths are matched exactly as ``alibabacloud_cs20151215`` 7.2.3 sends them (path parameters
percent-encoded, see the wire reference section 9.1). Responses are snake_case JSON; business errors
use ``{"code","message","requestId","status"}``.

Error codes that the reference marks as unknown ([U]) and for which the emulator uses placeholders:
``ErrorNodePoolNotFound`` (404), ``ErrorTaskNotFound`` (404), ``ErrorNodePoolNotEmpty`` (400, delete
of a pool with nodes without ``force``), ``DependencyResourceExist`` (400, DeleteCluster while node
pools remain; real ACK may instead delete them), ``ErrorDeletionProtection`` (400),
``IncorrectInstanceStatus`` (400, attaching an instance that is not Running),
``ErrorInstanceAlreadyAttached`` (400), ``ErrorAttachTokenInvalid`` (join with a bad token), ``ErrorClusterState`` (ModifyCluster of a
cluster that is not running) and the CS tag codes (borrowed from ECS TagResources).
Modules must not hard-code them.

Lifecycles (durations from :class:`core.Clock`): cluster ``initial`` -> ``running`` (or ``failed``
when ``FaultPlan.lifecycle["cs.cluster.create"]`` rolls), ``deleting`` -> gone; node pool
``initial`` -> ``active``, ``updating`` -> ``active``, ``deleting`` -> gone; node ``initial`` ->
``running``/``Ready`` once its instance runs and ``cs.node.join`` has elapsed; task ``running`` ->
``success``/``fail``.
"""

import json
import re
import secrets
import shlex
import time

from . import ecs
from .server import ApiError
from .state import phase_value, start_phase

ACTIONS = {}
GONE = "__deleted__"
TZ_OFFSET = 8 * 3600  # responses carry +08:00 times, as the real service does for cn-beijing


def action(name, method, path, mutating=False, request_id=True):
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")

    def register(func):
        def wrapper(call):
            m = pattern.match(call.path)
            if call.method != method or not m:
                raise ApiError("InvalidApi.NotFound", "Specified api is not found, please check your url and method.", 404,
                               style="gateway")
            from urllib.parse import unquote  # pylint: disable=import-outside-toplevel
            call.path_params = {k: unquote(v) for k, v in m.groupdict().items()}
            return func(call, **call.path_params)
        ACTIONS[name] = {"func": wrapper, "mutating": mutating, "request_id": request_id}
        return func
    return register


def cs_time(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(epoch + TZ_OFFSET))


def creation_order(record, shown, ident):
    """Sort key of every list: creation time (the shown second, then the exact time kept in ``_created``), then id.

    Records written by an older emulator have no ``_created``; they sort by the shown time and the id.
    """
    return (shown, record.get("_created", 0.0), ident)


def _bool(value, name, default=False):
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    low = str(value).lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise ApiError("InvalidParameter", "%s must be a boolean." % name)


def _int(value, name, default=None, low=None, high=None):
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError("InvalidParameter", "%s must be an integer." % name) from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise ApiError("InvalidParameter", "%s is out of range (%s-%s)." % (name, low, high))
    return number


def _json_query(call, name):
    value = call.query.get(name)
    if value is None or value == "":
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise ApiError("InvalidParameter", "%s must be a JSON string." % name) from None


# ---------------------------------------------------------------------------------------------
# tasks


def new_task(emu, now, cluster_id, task_type, target=None, key=None, fail=False, nodes=None, error=None, params=None):
    task_id = "T-" + secrets.token_hex(12)
    task = {"task_id": task_id, "cluster_id": cluster_id, "task_type": task_type, "state": "running",
            "created": cs_time(now), "updated": cs_time(now), "current_stage": "", "stages": [], "events": [],
            "target": target or {"id": cluster_id, "type": "cluster"}, "parameters": params or {}, "outputs": {},
            "task_result": [], "error": None, "_nodes": list(nodes or []), "_error": error, "_created": now}
    start_phase(task, key or "cs.task", [[0, "running"], [1.0, "fail" if fail else "success"]], now)
    emu.state["tasks"][task_id] = task
    return task


def _advance_task(emu, task, now):
    if task["state"] != "running":
        return False
    value, done = phase_value(task, emu.clock, now)
    if task.get("_phase") and not done:
        return False
    nodes = emu.state["nodes"]
    results = []
    failed = value == "fail"
    for iid in task.get("_nodes", []):
        node = nodes.get(iid)
        if node is None:
            results.append({"data": iid, "status": "success" if task["task_type"].endswith("remove_nodes") else "failed"})
            continue
        if node["state"] in ("initial", "removing"):
            return False
        ok = node["state"] == "running"
        failed = failed or not ok
        results.append({"data": iid, "status": "success" if ok else "failed"})
    task.pop("_phase", None)
    task["state"] = "fail" if failed else "success"
    task["task_result"] = results
    task["updated"] = cs_time(now)
    if failed:
        code, message = task.get("_error") or ("TaskFailed", "The task failed.")
        task["error"] = {"code": code, "message": message}
    return True


def task_view(task):
    view = {k: v for k, v in task.items() if not k.startswith("_")}
    if view["error"] is None:
        view.pop("error")
    return view


# ---------------------------------------------------------------------------------------------
# lifecycle


def advance(emu, now):
    state = emu.state
    changed = False
    instances = state["instances"]
    for cid in list(state["clusters"]):
        cluster = state["clusters"][cid]
        value, done = phase_value(cluster, emu.clock, now)
        if value is None:
            continue
        if done:
            cluster.pop("_phase")
            changed = True
            if value == GONE:
                _drop_cluster(emu, cid)
                continue
            cluster["updated"] = cs_time(now)
        if value != GONE and value != cluster["state"]:
            cluster["state"] = value
            changed = True
    for pid in list(state["nodepools"]):
        pool = state["nodepools"][pid]
        value, done = phase_value(pool, emu.clock, now)
        if value is None:
            continue
        if done:
            pool.pop("_phase")
            changed = True
            if value == GONE:
                del state["nodepools"][pid]
                continue
            pool["nodepool_info"]["updated"] = cs_time(now)
        if value != GONE and value != pool["status"]["state"]:
            pool["status"]["state"] = value
            changed = True
    for iid in list(state["nodes"]):
        node = state["nodes"][iid]
        inst = instances.get(iid)
        if node["state"] == "initial" and "_phase" not in node:
            if inst is not None and inst["Status"] == "Running" and not inst.get("_phase"):
                since = inst.get("_running_since", now)
                start_phase(node, "cs.node.join", [[0, "initial"], [1.0, "failed" if node.get("_fail") else "running"]], since)
                changed = True
            elif inst is None or ecs.is_released(inst):
                node["state"] = "failed"
                node["error_message"] = "the ECS instance was released before it joined"
                changed = True
        value, done = phase_value(node, emu.clock, now)
        if value is None:
            continue
        if done:
            node.pop("_phase")
            changed = True
            if value == GONE:
                del state["nodes"][iid]
                if node.get("_release") and inst is not None and not ecs.is_released(inst):
                    ecs.release_instance(emu, inst, now)
                continue
        if value != GONE and value != node["state"]:
            node["state"] = value
            changed = True
            if value == "failed":
                node["error_message"] = "the node failed to join the cluster (injected fault)"
    for task in state["tasks"].values():
        changed = _advance_task(emu, task, now) or changed
    return changed


def _drop_cluster(emu, cid):
    state = emu.state
    del state["clusters"][cid]
    for pid in [p for p, pool in state["nodepools"].items() if pool["cluster_id"] == cid]:
        del state["nodepools"][pid]
    for iid in [i for i, node in state["nodes"].items() if node["cluster_id"] == cid]:
        del state["nodes"][iid]
    for tok in [t for t, entry in state["attach_tokens"].items() if entry["cluster_id"] == cid]:
        del state["attach_tokens"][tok]
    state["addons"].pop(cid, None)


# ---------------------------------------------------------------------------------------------
# lookups


def get_cluster(call, cluster_id):
    cluster = call.state["clusters"].get(cluster_id)
    if cluster is None:
        raise ApiError("ErrorClusterNotFound", "cluster %s not found" % cluster_id, 404)
    return cluster


def get_pool(call, cluster_id, nodepool_id):
    pool = call.state["nodepools"].get(nodepool_id)
    if pool is None or pool["cluster_id"] != cluster_id:
        raise ApiError("ErrorNodePoolNotFound", "nodepool %s not found in cluster %s" % (nodepool_id, cluster_id), 404)
    return pool


def _require_running(cluster):
    if cluster["state"] != "running" or cluster.get("_phase"):
        raise ApiError("ErrorClusterState", "cluster %s is in state %s, the operation requires running" % (
            cluster["cluster_id"], cluster["state"]), 400)


def _pool_nodes(call, pool_id):
    return [n for n in call.state["nodes"].values() if n["nodepool_id"] == pool_id]


def cluster_view(call, cluster):
    view = {k: v for k, v in cluster.items() if not k.startswith("_")}
    view["size"] = len([n for n in call.state["nodes"].values() if n["cluster_id"] == cluster["cluster_id"]])
    return view


# ---------------------------------------------------------------------------------------------
# clusters


def _check_vswitches(call, vpc_id, vswitch_ids, what):
    for vsw in vswitch_ids:
        entry = call.catalog.vswitches.get(vsw)
        if entry is None:
            raise ApiError("InvalidParameter", "%s: vswitch %s not found" % (what, vsw), 400)
        if vpc_id and entry["VpcId"] != vpc_id:
            raise ApiError("InvalidParameter", "%s: vswitch %s is not in vpc %s" % (what, vsw, vpc_id), 400)


@action("CreateCluster", "POST", "/clusters", mutating=True)
def create_cluster(call):
    body = call.json_body()
    token = body.get("client_token")
    if token and token in call.state["cs_tokens"]:
        cid = call.state["cs_tokens"][token]
        cluster = call.state["clusters"].get(cid)
        if cluster is not None:
            return {"cluster_id": cid, "task_id": cluster["_create_task"]}
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 63:
        raise ApiError("InvalidParameter", "name is required (1-63 characters)")
    region = body.get("region_id")
    if not region:
        raise ApiError("InvalidParameter", "region_id is required")
    if region != call.catalog.region:
        raise ApiError("InvalidParameter", "region_id %s is not supported" % region)
    cluster_type = body.get("cluster_type")
    if cluster_type not in ("ManagedKubernetes", "Kubernetes"):
        raise ApiError("InvalidParameter", "cluster_type %s is not supported (ManagedKubernetes)" % cluster_type)
    spec = body.get("cluster_spec") or "ack.standard"
    if spec not in ("ack.pro.small", "ack.standard"):
        raise ApiError("InvalidParameter", "cluster_spec %s is not valid" % spec)
    profile = body.get("profile") or "Default"
    if profile not in ("Default", "Edge", "Serverless", "Lingjun"):
        raise ApiError("InvalidParameter", "profile %s is not valid" % profile)
    versions = call.catalog.kubernetes_versions
    version = body.get("kubernetes_version") or versions[0]
    if version not in versions:
        raise ApiError("InvalidParameter", "kubernetes_version %s is not supported; supported: %s" % (version, ", ".join(versions)))
    vpc_id = body.get("vpcid")
    if vpc_id and vpc_id not in call.catalog.vpcs:
        raise ApiError("InvalidParameter", "vpc %s not found" % vpc_id)
    vswitch_ids = body.get("vswitch_ids") or []
    if not vswitch_ids:
        raise ApiError("InvalidParameter", "vswitch_ids is required for a managed cluster")
    _check_vswitches(call, vpc_id, vswitch_ids, "vswitch_ids")
    vpc_id = vpc_id or call.catalog.vswitches[vswitch_ids[0]]["VpcId"]
    sg = body.get("security_group_id")
    if sg and sg not in call.catalog.security_groups:
        raise ApiError("InvalidParameter", "security group %s not found" % sg)
    for existing in call.state["clusters"].values():
        if existing["name"] == name and existing["region_id"] == region:
            raise ApiError("ClusterNameAlreadyExist", "cluster name %s already exists" % name)
    addons = body.get("addons") or []
    known = {a["name"] for a in call.catalog.addons}
    for addon in addons:
        if not isinstance(addon, dict) or not addon.get("name"):
            raise ApiError("InvalidParameter", "addons entries need a name")
        if addon["name"] not in known:
            raise ApiError("AddonNotFound", "addon %s is not in the catalogue" % addon["name"])
    cid = "c" + secrets.token_hex(16)
    fail = call.faults.lifecycle_fails("cs.cluster.create")
    task = new_task(call.emu, call.now, cid, "cluster_create", key="cs.cluster.create", fail=fail,
                    error=("CreateClusterFailed", "cluster creation failed (injected fault)"))
    zone = call.catalog.vswitches[vswitch_ids[0]]["ZoneId"]
    sg = sg or "sg-" + secrets.token_hex(10)[:20]
    endpoint = "https://%s.%s.cs.emulator.invalid:6443" % (cid, region)
    cluster = {
        "cluster_id": cid, "name": name, "cluster_type": cluster_type, "profile": profile, "cluster_spec": spec,
        "region_id": region, "zone_id": zone, "vpc_id": vpc_id, "vswitch_id": vswitch_ids[0], "vswitch_ids": vswitch_ids,
        "security_group_id": sg, "resource_group_id": body.get("resource_group_id") or "rg-sbx0000000000",
        "state": "initial", "size": 0, "current_version": version, "init_version": version, "next_version": "",
        "docker_version": "", "created": cs_time(call.now), "updated": cs_time(call.now), "_created": call.now,
        "container_cidr": body.get("container_cidr") or "", "subnet_cidr": body.get("container_cidr") or "",
        "service_cidr": body.get("service_cidr") or "172.19.0.0/20", "node_cidr_mask": str(body.get("node_cidr_mask") or "26"),
        "proxy_mode": body.get("proxy_mode") or "ipvs", "ip_stack": body.get("ip_stack") or "ipv4", "network_mode": "vpc",
        "cluster_domain": body.get("cluster_domain") or "cluster.local", "external_loadbalancer_id": "lb-" + secrets.token_hex(10),
        "master_url": json.dumps({"api_server_endpoint": endpoint if _bool(body.get("endpoint_public_access"), "endpoint_public_access") else "",
                                  "intranet_api_server_endpoint": "https://%s.%s.cs.internal.emulator.invalid:6443" % (cid, region)}),
        "meta_data": json.dumps({"Addons": addons, "KubernetesVersion": version, "ServiceCIDR": body.get("service_cidr") or "172.19.0.0/20"}),
        "parameters": {}, "tags": [t for t in body.get("tags") or [] if isinstance(t, dict)],
        "deletion_protection": _bool(body.get("deletion_protection"), "deletion_protection"), "private_zone": False,
        "timezone": body.get("timezone") or "Asia/Shanghai", "worker_ram_role_name": "KubernetesWorkerRole-" + secrets.token_hex(8),
        "maintenance_window": body.get("maintenance_window") or {"enable": False},
        "operation_policy": body.get("operation_policy") or {"cluster_auto_upgrade": {"enabled": False, "channel": ""}},
        "extra_sans": [], "_create_task": task["task_id"],
    }
    start_phase(cluster, "cs.cluster.create", [[0, "initial"], [1.0, "failed" if fail else "running"]], call.now)
    call.state["clusters"][cid] = cluster
    call.state["addons"][cid] = {a["name"]: {"name": a["name"], "version": a.get("version") or _addon_version(call, a["name"]),
                                             "state": "active", "config": a.get("config") or ""}
                                 for a in addons if not a.get("disabled")}
    if token:
        call.state["cs_tokens"][token] = cid
    for np_body in body.get("nodepools") or []:
        _create_pool(call, cluster, np_body, skip_state_check=True)
    return {"cluster_id": cid, "task_id": task["task_id"]}


@action("DescribeClusterDetail", "GET", "/clusters/{cluster_id}", request_id=False)
def describe_cluster_detail(call, cluster_id):
    return cluster_view(call, get_cluster(call, cluster_id))


@action("DescribeClustersV1", "GET", "/api/v1/clusters", request_id=False)
def describe_clusters_v1(call):
    q = call.query
    found = []
    for cluster in sorted(call.state["clusters"].values(), key=lambda c: creation_order(c, c["created"], c["cluster_id"])):
        if q.get("name") and q["name"] not in cluster["name"]:
            continue
        if any(q.get(k) and q[k] != cluster[k] for k in ("cluster_type", "cluster_spec", "profile", "region_id", "cluster_id")):
            continue
        found.append(cluster_view(call, cluster))
    number = _int(q.get("page_number"), "page_number", 1, 1)
    size = _int(q.get("page_size"), "page_size", 10, 1, 100)
    page = found[(number - 1) * size:number * size]
    return {"clusters": page, "page_info": {"page_number": number, "page_size": size, "total_count": len(found)}}


@action("DeleteCluster", "DELETE", "/clusters/{cluster_id}", mutating=True)
def delete_cluster(call, cluster_id):
    cluster = get_cluster(call, cluster_id)
    retain_all = _bool(call.query.get("retain_all_resources"), "retain_all_resources")
    retain = _json_query(call, "retain_resources")
    options = _json_query(call, "delete_options")
    if retain is not None and not isinstance(retain, list):
        raise ApiError("InvalidParameter", "retain_resources must be a JSON array")
    if options is not None and (not isinstance(options, list) or not all(isinstance(o, dict) for o in options)):
        raise ApiError("InvalidParameter", "delete_options must be a JSON array of objects")
    if cluster["state"] in ("deleting",) or cluster.get("_phase") and cluster["state"] == "initial":
        raise ApiError("ErrorClusterState", "cluster %s is in state %s and cannot be deleted now" % (cluster_id, cluster["state"]))
    if cluster["deletion_protection"]:
        raise ApiError("ErrorDeletionProtection", "cluster %s has deletion protection enabled" % cluster_id)
    pools = [p for p in call.state["nodepools"].values() if p["cluster_id"] == cluster_id]
    if pools:
        raise ApiError("DependencyResourceExist", "cluster %s still has node pools (%s); delete them first" % (
            cluster_id, ", ".join(p["nodepool_info"]["nodepool_id"] for p in pools)))
    task = new_task(call.emu, call.now, cluster_id, "cluster_delete", key="cs.cluster.delete",
                    params={"retain_all_resources": retain_all, "retain_resources": retain or [], "delete_options": options or []})
    cluster["state"] = "deleting"
    start_phase(cluster, "cs.cluster.delete", [[0, "deleting"], [1.0, GONE]], call.now)
    return 202, {"cluster_id": cluster_id, "task_id": task["task_id"]}


# ---------------------------------------------------------------------------------------------
# ModifyCluster, TagResources, UntagResources

PRO_SPECS = ("ack.pro.small", "ack.pro.xlarge", "ack.pro.2xlarge", "ack.pro.4xlarge")
# ModifyClusterRequest fields that the emulator does not model: refused, so that no caller believes a change happened.
MODIFY_UNMODELLED = ("access_control_list", "api_server_custom_cert_sans", "control_plane_config", "control_plane_endpoints_config",
                     "ingress_domain_rebinding", "ingress_loadbalancer_id", "system_events_logging")
MAINTENANCE_KEYS = ("enable", "maintenance_time", "duration", "recurrence", "weekly_period", "exclusions")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CLUSTER_NAME = re.compile(r"^[^-][\w\-\u4e00-\u9fff]{0,62}$")
MAX_CLUSTER_TAGS = 20


def _modify_name(call, cluster, name):
    if not isinstance(name, str) or not CLUSTER_NAME.match(name):
        raise ApiError("InvalidParameter", "cluster_name must be 1-63 characters (letters, digits, Chinese characters, hyphens; "
                       "not starting with a hyphen)")
    for other in call.state["clusters"].values():
        if other is not cluster and other["name"] == name and other["region_id"] == cluster["region_id"]:
            raise ApiError("ClusterNameAlreadyExist", "cluster name %s already exists" % name)
    return name


def _modify_maintenance_window(current, window):
    if not isinstance(window, dict):
        raise ApiError("InvalidParameter", "maintenance_window must be an object")
    unknown = sorted(set(window) - set(MAINTENANCE_KEYS))
    if unknown:
        raise ApiError("InvalidParameter", "maintenance_window: unknown field(s) %s" % ", ".join(unknown))
    merged = dict(current or {})
    merged.update(window)
    merged["enable"] = _bool(merged.get("enable"), "maintenance_window.enable")
    days = merged.get("weekly_period")
    if days and any(day not in WEEKDAYS for day in str(days).split(",")):
        raise ApiError("InvalidParameter", "maintenance_window.weekly_period must list week days (Monday,...,Sunday)")
    if merged["enable"] and not (merged.get("maintenance_time") or merged.get("recurrence")):
        raise ApiError("InvalidParameter", "maintenance_window needs maintenance_time (or recurrence) when enabled")
    return merged


def _modify_endpoint(cluster, public, eip_id):
    master = json.loads(cluster["master_url"])
    if public:
        master["api_server_endpoint"] = "https://%s.%s.cs.emulator.invalid:6443" % (cluster["cluster_id"], cluster["region_id"])
    else:
        master["api_server_endpoint"] = ""
    cluster["master_url"] = json.dumps(master)
    cluster["_api_server_eip_id"] = (eip_id or "eip-" + secrets.token_hex(10)) if public else ""


@action("ModifyCluster", "PUT", "/api/v2/clusters/{cluster_id}", mutating=True)
def modify_cluster(call, cluster_id):
    """Validate every field first, then change all of them (all or nothing)."""
    cluster = get_cluster(call, cluster_id)
    body = call.json_body()
    if not isinstance(body, dict):
        raise ApiError("InvalidParameter", "the body must be a JSON object")
    token = body.get("client_token")
    tokens = call.state.data.setdefault("cs_modify_tokens", {})  # ModifyCluster client_token -> {cluster_id, task_id}
    done = tokens.get(token) if token else None
    if done and done["cluster_id"] == cluster_id:
        return {"cluster_id": cluster_id, "task_id": done["task_id"]}
    for key in MODIFY_UNMODELLED:
        if body.get(key) not in (None, "", [], {}):
            raise ApiError("InvalidParameter", "the emulator does not model ModifyCluster.%s" % key)
    if cluster["state"] != "running" or cluster.get("_phase"):
        raise ApiError("ErrorClusterState", "cluster %s is in state %s, the operation requires running" % (cluster_id, cluster["state"]))
    changes = {}
    if body.get("cluster_name") is not None:
        changes["name"] = _modify_name(call, cluster, body["cluster_name"])
    for key in ("deletion_protection", "instance_deletion_protection", "enable_rrsa"):
        if body.get(key) is not None:
            changes[key] = _bool(body[key], key)
    eip_id = body.get("api_server_eip_id")
    if eip_id not in (None, "") and (not isinstance(eip_id, str) or not eip_id.startswith("eip-")):
        raise ApiError("InvalidParameter", "api_server_eip_id %s is not an EIP id" % eip_id)
    public = None if body.get("api_server_eip") is None else _bool(body["api_server_eip"], "api_server_eip")
    if eip_id and public is False:
        raise ApiError("InvalidParameter", "api_server_eip_id needs api_server_eip=true")
    rg = body.get("resource_group_id")
    if rg is not None:
        if not isinstance(rg, str) or not rg.startswith("rg-"):
            raise ApiError("InvalidParameter", "resource_group_id %s is not valid" % rg)
        changes["resource_group_id"] = rg
    sg = body.get("security_group_id")
    if sg is not None:
        entry = call.catalog.security_groups.get(sg)
        if entry is None:
            raise ApiError("InvalidParameter", "security group %s not found" % sg)
        if entry.get("VpcId") != cluster["vpc_id"]:
            raise ApiError("InvalidParameter", "security group %s is not in vpc %s" % (sg, cluster["vpc_id"]))
        changes["security_group_id"] = sg
    vswitch_ids = body.get("vswitch_ids")
    if vswitch_ids is not None:
        if not isinstance(vswitch_ids, list) or not vswitch_ids or not all(isinstance(v, str) for v in vswitch_ids):
            raise ApiError("InvalidParameter", "vswitch_ids must be a non-empty list of vswitch ids")
        _check_vswitches(call, cluster["vpc_id"], vswitch_ids, "vswitch_ids")
        changes["vswitch_ids"] = list(vswitch_ids)
        changes["vswitch_id"] = vswitch_ids[0]
    spec = body.get("cluster_spec")
    if spec is not None and spec != cluster["cluster_spec"]:
        if spec not in PRO_SPECS:
            raise ApiError("InvalidParameter", "cluster_spec %s is not valid (%s)" % (spec, ", ".join(PRO_SPECS)))
        if cluster["cluster_spec"] not in PRO_SPECS:
            raise ApiError("InvalidParameter", "cluster_spec can change only between ack.pro.* tiers (the cluster is %s)"
                           % cluster["cluster_spec"])
        changes["cluster_spec"] = spec
    if body.get("maintenance_window") is not None:
        changes["maintenance_window"] = _modify_maintenance_window(cluster.get("maintenance_window"), body["maintenance_window"])
    if body.get("operation_policy") is not None:
        if not isinstance(body["operation_policy"], dict):
            raise ApiError("InvalidParameter", "operation_policy must be an object")
        policy = json.loads(json.dumps(cluster.get("operation_policy") or {}))
        _merge(policy, body["operation_policy"])
        changes["operation_policy"] = policy
    if body.get("timezone") is not None:
        if not isinstance(body["timezone"], str) or not re.match(r"^[A-Za-z_]+(/[A-Za-z0-9_+\-]+)*$", body["timezone"]):
            raise ApiError("InvalidParameter", "timezone %s is not valid" % body["timezone"])
        changes["timezone"] = body["timezone"]
    task = new_task(call.emu, call.now, cluster_id, "cluster_update",
                    params={k: v for k, v in body.items() if k != "client_token"})
    for key in ("instance_deletion_protection", "enable_rrsa"):
        if key in changes:
            cluster["_" + key] = changes.pop(key)
    cluster.update(changes)
    if public is not None or eip_id:
        _modify_endpoint(cluster, True if public is None else public, eip_id)
    cluster["updated"] = cs_time(call.now)
    if token:
        tokens[token] = {"cluster_id": cluster_id, "task_id": task["task_id"]}
    return {"cluster_id": cluster_id, "task_id": task["task_id"]}


def _tag_clusters(call, resource_type, resource_ids, region):
    if not resource_type:
        raise ApiError("MissingParameter.ResourceType", "resource_type is required")
    if resource_type != "CLUSTER":
        raise ApiError("InvalidParameter", "resource_type %s is not supported (CLUSTER)" % resource_type)
    if region and region != call.catalog.region:
        raise ApiError("InvalidParameter", "region_id %s is not supported" % region)
    if not isinstance(resource_ids, list) or not resource_ids or not all(isinstance(r, str) and r for r in resource_ids):
        raise ApiError("MissingParameter.ResourceIds", "resource_ids must be a non-empty list")
    if len(resource_ids) > 50:
        raise ApiError("NumberExceed.ResourceIds", "at most 50 resource_ids")
    return [get_cluster(call, cid) for cid in dict.fromkeys(resource_ids)]


def _check_tag(key, value):
    low = key.lower() if isinstance(key, str) else ""
    if not low or len(key) > 128 or low.startswith(("aliyun", "acs:")) or "http://" in low or "https://" in low:
        raise ApiError("InvalidTagKey.Malformed", "tag key %r is not valid" % (key,))
    if not isinstance(value, str) or len(value) > 128 or "http://" in value.lower() or "https://" in value.lower():
        raise ApiError("InvalidTagValue.Malformed", "tag value of %s is not valid" % key)


@action("TagResources", "PUT", "/tags", mutating=True, request_id=False)
def tag_resources(call):
    body = call.json_body()
    if not isinstance(body, dict):
        raise ApiError("InvalidParameter", "the body must be a JSON object")
    clusters = _tag_clusters(call, body.get("resource_type"), body.get("resource_ids"), body.get("region_id"))
    tags = body.get("tags")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, dict) for t in tags):
        raise ApiError("MissingParameter.Tags", "tags must be a non-empty list of {key, value}")
    if len(tags) > 20:
        raise ApiError("NumberExceed.Tags", "at most 20 tags per call")
    new = {}
    for tag in tags:
        value = "" if tag.get("value") is None else tag.get("value")
        _check_tag(tag.get("key"), value)
        if tag["key"] in new:
            raise ApiError("Duplicate.TagKey", "tag key %s is given twice" % tag["key"])
        new[tag["key"]] = value
    merged = {}
    for cluster in clusters:
        have = {t["key"]: t.get("value", "") for t in cluster["tags"] if isinstance(t, dict) and t.get("key")}
        have.update(new)
        if len(have) > MAX_CLUSTER_TAGS:
            raise ApiError("OperationDenied.QuotaExceed", "cluster %s would have more than %d tags" % (cluster["cluster_id"], MAX_CLUSTER_TAGS))
        merged[cluster["cluster_id"]] = have
    for cluster in clusters:
        cluster["tags"] = [{"key": k, "value": v} for k, v in merged[cluster["cluster_id"]].items()]
    return {"RequestId": call.request_id}


@action("UntagResources", "DELETE", "/tags", mutating=True, request_id=False)
def untag_resources(call):
    ids = _json_query(call, "resource_ids")
    clusters = _tag_clusters(call, call.query.get("resource_type"), ids, call.query.get("region_id"))
    keys = _json_query(call, "tag_keys")
    if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
        raise ApiError("InvalidParameter", "tag_keys must be a JSON array of strings")
    remove_all = _bool(call.query.get("all"), "all")
    if len(keys or []) > 20:
        raise ApiError("NumberExceed.Tags", "at most 20 tag_keys per call")
    for cluster in clusters:
        if keys:
            cluster["tags"] = [t for t in cluster["tags"] if t.get("key") not in keys]
        elif remove_all:
            cluster["tags"] = []
    return {"RequestId": call.request_id}


@action("DescribeTaskInfo", "GET", "/tasks/{task_id}", request_id=False)
def describe_task_info(call, task_id):
    task = call.state["tasks"].get(task_id)
    if task is None:
        raise ApiError("ErrorTaskNotFound", "task %s not found" % task_id, 404)
    return task_view(task)


@action("DescribeClusterTasks", "GET", "/clusters/{cluster_id}/tasks", request_id=False)
def describe_cluster_tasks(call, cluster_id):
    get_cluster(call, cluster_id)
    tasks = [t for t in call.state["tasks"].values() if t["cluster_id"] == cluster_id]
    tasks.sort(key=lambda t: creation_order(t, t["created"], t["task_id"]), reverse=True)
    number = _int(call.query.get("page_number"), "page_number", 1, 1)
    size = _int(call.query.get("page_size"), "page_size", 10, 1, 100)
    page = tasks[(number - 1) * size:number * size]
    return {"tasks": [{"task_id": t["task_id"], "task_type": t["task_type"], "state": t["state"], "created": t["created"],
                       "updated": t["updated"], "error": t["error"] or {"code": "", "message": ""}} for t in page],
            "page_info": {"page_number": number, "page_size": size, "total_count": len(tasks)},
            "requestId": call.request_id}


# ---------------------------------------------------------------------------------------------
# node pools


def _merge(target, patch):
    """Merge ``patch`` into ``target``; empty lists inside nested objects mean "not specified"."""
    for key, value in patch.items():
        if value is None or value == []:
            continue
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _validate_scaling_group(call, cluster, sg_body):
    types = sg_body.get("instance_types") or []
    if not types or len(types) > 10:
        raise ApiError("InvalidParameter", "scaling_group.instance_types is required (1-10 entries)")
    for itype in types:
        if itype not in call.catalog.instance_types:
            raise ApiError("InvalidParameter", "instance type %s is not supported" % itype)
    vswitches = sg_body.get("vswitch_ids") or []
    if not vswitches or len(vswitches) > 8:
        raise ApiError("InvalidParameter", "scaling_group.vswitch_ids is required (1-8 entries)")
    _check_vswitches(call, cluster["vpc_id"], vswitches, "scaling_group.vswitch_ids")
    if not any(call.catalog.type_in_zone(t, call.catalog.vswitches[v]["ZoneId"]) for t in types for v in vswitches):
        raise ApiError("InvalidParameter", "none of the instance types is offered in the zones of the vswitches")
    for sg in sg_body.get("security_group_ids") or []:
        if sg not in call.catalog.security_groups:
            raise ApiError("InvalidParameter", "security group %s not found" % sg)
    size = sg_body.get("system_disk_size")
    if size is not None:
        _int(size, "scaling_group.system_disk_size", None, 20, 2048)
    desired = sg_body.get("desired_size")
    if desired is not None:
        _int(desired, "scaling_group.desired_size", None, 0, 1000)
    image_id = sg_body.get("image_id")
    if image_id and image_id not in call.catalog.images:
        raise ApiError("InvalidParameter", "image %s not found" % image_id)
    if sg_body.get("image_type") and sg_body["image_type"] not in (
            "AliyunLinux3", "AliyunLinux3Security", "AliyunLinux", "AliyunLinuxSecurity", "AliyunLinux3Arm64", "ContainerOS",
            "AliyunLinux3ContainerOptimized", "CentOS", "Windows", "WindowsCore", "Custom"):
        raise ApiError("InvalidParameter", "image_type %s is not valid" % sg_body["image_type"])


def _create_pool(call, cluster, body, skip_state_check=False):
    if not skip_state_check:
        _require_running(cluster)
    info = body.get("nodepool_info") or {}
    name = info.get("name")
    if not name:
        raise ApiError("InvalidParameter", "nodepool_info.name is required")
    for pool in call.state["nodepools"].values():
        if pool["cluster_id"] == cluster["cluster_id"] and pool["nodepool_info"]["name"] == name:
            raise ApiError("NodePoolNameAlreadyExist", "nodepool name %s already exists in cluster %s" % (name, cluster["cluster_id"]))
    sg_body = dict(body.get("scaling_group") or {})
    _validate_scaling_group(call, cluster, sg_body)
    if body.get("count") is not None and sg_body.get("desired_size") is None:
        sg_body["desired_size"] = _int(body["count"], "count", 0, 0, 1000)
    sg_body.setdefault("desired_size", 0)
    sg_body.setdefault("system_disk_category", "cloud_efficiency")
    sg_body.setdefault("system_disk_size", 120)
    sg_body.setdefault("instance_charge_type", "PostPaid")
    sg_body.setdefault("image_type", "AliyunLinux3")
    sg_body["scaling_group_id"] = "asg-2ze" + secrets.token_hex(9)[:17]
    sg_body.setdefault("security_group_ids", [cluster["security_group_id"]] if cluster["security_group_id"] in call.catalog.security_groups else [])
    pid = "np" + secrets.token_hex(16)
    auto = body.get("auto_scaling") or {"enable": False}
    pool = {
        "cluster_id": cluster["cluster_id"],
        "nodepool_info": {"nodepool_id": pid, "name": name, "type": info.get("type") or "ess", "is_default": False,
                          "region_id": cluster["region_id"], "resource_group_id": info.get("resource_group_id") or cluster["resource_group_id"],
                          "created": cs_time(call.now), "updated": cs_time(call.now)},
        "scaling_group": sg_body,
        "kubernetes_config": body.get("kubernetes_config") or {"runtime": "containerd", "runtime_version": "1.6.36"},
        "auto_scaling": auto, "management": body.get("management") or {"enable": False},
        "tee_config": body.get("tee_config") or {"tee_enable": False},
        "node_config": body.get("node_config") or {},
        "status": {"state": "initial"},
        "max_nodes": body.get("max_nodes") or 0,
        "_created": call.now,
    }
    fail = call.faults.lifecycle_fails("cs.nodepool.create")
    start_phase(pool, "cs.nodepool.create", [[0, "initial"], [1.0, "active"]], call.now)
    call.state["nodepools"][pid] = pool
    nodes, error = _scale_to(call, pool, int(sg_body["desired_size"]))
    task = new_task(call.emu, call.now, cluster["cluster_id"], "nodepool_create", target={"id": pid, "type": "nodepool"},
                    key="cs.nodepool.create", fail=fail or bool(error), nodes=nodes,
                    error=error or ("CreateNodePoolFailed", "node pool creation failed (injected fault)"))
    return pid, task


def _pick_image(call, sg_body, itype):
    if sg_body.get("image_id"):
        return sg_body["image_id"]
    modes = call.catalog.instance_types[itype]["SupportedBootModes"]["SupportedBootMode"]
    uefi = sg_body.get("image_type") in ("AliyunLinux3Security", "AliyunLinuxSecurity") or "BIOS" not in modes
    family = "acs:alibaba_cloud_linux_3_2104_lts_x64" + ("_uefi" if uefi else "")
    images = sorted((i for i in call.catalog.images.values() if i["ImageFamily"] == family), key=lambda i: i["CreationTime"])
    return images[-1]["ImageId"] if images else sorted(call.catalog.images)[0]


def _scale_to(call, pool, desired):
    """Create or release ess instances so the pool has ``desired`` of them; returns (new node ids, error)."""
    pid = pool["nodepool_info"]["nodepool_id"]
    ess = [n for n in _pool_nodes(call, pid) if n["source"] == "ess" and n["state"] != "removing"]
    created = []
    if desired < len(ess):
        for node in sorted(ess, key=lambda n: creation_order(n, n["creation_time"], n["instance_id"]), reverse=True)[:len(ess) - desired]:
            _remove_node(call, node, release=True)
        return [], None
    sg_body = pool["scaling_group"]
    for dummy in range(desired - len(ess)):
        choice = None
        for vsw in sg_body["vswitch_ids"]:
            zone = call.catalog.vswitches[vsw]["ZoneId"]
            for itype in sg_body["instance_types"]:
                if call.catalog.type_in_zone(itype, zone) and ecs.stock_left(call.emu, zone, itype) > 0:
                    choice = (vsw, zone, itype)
                    break
            if choice:
                break
        if choice is None:
            return created, ("OperationDenied.NoStock", "The requested instance types are sold out in the zones of the node pool.")
        vsw, zone, itype = choice
        spec = {"zone": zone, "vswitch": vsw, "type": itype, "image": _pick_image(call, sg_body, itype),
                "security_groups": sg_body.get("security_group_ids") or [],
                "name": "worker-k8s-for-cs-%s" % pool["cluster_id"], "tags": [(t.get("key"), t.get("value", "")) for t in sg_body.get("tags") or []],
                "bandwidth_out": int(sg_body.get("internet_max_bandwidth_out") or 0), "key_pair": sg_body.get("key_pair") or "",
                "system_disk": {"Category": sg_body.get("system_disk_category"), "Size": sg_body.get("system_disk_size")}}
        inst = ecs.create_instance(call.emu, call.now, spec)
        _add_node(call, pool, inst, "ess")
        created.append(inst["InstanceId"])
    return created, None


def _add_node(call, pool, inst, source):
    ip = inst["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0]
    node = {"instance_id": inst["InstanceId"], "cluster_id": pool["cluster_id"], "nodepool_id": pool["nodepool_info"]["nodepool_id"],
            "node_name": "%s.%s" % (call.catalog.region, ip), "state": "initial", "source": source,
            "creation_time": cs_time(call.now), "error_message": "", "_fail": call.faults.lifecycle_fails("cs.node.join"),
            "_created": call.now}
    call.state["nodes"][inst["InstanceId"]] = node
    return node


def _remove_node(call, node, release):
    node["state"] = "removing"
    node["_release"] = bool(release)
    start_phase(node, "cs.task", [[0, "removing"], [1.0, GONE]], call.now)


def pool_view(call, pool, detail=False):
    view = {k: v for k, v in pool.items() if not k.startswith("_") and k != "cluster_id"}
    nodes = _pool_nodes(call, pool["nodepool_info"]["nodepool_id"])
    instances = call.state["instances"]
    healthy = [n for n in nodes if n["state"] == "running" and instances.get(n["instance_id"], {}).get("Status") == "Running"]
    status = dict(pool["status"])
    status.update({"total_nodes": len(nodes), "healthy_nodes": len(healthy), "serving_nodes": len(healthy),
                   "initial_nodes": len([n for n in nodes if n["state"] == "initial"]),
                   "failed_nodes": len([n for n in nodes if n["state"] == "failed"]),
                   "removing_nodes": len([n for n in nodes if n["state"] == "removing"]),
                   "offline_nodes": len([n for n in nodes if n["state"] == "running" and n not in healthy])})
    if detail:
        status["conditions"] = []
    view["status"] = status
    return view


@action("CreateClusterNodePool", "POST", "/clusters/{cluster_id}/nodepools", mutating=True)
def create_cluster_node_pool(call, cluster_id):
    cluster = get_cluster(call, cluster_id)
    pid, task = _create_pool(call, cluster, call.json_body())
    return {"nodepool_id": pid, "task_id": task["task_id"]}


@action("DescribeClusterNodePools", "GET", "/clusters/{cluster_id}/nodepools", request_id=False)
def describe_cluster_node_pools(call, cluster_id):
    get_cluster(call, cluster_id)
    name = call.query.get("NodepoolName")
    pools = [p for p in call.state["nodepools"].values() if p["cluster_id"] == cluster_id
             and (not name or name in p["nodepool_info"]["name"])]
    pools.sort(key=lambda p: creation_order(p, p["nodepool_info"]["created"], p["nodepool_info"]["nodepool_id"]))
    return {"nodepools": [pool_view(call, p) for p in pools]}


@action("DescribeClusterNodePoolDetail", "GET", "/clusters/{cluster_id}/nodepools/{nodepool_id}", request_id=False)
def describe_cluster_node_pool_detail(call, cluster_id, nodepool_id):
    get_cluster(call, cluster_id)
    return pool_view(call, get_pool(call, cluster_id, nodepool_id), detail=True)


def _pool_busy(pool):
    if pool["status"]["state"] == "deleting":
        raise ApiError("ErrorNodePoolState", "nodepool %s is being deleted" % pool["nodepool_info"]["nodepool_id"])


@action("ModifyClusterNodePool", "PUT", "/clusters/{cluster_id}/nodepools/{nodepool_id}", mutating=True)
def modify_cluster_node_pool(call, cluster_id, nodepool_id):
    cluster = get_cluster(call, cluster_id)
    _require_running(cluster)
    pool = get_pool(call, cluster_id, nodepool_id)
    _pool_busy(pool)
    body = call.json_body()
    candidate = json.loads(json.dumps({k: pool[k] for k in ("nodepool_info", "scaling_group", "kubernetes_config",
                                                            "auto_scaling", "management", "tee_config")}))
    for key in ("nodepool_info", "scaling_group", "kubernetes_config", "auto_scaling", "management", "tee_config"):
        patch = body.get(key)
        if patch is not None and not isinstance(patch, dict):
            raise ApiError("InvalidParameter", "%s must be an object" % key)
        if patch:
            if key == "nodepool_info":
                patch = {k: v for k, v in patch.items() if k in ("name", "resource_group_id")}
            _merge(candidate[key], patch)
    _validate_scaling_group(call, cluster, candidate["scaling_group"])
    for key, value in candidate.items():
        pool[key] = value
    pool["nodepool_info"]["updated"] = cs_time(call.now)
    pool["status"]["state"] = "updating"
    start_phase(pool, "cs.nodepool.update", [[0, "updating"], [1.0, "active"]], call.now)
    nodes, error = _scale_to(call, pool, int(pool["scaling_group"].get("desired_size") or 0))
    task = new_task(call.emu, call.now, cluster_id, "nodepool_update", target={"id": nodepool_id, "type": "nodepool"},
                    key="cs.nodepool.update", fail=bool(error), nodes=nodes, error=error)
    return {"nodepool_id": nodepool_id, "task_id": task["task_id"]}


@action("ScaleClusterNodePool", "POST", "/clusters/{cluster_id}/nodepools/{nodepool_id}", mutating=True)
def scale_cluster_node_pool(call, cluster_id, nodepool_id):
    cluster = get_cluster(call, cluster_id)
    _require_running(cluster)
    pool = get_pool(call, cluster_id, nodepool_id)
    _pool_busy(pool)
    count = _int(call.json_body().get("count"), "count", None, 1, 500)
    if count is None:
        raise ApiError("InvalidParameter", "count is required")
    pool["scaling_group"]["desired_size"] = int(pool["scaling_group"].get("desired_size") or 0) + count
    start_phase(pool, "cs.nodepool.update", [[0, "scaling"], [1.0, "active"]], call.now)
    pool["status"]["state"] = "scaling"
    nodes, error = _scale_to(call, pool, pool["scaling_group"]["desired_size"])
    task = new_task(call.emu, call.now, cluster_id, "nodepool_scaleout", target={"id": nodepool_id, "type": "nodepool"},
                    fail=bool(error), nodes=nodes, error=error)
    return {"task_id": task["task_id"]}


@action("DeleteClusterNodepool", "DELETE", "/clusters/{cluster_id}/nodepools/{nodepool_id}", mutating=True)
def delete_cluster_nodepool(call, cluster_id, nodepool_id):
    get_cluster(call, cluster_id)
    pool = get_pool(call, cluster_id, nodepool_id)
    _pool_busy(pool)
    force = _bool(call.query.get("force"), "force")
    nodes = [n for n in _pool_nodes(call, nodepool_id) if n["state"] != "removing"]
    if nodes and not force:
        raise ApiError("ErrorNodePoolNotEmpty", "nodepool %s still has %d nodes; remove them or pass force" % (nodepool_id, len(nodes)))
    for node in nodes:
        _remove_node(call, node, release=node["source"] == "ess")
    pool["status"]["state"] = "deleting"
    start_phase(pool, "cs.nodepool.delete", [[0, "deleting"], [1.0, GONE]], call.now)
    task = new_task(call.emu, call.now, cluster_id, "nodepool_delete", target={"id": nodepool_id, "type": "nodepool"},
                    key="cs.nodepool.delete")
    return {"task_id": task["task_id"]}


# ---------------------------------------------------------------------------------------------
# nodes


def _check_attachable(call, cluster, iid):
    inst = call.state["instances"].get(iid)
    if inst is None or ecs.is_released(inst):
        raise ApiError("InvalidInstanceId.NotFound", "instance %s not found" % iid, 404)
    if inst["Status"] != "Running" or inst.get("_phase"):
        raise ApiError("IncorrectInstanceStatus", "instance %s is %s; only Running instances can be added" % (iid, inst["Status"]), 400)
    if inst["VpcAttributes"]["VpcId"] != cluster["vpc_id"]:
        raise ApiError("InvalidParameter", "instance %s is not in the cluster VPC %s" % (iid, cluster["vpc_id"]))
    node = call.state["nodes"].get(iid)
    if node is not None:
        raise ApiError("ErrorInstanceAlreadyAttached", "instance %s is already a node of cluster %s" % (iid, node["cluster_id"]))
    return inst


@action("AttachInstancesToNodePool", "POST", "/clusters/{cluster_id}/nodepools/{nodepool_id}/attach", mutating=True)
def attach_instances_to_node_pool(call, cluster_id, nodepool_id):
    cluster = get_cluster(call, cluster_id)
    _require_running(cluster)
    pool = get_pool(call, cluster_id, nodepool_id)
    _pool_busy(pool)
    body = call.json_body()
    ids = body.get("instances")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ApiError("InvalidParameter", "instances must be a non-empty list of instance ids")
    if len(set(ids)) != len(ids):
        raise ApiError("InvalidParameter", "instances contains duplicates")
    insts = [_check_attachable(call, cluster, iid) for iid in ids]
    for inst in insts:
        _add_node(call, pool, inst, "attach")
    task = new_task(call.emu, call.now, cluster_id, "nodepool_attach", target={"id": nodepool_id, "type": "nodepool"},
                    nodes=ids, error=("AttachInstanceFailed", "some instances failed to join the cluster"))
    return {"task_id": task["task_id"]}


def _node_view(call, node):
    inst = call.state["instances"].get(node["instance_id"])
    view = {k: v for k, v in node.items() if not k.startswith("_") and k != "cluster_id"}
    if inst is None or ecs.is_released(inst):
        view.update({"instance_status": "", "node_status": "Unknown", "ip_address": [], "instance_name": "", "host_name": "",
                     "instance_type": "", "instance_type_family": "", "instance_charge_type": "", "image_id": "",
                     "expired_time": "", "instance_role": "Worker", "is_aliyun_node": True, "spot_strategy": "NoSpot"})
        return view
    ready = node["state"] == "running" and inst["Status"] == "Running"
    view.update({
        "instance_name": inst["InstanceName"], "host_name": inst["HostName"],
        "ip_address": list(inst["VpcAttributes"]["PrivateIpAddress"]["IpAddress"]),
        "instance_type": inst["InstanceType"], "instance_type_family": inst["InstanceTypeFamily"],
        "instance_role": "Worker", "instance_status": inst["Status"], "node_status": "Ready" if ready else "NotReady",
        "instance_charge_type": inst["InstanceChargeType"], "image_id": inst["ImageId"], "expired_time": "",
        "is_aliyun_node": True, "spot_strategy": "NoSpot",
    })
    return view


@action("DescribeClusterNodes", "GET", "/clusters/{cluster_id}/nodes", request_id=False)
def describe_cluster_nodes(call, cluster_id):
    get_cluster(call, cluster_id)
    q = call.query
    pool_id = q.get("nodepool_id")
    if pool_id:
        get_pool(call, cluster_id, pool_id)
    want_state = q.get("state") or "all"
    if want_state not in ("all", "running", "removing", "initial", "failed"):
        raise ApiError("InvalidParameter", "state %s is not valid" % want_state)
    ids = [i for i in (q.get("instanceIds") or "").split(",") if i]
    names = [n for n in (q.get("nodeNames") or "").split(",") if n]
    ips = [n for n in (q.get("nodeIps") or "").split(",") if n]
    nodes = []
    for node in sorted(call.state["nodes"].values(), key=lambda n: creation_order(n, n["creation_time"], n["instance_id"])):
        if node["cluster_id"] != cluster_id or (pool_id and node["nodepool_id"] != pool_id):
            continue
        if want_state != "all" and node["state"] != want_state:
            continue
        if ids and node["instance_id"] not in ids:
            continue
        if names and node["node_name"] not in names:
            continue
        view = _node_view(call, node)
        if ips and not set(ips) & set(view["ip_address"]):
            continue
        nodes.append(view)
    number = _int(q.get("pageNumber"), "pageNumber", 1, 1)
    size = _int(q.get("pageSize"), "pageSize", 10, 1, 100)
    page = nodes[(number - 1) * size:number * size]
    return {"nodes": page, "page": {"page_number": number, "page_size": size, "total_count": len(nodes)}}


@action("RemoveNodePoolNodes", "DELETE", "/clusters/{cluster_id}/nodepools/{nodepool_id}/nodes", mutating=True)
def remove_node_pool_nodes(call, cluster_id, nodepool_id):
    get_cluster(call, cluster_id)
    pool = get_pool(call, cluster_id, nodepool_id)
    _pool_busy(pool)
    ids = _json_query(call, "instance_ids")
    names = _json_query(call, "nodes")
    if ids is None and names is None:
        raise ApiError("InvalidParameter", "instance_ids is required")
    if (ids is not None and not isinstance(ids, list)) or (names is not None and not isinstance(names, list)):
        raise ApiError("InvalidParameter", "instance_ids and nodes must be JSON arrays")
    release = _bool(call.query.get("release_node"), "release_node")
    _bool(call.query.get("drain_node"), "drain_node")
    pool_nodes = _pool_nodes(call, nodepool_id)
    targets = []
    for iid in ids or []:
        match = [n for n in pool_nodes if n["instance_id"] == iid]
        if not match:
            raise ApiError("InvalidParameter", "instance %s is not a node of nodepool %s" % (iid, nodepool_id))
        targets.append(match[0])
    for name in names or []:
        match = [n for n in pool_nodes if n["node_name"] == name]
        if not match:
            raise ApiError("InvalidParameter", "node %s is not in nodepool %s" % (name, nodepool_id))
        targets.append(match[0])
    for node in targets:
        if node["state"] == "removing":
            raise ApiError("ErrorNodeState", "node %s is already being removed" % node["node_name"])
    for node in targets:
        _remove_node(call, node, release)
        if node["source"] == "ess":
            sg_body = pool["scaling_group"]
            sg_body["desired_size"] = max(int(sg_body.get("desired_size") or 0) - 1, 0)
    task = new_task(call.emu, call.now, cluster_id, "nodepool_remove_nodes", target={"id": nodepool_id, "type": "nodepool"},
                    nodes=[n["instance_id"] for n in targets])
    return {"task_id": task["task_id"]}


# ---------------------------------------------------------------------------------------------
# attach scripts and joining


@action("DescribeClusterAttachScripts", "POST", "/clusters/{cluster_id}/attachscript")
def describe_cluster_attach_scripts(call, cluster_id):
    cluster = get_cluster(call, cluster_id)
    _require_running(cluster)
    body = call.json_body()
    pool_id = body.get("nodepool_id")
    if not pool_id:
        raise ApiError("InvalidParameter", "nodepool_id is required (the emulated cluster has no default node pool)")
    get_pool(call, cluster_id, pool_id)
    arch = body.get("arch") or "amd64"
    if arch not in ("amd64", "arm", "arm64"):
        raise ApiError("InvalidParameter", "arch %s is not valid" % arch)
    expired = body.get("expired")
    expires = call.now + 3600
    if expired is not None:
        expires = _int(expired, "expired")
        if expires <= call.now:
            raise ApiError("InvalidParameter", "expired must be in the future")
    token = secrets.token_hex(16)
    call.state["attach_tokens"][token] = {
        "cluster_id": cluster_id, "nodepool_id": pool_id, "expires": expires, "one_time": _bool(body.get("one_time_token"), "one_time_token"),
        "used": False, "format_disk": _bool(body.get("format_disk"), "format_disk"),
        "keep_instance_name": _bool(body.get("keep_instance_name"), "keep_instance_name", True)}
    call.dirty = True
    base = call.emu.attach_base_url()
    args = ["--openapi-token", token, "--ess", "true", "--cluster-id", cluster_id, "--nodepool-id", pool_id,
            "--region-id", cluster["region_id"], "--arch", arch]
    if body.get("format_disk"):
        args += ["--format-disk", "true"]
    return "curl -fsSL %s/_emulator/attach_node.sh | bash -s -- %s" % (base, " ".join(shlex.quote(a) for a in args))


def join_node(emu, token, instance_id=None, hostname=None, now=None):
    """Handle the callback of the attach script: the node at ``instance_id`` (or ``hostname``) joins."""
    now = emu.clock.now() if now is None else now
    entry = emu.state["attach_tokens"].get(token or "")
    if entry is None or entry["expires"] < now or (entry["one_time"] and entry["used"]):
        raise ApiError("ErrorAttachTokenInvalid", "the attach token is unknown, expired or already used", 403)
    cluster = emu.state["clusters"].get(entry["cluster_id"])
    pool = emu.state["nodepools"].get(entry["nodepool_id"])
    if cluster is None or pool is None:
        raise ApiError("ErrorClusterNotFound", "the cluster or node pool of this token no longer exists", 404)
    if not instance_id and hostname:
        match = [i for i in emu.state["instances"].values() if i["HostName"] == hostname and not ecs.is_released(i)]
        if len(match) == 1:
            instance_id = match[0]["InstanceId"]
    if not instance_id:
        raise ApiError("InvalidParameter", "the node could not be identified (pass --instance-id)")

    class _Call:  # the subset of server.Call the helpers use
        pass
    fake = _Call()
    fake.state, fake.catalog, fake.faults, fake.now, fake.emu = emu.state, emu.catalog, emu.faults, now, emu
    inst = _check_attachable(fake, cluster, instance_id)
    node = _add_node(fake, pool, inst, "attach")
    entry["used"] = True
    task = new_task(emu, now, cluster["cluster_id"], "nodepool_attach", target={"id": pool["nodepool_info"]["nodepool_id"], "type": "nodepool"},
                    nodes=[instance_id], error=("AttachInstanceFailed", "the node failed to join"))
    return {"cluster_id": cluster["cluster_id"], "nodepool_id": pool["nodepool_info"]["nodepool_id"], "node_name": node["node_name"],
            "instance_id": instance_id, "task_id": task["task_id"]}


# ---------------------------------------------------------------------------------------------
# kubeconfig


def _kubeconfig(cluster_id, target, expiration):
    user = "emulator-%s" % cluster_id[:8]
    lines = ["apiVersion: v1", "clusters:", "- cluster:", "    server: %s" % json.dumps(target["server"])]
    if target.get("certificate-authority-data"):
        lines.append("    certificate-authority-data: %s" % target["certificate-authority-data"])
    if target.get("insecure-skip-tls-verify"):
        lines.append("    insecure-skip-tls-verify: true")
    lines += ["  name: kubernetes", "contexts:", "- context:", "    cluster: kubernetes", "    user: %s" % json.dumps(user),
              "  name: %s" % json.dumps("%s-%s" % (user, cluster_id)), "current-context: %s" % json.dumps("%s-%s" % (user, cluster_id)),
              "kind: Config", "preferences: {}", "users:", "- name: %s" % json.dumps(user), "  user:"]
    wrote = False
    for key in ("token", "client-certificate-data", "client-key-data"):
        if target.get(key):
            lines.append("    %s: %s" % (key, json.dumps(target[key])))
            wrote = True
    if not wrote:
        lines.append("    token: %s" % json.dumps(target.get("placeholder_token", "")))
    lines.append("# expires %s" % expiration)
    return "\n".join(lines) + "\n"


@action("DescribeClusterUserKubeconfig", "GET", "/k8s/{cluster_id}/user_config", request_id=False)
def describe_cluster_user_kubeconfig(call, cluster_id):
    cluster = get_cluster(call, cluster_id)
    if cluster["state"] not in ("running", "updating", "upgrading", "scaling", "removing", "draining"):
        raise ApiError("ErrorClusterState", "cluster %s is %s; the kubeconfig is available once it runs" % (cluster_id, cluster["state"]))
    private = _bool(call.query.get("PrivateIpAddress"), "PrivateIpAddress")
    minutes = _int(call.query.get("TemporaryDurationMinutes"), "TemporaryDurationMinutes", None, 15, 4320)
    expires = call.now + (minutes * 60 if minutes else 3 * 365 * 86400)
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    target = call.emu.kubernetes_target()
    if target is None:
        host = "%s.%s.cs%s.emulator.invalid" % (cluster_id, cluster["region_id"], ".internal" if private else "")
        target = {"server": "https://%s:6443" % host, "placeholder_token": "placeholder-" + cluster_id}
    return {"config": _kubeconfig(cluster_id, target, expiration), "expiration": expiration}


# ---------------------------------------------------------------------------------------------
# versions and add-ons


def _addon_version(call, name):
    for addon in call.catalog.addons:
        if addon["name"] == name:
            return addon["version"]
    return ""


@action("DescribeKubernetesVersionMetadata", "GET", "/api/v1/metadata/versions", request_id=False)
def describe_kubernetes_version_metadata(call):
    if not call.query.get("Region") or not call.query.get("ClusterType"):
        raise ApiError("InvalidParameter", "Region and ClusterType are required")
    versions = call.catalog.kubernetes_versions
    want = call.query.get("KubernetesVersion")
    out = []
    for index, version in enumerate(versions):
        if want and want != version:
            continue
        out.append({"version": version, "creatable": True, "release_date": "2025-01-01T00:00:00Z",
                    "expiration_date": "2027-01-01T00:00:00Z", "upgradable_versions": versions[:index],
                    "runtimes": [{"name": "containerd", "version": "1.6.36"}],
                    "images": [{"image_id": img["ImageId"], "image_name": img["ImageName"], "platform": "AliyunLinux",
                                "os_version": "3", "image_type": "AliyunLinux3Security" if img["BootMode"] == "UEFI" else "AliyunLinux3",
                                "os_type": "Linux", "image_category": "system", "architecture": "amd64"}
                               for img in call.catalog.images.values()],
                    "capabilities": {}, "meta_data": {}})
    return out


@action("ListAddons", "GET", "/addons")
def list_addons(call):
    if call.query.get("cluster_id"):
        get_cluster(call, call.query["cluster_id"])
    return {"addons": [{"name": a["name"], "version": a["version"], "category": a.get("category", ""), "config_schema": "{}",
                        "install_by_default": a.get("install_by_default", False), "managed": False,
                        "supported_actions": ["Install", "Upgrade", "Uninstall"], "architecture": ["amd64"]}
                       for a in call.catalog.addons]}


@action("InstallClusterAddons", "POST", "/clusters/{cluster_id}/components/install", mutating=True)
def install_cluster_addons(call, cluster_id):
    cluster = get_cluster(call, cluster_id)
    _require_running(cluster)
    body = call.json_body()
    if not isinstance(body, list) or not body:
        raise ApiError("InvalidParameter", "the body must be a non-empty JSON array of add-ons")
    known = {a["name"] for a in call.catalog.addons}
    for addon in body:
        if not isinstance(addon, dict) or addon.get("name") not in known:
            raise ApiError("AddonNotFound", "addon %s is not in the catalogue" % (addon.get("name") if isinstance(addon, dict) else addon), 404)
    installed = call.state["addons"].setdefault(cluster_id, {})
    for addon in body:
        installed[addon["name"]] = {"name": addon["name"], "version": addon.get("version") or _addon_version(call, addon["name"]),
                                    "state": "active", "config": addon.get("config") or ""}
    task = new_task(call.emu, call.now, cluster_id, "cluster_addon_install")
    return {"cluster_id": cluster_id, "task_id": task["task_id"]}


@action("ListClusterAddonInstances", "GET", "/clusters/{cluster_id}/addon_instances", request_id=False)
def list_cluster_addon_instances(call, cluster_id):
    get_cluster(call, cluster_id)
    return {"addons": [{"name": a["name"], "version": a["version"], "state": a["state"]}
                       for a in sorted(call.state["addons"].get(cluster_id, {}).values(), key=lambda a: a["name"])]}


@action("GetClusterAddonInstance", "GET", "/clusters/{cluster_id}/addon_instances/{instance_name}", request_id=False)
def get_cluster_addon_instance(call, cluster_id, instance_name):
    get_cluster(call, cluster_id)
    addon = call.state["addons"].get(cluster_id, {}).get(instance_name)
    if addon is None:
        raise ApiError("AddonNotFound", "addon %s is not installed in cluster %s" % (instance_name, cluster_id), 404)
    return {"name": addon["name"], "version": addon["version"], "state": addon["state"], "config": addon["config"],
            "logging": {"capable": False, "enabled": False, "log_project": "", "logstore": ""}}
