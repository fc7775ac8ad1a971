# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import random

import pytest

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy

tea = pytest.importorskip("alibabacloud_tea_openapi.exceptions")
oss2_exceptions = pytest.importorskip("oss2.exceptions")


def client_exc(code, status=400, request_id="REQ-1"):
    return tea.ClientException(status_code=status, code=code, message="code: %s, %s request id: %s" % (status, "msg", request_id),
                               request_id=request_id, data={})


def server_exc(code="InternalError", status=500):
    return tea.ServerException(status_code=status, code=code, message="boom", request_id="REQ-5", data={})


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


def flaky(errors, result="ok"):
    """A callable that raises each of ``errors`` in turn, then returns ``result``."""
    calls = []

    def func():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    func.calls = calls
    return func


# -- classification ------------------------------------------------------------------------------
@pytest.mark.parametrize("exc,kind", [
    (client_exc("Throttling.User"), "throttling"),
    (client_exc("Throttling"), "throttling"),
    (client_exc("Throttling.Api"), "throttling"),
    (client_exc("ServiceUnavailable", 503), "server"),
    (server_exc(), "server"),
    (server_exc("SomethingNew", 502), "server"),
    (client_exc("LastTokenProcessing", 403), "server"),
    (client_exc("InvalidParameter"), "client"),
    (client_exc("InvalidInstanceType.ValueNotSupported"), "client"),
    (client_exc("OperationDenied.NoStock", 403), "client"),
    (client_exc("SignatureDoesNotMatch"), "client"),
    (client_exc("ErrorClusterNotFound", 404), "client"),
    (ConnectionRefusedError("refused"), "connection"),
])
def test_classification(exc, kind):
    assert AlicloudError.from_exception(exc).kind == kind


def test_throttling_with_retry_after_header():
    exc = tea.ThrottlingException(status_code=400, code="Throttling.User", message="slow down", request_id="R", retry_after=1500, data={})
    err = AlicloudError.from_exception(exc, "run instances")
    assert err.kind == "throttling" and err.retry_after == 1.5 and err.request_id == "R"


def test_tea_error_keeps_code_status_and_request_id():
    err = AlicloudError.from_exception(client_exc("InvalidParameter", 400, "REQ-42"), "describe zones")
    assert (err.code, err.http_status, err.request_id) == ("InvalidParameter", 400, "REQ-42")
    assert err.message == "msg"
    assert str(err) == "Failed to describe zones: InvalidParameter: msg (HTTP 400, request id REQ-42)"
    assert err.to_dict()["operation"] == "describe zones"


def test_oss_errors():
    server = oss2_exceptions.ServerError(503, {"x-oss-request-id": "OSSREQ"}, b"", {"Code": "ServiceUnavailable", "Message": "busy"})
    assert AlicloudError.from_exception(server).kind == "server"
    assert AlicloudError.from_exception(server).request_id == "OSSREQ"
    missing = oss2_exceptions.NoSuchKey(404, {"x-oss-request-id": "R2"}, b"", {"Code": "NoSuchKey", "Message": "nope"})
    err = AlicloudError.from_exception(missing)
    assert (err.kind, err.code, err.http_status) == ("client", "NoSuchKey", 404)
    dropped = oss2_exceptions.RequestError(ConnectionResetError("reset by peer"))
    assert AlicloudError.from_exception(dropped).kind == "connection"
    crc = oss2_exceptions.InconsistentError("crc mismatch")
    assert AlicloudError.from_exception(crc).kind == "client"


# -- the policy ----------------------------------------------------------------------------------
def test_retries_throttling_then_succeeds():
    fake = FakeClock()
    func = flaky([client_exc("Throttling.User"), server_exc()])
    policy = RetryPolicy(max_attempts=5, base=0.5, cap=4, sleep=fake.sleep, clock=fake.clock, rng=random.Random(1))
    assert policy.call(func) == "ok"
    assert len(func.calls) == 3 and len(fake.sleeps) == 2
    assert [h[1] for h in policy.history] == ["throttling", "server"]


def test_never_retries_validation_errors():
    fake = FakeClock()
    func = flaky([client_exc("InvalidParameter")])
    policy = RetryPolicy(max_attempts=5, sleep=fake.sleep, clock=fake.clock)
    with pytest.raises(AlicloudError) as info:
        policy.call(func, _operation="create cluster")
    assert len(func.calls) == 1 and fake.sleeps == []
    assert info.value.code == "InvalidParameter" and info.value.operation == "create cluster"


def test_gives_up_after_max_attempts():
    fake = FakeClock()
    func = flaky([server_exc()] * 10)
    policy = RetryPolicy(max_attempts=4, sleep=fake.sleep, clock=fake.clock)
    with pytest.raises(AlicloudError) as info:
        policy.call(func)
    assert len(func.calls) == 4 and len(fake.sleeps) == 3 and info.value.kind == "server"


def test_backoff_is_bounded_by_cap_and_grows():
    policy = RetryPolicy(base=0.5, cap=3.0, rng=random.Random(7))
    for n in range(1, 30):
        ceiling = min(3.0, 0.5 * 2 ** (n - 1))
        samples = [policy.delay(n) for dummy in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
    # full jitter really spreads: late retries use most of the cap range
    late = [policy.delay(10) for dummy in range(500)]
    assert max(late) > 2.5 and min(late) < 0.5


def test_retry_after_is_honoured_but_capped():
    policy = RetryPolicy(cap=2.0)
    assert policy.delay(1, AlicloudError("x", retry_after=1.25, kind="throttling")) == 1.25
    assert policy.delay(1, AlicloudError("x", retry_after=60, kind="throttling")) == 2.0


def test_deadline_stops_retrying():
    fake = FakeClock()
    func = flaky([server_exc()] * 50)
    policy = RetryPolicy(max_attempts=50, base=1, cap=1, sleep=fake.sleep, clock=fake.clock, rng=random.Random(3))
    with pytest.raises(AlicloudError):
        policy.call(func, _deadline=5.0)
    assert fake.now <= 5.0
    assert sum(fake.sleeps) <= 5.0


def test_max_attempts_must_be_positive():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
