"""trustee_resource through ansible-playbook against the Trustee stand-in (test double) on loopback."""

import hashlib
import json
import os
import stat

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conftest import run_playbook, write_self_signed

SECRET = "Zx9-model-password_#42"


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


LADDER = r"""
- name: Bad key ids are refused
  confidential_ai.ack.trustee_resource:
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    key_id: "{{ item.id }}"
    content: "{{ secret }}"
    state_file: "{{ state_file }}"
  loop:
    - {id: "default/aliyun", msg: "exactly three segments"}
    - {id: "default/aliyun/key/extra", msg: "exactly three segments"}
    - {id: "default/a b/key", msg: "segment 'a b' is invalid"}
    - {id: "kbs://trustee/default/aliyun/key", msg: "empty host"}
  register: bad_ids
  ignore_errors: true
- name: Each bad id failed with its message
  ansible.builtin.assert:
    that:
      - item.failed
      - item.item.msg in item.msg
      - item.msg is search('^key_id')
  loop: "{{ bad_ids.results }}"
  loop_control:
    label: "{{ item.item.id }}"

- name: A key of the wrong type is refused
  confidential_ai.ack.trustee_resource:
    url: "{{ url }}"
    admin_key: "{{ rsa_key }}"
    key_id: "{{ key_id }}"
    content: "{{ secret }}"
  register: wrong_type
  ignore_errors: true
- name: Another Ed25519 key is refused by the KBS (401)
  confidential_ai.ack.trustee_resource:
    url: "{{ url }}"
    admin_key: "{{ other_key }}"
    key_id: "{{ key_id }}"
    content: "{{ secret }}"
  register: wrong_key
  ignore_errors: true
- name: Both failed clearly
  ansible.builtin.assert:
    that:
      - wrong_type.failed
      - "'admin_key must be an Ed25519 private key' in wrong_type.msg"
      - "'got an RSA key' in wrong_type.msg"
      - wrong_key.failed
      - wrong_key.status == 401
      - "'HTTP 401' in wrong_key.msg"

- name: Check mode predicts a change and writes nothing
  confidential_ai.ack.trustee_resource: &set
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    key_id: "kbs:///{{ key_id }}"
    content: "{{ secret }}"
    state_file: "{{ state_file }}"
  check_mode: true
  register: r_check
- name: Nothing stored in check mode
  ansible.builtin.stat:
    path: "{{ repository }}/{{ key_id }}"
  register: st_check
- name: Check mode result
  ansible.builtin.assert:
    that:
      - r_check.changed
      - not st_check.stat.exists
      - r_check.key_id == key_id
      - r_check.key_uri == 'kbs:///' + key_id

- name: Set
  confidential_ai.ack.trustee_resource: *set
  register: r_set
  diff: true
- name: Set again is a no-op
  confidential_ai.ack.trustee_resource: *set
  register: r_noop
- name: Changed content
  confidential_ai.ack.trustee_resource:
    <<: *set
    content: "{{ secret }}-rotated"
  register: r_change
- name: Stored bytes
  ansible.builtin.slurp:
    src: "{{ repository }}/{{ key_id }}"
  register: stored
- name: Set, no-op and change
  ansible.builtin.assert:
    that:
      - r_set.changed
      - not r_set.existed
      - r_set.content_compared == 'none'
      - secret not in (r_set.diff | to_json)
      - not r_noop.changed
      - r_noop.content_compared == 'hmac'
      - r_change.changed
      - (stored.content | b64decode) == secret + '-rotated'

- name: Delete in check mode
  confidential_ai.ack.trustee_resource: &delete
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    key_id: "{{ key_id }}"
    state: absent
    state_file: "{{ state_file }}"
  check_mode: true
  register: r_del_check
- name: Delete
  confidential_ai.ack.trustee_resource: *delete
  register: r_del
- name: Delete again
  confidential_ai.ack.trustee_resource: *delete
  register: r_del_again
- name: Deleted once
  ansible.builtin.assert:
    that:
      - r_del_check.changed
      - r_del.changed
      - not r_del_again.changed
"""


def test_api_ladder(stack, tmp_path):
    key_id = "default/aliyun/model-decryption-key"
    state_file = tmp_path / "state" / "trustee.json"
    result = run_playbook(str(tmp_path), LADDER, {
        "url": stack.gateway_url + "/api", "admin_key_path": stack.admin_key_path, "key_id": key_id,
        "secret": SECRET, "state_file": str(state_file), "repository": stack.repository,
        "rsa_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "other_key": _pem(ed25519.Ed25519PrivateKey.generate()),
    }, verbosity=1)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "failed=0" in result.stdout
    assert SECRET not in result.stdout and SECRET not in result.stderr  # content is no_log
    assert not os.path.exists(os.path.join(stack.repository, key_id))
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    state = json.loads(state_file.read_text())
    assert state["resources"] == {}  # the entry went with the delete


