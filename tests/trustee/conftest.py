"""Fixtures for the Trustee stand-in tests: build the RPM, run the stand-in processes on loopback.

The stand-in (sandbox/trustee/trustee_standin.py) is a TEST DOUBLE of Trustee 1.5.2. Here every
component runs as its own process on 127.0.0.1 with an ephemeral port, configured by files in a
temporary directory written in the same formats as the RPM's /etc/trustee files.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID
import datetime

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STANDIN_DIR = os.path.join(REPO_ROOT, "sandbox", "trustee")
STANDIN = os.path.join(STANDIN_DIR, "trustee_standin.py")
BUILD_SCRIPT = os.path.join(STANDIN_DIR, "build-repo.sh")
# The stand-in targets the system python3 of a Debian 12 / Alinux host.
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_jwt(private_key, claims=None, header=None, lifetime=300):
    """Independent EdDSA JWT minting for the tests (not the collection's module_utils)."""
    now = int(time.time())
    header = header or {"alg": "EdDSA", "typ": "JWT"}
    claims = claims if claims is not None else {"iat": now, "exp": now + lifetime}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = private_key.sign(signing_input.encode()) if private_key is not None else b""
    return signing_input + "." + b64url(signature)


def write_ed25519_pair(directory, name="admin"):
    key = ed25519.Ed25519PrivateKey.generate()
    priv = os.path.join(directory, name + ".key")
    pub = os.path.join(directory, name + ".pub")
    with open(priv, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(priv, 0o600)
    with open(pub, "wb") as handle:
        handle.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, priv, pub


def write_self_signed(directory, name, common_name="127.0.0.1", key_type="rsa"):
    """A certificate and key for TLS tests (SAN IP 127.0.0.1 and DNS localhost)."""
    import ipaddress  # pylint: disable=import-outside-toplevel
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                              critical=False)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    cert = builder.sign(key, None if key_type != "rsa" else hashes.SHA256())
    cert_path = os.path.join(directory, name + ".crt")
    key_path = os.path.join(directory, name + ".key")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def _cert(subject_cn, public_key, issuer_cn, issuer_key, ca, days=1):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return builder.sign(issuer_key, hashes.SHA256())


class TokenAuthority:
    """An attestation token CA and an RSA signer certified by it, like the role's AS PKI."""

    def __init__(self, directory, name="as"):
        self.ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca_cert = _cert(name + " CA", self.ca_key.public_key(), name + " CA", self.ca_key, True, days=30)
        self.signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signer_cert = _cert(name + " signer", self.signer_key.public_key(), name + " CA", self.ca_key, False)
        self.ca_path = os.path.join(directory, name + "-ca.pem")
        with open(self.ca_path, "wb") as handle:
            handle.write(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def chain(self):
        return [self.signer_cert, self.ca_cert]


def rsa_jwk(public_key, alg="RS384", x5c=None):
    numbers = public_key.public_numbers()
    jwk = {"kty": "RSA", "alg": alg,
           "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
           "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))}
    if x5c is not None:
        jwk["x5c"] = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in x5c]
    return jwk


def mint_attestation_token(signing_key, jwk=None, claims=None, alg="RS384", lifetime=300):
    """An AS-style (Simple broker, RS384) attestation token; the JWK travels in the header.

    jwk defaults to the public half of signing_key without x5c: a self-signed token.
    """
    from cryptography.hazmat.primitives.asymmetric import padding  # pylint: disable=import-outside-toplevel
    now = int(time.time())
    header = {"alg": alg, "typ": "JWT", "jwk": jwk or rsa_jwk(signing_key.public_key(), alg)}
    if claims is None:
        claims = {"iss": "CoCo-Attestation-Service", "iat": now, "nbf": now, "exp": now + lifetime, "tee": "tdx",
                  "evaluation-reports": [{"policy-id": "default", "policy-hash": "0" * 96}],
                  "tcb-status": json.dumps({"tdx.quote.body.mr_td": "00", "tdx.nvidia_gpu.0.cc_enabled": True,
                                            "tdx.nvidia_gpu.0.measurement": "00"})}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    digest = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}[alg]
    signature = signing_key.sign(signing_input.encode(), padding.PKCS1v15(), digest)
    return signing_input + "." + b64url(signature)


def http(method, url, body=None, headers=None, context=None, timeout=10):
    """Return (status, body bytes, headers) without raising on HTTP errors."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = dict(headers or {}, **{"Content-Type": "application/json"})
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


class StandinProcess:
    """One stand-in component started as `python3 trustee_standin.py <component> ...`."""

    def __init__(self, name, args, workdir, env=None):
        self.name = name
        self.ready = os.path.join(workdir, name + ".ready")
        self.log_path = os.path.join(workdir, name + ".log")
        if os.path.exists(self.ready):
            os.remove(self.ready)
        environ = dict(os.environ, TRUSTEE_STANDIN_READY_FILE=self.ready)
        environ.update(env or {})
        self.log = open(self.log_path, "wb")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [SYSTEM_PYTHON, STANDIN, name] + args, stdout=self.log, stderr=subprocess.STDOUT, env=environ)
        self.ports = None

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(self.ready):
                with open(self.ready, encoding="utf-8") as handle:
                    self.ports = json.load(handle)
                return self.ports[0]
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (self.name, self.proc.returncode, self.output()))
            time.sleep(0.05)
        raise RuntimeError("%s did not become ready:\n%s" % (self.name, self.output()))

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.flush()

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self):
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


class StandinStack:
    """rvps, grpc-as, restful-as, kbs and trustee-gateway on 127.0.0.1, configured under root."""

    def __init__(self, root):
        self.root = root
        self.etc = os.path.join(root, "etc")
        self.opt = os.path.join(root, "opt")
        os.makedirs(self.etc)
        os.makedirs(self.opt)
        self.repository = os.path.join(self.opt, "kbs", "repository")
        self.kbs_policy = os.path.join(self.opt, "kbs", "policy.rego")
        self.as_policy_dir = os.path.join(self.opt, "attestation-service", "policies")
        self.procs = {}
        self.all_procs = []
        self.admin_key, self.admin_key_path, self.admin_pub_path = write_ed25519_pair(self.etc)
        self.gateway_url = None
        self.kbs_url = None
        self.tls = None

    def start_process(self, name, args, env=None):
        proc = StandinProcess(name, args, self.root, env)
        self.procs[name] = proc
        self.all_procs.append(proc)
        return proc

    def start(self, gateway_tls=None, gateway_level="info", kbs_extra="", as_signer=None, gateway_insecure_http=None,
              attestation_token="insecure_key = true\n"):
        rvps_cfg = os.path.join(self.etc, "rvps.json")
        with open(rvps_cfg, "w", encoding="utf-8") as handle:
            json.dump({"storage": {"type": "LocalFs", "file_path": os.path.join(self.opt, "attestation-service", "reference_values")}}, handle)
        rvps_port = self.start_process("rvps", ["--config", rvps_cfg, "--address", "127.0.0.1:0"]).wait_ready()
        as_cfg = os.path.join(self.etc, "as-config.json")
        broker = {"type": "Simple", "duration_min": 5, "policy_dir": self.as_policy_dir}
        if as_signer:
            broker["signer"] = as_signer
        with open(as_cfg, "w", encoding="utf-8") as handle:
            json.dump({"work_dir": os.path.join(self.opt, "attestation-service"), "policy_engine": "opa",
                       "rvps_config": {"type": "GrpcRemote", "address": "http://127.0.0.1:%d" % rvps_port},
                       "attestation_token_broker": broker}, handle)
        grpc_port = self.start_process("grpc-as", ["--socket", "127.0.0.1:0", "--config-file", as_cfg]).wait_ready()
        rest_port = self.start_process("restful-as", ["--socket", "127.0.0.1:0", "--config-file", as_cfg]).wait_ready()
        kbs_cfg = os.path.join(self.etc, "kbs-config.toml")
        with open(kbs_cfg, "w", encoding="utf-8") as handle:
            handle.write(
                '[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\n\n'
                "[attestation_token]\n%s\n"
                '[attestation_service]\ntype = "coco_as_grpc"\nas_addr = "http://127.0.0.1:%d"\n\n'
                '[admin]\nauth_public_key = "%s"\n\n'
                '[policy_engine]\npolicy_path = "%s"\n\n'
                '[[plugins]]\nname = "resource"\ntype = "LocalFs"\ndir_path = "%s"\n%s'
                % (attestation_token, grpc_port, self.admin_pub_path, self.kbs_policy, self.repository, kbs_extra))
        kbs_port = self.start_process("kbs", ["--config-file", kbs_cfg], env={"RUST_LOG": "debug"}).wait_ready()
        self.kbs_url = "http://127.0.0.1:%d" % kbs_port
        gw_cfg = os.path.join(self.etc, "gateway.yml")
        lines = ["---", "server:", '  host: "127.0.0.1"', "  port: 0"]
        if gateway_insecure_http is not None:
            lines.append("  insecure_http: %s" % ("true" if gateway_insecure_http else "false"))
        if gateway_tls:
            lines += ["  tls:", '    cert_file: "%s"' % gateway_tls[0], '    key_file: "%s"' % gateway_tls[1]]
        lines += ["kbs:", '  url: "%s"' % self.kbs_url,
                  "attestation_service:", '  url: "http://127.0.0.1:%d"' % rest_port,
                  "rvps:", '  grpc_addr: "127.0.0.1:%d"' % rvps_port,
                  "database:", '  type: "sqlite"', '  path: "%s"' % os.path.join(self.opt, "gw.db"),
                  "logging:", '  level: "%s"' % gateway_level, ""]
        with open(gw_cfg, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines))
        gw_port = self.start_process("trustee-gateway", ["--config", gw_cfg]).wait_ready()
        scheme = "https" if gateway_tls and gateway_insecure_http is False else "http"
        self.gateway_url = "%s://127.0.0.1:%d" % (scheme, gw_port)
        return self

    def stop(self):
        for proc in reversed(self.all_procs):
            proc.stop()


@pytest.fixture
def stack_factory(tmp_path):
    stacks = []

    def make(**kwargs):
        root = os.path.join(str(tmp_path), "stack%d" % len(stacks))
        os.makedirs(root)
        stack = StandinStack(root)
        stacks.append(stack)
        return stack.start(**kwargs)

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("standin"))
    standin = StandinStack(root)
    try:
        standin.start()
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory):
    """Build 1.5.2 and 1.5.3 with the project's script into a temporary WORKDIR."""
    if not (shutil.which("rpmbuild") and shutil.which("createrepo_c")):
        pytest.skip("rpmbuild/createrepo_c not installed")
    workdir = str(tmp_path_factory.mktemp("rpmwork"))
    result = subprocess.run(["bash", BUILD_SCRIPT, "--version", "1.5.2", "--version", "1.5.3", workdir],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir


COLLECTIONS_PATHS = [p for p in ("/root/.cache/cai-ack/src/collections", "/root/.cache/cai-ack/collections") if os.path.isdir(p)]


def run_playbook(directory, tasks_yaml, extra_vars, check=False, verbosity=0):
    """Run a localhost playbook with the collection's modules; returns the CompletedProcess.

    The tasks are a YAML list text; extra_vars go through a JSON file (never argv).
    """
    playbook = os.path.join(directory, "playbook.yml")
    vars_file = os.path.join(directory, "vars.json")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write("---\n- hosts: localhost\n  connection: local\n  gather_facts: false\n"
                     "  vars:\n    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n  tasks:\n")
        for line in tasks_yaml.strip("\n").splitlines():
            handle.write("    " + line + "\n")
    fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(extra_vars, handle)
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = ":".join(COLLECTIONS_PATHS or [os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")])
    env["ANSIBLE_LOCALHOST_WARNING"] = "false"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "false"
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", playbook, "-e", "@" + vars_file]
    if check:
        cmd.append("--check")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=directory, check=False, timeout=300)


# ---------------------------------------------------------------------------------------------
# The project's Debian 12 systemd image with podman (tests skip when either is missing)
# ---------------------------------------------------------------------------------------------

def podman_env():
    env = dict(os.environ)
    conf = os.path.join(REPO_ROOT, ".ci", "containers.conf")
    if "CONTAINERS_CONF" not in env and os.path.exists(conf):
        env["CONTAINERS_CONF"] = conf
    return env


def systemd_image():
    """The image from CAI_ACK_SYSTEMD_IMAGE, else the newest localhost/cai-ack-systemd:*, else None."""
    if not shutil.which("podman"):
        return None
    if os.environ.get("CAI_ACK_SYSTEMD_IMAGE"):
        return os.environ["CAI_ACK_SYSTEMD_IMAGE"]
    out = subprocess.run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "--sort", "created", "localhost/cai-ack-systemd"],
                         capture_output=True, text=True, env=podman_env(), check=False).stdout.split()
    return out[0] if out else None


class SystemdContainer:
    """A --network none systemd container with the stand-in repository at /srv/trustee-repo."""

    def __init__(self, repo_workdir, prefix="trustee-standin-test-"):
        import uuid  # pylint: disable=import-outside-toplevel
        image = systemd_image()
        if not image:
            pytest.skip("podman or the systemd test image (localhost/cai-ack-systemd) is not available")
        self.name = prefix + uuid.uuid4().hex[:8]
        self.env = podman_env()
        run = subprocess.run(["podman", "run", "-d", "--name", self.name, "--network", "none", "--systemd", "always",
                              "-v", "%s/yumrepo:/srv/trustee-repo:ro" % repo_workdir, image, "/sbin/init"],
                             capture_output=True, text=True, env=self.env, check=False)
        if run.returncode != 0:
            pytest.skip("cannot start the systemd container: " + run.stderr[-500:])
        self.sh("for i in $(seq 50); do systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && exit 0; sleep 0.2; done; exit 0")

    def sh(self, script, check=True):
        result = subprocess.run(["podman", "exec", self.name, "sh", "-c", script], capture_output=True, text=True, env=self.env,
                                check=False, timeout=180)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def install_trustee(self, version="1.5.2"):
        self.sh("mkdir -p /etc/yum.repos.d && printf '[trustee-local]\\nname=Trustee stand-in\\nbaseurl=file:///srv/trustee-repo\\n"
                "enabled=1\\ngpgcheck=0\\nmetadata_expire=0\\n' > /etc/yum.repos.d/trustee.repo")
        self.sh("dnf -y -q --releasever 12 install trustee-" + version)

    def remove(self):
        subprocess.run(["podman", "rm", "-f", "-t", "0", self.name], capture_output=True, env=self.env, check=False)
