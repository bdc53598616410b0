#!/usr/bin/env python3
"""Independent vectors for Lockgate's SATP building blocks (RFC 8785 canonical
JSON and JWS ES256), made with libraries the project did not write:
Python `rfc8785` (Trail of Bits) for canonicalisation and `cryptography`
for ECDSA P-256. Writes satp.json beside this script.

Command (from the repository root):
    python3 adapters/tests/vectors/generate_satp.py
Pinned versions: pip install rfc8785==0.1.4 cryptography==48.0.0

ECDSA signatures from `cryptography` use random nonces, so re-running changes
the `jws` values (they stay valid); everything else is reproduced exactly.
The key is a throwaway test key: SHA-256 of "lockgate-satp-test-key".
"""
import base64
import hashlib
import json
import os

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JCS_INPUTS = [
    '{"b": 2, "a": 1}',
    '{"messageType": "urn:ietf:params:satp:core:msgtype:transfer-proposal-msg", "sessionId": "a1", "version": "v02", "nested": {"z": [3, 2, 1], "y": null, "x": true}}',
    '{"text": "quote \\" backslash \\\\ slash / tab \\t newline \\n bell \\u0007 unit \\u001f"}',
    '{"unicode": "é€𝄞😀", "\\u20ac": "euro key", "\\ud83d\\ude00": "emoji key", "\\ufffd": "replacement key"}',
    '{"numbers": [0, -0, 1, -1, 9007199254740991, -9007199254740991, 5.0]}',
    '[]',
    '{}',
    '"plain string"',
    '{"deep": {"b": {"d": 1, "c": 2}, "a": [{"y": 1, "x": 2}]}}',
]


def main() -> None:
    secret = int.from_bytes(hashlib.sha256(b"lockgate-satp-test-key").digest(), "big")
    key = ec.derive_private_key(secret, ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
    thumbprint = b64(hashlib.sha256(rfc8785.dumps(jwk)).digest())

    jcs = [{"input": text, "canonical": rfc8785.dumps(json.loads(text)).decode()} for text in JCS_INPUTS]

    payload = json.loads(JCS_INPUTS[1])
    header = {"alg": "ES256", "kid": thumbprint}
    signing_input = b64(rfc8785.dumps(header)) + "." + b64(rfc8785.dumps(payload))
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    jws = signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    detached = b64(rfc8785.dumps(header)) + ".." + jws.split(".")[2]

    out = {
        "generator": "python rfc8785 0.1.4 + cryptography 48.0.0",
        "privateKey": "0x" + secret.to_bytes(32, "big").hex(),
        "jwk": jwk,
        "thumbprint": thumbprint,
        "jcs": jcs,
        "jws": {"payload": payload, "compact": jws, "detached": detached},
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "satp.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
