# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

pytest.importorskip("cryptography")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402

from ansible_collections.confidential_ai.ack.plugins.module_utils import trustee  # noqa: E402
from ansible_collections.confidential_ai.ack.plugins.module_utils.trustee import TrusteeError  # noqa: E402


def pem(key, password=None):
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


# --- key ids --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["default/aliyun/model-decryption-key", "kbs:///default/aliyun/model-decryption-key",
                                   "a/b/c", "A_1/-x/v1.2.3", "default/grp/name."])
def test_parse_key_id_accepts(value):
    segments = trustee.parse_key_id(value)
    assert len(segments) == 3
    assert trustee.key_id_uri(segments) == "kbs:///" + trustee.key_id_path(segments)
    assert value.endswith(trustee.key_id_path(segments))


@pytest.mark.parametrize("value, fragment", [
    ("default/aliyun", "exactly three segments"),
    ("default/a/b/c", "exactly three segments"),
    ("kbs:///default/aliyun", "exactly three segments"),
    ("/default/a/b", "exactly three segments"),
    ("default//b", "segment ''"),
    ("default/.hidden/b", "segment '.hidden'"),
    ("default/a b/c", "segment 'a b'"),
    ("default/a/ü", "segment"),
    ("kbs://trustee:8080/default/a/b", "empty host"),
    ("https://x/default/a/b", "only kbs:///"),
    ("kbs:///default/a/b?x=1", "query strings"),
    ("", "non-empty"),
])
def test_parse_key_id_refuses_with_clear_message(value, fragment):
    with pytest.raises(TrusteeError) as info:
        trustee.parse_key_id(value)
    assert fragment in info.value.message
    assert info.value.message.startswith("key_id")


def test_policy_id_validation():
    assert trustee.validate_policy_id("default") == "default"
    with pytest.raises(TrusteeError, match="attestation_policies\\[0\\].id"):
        trustee.validate_policy_id("../x", "attestation_policies[0].id")


# --- base64url ------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"\xfb\xff\xfe", "package policy\n".encode()])
def test_b64url_has_no_padding_and_round_trips(data):
    encoded = trustee.b64url_encode(data)
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert trustee.b64url_decode(encoded) == data
    assert trustee.b64url_decode(base64.urlsafe_b64encode(data).decode()) == data  # padded read-back tolerated


def test_b64url_decode_refuses_standard_alphabet():
    with pytest.raises(TrusteeError):
        trustee.b64url_decode("+/+/")


def test_policy_from_body_forms():
    text = b"package policy\n"
    encoded = trustee.b64url_encode(text)
    assert trustee._policy_from_body(encoded.encode()) == text
    assert trustee._policy_from_body(json.dumps(encoded).encode()) == text
    assert trustee._policy_from_body(json.dumps({"policy": encoded}).encode()) == text


# --- admin key and JWT ----------------------------------------------------------------------

def test_load_admin_key_from_content_and_path(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    loaded = trustee.load_admin_key(content=pem(key))
    assert trustee.raw_private_bytes(loaded) == trustee.raw_private_bytes(key)
    path = tmp_path / "admin.key"
    path.write_text(pem(key))
    assert trustee.raw_private_bytes(trustee.load_admin_key(path=str(path))) == trustee.raw_private_bytes(key)


@pytest.mark.parametrize("make, fragment", [
    (lambda: pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "must be an Ed25519 private key (the KBS admin key); got an RSA key"),
    (lambda: pem(ec.generate_private_key(ec.SECP256R1())), "got an EC key"),
    (lambda: pem(ed25519.Ed25519PrivateKey.generate(), b"pw"), "is encrypted"),
    (lambda: "not a key", "is not a PEM private key"),
    (lambda: ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), "could not be loaded"),
])
def test_load_admin_key_refuses(make, fragment):
    with pytest.raises(TrusteeError) as info:
        trustee.load_admin_key(content=make())
    assert fragment in info.value.message
    assert info.value.message.startswith("admin_key")


