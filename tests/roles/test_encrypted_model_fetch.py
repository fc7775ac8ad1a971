# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ModelScope fetch and the plaintext removal of the encrypted_model role, on localhost.

The hub is out of reach, so the ModelScope client is a stand-in: the role's venv is made in
advance with a ``modelscope`` 1.33.0 distribution record (so the role's pip task finds the
pinned client installed and reaches no index) and a ``modelscope`` script that writes a small
model naming the model id and revision it was asked for, and logs each call. Everything else -
the preflight's venv check, the download markers, the removal of a foreign download, the cleanup -
is the role's own tasks run by ansible-playbook.
"""

import json
import os
import subprocess
import sys
import sysconfig

import pytest

FAKE_CLIENT = """#!/bin/sh
# modelscope download --model M --revision R --local_dir D (stand-in)
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift ;;
    --revision) revision=$2; shift ;;
    --local_dir) dir=$2; shift ;;
  esac
  shift
done
mkdir -p "$dir/nested" "$MODELSCOPE_CACHE"
printf '%s@%s' "$model" "$revision" > "$dir/config.json"
head -c 5000 /dev/zero > "$dir/nested/weights.bin"
echo "$model@$revision cache=$MODELSCOPE_CACHE" >> "$(dirname "$0")/../../calls.log"
"""

PLAYBOOK = """\
- name: encrypted_model fetch and cleanup
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    encrypted_model_source: modelscope
    encrypted_model_work_dir: "%(work)s"
    encrypted_model_oss_bucket: cai-models
    encrypted_model_remove_plaintext: true
  tasks:
    - name: Preflight (the venv check)
      ansible.builtin.include_role: {name: confidential_ai.ack.encrypted_model, tasks_from: preflight}
      vars: {encrypted_model_modelscope_id: org/model-a, encrypted_model_modelscope_revision: v1}

    - name: First download of model A
      ansible.builtin.include_role: {name: confidential_ai.ack.encrypted_model, tasks_from: fetch}
      vars: {encrypted_model_modelscope_id: org/model-a, encrypted_model_modelscope_revision: v1}

    - name: Leave a stray file in the download
      ansible.builtin.copy: {content: stray, dest: "%(work)s/plain/stray.txt", mode: "0600"}

    - name: Same model and revision again (no download)
      ansible.builtin.include_role: {name: confidential_ai.ack.encrypted_model, tasks_from: fetch}
      vars: {encrypted_model_modelscope_id: org/model-a, encrypted_model_modelscope_revision: v1}

    - name: Snapshot after the repeat
      ansible.builtin.find: {paths: "%(work)s", hidden: true, recurse: true}
      register: after_repeat

    - name: Same model, other revision (the old download is removed first)
      ansible.builtin.include_role: {name: confidential_ai.ack.encrypted_model, tasks_from: fetch}
      vars: {encrypted_model_modelscope_id: org/model-a, encrypted_model_modelscope_revision: v2}

    - name: Snapshot after the new revision
      ansible.builtin.find: {paths: "%(work)s", hidden: true, recurse: true}
      register: after_revision

    - name: Other model with the same revision name
      ansible.builtin.include_role: {name: confidential_ai.ack.encrypted_model, tasks_from: fetch}
      vars: {encrypted_model_modelscope_id: org/model-b, encrypted_model_modelscope_revision: v2}

    - name: Snapshot after the other model
      ansible.builtin.find: {paths: "%(work)s", hidden: true, recurse: true}
      register: after_model

    - name: Remove the plaintext (as after a successful encryption and upload)
      ansible.builtin.include_role: {name: confidential_ai.ack.encrypted_model, tasks_from: cleanup}
      vars: {encrypted_model_modelscope_id: org/model-b, encrypted_model_modelscope_revision: v2}

    - name: Snapshot after the cleanup
      ansible.builtin.find: {paths: "%(work)s", hidden: true, recurse: true, file_type: any}
      register: after_cleanup

    - name: Write the snapshots
      ansible.builtin.copy:
        dest: "%(out)s"
        mode: "0600"
        content: >-
          {{ {'after_repeat': after_repeat.files | map(attribute='path') | list,
              'after_revision': after_revision.files | map(attribute='path') | list,
              'after_model': after_model.files | map(attribute='path') | list,
              'after_cleanup': after_cleanup.files | map(attribute='path') | list} | to_json }}
