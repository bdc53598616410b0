"""Seeds a fresh gateway with real resources for scripts/api-fuzz, then
writes a schemathesis config (TOML) whose dictionaries hold their ids.

Without it every `{hash}`, `{code}`, `{height}`, `{lock_id}`, `{id}` the
fuzzer generates names nothing, so those operations answer 404 and their 200
bodies are never checked against the schema. With it, schemathesis uses a
real id for about half of the generated values of each such parameter (the
other half stays random), so both the 200 and the 404 paths are checked.

What it creates, with EIP-712 signatures made here by eth-account (the same
encoding as ledger-core/tests/vectors/generate.py and
scripts/make_settlement_vectors.py):
- ledger (primary chain): asset FUZZ registered and issued, a transfer, an
  HTLC locked and claimed, an HTLC left locked, an anchor, and a batch;
- transfers: one connector transfer from the primary ledger to the second
  hosted ledger (the gateway must be started with one), and one cancelled;
- settlement: two operators, an agreement, a record accepted, a record
  disputed with a credit note issued, and a period closed.

    python api_fuzz_seed.py URL TOKEN CONFIG_OUT

Needs eth-account (installed into the schemathesis venv by api-fuzz).
"""

import hashlib
import json
import sys
import time
import urllib.error
import urllib.request

from eth_account import Account
from eth_account.messages import encode_typed_data

URL, TOKEN, CONFIG_OUT = sys.argv[1], sys.argv[2], sys.argv[3]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def key(label: str) -> bytes:
    return sha256(f"lockgate-api-fuzz-{label}".encode())


