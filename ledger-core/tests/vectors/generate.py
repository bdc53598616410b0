#!/usr/bin/env python3
"""Generate independent EIP-712 test vectors for Lockgate's ledger-core.

What it does: builds typed-data messages for every Lockgate primary type
(RegisterAsset, Issue, Burn, Transfer, HtlcLock, HtlcClaim, HtlcRefund,
Anchor, BlockHeader) under the domain
EIP712Domain(string name,string version,uint256 chainId), signs each one with
eth_account.Account.sign_typed_data(private_key, full_message=...), and writes
eip712.json next to this script. The domain separator, struct hash and digest
come from eth_account's own encoding (encode_typed_data), and every signature
is checked by recovery inside this script.

The script is deterministic: no randomness, no clock. Keys and all 32-byte
values are SHA-256 of fixed ASCII strings. Re-running reproduces eip712.json
byte for byte.

Command (from the repository root):
    python3 ledger-core/tests/vectors/generate.py

Pinned versions (Python 3.11):
    pip install eth-account==0.14.0
    (pulls eth-keys 0.8.0, eth-abi 6.0.0, eth-utils 6.0.0, eth-hash 0.8.0,
     hexbytes 2.0.0, pycryptodome 3.24.1 in the environment used to generate)

JSON encoding rules: every uint in domain/message is a decimal string;
bytes/bytes32 are 0x-prefixed lowercase hex; addresses are EIP-55
checksummed; address[] is a JSON list. The signature is
r (32) || s (32) || v (1 byte, 27 or 28).
"""

import copy
import hashlib
import json
import os

import eth_account
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import keccak

EXPECTED_ETH_ACCOUNT_VERSION = "0.14.0"
assert eth_account.__version__ == EXPECTED_ETH_ACCOUNT_VERSION, (
    f"expected eth_account {EXPECTED_ETH_ACCOUNT_VERSION}, got {eth_account.__version__}"
)

OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eip712.json")

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

U64_MAX = 2**64 - 1  # 18446744073709551615
I64_MAX = 2**63 - 1  # 9223372036854775807
U128_MAX = 2**128 - 1  # 340282366920938463463374607431768211455


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def h32(label: str) -> bytes:
    """Fixed, reproducible 32-byte value: SHA-256 of an ASCII label."""
    return sha256(label.encode("ascii"))


def private_key(i: int) -> bytes:
    return sha256(f"lockgate-test-key-{i}".encode("ascii"))


KEYS = {i: private_key(i) for i in range(1, 5)}
ADDRS = {i: Account.from_key(k).address for i, k in KEYS.items()}  # EIP-55

DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
]


def fields(spec: str):
    out = []
    for part in spec.split(","):
        typ, name = part.split(" ")
        out.append({"name": name, "type": typ})
    return out


PRIMARY_TYPES = {
    "RegisterAsset": fields("address from,uint64 nonce,string code,uint8 scale"),
    "Issue": fields("address from,uint64 nonce,string asset,address to,uint256 amount"),
    "Burn": fields("address from,uint64 nonce,string asset,uint256 amount"),
    "Transfer": fields("address from,uint64 nonce,string asset,address to,uint256 amount"),
    "HtlcLock": fields(
        "address from,uint64 nonce,string asset,address recipient,uint256 amount,"
        "bytes32 hashlock,uint64 expiresAtMs"
    ),
    "HtlcClaim": fields("address from,uint64 nonce,bytes32 lockId,bytes preimage"),
    "HtlcRefund": fields("address from,uint64 nonce,bytes32 lockId"),
    "Anchor": fields("address from,uint64 nonce,bytes32 documentHash,address[] parties"),
    "BlockHeader": fields(
        "uint64 height,bytes32 previousHash,uint64 timestampMs,bytes32 txRoot,"
        "uint32 txCount,address producer"
    ),
}


def type_string(primary: str) -> str:
    inner = ",".join(f"{f['type']} {f['name']}" for f in PRIMARY_TYPES[primary])
    return f"{primary}({inner})"


