"""Persistent resource state of the ECS/CS emulator and the clock-driven lifecycle helper.

All resources live in one JSON document, ``<state_dir>/state.json``, written atomically (temporary
file + ``os.replace``) after every change, so a restarted emulator sees the same cloud. One
re-entrant lock serialises every API call; ECS/CS traffic is low, so this is simpler than finer
locking and cannot deadlock.

Lifecycles are evaluated lazily: a resource in transition carries ``_phase = {"key", "since",
"steps"}`` where ``key`` names a :class:`core.Clock` duration and ``steps`` is a list of
``[fraction, value]``. At time ``t`` the value is the last step whose ``fraction * duration`` has
elapsed. The duration is read from the clock at evaluation time, so changing the clock scale at run
time also speeds up transitions already under way (scale 0 completes them at once).
"""

import json
import os
import threading


def empty_state():
    return {
        "version": 1,
        "instances": {},       # ECS instances by id
        "ecs_tokens": {},      # RunInstances ClientToken -> {"fingerprint", "instance_ids"}
        "ip_counters": {},     # vSwitch id / "public" -> last host number handed out
        "clusters": {},        # ACK clusters by id
        "cs_tokens": {},       # CreateCluster client_token -> cluster id
        "nodepools": {},       # node pools by id (each has "cluster_id")
        "nodes": {},           # cluster nodes by instance id
        "tasks": {},           # CS tasks by id
        "attach_tokens": {},   # DescribeClusterAttachScripts tokens
        "addons": {},          # cluster id -> {addon name: {...}}
        "settings": {},        # emulator settings that must survive a restart
    }


class State:
    """The resource document plus its lock. ``data`` is a plain dict of dicts."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.RLock()
        self.data = empty_state()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                loaded = json.load(f)
            for key, value in loaded.items():
                self.data[key] = value
            for key, value in empty_state().items():
                self.data.setdefault(key, value)

    def __getitem__(self, key):
        return self.data[key]

    def save(self):
        with self.lock:
            tmp = "%s.tmp.%d" % (self.path, threading.get_ident())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.data, f, sort_keys=True)
            os.replace(tmp, self.path)

    def reset(self):
        """Drop every resource (settings are kept)."""
        with self.lock:
            settings = self.data.get("settings", {})
            self.data = empty_state()
            self.data["settings"] = settings
            self.save()


def start_phase(obj, key, steps, now, **extra):
    """Put ``obj`` into a timed transition. ``steps``: ``[[fraction, value], ...]`` (first fraction 0)."""
    phase = {"key": key, "since": now, "steps": [list(s) for s in steps]}
    phase.update(extra)
    obj["_phase"] = phase
    return phase


def phase_value(obj, clock, now):
    """Return ``(value, done)`` for the transition of ``obj``; ``(None, True)`` when there is none."""
    phase = obj.get("_phase")
    if not phase:
        return None, True
    delay = clock.delay(phase["key"])
    elapsed = now - phase["since"]
    value = phase["steps"][0][1]
    for fraction, step_value in phase["steps"]:
        if elapsed >= fraction * delay:
            value = step_value
    return value, elapsed >= delay


def phase_end(obj, clock):
    """Epoch seconds at which the transition of ``obj`` completes (None when there is none)."""
    phase = obj.get("_phase")
    if not phase:
        return None
    return phase["since"] + clock.delay(phase["key"])