def test_state_file_detects_deletion_behind_its_back(stack, tmp_path):
    key_id = "default/aliyun/behind-back"
    tasks = r"""
- name: Set
  confidential_ai.ack.trustee_resource:
    url: "{{ url }}"
    admin_key_path: "{{ admin_key_path }}"
    key_id: "{{ key_id }}"
    content: "{{ secret }}"
    state_file: "{{ state_file }}"
  register: r
- name: Report
  ansible.builtin.copy:
    content: "{{ r.changed }}"
    dest: "{{ out }}"
"""
    extra = {"url": stack.gateway_url, "admin_key_path": stack.admin_key_path, "key_id": key_id, "secret": SECRET,
             "state_file": str(tmp_path / "s.json"), "out": str(tmp_path / "out")}
    assert run_playbook(str(tmp_path), tasks, extra).returncode == 0
    assert (tmp_path / "out").read_text() == "True"
    assert run_playbook(str(tmp_path), tasks, extra).returncode == 0
    assert (tmp_path / "out").read_text() == "False"
    state = json.loads((tmp_path / "s.json").read_text())
    (entry,) = state["resources"].values()
    assert len(entry) == 64 and entry != hashlib.sha256(SECRET.encode()).hexdigest()
    assert SECRET not in (tmp_path / "s.json").read_text()
    os.remove(os.path.join(stack.repository, key_id))
    assert run_playbook(str(tmp_path), tasks, extra).returncode == 0
    assert (tmp_path / "out").read_text() == "True"
    with open(os.path.join(stack.repository, key_id), encoding="utf-8") as handle:
        assert handle.read() == SECRET


def test_file_mode_ladder_and_src_bytes(stack, tmp_path):
    src = tmp_path / "key.bin"
    src.write_bytes(b"line one\nwith trailing newline\n")
    tasks = r"""
- name: Write by file (check mode)
  confidential_ai.ack.trustee_resource: &file
    mode: file
    repository_dir: "{{ repository }}"
    key_id: default/filegrp/key
    src: "{{ src }}"
  check_mode: true
  register: f_check
- name: Write by file
  confidential_ai.ack.trustee_resource: *file
  register: f_set
- name: Again
  confidential_ai.ack.trustee_resource: *file
  register: f_noop
- name: The KBS lists the file-written resource
  confidential_ai.ack.trustee_info:
    url: "{{ url }}"
    gather: [resources]
  register: info
- name: Remove
  confidential_ai.ack.trustee_resource:
    mode: file
    repository_dir: "{{ repository }}"
    key_id: default/filegrp/gone
    state: absent
  register: f_absent
- name: Results
  ansible.builtin.assert:
    that:
      - f_check.changed
      - f_set.changed
      - not f_noop.changed
      - "'default/filegrp/key' in info.resources"
      - not f_absent.changed
"""
    result = run_playbook(str(tmp_path), tasks, {"repository": stack.repository, "src": str(src), "url": stack.gateway_url})
    assert result.returncode == 0, result.stdout[-5000:]
    path = os.path.join(stack.repository, "default", "filegrp", "key")
    with open(path, "rb") as handle:
        assert handle.read() == b"line one\nwith trailing newline\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and os.stat(path).st_uid == os.geteuid()


def test_tls_gateway_with_ca_path_and_untrusted_refusal(stack_factory, tmp_path):
    cert, key = write_self_signed(str(tmp_path), "gw")
    stack = stack_factory(gateway_tls=(cert, key), gateway_insecure_http=False)
    assert stack.gateway_url.startswith("https://")
    tasks = r"""
- name: Trusted through ca_path
  confidential_ai.ack.trustee_resource:
    url: "{{ url }}"
    ca_path: "{{ ca }}"
    admin_key_path: "{{ admin_key_path }}"
    key_id: default/tls/key
    content: "{{ secret }}"
  register: ok
- name: Untrusted certificate
  confidential_ai.ack.trustee_info:
    url: "{{ url }}"
    retries: 0
  register: untrusted
  ignore_errors: true
- name: Results
  ansible.builtin.assert:
    that:
      - ok.changed
      - untrusted.failed
      - "'CERTIFICATE_VERIFY_FAILED' in untrusted.msg or 'certificate verify failed' in untrusted.msg"
"""
    result = run_playbook(str(tmp_path), tasks, {"url": stack.gateway_url, "ca": cert, "admin_key_path": stack.admin_key_path, "secret": SECRET})
    assert result.returncode == 0, result.stdout[-5000:]
    with open(os.path.join(stack.repository, "default", "tls", "key"), encoding="utf-8") as handle:
        assert handle.read() == SECRET
