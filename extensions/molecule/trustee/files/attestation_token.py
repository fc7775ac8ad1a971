"""Write an attestation token for the trustee scenario's verify step, as a curl header file (0600).

    python attestation_token.py forged OUT
        A token whose claims say everything the restrictive resource policy wants (TDX, policy
        "default", GPU CC on and measured), signed with a key made on the spot; the JWK in its
        header is that key, with a self-signed certificate as x5c. A KBS with insecure_key = true
        trusts it; the hardened KBS must refuse it.
    python attestation_token.py signed KEY CERT CA OUT
        The same claims signed by the attestation service signer KEY, with x5c = CERT, CA: what the
        deployment's own attestation service would issue. The hardened KBS must accept the token
        (the Trustee stand-in then answers 403 at the policy stage: it never releases a resource).

Runs on the controller with the Python of ansible-playbook (needs cryptography).
"""

import base64
import datetime
import json
import os
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def self_signed(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CoCo-Attestation-Service")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def token(key, chain):
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "RSA", "alg": "RS384",
           "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
           "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
           "x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii") for c in chain]}
    now = int(time.time())
    claims = {"iss": "CoCo-Attestation-Service", "iat": now, "nbf": now, "exp": now + 300, "tee": "tdx",
              "evaluation-reports": [{"policy-id": "default", "policy-hash": "0" * 96}],
              "tcb-status": json.dumps({"tdx.quote.body.mr_td": "00" * 48, "tdx.nvidia_gpu.0.cc_enabled": True,
                                        "tdx.nvidia_gpu.0.measurement": "00" * 48})}
    signing_input = b64url(json.dumps({"alg": "RS384", "typ": "JWT", "jwk": jwk}).encode()) + "." + b64url(json.dumps(claims).encode())
    return signing_input + "." + b64url(key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA384()))


def load_cert(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def main(argv):
    if len(argv) == 2 and argv[0] == "forged":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        text, out = token(key, [self_signed(key)]), argv[1]
    elif len(argv) == 5 and argv[0] == "signed":
        with open(argv[1], "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), None)
        text, out = token(key, [load_cert(argv[2]), load_cert(argv[3])]), argv[4]
    else:
        sys.stderr.write(__doc__)
        return 2
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write("Authorization: Bearer %s\n" % text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
