"""Run the OSS emulator in-process for tests and benchmarks.

    with OssEmulator(state_dir) as emu:
        bucket = emu.bucket("models")            # oss2.Bucket with V1 signing
        bucket4 = emu.bucket("models", v4=True)  # V4 signing
        ...

The emulator keeps its keys in ``<state_dir>/credentials.json`` (created on first use) and its request
log in ``<state_dir>/requests.jsonl``. ``stop()`` followed by a new ``OssEmulator`` on the same
directory is a restart.
"""

import os
import threading

from .core import Clock, CredentialStore, FaultPlan, RequestLog
from .oss import make_oss_server


class OssEmulator:
    def __init__(self, state_dir, host="127.0.0.1", port=0, faults=None, clock=None, region="cn-beijing"):
        self.state_dir = str(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.credentials = CredentialStore(os.path.join(self.state_dir, "credentials.json")).ensure_default()
        self.faults = faults if faults is not None else FaultPlan()
        self.request_log = RequestLog(os.path.join(self.state_dir, "requests.jsonl"))
        self.clock = clock if clock is not None else Clock()
        self.region = region
        self.server = make_oss_server(host, port, self.state_dir, self.credentials, self.faults, self.request_log, self.clock,
                                      region=region)
        self._thread = None

    @property
    def endpoint(self):
        host, port = self.server.server_address[:2]
        if ":" in host:
            host = "[%s]" % host
        return "http://%s:%d" % (host, port)

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- oss2 helpers (imported lazily so that the emulator itself does not need oss2) --------
    def auth(self, v4=False, sts=False):
        import oss2  # pylint: disable=import-outside-toplevel
        if sts:
            ak, sk, token = self.credentials.sts_key()
            return oss2.StsAuth(ak, sk, token, auth_version="v4" if v4 else "v1")
        ak, sk = self.credentials.static_key()
        return oss2.AuthV4(ak, sk) if v4 else oss2.Auth(ak, sk)

    def bucket(self, name, v4=False, sts=False, **kwargs):
        import oss2  # pylint: disable=import-outside-toplevel
        if v4 or sts:
            kwargs.setdefault("region", self.region)
        return oss2.Bucket(self.auth(v4=v4, sts=sts), self.endpoint, name, **kwargs)

    def service(self, v4=False):
        import oss2  # pylint: disable=import-outside-toplevel
        kwargs = {"region": self.region} if v4 else {}
        return oss2.Service(self.auth(v4=v4), self.endpoint, **kwargs)

    def log(self):
        return self.request_log.read()
