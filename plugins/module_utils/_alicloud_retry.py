# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one retry policy for every cloud call, waiters included.

The Tea SDKs retry nothing by default and oss2 retries only listing pages, so every call made by
the collection goes through ``RetryPolicy.call``: jittered exponential backoff on throttling, 5xx
and connection failures, never on client errors (validation, not found, permissions), bounded by
both an attempt count and a deadline so that a caller's ``wait_timeout`` stays true.
"""

from __future__ import annotations

import random
import time

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError


class RetryPolicy:
    """Exponential backoff with full jitter.

    The n-th retry (n = 1, 2, ...) sleeps a uniform random time in ``[0, min(cap, base * 2**(n-1))]``,
    or the service's ``retry_after`` when it sent one (capped by ``cap``). ``max_attempts`` counts
    the first try. ``deadline`` (a ``clock()`` value) stops retrying once the next sleep would pass
    it. ``sleep``, ``clock`` and ``rng`` are injectable for tests.
    """

    def __init__(self, max_attempts=8, base=0.5, cap=20.0, sleep=time.sleep, clock=time.monotonic, rng=None):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.base = float(base)
        self.cap = float(cap)
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        # each retry as (attempt, kind, code, delay); modules can report it
        self.history = []

    def delay(self, retry_number, error=None):
        """Seconds to sleep before retry ``retry_number`` (1-based); never more than ``cap``."""
        if error is not None and error.retry_after:
            return min(self.cap, float(error.retry_after))
        ceiling = min(self.cap, self.base * (2 ** (retry_number - 1)))
        return self.rng.uniform(0, ceiling)

    def call(self, func, *args, **kwargs):
        """Call ``func`` and retry it as the policy says; raise ``AlicloudError`` when it gives up.

        Pass ``_operation="describe instances"`` to name the call in errors, and ``_deadline`` (a
        ``clock()`` value) to bound the total time.
        """
        operation = kwargs.pop("_operation", None)
        deadline = kwargs.pop("_deadline", None)
        attempt = 0
        while True:
            attempt += 1
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # pylint: disable=broad-except
                error = AlicloudError.from_exception(exc, operation)
                if not error.retryable or attempt >= self.max_attempts:
                    raise error from exc
                pause = self.delay(attempt, error)
                if deadline is not None and self.clock() + pause > deadline:
                    raise error from exc
                self.history.append((attempt, error.kind, error.code, round(pause, 3)))
                self.sleep(pause)
