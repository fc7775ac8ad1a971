"""Shared pieces of the Alibaba Cloud emulator: credentials, clock, faults and the request log.

The ECS/CS front end (``server.py``) and the OSS front end (``oss.py``) both take these objects, so
that one emulator process has one set of keys, one clock, one fault plan and one request log.
Everything here is a test double: it is never shipped in the built collection.
"""

import json
import os
import random
import secrets
import threading
import time
import uuid


class CredentialStore:
    """Access key pairs (and STS tokens) the emulator accepts.

    Stored as JSON in ``<state_dir>/credentials.json`` (mode 0600):
    ``{"keys": {"<ak id>": {"secret": "...", "security_token": null | "..."}}}``.
    A key with a security token is an STS key: requests must carry that exact token.
    """

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self.keys = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.keys = json.load(f).get("keys", {})

    def ensure_default(self):
        """Create one random static key pair and one STS key pair when the store is empty."""
        with self._lock:
            if not self.keys:
                self.keys["SBXAK" + secrets.token_hex(8).upper()] = {"secret": secrets.token_urlsafe(24), "security_token": None}
                self.keys["STS.SBX" + secrets.token_hex(8).upper()] = {
                    "secret": secrets.token_urlsafe(24), "security_token": secrets.token_urlsafe(32)}
                self._save()
        return self

    def add(self, access_key_id, secret, security_token=None):
        with self._lock:
            self.keys[access_key_id] = {"secret": secret, "security_token": security_token}
            self._save()

    def lookup(self, access_key_id):
        """Return ``(secret, security_token)`` or ``None`` when the key id is unknown."""
        entry = self.keys.get(access_key_id)
        if entry is None:
            return None
        return entry["secret"], entry.get("security_token")

    def static_key(self):
        """The first key pair without an STS token, as ``(id, secret)``."""
        for ak, entry in self.keys.items():
            if not entry.get("security_token"):
                return ak, entry["secret"]
        raise LookupError("no static access key configured")

    def sts_key(self):
        """The first STS key, as ``(id, secret, token)``."""
        for ak, entry in self.keys.items():
            if entry.get("security_token"):
                return ak, entry["secret"], entry["security_token"]
        raise LookupError("no STS key configured")

    def _save(self):
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"keys": self.keys}, f, indent=2)
        os.replace(tmp, self.path)


class Clock:
    """Lifecycle durations, all scaled by one factor.

    ``durations`` holds real-world seconds (an ACK Pro cluster takes ~540 s, ...); the emulator waits
    ``duration * scale``. ``scale=0`` makes every transition immediate; ``scale=0.01`` turns 9 minutes
    into 5.4 seconds.
    """

    DEFAULT_DURATIONS = {
        "ecs.instance.start": 90.0,      # Pending/Starting -> Running
        "ecs.instance.stop": 30.0,       # Stopping -> Stopped
        "ecs.instance.delete": 10.0,
        "cs.cluster.create": 540.0,      # initial -> running
        "cs.cluster.delete": 180.0,      # deleting -> deleted
        "cs.nodepool.create": 60.0,      # initial -> active
        "cs.nodepool.update": 30.0,      # updating -> active
        "cs.nodepool.delete": 60.0,
        "cs.node.join": 240.0,           # attached -> Ready
        "cs.task": 5.0,                  # generic task running -> success
    }

    def __init__(self, scale=0.0, durations=None):
        self.scale = float(scale)
        self.durations = dict(self.DEFAULT_DURATIONS)
        self.durations.update(durations or {})

    def now(self):
        return time.time()

    def delay(self, name):
        return self.durations[name] * self.scale

    def ready_at(self, name, start=None):
        """Epoch seconds at which the transition ``name`` started at ``start`` (default now) completes."""
        return (self.now() if start is None else start) + self.delay(name)


