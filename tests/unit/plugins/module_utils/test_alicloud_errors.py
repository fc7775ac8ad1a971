# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_alicloud_errors.py: an authentication failure names the option to check."""

from __future__ import annotations

import pytest

from ansible_collections.confidential_ai.ack.plugins.module_utils._alicloud_errors import AlicloudError, auth_hint


@pytest.mark.parametrize("code, option", [
    ("SignatureDoesNotMatch", "check secret_key/access_key"),
    ("InvalidAccessKeyId.NotFound", "check access_key"),
    ("InvalidAccessKeyId.Inactive", "check access_key"),
    ("InvalidAccessKeyId", "check access_key"),  # OSS
    ("Forbidden.AccessKeyDisabled", "check access_key"),
    ("MissingSecurityToken", "check security_token"),
    ("InvalidSecurityToken.MismatchWithAccessKey", "check security_token/access_key"),
    ("InvalidSecurityToken.Expired", "check security_token"),
    ("InvalidTimeStamp.Expired", "clock"),
    ("RequestTimeTooSkewed", "clock"),
])
def test_auth_failures_name_the_option(code, option):
    assert option in auth_hint(code)
    err = AlicloudError("The request signature does not conform.", operation="describe zones", code=code, http_status=400,
                        request_id="REQ-1")
    text = str(err)
    assert text.startswith("Failed to describe zones: %s: The request signature does not conform. (HTTP 400, request id REQ-1); "
                           % code)
    assert option in text


@pytest.mark.parametrize("code", [None, "", "InvalidParameter", "Throttling.User", "SignatureDoesNotMatchX", "Forbidden.RAM"])
def test_other_codes_have_no_hint(code):
    assert auth_hint(code) is None
    assert "check " not in str(AlicloudError("msg", code=code))
