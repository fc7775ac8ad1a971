"""The stand-in RPM in a Debian 12 systemd container: dnf install, %post, the units, upgrade, erase.

Runs when podman and the project's systemd test image are present (image from the environment
variable CAI_ACK_SYSTEMD_IMAGE, else the newest localhost/cai-ack-systemd:* image), otherwise skips.
The container has no network (--network none): every request goes to its own loopback.
"""

import json

import pytest

from conftest import SystemdContainer

UNITS = ["kbs", "as", "as-restful", "rvps", "trustee-gateway"]


@pytest.fixture(scope="module")
def container(built_repo):
    box = SystemdContainer(built_repo)
    try:
        yield box.sh
    finally:
        box.remove()


HEALTH = ("python3 -c 'import json,sys,time,urllib.request\n"
          "for _ in range(100):\n"
          "    try:\n"
          "        print(urllib.request.urlopen(\"http://127.0.0.1:8081/api/services-health\").read().decode()); sys.exit(0)\n"
          "    except OSError: time.sleep(0.2)\n"
          "sys.exit(1)'")


def test_install_post_units_upgrade_erase(container):
    sh = container
    sh("mkdir -p /etc/yum.repos.d && printf '[trustee-local]\\nname=Trustee stand-in\\nbaseurl=file:///srv/trustee-repo\\n"
       "enabled=1\\ngpgcheck=0\\nmetadata_expire=0\\n' > /etc/yum.repos.d/trustee.repo")
    sh("dnf -y -q --releasever 12 install trustee-1.5.2")
    assert sh("rpm -q trustee").stdout.strip() == "trustee-1.5.2-1.noarch"
    # %post: a keypair, and trustee started but not enabled
    assert sh("stat -c %a /etc/trustee/private.key").stdout.strip() == "600"
    assert "BEGIN PUBLIC KEY" in sh("cat /etc/trustee/public.pub").stdout
    health = json.loads(sh(HEALTH).stdout)
    assert {k: v["status"] for k, v in health.items()} == {"gateway": "ok", "kbs": "ok", "as": "ok", "rvps": "ok"}
    assert sh("systemctl is-active " + " ".join(UNITS)).stdout.split() == ["active"] * 5
    assert sh("systemctl is-enabled trustee", check=False).stdout.strip() == "disabled"
    listening = sh("ss -ltnH").stdout
    for address in ("0.0.0.0:8080", "0.0.0.0:8081", "0.0.0.0:50004", "0.0.0.0:50005", "127.0.0.1:50003"):
        assert address in listening
    # at the shipped debug level the gateway journal shows forwarded headers
    assert "forwarding" in sh("journalctl -u trustee-gateway --no-pager").stdout
    # a bad config makes the unit fail (and systemd keep restarting it)
    sh("cp /etc/trustee/kbs-config.toml /tmp/kbs.bak && sed -i 's/insecure_http = true/insecure_http = false/' /etc/trustee/kbs-config.toml "
       "&& systemctl restart kbs; sleep 1")
    assert "private_key and certificate are required" in sh("journalctl -u kbs --no-pager").stdout
    sh("cp /tmp/kbs.bak /etc/trustee/kbs-config.toml && systemctl restart kbs")
    # upgrade: configs overwritten, new keypair
    before = sh("sha256sum /etc/trustee/public.pub").stdout.split()[0]
    sh("sed -i 's/insecure_key = true/insecure_key = false/' /etc/trustee/kbs-config.toml")
    sh("dnf -y -q --releasever 12 upgrade trustee")
    assert sh("rpm -q trustee").stdout.strip() == "trustee-1.5.3-1.noarch"
    assert sh("sha256sum /etc/trustee/public.pub").stdout.split()[0] != before
    assert "insecure_key = true" in sh("cat /etc/trustee/kbs-config.toml").stdout
    # erase: services stopped, keypair deleted
    sh("dnf -y -q remove trustee")
    assert sh("test -e /etc/trustee/private.key", check=False).returncode != 0
    assert sh("systemctl is-active kbs", check=False).stdout.strip() != "active"
