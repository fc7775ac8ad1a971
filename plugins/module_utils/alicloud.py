# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared cloud layer: one argument spec, one client factory, one retry policy, one error path.

Every module that talks to ECS, ACK (CS) or OSS builds an ``AlicloudModule`` instead of an
``AnsibleModule``. It merges the credential and endpoint options (documented once in the
``confidential_ai.ack.alicloud`` doc fragment), resolves credentials the way the aliyun CLI does,
builds the official SDK clients, and runs every call through the retry policy::

    module = AlicloudModule(argument_spec=dict(name=dict(type='str', required=True)),
                            supports_check_mode=True)
    ecs = module.client('ecs')
    try:
        resp = module.call(ecs.describe_instances, request, operation='describe instances')
    except AlicloudError as e:
        module.fail_alicloud(e)
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_credentials import (
    CredentialsError,
    resolve_credentials,
)
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_retry import RetryPolicy
from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_waiter import wait_for

TEA_IMPORT_ERROR = None
try:
    from alibabacloud_tea_openapi.utils_models import Config as TeaConfig
except ImportError:
    TeaConfig = None
    TEA_IMPORT_ERROR = traceback.format_exc()

OSS_IMPORT_ERROR = None
try:
    import oss2
except ImportError:
    oss2 = None
    OSS_IMPORT_ERROR = traceback.format_exc()

__all__ = ("AlicloudModule", "AlicloudError", "alicloud_argument_spec", "client_token", "wait_for")

SERVICES = ("ecs", "cs", "oss")
REGION_RE = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def alicloud_argument_spec():
    """The options every cloud module takes; documented by the ``alicloud`` doc fragment."""
    return dict(
        # the key id is not a secret (the secret key is), but its name trips the no_log heuristics
        access_key=dict(type="str", aliases=["access_key_id"], no_log=False),
        secret_key=dict(type="str", no_log=True, aliases=["access_key_secret"]),
        security_token=dict(type="str", no_log=True, aliases=["sts_token"]),
        profile=dict(type="str"),
        region=dict(type="str", aliases=["region_id"]),
        endpoints=dict(
            type="dict",
            options=dict(
                ecs=dict(type="str"),
                cs=dict(type="str"),
                oss=dict(type="str"),
            ),
        ),
        protocol=dict(type="str", default="https", choices=["https", "http"]),
        api_timeout=dict(type="int", default=30),
        max_attempts=dict(type="int", default=8),
    )


def client_token(kind, identity):
    """A deterministic idempotency token for creating ``kind`` with ``identity`` (a dict).

    The same desired resource always gets the same token, so a create retried after a lost answer,
    or a playbook re-run after a failure mid-create, makes the service return the resource it
    already made instead of a twin. 64 characters, the ECS and CS maximum.
    """
    payload = json.dumps({"kind": kind, "identity": identity}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:64]


def split_endpoint(endpoint, protocol):
    """``host[:port]`` and the protocol for a Tea client; accepts ``http://host:port`` too."""
    match = re.match(r"^(https?)://([^/]+)/?$", endpoint)
    if match:
        return match.group(2), match.group(1)
    if "/" in endpoint:
        raise ValueError("endpoint %r must be host[:port] or scheme://host[:port] without a path" % endpoint)
    return endpoint, protocol