# --- shared fixed values -----------------------------------------------------

PREIMAGE_32 = h32("lockgate-preimage-1")  # 32 bytes
HASHLOCK_OF_PREIMAGE_32 = sha256(PREIMAGE_32)  # used by htlclock-* and claimed below
PREIMAGE_33 = sha256(b"lockgate-preimage-33") + b"\x33"  # 33 bytes
HASHLOCK_2 = h32("lockgate-hashlock-2")
LOCK_ID_1 = h32("lockgate-lock-id-1")
LOCK_ID_2 = h32("lockgate-lock-id-2")
LOCK_ID_3 = h32("lockgate-lock-id-3")
DOC_HASH_1 = h32("lockgate-document-1")
DOC_HASH_2 = h32("lockgate-document-2")
EMPTY_SHA256 = sha256(b"")
assert EMPTY_SHA256.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
TX_ROOT_42 = h32("lockgate-txroot-42")
PREV_HASH_42 = h32("lockgate-block-41")
EXPIRES_AT_MS = 1767225600000  # 2026-01-01T00:00:00Z

# --- vector specs: (name, key index, chainId, primaryType, message) -----------
# Messages use real Python ints and bytes; they are converted to the JSON
# encoding (decimal strings / hex) only when written out.

SPECS = [
    # RegisterAsset
    ("registerasset-chain1-nonce0-eur-scale2", 1, 1, "RegisterAsset",
     {"from": ADDRS[1], "nonce": 0, "code": "EUR", "scale": 2}),
    ("registerasset-chain31337-nonce1-usdc-scale18", 2, 31337, "RegisterAsset",
     {"from": ADDRS[2], "nonce": 1, "code": "USDC", "scale": 18}),
    ("registerasset-chainmax-nonce0-12char-scale0", 3, I64_MAX, "RegisterAsset",
     {"from": ADDRS[3], "nonce": 0, "code": "ABCDEFGHIJ12", "scale": 0}),
    # Issue
    ("issue-chain1-nonce1-eur-amount1", 1, 1, "Issue",
     {"from": ADDRS[1], "nonce": 1, "asset": "EUR", "to": ADDRS[2], "amount": 1}),
    ("issue-chain31337-noncemax-token1-u128max", 2, 31337, "Issue",
     {"from": ADDRS[2], "nonce": U64_MAX, "asset": "TOKEN-1", "to": ADDRS[3], "amount": U128_MAX}),
    # Burn
    ("burn-chain1-nonce0-usdc-amount1", 3, 1, "Burn",
     {"from": ADDRS[3], "nonce": 0, "asset": "USDC", "amount": 1}),
    ("burn-chainmax-nonce1-12char-u128max", 4, I64_MAX, "Burn",
     {"from": ADDRS[4], "nonce": 1, "asset": "ABCDEFGHIJ12", "amount": U128_MAX}),
    # Transfer
    ("transfer-chain1-nonce0", 1, 1, "Transfer",
     {"from": ADDRS[1], "nonce": 0, "asset": "EUR", "to": ADDRS[2], "amount": 12345}),
    ("transfer-chain31337-nonce1-usdc-amount1", 2, 31337, "Transfer",
     {"from": ADDRS[2], "nonce": 1, "asset": "USDC", "to": ADDRS[1], "amount": 1}),
    ("transfer-chainmax-noncemax-token1-u128max", 4, I64_MAX, "Transfer",
     {"from": ADDRS[4], "nonce": U64_MAX, "asset": "TOKEN-1", "to": ADDRS[3], "amount": U128_MAX}),
    # HtlcLock
    ("htlclock-chain1-nonce2-eur-preimage32", 1, 1, "HtlcLock",
     {"from": ADDRS[1], "nonce": 2, "asset": "EUR", "recipient": ADDRS[2], "amount": 500,
      "hashlock": HASHLOCK_OF_PREIMAGE_32, "expiresAtMs": EXPIRES_AT_MS}),
    ("htlclock-chain31337-noncemax-usdc-u128max", 3, 31337, "HtlcLock",
     {"from": ADDRS[3], "nonce": U64_MAX, "asset": "USDC", "recipient": ADDRS[4], "amount": U128_MAX,
      "hashlock": HASHLOCK_2, "expiresAtMs": EXPIRES_AT_MS}),
    # HtlcClaim
    ("htlcclaim-chain1-nonce0-preimage32", 2, 1, "HtlcClaim",
     {"from": ADDRS[2], "nonce": 0, "lockId": LOCK_ID_1, "preimage": PREIMAGE_32}),
    ("htlcclaim-chain31337-nonce1-preimage0", 3, 31337, "HtlcClaim",
     {"from": ADDRS[3], "nonce": 1, "lockId": LOCK_ID_2, "preimage": b""}),
    ("htlcclaim-chainmax-noncemax-preimage33", 4, I64_MAX, "HtlcClaim",
     {"from": ADDRS[4], "nonce": U64_MAX, "lockId": LOCK_ID_3, "preimage": PREIMAGE_33}),
    # HtlcRefund
    ("htlcrefund-chain1-nonce3", 1, 1, "HtlcRefund",
     {"from": ADDRS[1], "nonce": 3, "lockId": LOCK_ID_1}),
    ("htlcrefund-chainmax-noncemax", 3, I64_MAX, "HtlcRefund",
     {"from": ADDRS[3], "nonce": U64_MAX, "lockId": LOCK_ID_2}),
    # Anchor
    ("anchor-chain1-nonce0-1party", 1, 1, "Anchor",
     {"from": ADDRS[1], "nonce": 0, "documentHash": DOC_HASH_1, "parties": [ADDRS[2]]}),
    ("anchor-chain31337-nonce1-3parties", 2, 31337, "Anchor",
     {"from": ADDRS[2], "nonce": 1, "documentHash": DOC_HASH_2,
      "parties": [ADDRS[1], ADDRS[3], ADDRS[4]]}),
    ("anchor-chainmax-noncemax-1party", 4, I64_MAX, "Anchor",
     {"from": ADDRS[4], "nonce": U64_MAX, "documentHash": DOC_HASH_2, "parties": [ADDRS[4]]}),
    # BlockHeader (signed by the producer; producer == signer address)
    ("blockheader-chain1-genesis", 1, 1, "BlockHeader",
     {"height": 0, "previousHash": b"\x00" * 32, "timestampMs": 0, "txRoot": EMPTY_SHA256,
      "txCount": 0, "producer": ADDRS[1]}),
    ("blockheader-chain31337-height42", 2, 31337, "BlockHeader",
     {"height": 42, "previousHash": PREV_HASH_42, "timestampMs": EXPIRES_AT_MS,
      "txRoot": TX_ROOT_42, "txCount": 7, "producer": ADDRS[2]}),
    ("blockheader-chainmax-heightmax", 4, I64_MAX, "BlockHeader",
     {"height": U64_MAX, "previousHash": h32("lockgate-block-max-prev"), "timestampMs": U64_MAX,
      "txRoot": h32("lockgate-txroot-max"), "txCount": 2**32 - 1, "producer": ADDRS[4]}),
    # extra: same Transfer content on three chains differ only by domain
    ("transfer-chain31337-nonce0", 1, 31337, "Transfer",
     {"from": ADDRS[1], "nonce": 0, "asset": "EUR", "to": ADDRS[2], "amount": 12345}),
    ("transfer-chainmax-nonce0", 1, I64_MAX, "Transfer",
     {"from": ADDRS[1], "nonce": 0, "asset": "EUR", "to": ADDRS[2], "amount": 12345}),
]