"""


def make_fake_client(work):
    """A venv with a modelscope 1.33.0 record and the stand-in script."""
    venv = os.path.join(work, "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=300)
    purelib = sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv})
    dist = os.path.join(purelib, "modelscope-1.33.0.dist-info")
    os.makedirs(dist)
    with open(os.path.join(dist, "METADATA"), "w", encoding="utf-8") as handle:
        handle.write("Metadata-Version: 2.1\nName: modelscope\nVersion: 1.33.0\n")
    with open(os.path.join(dist, "INSTALLER"), "w", encoding="utf-8") as handle:
        handle.write("pip\n")
    with open(os.path.join(dist, "RECORD"), "w", encoding="utf-8") as handle:
        handle.write("")
    script = os.path.join(venv, "bin", "modelscope")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(FAKE_CLIENT)
    os.chmod(script, 0o755)


@pytest.fixture(scope="module")
def run(tmp_path_factory, ansible_playbook):
    tmp = tmp_path_factory.mktemp("encrypted_model_fetch")
    work = str(tmp / "work")
    os.makedirs(work, 0o700)
    make_fake_client(work)
    out = str(tmp / "snapshots.json")
    playbook = str(tmp / "playbook.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write(PLAYBOOK % {"work": work, "out": out})
    # the pinned client must be found installed, never fetched
    ansible_playbook(playbook, tmp, extra_env={"PIP_NO_INDEX": "1"}, timeout=900)
    with open(out, encoding="utf-8") as handle:
        snapshots = json.load(handle)
    with open(os.path.join(work, "calls.log"), encoding="utf-8") as handle:
        calls = handle.read().splitlines()
    rel = {name: sorted(os.path.relpath(p, work) for p in paths if not os.path.relpath(p, work).startswith("venv"))
           for name, paths in snapshots.items()}
    return rel, calls, work


def markers(paths):
    return [p for p in paths if p.startswith(".download")]


def test_downloads_once_per_model_and_revision(run):
    dummy, calls, work = run
    assert [c.split(" ")[0] for c in calls] == ["org/model-a@v1", "org/model-a@v2", "org/model-b@v2"], calls
    # the client's cache stays in the private work directory
    assert all(c.endswith("cache=" + os.path.join(work, "modelscope-cache")) for c in calls), calls


def test_repeat_keeps_the_download(run):
    rel, dummy, dummy2 = run
    assert "plain/stray.txt" in rel["after_repeat"]
    assert len(markers(rel["after_repeat"])) == 1 and markers(rel["after_repeat"])[0].startswith(".downloaded-")


def test_new_revision_replaces_the_download(run):
    rel, dummy, dummy2 = run
    assert "plain/stray.txt" not in rel["after_revision"], "files of the old revision were mixed into the new one"
    assert len(markers(rel["after_revision"])) == 1
    assert markers(rel["after_revision"]) != markers(rel["after_repeat"]), "the marker is not keyed on the revision"


def test_other_model_same_revision_replaces_the_download(run):
    rel, dummy, dummy2 = run
    assert len(markers(rel["after_model"])) == 1
    assert markers(rel["after_model"]) != markers(rel["after_revision"]), "the marker is not keyed on the model id"
    assert "plain/config.json" in rel["after_model"]


def test_cleanup_removes_the_plaintext(run):
    rel, dummy, dummy2 = run
    leftovers = [p for p in rel["after_cleanup"] if p.startswith(("plain", "modelscope-cache", ".download"))]
    assert not leftovers, leftovers
