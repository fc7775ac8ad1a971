"""HTTP API of the Trustee stand-in (test double), every component on 127.0.0.1 with ephemeral ports."""

import base64
import hashlib
import importlib.util
import json
import os
import socket
import ssl
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import (STANDIN, TokenAuthority, b64url, http, mint_attestation_token, mint_jwt, rsa_jwk, write_ed25519_pair,
                      write_self_signed)

KEY_PATH = "/api/kbs/v0/resource/default/aliyun/model-decryption-key"


def _load_standin():
    spec = importlib.util.spec_from_file_location("trustee_standin_under_test", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = _load_standin()


def bearer(token):
    return {"Authorization": "Bearer " + token}


# --- health ---------------------------------------------------------------------------------

def test_health_reports_all_four_components_ok(stack):
    status, body, _h = http("GET", stack.gateway_url + "/api/services-health")
    assert status == 200
    health = json.loads(body)
    assert {k: v["status"] for k, v in health.items()} == {"gateway": "ok", "kbs": "ok", "as": "ok", "rvps": "ok"}
    assert http("GET", stack.gateway_url + "/api/health")[:2] == (200, b'{"status": "ok"}')


def test_health_is_200_but_error_when_a_component_is_down(stack_factory):
    stack = stack_factory()
    stack.procs["rvps"].stop()
    stack.procs["kbs"].stop()
    status, body, _h = http("GET", stack.gateway_url + "/api/services-health")
    assert status == 200
    health = json.loads(body)
    assert health["gateway"]["status"] == "ok"
    assert health["as"]["status"] == "ok"
    assert health["kbs"]["status"] == "error" and health["kbs"]["message"]
    assert health["rvps"]["status"] == "error" and "unreachable" in health["rvps"]["message"]


# --- admin authentication -------------------------------------------------------------------

def test_resource_post_requires_the_admin_key(stack, tmp_path):
    url = stack.gateway_url + KEY_PATH
    other_key = ed25519.Ed25519PrivateKey.generate()
    now = int(time.time())
    valid = mint_jwt(stack.admin_key).split(".")
    refused = {
        "no token": {},
        "other key": bearer(mint_jwt(other_key)),
        "alg none": bearer(mint_jwt(None, header={"alg": "none", "typ": "JWT"})),
        "expired beyond tolerance": bearer(mint_jwt(stack.admin_key, claims={"iat": now - 7200, "exp": now - 3600})),
        "malformed": bearer("abc.def"),
        "tampered claims": bearer(valid[0] + "." + b64url(json.dumps({"iat": now, "exp": now + 99999}).encode()) + "." + valid[2]),
        "basic auth": {"Authorization": "Basic YWRtaW46YWRtaW4="},
    }
    for label, headers in refused.items():
        status, body, _h = http("POST", url, b"x", headers)
        assert status == 401, label
        assert json.loads(body)["type"].endswith("/AdminAuth"), label
    assert not os.path.exists(os.path.join(stack.repository, "default", "aliyun", "model-decryption-key"))
    # a token expired less than jwt_simple's 15 minute tolerance still passes
    status, _b, _h = http("POST", url, b"x", bearer(mint_jwt(stack.admin_key, claims={"iat": now - 400, "exp": now - 60})))
    assert status == 200
    assert http("DELETE", url, None, bearer(mint_jwt(stack.admin_key)))[0] == 200


def test_admin_public_key_is_read_only_at_start(stack_factory):
    stack = stack_factory()
    new_key, _priv, new_pub = write_ed25519_pair(stack.etc, "new")
    os.replace(new_pub, stack.admin_pub_path)
    url = stack.gateway_url + KEY_PATH
    assert http("POST", url, b"x", bearer(mint_jwt(new_key)))[0] == 401
    assert http("POST", url, b"x", bearer(mint_jwt(stack.admin_key)))[0] == 200


# --- resources ------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"pa55word", b"with trailing newline\n", bytes(range(256)), b""])
def test_resource_bytes_are_stored_exactly(stack, content):
    url = stack.gateway_url + KEY_PATH
    assert http("POST", url, content, bearer(mint_jwt(stack.admin_key)))[0] == 200
    with open(os.path.join(stack.repository, "default", "aliyun", "model-decryption-key"), "rb") as handle:
        assert handle.read() == content


def test_resource_list_delete_and_missing_delete(stack):
    token = mint_jwt(stack.admin_key)
    assert http("POST", stack.gateway_url + "/api/kbs/v0/resource/default/grp/one", b"1", bearer(token))[0] == 200
    status, body, _h = http("GET", stack.gateway_url + "/api/kbs/v0/resources")
    assert status == 200
    assert {"repository_name": "default", "resource_type": "grp", "resource_tag": "one"} in json.loads(body)
    status, body, _h = http("GET", stack.gateway_url + "/api/kbs/v0/resources?repository=default&type=grp")
    assert json.loads(body) == [{"repository_name": "default", "resource_type": "grp", "resource_tag": "one"}]
    assert http("GET", stack.gateway_url + "/api/kbs/v0/resources?type=no-such-type")[1] == b"null"
    assert http("DELETE", stack.gateway_url + "/api/kbs/v0/resource/default/grp/one", None, bearer(token))[0] == 200
    status, body, _h = http("DELETE", stack.gateway_url + "/api/kbs/v0/resource/default/grp/one", None, bearer(token))
    assert status == 500  # like the 1.5.2 LocalFs backend: a missing resource is an internal error
    assert "No such file" in json.loads(body)["detail"]


@pytest.mark.parametrize("path", ["default/aliyun", "default/a/b/c", ".hidden/a/b", "default/a%20b/c"])
def test_resource_path_must_be_three_valid_segments(stack, path):
    status, _b, _h = http("POST", stack.gateway_url + "/api/kbs/v0/resource/" + path, b"x", bearer(mint_jwt(stack.admin_key)))
    assert status in (400, 404)


def test_resource_get_without_token_is_401_and_audited(stack):
    status, body, _h = http("GET", stack.gateway_url + KEY_PATH)
    assert status == 401
    assert json.loads(body)["type"].endswith("/TokenNotFound")
    status, body, _h = http("GET", stack.gateway_url + "/api/audit/resources?method=GET&tag=model-decryption-key&successful=false&limit=1")
    records = json.loads(body)
    assert status == 200 and records["total"] >= 1
    assert records["data"][0]["status"] == 401 and records["data"][0]["method"] == "GET"


# --- attestation tokens: insecure_key -------------------------------------------------------

def _get_key(stack, token):
    status, body, _h = http("GET", stack.gateway_url + KEY_PATH, headers=bearer(token))
    return status, json.loads(body)


def _forged_token():
    """A token whose claims say everything a restrictive policy wants, signed with the caller's own key."""
    return mint_attestation_token(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def test_insecure_key_true_trusts_the_key_in_the_token_header(stack_factory):
    stack = stack_factory(attestation_token="insecure_key = true\n")
    # the self-signed token passes verification: only the policy stage stands in the way
    status, body = _get_key(stack, _forged_token())
    assert status == 403 and body["type"].endswith("/PolicyDeny"), body
    assert "token verified" in body["detail"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    refused = {
        "bad signature": mint_attestation_token(key, jwk=rsa_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())),
        "expired": mint_attestation_token(key, claims={"iat": now - 600, "exp": now - 300}),
        "no exp": mint_attestation_token(key, claims={"iat": now}),
        "not yet valid": mint_attestation_token(key, claims={"nbf": now + 600, "exp": now + 900}),
        "alg mismatch": mint_attestation_token(key, jwk=rsa_jwk(key.public_key(), alg="RS256")),
    }
    for label, token in refused.items():
        status, body = _get_key(stack, token)
        assert status == 401 and body["type"].endswith("/TokenVerifierError"), label
    assert "insecure_key = true" in stack.procs["kbs"].output()


def test_insecure_key_false_needs_a_chain_to_trusted_certs(stack_factory, tmp_path):
    authority = TokenAuthority(str(tmp_path))
    stack = stack_factory(attestation_token='insecure_key = false\ntrusted_certs_paths = ["%s"]\n' % authority.ca_path)
    # a token of this deployment's attestation service: signer key, x5c = signer cert + CA
    genuine = mint_attestation_token(authority.signer_key, jwk=rsa_jwk(authority.signer_key.public_key(), x5c=authority.chain()))
    status, body = _get_key(stack, genuine)
    assert status == 403 and body["type"].endswith("/PolicyDeny"), body
    rogue = TokenAuthority(str(tmp_path), name="rogue")
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "self-signed, no x5c": (_forged_token(), "No x5c"),
        "chain to another CA": (mint_attestation_token(rogue.signer_key, jwk=rsa_jwk(rogue.signer_key.public_key(), x5c=rogue.chain())),
                                "UnknownIssuer"),
        "genuine x5c, own key in the JWK": (mint_attestation_token(intruder, jwk=rsa_jwk(intruder.public_key(), x5c=authority.chain())),
                                            "does not match"),
        "genuine JWK, signed by another key": (mint_attestation_token(intruder, jwk=rsa_jwk(authority.signer_key.public_key(),
                                                                                            x5c=authority.chain())), "InvalidSignature"),
    }
    for label, (token, reason) in refused.items():
        status, body = _get_key(stack, token)
        assert status == 401 and body["type"].endswith("/TokenVerifierError"), label
        assert reason in body["detail"], (label, body["detail"])
    # no trusted certificate at all: nothing verifies, not even the genuine token
    empty = stack_factory(attestation_token="insecure_key = false\n")
    status, body = _get_key(empty, genuine)
    assert status == 401 and "trusted cert is empty" in body["detail"]


def test_resource_get_with_session_cookie_only_is_refused(stack):
    status, body, _h = http("GET", stack.gateway_url + KEY_PATH, headers={"Cookie": "kbs-session-id=abc"})
    assert status == 401 and "not attested" in json.loads(body)["detail"]


def test_token_verifier_pure_rsa_path(monkeypatch, tmp_path):
    monkeypatch.setattr(standin, "HAS_CRYPTOGRAPHY", False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for alg in ("RS256", "RS384", "RS512"):
        token = mint_attestation_token(key, jwk=rsa_jwk(key.public_key(), alg=alg), alg=alg)
        assert standin.AttestationTokenVerifier(True, []).verify(token)[1] is None, alg
        parts = token.split(".")
        tampered = parts[0] + "." + b64url(b'{"exp": 9999999999}') + "." + parts[2]
        assert "InvalidSignature" in standin.AttestationTokenVerifier(True, []).verify(tampered)[1]
    # without cryptography no chain can be checked: fail closed
    authority = TokenAuthority(str(tmp_path))
    with open(authority.ca_path, encoding="ascii") as handle:
        verifier = standin.AttestationTokenVerifier(False, [handle.read()])
    genuine = mint_attestation_token(authority.signer_key, jwk=rsa_jwk(authority.signer_key.public_key(), x5c=authority.chain()))
    assert "python3-cryptography" in verifier.verify(genuine)[1]


# --- policies -------------------------------------------------------------------------------

RESTRICTIVE = 'package policy\n\ndefault allow = false\n\nallow {\n  input.tee == "tdx"\n}\n'


def test_resource_policy_round_trip_and_base64url_rules(stack):
    url = stack.gateway_url + "/api/kbs/v0/resource-policy"
    token = mint_jwt(stack.admin_key)
    status, body, _h = http("GET", url, None, bearer(token))
    assert status == 200 and b"default allow = true" in base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
    assert http("POST", url, {"policy": b64url(RESTRICTIVE.encode())})[0] == 401
    padded = base64.urlsafe_b64encode(RESTRICTIVE.encode() + b"x").decode()
    assert padded.endswith("=")
    assert http("POST", url, {"policy": padded}, bearer(token))[0] == 400
    assert http("POST", url, {"policy": base64.b64encode(b"package policy\n\xfb\xff").decode()}, bearer(token))[0] == 400
    assert http("POST", url, {"policy": b64url(RESTRICTIVE.encode())}, bearer(token))[0] == 200
    status, body, _h = http("GET", url, None, bearer(token))
    assert status == 200 and body.decode() == b64url(RESTRICTIVE.encode())
    with open(stack.kbs_policy, encoding="utf-8") as handle:
        assert handle.read() == RESTRICTIVE


def test_attestation_policy_through_kbs_and_restful_as(stack):
    text = "package policy\n\ndefault allow = false\n"
    assert http("POST", stack.gateway_url + "/api/kbs/v0/attestation-policy", {"policy_id": "gpu", "type": "rego", "policy": b64url(text.encode())})[0] == 200
    status, body, _h = http("GET", stack.gateway_url + "/api/attestation-service/policy/gpu")
    assert status == 200 and body.decode() == b64url(text.encode())
    status, body, _h = http("GET", stack.gateway_url + "/api/as/policies")
    assert json.loads(body)["gpu"] == hashlib.sha384(text.encode()).hexdigest()
    assert os.path.exists(os.path.join(stack.as_policy_dir, "opa", "default.rego"))
    assert http("POST", stack.gateway_url + "/api/attestation-service/policy", {"policy_id": "x", "policy": "not base64!"})[0] == 400
    assert http("DELETE", stack.gateway_url + "/api/kbs/v0/attestation-policy/gpu")[0] == 200
    assert http("GET", stack.gateway_url + "/api/kbs/v0/attestation-policy/gpu")[0] == 404


def test_rvps_register_query_delete(stack):
    payload = base64.b64encode(json.dumps({"tdx.quote.body.mr_td": ["abc", "def"]}).encode()).decode()
    message = json.dumps({"version": "0.1.0", "type": "sample", "payload": payload})
    assert http("POST", stack.gateway_url + "/api/rvps/register", {"message": message})[0] == 200
    status, body, _h = http("GET", stack.gateway_url + "/api/rvps/query")
    assert status == 200 and json.loads(body)["tdx.quote.body.mr_td"] == ["abc", "def"]
    assert http("POST", stack.gateway_url + "/api/rvps/register", {"message": "{\"version\": \"9\"}"})[0] == 400
    assert http("DELETE", stack.gateway_url + "/api/rvps/delete/tdx.quote.body.mr_td")[0] == 200
    assert "tdx.quote.body.mr_td" not in json.loads(http("GET", stack.gateway_url + "/api/rvps/query")[1])


def test_kbs_auth_checks_protocol_version_and_sets_cookie(stack):
    status, body, headers = http("POST", stack.gateway_url + "/api/kbs/v0/auth", {"version": "0.1.0", "tee": "tdx", "extra-params": ""})
    assert status == 200 and json.loads(body)["nonce"]
    assert "kbs-session-id=" in headers.get("Set-Cookie")
    status, body, _h = http("POST", stack.gateway_url + "/api/kbs/v0/auth", {"version": "0.4.0", "tee": "tdx", "extra-params": ""})
    assert status == 400 and json.loads(body)["type"].endswith("/ProtocolVersion")


def test_attest_is_refused_and_audited(stack):
    assert http("POST", stack.gateway_url + "/api/kbs/v0/attest", {"tee-pubkey": {}, "tee-evidence": ""})[0] == 401
    records = json.loads(http("GET", stack.gateway_url + "/api/audit/attestation?source_service=kbs")[1])
    assert records["total"] >= 1 and records["data"][0]["successful"] is False


# --- configuration read and obeyed ----------------------------------------------------------

def _listening(port, host="127.0.0.1"):
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def test_binds_only_where_configured(stack):
    for name, proc in stack.procs.items():
        port = proc.ports[0]
        assert _listening(port), name
        # 127.0.0.2 is loopback too but not the configured address: nothing listens there
        assert not _listening(port, "127.0.0.2"), name


def test_gateway_tls_needs_insecure_http_false(stack_factory, tmp_path):
    cert, key = write_self_signed(str(tmp_path), "gw")
    # TLS paths alone leave plain HTTP, like the 1.5.2 gateway
    plain = stack_factory(gateway_tls=(cert, key))
    assert plain.gateway_url.startswith("http://")
    assert http("GET", plain.gateway_url + "/api/health")[0] == 200
    secure = stack_factory(gateway_tls=(cert, key), gateway_insecure_http=False)
    assert secure.gateway_url.startswith("https://")
    context = ssl.create_default_context(cafile=cert)
    status, body, _h = http("GET", secure.gateway_url + "/api/services-health", context=context)
    assert status == 200 and all(v["status"] == "ok" for v in json.loads(body).values())
    with pytest.raises(Exception):
        http("GET", secure.gateway_url + "/api/health", context=ssl.create_default_context())
    with pytest.raises(Exception):
        http("GET", secure.gateway_url.replace("https", "http") + "/api/health")
    port = int(secure.gateway_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            assert tls.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(open(cert, encoding="ascii").read())


def test_gateway_log_level_controls_header_dump(stack_factory):
    for level, expect in (("debug", True), ("info", False)):
        stack = stack_factory(gateway_level=level)
        http("GET", stack.gateway_url + "/api/kbs/v0/resources", headers=bearer(mint_jwt(stack.admin_key)))
        log = stack.procs["trustee-gateway"].output()
        assert ("Authorization" in log) is expect, level
        assert mint_jwt(stack.admin_key).split(".")[2] not in log
        for line in log.splitlines():
            assert json.loads(line)["level"]


def test_as_signer_must_be_rsa_and_certificate_is_served(stack_factory, tmp_path):
    cert, key = write_self_signed(str(tmp_path), "as-rsa")
    stack = stack_factory(as_signer={"key_path": key, "cert_path": cert})
    status, body, _h = http("GET", stack.gateway_url + "/api/attestation-service/certificate")
    assert status == 200 and body == open(cert, "rb").read()
    ed_cert, ed_key = write_self_signed(str(tmp_path), "as-ed", key_type="ed25519")
    from conftest import StandinStack  # pylint: disable=import-outside-toplevel
    bad = StandinStack(str(tmp_path / "bad"))
    with pytest.raises(RuntimeError, match="not an RSA key"):
        bad.start(as_signer={"key_path": ed_key, "cert_path": ed_cert})
    bad.stop()


def test_kbs_refuses_to_start_with_bad_config(stack_factory, tmp_path):
    stack = stack_factory()
    cfg = tmp_path / "kbs.toml"
    cases = {
        'insecure_http = false\nsockets = ["127.0.0.1:0"]\n': "private_key and certificate are required",
        'insecure_http = true\nsockets = ["127.0.0.1:0"]\n[admin]\nauth_public_key = "/nonexistent.pub"\n': "cannot read admin public key",
        'insecure_http = true\nsockets = ["127.0.0.1:0"]\n[attestation_token]\ninsecure_key = false\ntrusted_certs_paths = ["/nonexistent.pem"]\n':
            "trusted_certs_paths",
    }
    for text, message in cases.items():
        cfg.write_text("[http_server]\n" + text)
        proc = stack.start_process("kbs", ["--config-file", str(cfg)])
        assert proc.wait_exit() == 1
        assert message in proc.output()


def test_kbs_tls_and_insecure_key_false(stack_factory, tmp_path):
    cert, key = write_self_signed(str(tmp_path), "kbs")
    stack = stack_factory()
    cfg = tmp_path / "kbs-tls.toml"
    cfg.write_text('[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = false\nprivate_key = "%s"\ncertificate = "%s"\n'
                   '[attestation_token]\ninsecure_key = false\ntrusted_certs_paths = ["%s"]\n[admin]\nauth_public_key = "%s"\n'
                   '[policy_engine]\npolicy_path = "%s"\n[[plugins]]\nname = "resource"\ntype = "LocalFs"\ndir_path = "%s"\n'
                   % (key, cert, cert, stack.admin_pub_path, tmp_path / "p.rego", tmp_path / "repo"))
    proc = stack.start_process("kbs", ["--config-file", str(cfg)])
    port = proc.wait_ready()
    context = ssl.create_default_context(cafile=cert)
    status, _b, _h = http("POST", "https://127.0.0.1:%d/kbs/v0/auth" % port, {"version": "0.1.0", "tee": "tdx"}, context=context)
    assert status == 200
    assert "insecure_key = true" not in proc.output()


# --- pure pieces --------------------------------------------------------------------------

def test_pure_ed25519_matches_cryptography():
    key = ed25519.Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert standin.ed25519_public_from_seed(seed) == public
    message = b"header.payload"
    assert standin.ed25519_sign_pure(seed, message) == key.sign(message)  # Ed25519 is deterministic
    assert standin.ed25519_verify_pure(public, message, key.sign(message))
    assert not standin.ed25519_verify_pure(public, message + b"x", key.sign(message))
    assert not standin.ed25519_verify_pure(public, message, bytes(64))


def test_genkey_writes_pem_pair_that_openssl_and_cryptography_read(tmp_path):
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    priv, pub = str(tmp_path / "private.key"), str(tmp_path / "public.pub")
    standin.write_ed25519_keypair(priv, pub)
    assert os.stat(priv).st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(open(priv, "rb").read(), None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    raw = standin.load_ed25519_public_pem(pub)
    assert raw == key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert standin.verify_admin_jwt(mint_jwt(key), raw) is None


def test_verify_admin_jwt_pure_path(monkeypatch):
    monkeypatch.setattr(standin, "HAS_CRYPTOGRAPHY", False)
    key = ed25519.Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert standin.verify_admin_jwt(mint_jwt(key), raw) is None
    assert "signature" in standin.verify_admin_jwt(mint_jwt(ed25519.Ed25519PrivateKey.generate()), raw)
    assert "EdDSA" in standin.verify_admin_jwt(mint_jwt(key, header={"alg": "HS256"}), raw)
    now = int(time.time())
    assert standin.verify_admin_jwt(mint_jwt(key, claims={"exp": now - 16 * 60}), raw) == "token expired"
    assert standin.verify_admin_jwt(mint_jwt(key, claims={"nbf": now + 16 * 60}), raw) == "token not valid yet"


def test_simple_yaml_parser_agrees_with_pyyaml():
    yaml = pytest.importorskip("yaml")
    text = ("---\n# comment\nserver:\n  host: \"127.0.0.1\"  # trailing\n  port: 8081\n  insecure_http: false\n  tls:\n"
            "    cert_file: '/etc/trustee/gw.crt'\n    key_file: /etc/trustee/gw.key\nkbs:\n  url: http://127.0.0.1:8080\n"
            "list:\n  - a\n  - 'b c'\nempty: {}\nlogging:\n  level: info\n")
    assert standin.parse_simple_yaml(text) == yaml.safe_load(text)
