# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a module's Alibaba Cloud credentials and region come from.

The order follows the aliyun CLI, which our users already know: explicit options, then a named
profile, then the environment, then the CLI's current profile, then the ECS RAM role. The RAM
role is only tried on an ECS instance (read from DMI, a local file), so nothing ever probes the
metadata address from a laptop or a CI machine.
"""

from __future__ import annotations

import json
import os

ENV_ACCESS_KEY = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SECRET_KEY = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
ENV_REGION = "ALIBABA_CLOUD_REGION_ID"
ENV_PROFILE = "ALIBABA_CLOUD_PROFILE"
ENV_CLI_CONFIG = "ALIBABA_CLOUD_CONFIG_FILE"
ENV_METADATA_DISABLED = "ALIBABA_CLOUD_ECS_METADATA_DISABLED"
ENV_RAM_ROLE = "ALIBABA_CLOUD_ECS_METADATA"

DEFAULT_CLI_CONFIG = "~/.aliyun/config.json"
DMI_FILES = ("/sys/class/dmi/id/sys_vendor", "/sys/class/dmi/id/product_name")


class CredentialsError(Exception):
    """No usable credentials, or a profile that cannot be used; the message says what to fix."""


class Credentials:
    """A resolved key pair; ``source`` says where it came from (never the secret itself)."""

    __slots__ = ("access_key", "secret_key", "security_token", "source")

    def __init__(self, access_key, secret_key, security_token=None, source="parameters"):
        self.access_key = access_key
        self.secret_key = secret_key
        self.security_token = security_token or None
        self.source = source

    def __repr__(self):
        return "Credentials(access_key=%r, source=%r, sts=%s)" % (self.access_key, self.source, bool(self.security_token))


def running_on_ecs(dmi_files=DMI_FILES):
    """True when the DMI tables say this machine is an Alibaba Cloud ECS instance."""
    for path in dmi_files:
        try:
            with open(path, encoding="utf-8") as f:
                if "alibaba cloud" in f.read().lower():
                    return True
        except OSError:
            continue
    return False


def load_cli_profile(name=None, path=None, environ=None):
    """Return the named (or current) profile dict of the aliyun CLI config, or None if no file."""
    environ = os.environ if environ is None else environ
    path = os.path.expanduser(path or environ.get(ENV_CLI_CONFIG) or DEFAULT_CLI_CONFIG)
    if not os.path.exists(path):
        if name:
            raise CredentialsError("profile %r was asked for, but the aliyun CLI config %s does not exist" % (name, path))
        return None
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise CredentialsError("cannot read the aliyun CLI config %s: %s" % (path, exc)) from exc
    wanted = name or config.get("current") or "default"
    for profile in config.get("profiles", []):
        if profile.get("name") == wanted:
            return profile
    if name:
        known = ", ".join(sorted(p.get("name", "?") for p in config.get("profiles", []))) or "none"
        raise CredentialsError("profile %r is not in %s (profiles: %s)" % (name, path, known))
    return None


def _from_profile(profile, ram_role_fetcher):
    mode = profile.get("mode", "AK")
    label = "profile:%s" % profile.get("name", "?")
    if mode == "AK":
        if not (profile.get("access_key_id") and profile.get("access_key_secret")):
            raise CredentialsError("%s (mode AK) has no access_key_id/access_key_secret" % label)
        return Credentials(profile["access_key_id"], profile["access_key_secret"], source=label)
    if mode == "StsToken":
        if not (profile.get("access_key_id") and profile.get("access_key_secret") and profile.get("sts_token")):
            raise CredentialsError("%s (mode StsToken) needs access_key_id, access_key_secret and sts_token" % label)
        return Credentials(profile["access_key_id"], profile["access_key_secret"], profile["sts_token"], source=label)
    if mode == "EcsRamRole":
        return ram_role_fetcher(profile.get("ram_role_name") or None, label)
    raise CredentialsError(
        "%s uses mode %s, which this collection does not read; use AK, StsToken or EcsRamRole, "
        "or pass access_key/secret_key/security_token" % (label, mode))


def fetch_ecs_ram_role(role_name=None, source="ecs_ram_role"):
    """Temporary credentials of the instance's RAM role, through the official credentials SDK."""
    try:
        from alibabacloud_credentials.client import Client as CredClient
        from alibabacloud_credentials.models import Config as CredConfig
    except ImportError as exc:
        raise CredentialsError("the ECS RAM role needs the alibabacloud-credentials Python package") from exc
    try:
        cred = CredClient(CredConfig(type="ecs_ram_role", role_name=role_name)).get_credential()
    except Exception as exc:  # pylint: disable=broad-except
        raise CredentialsError("cannot get credentials of the ECS RAM role: %s" % exc) from exc
    return Credentials(cred.access_key_id, cred.access_key_secret, cred.security_token, source=source)


def resolve_credentials(params, environ=None, cli_config=None, on_ecs=None, ram_role_fetcher=fetch_ecs_ram_role):
    """Return ``(Credentials, region)`` for a module's parameters.

    Order: ``access_key``/``secret_key`` options; the ``profile`` option; the environment
    (``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET``/``SECURITY_TOKEN``); the CLI profile named by
    ``ALIBABA_CLOUD_PROFILE`` or the config's ``current``; the ECS RAM role, only on ECS and unless
    ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true``. Region: the ``region`` option, then
    ``ALIBABA_CLOUD_REGION_ID``, then the profile's ``region_id``.
    """
    environ = os.environ if environ is None else environ
    profile = None
    creds = None
    if params.get("access_key") or params.get("secret_key"):
        if not (params.get("access_key") and params.get("secret_key")):
            raise CredentialsError("access_key and secret_key must be given together")
        creds = Credentials(params["access_key"], params["secret_key"], params.get("security_token"), source="parameters")
    elif params.get("profile"):
        profile = load_cli_profile(params["profile"], cli_config, environ)
        creds = _from_profile(profile, ram_role_fetcher)
    elif environ.get(ENV_ACCESS_KEY) and environ.get(ENV_SECRET_KEY):
        creds = Credentials(environ[ENV_ACCESS_KEY], environ[ENV_SECRET_KEY], environ.get(ENV_SECURITY_TOKEN), source="environment")
    else:
        profile = load_cli_profile(environ.get(ENV_PROFILE) or None, cli_config, environ)
        if profile is not None:
            creds = _from_profile(profile, ram_role_fetcher)
    if creds is None:
        metadata_disabled = environ.get(ENV_METADATA_DISABLED, "").lower() == "true"
        if on_ecs is None:
            on_ecs = running_on_ecs()
        if on_ecs and not metadata_disabled:
            creds = ram_role_fetcher(environ.get(ENV_RAM_ROLE) or None, "ecs_ram_role")
    if creds is None:
        raise CredentialsError(
            "no Alibaba Cloud credentials found: set access_key and secret_key (or %s and %s), "
            "or profile (a profile of the aliyun CLI config), or run on an ECS instance with a RAM role"
            % (ENV_ACCESS_KEY, ENV_SECRET_KEY))
    region = params.get("region") or environ.get(ENV_REGION) or (profile or {}).get("region_id") or None
    return creds, region