def test_load_admin_key_path_errors_name_the_field(tmp_path):
    with pytest.raises(TrusteeError, match="admin_key_path .* cannot be read"):
        trustee.load_admin_key(path=str(tmp_path / "missing"))
    with pytest.raises(TrusteeError, match="one of admin_key or admin_key_path"):
        trustee.load_admin_key()


def test_mint_admin_jwt_structure_and_signature():
    key = ed25519.Ed25519PrivateKey.generate()
    token = trustee.mint_admin_jwt(key, lifetime=120, now=1000)
    header, claims, signature = trustee.decode_jwt_unverified(token)
    assert header == {"alg": "EdDSA", "typ": "JWT"}
    assert claims == {"iat": 1000, "exp": 1120}
    assert "=" not in token
    signing_input = token.rsplit(".", 1)[0].encode()
    key.public_key().verify(signature, signing_input)  # raises if wrong
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(Exception):
        other.verify(signature, signing_input)


# --- state file -----------------------------------------------------------------------------

def test_content_digest_is_keyed_and_specific():
    key = ed25519.Ed25519PrivateKey.generate()
    seg = ("default", "aliyun", "k")
    base = trustee.content_digest(key, "https://t:8081", seg, b"pw")
    assert base == trustee.content_digest(key, "https://t:8081/api/", seg, b"pw")  # same gateway
    assert base != trustee.content_digest(key, "https://t:8081", seg, b"pw\n")
    assert base != trustee.content_digest(key, "https://u:8081", seg, b"pw")
    assert base != trustee.content_digest(key, "https://t:8081", ("default", "aliyun", "j"), b"pw")
    assert base != trustee.content_digest(ed25519.Ed25519PrivateKey.generate(), "https://t:8081", seg, b"pw")
    import hashlib  # pylint: disable=import-outside-toplevel
    assert base != hashlib.sha256(b"pw").hexdigest()


def test_state_file_round_trip_is_0600(tmp_path):
    path = str(tmp_path / "sub" / "state.json")
    state = trustee.read_state(path)
    assert state["resources"] == {}
    state["resources"]["x"] = "y"
    trustee.write_state(path, state)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert trustee.read_state(path)["resources"] == {"x": "y"}
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(TrusteeError, match="does not look like"):
        trustee.read_state(str(tmp_path / "bad.json"))


# --- client pieces --------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://t:8081", "https://t:8081/", "https://t:8081/api", "https://t:8081/api/"])
def test_normalize_url(url):
    assert trustee.normalize_url(url) == "https://t:8081"


def test_client_refuses_bad_url():
    with pytest.raises(TrusteeError, match="must start with http"):
        trustee.TrusteeClient("trustee:8081")


def test_client_retries_connection_errors_only(monkeypatch):
    calls = []

    def refused(url, **kwargs):
        calls.append(url)
        raise trustee.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(trustee, "open_url", refused)
    monkeypatch.setattr(trustee.time, "sleep", lambda s: None)
    client = trustee.TrusteeClient("http://127.0.0.1:9", retries=2)
    with pytest.raises(TrusteeError, match="cannot reach the Trustee gateway"):
        client.list_resources()
    assert len(calls) == 3

    calls[:] = []

    def http_500(url, **kwargs):
        calls.append(url)
        raise trustee.HTTPError(url, 500, "err", {}, None)

    monkeypatch.setattr(trustee, "open_url", http_500)
    with pytest.raises(TrusteeError) as info:
        client.list_resources()
    assert info.value.status == 500 and len(calls) == 1


def test_admin_call_without_key_is_a_clear_error():
    client = trustee.TrusteeClient("http://127.0.0.1:9")
    with pytest.raises(TrusteeError, match="needs the admin key"):
        client.set_resource(("a", "b", "c"), b"x")


def test_describe_http_error_explains_401():
    body = json.dumps({"type": "https://github.com/confidential-containers/kbs/errors/AdminAuth", "detail": "Admin auth error"})
    text = trustee.describe_http_error("POST", "/api/kbs/v0/resource/a/b/c", 401, body.encode())
    assert "HTTP 401" in text and "AdminAuth" in text and "admin.auth_public_key" in text
