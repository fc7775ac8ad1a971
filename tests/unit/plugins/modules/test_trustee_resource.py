# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import stat

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.confidential_ai.ack.plugins.modules import trustee_resource


class Exited(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs.get("msg"))
        self.kwargs = kwargs


class Failed(Exited):
    pass


@pytest.fixture(autouse=True)
def capture(monkeypatch):
    def exit_json(self, **kwargs):  # pylint: disable=unused-argument
        raise Exited(kwargs)

    def fail_json(self, **kwargs):  # pylint: disable=unused-argument
        raise Failed(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def run(args):
    with patch_module_args(args):
        with pytest.raises(Exited) as info:
            trustee_resource.main()
    return info.value


@pytest.mark.parametrize("state, listed, known, digest, expected", [
    ("present", False, None, "d", (True, "none")),
    ("present", False, "d", "d", (True, "hmac")),  # listed is what counts: deleted behind our back
    ("present", True, None, "d", (True, "none")),
    ("present", True, "d", "d", (False, "hmac")),
    ("present", True, "old", "d", (True, "hmac")),
    ("absent", True, "d", None, (True, "not_applicable")),
    ("absent", False, "d", None, (False, "not_applicable")),
])
def test_decide_api(state, listed, known, digest, expected):
    assert trustee_resource.decide_api(state, listed, known, digest) == expected


@pytest.mark.parametrize("state, current, desired, cmode, dmode, expected", [
    ("present", None, b"k", None, 0o600, (True, "file")),
    ("present", b"k", b"k", 0o600, 0o600, (False, "file")),
    ("present", b"k\n", b"k", 0o600, 0o600, (True, "file")),
    ("present", b"k", b"k", 0o644, 0o600, (True, "file")),
    ("absent", b"k", None, 0o600, 0o600, (True, "not_applicable")),
    ("absent", None, None, None, 0o600, (False, "not_applicable")),
])
def test_decide_file(state, current, desired, cmode, dmode, expected):
    assert trustee_resource.decide_file(state, current, desired, cmode, dmode) == expected


@pytest.mark.parametrize("key_id, fragment", [
    ("default/aliyun", "exactly three segments"),
    ("default/aliyun/a/b", "exactly three segments"),
    ("default/al iyun/k", "segment 'al iyun'"),
    ("kbs://host/default/a/b", "empty host"),
])
def test_bad_key_ids_are_refused(tmp_path, key_id, fragment):
    result = run({"key_id": key_id, "content": "x", "mode": "file", "repository_dir": str(tmp_path)})
    assert isinstance(result, Failed)
    assert result.kwargs["msg"].startswith("key_id") and fragment in result.kwargs["msg"]


def test_api_mode_needs_url_and_key():
    result = run({"key_id": "default/a/b", "content": "x"})
    assert isinstance(result, Failed) and "url" in result.kwargs["msg"]
    result = run({"key_id": "default/a/b", "content": "x", "url": "http://127.0.0.1:9"})
    assert isinstance(result, Failed) and "admin_key" in result.kwargs["msg"]


def test_present_needs_content_or_src(tmp_path):
    result = run({"key_id": "default/a/b", "mode": "file", "repository_dir": str(tmp_path)})
    assert isinstance(result, Failed) and "content" in result.kwargs["msg"] and "src" in result.kwargs["msg"]


def test_file_mode_ladder(tmp_path):
    repo = tmp_path / "repository"
    repo.mkdir()
    path = repo / "default" / "aliyun" / "model-decryption-key"
    base = {"key_id": "kbs:///default/aliyun/model-decryption-key", "mode": "file", "repository_dir": str(repo)}

    result = run(dict(base, content="s3cret", _ansible_check_mode=True))
    assert result.kwargs["changed"] is True and not path.exists()

    result = run(dict(base, content="s3cret", _ansible_diff=True))
    assert result.kwargs["changed"] is True and result.kwargs["existed"] is False
    assert path.read_bytes() == b"s3cret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert "s3cret" not in str(result.kwargs["diff"])
    assert result.kwargs["key_id"] == "default/aliyun/model-decryption-key"
    assert result.kwargs["path"] == str(path)

    assert run(dict(base, content="s3cret")).kwargs["changed"] is False

    result = run(dict(base, content="s3cret", file_mode="0640"))
    assert result.kwargs["changed"] is True and stat.S_IMODE(os.stat(path).st_mode) == 0o640

    src = tmp_path / "key.bin"
    src.write_bytes(b"new\n")
    result = run(dict(base, src=str(src), file_mode="0640"))
    assert result.kwargs["changed"] is True and path.read_bytes() == b"new\n"

    assert run(dict(base, state="absent", _ansible_check_mode=True)).kwargs["changed"] is True and path.exists()
    assert run(dict(base, state="absent")).kwargs["changed"] is True and not path.exists()
    assert run(dict(base, state="absent")).kwargs["changed"] is False


def test_file_mode_missing_repository_dir(tmp_path):
    result = run({"key_id": "default/a/b", "content": "x", "mode": "file", "repository_dir": str(tmp_path / "nope")})
    assert isinstance(result, Failed) and "repository_dir" in result.kwargs["msg"] and "does not exist" in result.kwargs["msg"]


def test_key_material_is_no_log(monkeypatch, tmp_path):
    """The module's own argument spec (not a copy) hides the resource content and the admin key."""
    built = []
    real = trustee_resource.AnsibleModule

    def recording(*args, **kwargs):
        module = real(*args, **kwargs)
        built.append((kwargs["argument_spec"], module))
        return module

    monkeypatch.setattr(trustee_resource, "AnsibleModule", recording)
    run({"key_id": "default/a/b", "content": "s3cret-content", "mode": "file", "repository_dir": str(tmp_path)})
    run({"key_id": "default/a/b", "content": "x", "url": "http://127.0.0.1:9", "admin_key": "s3cret-admin-key", "retries": 0, "timeout": 1})
    spec = built[0][0]
    assert {name for name, option in spec.items() if option.get("no_log")} == {"content", "admin_key"}
    assert "s3cret-content" in built[0][1].no_log_values
    assert "s3cret-admin-key" in built[1][1].no_log_values