def to_json_value(typ: str, value):
    if typ.startswith("uint"):
        assert isinstance(value, int)
        return str(value)
    if typ == "bytes" or typ.startswith("bytes"):
        assert isinstance(value, bytes)
        return "0x" + value.hex()
    if typ == "address[]":
        return list(value)
    return value  # string, address


def typed_data(primary: str, chain_id: int, message: dict) -> dict:
    return {
        "types": {
            "EIP712Domain": copy.deepcopy(DOMAIN_FIELDS),
            primary: copy.deepcopy(PRIMARY_TYPES[primary]),
        },
        "primaryType": primary,
        "domain": {"name": "Lockgate Ledger", "version": "1", "chainId": chain_id},
        "message": dict(message),
    }


def to_json_typed_data(td: dict) -> dict:
    out = copy.deepcopy({k: v for k, v in td.items() if k != "message"})
    out["domain"]["chainId"] = str(td["domain"]["chainId"])
    type_of = {f["name"]: f["type"] for f in td["types"][td["primaryType"]]}
    out["message"] = {k: to_json_value(type_of[k], v) for k, v in td["message"].items()}
    return out


def check_sizes(primary: str, message: dict):
    for f in PRIMARY_TYPES[primary]:
        v = message[f["name"]]
        t = f["type"]
        if t.startswith("uint"):
            assert 0 <= v < 2 ** int(t[4:]), (primary, f, v)
        elif t == "bytes32":
            assert isinstance(v, bytes) and len(v) == 32
    assert list(message) == [f["name"] for f in PRIMARY_TYPES[primary]]


