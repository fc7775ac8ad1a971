# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The key checks of the encrypted_model role (tasks/key.yml), run by ansible-playbook on localhost.

One playbook runs every case as a block: the role's key tasks with the case's variables; the rescue
records which task refused. The key values travel in a 0600 vars file, never on the command line,
and none of them may appear in the output (the tasks that handle the key are no_log).
"""

import json
import os
import stat

import pytest

SAMPLE_KEY = "0Bn4Q1wwY9fN3P"  # printed in the public documentation; 14 characters
STRONG_KEY = "kV3pQ9zR7tW2xY5bN8mL4cH6"
SHORT_KEY = "Zx8Qw2Er5Ty7"   # 12 characters, not the sample key

WEAK = "Refuse a weak or malformed key"
MISSING = "Refuse a missing key"

# id -> (variables for the role's key tasks, expected outcome)
CASES = {
    "sample-key-refused-by-default": ({"encrypted_model_key": SAMPLE_KEY}, WEAK),
    "sample-key-accepted-when-allowed": ({"encrypted_model_key": SAMPLE_KEY, "encrypted_model_allow_sample_key": True}, "accepted"),
    "short-key-refused": ({"encrypted_model_key": SHORT_KEY}, WEAK),
    # the allowance names the sample key only: it must not lift the 16-character minimum
    "short-key-refused-even-when-sample-allowed": ({"encrypted_model_key": SHORT_KEY, "encrypted_model_allow_sample_key": True}, WEAK),
    "sample-key-with-suffix-refused-when-allowed": ({"encrypted_model_key": SAMPLE_KEY + "x", "encrypted_model_allow_sample_key": True}, WEAK),
    "strong-key-accepted": ({"encrypted_model_key": STRONG_KEY}, "accepted"),
    "two-line-key-refused": ({"encrypted_model_key": STRONG_KEY + "\n" + STRONG_KEY}, WEAK),
    "no-key-refused": ({"encrypted_model_key": ""}, MISSING),
    "generated-key-accepted": ({"encrypted_model_key": "", "encrypted_model_key_generate": True}, "accepted"),
}

ROLE_VARS = ("encrypted_model_key", "encrypted_model_allow_sample_key", "encrypted_model_key_generate", "encrypted_model_key_path")


def playbook(outcomes_file):
    tasks = [{"name": "No outcome yet", "ansible.builtin.set_fact": {"outcomes": {}}}]
    for case_id in CASES:
        role_vars = {name: "{{ cases['%s']['%s'] }}" % (case_id, name) for name in ROLE_VARS}
        tasks.append({
            "name": "Case " + case_id,
            "block": [
                {"name": "Run the key tasks", "ansible.builtin.include_role": {
                    "name": "confidential_ai.ack.encrypted_model", "tasks_from": "key"}, "vars": role_vars},
                {"name": "Accepted", "ansible.builtin.set_fact": {
                    "outcomes": "{{ outcomes | combine({'%s': 'accepted'}) }}" % case_id}},
            ],
            "rescue": [
                {"name": "Refused", "ansible.builtin.set_fact": {
                    "outcomes": "{{ outcomes | combine({'%s': ansible_failed_task.name}) }}" % case_id}},
            ],
        })
    tasks.append({"name": "Write the outcomes", "ansible.builtin.copy": {
        "content": "{{ outcomes | to_json }}", "dest": outcomes_file, "mode": "0600"}})
    return [{"name": "encrypted_model key checks", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}, "tasks": tasks}]


@pytest.fixture(scope="module")
def run(tmp_path_factory, ansible_playbook):
    tmp = tmp_path_factory.mktemp("encrypted_model_key")
    key_file = str(tmp / "secrets" / "model.key")
    cases = {}
    for case_id, (role_vars, dummy) in CASES.items():
        values = {"encrypted_model_key": "", "encrypted_model_allow_sample_key": False,
                  "encrypted_model_key_generate": False, "encrypted_model_key_path": key_file}
        values.update(role_vars)
        cases[case_id] = values
    vars_path = str(tmp / "vars.json")
    fd = os.open(vars_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"cases": cases}, handle)
    outcomes_file = str(tmp / "outcomes.json")
    playbook_path = str(tmp / "playbook.json")
    with open(playbook_path, "w", encoding="utf-8") as handle:
        json.dump(playbook(outcomes_file), handle)
    proc = ansible_playbook(playbook_path, tmp, extra_args=["-e", "@" + vars_path])
    with open(outcomes_file, encoding="utf-8") as handle:
        outcomes = json.load(handle)
    return outcomes, proc, key_file


@pytest.mark.parametrize("case_id", list(CASES))
def test_outcome(run, case_id):
    outcomes, dummy, dummy2 = run
    assert outcomes.get(case_id) == CASES[case_id][1], "%s: %s" % (case_id, outcomes.get(case_id))


def test_no_key_in_the_output(run):
    dummy, proc, key_file = run
    output = proc.stdout + proc.stderr
    with open(key_file, encoding="utf-8") as handle:
        generated = handle.read()
    for key in (SAMPLE_KEY, STRONG_KEY, SHORT_KEY, generated):
        assert key not in output


def test_generated_key_file(run):
    dummy, dummy2, key_file = run
    mode = stat.S_IMODE(os.stat(key_file).st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(os.stat(os.path.dirname(key_file)).st_mode) == 0o700
    with open(key_file, encoding="utf-8") as handle:
        key = handle.read()
    assert len(key) == 32 and key.isalnum(), "not a 32-character alphanumeric key without newline"
