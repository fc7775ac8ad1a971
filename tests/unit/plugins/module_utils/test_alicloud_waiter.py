# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import time

import pytest

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_waiter import WaitFailed, WaitTimeout, wait_for


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def sleep(self, seconds):
        assert seconds >= 0
        self.now += seconds

    def clock(self):
        return self.now


def states(*sequence):
    it = iter(sequence)
    last = [None]

    def fetch():
        try:
            last[0] = next(it)
        except StopIteration:
            pass
        return last[0]

    return fetch


def test_returns_when_done():
    fake = FakeClock()
    state = wait_for(states("initial", "initial", "running"), lambda s: s == "running", timeout=60, delay=5,
                     sleep=fake.sleep, clock=fake.clock)
    assert state == "running" and fake.now == 110.0


def test_terminal_failure_raises_with_reason():
    fake = FakeClock()
    with pytest.raises(WaitFailed) as info:
        wait_for(states("initial", "failed"), lambda s: s == "running", timeout=60,
                 is_failed=lambda s: "cluster state is failed" if s == "failed" else None,
                 sleep=fake.sleep, clock=fake.clock, operation="create cluster")
    assert "cluster state is failed" in str(info.value) and info.value.last == "failed"
    assert str(info.value).startswith("Failed to create cluster")


def test_timeout_bounds_the_wait_exactly():
    fake = FakeClock()
    with pytest.raises(WaitTimeout) as info:
        wait_for(states("initial"), lambda s: s == "running", timeout=12, delay=5, sleep=fake.sleep, clock=fake.clock)
    # polls at 100, 105, 110, then a shortened 2 s sleep to the deadline, a last poll, and stop
    assert fake.now == 112.0
    assert info.value.last == "initial" and "12" in str(info.value)


def test_throttled_polls_are_retried_within_the_deadline():
    fake = FakeClock()
    calls = []

    def fetch():
        calls.append(1)
        if len(calls) in (1, 2):
            raise AlicloudError("slow down", code="Throttling.User", kind="throttling")
        return "active"

    policy = RetryPolicy(max_attempts=5, base=0.1, cap=0.2, sleep=fake.sleep, clock=fake.clock)
    assert wait_for(fetch, lambda s: s == "active", timeout=30, retry=policy, sleep=fake.sleep, clock=fake.clock) == "active"
    assert len(calls) == 3


def test_real_clock_timeout_is_honoured():
    start = time.monotonic()
    with pytest.raises(WaitTimeout):
        wait_for(lambda: "pending", lambda s: False, timeout=0.3, delay=0.1)
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 1.5
