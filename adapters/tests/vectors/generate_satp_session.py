#!/usr/bin/env python3
"""A complete SATP session transcript (stages 1-3 of draft-ietf-satp-core-17)
built independently of Lockgate: every message's JSON, its hash (SHA-256 hex
of the RFC 8785 canonical form, via Python `rfc8785`), the hash chain through
hashPrevMessage, and each message sealed as a flattened JWS JSON object
(ES256 with `cryptography`, header {"alg":"ES256","kid":<RFC 7638
thumbprint>,"typ":"satp+json"}). Writes satp_session.json beside this script.

Command (from the repository root):
    python3 adapters/tests/vectors/generate_satp_session.py
Pinned versions: pip install rfc8785==0.1.4 cryptography==48.0.0
Keys are throwaway test keys (SHA-256 of "lockgate-satp-client"/"-server").
Signatures change on every run (random ECDSA nonces) and stay valid.
"""
import base64
import hashlib
import json
import os

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

P = "urn:ietf:params:satp:core:msgtype:"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key(seed: bytes):
    k = ec.derive_private_key(int.from_bytes(hashlib.sha256(seed).digest(), "big"), ec.SECP256R1())
    n = k.public_key().public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "x": b64(n.x.to_bytes(32, "big")), "y": b64(n.y.to_bytes(32, "big"))}
    return k, jwk, b64(hashlib.sha256(rfc8785.dumps(jwk)).digest())


def h(value) -> str:
    return hashlib.sha256(rfc8785.dumps(value)).hexdigest()


def seal(message, signer):
    k, _, kid = signer
    protected = b64(rfc8785.dumps({"alg": "ES256", "kid": kid, "typ": "satp+json"}))
    payload = b64(rfc8785.dumps(message))
    r, s = decode_dss_signature(k.sign(f"{protected}.{payload}".encode(), ec.ECDSA(hashes.SHA256())))
    return {"protected": protected, "payload": payload, "signature": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}


def main() -> None:
    client, server = key(b"lockgate-satp-client"), key(b"lockgate-satp-server")
    sid, ctx = "3f0a1c52-6a4e-4b8e-9d3c-1f2e3d4c5b6a", "9e8d7c6b-5a49-4837-a625-14f3e2d1c0b9"
    claim = {
        "digitalAssetId": "lockgate:4201:EUR",
        "assetProfileId": "EUR-minor-units",
        "networkLockType": "HASH_TIME_LOCK",
        "assetLockExpirationTime": 3600,
        "verifiedOriginatorEntityId": "0xae069A9f8CaDc5bff3dFdd1CEd19273dE392C42A",
        "verifiedBeneficiaryEntityId": "0x61976Cc37C3d48Efc9f980F20c843b8f7ea350dd",
        "originatorPublicKey": "0xae069A9f8CaDc5bff3dFdd1CEd19273dE392C42A",
        "beneficiaryPublicKey": "0x61976Cc37C3d48Efc9f980F20c843b8f7ea350dd",
        "senderGatewaySignaturePublicKey": json.dumps(client[1], sort_keys=True),
        "receiverGatewaySignaturePublicKey": json.dumps(server[1], sort_keys=True),
        "senderGatewayId": "gateway-a",
        "recipientGatewayId": "gateway-b",
        "senderGatewayNetworkId": "lockgate:4201",
        "recipientGatewayNetworkId": "lockgate:4202",
    }
    caps = {
        "gatewayDefaultSignatureAlgorithm": "ES256",
        "gatewaySupportedSignatureAlgorithms": ["ES256"],
        "networkLockType": "HASH_TIME_LOCK",
        "networkLockExpirationTime": 3600,
        "gatewayTlsScheme": "TLS_AES_128_GCM_SHA256",
    }
    base = {"sessionId": sid, "transferContextId": ctx}
    flow = []

    def send(sender, message):
        flow.append((sender, message))

    send("client", {"messageType": P + "transfer-proposal-msg", "version": "1.0", **base,
                    "transferInitClaimFormat": "TRANSFER_INIT_CLAIM_FORMAT_1",
                    "transferInitClaim": claim, "gatewayAndNetworkCapabilities": caps})
    send("server", {"messageType": P + "proposal-receipt-msg", "version": "1.0", **base,
                    "hashTransferInitClaim": h(claim), "timestamp": "2026-11-25T02:00:00.000Z"})
    send("client", {"messageType": P + "transfer-commence-msg", **base,
                    "hashTransferInitClaim": h(claim), "hashPrevMessage": h(flow[-1][1])})
    commence_hash = h(flow[-1][1])
    send("server", {"messageType": P + "ack-commence-msg", **base, "hashPrevMessage": h(flow[-1][1])})
    send("client", {"messageType": P + "lock-assert-msg", **base,
                    "lockAssertionClaimFormat": "LOCK_ASSERTION_CLAIM_FORMAT_1",
                    "lockAssertionClaim": {"lockId": "0x" + "ab" * 32, "blockHeight": 7},
                    "lockAssertionExpiration": "2026-11-25T03:00:00.000Z", "hashPrevMessage": h(flow[-1][1])})
    send("server", {"messageType": P + "assertion-receipt-msg", **base, "hashPrevMessage": h(flow[-1][1])})
    send("client", {"messageType": P + "commit-prepare-msg", **base, "hashPrevMessage": h(flow[-1][1])})
    send("server", {"messageType": P + "commit-ready-msg", **base, "hashPrevMessage": h(flow[-1][1]),
                    "mintAssertionFormat": "MINT_ASSERTION_CLAIM_FORMAT_1", "mintAssertionClaim": {"lockId": "0x" + "cd" * 32}})
    send("client", {"messageType": P + "commit-final-msg", **base, "hashPrevMessage": h(flow[-1][1]),
                    "burnAssertionClaimFormat": "BURN_ASSERTION_CLAIM_FORMAT_1", "burnAssertionClaim": {"preimage": "0x" + "05" * 32}})
    send("server", {"messageType": P + "ack-commit-final-msg", **base, "hashPrevMessage": h(flow[-1][1]),
                    "assignmentAssertionClaimFormat": "ASSIGNMENT_ASSERTION_CLAIM_FORMAT_1", "assignmentAssertionClaim": {"claimed": True}})
    send("client", {"messageType": P + "commit-transfer-complete-msg", **base, "hashPrevMessage": h(flow[-1][1]),
                    "hashTransferCommence": commence_hash})

    out = {
        "generator": "python rfc8785 0.1.4 + cryptography 48.0.0",
        "keys": {"client": client[1], "server": server[1]},
        "messages": [
            {"sender": sender, "message": message, "hash": h(message),
             "envelope": seal(message, client if sender == "client" else server)}
            for sender, message in flow
        ],
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "satp_session.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
