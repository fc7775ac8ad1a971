"""The stand-in RPM: build script, metadata, scriptlets, and dnf --installroot installs/upgrades."""

import os
import re
import shutil
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from conftest import BUILD_SCRIPT, STANDIN_DIR, SYSTEM_PYTHON

UNITS = ("kbs", "as", "as-restful", "rvps", "trustee-gateway", "trustee")
BINARIES = ("kbs", "grpc-as", "restful-as", "rvps", "rvps-tool", "trustee-gateway")
CONFIGS = {"kbs-config.toml": "configs/kbs-config.toml", "as-config.json": "configs/as-config.json",
           "rvps.json": "configs/rvps.json", "gateway.yml": "configs/gateway.yml"}


def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def rpm_path(workdir, version):
    return os.path.join(workdir, "yumrepo", "trustee-%s-1.noarch.rpm" % version)


def test_metadata(built_repo):
    for version in ("1.5.2", "1.5.3"):
        pkg = rpm_path(built_repo, version)
        out = run(["rpm", "-qp", "--qf", "%{NAME}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SUMMARY}", pkg]).stdout
        name, ver, rel, arch, summary = out.split("|")
        assert (name, ver, rel, arch) == ("trustee", version, "1", "noarch")
        assert "STAND-IN" in summary and "test double" in summary
        info = run(["rpm", "-qip", pkg]).stdout
        assert re.search(r"^Name\s*: trustee$", info, re.M)
    requires = run(["rpm", "-qpR", rpm_path(built_repo, "1.5.2")]).stdout.split("\n")
    # AutoReq off and Lua scriptlets: nothing a Debian rpmdb would have to provide
    assert [r for r in requires if r and not r.startswith("rpmlib(")] == []


def test_file_list(built_repo):
    files = set(run(["rpm", "-qlp", rpm_path(built_repo, "1.5.2")]).stdout.split())
    expected = {"/etc/trustee/" + c for c in CONFIGS} | {"/usr/bin/" + b for b in BINARIES}
    expected |= {"/usr/lib/systemd/system/%s.service" % u for u in UNITS}
    expected |= {"/opt/trustee/kbs/repository", "/opt/trustee/attestation-service/policies/opa",
                 "/opt/trustee/attestation-service/reference_values", "/opt/trustee/gateway/app/data",
                 "/etc/sgx_default_qcnl.conf"}
    assert expected <= files
    assert "/etc/trustee/private.key" not in files  # made by %post, not shipped


def test_scriptlets_generate_keypair_and_start_without_enable(built_repo):
    scripts = run(["rpm", "-qp", "--scripts", rpm_path(built_repo, "1.5.2")]).stdout
    post = scripts.split("postinstall scriptlet")[1].split("preuninstall scriptlet")[0]
    assert "genpkey -algorithm ed25519" in post and "genkey /etc/trustee/private.key" in post
    assert "systemctl start trustee" in post and "systemctl enable" not in post
    preun = scripts.split("preuninstall scriptlet")[1]
    assert "rm -f /etc/trustee/private.key /etc/trustee/public.pub" in preun


