"""HTTP front end of the emulator for ECS (RPC, 2014-05-26) and ACK/CS (ROA, 2015-12-15).

Both services share one port and are told apart by the ``x-acs-version`` header (the ``Version``
query parameter for the legacy RPC signature); the action comes from ``x-acs-action`` (or
``Action``). Each request goes through: admin routing (``/_emulator/...``, loopback only, unsigned)
-> authentication (:mod:`signing`) -> fault injection (:class:`core.FaultPlan`) -> quota faults ->
the action handler, under the state lock -> one line in the request log. With the ``drop_after`` fault the
request runs to the end (state saved, log line written with the status it would have answered) and then
the connection is closed instead of answering.

Error bodies follow the wire reference section 6: gateway errors and ECS errors as
``{"RequestId","HostId","Code","Message","Recommend"}``; CS business errors as
``{"code","message","requestId","status"}``.
"""

import ipaddress
import json
import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qsl

from . import signing
from .catalog import Catalog
from .core import new_request_id
from .state import State

SERVICES = {"2014-05-26": "ecs", "2015-12-15": "cs"}
HOSTS = {"ecs": "ecs.cn-beijing.aliyuncs.com", "cs": "cs.cn-beijing.aliyuncs.com"}
JSON_TYPE = "application/json;charset=utf-8"


