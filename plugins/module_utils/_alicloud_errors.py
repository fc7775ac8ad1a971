# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One error type for every Alibaba Cloud SDK failure.

The Tea SDKs (ECS, CS) and oss2 raise unrelated exception hierarchies with the same facts spread
over differently named attributes. ``AlicloudError.from_exception`` reads them into one shape
(operation, code, message, HTTP status, request id) so that modules, the retry policy and
``fail_json`` never look at SDK classes themselves.
"""

from __future__ import annotations


class AlicloudError(Exception):
    """A failed cloud call, with what the service said about it.

    ``kind`` is how the retry policy classifies it: ``throttling``, ``server`` (5xx),
    ``connection`` (no answer, connection refused or dropped, timeout) or ``client`` (anything
    the caller has to fix: validation, not found, permissions, wrong state).
    """

    def __init__(self, message, operation=None, code=None, http_status=None, request_id=None,
                 kind="client", retry_after=None, cause=None):
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.kind = kind
        # seconds, when the service said how long to wait (x-acs-retry-after)
        self.retry_after = retry_after
        self.cause = cause

    def __str__(self):
        parts = []
        if self.operation:
            parts.append("Failed to %s" % self.operation)
        if self.code:
            parts.append(self.code)
        parts.append(self.message)
        text = ": ".join(p for p in parts if p)
        if self.http_status:
            text += " (HTTP %s" % self.http_status
            text += ", request id %s)" % self.request_id if self.request_id else ")"
        elif self.request_id:
            text += " (request id %s)" % self.request_id
        if self.hint:
            text += "; %s" % self.hint
        return text

    @property
    def hint(self):
        """What the user should check for an answer that means the credentials are wrong, else None."""
        return auth_hint(self.code)

    def to_dict(self):
        """The machine-readable part of a failure, returned under ``error`` by ``fail_json``."""
        return {
            "operation": self.operation,
            "code": self.code,
            "message": self.message,
            "http_status": self.http_status,
            "request_id": self.request_id,
        }

    @property
    def retryable(self):
        return self.kind in ("throttling", "server", "connection")

    @classmethod
    def from_exception(cls, exc, operation=None):
        """Turn any SDK (or socket) exception into an AlicloudError. Never raises."""
        if isinstance(exc, AlicloudError):
            if operation and not exc.operation:
                exc.operation = operation
            return exc
        oss = _from_oss(exc)
        if oss is not None:
            return cls(operation=operation, cause=exc, **oss)
        tea = _from_tea(exc)
        if tea is not None:
            return cls(operation=operation, cause=exc, **tea)
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return cls(str(exc) or exc.__class__.__name__, operation=operation, kind="connection", cause=exc)
        return cls("%s: %s" % (exc.__class__.__name__, exc), operation=operation, kind="client", cause=exc)


# Answers that mean the credentials (not the request) are wrong, and the options to check. Matched on the code,
# exactly or as a prefix (InvalidAccessKeyId.NotFound, InvalidSecurityToken.Expired, ...). ECS/CS and OSS codes.
_SOURCES = "or the ALIBABA_CLOUD_* variables or CLI profile they came from"
_AUTH_HINTS = (
    ("SignatureDoesNotMatch", "check secret_key/access_key (%s): the secret key does not belong to the access key" % _SOURCES),
    ("InvalidAccessKeyId", "check access_key (%s): the service does not know this access key or it is disabled" % _SOURCES),
    ("Forbidden.AccessKeyDisabled", "check access_key (%s): this access key is disabled" % _SOURCES),
    ("MissingSecurityToken", "check security_token (%s): an STS access key needs its token" % _SOURCES),
    ("InvalidSecurityToken",
     "check security_token/access_key (%s): the STS token is invalid, expired or not for this access key" % _SOURCES),
    ("SecurityTokenExpired", "check security_token (%s): the STS token has expired" % _SOURCES),
    ("InvalidTimeStamp.Expired", "check the clock of the host the module runs on: it is more than 15 minutes off"),
    ("RequestTimeTooSkewed", "check the clock of the host the module runs on: it is more than 15 minutes off"),
)


def auth_hint(code):
    """The hint for an authentication failure code (which option to check), or None."""
    if not code:
        return None
    for prefix, hint in _AUTH_HINTS:
        if code == prefix or code.startswith(prefix + "."):
            return hint
    return None


# Codes the services use for flow control and transient states. Terraform's provider retries the
# same family (any code containing "Throttling", ServiceUnavailable) plus "token still processing".
_THROTTLING_MARKERS = ("Throttling", "Throttled", "SlowDown", "Flow.Control")
_TRANSIENT_CODES = frozenset((
    "ServiceUnavailable",
    "InternalError",
    "InternalError.Unknown",
    "UnknownError",
    "LastTokenProcessing",
    "Idempotence.Processing",
    "OperationConflict",
    "IncorrectVpcStatus",
))
_TRANSIENT_MESSAGES = (
    "The current status of the resource does not support this operation, please retry",
)


def classify(code, http_status, message=None):
    """Return the retry kind of an answered request: throttling, server or client."""
    code = code or ""
    if any(marker in code for marker in _THROTTLING_MARKERS):
        return "throttling"
    if code in _TRANSIENT_CODES:
        return "server"
    if http_status is not None and http_status >= 500:
        return "server"
    if message and any(m in message for m in _TRANSIENT_MESSAGES):
        return "server"
    return "client"


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _from_tea(exc):
    """Facts of a Tea SDK exception (alibabacloud_tea_openapi / darabonba), or None."""
    name = getattr(exc, "name", None)
    module = type(exc).__module__ or ""
    if not (module.startswith("darabonba") or module.startswith("alibabacloud") or module.startswith("Tea")):
        return None
    if name == "UnretryableException" or "Unretryable" in type(exc).__name__:
        inner = getattr(exc, "inner_exception", None)
        text = str(inner) if inner is not None else str(exc)
        # A body that is not JSON (an HTML error page from a proxy) is also an UnretryableException;
        # only transport failures are worth retrying.
        is_parse = "json" in text.lower() and "parse" in text.lower()
        return {"message": text, "kind": "client" if is_parse else "connection"}
    status = _int_or_none(getattr(exc, "status_code", None) or getattr(exc, "statusCode", None))
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    request_id = getattr(exc, "request_id", None)
    if request_id in ("None", ""):
        request_id = None
    # The Tea message is "code: <status>, <Message> request id: <id>"; keep the service's words.
    if isinstance(message, str) and message.startswith("code: ") and ", " in message:
        message = message.split(", ", 1)[1]
        if request_id and message.endswith(" request id: %s" % request_id):
            message = message[: -len(" request id: %s" % request_id)]
    retry_after_ms = _int_or_none(getattr(exc, "retry_after", None))
    kind = "throttling" if retry_after_ms else classify(code, status, message)
    return {
        "message": message,
        "code": code,
        "http_status": status,
        "request_id": request_id,
        "kind": kind,
        "retry_after": retry_after_ms / 1000.0 if retry_after_ms else None,
    }


def _from_oss(exc):
    """Facts of an oss2 exception, or None."""
    if not (type(exc).__module__ or "").startswith("oss2"):
        return None
    status = _int_or_none(getattr(exc, "status", None))
    if status == -2:  # RequestError: no answer (connection refused, reset, timeout)
        return {"message": str(getattr(exc, "exception", exc)), "kind": "connection"}
    if status is not None and status < 0:  # ClientError (-1), InconsistentError (-3: CRC mismatch)
        return {"message": str(exc), "kind": "client", "request_id": getattr(exc, "request_id", None) or None}
    code = getattr(exc, "code", None) or None
    message = getattr(exc, "message", None) or str(exc)
    return {
        "message": message,
        "code": code,
        "http_status": status,
        "request_id": getattr(exc, "request_id", None) or None,
        "kind": classify(code, status, message),
    }
