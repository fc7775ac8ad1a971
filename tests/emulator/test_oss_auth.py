"""OSS emulator signature checks: V1, V4, STS, presigned URLs, tampering, stale dates, unknown keys."""

import time
from email.utils import formatdate
from xml.etree import ElementTree

import oss2
import pytest
import requests
from oss2 import exceptions as oe

from sandbox.alicloud.core import Clock
from sandbox.alicloud.oss_auth import SignatureVerifier
from sandbox.alicloud.oss_testing import OssEmulator


class ShiftedClock(Clock):
    """A clock the test can move: the emulator's idea of "now" is real time plus ``offset``."""

    def __init__(self):
        super().__init__()
        self.offset = 0.0

    def now(self):
        return time.time() + self.offset


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with OssEmulator(tmp_path_factory.mktemp("oss-auth"), clock=ShiftedClock()) as e:
        e.bucket("auth-bucket").create_bucket()
        yield e


@pytest.fixture(autouse=True)
def _reset_clock(emu):
    emu.clock.offset = 0.0
    yield
    emu.clock.offset = 0.0


def _signed(emu, auth, method, key, data=b"", headers=None, params=None, bucket="auth-bucket"):
    """Sign a request with oss2's own signer and return (url, headers, params) to send with requests."""
    url = "%s/%s/%s" % (emu.endpoint, bucket, oss2.compat.urlquote(key, "") if key else "")
    req = oss2.http.Request(method, url, data=data, headers=headers or {}, params=params or {}, region=emu.region, product="oss")
    auth._sign_request(req, bucket, key)  # pylint: disable=protected-access
    return url, dict(req.headers), dict(req.params)


def _error(resp):
    root = ElementTree.fromstring(resp.content)
    return {child.tag: child.text for child in root}


@pytest.mark.parametrize("mode", ["v1", "v4"])
def test_right_key_passes_wrong_secret_fails(emu, mode):
    v4 = mode == "v4"
    emu.bucket("auth-bucket", v4=v4).put_object("ok.txt", b"fine")
    ak = emu.credentials.static_key()[0]
    auth = oss2.AuthV4(ak, "not-the-secret") if v4 else oss2.Auth(ak, "not-the-secret")
    bad = oss2.Bucket(auth, emu.endpoint, "auth-bucket", region=emu.region)
    with pytest.raises(oe.SignatureDoesNotMatch) as err:
        bad.get_object("ok.txt")
    details = err.value.details
    assert err.value.status == 403
    assert details["OSSAccessKeyId"] == ak and details["StringToSign"] and details["SignatureProvided"]
    assert err.value.request_id
    with pytest.raises(oe.SignatureDoesNotMatch):
        bad.put_object("evil.txt", b"x")
    assert not emu.bucket("auth-bucket").object_exists("evil.txt")


@pytest.mark.parametrize("mode", ["v1", "v4"])
def test_unknown_access_key(emu, mode):
    auth = oss2.AuthV4("LTAInobody", "secret") if mode == "v4" else oss2.Auth("LTAInobody", "secret")
    b = oss2.Bucket(auth, emu.endpoint, "auth-bucket", region=emu.region)
    with pytest.raises(oe.ServerError) as err:
        b.get_object("ok.txt")
    assert (err.value.status, err.value.code) == (403, "InvalidAccessKeyId")
    with pytest.raises(oe.ServerError) as err:  # HEAD: the error comes from x-oss-err
        b.object_exists("ok.txt")
    assert err.value.code == "InvalidAccessKeyId"


@pytest.mark.parametrize("v4", [False, True])
def test_sts_token_required_and_checked(emu, v4):
    ak, sk, token = emu.credentials.sts_key()
    good = oss2.Bucket(oss2.StsAuth(ak, sk, token, auth_version="v4" if v4 else "v1"), emu.endpoint, "auth-bucket", region=emu.region)
    good.put_object("sts.txt", b"temporary")
    assert good.get_object("sts.txt").read() == b"temporary"
    wrong = oss2.Bucket(oss2.StsAuth(ak, sk, token + "x", auth_version="v4" if v4 else "v1"), emu.endpoint, "auth-bucket", region=emu.region)
    with pytest.raises(oe.ServerError) as err:
        wrong.get_object("sts.txt")
    assert (err.value.status, err.value.code) == (403, "InvalidSecurityToken")
    no_token = oss2.Bucket(oss2.AuthV4(ak, sk) if v4 else oss2.Auth(ak, sk), emu.endpoint, "auth-bucket", region=emu.region)
    with pytest.raises(oe.ServerError) as err:
        no_token.get_object("sts.txt")
    assert err.value.code == "InvalidAccessKeyId"