def call(method: str, path: str, body=None, expect=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    if status not in expect:
        raise SystemExit(f"api_fuzz_seed: {method} {path}: {status} {text[:500]!r}")
    return json.loads(text) if text else None


def fields(spec: str):
    return [{"name": n, "type": t} for t, n in (part.split(" ") for part in spec.split(","))]


DOMAIN_TYPE = fields("string name,string version,uint256 chainId")
LEDGER_TYPES = {
    "RegisterAsset": fields("address from,uint64 nonce,string code,uint8 scale"),
    "Issue": fields("address from,uint64 nonce,string asset,address to,uint256 amount"),
    "Transfer": fields("address from,uint64 nonce,string asset,address to,uint256 amount"),
    "HtlcLock": fields(
        "address from,uint64 nonce,string asset,address recipient,uint256 amount,"
        "bytes32 hashlock,uint64 expiresAtMs"
    ),
    "HtlcClaim": fields("address from,uint64 nonce,bytes32 lockId,bytes preimage"),
    "Anchor": fields("address from,uint64 nonce,bytes32 documentHash,address[] parties"),
}
SETTLEMENT_TYPES = {
    "UsageRecord": fields(
        "string sender,string recipient,uint64 sequence,uint64 periodStartMs,uint64 periodEndMs,"
        "string currency,uint32 agreementVersion,ServiceLine[] lines,uint256 chargesTotal,"
        "uint256 discount,uint256 total"
    ),
    "ServiceLine": fields("string service,uint64 quantity,uint256 ratePrice,uint64 ratePer,uint256 charge"),
    "RecordAcceptance": fields("bytes32 recordHash,string recipient"),
    "RecordDispute": fields(
        "bytes32 recordHash,string recipient,string reason,uint256 disputedAmount,bytes32 evidenceHash"
    ),
    "RecordNote": fields("bytes32 recordHash,string kind,uint256 amount,string reason"),
}


def sign(secret: bytes, domain_name: str, chain_id: int, types: dict, primary: str, message: dict) -> str:
    used = {"EIP712Domain": DOMAIN_TYPE, primary: types[primary]}
    if primary == "UsageRecord":
        used["ServiceLine"] = types["ServiceLine"]
    data = {
        "types": used,
        "primaryType": primary,
        "domain": {"name": domain_name, "version": "1", "chainId": chain_id},
        "message": message,
    }
    signed = Account.sign_message(encode_typed_data(full_message=data), secret)
    return "0x" + signed.signature.hex().removeprefix("0x")


ledgers = call("GET", "/v1/ledgers")["items"]
primary = next(item for item in ledgers if item["primary"])
chain = int(primary["chainId"])
others = [item for item in ledgers if not item["primary"]]

ISSUER, HOLDER = key("issuer"), key("holder")
issuer, holder = Account.from_key(ISSUER).address, Account.from_key(HOLDER).address
nonces = {issuer: 0, holder: 0}


def submit(secret: bytes, primary_type: str, message: dict) -> dict:
    """Signs and submits one ledger transaction; integers become decimal strings."""
    sender = Account.from_key(secret).address
    message = {"from": sender, "nonce": nonces[sender], **message}
    nonces[sender] += 1
    signature = sign(secret, "Lockgate Ledger", chain, LEDGER_TYPES, primary_type, message)
    wire = {
        k: (str(v) if isinstance(v, int) else ("0x" + v.hex() if isinstance(v, bytes) else v))
        for k, v in message.items()
    }
    return call(
        "POST",
        "/v1/ledger/transactions",
        {"chainId": str(chain), "primaryType": primary_type, "message": wire, "signature": signature},
    )


tx_hashes, lock_ids = [], []
tx_hashes.append(submit(ISSUER, "RegisterAsset", {"code": "FUZZ", "scale": 2})["hash"])
tx_hashes.append(submit(ISSUER, "Issue", {"asset": "FUZZ", "to": holder, "amount": 1_000_000})["hash"])
tx_hashes.append(submit(HOLDER, "Transfer", {"asset": "FUZZ", "to": issuer, "amount": 100})["hash"])
preimage = key("preimage")
expires = int(time.time() * 1000) + 3_600_000
receipt = submit(
    ISSUER,
    "HtlcLock",
    {"asset": "FUZZ", "recipient": holder, "amount": 50, "hashlock": sha256(preimage), "expiresAtMs": expires},
)
lock_ids.append(receipt["lockId"])
tx_hashes.append(
    submit(HOLDER, "HtlcClaim", {"lockId": bytes.fromhex(receipt["lockId"][2:]), "preimage": preimage})["hash"]
)
receipt = submit(
    ISSUER,
    "HtlcLock",
    {"asset": "FUZZ", "recipient": holder, "amount": 7, "hashlock": key("hashlock-2"), "expiresAtMs": expires},
)
lock_ids.append(receipt["lockId"])
tx_hashes.append(receipt["hash"])
tx_hashes.append(submit(ISSUER, "Anchor", {"documentHash": key("document"), "parties": [issuer, holder]})["hash"])
heights = sorted({block["height"] for block in call("GET", "/v1/ledger/blocks?limit=50")["items"]})

# Transfers between the two hosted ledgers: planned, no signature needed.
transfer_ids = []
if others:
    target = others[0]["chainId"]
    for n in range(2):
        view = call(
            "POST",
            "/v1/transfers",
            {
                "sourceChainId": str(chain),
                "targetChainId": target,
                "sourceAsset": "FUZZ",
                "targetAsset": "FUZZ",
                "amount": "10",
                "sender": holder,
                "recipient": issuer,
                "hashlock": "0x" + key(f"transfer-{n}").hex(),
                "reference": f"api-fuzz-{n}",
            },
        )
        transfer_ids.append(view["id"])
    call("POST", f"/v1/transfers/{transfer_ids[1]}/cancel", {})

# Settlement: operators, an agreement, an accepted record, a disputed one
# with a credit note, a closed period.
FRA, DEU = key("operator-fra"), key("operator-deu")
tenant = json.loads(
    __import__("base64").urlsafe_b64decode(TOKEN.split(".")[1] + "==").decode()
)["tenant"]
for tadig, name, secret in (("FRAF1", "Fuzz France", FRA), ("DEUD2", "Fuzz Germany", DEU)):
    call(
        "POST",
        "/v1/settlement/operators",
        {"tadig": tadig, "name": name, "address": Account.from_key(secret).address, "tenant": tenant},
    )
JAN, FEB = 1767225600000, 1769904000000
call(
    "POST",
    "/v1/settlement/agreements",
    {
        "sender": "FRAF1",
        "recipient": "DEUD2",
        "version": 1,
        "currency": "EUR",
        "validFromMs": str(JAN),
        "validUntilMs": str(FEB + 86_400_000),
        "rates": {"voice_mo": {"price": "10", "per": "60"}, "sms": {"price": "3", "per": "1"}},
        "discountBps": 0,
    },
)


def record(sequence: int):
    lines = [("voice_mo", 600 * sequence, 10, 60), ("sms", 40 + sequence, 3, 1)]
    lines = [(s, q, p, per, (q * p * 2 + per) // (2 * per)) for s, q, p, per in lines]
    total = sum(line[4] for line in lines)
    message = {
        "sender": "FRAF1",
        "recipient": "DEUD2",
        "sequence": sequence,
        "periodStartMs": JAN,
        "periodEndMs": FEB,
        "currency": "EUR",
        "agreementVersion": 1,
        "lines": [
            {"service": s, "quantity": q, "ratePrice": p, "ratePer": per, "charge": c} for s, q, p, per, c in lines
        ],
        "chargesTotal": total,
        "discount": 0,
        "total": total,
    }
    wire = {
        **{k: (str(v) if isinstance(v, int) and k != "agreementVersion" else v) for k, v in message.items()},
        "lines": [
            {"service": s, "quantity": str(q), "rate": {"price": str(p), "per": str(per)}, "charge": str(c)}
            for s, q, p, per, c in lines
        ],
    }
    signature = sign(FRA, "Lockgate Settlement", chain, SETTLEMENT_TYPES, "UsageRecord", message)
    return call("POST", "/v1/settlement/records", {"record": wire, "signature": signature})["recordHash"], total


record_hashes = []
accepted, _ = record(1)
record_hashes.append(accepted)
signature = sign(
    DEU, "Lockgate Settlement", chain, SETTLEMENT_TYPES, "RecordAcceptance",
    {"recordHash": bytes.fromhex(accepted[2:]), "recipient": "DEUD2"},
)
call("POST", f"/v1/settlement/records/{accepted}/accept", {"signature": signature})
disputed, total = record(2)
record_hashes.append(disputed)
dispute = {"reason": "api-fuzz dispute", "disputedAmount": total // 2, "evidenceHash": bytes(32)}
signature = sign(
    DEU, "Lockgate Settlement", chain, SETTLEMENT_TYPES, "RecordDispute",
    {"recordHash": bytes.fromhex(disputed[2:]), "recipient": "DEUD2", **dispute},
)
call(
    "POST",
    f"/v1/settlement/records/{disputed}/dispute",
    {
        "reason": dispute["reason"],
        "disputedAmount": str(dispute["disputedAmount"]),
        "evidenceHash": "0x" + "00" * 32,
        "signature": signature,
    },
)
note = {"kind": "credit", "amount": total // 4, "reason": "api-fuzz credit"}
signature = sign(
    FRA, "Lockgate Settlement", chain, SETTLEMENT_TYPES, "RecordNote",
    {"recordHash": bytes.fromhex(disputed[2:]), **note},
)
call(
    "POST",
    f"/v1/settlement/records/{disputed}/note",
    {"kind": "credit", "amount": str(note["amount"]), "reason": note["reason"], "signature": signature},
)
close_id = call("POST", "/v1/settlement/closes", {"periodStartMs": str(JAN), "periodEndMs": str(FEB)})["closeId"]


def toml_list(values):
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


dictionaries = {
    "asset_codes": ["FUZZ"],
    "addresses": [issuer, holder],
    "tx_hashes": tx_hashes,
    "lock_ids": lock_ids,
    "heights": heights,
    "transfer_ids": transfer_ids,
    "record_hashes": record_hashes,
    "close_ids": [close_id],
}
chain_ids = [item["chainId"] for item in ledgers]
dictionaries["chain_ids"] = chain_ids
on_ledger = {"query.chainId": "chain_ids"}
bindings = {
    "GET /v1/ledger/assets": on_ledger,
    "GET /v1/ledger/blocks": on_ledger,
    "GET /v1/ledger/export": on_ledger,
    "GET /v1/ledger/assets/{code}": {"path.code": "asset_codes", **on_ledger},
    "GET /v1/ledger/accounts/{address}": {"path.address": "addresses", **on_ledger},
    "GET /v1/ledger/transactions/{hash}": {"path.hash": "tx_hashes", **on_ledger},
    "GET /v1/ledger/htlcs/{lock_id}": {"path.lock_id": "lock_ids", **on_ledger},
    "GET /v1/ledger/blocks/{height}": {"path.height": "heights", **on_ledger},
    "GET /v1/transfers/{id}": {"path.id": "transfer_ids"},
    "POST /v1/transfers/{id}/cancel": {"path.id": "transfer_ids"},
    "GET /v1/settlement/records/{hash}": {"path.hash": "record_hashes"},
    "GET /v1/settlement/records/{hash}/anchor": {"path.hash": "record_hashes"},
    "POST /v1/settlement/records/{hash}/accept": {"path.hash": "record_hashes"},
    "POST /v1/settlement/records/{hash}/dispute": {"path.hash": "record_hashes"},
    "POST /v1/settlement/records/{hash}/note": {"path.hash": "record_hashes"},
    "POST /v1/settlement/records/{hash}/note/accept": {"path.hash": "record_hashes"},
    "GET /v1/settlement/closes/{id}": {"path.id": "close_ids"},
    "GET /v1/settlement/statements": {"query.closeId": "close_ids"},
}
with open(CONFIG_OUT, "a") as out:
    out.write("\n# Written by scripts/api_fuzz_seed.py: ids of the resources it created.\n")
    for name, values in dictionaries.items():
        out.write(f"[dictionaries.{name}]\nvalues = {toml_list(values)}\n\n")
    for operation, parameters in bindings.items():
        inline = ", ".join(
            f"{json.dumps(parameter)} = {{ dictionary = {json.dumps(dictionary)}, probability = 0.5 }}"
            for parameter, dictionary in parameters.items()
        )
        out.write(f"[[operations]]\ninclude-name = {json.dumps(operation)}\nparameters = {{ {inline} }}\n\n")
print(
    f"api-fuzz: seeded {len(tx_hashes)} transactions in {len(heights)} blocks, {len(lock_ids)} HTLCs, "
    f"{len(transfer_ids)} transfers, {len(record_hashes)} usage records, 1 close"
)
