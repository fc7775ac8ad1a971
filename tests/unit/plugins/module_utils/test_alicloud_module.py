# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.confidential_ai.ack.plugins.module_utils.alicloud import (
    AlicloudModule,
    client_token,
    split_endpoint,
)

pytest.importorskip("alibabacloud_ecs20140526")


class Failed(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs.get("msg"))
        self.kwargs = kwargs


@pytest.fixture(autouse=True)
def fail_raises(monkeypatch):
    def fail_json(self, **kwargs):  # pylint: disable=unused-argument
        raise Failed(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_REGION_ID", "ALIBABA_CLOUD_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_CONFIG_FILE", "/nonexistent/aliyun.json")
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")


def make(**args):
    with patch_module_args(args):
        return AlicloudModule(argument_spec=dict(name=dict(type="str")), supports_check_mode=True)


def test_bad_region_is_refused_before_anything_else():
    with pytest.raises(Failed, match="region 'Beijing' is not a region id"):
        make(region="Beijing", access_key="ak", secret_key="sk")


def test_missing_credentials_fail_with_a_clear_message():
    module = make(region="cn-beijing")
    with pytest.raises(Failed, match="no Alibaba Cloud credentials found"):
        module.client("ecs")


def test_secret_key_is_no_log_and_registered():
    module = make(region="cn-beijing", access_key="ak", secret_key="s3cr3t-value", security_token="t0ken-value")
    module.client("ecs")
    assert "s3cr3t-value" in module.no_log_values and "t0ken-value" in module.no_log_values


def test_loopback_endpoint_builds_a_client_and_drops_proxies(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    module = make(region="cn-beijing", access_key="ak", secret_key="sk", endpoints={"ecs": "http://127.0.0.1:18080"})
    client = module.client("ecs")
    assert client._endpoint == "127.0.0.1:18080"  # pylint: disable=protected-access
    assert client._protocol == "http"  # pylint: disable=protected-access
    import os
    assert "HTTPS_PROXY" not in os.environ and "http_proxy" not in os.environ


def test_default_endpoint_follows_region():
    module = make(region="cn-beijing", access_key="ak", secret_key="sk")
    assert module.client("cs")._endpoint == "cs.cn-beijing.aliyuncs.com"  # pylint: disable=protected-access


def test_oss_client_is_a_bucket_with_v4_auth():
    module = make(region="cn-beijing", access_key="ak", secret_key="sk", endpoints={"oss": "http://127.0.0.1:19000"})
    bucket = module.client("oss", bucket="models")
    assert bucket.bucket_name == "models" and bucket.endpoint == "http://127.0.0.1:19000"


def test_split_endpoint():
    assert split_endpoint("127.0.0.1:1", "https") == ("127.0.0.1:1", "https")
    assert split_endpoint("http://127.0.0.1:1", "https") == ("127.0.0.1:1", "http")
    with pytest.raises(ValueError):
        split_endpoint("http://h/path", "https")


def test_client_token_is_stable_and_distinct():
    a = client_token("ecs_instance", {"name": "n1", "zone": "cn-beijing-l"})
    assert a == client_token("ecs_instance", {"zone": "cn-beijing-l", "name": "n1"})
    assert a != client_token("ecs_instance", {"name": "n2", "zone": "cn-beijing-l"})
    assert a != client_token("ack_cluster", {"name": "n1", "zone": "cn-beijing-l"})
    assert len(a) <= 64
