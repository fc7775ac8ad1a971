# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.confidential_ai.ack.plugins.modules import trustee_info


class Exited(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs.get("msg"))
        self.kwargs = kwargs


@pytest.fixture(autouse=True)
def capture(monkeypatch):
    def leave(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(kwargs)

    def fail(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(dict(kwargs, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", leave)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail)


def run(args):
    with patch_module_args(args):
        with pytest.raises(Exited) as info:
            trustee_info.main()
    return info.value.kwargs


def test_summarize_health():
    ok = {name: {"status": "ok"} for name in ("gateway", "kbs", "as", "rvps")}
    assert trustee_info.summarize_health(ok) == (True, [])
    assert trustee_info.summarize_health(dict(ok, rvps={"status": "error", "message": "x"})) == (False, ["rvps"])
    partial = dict(ok)
    del partial["as"]
    assert trustee_info.summarize_health(partial) == (False, ["as"])
    assert trustee_info.summarize_health(None) == (False, ["gateway", "kbs", "as", "rvps"])


def test_url_needed_for_api_gathering():
    result = run({"gather": ["health"]})
    assert result["failed"] and "url is required" in result["msg"]


def test_resource_policy_needs_admin_key():
    result = run({"url": "http://127.0.0.1:9", "gather": ["resource_policy"]})
    assert result["failed"] and "admin_key" in result["msg"]


def test_package_gathering_without_rpm_package(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    result = run({"gather": ["package"]})
    assert result.get("failed") is None and result["version"] is None and result["changed"] is False
