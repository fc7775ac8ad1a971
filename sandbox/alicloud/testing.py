"""Helpers to run the emulator from tests and from the sandbox.

``EmulatorProcess`` starts ``python -m sandbox.alicloud serve`` as a subprocess (the interpreter of
the caller, working directory = repository root), waits until it has printed its endpoints and gives
typed access to its keys and admin endpoint::

    with EmulatorProcess() as emu:
        ecs = ecs_client(emu)
        ecs.describe_zones(ecs_models.DescribeZonesRequest(region_id=emu.region))

The SDK clients built by :func:`ecs_client` and :func:`cs_client` are the official, unmodified ones.
The Tea SDK sends loopback traffic through ``HTTP(S)_PROXY`` when those are set (wire reference
section 2.1), so this module removes the proxy variables from its own process environment when a
client is built.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class EmulatorError(RuntimeError):
    """The emulator process failed to start or answer."""


class EmulatorProcess:
    """The emulator as a child process (a context manager)."""

    def __init__(self, state_dir=None, clock_scale=0.0, seed=0, fault_config=None, api_port=0, oss_port=0,
                 extra_args=None, start_timeout=10.0):
        self._own_dir = state_dir is None
        self.state_dir = os.path.abspath(state_dir) if state_dir else tempfile.mkdtemp(prefix="alicloud-emu-")
        self.clock_scale = clock_scale
        self.seed = seed
        self.fault_config = fault_config
        self.api_port = api_port
        self.oss_port = oss_port
        self.extra_args = list(extra_args or [])
        self.start_timeout = start_timeout
        self.proc = None
        self.endpoints = None
        self.startup_seconds = None
        self._log = None

    # -- process -----------------------------------------------------------------------------------
    def start(self):
        os.makedirs(self.state_dir, exist_ok=True)
        endpoints_path = os.path.join(self.state_dir, "endpoints.json")
        if os.path.exists(endpoints_path):
            os.unlink(endpoints_path)
        cmd = [sys.executable, "-m", "sandbox.alicloud", "serve", "--state-dir", self.state_dir,
               "--api-port", str(self.api_port), "--oss-port", str(self.oss_port),
               "--clock-scale", str(self.clock_scale), "--seed", str(self.seed), "--exit-with-parent"]
        if self.fault_config:
            cmd += ["--fault-config", self.fault_config]
        cmd += self.extra_args
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        self._log = open(os.path.join(self.state_dir, "emulator.log"), "ab")  # pylint: disable=consider-using-with
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log)  # pylint: disable=consider-using-with
        line = self._read_line(self.start_timeout)
        if not line:
            output = self._output()
            self.stop()
            raise EmulatorError("the emulator did not start within %.0f s; exit code %s; output:\n%s" % (
                self.start_timeout, self.proc.returncode, output))
        self.startup_seconds = time.monotonic() - started
        self.endpoints = json.loads(line)
        return self

    def _read_line(self, timeout):
        result = []

        def reader():
            result.append(self.proc.stdout.readline().decode("utf-8", "replace").strip())

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(timeout)
        return result[0] if result and result[0] else None

    def _output(self):
        path = os.path.join(self.state_dir, "emulator.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc is not None else None

    def restart(self):
        """Stop and start again on the same state directory (and the same ports when they were fixed)."""
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- endpoints and keys ------------------------------------------------------------------------
    @property
    def api_endpoint(self):
        return self.endpoints["api_endpoint"]

    @property
    def oss_endpoint(self):
        return self.endpoints["oss_endpoint"]

    @property
    def admin_url(self):
        return self.endpoints["admin_url"]

    @property
    def region(self):
        return self.endpoints["region"]

    def _keys(self):
        with open(os.path.join(self.state_dir, "credentials.json"), encoding="utf-8") as f:
            return json.load(f)["keys"]

    @property
    def static_key(self):
        for ak, entry in self._keys().items():
            if not entry.get("security_token"):
                return ak, entry["secret"]
        raise EmulatorError("no static key")

    @property
    def sts_key(self):
        for ak, entry in self._keys().items():
            if entry.get("security_token"):
                return ak, entry["secret"], entry["security_token"]
        raise EmulatorError("no STS key")

    # -- admin -------------------------------------------------------------------------------------
    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.admin_url + path, data=data, method=method,
                                     headers={"content-type": "application/json"} if data is not None else {})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            text = resp.read().decode("utf-8")
        return json.loads(text) if text and resp.headers.get("content-type", "").startswith("application/json") else text

    def health(self):
        return self.admin("GET", "/health")

    def set_faults(self, **kw):
        """``FaultPlan.configure`` over the admin endpoint (rates, stockouts, quota, seed, retry_after_ms, lifecycle)."""
        return self.admin("PUT", "/faults", kw)

    def clear_faults(self):
        return self.set_faults(rates={}, stockouts=[], quota={}, lifecycle={})

    def set_clock(self, scale, durations=None):
        body = {"scale": scale}
        if durations:
            body["durations"] = durations
        return self.admin("PUT", "/clock", body)

    def set_kubernetes(self, server, **extra):
        body = {"server": server}
        body.update(extra)
        return self.admin("PUT", "/kubernetes", body)

    def requests(self, since=None):
        return self.admin("GET", "/requests" + ("?since=%r" % since if since is not None else ""))

    def mutating_requests(self, since=None):
        return [r for r in self.requests(since) if r["mutating"]]

    def reset(self, requests=False):
        """Drop every ECS/CS resource; with ``requests=True`` also empty the request log."""
        return self.admin("POST", "/reset", {"requests": True} if requests else None)


def _config(emu, sts=False, **kw):
    from alibabacloud_tea_openapi.utils_models import Config  # pylint: disable=import-outside-toplevel
    for var in PROXY_VARS:
        os.environ.pop(var, None)
    if sts:
        ak, sk, token = emu.sts_key
        kw.setdefault("security_token", token)
    else:
        ak, sk = emu.static_key
    kw.setdefault("access_key_id", ak)
    kw.setdefault("access_key_secret", sk)
    kw.setdefault("endpoint", emu.api_endpoint)
    kw.setdefault("protocol", "http")
    kw.setdefault("region_id", emu.region)
    kw.setdefault("read_timeout", 10000)
    kw.setdefault("connect_timeout", 5000)
    return Config(**kw)


def ecs_client(emu, sts=False, **kw):
    """The official ECS client (``alibabacloud_ecs20140526``) pointed at the emulator; ``kw`` go to ``Config``."""
    from alibabacloud_ecs20140526.client import Client  # pylint: disable=import-outside-toplevel
    return Client(_config(emu, sts, **kw))


def cs_client(emu, sts=False, **kw):
    """The official ACK client (``alibabacloud_cs20151215``) pointed at the emulator; ``kw`` go to ``Config``."""
    from alibabacloud_cs20151215.client import Client  # pylint: disable=import-outside-toplevel
    return Client(_config(emu, sts, **kw))
