# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import socket

import pytest

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_credentials import (
    CredentialsError,
    resolve_credentials,
    running_on_ecs,
)

ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "env-ak",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-sk",
    "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token",
    "ALIBABA_CLOUD_REGION_ID": "cn-shanghai",
}


def no_role(*_args):
    raise AssertionError("the ECS RAM role must not be asked for here")


@pytest.fixture
def cli_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "current": "work",
        "profiles": [
            {"name": "work", "mode": "AK", "access_key_id": "work-ak", "access_key_secret": "work-sk", "region_id": "cn-beijing"},
            {"name": "sts", "mode": "StsToken", "access_key_id": "sts-ak", "access_key_secret": "sts-sk",
             "sts_token": "sts-token", "region_id": "cn-hangzhou"},
            {"name": "role", "mode": "EcsRamRole", "ram_role_name": "worker-role", "region_id": "cn-beijing"},
            {"name": "arn", "mode": "RamRoleArn", "access_key_id": "a", "access_key_secret": "b"},
            {"name": "broken", "mode": "AK"},
        ],
    }))
    return str(path)


def params(**kw):
    base = {"access_key": None, "secret_key": None, "security_token": None, "profile": None, "region": None}
    base.update(kw)
    return base


def test_explicit_keys_win_over_everything(cli_config):
    creds, region = resolve_credentials(params(access_key="p-ak", secret_key="p-sk", region="cn-beijing"),
                                        environ=ENV, cli_config=cli_config, on_ecs=True, ram_role_fetcher=no_role)
    assert (creds.access_key, creds.secret_key, creds.security_token, creds.source) == ("p-ak", "p-sk", None, "parameters")
    assert region == "cn-beijing"


def test_access_key_without_secret_is_an_error():
    with pytest.raises(CredentialsError, match="together"):
        resolve_credentials(params(access_key="p-ak"), environ={}, on_ecs=False)


def test_profile_option_wins_over_environment(cli_config):
    creds, region = resolve_credentials(params(profile="sts"), environ=ENV, cli_config=cli_config, on_ecs=False)
    assert (creds.access_key, creds.security_token, creds.source) == ("sts-ak", "sts-token", "profile:sts")
    # the environment's region still beats the profile's
    assert region == "cn-shanghai"


def test_environment_beats_cli_current_profile(cli_config):
    creds, region = resolve_credentials(params(), environ=ENV, cli_config=cli_config, on_ecs=False)
    assert (creds.access_key, creds.secret_key, creds.security_token) == ("env-ak", "env-sk", "env-token")
    assert creds.source == "environment" and region == "cn-shanghai"


def test_cli_current_profile_and_its_region(cli_config):
    creds, region = resolve_credentials(params(), environ={}, cli_config=cli_config, on_ecs=False)
    assert (creds.access_key, creds.source, region) == ("work-ak", "profile:work", "cn-beijing")


def test_profile_named_by_environment(cli_config):
    creds, region = resolve_credentials(params(), environ={"ALIBABA_CLOUD_PROFILE": "sts"}, cli_config=cli_config, on_ecs=False)
    assert (creds.access_key, region) == ("sts-ak", "cn-hangzhou")


def test_region_option_beats_environment_and_profile(cli_config):
    _creds, region = resolve_credentials(params(region="cn-wulanchabu"), environ=ENV, cli_config=cli_config, on_ecs=False)
    assert region == "cn-wulanchabu"


def test_ecs_ram_role_profile_uses_the_fetcher(cli_config):
    seen = []

    def fetcher(role, source):
        seen.append((role, source))
        return resolve_credentials(params(access_key="r-ak", secret_key="r-sk"), environ={})[0]

    creds, _region = resolve_credentials(params(profile="role"), environ={}, cli_config=cli_config, on_ecs=False, ram_role_fetcher=fetcher)
    assert seen == [("worker-role", "profile:role")] and creds.access_key == "r-ak"


@pytest.mark.parametrize("name,match", [("arn", "mode RamRoleArn"), ("broken", "has no access_key_id"), ("missing", "not in")])
def test_unusable_profiles_are_named(cli_config, name, match):
    with pytest.raises(CredentialsError, match=match):
        resolve_credentials(params(profile=name), environ={}, cli_config=cli_config, on_ecs=False)


def test_nothing_found_off_ecs_never_touches_the_network(tmp_path, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(CredentialsError, match="no Alibaba Cloud credentials found"):
        resolve_credentials(params(), environ={}, cli_config=str(tmp_path / "none.json"), on_ecs=False, ram_role_fetcher=no_role)


def test_on_ecs_the_ram_role_is_the_last_resort(tmp_path):
    calls = []

    def fetcher(role, source):
        calls.append((role, source))
        return resolve_credentials(params(access_key="role-ak", secret_key="role-sk"), environ={})[0]

    creds, _region = resolve_credentials(params(), environ={"ALIBABA_CLOUD_ECS_METADATA": "my-role"},
                                         cli_config=str(tmp_path / "none.json"), on_ecs=True, ram_role_fetcher=fetcher)
    assert calls == [("my-role", "ecs_ram_role")] and creds.access_key == "role-ak"


def test_metadata_can_be_disabled_on_ecs(tmp_path):
    with pytest.raises(CredentialsError):
        resolve_credentials(params(), environ={"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"},
                            cli_config=str(tmp_path / "none.json"), on_ecs=True, ram_role_fetcher=no_role)


def test_running_on_ecs_reads_dmi(tmp_path):
    vendor = tmp_path / "sys_vendor"
    vendor.write_text("Alibaba Cloud\n")
    other = tmp_path / "product_name"
    other.write_text("KVM\n")
    assert running_on_ecs((str(tmp_path / "absent"), str(vendor)))
    assert not running_on_ecs((str(other),))
    assert not running_on_ecs((str(tmp_path / "absent"),))


def test_repr_never_shows_the_secret():
    creds, dummy = resolve_credentials(params(access_key="ak", secret_key="very-secret", security_token="tok"), environ={})
    assert "very-secret" not in repr(creds) and "tok'" not in repr(creds)