class FaultPlan:
    """Seeded, switchable fault injection.

    ``rates`` maps a scope to fault rates. A scope is ``"*"`` (every request), a service (``"ecs"``,
    ``"cs"``, ``"oss"``) or ``"<service>:<Action>"``; the rates of every scope that matches a request add
    up (see ``pick``). Fault kinds:
    ``throttling`` (4xx Throttling.User, no retry-after header), ``throttling_retry_after`` (the same with
    ``x-acs-retry-after``), ``http500``, ``http503``, ``drop`` (close the connection without an answer, nothing is
    executed) and ``drop_after`` (execute the request, then close the connection without an answer: the "answer
    lost" case that client tokens must survive).
    ``stockouts`` is a set of ``(zone_id, instance_type)`` pairs with no stock; ``quota`` maps an
    action to an error code to return (for quota errors).

    Additions used by the ECS/CS front end (optional, backward compatible):
    ``retry_after_ms`` is the value of ``x-acs-retry-after`` sent with ``throttling_retry_after``
    (default 1000); ``lifecycle`` maps a lifecycle name (``cs.cluster.create``, ``cs.nodepool.create``,
    ``cs.node.join``, ``ecs.instance.start``) to the probability that the transition fails
    (cluster -> ``failed``, task -> ``fail``), rolled with the same seeded generator.
    """

    # New kinds go at the end: ``pick`` walks this order, so seeded sequences of older plans stay the same.
    KINDS = ("throttling", "throttling_retry_after", "http500", "http503", "drop", "drop_after")

    def __init__(self, seed=0, rates=None, stockouts=None, quota=None):
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.seed = seed
        self.rates = {}
        self.stockouts = set()
        self.quota = {}
        self.retry_after_ms = 1000
        self.lifecycle = {}
        self.configure(rates=rates or {}, stockouts=stockouts or [], quota=quota or {})

    def configure(self, rates=None, stockouts=None, quota=None, seed=None, retry_after_ms=None, lifecycle=None):
        with self._lock:
            if retry_after_ms is not None:
                self.retry_after_ms = int(retry_after_ms)
            if lifecycle is not None:
                self.lifecycle = {name: float(p) for name, p in lifecycle.items()}
            if seed is not None:
                self.seed = seed
                self._rng = random.Random(seed)
            if rates is not None:
                for scope, kinds in rates.items():
                    for kind in kinds:
                        if kind not in self.KINDS:
                            raise ValueError("unknown fault kind %r" % kind)
                self.rates = {scope: dict(kinds) for scope, kinds in rates.items()}
            if stockouts is not None:
                self.stockouts = {tuple(pair) for pair in stockouts}
            if quota is not None:
                self.quota = dict(quota)

    def snapshot(self):
        with self._lock:
            return {"seed": self.seed, "rates": self.rates, "stockouts": sorted(self.stockouts), "quota": self.quota,
                    "retry_after_ms": self.retry_after_ms, "lifecycle": self.lifecycle}

    def pick(self, service, action):
        """Return the fault kind to inject for this request, or ``None``.

        Every scope that matches the request counts: the rates of ``<service>:<Action>``, ``<service>`` and
        ``"*"`` are added up per kind, and one seeded roll picks among the kinds in ``KINDS`` order (a sum of
        1 or more faults every request). A narrower scope therefore adds to the wider ones; it never hides
        them. With a single matching scope this is the same roll, with the same seeded sequence, as when only
        the narrowest scope counted.
        """
        with self._lock:
            matching = [self.rates.get(scope) for scope in ("%s:%s" % (service, action), service, "*")]
            matching = [kinds for kinds in matching if kinds]
            if not matching:
                return None
            roll = self._rng.random()
            acc = 0.0
            for kind in self.KINDS:
                acc += sum(kinds.get(kind, 0.0) for kinds in matching)
                if roll < acc:
                    return kind
            return None

    def lifecycle_fails(self, name):
        """Roll whether the lifecycle transition ``name`` fails (``lifecycle`` rates)."""
        with self._lock:
            rate = self.lifecycle.get(name, 0.0)
            return rate > 0 and self._rng.random() < rate

    def no_stock(self, zone_id, instance_type):
        return (zone_id, instance_type) in self.stockouts


class RequestLog:
    """Every request as one JSON line in ``<state_dir>/requests.jsonl``.

    Fields: ``time``, ``service``, ``action``, ``mutating``, ``status``, ``code``, ``request_id``,
    ``fault`` (the injected fault kind or null). Never a secret, a signature or a body.
    """

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()

    def write(self, service, action, mutating, status, code=None, request_id=None, fault=None):
        entry = {
            "time": round(time.time(), 3), "service": service, "action": action, "mutating": bool(mutating),
            "status": status, "code": code, "request_id": request_id, "fault": fault,
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)

    def clear(self):
        """Empty the log (the file stays, so that a reader holding its path sees an empty log)."""
        with self._lock:
            with open(self.path, "w", encoding="utf-8"):
                pass

    def read(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


def new_request_id():
    return str(uuid.uuid4()).upper()
