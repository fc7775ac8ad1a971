# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run every integration target against the local stand-ins, as ansible-playbook does for users.

A target is a role under ``targets/`` (the ansible-test layout). Each one runs in its own
``ansible-playbook`` process against a fresh Alibaba Cloud emulator, with the endpoints and keys
in a 0600 vars file (never on a command line):

    alicloud_test:         credentials/endpoints for module_defaults of group/confidential_ai.ack.alicloud
    alicloud_test_admin:   the emulator's admin URL (faults, clock, request log)

Targets that need something else say so in their ``aliases`` file (``needs/emulator`` is implied).
"""

import json
import os
import subprocess
import sys

import pytest

from sandbox.alicloud.testing import EmulatorProcess

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = sorted(
    name for name in os.listdir(os.path.join(HERE, "targets"))
    if os.path.isfile(os.path.join(HERE, "targets", name, "tasks", "main.yml"))
)

PLAYBOOK = """---
- name: Integration target {target}
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {vars_file}
  roles:
    - {target}
"""


def run_target(target, tmp_path, emu):
    ak, sk = emu.static_key
    variables = {
        "alicloud_test": {
            "access_key": ak,
            "secret_key": sk,
            "region": emu.region,
            "protocol": "http",
            "endpoints": {"ecs": emu.api_endpoint, "cs": emu.api_endpoint, "oss": emu.oss_endpoint},
        },
        "alicloud_test_admin": emu.admin_url,
        "integration_output_dir": str(tmp_path),
    }
    vars_file = tmp_path / "vars.json"
    fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(variables, f)
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(PLAYBOOK.format(target=target, vars_file=vars_file))

    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    env.update({
        "ANSIBLE_ROLES_PATH": os.path.join(HERE, "targets"),
        "ANSIBLE_FORCE_COLOR": "false",
        "ANSIBLE_NOCOLOR": "true",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CONFIG_FILE": str(tmp_path / "no-aliyun-config.json"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    })
    bindir = os.path.dirname(sys.executable)
    proc = subprocess.run(
        [os.path.join(bindir, "ansible-playbook"), "-i", "localhost,", str(playbook)],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=900, check=False,
    )
    return proc


@pytest.mark.parametrize("target", TARGETS)
def test_target(target, tmp_path):
    with EmulatorProcess(state_dir=str(tmp_path / "emulator")) as emu:
        proc = run_target(target, tmp_path, emu)
        secret = emu.static_key[1]
    output = proc.stdout + proc.stderr
    # the secret key must never reach the output of a run, even a failing one
    assert secret not in output
    assert proc.returncode == 0, output[-6000:]
    assert "failed=0" in proc.stdout
