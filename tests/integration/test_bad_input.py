# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input is refused with a message that names the field, before any mutating cloud call.

The cases are a table: every ``bad_input/*.yml`` file holds a list of

    - id: ecs_instance-disk-too-small      # unique, names the module and the mistake
      module: ecs_instance                 # short name in confidential_ai.ack
      args: {name: x, system_disk_size: 20}
      credentials: default                 # default | none | wrong_secret (optional)
      expect: system_disk_size             # a substring the failure message must contain, or a list of them

All cases run as tasks of one ansible-playbook (a module run is slow; a playbook per case would
be slower still) against one emulator, and its request log must show no mutating call at all.
"""

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

from sandbox.alicloud.testing import EmulatorProcess

HERE = os.path.dirname(os.path.abspath(__file__))


def load_cases():
    cases = []
    for path in sorted(glob.glob(os.path.join(HERE, "bad_input", "*.yml"))):
        with open(path, encoding="utf-8") as f:
            for case in yaml.safe_load(f) or []:
                case["file"] = os.path.basename(path)
                cases.append(case)
    return cases


CASES = load_cases()


def test_the_table_is_sound():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    for case in CASES:
        assert set(case) >= {"id", "module", "args", "expect"}, case
        assert case.get("credentials", "default") in ("default", "none", "wrong_secret"), case
        expect = case["expect"] if isinstance(case["expect"], list) else [case["expect"]]
        assert expect and all(isinstance(e, str) and e for e in expect), case


def module_args(case, emu):
    ak, sk = emu.static_key
    args = {"region": emu.region, "protocol": "http",
            "endpoints": {"ecs": emu.api_endpoint, "cs": emu.api_endpoint, "oss": emu.oss_endpoint}}
    credentials = case.get("credentials", "default")
    if credentials == "default":
        args.update(access_key=ak, secret_key=sk)
    elif credentials == "wrong_secret":
        args.update(access_key=ak, secret_key=sk + "x")
    args.update(case["args"])
    return args


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not CASES:
        pytest.skip("no bad-input cases yet")
    tmp = tmp_path_factory.mktemp("bad_input")
    with EmulatorProcess(state_dir=str(tmp / "emulator")) as emu:
        tasks = [{
            "name": case["id"],
            "confidential_ai.ack." + case["module"]: module_args(case, emu),
            "ignore_errors": True,
        } for case in CASES]
        playbook = [{"name": "bad input", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
        path = tmp / "playbook.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the sandbox secret
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(playbook, f)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
        env.update({
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
            "ALIBABA_CLOUD_CONFIG_FILE": str(tmp / "no-aliyun-config.json"),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        })
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", str(path)],
            env=env, capture_output=True, text=True, timeout=1800, check=False, cwd=str(tmp),
        )
        mutating = emu.mutating_requests()
        secret = emu.static_key[1]
    assert secret not in proc.stdout + proc.stderr, "a secret reached the output"
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    by_name = {t["task"]["name"]: t["hosts"].get("localhost", {}) for t in report["plays"][0]["tasks"]}
    return by_name, mutating


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_refused_with_a_clear_message(case, results):
    by_name, _mutating = results
    result = by_name[case["id"]]
    assert result.get("failed"), "%s was accepted: %s" % (case["id"], result)
    for expect in case["expect"] if isinstance(case["expect"], list) else [case["expect"]]:
        assert expect in result.get("msg", ""), "message %r does not name %r" % (result.get("msg"), expect)


def test_no_mutating_call_was_made(results):
    _by_name, mutating = results
    assert mutating == [], mutating
