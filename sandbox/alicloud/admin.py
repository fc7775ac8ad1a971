"""Admin endpoint of the emulator (``/_emulator/...`` on the API port; JSON; loopback only, unsigned).

====== =========================== ===========================================================
GET    /_emulator/health           ``{"status":"ok", "pid", "api_endpoint", "oss_endpoint", "region"}``
GET    /_emulator/faults           the fault plan (``FaultPlan.snapshot()``)
PUT    /_emulator/faults           ``FaultPlan.configure(**body)``: rates, stockouts, quota, seed,
                                   retry_after_ms, lifecycle
PUT    /_emulator/clock            ``{"scale": x, "durations": {name: seconds}}``
GET    /_emulator/clock            the clock
GET    /_emulator/requests         the request log as a JSON list (``?since=<epoch>``)
POST   /_emulator/reset            drop every ECS/CS resource; body ``{"requests": true}`` also empties the
                                   request log (default: the log is kept)
GET    /_emulator/kubernetes       the Kubernetes stand-in kubeconfigs point at (secrets removed)
PUT    /_emulator/kubernetes       ``{"server": "http://127.0.0.1:N", "token"?, "certificate-authority-data"?,
                                   "client-certificate-data"?, "client-key-data"?, "insecure-skip-tls-verify"?}``
                                   (stored in ``<state_dir>/kubeconfig-server``, mode 0600;
                                   ``{"server": null}`` removes it)
PUT    /_emulator/attach           ``{"base_url": "http://host:port"}``: URL the attach script is fetched from
                                   (default: the API endpoint)
GET    /_emulator/attach_node.sh   the script DescribeClusterAttachScripts' command pipes into bash
POST   /_emulator/join             ``{"token", "instance_id"? , "hostname"?}``: what the script calls
====== =========================== ===========================================================
"""

import json
import os

from .server import ApiError

JSON_TYPE = "application/json;charset=utf-8"

ATTACH_SCRIPT = r"""#!/bin/bash
# Emulated ACK attach script: joins this machine to the emulated cluster.
# Usage: bash -s -- --openapi-token TOKEN [--instance-id ID] [other flags are accepted and ignored]
set -euo pipefail
token=""
instance_id="${ALIBABA_CLOUD_INSTANCE_ID:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --openapi-token) token="$2"; shift 2 ;;
    --instance-id) instance_id="$2"; shift 2 ;;
    --*) if [ $# -gt 1 ]; then shift 2; else shift; fi ;;
    *) shift ;;
  esac
done
if [ -z "$token" ]; then echo "attach_node.sh: --openapi-token is required" >&2; exit 2; fi
body=$(printf '{"token":"%s","instance_id":"%s","hostname":"%s"}' "$token" "$instance_id" "$(hostname)")
curl -fsS -X POST -H 'content-type: application/json' --data "$body" "__BASE__/_emulator/join"
echo
"""


def _json(body):
    if not body:
        return {}
    data = json.loads(body.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def handle_admin(emu, method, path, query, body):
    """Return ``(status, payload, content_type)``."""
    route = path[len("/_emulator"):].rstrip("/") or "/health"
    if route == "/health" and method == "GET":
        return 200, {"status": "ok", "pid": os.getpid(), "api_endpoint": emu.api_endpoint, "oss_endpoint": emu.oss_endpoint,
                     "region": emu.catalog.region}, JSON_TYPE
    if route == "/faults":
        if method == "PUT":
            emu.faults.configure(**_json(body))
        elif method != "GET":
            raise ApiError("MethodNotAllowed", "use GET or PUT", 405)
        return 200, emu.faults.snapshot(), JSON_TYPE
    if route == "/clock":
        if method == "PUT":
            data = _json(body)
            with emu.state.lock:
                # settle transitions that finished under the old scale before the new one applies
                if emu.advance(emu.clock.now()):
                    emu.state.save()
            if "scale" in data:
                scale = float(data["scale"])
                if scale < 0:
                    raise ValueError("scale must be >= 0")
                emu.clock.scale = scale
            for name, seconds in (data.get("durations") or {}).items():
                emu.clock.durations[name] = float(seconds)
        elif method != "GET":
            raise ApiError("MethodNotAllowed", "use GET or PUT", 405)
        return 200, {"scale": emu.clock.scale, "durations": emu.clock.durations}, JSON_TYPE
    if route == "/requests" and method == "GET":
        entries = emu.request_log.read()
        if query.get("since"):
            since = float(query["since"])
            entries = [e for e in entries if e["time"] >= since]
        return 200, entries, JSON_TYPE
    if route == "/reset" and method == "POST":
        options = _json(body)
        unknown = sorted(set(options) - {"requests"})
        if unknown:
            raise ValueError("unknown reset option(s): %s" % ", ".join(unknown))
        clear_log = options.get("requests", False)
        if not isinstance(clear_log, bool):
            raise ValueError("requests must be true or false")
        emu.state.reset()
        if clear_log:
            emu.request_log.clear()
        return 200, {"status": "reset", "requests_cleared": clear_log}, JSON_TYPE
    if route == "/kubernetes":
        if method == "PUT":
            data = _json(body)
            if data.get("server") is not None and not str(data["server"]).startswith(("http://", "https://")):
                raise ValueError("server must be an http(s) URL")
            emu.set_kubernetes_target(data)
        elif method != "GET":
            raise ApiError("MethodNotAllowed", "use GET or PUT", 405)
        target = emu.kubernetes_target() or {}
        return 200, {"server": target.get("server"), "has_credentials": any(
            target.get(k) for k in ("token", "client-key-data"))}, JSON_TYPE
    if route == "/attach":
        if method == "PUT":
            base = _json(body).get("base_url")
            with emu.state.lock:
                if base:
                    emu.state["settings"]["attach_base_url"] = str(base).rstrip("/")
                else:
                    emu.state["settings"].pop("attach_base_url", None)
                emu.state.save()
        return 200, {"base_url": emu.attach_base_url()}, JSON_TYPE
    if route == "/attach_node.sh" and method == "GET":
        return 200, ATTACH_SCRIPT.replace("__BASE__", emu.attach_base_url()), "text/x-shellscript;charset=utf-8"
    if route == "/join" and method == "POST":
        data = _json(body)
        with emu.state.lock:
            emu.advance(emu.clock.now())
            try:
                result = emu.cs.join_node(emu, data.get("token"), data.get("instance_id") or None, data.get("hostname") or None)
            except ApiError as err:
                emu.request_log.write("cs", "AttachNode", True, err.status, err.code, None, None)
                emu.state.save()
                raise
            emu.state.save()
        emu.request_log.write("cs", "AttachNode", True, 200, None, None, None)
        return 200, result, JSON_TYPE
    raise ApiError("NotFound", "no admin route %s %s" % (method, path), 404)
