#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: trustee_resource
short_description: Store or delete a secret resource in the Trustee KBS
version_added: 0.1.0
description:
  - Stores a resource (for example the model decryption key) in the Key Broker Service of a
    Trustee 1.5.2 server under C(<repository>/<type>/<tag>), or deletes it.
  - O(mode=api) goes through the Trustee gateway admin API
    (C(POST/DELETE /api/kbs/v0/resource/...)) with an EdDSA admin token minted from
    O(admin_key) or O(admin_key_path) where the module runs, usually the controller
    (C(delegate_to=localhost)). The private key is never sent anywhere.
  - O(mode=file) writes the file C(<repository_dir>/<repository>/<type>/<tag>) on the host the
    module runs on, which must be the Trustee host. The KBS reads the file on every request, so
    no restart is needed.
  - The bytes are stored exactly as given; no trailing newline is added or removed.
  - "Idempotence: the admin API cannot read a resource back (a read returns it encrypted to an
    attested TEE key). In O(mode=api) the module keeps an HMAC-SHA256 of the content, keyed with a
    key derived from the admin private key, in O(state_file) on the host where it runs, and
    uploads only when the resource is not listed or the HMAC differs. Without O(state_file) it
    uploads on every run and reports a change. In O(mode=file) it compares the file."
author:
  - confidential_ai.ack contributors (@confidential-ai)
extends_documentation_fragment:
  - confidential_ai.ack.trustee
  - confidential_ai.ack.attributes
  - confidential_ai.ack.attributes.ACTIONS
