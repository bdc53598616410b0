#!/usr/bin/env python3
"""One cross-gateway transfer on the compose network (deploy/compose.yaml):
alice's EUR on gateway A's ledger 4201 to bob on gateway B's ledger 4301,
the gateways coordinating over SATP. Needs Python 3.11+ and `eth-account`
(PyPI) to sign the ledger transactions (EIP-712):

    python3 -m venv /tmp/demo && /tmp/demo/bin/pip install eth-account
    /tmp/demo/bin/python deploy/compose/transfer-demo.py

It mints its API tokens from the (obviously fake) JWT secrets in
gateway-a.toml and gateway-b.toml beside it, registers EUR on both ledgers
and issues alice's EUR and B's liquidity on first use, then: POST
/v1/transfers on A, alice's HtlcLock on A to B's account, bob's HtlcClaim on
B once B has locked, until A reports `completed`. Safe to run again.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

from eth_account import Account

HERE = Path(__file__).resolve().parent
# Demo accounts: keys derived from public labels, never to hold real value.
ISSUER, ALICE, BOB = (
    Account.from_key(hashlib.sha256(f"lockgate-compose-demo-{name}".encode()).digest())
    for name in ("issuer", "alice", "bob")
)
TYPES = {
    "RegisterAsset": [("from", "address"), ("nonce", "uint64"), ("code", "string"), ("scale", "uint8")],
    "Issue": [("from", "address"), ("nonce", "uint64"), ("asset", "string"), ("to", "address"), ("amount", "uint256")],
    "HtlcLock": [
        ("from", "address"), ("nonce", "uint64"), ("asset", "string"), ("recipient", "address"),
        ("amount", "uint256"), ("hashlock", "bytes32"), ("expiresAtMs", "uint64"),
    ],
    "HtlcClaim": [("from", "address"), ("nonce", "uint64"), ("lockId", "bytes32"), ("preimage", "bytes")],
}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Gateway:
    def __init__(self, url: str, config: Path):
        self.url = url.rstrip("/")
        self.config = tomllib.loads(config.read_text())
        self.chain = self.config["ledger"]["chain_id"]
        auth = self.config["auth"]
        now = int(time.time())
        claims = {
            "iss": auth["issuer"], "aud": auth["audience"], "sub": "compose-demo", "iat": now,
            "exp": now + 3600, "tenant": "compose-demo",
            "scope": "ledger:read ledger:read-all ledger:submit ledger:register-asset transfers:read transfers:write",
            "accounts": [a.address for a in (ISSUER, ALICE, BOB)],
        }
        head = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64u(json.dumps(claims).encode())
        key = bytes.fromhex(auth["hs256_secret"].removeprefix("0x"))
        sig = b64u(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        self.token = f"{head}.{body}.{sig}"

    def call(self, method: str, path: str, body=None, ok=(200, 201)):
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                     "Idempotency-Key": os.urandom(8).hex()},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        value = json.loads(text) if text else None
        if status not in ok:
            raise SystemExit(f"{method} {self.url}{path}: {status} {value}")
        return status, value

    def nonce(self, account) -> int:
        _, view = self.call("GET", f"/v1/ledger/accounts/{account.address}")
        return int(view["nextNonce"])

    def balance(self, address: str) -> int:
        _, view = self.call("GET", f"/v1/ledger/accounts/{address}")
        return sum(int(b["amount"]) for b in view.get("balances", []) if b.get("asset") == "EUR")

    def submit(self, signer, kind: str, fields: dict, path="/v1/ledger/transactions"):
        message = {"from": signer.address, "nonce": self.nonce(signer), **fields}
        typed = {
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"}],
                kind: [{"name": n, "type": t} for n, t in TYPES[kind]],
            },
            "primaryType": kind,
            "domain": {"name": "Lockgate Ledger", "version": "1", "chainId": self.chain},
            "message": message,
        }
        signed = Account.sign_typed_data(signer.key, full_message=typed)
        wire = {
            k: ("0x" + v.hex() if isinstance(v, bytes) else str(v)) for k, v in message.items()
        }
        return self.call("POST", path, {
            "chainId": str(self.chain), "primaryType": kind, "message": wire,
            "signature": "0x" + bytes(signed.signature).hex(),
        })[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="http://127.0.0.1:8080", help="gateway A's URL")
    parser.add_argument("--b", default="http://127.0.0.1:8081", help="gateway B's URL")
    parser.add_argument("--config-a", type=Path, default=HERE / "gateway-a.toml")
    parser.add_argument("--config-b", type=Path, default=HERE / "gateway-b.toml")
    parser.add_argument("--amount", type=int, default=300, help="minor units of EUR")
    args = parser.parse_args()
    a, b = Gateway(args.a, args.config_a), Gateway(args.b, args.config_b)
    _, b_identity = b.call("GET", "/v1/satp/identity")
    b_account = b_identity["account"]

    # First use: EUR on both ledgers, alice's on A, B's liquidity on B.
    for gateway, holder in ((a, ALICE.address), (b, b_account)):
        status, _ = gateway.call("GET", "/v1/ledger/assets/EUR", ok=(200, 404))
        if status == 404:
            gateway.submit(ISSUER, "RegisterAsset", {"code": "EUR", "scale": 2}, path="/v1/ledger/assets")
        if gateway.balance(holder) < args.amount:
            gateway.submit(ISSUER, "Issue", {"asset": "EUR", "to": holder, "amount": 100_000})
    before = (a.balance(ALICE.address), b.balance(BOB.address))

    preimage = os.urandom(32)
    _, transfer = a.call("POST", "/v1/transfers", {
        "sourceChainId": str(a.chain), "targetChainId": str(b.chain),
        "sourceAsset": "EUR", "targetAsset": "EUR", "amount": str(args.amount),
        "sender": ALICE.address, "recipient": BOB.address,
        "hashlock": "0x" + hashlib.sha256(preimage).hexdigest(),
    })
    tid = transfer["id"]
    print(f"transfer {tid} created on A; alice locks {args.amount} EUR to B's account {transfer['connector']}")
    a.submit(ALICE, "HtlcLock", {
        "asset": "EUR", "recipient": transfer["connector"], "amount": args.amount,
        "hashlock": hashlib.sha256(preimage).digest(), "expiresAtMs": int(transfer["sourceExpiresAtMs"]),
    })
    claimed, deadline = False, time.time() + 120
    while time.time() < deadline:
        _, view = a.call("GET", f"/v1/transfers/{tid}")
        state = view["state"]
        if state == "target_locked" and not claimed:
            print(f"B locked on ledger {b.chain} (lock {view['targetLockId']}); bob claims it")
            b.submit(BOB, "HtlcClaim", {"lockId": bytes.fromhex(view["targetLockId"].removeprefix("0x")),
                                        "preimage": preimage})
            claimed = True
        if state in ("completed", "refunded", "cancelled", "failed"):
            break
        time.sleep(0.5)
    after = (a.balance(ALICE.address), b.balance(BOB.address))
    print(f"state: {state}; events: {[e['kind'] for e in view.get('events', [])]}")
    print(f"alice on A: {before[0]} -> {after[0]}; bob on B: {before[1]} -> {after[1]}")
    ok = state == "completed" and after == (before[0] - args.amount, before[1] + args.amount)
    print("OK: the transfer completed on both ledgers" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
