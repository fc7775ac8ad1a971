"""Shared fixture for the role tests: run ansible-playbook on localhost with this checkout's collections."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION_ROOT = os.path.dirname(os.path.dirname(HERE))


def collections_path():
    """The directory above ansible_collections/ when the checkout sits in one, else the caller's setting."""
    parts = COLLECTION_ROOT.split(os.sep)
    if len(parts) > 3 and parts[-3] == "ansible_collections":
        return os.sep.join(parts[:-3])
    return os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")


@pytest.fixture(scope="session")
def ansible_playbook():
    """Return a function that runs a playbook against localhost and fails the test when it fails."""

    def run(playbook_path, cwd, extra_args=(), extra_env=None, timeout=600):
        env = dict(os.environ)
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": collections_path(),
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
        })
        env.update(extra_env or {})
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", playbook_path]
        proc = subprocess.run(command + list(extra_args), capture_output=True, text=True, env=env, cwd=str(cwd),
                              check=False, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
        return proc

    return run
