"""Settlement EIP-712 test vectors made independently with eth-account
(PyPI), for ledger-core/tests/settlement_eip712.rs.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install eth-account
    /tmp/v/bin/python scripts/make_settlement_vectors.py > ledger-core/tests/vectors/settlement_eip712.json

The key is anvil's well-known development key 1 (a public test key).
"""
import json

from eth_account import Account
from eth_account.messages import encode_typed_data

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
CHAIN_ID = 4201

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
]
DOMAIN = {"name": "Lockgate Settlement", "version": "1", "chainId": CHAIN_ID}

TYPES = {
    "EIP712Domain": DOMAIN_TYPE,
    "UsageRecord": [
        {"name": "sender", "type": "string"},
        {"name": "recipient", "type": "string"},
        {"name": "sequence", "type": "uint64"},
        {"name": "periodStartMs", "type": "uint64"},
        {"name": "periodEndMs", "type": "uint64"},
        {"name": "currency", "type": "string"},
        {"name": "agreementVersion", "type": "uint32"},
        {"name": "lines", "type": "ServiceLine[]"},
        {"name": "chargesTotal", "type": "uint256"},
        {"name": "discount", "type": "uint256"},
        {"name": "total", "type": "uint256"},
    ],
    "ServiceLine": [
        {"name": "service", "type": "string"},
        {"name": "quantity", "type": "uint64"},
        {"name": "ratePrice", "type": "uint256"},
        {"name": "ratePer", "type": "uint64"},
        {"name": "charge", "type": "uint256"},
    ],
    "RecordAcceptance": [
        {"name": "recordHash", "type": "bytes32"},
        {"name": "recipient", "type": "string"},
    ],
    "Statement": [
        {"name": "closeId", "type": "bytes32"},
        {"name": "operator", "type": "string"},
        {"name": "currency", "type": "string"},
        {"name": "periodStartMs", "type": "uint64"},
        {"name": "periodEndMs", "type": "uint64"},
        {"name": "lines", "type": "StatementLine[]"},
        {"name": "receivable", "type": "uint256"},
        {"name": "payable", "type": "uint256"},
        {"name": "payments", "type": "StatementPayment[]"},
        {"name": "fxRates", "type": "FxRate[]"},
    ],
    "StatementLine": [
        {"name": "recordHash", "type": "bytes32"},
        {"name": "counterparty", "type": "string"},
        {"name": "amount", "type": "uint256"},
        {"name": "receivable", "type": "bool"},
    ],
    "StatementPayment": [
        {"name": "payer", "type": "string"},
        {"name": "payee", "type": "string"},
        {"name": "amount", "type": "uint256"},
    ],
    "FxRate": [
        {"name": "from", "type": "string"},
        {"name": "to", "type": "string"},
        {"name": "numerator", "type": "uint256"},
        {"name": "denominator", "type": "uint256"},
    ],
    "RecordNote": [
        {"name": "recordHash", "type": "bytes32"},
        {"name": "kind", "type": "string"},
        {"name": "amount", "type": "uint256"},
        {"name": "reason", "type": "string"},
    ],
    "RecordDispute": [
        {"name": "recordHash", "type": "bytes32"},
        {"name": "recipient", "type": "string"},
        {"name": "reason", "type": "string"},
        {"name": "disputedAmount", "type": "uint256"},
        {"name": "evidenceHash", "type": "bytes32"},
    ],
}

RECORD = {
    "sender": "FRAF1",
    "recipient": "DEUD2",
    "sequence": 1,
    "periodStartMs": 1767225600000,
    "periodEndMs": 1769904000000,
    "currency": "EUR",
    "agreementVersion": 1,
    "lines": [
        {"service": "voice_mo", "quantity": 123457, "ratePrice": 10, "ratePer": 60, "charge": 20576},
        {"service": "voice_mt", "quantity": 98765, "ratePrice": 2, "ratePer": 60, "charge": 3292},
        {"service": "sms", "quantity": 4321, "ratePrice": 3, "ratePer": 1, "charge": 12963},
        {"service": "data", "quantity": 987654321, "ratePrice": 150, "ratePer": 1000000, "charge": 148148},
    ],
    "chargesTotal": 184979,
    "discount": 4624,
    "total": 180355,
}


def typed(primary, message):
    types = {"EIP712Domain": DOMAIN_TYPE, primary: TYPES[primary]}
    if primary == "UsageRecord":
        types["ServiceLine"] = TYPES["ServiceLine"]
    if primary == "Statement":
        for name in ("StatementLine", "StatementPayment", "FxRate"):
            types[name] = TYPES[name]
    return {"types": types, "primaryType": primary, "domain": DOMAIN, "message": message}


def sign(data):
    signable = encode_typed_data(full_message=data)
    signed = Account.sign_message(signable, KEY)
    return {
        "digest": "0x" + signed.message_hash.hex().removeprefix("0x"),
        "signature": "0x" + signed.signature.hex().removeprefix("0x"),
    }


def struct_hash(data):
    # EIP-191 version 1: 0x19 0x01 || domainSeparator || hashStruct(message);
    # eth-account exposes the two halves.
    signable = encode_typed_data(full_message=data)
    return "0x" + signable.body.hex().removeprefix("0x")


record = typed("UsageRecord", RECORD)
record_hash = struct_hash(record)
acceptance = typed("RecordAcceptance", {"recordHash": record_hash, "recipient": "DEUD2"})
dispute = typed(
    "RecordDispute",
    {
        "recordHash": record_hash,
        "recipient": "DEUD2",
        "reason": "data volume double-counted on 2026-01-17",
        "disputedAmount": 74074,
        "evidenceHash": "0x" + "ab" * 32,
    },
)
note = typed(
    "RecordNote",
    {"recordHash": record_hash, "kind": "credit", "amount": 50000, "reason": "half the disputed data volume"},
)
statement = typed(
    "Statement",
    {
        "closeId": "0x" + "11" * 32,
        "operator": "DEUD2",
        "currency": "USD",
        "periodStartMs": 1767225600000,
        "periodEndMs": 1769904000000,
        "lines": [
            {"recordHash": record_hash, "counterparty": "FRAF1", "amount": 194784, "receivable": False},
            {"recordHash": "0x" + "22" * 32, "counterparty": "GBRCN", "amount": 5000, "receivable": True},
        ],
        "receivable": 5000,
        "payable": 194784,
        "payments": [{"payer": "DEUD2", "payee": "FRAF1", "amount": 189784}],
        "fxRates": [{"from": "EUR", "to": "USD", "numerator": 108, "denominator": 100}],
    },
)
print(json.dumps({
    "signer": Account.from_key(KEY).address,
    "chainId": CHAIN_ID,
    "record": {"typedData": record, "recordHash": record_hash, **sign(record)},
    "acceptance": {"typedData": acceptance, **sign(acceptance)},
    "dispute": {"typedData": dispute, **sign(dispute)},
    "note": {"typedData": note, **sign(note)},
    "statement": {"typedData": statement, "statementHash": struct_hash(statement), **sign(statement)},
}, indent=2))