def _is_loopback(host):
    host = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AlicloudModule(AnsibleModule):
    """An AnsibleModule with the cloud options merged in and the cloud plumbing attached."""

    def __init__(self, argument_spec=None, **kwargs):
        spec = alicloud_argument_spec()
        spec.update(argument_spec or {})
        super().__init__(argument_spec=spec, **kwargs)
        self._credentials = None
        self._region = None
        self._clients = {}
        self.retry = RetryPolicy(max_attempts=max(1, self.params["max_attempts"]))
        region = self.params.get("region")
        if region and not REGION_RE.match(region):
            self.fail_json(msg="region %r is not a region id such as cn-beijing" % region)

    # -- credentials -----------------------------------------------------------------------
    def _resolve(self):
        if self._credentials is None:
            try:
                self._credentials, self._region = resolve_credentials(self.params)
            except CredentialsError as exc:
                self.fail_json(msg=str(exc))
            if self._credentials.secret_key:
                self.no_log_values.add(self._credentials.secret_key)
            if self._credentials.security_token:
                self.no_log_values.add(self._credentials.security_token)
        return self._credentials

    @property
    def region(self):
        """The region every client uses; fails the module when none is known."""
        self._resolve()
        if not self._region:
            self.fail_json(msg="no region: set region (or ALIBABA_CLOUD_REGION_ID, or region_id in the CLI profile)")
        if not REGION_RE.match(self._region):
            self.fail_json(msg="region %r is not a region id such as cn-beijing" % self._region)
        return self._region

    def endpoint(self, service):
        """The endpoint override for ``service`` or None."""
        return (self.params.get("endpoints") or {}).get(service) or None

    # -- clients -----------------------------------------------------------------------------
    def client(self, service, bucket=None):
        """An official SDK client: ``ecs``/``cs`` (Tea clients) or ``oss`` (an ``oss2.Bucket``)."""
        if service not in SERVICES:
            raise ValueError("unknown service %r" % service)
        key = (service, bucket)
        if key not in self._clients:
            self._clients[key] = self._build_oss(bucket) if service == "oss" else self._build_tea(service)
        return self._clients[key]

    def _drop_proxies_for(self, host):
        # The Tea SDK sends every request, loopback included, through HTTP(S)_PROXY and ignores
        # NO_PROXY. A local endpoint (the emulator) must never be proxied.
        if _is_loopback(host):
            for var in _PROXY_VARS:
                os.environ.pop(var, None)

    def _build_tea(self, service):
        if TeaConfig is None:
            self.fail_json(msg=missing_required_lib("alibabacloud-tea-openapi"), exception=TEA_IMPORT_ERROR)
        creds = self._resolve()
        region = self.region
        endpoint = self.endpoint(service)
        protocol = self.params["protocol"]
        if endpoint:
            try:
                endpoint, protocol = split_endpoint(endpoint, protocol)
            except ValueError as exc:
                self.fail_json(msg="endpoints.%s: %s" % (service, exc))
            self._drop_proxies_for(endpoint)
        else:
            endpoint = "%s.%s.aliyuncs.com" % (service, region)
        timeout_ms = self.params["api_timeout"] * 1000
        config = TeaConfig(
            access_key_id=creds.access_key,
            access_key_secret=creds.secret_key,
            security_token=creds.security_token,
            endpoint=endpoint,
            protocol=protocol,
            region_id=region,
            connect_timeout=min(timeout_ms, 10000),
            read_timeout=timeout_ms,
            user_agent="confidential_ai.ack",
        )
        try:
            if service == "ecs":
                from alibabacloud_ecs20140526.client import Client
            else:
                from alibabacloud_cs20151215.client import Client
        except ImportError:
            package = "alibabacloud-ecs20140526" if service == "ecs" else "alibabacloud-cs20151215"
            self.fail_json(msg=missing_required_lib(package), exception=traceback.format_exc())
        return Client(config)

    def _build_oss(self, bucket):
        if oss2 is None:
            self.fail_json(msg=missing_required_lib("oss2"), exception=OSS_IMPORT_ERROR)
        if not bucket:
            raise ValueError("an OSS client needs a bucket name")
        creds = self._resolve()
        region = self.region
        endpoint = self.endpoint("oss") or "oss-%s.aliyuncs.com" % region
        if "://" not in endpoint:
            endpoint = "%s://%s" % (self.params["protocol"], endpoint)
        if creds.security_token:
            auth = oss2.StsAuth(creds.access_key, creds.secret_key, creds.security_token, auth_version=oss2.AUTH_VERSION_4)
        else:
            auth = oss2.AuthV4(creds.access_key, creds.secret_key)
        return oss2.Bucket(auth, endpoint, bucket, region=region, connect_timeout=self.params["api_timeout"])

    # -- calls, waits and failures ------------------------------------------------------------
    def call(self, func, *args, **kwargs):
        """Run one SDK call through the retry policy. ``operation=`` names it in errors."""
        operation = kwargs.pop("operation", None)
        deadline = kwargs.pop("deadline", None)
        return self.retry.call(func, *args, _operation=operation, _deadline=deadline, **kwargs)

    def wait(self, fetch, is_done, timeout, delay=5.0, is_failed=None, describe=None, operation=None):
        """Poll ``fetch`` (retried on throttling) until done; bounded by ``timeout`` seconds."""
        return wait_for(fetch, is_done, timeout, delay=delay, is_failed=is_failed, describe=describe,
                        retry=self.retry, operation=operation, sleep=time.sleep, clock=time.monotonic)

    def fail_alicloud(self, error, msg=None, **result):
        """Fail with the API code, message, HTTP status and request id of ``error``."""
        if not isinstance(error, AlicloudError):
            error = AlicloudError.from_exception(error)
        text = "%s: %s" % (msg, error) if msg else str(error)
        if self.retry.history:
            result.setdefault("retries", len(self.retry.history))
        self.fail_json(msg=text, error=error.to_dict(), **result)
