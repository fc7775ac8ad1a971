"""Authentication of the ECS/CS front end: ACS3-HMAC-SHA256, legacy HMAC-SHA1 (RPC and ROA), STS, dates, nonces.

The SDK paths use the official clients; the tampering tests sign requests with the small independent
ACS3 signer below (written from the wire reference, section 4.2) and then change one part.
"""

import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import quote, urlencode

import pytest
import requests
from alibabacloud_cs20151215 import models as cm
from alibabacloud_ecs20140526 import models as em
from alibabacloud_tea_openapi.exceptions import ClientException

from sandbox.alicloud.testing import cs_client, ecs_client

REGION = "cn-beijing"


def acs3_headers(emu, method, path, query, body, secret=None, ak=None, date=None, nonce=None, version="2014-05-26",
                 action="DescribeRegions", extra=None):
    """Headers of an ACS3-HMAC-SHA256 signed request (independent implementation for the tests)."""
    if ak is None:
        ak, default_secret = emu.static_key
        secret = secret or default_secret
    headers = {
        "host": emu.api_endpoint, "x-acs-version": version, "x-acs-action": action,
        "x-acs-date": date or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex, "accept": "application/json",
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    if body:
        headers["content-type"] = "application/json; charset=utf-8"
    headers.update(extra or {})
    names = sorted(headers)
    canonical_query = "&".join("%s=%s" % (k, quote(v, safe="~")) for k, v in sorted(query.items()))
    canonical = "\n".join([method, path, canonical_query, "".join("%s:%s\n" % (n, headers[n].strip()) for n in names),
                           ";".join(names), headers["x-acs-content-sha256"]])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    sig = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = "ACS3-HMAC-SHA256 Credential=%s,SignedHeaders=%s,Signature=%s" % (ak, ";".join(names), sig)
    return headers


def send(emu, method, path, query, headers, body=b""):
    url = "http://%s%s" % (emu.api_endpoint, path)
    if query:
        url += "?" + urlencode(query)
    session = requests.Session()
    session.trust_env = False
    resp = session.request(method, url, headers=headers, data=body, timeout=10)
    return resp.status_code, resp.json()


def ecs_call(emu, **kw):
    query = {"AcceptLanguage": "en-US"}
    headers = acs3_headers(emu, "POST", "/", query, b"", **kw)
    return send(emu, "POST", "/", query, headers)


# -- through the SDK ---------------------------------------------------------------------------------------


def test_right_static_key_passes(alicloud):
    body = ecs_client(alicloud).describe_regions(em.DescribeRegionsRequest()).body
    assert body.regions.region[0].region_id == REGION


def test_sts_key_passes(alicloud):
    body = ecs_client(alicloud, sts=True).describe_regions(em.DescribeRegionsRequest()).body
    assert body.regions.region[0].region_id == REGION
    clusters = cs_client(alicloud, sts=True).describe_clusters_v1(cm.DescribeClustersV1Request()).body
    assert clusters.clusters == []


def sdk_error(func):
    with pytest.raises(ClientException) as info:
        func()
    return info.value


def test_wrong_secret_is_rejected(alicloud):
    ak = alicloud.static_key[0]
    client = ecs_client(alicloud, access_key_id=ak, access_key_secret="wrong-secret")
    err = sdk_error(lambda: client.describe_regions(em.DescribeRegionsRequest()))
    assert err.code == "SignatureDoesNotMatch" and err.status_code == 400
    cs = cs_client(alicloud, access_key_id=ak, access_key_secret="wrong-secret")
    err = sdk_error(lambda: cs.describe_clusters_v1(cm.DescribeClustersV1Request()))
    assert err.code == "SignatureDoesNotMatch"
    assert alicloud.requests()[-1]["code"] == "SignatureDoesNotMatch"


def test_unknown_access_key(alicloud):
    client = ecs_client(alicloud, access_key_id="LTAInotknown", access_key_secret="x")
    err = sdk_error(lambda: client.describe_regions(em.DescribeRegionsRequest()))
    assert err.code == "InvalidAccessKeyId.NotFound" and err.status_code == 404


def test_sts_token_checks(alicloud):
    ak, sk = alicloud.sts_key[:2]
    wrong = ecs_client(alicloud, access_key_id=ak, access_key_secret=sk, security_token="not-the-token")
    err = sdk_error(lambda: wrong.describe_regions(em.DescribeRegionsRequest()))
    assert err.code == "InvalidSecurityToken.MismatchWithAccessKey"
    missing = ecs_client(alicloud, access_key_id=ak, access_key_secret=sk)
    err = sdk_error(lambda: missing.describe_regions(em.DescribeRegionsRequest()))
    assert err.code == "MissingSecurityToken"


def test_failed_authentication_mutates_nothing(alicloud):
    ak = alicloud.static_key[0]
    client = ecs_client(alicloud, access_key_id=ak, access_key_secret="wrong-secret")
    err = sdk_error(lambda: client.run_instances(em.RunInstancesRequest(
        region_id=REGION, instance_type="ecs.g8i.xlarge", image_family="acs:alibaba_cloud_linux_3_2104_lts_x64",
        v_switch_id="vsw-sbx00000000000000000h", security_group_id="sg-sbx0000000000000000001")))
    assert err.code == "SignatureDoesNotMatch"
    assert ecs_client(alicloud).describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.total_count == 0


def test_legacy_v2_signatures(alicloud):
    ecs = ecs_client(alicloud, signature_algorithm="v2")
    assert ecs.describe_regions(em.DescribeRegionsRequest()).body.regions.region[0].region_id == REGION
    cs = cs_client(alicloud, signature_algorithm="v2")
    assert cs.describe_clusters_v1(cm.DescribeClustersV1Request(name="x")).body.clusters == []
    sts = ecs_client(alicloud, sts=True, signature_algorithm="v2")
    assert sts.describe_zones(em.DescribeZonesRequest(region_id=REGION)).body.zones.zone
    ak = alicloud.static_key[0]
    bad = ecs_client(alicloud, signature_algorithm="v2", access_key_id=ak, access_key_secret="nope")
    assert sdk_error(lambda: bad.describe_regions(em.DescribeRegionsRequest())).code == "SignatureDoesNotMatch"
    bad_cs = cs_client(alicloud, signature_algorithm="v2", access_key_id=ak, access_key_secret="nope")
    assert sdk_error(lambda: bad_cs.describe_clusters_v1(cm.DescribeClustersV1Request())).code == "SignatureDoesNotMatch"


# -- tampered raw requests -------------------------------------------------------------------------------------


def test_independent_signer_agrees(alicloud):
    status, body = ecs_call(alicloud)
    assert status == 200 and body["Regions"]["Region"][0]["RegionId"] == REGION


def test_modified_query_is_rejected(alicloud):
    query = {"RegionId": REGION, "InstanceName": "vllm tee*"}
    headers = acs3_headers(alicloud, "POST", "/", query, b"", action="DescribeInstances")
    status, body = send(alicloud, "POST", "/", dict(query, InstanceName="other"), headers)
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    assert body["RequestId"] and "string to sign" in body["Message"]
    status, body = send(alicloud, "POST", "/", query, acs3_headers(alicloud, "POST", "/", query, b"", action="DescribeInstances"))
    assert status == 200 and body["TotalCount"] == 0


def test_modified_body_is_rejected(alicloud):
    path = "/clusters"
    body = json.dumps({"name": "a", "cluster_type": "ManagedKubernetes", "region_id": REGION,
                       "vswitch_ids": ["vsw-sbx00000000000000000l"]}, separators=(",", ":")).encode()
    headers = acs3_headers(alicloud, "POST", path, {}, body, version="2015-12-15", action="CreateCluster")
    tampered = body.replace(b'"a"', b'"b"')
    status, answer = send(alicloud, "POST", path, {}, headers, tampered)
    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")
    # recomputing the body hash without the secret does not help either
    headers["x-acs-content-sha256"] = hashlib.sha256(tampered).hexdigest()
    status, answer = send(alicloud, "POST", path, {}, headers, tampered)
    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")
    assert alicloud.mutating_requests() and all(r["status"] == 400 for r in alicloud.mutating_requests()[-2:])
    listed = cs_client(alicloud).describe_clusters_v1(cm.DescribeClustersV1Request()).body.clusters
    assert listed == []


def test_replayed_old_date_is_rejected(alicloud):
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 20 * 60))
    status, body = ecs_call(alicloud, date=old)
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 20 * 60))
    assert ecs_call(alicloud, date=future)[1]["Code"] == "InvalidTimeStamp.Expired"
    assert ecs_call(alicloud, date="yesterday")[1]["Code"] == "InvalidTimeStamp.Format"
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5 * 60))
    assert ecs_call(alicloud, date=recent)[0] == 200


