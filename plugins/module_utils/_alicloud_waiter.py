# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Poll an asynchronous cloud operation until it is done, failed or out of time.

``wait_timeout`` is a promise to the user, so the deadline bounds everything: the sleeps, the
retries of throttled polls (the retry policy gets the same deadline) and the last sleep, which is
shortened to end at the deadline rather than overshoot it.
"""

from __future__ import annotations

import time

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError


class WaitTimeout(AlicloudError):
    """The operation did not reach a final state in time; ``last`` is the last state seen."""

    def __init__(self, message, last=None, operation=None):
        super().__init__(message, operation=operation, code="WaitTimeout", kind="client")
        self.last = last


class WaitFailed(AlicloudError):
    """The operation reached a terminal failure state; ``last`` is that state."""

    def __init__(self, message, last=None, operation=None):
        super().__init__(message, operation=operation, code="WaitFailed", kind="client")
        self.last = last


def wait_for(fetch, is_done, timeout, delay=5.0, is_failed=None, describe=None, retry=None,
             operation=None, sleep=time.sleep, clock=time.monotonic):
    """Call ``fetch()`` until ``is_done(state)``; return that state.

    ``is_failed(state)`` returning a true value (a reason string or True) raises ``WaitFailed``.
    ``describe(state)`` gives the text used in errors (default: ``repr``). ``retry`` is a
    ``RetryPolicy`` applied to each poll with the wait's deadline. Raises ``WaitTimeout`` after
    ``timeout`` seconds at the latest.
    """
    describe = describe or repr
    deadline = clock() + timeout
    polls = 0
    while True:
        polls += 1
        if retry is not None:
            state = retry.call(fetch, _operation=operation, _deadline=deadline)
        else:
            state = fetch()
        failed = is_failed(state) if is_failed is not None else False
        if failed:
            reason = failed if isinstance(failed, str) else describe(state)
            raise WaitFailed("ended in a failure state: %s" % reason, last=state, operation=operation)
        if is_done(state):
            return state
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(
                "still not done after %ss (%d polls); last state: %s" % ("%g" % round(timeout, 1), polls, describe(state)),
                last=state, operation=operation)
        sleep(min(delay, remaining))