def make_vector(name, key_idx, chain_id, primary, message):
    check_sizes(primary, message)
    key = KEYS[key_idx]
    address = ADDRS[key_idx]
    if primary == "BlockHeader":
        assert message["producer"] == address
    else:
        assert message["from"] == address

    td = typed_data(primary, chain_id, message)
    signable = encode_typed_data(full_message=copy.deepcopy(td))
    assert signable.version == b"\x01"
    domain_separator = bytes(signable.header)
    struct_hash = bytes(signable.body)
    digest = keccak(b"\x19\x01" + domain_separator + struct_hash)
    assert digest == bytes(_hash_eip191_message(signable))

    signed = Account.sign_typed_data(key, full_message=copy.deepcopy(td))
    assert bytes(signed.message_hash) == digest, "signed hash != keccak(0x1901||ds||sh)"
    sig = bytes(signed.signature)
    assert len(sig) == 65
    r = int.from_bytes(sig[0:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    v = sig[64]
    assert (r, s, v) == (signed.r, signed.s, signed.v)
    assert v in (27, 28), f"v={v} not 27/28"
    assert 1 <= s <= SECP256K1_N // 2, "signature s is not low (s > n/2)"
    assert 1 <= r < SECP256K1_N
    assert Account.recover_message(signable, signature=sig) == address
    assert Account._recover_hash(digest, signature=sig) == address

    return {
        "name": name,
        "privateKey": "0x" + key.hex(),
        "address": address,
        "typeString": type_string(primary),
        "typedData": to_json_typed_data(td),
        "domainSeparator": "0x" + domain_separator.hex(),
        "structHash": "0x" + struct_hash.hex(),
        "digest": "0x" + digest.hex(),
        "signature": "0x" + sig.hex(),
    }


def main():
    names = [s[0] for s in SPECS]
    assert len(names) == len(set(names)), "duplicate vector names"
    vectors = [make_vector(*spec) for spec in SPECS]
    doc = {
        "generator": f"eth_account {eth_account.__version__} Account.sign_typed_data(full_message=...)",
        "domainType": "EIP712Domain(string name,string version,uint256 chainId)",
        "keys": {
            str(i): {"seed": f"lockgate-test-key-{i}", "privateKey": "0x" + KEYS[i].hex(),
                     "address": ADDRS[i]}
            for i in KEYS
        },
        "vectors": vectors,
    }
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    with open(OUT_PATH, "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)
    print(f"wrote {len(vectors)} vectors to {OUT_PATH}")


if __name__ == "__main__":
    main()
