"""Command line of the Alibaba Cloud emulator.

``python -m sandbox.alicloud serve --state-dir DIR [--host 127.0.0.1] [--api-port 0] [--oss-port 0]
[--clock-scale 0.0] [--seed 0] [--fault-config FILE] [--credentials FILE] [--exit-with-parent]``

Binds the ECS/CS API port and the OSS port (0 = any free port), writes ``DIR/endpoints.json``
atomically, prints the same JSON as one line on stdout and serves until SIGTERM/SIGINT (exit 0).
With ``--exit-with-parent`` it also stops when the process that started it is gone: test runners
that fork a child per test (``ansible-test units``) end that child with ``os._exit``, so fixture
teardown never runs and the emulator would otherwise outlive the test run.
"""

import argparse
import ipaddress
import json
import os
import signal
import sys
import threading

from .core import Clock, CredentialStore, FaultPlan, RequestLog
from .server import Emulator, make_api_server


def _loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_atomic(path, text, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _load_fault_config(faults, path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    faults.configure(**data)


def _make_oss(host, port, state_dir, credentials, faults, request_log, clock):
    try:
        from . import oss  # pylint: disable=import-outside-toplevel
    except ModuleNotFoundError as err:
        if err.name != __package__ + ".oss":
            raise
        print("alicloud emulator: sandbox/alicloud/oss.py is not available; starting without OSS", file=sys.stderr)
        return None
    return oss.make_oss_server(host, port, state_dir, credentials, faults, request_log, clock)


def serve(args):
    if not _loopback(args.host):
        print("alicloud emulator: refusing to listen on non-loopback host %r" % args.host, file=sys.stderr)
        return 2
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    credentials = CredentialStore(os.path.join(state_dir, "credentials.json")).ensure_default()
    if args.credentials:
        with open(args.credentials, encoding="utf-8") as f:
            extra = json.load(f)
        for ak, entry in extra.get("keys", {}).items():
            credentials.add(ak, entry["secret"], entry.get("security_token"))
    faults = FaultPlan(seed=args.seed)
    default_faults = os.path.join(state_dir, "fault-config")
    if os.path.exists(default_faults):
        _load_fault_config(faults, default_faults)
    if args.fault_config:
        _load_fault_config(faults, args.fault_config)
    clock = Clock(scale=args.clock_scale)
    request_log = RequestLog(os.path.join(state_dir, "requests.jsonl"))
    emu = Emulator(state_dir, credentials, clock, faults, request_log)

    api = make_api_server(args.host, args.api_port, emu)
    emu.api_endpoint = "%s:%d" % (args.host, api.server_address[1])
    oss_server = _make_oss(args.host, args.oss_port, state_dir, credentials, faults, request_log, clock)
    if oss_server is not None:
        emu.oss_endpoint = "http://%s:%d" % (args.host, oss_server.server_address[1])

    stop = threading.Event()

    def _on_signal(signum, frame):
        del signum, frame
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    threads = [threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)]
    if oss_server is not None:
        threads.append(threading.Thread(target=oss_server.serve_forever, daemon=True))
    for thread in threads:
        thread.start()
    endpoints = {"api_endpoint": emu.api_endpoint, "oss_endpoint": emu.oss_endpoint,
                 "admin_url": "http://%s/_emulator" % emu.api_endpoint, "region": emu.catalog.region, "pid": os.getpid()}
    line = json.dumps(endpoints, sort_keys=True)
    _write_atomic(os.path.join(state_dir, "endpoints.json"), line + "\n")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    parent = os.getppid()
    while not stop.wait(0.5):
        if args.exit_with_parent and os.getppid() != parent:
            break
    api.shutdown()
    api.server_close()
    if oss_server is not None:
        oss_server.shutdown()
        oss_server.server_close()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sandbox.alicloud", description="Local Alibaba Cloud emulator (ECS, ACK, OSS)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="start the emulator")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--api-port", type=int, default=0)
    p.add_argument("--oss-port", type=int, default=0)
    p.add_argument("--clock-scale", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fault-config")
    p.add_argument("--credentials", help="JSON file {\"keys\": {ak: {\"secret\", \"security_token\"}}} of extra keys")
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the parent process is gone")
    args = parser.parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