@pytest.mark.parametrize("v4", [False, True])
def test_modified_header_or_body_digest_fails(emu, v4):
    auth = emu.auth(v4=v4)
    url, headers, params = _signed(emu, auth, "PUT", "tamper.txt", data=b"original", headers={"x-oss-meta-role": "reader"})
    headers["x-oss-meta-role"] = "admin"
    resp = requests.put(url, data=b"original", headers=headers, params=params, timeout=10)
    assert resp.status_code == 403 and _error(resp)["Code"] == "SignatureDoesNotMatch"
    assert resp.headers["x-oss-request-id"]

    # Content-MD5 is signed: changing the body and its digest together breaks the signature
    url, headers, params = _signed(emu, auth, "PUT", "tamper.txt", data=b"original", headers={"Content-MD5": "hfw3FIiXr1/vLgLeS6BTwA=="})
    headers["Content-MD5"] = "1B2M2Y8AsgTpgAmY7PhCfg=="
    resp = requests.put(url, data=b"", headers=headers, params=params, timeout=10)
    assert resp.status_code == 403 and _error(resp)["Code"] == "SignatureDoesNotMatch"

    # the untouched request goes through
    url, headers, params = _signed(emu, auth, "PUT", "tamper.txt", data=b"original", headers={"x-oss-meta-role": "reader"})
    assert requests.put(url, data=b"original", headers=headers, params=params, timeout=10).status_code == 200
    assert emu.bucket("auth-bucket").get_object("tamper.txt").headers["x-oss-meta-role"] == "reader"


@pytest.mark.parametrize("v4", [False, True])
def test_replayed_old_request_is_too_skewed(emu, v4):
    url, headers, params = _signed(emu, emu.auth(v4=v4), "GET", "", params={"bucketInfo": ""})
    assert requests.get(url, headers=headers, params=params, timeout=10).status_code == 200
    emu.clock.offset = 16 * 60  # the same request, replayed 16 minutes later
    resp = requests.get(url, headers=headers, params=params, timeout=10)
    assert resp.status_code == 403 and _error(resp)["Code"] == "RequestTimeTooSkewed"
    with pytest.raises(oe.ServerError) as err:  # a client whose clock is off gets the same through oss2
        emu.bucket("auth-bucket", v4=v4).get_bucket_info()
    assert err.value.code == "RequestTimeTooSkewed"


def test_v1_date_header_is_signed(emu):
    url, headers, params = _signed(emu, emu.auth(), "GET", "", params={"bucketInfo": ""})
    headers["date"] = formatdate(time.time() - 60, usegmt=True)
    resp = requests.get(url, headers=headers, params=params, timeout=10)
    assert resp.status_code == 403 and _error(resp)["Code"] == "SignatureDoesNotMatch"


def test_anonymous_request_is_denied(emu):
    resp = requests.get("%s/auth-bucket/?bucketInfo=" % emu.endpoint, timeout=10)
    assert resp.status_code == 403 and _error(resp)["Code"] == "AccessDenied"


def test_invalid_bucket_name_from_the_server(emu):
    url, headers, params = _signed(emu, emu.auth(), "PUT", "", bucket="Bad_Bucket")
    resp = requests.put(url, headers=headers, params=params, timeout=10)
    assert resp.status_code == 400 and _error(resp)["Code"] == "InvalidBucketName"


@pytest.mark.parametrize("v4", [False, True])
def test_presigned_urls(emu, v4):
    b = emu.bucket("auth-bucket", v4=v4)
    b.put_object("shared.bin", b"presigned payload")
    url = b.sign_url("GET", "shared.bin", 60)
    assert requests.get(url, timeout=10).content == b"presigned payload"
    assert requests.get(url.replace("shared.bin", "other.bin"), timeout=10).status_code == 403
    emu.clock.offset = 3600
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 403 and _error(resp)["Code"] == "AccessDenied"


def test_reference_signature_vectors():
    """The worked examples of the wire reference (sections 10.2 and 10.3) verify."""

    class Creds:
        @staticmethod
        def lookup(ak):
            return ("testsecret", None) if ak == "testak" else None

    class FixedClock:
        def __init__(self, ts):
            self.ts = ts

        @staticmethod
        def now_of(ts):
            return ts

        def now(self):
            return self.ts

    date = "Wed, 01 Jan 2025 00:00:00 GMT"
    verifier = SignatureVerifier(Creds(), FixedClock(1735689600))
    headers = [("Content-Type", "text/plain"), ("x-oss-meta-owner", "vllm"), ("Date", date),
               ("Authorization", "OSS testak:cfXdzy8BLskmUnBpyBFwl2i1Ub0=")]
    assert verifier.verify("PUT", "my-bucket", "dir/a.txt", [], headers) == "testak"
    query = [("list-type", "2"), ("prefix", "dir/"), ("continuation-token", "tok"), ("max-keys", "100")]
    headers = [("Date", date), ("Authorization", "OSS testak:QHEtcmVtSb+gprVVsv7Qg54k+k0=")]
    assert verifier.verify("GET", "my-bucket", "", query, headers) == "testak"
    headers = [("Content-Type", "text/plain"), ("x-oss-meta-owner", "vllm"), ("x-oss-date", "20250101T000000Z"),
               ("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
               ("Authorization", "OSS4-HMAC-SHA256 Credential=testak/20250101/cn-beijing/oss/aliyun_v4_request, "
                                 "Signature=a92c76af5fdbfbaaced4810b99708f2c75c81390124a40db0c3c8fbd0ee51b10")]
    assert verifier.verify("PUT", "my-bucket", "dir/a.txt", [], headers) == "testak"
