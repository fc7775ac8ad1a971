"""The trustee role's health check (tasks/verify.yml) against the stand-in in a systemd container.

The stand-in package as installed (plain HTTP gateway, the RPM's configuration) is enough for the
health check: it passes when all is well, and when one component is broken it fails, names that
component and its unit, and shows the journal of that unit only. Skips without podman or the
project's systemd image.
"""

import os
import subprocess
import sys

import pytest

from conftest import COLLECTIONS_PATHS, SystemdContainer

PLAYBOOK = """---
- hosts: all
  gather_facts: false
  tasks:
    - name: The role's verify tasks
      ansible.builtin.include_role:
        name: confidential_ai.ack.trustee
        tasks_from: verify
"""


@pytest.fixture(scope="module")
def box(built_repo):
    container = SystemdContainer(built_repo, prefix="trustee-verify-test-")
    try:
        container.install_trustee()
        yield container
    finally:
        container.remove()


def run_verify(box, directory):
    with open(os.path.join(directory, "verify.yml"), "w", encoding="utf-8") as handle:
        handle.write(PLAYBOOK)
    with open(os.path.join(directory, "hosts"), "w", encoding="utf-8") as handle:
        handle.write("%s ansible_connection=containers.podman.podman ansible_python_interpreter=/usr/bin/python3\n" % box.name)
    env = dict(box.env, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="false",
               ANSIBLE_COLLECTIONS_PATH=":".join(COLLECTIONS_PATHS or [os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")]))
    # the package's gateway speaks plain HTTP; a short timeout keeps the failure case quick
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "hosts", "verify.yml",
           "-e", "trustee_insecure_http_gateway=true", "-e", "trustee_health_timeout=15"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=directory, check=False, timeout=300)


def test_verify_passes_when_healthy_and_names_the_broken_component(box, tmp_path):
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    result = run_verify(box, str(healthy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Trustee is not healthy" not in result.stdout

    # break rvps only: its configuration no longer parses, so it cannot start (and keeps restarting)
    box.sh("echo '{not json' > /etc/trustee/rvps.json && systemctl restart rvps")
    broken = tmp_path / "broken"
    broken.mkdir()
    result = run_verify(box, str(broken))
    assert result.returncode != 0
    out = result.stdout
    assert "Trustee is not healthy" in out, out
    assert "components not ok: rvps" in out
    assert "units not active: rvps" in out
    assert "--- journal of rvps ---" in out and "cannot load RVPS config" in out
    for healthy_unit in ("kbs", "trustee-gateway", "as-restful"):
        assert "--- journal of %s ---" % healthy_unit not in out
