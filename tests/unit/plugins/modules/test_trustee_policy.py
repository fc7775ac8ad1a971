# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.confidential_ai.ack.plugins.modules import trustee_policy

pytest.importorskip("cryptography")


class Exited(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs.get("msg"))
        self.kwargs = kwargs


@pytest.fixture(autouse=True)
def capture(monkeypatch):
    def leave(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(dict(kwargs, _failed=kwargs.get("failed", False)))

    def fail(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(dict(kwargs, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", leave)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail)


def run(args):
    with patch_module_args(args):
        with pytest.raises(Exited) as info:
            trustee_policy.main()
    return info.value.kwargs


@pytest.mark.parametrize("current, desired, state, expected", [
    ("a", "a", "present", False),
    ("a", "a\n", "present", True),
    (None, "a", "present", True),
    ("a", None, "absent", True),
    (None, None, "absent", False),
])
def test_policy_needs_change(current, desired, state, expected):
    assert trustee_policy.policy_needs_change(current, desired, state) is expected


def test_needs_something_to_do():
    result = run({"url": "http://127.0.0.1:9", "admin_key": "x"})
    assert result["failed"] and "resource_policy" in result["msg"]


def test_present_policy_needs_text():
    result = run({"url": "http://127.0.0.1:9", "admin_key": "x", "attestation_policies": [{"id": "default"}]})
    assert result["failed"] and "policy" in result["msg"]


def test_bad_policy_id_named_in_error():
    result = run({"url": "http://127.0.0.1:9", "admin_key": "x", "attestation_policies": [{"id": "../x", "policy": "p"}]})
    assert result["failed"] and "attestation_policies[0].id" in result["msg"]


def test_wrong_key_type_is_refused_before_any_request():
    result = run({"url": "http://127.0.0.1:9", "admin_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                  "resource_policy": "package policy\n"})
    assert result["failed"] and result["msg"].startswith("admin_key")