def test_replayed_nonce_is_rejected(alicloud):
    query = {"AcceptLanguage": "en-US"}
    headers = acs3_headers(alicloud, "POST", "/", query, b"", nonce="0123456789abcdef0123456789abcdef")
    assert send(alicloud, "POST", "/", query, headers)[0] == 200
    status, body = send(alicloud, "POST", "/", query, headers)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")


def test_missing_or_malformed_authorization(alicloud):
    query = {"AcceptLanguage": "en-US"}
    headers = acs3_headers(alicloud, "POST", "/", query, b"")
    del headers["Authorization"]
    status, body = send(alicloud, "POST", "/", query, headers)
    assert (status, body["Code"]) == (400, "IncompleteSignature")
    headers["Authorization"] = "ACS3-HMAC-SHA256 Credential=x"
    assert send(alicloud, "POST", "/", query, headers)[1]["Code"] == "IncompleteSignature"
    # a signature that leaves the date unsigned is incomplete
    ak, sk = alicloud.static_key
    signed = acs3_headers(alicloud, "POST", "/", query, b"", secret=sk, ak=ak)
    auth = signed["Authorization"].replace("x-acs-date;", "")
    signed["Authorization"] = auth
    assert send(alicloud, "POST", "/", query, signed)[1]["Code"] == "IncompleteSignature"


def test_unknown_version_and_action(alicloud):
    status, body = ecs_call(alicloud, version="2099-01-01")
    assert (status, body["Code"]) == (404, "InvalidApi.NotFound")
    status, body = ecs_call(alicloud, action="NoSuchAction")
    assert (status, body["Code"]) == (404, "InvalidApi.NotFound")