class ApiError(Exception):
    """An error answer. ``style``: ``"gateway"`` (PascalCase keys) or ``"cs"`` (lower-case keys)."""

    def __init__(self, code, message, status=400, style=None, headers=None, extra=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.style = style
        self.headers = headers or {}
        self.extra = extra or {}


class Call:
    """One API call as a handler sees it."""

    def __init__(self, emu, service, action, req, request_id):
        self.emu = emu
        self.service = service
        self.action = action
        self.method = req.method
        self.path = req.raw_path
        self.query = dict(req.query_pairs)
        self.body = req.body
        self.request_id = request_id
        self.now = emu.clock.now()
        self.path_params = {}
        self.state = emu.state
        self.catalog = emu.catalog
        self.clock = emu.clock
        self.faults = emu.faults

    # -- RPC (ECS) parameter helpers -------------------------------------------------------------
    def param(self, name, default=None):
        value = self.query.get(name)
        return default if value is None or value == "" else value

    def require(self, name):
        value = self.param(name)
        if value is None:
            raise ApiError("MissingParameter" if name != "RegionId" else "MissingRegionId",
                           'The input parameter "%s" that is mandatory for processing this request is not supplied.' % name)
        return value

    def bool_param(self, name, default=False):
        value = self.param(name)
        if value is None:
            return default
        low = str(value).lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise ApiError("InvalidParameter", 'The specified parameter "%s" is not valid (expected a boolean).' % name)

    def int_param(self, name, default=None, low=None, high=None, code=None):
        value = self.param(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ApiError(code or "InvalidParameter", 'The specified parameter "%s" is not valid (expected an integer).' % name) from None
        if (low is not None and number < low) or (high is not None and number > high):
            raise ApiError(code or "InvalidParameter", 'The specified parameter "%s" is out of range (%s-%s).' % (name, low, high))
        return number

    def list_param(self, prefix):
        """Values of ``prefix.1``, ``prefix.2``, ... in index order."""
        found = []
        for key, value in self.query.items():
            if key.startswith(prefix + "."):
                rest = key[len(prefix) + 1:]
                if rest.isdigit():
                    found.append((int(rest), value))
        return [pair[1] for pair in sorted(found)]

    def obj_list(self, prefix):
        """``prefix.N.Field`` parameters as a list of dicts in index order."""
        found = {}
        for key, value in self.query.items():
            if key.startswith(prefix + "."):
                parts = key[len(prefix) + 1:].split(".", 1)
                if len(parts) == 2 and parts[0].isdigit():
                    found.setdefault(int(parts[0]), {})[parts[1]] = value
        return [found[i] for i in sorted(found)]

    def json_param(self, name):
        value = self.param(name)
        if value is None:
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError("InvalidParameter", 'The specified parameter "%s" is not a valid JSON string.' % name) from None

    # -- ROA (CS) helpers ------------------------------------------------------------------------
    def json_body(self):
        if not self.body:
            return {}
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            raise ApiError("InvalidParameter", "The request body is not valid JSON.", style="cs") from None


class Emulator:
    """Everything one emulator process shares between its front ends."""

    def __init__(self, state_dir, credentials, clock, faults, request_log):
        self.state_dir = state_dir
        self.credentials = credentials
        self.clock = clock
        self.faults = faults
        self.request_log = request_log
        self.catalog = Catalog(state_dir)
        self.state = State(os.path.join(state_dir, "state.json"))
        self.nonces = signing.NonceCache()
        self.api_endpoint = None
        self.oss_endpoint = None
        from . import cs, ecs  # pylint: disable=import-outside-toplevel
        self.handlers = {"ecs": ecs.ACTIONS, "cs": cs.ACTIONS}
        self.advancers = [ecs.advance, cs.advance]
        self.cs = cs

    def advance(self, now):
        changed = False
        for advancer in self.advancers:
            changed = advancer(self, now) or changed
        return changed

    # kubernetes stand-in for DescribeClusterUserKubeconfig
    @property
    def kube_path(self):
        return os.path.join(self.state_dir, "kubeconfig-server")

    def kubernetes_target(self):
        if not os.path.exists(self.kube_path):
            return None
        with open(self.kube_path, encoding="utf-8") as f:
            text = f.read().strip()
        if not text:
            return None
        if text.startswith("{"):
            return json.loads(text)
        return {"server": text}

    def set_kubernetes_target(self, target):
        if not target or not target.get("server"):
            if os.path.exists(self.kube_path):
                os.unlink(self.kube_path)
            return
        tmp = self.kube_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(target, f)
        os.replace(tmp, self.kube_path)

    def attach_base_url(self):
        return self.state["settings"].get("attach_base_url") or "http://%s" % self.api_endpoint


def _is_loopback(addr):
    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def error_body(service, err, request_id):
    if err.style == "cs" or (err.style is None and service == "cs"):
        body = {"code": err.code, "message": err.message, "requestId": request_id, "status": err.status}
    else:
        host = HOSTS.get(service, HOSTS["ecs"])
        body = {"RequestId": request_id, "HostId": host, "Code": err.code, "Message": err.message,
                "Recommend": "https://api.aliyun.com/troubleshoot?q=%s&product=%s" % (err.code, "CS" if service == "cs" else "Ecs")}
    body.update(err.extra)
    return body


FAULT_ERRORS = {
    "throttling": ("Throttling.User", "Request was denied due to user flow control.", 400),
    "throttling_retry_after": ("Throttling.User", "Request was denied due to user flow control.", 400),
    "http500": ("InternalError", "The request processing has failed due to some unknown error, exception or failure.", 500),
    "http503": ("ServiceUnavailable", "The request has failed due to a temporary failure of the server.", 503),
}


class ApiHandler(BaseHTTPRequestHandler):
    """Request handler; ``self.server.emu`` is the :class:`Emulator`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server_version = "AlibabaCloudEmulator/1.0"
    sys_version = ""

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        """Silence the default per-request stderr line (the request log has it)."""

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _hang_up(self):
        """Close the connection without an answer (the ``drop`` and ``drop_after`` faults)."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _send(self, status, payload, request_id=None, headers=None, content_type=JSON_TYPE):
        if getattr(self, "_drop_answer", False):
            self._hang_up()
            return
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        elif isinstance(payload, bytes):
            data = payload
        else:
            data = str(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if request_id:
            self.send_header("x-acs-request-id", request_id)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def _dispatch(self):
        emu = self.server.emu
        self._drop_answer = False
        self._fault_tag = None
        split = urlsplit(self.path)
        body = self._read_body()
        if split.path.startswith("/_emulator"):
            from .admin import handle_admin  # pylint: disable=import-outside-toplevel
            if not _is_loopback(self.client_address[0]):
                self._send(403, {"error": "admin endpoint is loopback only"})
                return
            try:
                status, payload, ctype = handle_admin(emu, self.command, split.path, dict(parse_qsl(split.query)), body)
            except ApiError as err:
                status, payload, ctype = err.status, {"error": err.message, "code": err.code}, JSON_TYPE
            except (ValueError, TypeError, KeyError) as err:
                status, payload, ctype = 400, {"error": str(err)}, JSON_TYPE
            self._send(status, payload, content_type=ctype)
            return
        req = signing.Request(self.command, split.path, split.query, self.headers.items(), body)
        query = dict(req.query_pairs)
        version = req.header("x-acs-version") or query.get("Version")
        action = req.header("x-acs-action") or query.get("Action") or ""
        service = SERVICES.get(version)
        request_id = new_request_id()
        if service is None:
            self._answer_error("api", action, False, ApiError(
                "InvalidApi.NotFound" if version else "MissingVersion",
                "Specified api is not found, please check your url and method." if version else "x-acs-version is missing.",
                404 if version else 400, style="gateway"), request_id)
            return
        entry = emu.handlers[service].get(action)
        mutating = bool(entry and entry["mutating"])
        try:
            signing.verify(req, emu.credentials, emu.nonces)
        except signing.AuthError as err:
            self._answer_error(service, action, mutating, ApiError(err.code, err.message, err.status, style="gateway"), request_id)
            return
        fault = emu.faults.pick(service, action)
        if fault == "drop":
            emu.request_log.write(service, action, mutating, 0, None, request_id, fault)
            self._hang_up()
            return
        if fault == "drop_after":
            # run the request to the end, then hang up instead of answering (see _send)
            self._drop_answer = True
            self._fault_tag = fault
        elif fault:
            code, message, status = FAULT_ERRORS[fault]
            headers = {}
            if fault == "throttling_retry_after":
                headers["x-acs-retry-after"] = str(int(getattr(emu.faults, "retry_after_ms", 1000)))
            self._answer_error(service, action, mutating, ApiError(code, message, status, style="gateway", headers=headers),
                               request_id, fault)
            return
        if entry is None:
            self._answer_error(service, action, False, ApiError(
                "InvalidApi.NotFound", "Specified api %s is not found, please check your url and method." % action, 404,
                style="gateway"), request_id)
            return
        quota_code = emu.faults.quota.get("%s:%s" % (service, action)) or emu.faults.quota.get(action)
        if quota_code:
            self._answer_error(service, action, mutating, ApiError(
                quota_code, "The quota of this resource is exceeded (%s)." % quota_code, 400), request_id, "quota")
            return
        call = Call(emu, service, action, req, request_id)
        try:
            with emu.state.lock:
                changed = emu.advance(call.now)
                try:
                    result = entry["func"](call)
                finally:
                    if changed or mutating or getattr(call, "dirty", False):
                        emu.state.save()
        except ApiError as err:
            self._answer_error(service, action, mutating, err, request_id)
            return
        except Exception:  # pylint: disable=broad-except
            traceback.print_exc(file=sys.stderr)
            self._answer_error(service, action, mutating, ApiError(
                "InternalError", "The request processing has failed due to some unknown error.", 500, style="gateway"), request_id)
            return
        status = 200
        content_type = JSON_TYPE
        if isinstance(result, tuple):
            status, result = result
        if isinstance(result, dict):
            key = "RequestId" if service == "ecs" else "request_id"
            if entry.get("request_id", True):
                result.setdefault(key, request_id)
        elif isinstance(result, str):
            content_type = "text/plain;charset=utf-8"
        emu.request_log.write(service, action, mutating, status, None, request_id, self._fault_tag)
        self._send(status, result, request_id, content_type=content_type)

    def _answer_error(self, service, action, mutating, err, request_id, fault=None):
        fault = getattr(self, "_fault_tag", None) or fault
        self.server.emu.request_log.write(service, action, mutating, err.status, err.code, request_id, fault)
        self._send(err.status, error_body(service, err, request_id), request_id, headers=err.headers)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, emu):
        self.emu = emu
        super().__init__(address, ApiHandler)


def make_api_server(host, port, emu):
    return ApiServer((host, port), emu)