@pytest.mark.parametrize("with_openssl", [True, False])
def test_post_shell_makes_a_valid_pair(built_repo, tmp_path, with_openssl):
    """Run the %post shell body with paths redirected into tmp and a recording systemctl."""
    scripts = run(["rpm", "-qp", "--scripts", rpm_path(built_repo, "1.5.2")]).stdout
    post = scripts.split("postinstall scriptlet")[1].split("preuninstall scriptlet")[0]
    body = post.split("[[", 1)[1].split("]]", 1)[0]
    etc = tmp_path / "etc"
    etc.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text('#!/bin/sh\necho "$@" >> %s/systemctl.calls\n' % tmp_path)
    (bindir / "systemctl").chmod(0o755)
    os.symlink(SYSTEM_PYTHON, bindir / "python3")
    for tool in ["chmod"] + (["openssl"] if with_openssl else []):
        os.symlink(shutil.which(tool), bindir / tool)
    standin = os.path.join(STANDIN_DIR, "trustee_standin.py")
    body = body.replace("/etc/trustee", str(etc)).replace("/usr/libexec/trustee-standin/trustee-standin", "python3 " + standin)
    result = run(["/bin/sh", "-c", "set -e\n" + body], env={"PATH": str(bindir)})
    assert result.returncode == 0, result.stdout + result.stderr
    key = serialization.load_pem_private_key((etc / "private.key").read_bytes(), None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    pub = serialization.load_pem_public_key((etc / "public.pub").read_bytes())
    assert pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == \
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert stat.S_IMODE(os.stat(etc / "private.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(etc / "public.pub").st_mode) == 0o644
    assert (tmp_path / "systemctl.calls").read_text().split("\n")[:2] == ["daemon-reload", "start trustee"]


def _dnf(tmp_path, workdir, *args):
    conf = tmp_path / "dnf.conf"
    if not conf.exists():
        (tmp_path / "repos").mkdir()
        conf.write_text("[main]\ngpgcheck=0\nreposdir=%s\ncachedir=%s\n" % (tmp_path / "repos", tmp_path / "cache"))
        (tmp_path / "repos" / "trustee.repo").write_text(
            "[trustee-local]\nname=Trustee stand-in\nbaseurl=file://%s/yumrepo\nenabled=1\ngpgcheck=0\nmetadata_expire=0\n" % workdir)
    return run(["dnf", "-y", "-q", "-c", str(conf), "--installroot", str(tmp_path / "root"), "--releasever", "12",
                "--setopt=tsflags=noscripts"] + list(args))


@pytest.mark.skipif(not shutil.which("dnf"), reason="dnf not installed")
def test_installroot_layout_and_upgrade_overwrites_config(built_repo, tmp_path):
    root = tmp_path / "root"
    result = _dnf(tmp_path, built_repo, "install", "trustee-1.5.2")
    assert result.returncode == 0, result.stderr
    assert run(["rpm", "--root", str(root), "-q", "trustee"]).stdout.strip() == "trustee-1.5.2-1.noarch"
    for name, source in CONFIGS.items():
        assert (root / "etc/trustee" / name).read_text() == open(os.path.join(STANDIN_DIR, source), encoding="utf-8").read()
    program = root / "usr/libexec/trustee-standin/trustee-standin"
    text = program.read_text()
    assert text.startswith("#!/usr/bin/python3\n") and 'STANDIN_VERSION = "1.5.2"' in text
    assert os.access(program, os.X_OK)
    for binary in BINARIES:
        assert os.readlink(root / "usr/bin" / binary) == "../libexec/trustee-standin/trustee-standin"
    version = run(["python3", str(program), "kbs", "--version"]).stdout
    assert version.startswith("kbs 1.5.2") and "stand-in" in version
    unit = (root / "usr/lib/systemd/system/kbs.service").read_text()
    assert "ExecStart=/usr/bin/kbs --config-file /etc/trustee/kbs-config.toml" in unit and "Requires=as.service" in unit
    assert "ExecStart=/usr/bin/systemctl start kbs as as-restful rvps trustee-gateway" in \
        (root / "usr/lib/systemd/system/trustee.service").read_text()
    # a hardened config is overwritten by a package upgrade, like the real package does
    kbs = root / "etc/trustee/kbs-config.toml"
    kbs.write_text(kbs.read_text().replace("insecure_key = true", "insecure_key = false"))
    result = _dnf(tmp_path, built_repo, "upgrade", "trustee")
    assert result.returncode == 0, result.stderr
    assert run(["rpm", "--root", str(root), "-q", "trustee"]).stdout.strip() == "trustee-1.5.3-1.noarch"
    assert "insecure_key = true" in kbs.read_text()


def test_build_script_cache_and_arguments(built_repo, tmp_path):
    again = run(["bash", BUILD_SCRIPT, "--version", "1.5.2", "--version", "1.5.3", built_repo])
    assert again.returncode == 0 and "up to date" in again.stdout
    assert run(["bash", BUILD_SCRIPT, "--version", "1.5.x", str(tmp_path / "w")]).returncode == 2
    assert run(["bash", BUILD_SCRIPT]).returncode == 2
    # a changed source triggers a rebuild from scratch
    copy = tmp_path / "src"
    shutil.copytree(STANDIN_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "w"
    first = run(["bash", str(copy / "build-repo.sh"), str(work)])
    assert first.returncode == 0 and "built 1.5.2" in first.stdout
    assert sorted(os.listdir(work / "yumrepo")) == [".stand-in-sources.sha256", "repodata", "trustee-1.5.2-1.noarch.rpm"]
    assert "up to date" in run(["bash", str(copy / "build-repo.sh"), str(work)]).stdout
    with open(copy / "configs" / "gateway.yml", "a", encoding="utf-8") as handle:
        handle.write("# changed\n")
    rebuilt = run(["bash", str(copy / "build-repo.sh"), str(work)])
    assert rebuilt.returncode == 0 and "built 1.5.2" in rebuilt.stdout
    listed = run(["rpm", "-qlp", "--dump", str(work / "yumrepo" / "trustee-1.5.2-1.noarch.rpm")]).stdout
    assert "/etc/trustee/gateway.yml" in listed


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_build_script_is_shellcheck_clean():
    result = run(["shellcheck", BUILD_SCRIPT])
    assert result.returncode == 0, result.stdout