options:
  key_id:
    description:
      - The resource id, C(<repository>/<type>/<tag>) or C(kbs:///<repository>/<type>/<tag>),
        for example V(default/aliyun/model-decryption-key).
      - Exactly three segments, each matching C([A-Za-z0-9_-][A-Za-z0-9_.-]*).
    type: str
    required: true
    aliases: [resource, id]
  state:
    description:
      - V(present) stores the content, V(absent) deletes the resource.
    type: str
    choices: [present, absent]
    default: present
  content:
    description:
      - The resource bytes, as a string (encoded as UTF-8). Mutually exclusive with O(src).
      - Not logged. Note that Ansible templating and C(lookup('file')) can strip a trailing newline.
    type: str
  src:
    description:
      - Path of a file, on the host where the module runs, holding the resource bytes.
    type: path
  mode:
    description:
      - V(api) uses the gateway admin API; V(file) writes the KBS repository file on this host.
    type: str
    choices: [api, file]
    default: api
  repository_dir:
    description:
      - The KBS LocalFs repository directory (C(dir_path) of the C(resource) plugin), for O(mode=file).
      - It must exist; the module does not create it.
    type: path
    default: /opt/trustee/kbs/repository
  file_mode:
    description:
      - Permissions of the resource file in O(mode=file). The file is owned by root when the
        module runs as root. New intermediate directories get C(0700).
    type: str
    choices: ['0600', '0640']
    default: '0600'
  state_file:
    description:
      - For O(mode=api), a JSON file on the host where the module runs that keeps an HMAC of each
        resource stored through this module, so that a repeated run can report no change.
      - Written with mode C(0600). It holds no secret and no plain hash of the content.
    type: path
notes:
  - With O(mode=api), O(url) and one of O(admin_key) or O(admin_key_path) are required.
  - Tested against the Trustee 1.5.2 stand-in of this collection's test suite, not against a real Trustee.
  - The admin API of Trustee 1.5.2 overwrites the resource on every C(POST); the comparison above is what avoids needless writes.
seealso:
  - module: confidential_ai.ack.trustee_policy
  - module: confidential_ai.ack.trustee_info
"""

EXAMPLES = r"""
- name: Import the model key through the gateway admin API
  confidential_ai.ack.trustee_resource:
    url: https://trustee.example.com:8081
    ca_path: /etc/pki/trustee-ca.pem
    admin_key: "{{ vault_trustee_admin_key }}"
    key_id: kbs:///default/aliyun/model-decryption-key
    content: "{{ vault_model_password }}"
    state_file: "{{ playbook_dir }}/.trustee-state.json"
  delegate_to: localhost
  register: model_key

- name: Write the key file on the Trustee host instead (no API, no audit record)
  confidential_ai.ack.trustee_resource:
    mode: file
    key_id: default/aliyun/model-decryption-key
    src: /root/model-key.bin
  become: true

- name: Delete a resource
  confidential_ai.ack.trustee_resource:
    url: https://trustee.example.com:8081
    admin_key_path: ~/.config/trustee/admin.key
    key_id: default/aliyun/old-key
    state: absent
    state_file: "{{ playbook_dir }}/.trustee-state.json"
  delegate_to: localhost
"""

RETURN = r"""
key_id:
  description: The resource id as C(<repository>/<type>/<tag>).
  returned: always
  type: str
  sample: default/aliyun/model-decryption-key
key_uri:
  description: The resource as a C(kbs:///) URI, the form workloads use.
  returned: always
  type: str
  sample: kbs:///default/aliyun/model-decryption-key
mode:
  description: How the resource was handled, V(api) or V(file).
  returned: always
  type: str
  sample: api
existed:
  description: Whether the resource existed before the module ran (listed by the KBS, or the file existed).
  returned: always
  type: bool
  sample: true
content_compared:
  description:
    - How the content was compared. V(hmac) (state file), V(file) (file contents), V(none)
      (nothing to compare with, so the content was written), V(not_applicable) (O(state=absent)).
  returned: always
  type: str
  sample: hmac
path:
  description: The resource file on the Trustee host.
  returned: when O(mode=file)
  type: str
  sample: /opt/trustee/kbs/repository/default/aliyun/model-decryption-key
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.confidential_ai.ack.plugins.module_utils.trustee import (
    HAS_CRYPTOGRAPHY,
    TrusteeClient,
    TrusteeError,
    content_digest,
    key_id_path,
    key_id_uri,
    load_admin_key,
    parse_key_id,
    read_state,
    state_key,
    trustee_argument_spec,
    write_state,
)


def decide_api(state, listed, known_digest, digest):
    """Pure decision for O(mode=api): returns (changed, content_compared)."""
    if state == "absent":
        return listed, "not_applicable"
    if not listed:
        return True, "hmac" if known_digest is not None else "none"
    if known_digest is None:
        return True, "none"
    return known_digest != digest, "hmac"


def decide_file(state, current, desired, current_mode, desired_mode):
    """Pure decision for O(mode=file): returns (changed, content_compared)."""
    if state == "absent":
        return current is not None, "not_applicable"
    if current is None:
        return True, "file"
    return current != desired or current_mode != desired_mode, "file"


def _diff(key, existed, present_after, content_state):
    before = "key_id: %s\npresent: %s\n" % (key, str(existed).lower())
    after = "key_id: %s\npresent: %s\n" % (key, str(present_after).lower())
    if content_state:
        before += "content: (not shown)\n"
        after += "content: (not shown, %s)\n" % content_state
    return {"before": before, "after": after, "before_header": "kbs:///" + key, "after_header": "kbs:///" + key}


def _content(module):
    if module.params["content"] is not None:
        return to_bytes(module.params["content"], errors="surrogate_or_strict")
    src = module.params["src"]
    try:
        with open(src, "rb") as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        module.fail_json(msg="src %s cannot be read: %s" % (src, to_native(exc)))
    return None


def run_api(module, segments, content):
    params = module.params
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))
    admin_key = load_admin_key(params["admin_key"], params["admin_key_path"])
    client = TrusteeClient(params["url"], admin_key, params["validate_certs"], params["ca_path"], params["timeout"], params["retries"])
    listed = tuple(segments) in client.list_resources()
    state_path = params["state_file"]
    state = read_state(state_path) if state_path else None
    skey = state_key(params["url"], segments)
    known = state["resources"].get(skey) if state is not None else None
    digest = content_digest(admin_key, params["url"], segments, content) if content is not None else None
    changed, compared = decide_api(params["state"], listed, known, digest)
    if params["state"] == "present" and state is None and listed:
        module.warn("trustee_resource: without state_file the stored content cannot be compared; it is uploaded on every run")
    if changed and not module.check_mode:
        if params["state"] == "present":
            client.set_resource(segments, content)
        else:
            try:
                client.delete_resource(segments)
            except TrusteeError as exc:
                # 1.5.2 answers 500 when the file is already gone (deleted in between)
                if exc.status != 500 or "no such file" not in (exc.body or "").lower():
                    raise
    if state is not None and not module.check_mode:
        wanted = digest if params["state"] == "present" else None
        if state["resources"].get(skey) != wanted:
            if wanted is None:
                state["resources"].pop(skey, None)
            else:
                state["resources"][skey] = wanted
            try:
                write_state(state_path, state)
            except (IOError, OSError) as exc:
                module.fail_json(msg="state_file %s cannot be written: %s" % (state_path, to_native(exc)), changed=changed)
    return changed, compared, listed, {}


def run_file(module, segments, content):
    params = module.params
    repo_dir = params["repository_dir"]
    if not os.path.isdir(repo_dir):
        module.fail_json(msg="repository_dir %s does not exist: is Trustee installed on this host, and is this the "
                             "KBS resource plugin's dir_path?" % repo_dir)
    path = os.path.join(repo_dir, *segments)
    desired_mode = int(params["file_mode"], 8)
    current = current_mode = None
    if os.path.lexists(path):
        if not os.path.isfile(path) or os.path.islink(path):
            module.fail_json(msg="%s exists and is not a regular file" % path)
        with open(path, "rb") as handle:
            current = handle.read()
        current_mode = os.stat(path).st_mode & 0o7777
    changed, compared = decide_file(params["state"], current, content, current_mode, desired_mode)
    if os.geteuid() == 0 and current is not None and params["state"] == "present":
        info = os.stat(path)
        changed = changed or info.st_uid != 0 or info.st_gid != 0
    if changed and not module.check_mode:
        if params["state"] == "absent":
            os.unlink(path)
        else:
            _write_file(path, content, desired_mode, repo_dir)
    return changed, compared, current is not None, {"path": path}


def _write_file(path, content, mode, repo_dir):
    directory = os.path.dirname(path)
    missing = []
    while not os.path.isdir(directory) and directory != repo_dir:
        missing.append(directory)
        directory = os.path.dirname(directory)
    for new_dir in reversed(missing):
        os.mkdir(new_dir, 0o700)
    tmp = os.path.join(os.path.dirname(path), ".%s.tmp%d" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    argument_spec = trustee_argument_spec()
    argument_spec.update(
        key_id=dict(type="str", required=True, aliases=["resource", "id"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        content=dict(type="str", no_log=True),
        src=dict(type="path"),
        mode=dict(type="str", default="api", choices=["api", "file"]),
        repository_dir=dict(type="path", default="/opt/trustee/kbs/repository"),
        file_mode=dict(type="str", default="0600", choices=["0600", "0640"]),
        state_file=dict(type="path"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("content", "src"), ("admin_key", "admin_key_path")],
        required_if=[
            ("state", "present", ("content", "src"), True),
            ("mode", "api", ("url",)),
            ("mode", "api", ("admin_key", "admin_key_path"), True),
        ],
        supports_check_mode=True,
    )
    params = module.params
    try:
        segments = parse_key_id(params["key_id"])
    except TrusteeError as exc:
        module.fail_json(msg=exc.message)
    content = _content(module) if params["state"] == "present" else None
    key = key_id_path(segments)
    result = dict(changed=False, key_id=key, key_uri=key_id_uri(segments), mode=params["mode"])
    try:
        if params["mode"] == "api":
            changed, compared, existed, extra = run_api(module, segments, content)
        else:
            changed, compared, existed, extra = run_file(module, segments, content)
    except TrusteeError as exc:
        module.fail_json(msg=exc.message, status=exc.status, **result)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot store resource %s: %s" % (key, to_native(exc)), **result)
    result.update(extra)
    result.update(changed=changed, existed=existed, content_compared=compared)
    if module._diff:
        present_after = params["state"] == "present"
        content_state = None
        if present_after:
            content_state = "unchanged" if not changed else ("written" if compared != "none" or not existed else "rewritten, not compared")
        result["diff"] = _diff(key, existed, present_after, content_state)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
