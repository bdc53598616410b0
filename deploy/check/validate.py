"""Offline validation of deploy/: run by scripts/check-deploy (which installs
the tools into a cache outside the clone) and exits non-zero on any error.

1. Gateway configuration files (deploy/lockgate.example.toml,
   deploy/compose/gateway-*.toml, every TOML the Helm chart renders) against
   the settings of gateway/src/config.rs, read from its source: unknown keys
   (the gateway refuses them: deny_unknown_fields), wrong types (a float
   where an integer goes), missing required keys.
2. deploy/compose.yaml beyond its schema (dclint checks that): dependencies
   exist and have health checks, mounted files exist, and the two gateways'
   configurations really pin each other: each peer entry's identity key,
   block-key address, account and chain id follow from the other gateway's
   secrets, each peer token verifies under the other's JWT secret with the
   right tenant, scopes and account, database URLs match the PostgreSQL init
   script, the EVM contract address is where htlc-deploy puts it.
3. The Helm chart, with Helm itself (the Helm v4 Go SDK through the PyPI
   package helm-python-sdk): `helm lint --strict`, values.schema.json against
   several value sets, `helm template` of each, manifests validated against
   the Kubernetes OpenAPI schemas (PyPI kubernetes-validate, strict: unknown
   fields are errors) for the oldest and newest supported Kubernetes; value
   sets that must be refused are refused. ServiceMonitors are written to
   --servicemonitors for scripts/check-deploy to validate with the
   prometheus-operator models (npm).
4. The Grafana dashboard deploy/grafana/lockgate-dashboard.json: valid JSON
   (no duplicate keys), importable (__inputs DS_PROMETHEUS, the datasource
   variable), every panel and query on ${datasource}, grid positions within
   24 columns and not overlapping, known units; every PromQL query (panels
   and variables) parsed with PyPI promql-parser, its metrics and labels
   held to the table in gateway/src/metrics.rs (itself checked against the
   code that records and renders the metrics): unknown metrics, labels a
   series does not have (selectors, by/without, on/ignoring, group_left,
   label_replace, legends), histogram_quantile without le, counters without
   rate(), `=` on a multi-value variable, undefined variables; every metric
   of the table on some panel. Broken test dashboards must be refused.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "lockgate"
CONFIG_RS = ROOT / "gateway" / "src" / "config.rs"
KUBE_VERSIONS = ["1.25.0", "1.37.0"]

errors: list[str] = []


def error(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


# ---------------------------------------------------------------- keys


def _secret(text: str) -> bytes:
    raw = bytes.fromhex(text.strip().removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError("not 32 bytes of hex")
    return raw


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak

    return keccak.new(digest_bits=256, data=data).digest()


def eip55(address: bytes) -> str:
    plain = address.hex()
    digest = keccak256(plain.encode()).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(plain)
    )


def eth_address(secret_hex: str) -> str:
    """The Ethereum address of a secp256k1 secret (block keys, accounts)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.derive_private_key(int.from_bytes(_secret(secret_hex), "big"), ec.SECP256K1())
    n = key.public_key().public_numbers()
    return eip55(keccak256(n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big"))[12:])


def p256_jwk(secret_hex: str) -> dict:
    """The public JWK of a P-256 secret (SATP identity keys)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.derive_private_key(int.from_bytes(_secret(secret_hex), "big"), ec.SECP256R1())
    n = key.public_key().public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64u(n.x.to_bytes(32, "big")),
        "y": _b64u(n.y.to_bytes(32, "big")),
    }


def create_address(sender: str, nonce: int) -> str:
    """The address of the contract `sender` deploys at `nonce` (CREATE)."""
    body = bytes.fromhex(sender[2:])
    if nonce == 0:
        encoded_nonce = b"\x80"
    elif nonce < 0x80:
        encoded_nonce = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        encoded_nonce = bytes([0x80 + len(raw)]) + raw
    payload = bytes([0x94]) + body + encoded_nonce
    return eip55(keccak256(bytes([0xC0 + len(payload)]) + payload)[12:])


def self_test() -> None:
    """The derivations against values the repository already states."""
    small = lambda n: "0x" + f"{n:064x}"  # noqa: E731
    assert p256_jwk(small(3))["x"] == "Xsvk0aYzCkTI9--VHUvxZebGtyHvramF-0FmG8bn_Ww"
    assert eth_address(small(4)) == "0x1efF47bc3a10a45D4B230B5d10E37751FE6AA718"
    assert (
        create_address("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", 1)
        == "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    )


def verify_hs256(token: str, secret_hex: str) -> dict:
    """The claims of an HS256 JWT whose signature verifies, else ValueError."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    header = json.loads(_b64u_decode(parts[0]))
    if header.get("alg") != "HS256":
        raise ValueError(f"algorithm {header.get('alg')}, not HS256")
    secret = bytes.fromhex(secret_hex.strip().removeprefix("0x"))
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _b64u_decode(parts[2])):
        raise ValueError("the signature does not verify under the issuing gateway's hs256_secret")
    return json.loads(_b64u_decode(parts[1]))


# ------------------------------------------------- gateway configuration

INT_TYPES = {"u8", "u16", "u32", "u64", "u128", "usize", "i32", "i64"}
STR_TYPES = {"String", "Secret", "PathBuf", "SocketAddr", "FaultStep"}


def config_settings(source: str) -> dict:
    """Every `#[derive(Deserialize)]` struct of config.rs: its fields, their
    types, which are required, and whether the struct has `#[serde(default)]`."""
    structs = {}
    pattern = re.compile(
        r"((?:#\[[^\n]*\]\s*\n)*)pub struct (\w+) \{\n(.*?)\n\}", re.S
    )
    for attrs, name, body in pattern.findall(source):
        if "Deserialize" not in attrs:
            continue
        struct_default = bool(re.search(r"#\[serde\([^)]*\bdefault\b", attrs))
        fields, pending = {}, ""
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("#["):
                pending += line
                continue
            m = re.match(r"pub (\w+): (.+),$", line)
            if m:
                optional_attr = "default" in pending
                fields[m.group(1)] = (m.group(2), optional_attr)
                pending = ""
            elif not line.startswith("///") and line:
                pending = ""
        structs[name] = {"fields": fields, "default": struct_default}
    if "Config" not in structs or "PeerConfig" not in structs:
        raise SystemExit(
            f"check-deploy: could not read the settings from {CONFIG_RS.relative_to(ROOT)}; "
            "deploy/check/validate.py (config_settings) needs to follow its layout"
        )
    return structs


def _check_value(structs: dict, rust_type: str, value, path: str, where: str) -> None:
    t = rust_type.replace(" ", "")
    t = re.sub(r"^(std::collections::|crate::[\w:]*::)", "", t)
    if t.startswith("Option<"):
        _check_value(structs, t[7:-1], value, path, where)
    elif t.startswith("Vec<"):
        if not isinstance(value, list):
            error(where, f"{path} must be an array")
        else:
            for i, item in enumerate(value):
                _check_value(structs, t[4:-1], item, f"{path}[{i}]", where)
    elif re.match(r"^\[(\w+);(\d+)\]$", t):
        inner, count = re.match(r"^\[(\w+);(\d+)\]$", t).groups()
        if not isinstance(value, list) or len(value) != int(count):
            error(where, f"{path} must be an array of {count}")
        else:
            for i, item in enumerate(value):
                _check_value(structs, inner, item, f"{path}[{i}]", where)
    elif t.startswith("BTreeMap<") or t.startswith("HashMap<"):
        inner = t[t.index(",") + 1 : -1]
        if not isinstance(value, dict):
            error(where, f"{path} must be a table")
        else:
            for key, item in value.items():
                _check_value(structs, inner, item, f"{path}.{key}", where)
    elif t in INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            error(where, f"{path} must be an integer, not {value!r}")
        elif (t.startswith("u") and value < 0) or value >= 2**64:
            error(where, f"{path} is out of range for {t}")
    elif t == "bool":
        if not isinstance(value, bool):
            error(where, f"{path} must be true or false")
    elif t in STR_TYPES or t.split("::")[-1] in STR_TYPES:
        if not isinstance(value, str):
            error(where, f"{path} must be a string")
    elif t in structs:
        check_table(structs, t, value, path, where)
    # Anything else is not checked here (the gateway still checks it).


def check_table(structs: dict, struct: str, table, path: str, where: str) -> None:
    if not isinstance(table, dict):
        error(where, f"{path or 'the file'} must be a table")
        return
    spec = structs[struct]
    for key, value in table.items():
        if key not in spec["fields"]:
            known = ", ".join(sorted(spec["fields"]))
            error(where, f"unknown key {path + '.' if path else ''}{key} (the gateway refuses it; {struct} has: {known})")
            continue
        _check_value(structs, spec["fields"][key][0], value, f"{path + '.' if path else ''}{key}", where)
    if not spec["default"]:
        for key, (rust_type, has_default) in spec["fields"].items():
            if key not in table and not has_default and not rust_type.startswith("Option<"):
                error(where, f"{path or 'the file'} lacks the required key {key}")


def check_config_text(structs: dict, text: str, where: str) -> dict | None:
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        error(where, f"not valid TOML: {e}")
        return None
    check_table(structs, "Config", config, "", where)
    return config


# ---------------------------------------------------------------- compose


def check_compose(structs: dict) -> None:
    where = "deploy/compose.yaml"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose.get("services", {})
    for need in ("postgres", "anvil", "htlc-deploy", "gateway-a", "gateway-b"):
        if need not in services:
            error(where, f"service {need} is missing")
    published = []
    for name, service in services.items():
        deps = service.get("depends_on", {})
        for dep, how in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                error(where, f"{name} depends on {dep}, which is not a service")
                continue
            condition = (how or {}).get("condition", "service_started")
            health = services[dep].get("healthcheck")
            if condition == "service_healthy" and (not health or health.get("disable")):
                error(where, f"{name} waits for {dep} to be healthy, but {dep} has no health check")
        for port in service.get("ports", []):
            published.append(str(port).rsplit(":", 1)[0])
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith(".") and not (DEPLOY / source).exists():
                error(where, f"{name} mounts {source}, which does not exist under deploy/")
    for host in {p for p in published if published.count(p) > 1}:
        error(where, f"host port {host} is published twice")

    # The PostgreSQL roles and databases the init script makes.
    init = (DEPLOY / "compose" / "postgres-init.sql").read_text()
    roles = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']*)'", init))
    databases = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", init))

    # Each gateway's configuration.
    gateways = {}
    for name, service in services.items():
        env = service.get("environment", {}) or {}
        path = env.get("LOCKGATE_CONFIG") if isinstance(env, dict) else None
        if not path or name == "htlc-deploy":
            continue
        mounted = [
            str(v).split(":")[0] for v in service.get("volumes", []) if str(v).split(":")[1] == path
        ]
        if len(mounted) != 1:
            error(where, f"{name}: LOCKGATE_CONFIG is {path}, but no file is mounted there")
            continue
        file = DEPLOY / mounted[0]
        if not file.is_file():
            continue  # reported with the volumes above
        config = check_config_text(structs, file.read_text(), str(file.relative_to(ROOT)))
        if config is not None:
            gateways[name] = (config, str(file.relative_to(ROOT)))
    if len(gateways) != 2:
        error(where, f"expected two gateways with a mounted configuration, found {sorted(gateways)}")
        return
    by_id = {c.get("satp", {}).get("gateway_id"): (name, c) for name, (c, _) in gateways.items()}
    for name, (config, cwhere) in gateways.items():
        me = config.get("satp", {}).get("gateway_id", "")
        # The database.
        url = urlparse(config.get("database_url", ""))
        db = url.path.lstrip("/")
        if url.hostname != "postgres" or url.port not in (None, 5432):
            error(cwhere, "database_url must point at the postgres service (postgres:5432)")
        if databases.get(db) != url.username or roles.get(url.username) != url.password:
            error(cwhere, f"database_url: user, password and database do not match {sorted(databases)} in compose/postgres-init.sql")
        # Every peer: another service of this file, pinned right.
        peers = config.get("peers", [])
        if not peers:
            error(cwhere, "pins no peer")
        for i, peer in enumerate(peers):
            at = f"{cwhere} [[peers]] #{i + 1} ({peer.get('gateway_id')})"
            if peer.get("gateway_id") not in by_id:
                error(at, f"gateway_id names no gateway of the compose file ({sorted(by_id)})")
                continue
            other_name, other = by_id[peer["gateway_id"]]
            purl = urlparse(peer.get("url", ""))
            if purl.hostname != other_name or (purl.port or 80) != 8080:
                error(at, f"url must be http://{other_name}:8080 (the service, on the image's port)")
            try:
                wanted = {
                    "identity_key": p256_jwk(other["satp"]["identity_key"]),
                    "chain_id": other["ledger"]["chain_id"],
                    "block_producer": eth_address(other["ledger"]["block_key"]),
                    "account": eth_address(other["transfers"]["connector_key"]),
                }
                mine = eth_address(config["transfers"]["connector_key"])
            except (KeyError, ValueError) as e:
                error(at, f"the gateways must configure block_key, connector_key and identity_key explicitly ({e})")
                continue
            try:
                pinned = json.loads(peer.get("identity_key", ""))
            except json.JSONDecodeError:
                pinned = None
            for key, value in wanted.items():
                got = pinned if key == "identity_key" else peer.get(key)
                if got != value:
                    shown = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
                    error(at, f"{key} does not match {other_name}'s secret: should be {shown!r}")
            token = peer.get("token")
            if not token:
                error(at, "has no token: this gateway could not claim what the peer locks to it")
                continue
            try:
                claims = verify_hs256(token, other["auth"]["hs256_secret"])
            except (KeyError, ValueError) as e:
                error(at, f"token: {e}")
                continue
            expect = {
                "iss": other["auth"].get("issuer", "lockgate-dev"),
                "aud": other["auth"].get("audience", "lockgate"),
                "tenant": f"peer:{me}",
            }
            for key, value in expect.items():
                if claims.get(key) != value:
                    error(at, f"token claim {key} is {claims.get(key)!r}, should be {value!r}")
            if not {"ledger:read", "ledger:submit"} <= set(str(claims.get("scope", "")).split()):
                error(at, "token needs the scopes ledger:read and ledger:submit")
            if claims.get("accounts") != [mine]:
                error(at, f"token accounts must be [{mine!r}] (this gateway's connector account)")
            if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time() + 365 * 86400:
                error(at, "token expires within a year: mint a new one")
        # EVM chains: the anvil service, the contract htlc-deploy makes.
        for evm in config.get("evm", []):
            at = f"{cwhere} [[evm]] {evm.get('chain_id')}"
            rpc = urlparse(evm.get("rpc_url", ""))
            anvil = services.get(rpc.hostname or "", {})
            command = [str(c) for c in anvil.get("command", [])]
            if not command or "--chain-id" not in command:
                error(at, "rpc_url must name the anvil service, whose command sets --chain-id")
                continue
            if int(command[command.index("--chain-id") + 1]) != evm.get("chain_id"):
                error(at, "chain_id differs from anvil's --chain-id")
            deployer = services.get("htlc-deploy", {})
            deploy_key = (deployer.get("environment") or {}).get("LOCKGATE_EVM_KEY", "")
            deploy_command = [str(c) for c in deployer.get("command", [])]
            if evm.get("rpc_url") not in deploy_command:
                error(at, "htlc-deploy does not deploy to this rpc_url")
            try:
                contract = create_address(eth_address(deploy_key), 0)
            except ValueError:
                error(where, "htlc-deploy needs LOCKGATE_EVM_KEY (32 bytes of hex)")
                continue
            if evm.get("contract") != contract:
                error(at, f"contract should be {contract} (htlc-deploy's first deployment)")
            deps = services[name].get("depends_on", {})
            if (deps.get("htlc-deploy") or {}).get("condition") != "service_completed_successfully":
                error(where, f"{name} must wait for htlc-deploy (service_completed_successfully)")


# ---------------------------------------------------------------- helm

SCENARIOS = {
    "defaults": {},
    "replicas on postgres, existing secrets, monitoring": {
        "replicaCount": 3,
        "image": {"repository": "registry.example/lockgate", "tag": "0.1.0"},
        "database": {"existingSecret": "lockgate-db", "existingSecretKey": "url"},
        "keys": {"existingSecret": "lockgate-keys"},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
        "config": {
            "ledger": {"chain_id": 4201, "batch_txs_max": 1024, "queue_txs_max": 65536},
            "extra_ledgers": [{"chain_id": 4202}],
            "transfers": {"asset_pairs": [["EUR", "EURT"]], "tenant_locked_max": 1000000000000},
            "satp": {"gateway_id": "bank-a"},
            "auth": {"issuer": "bank-a", "audience": "lockgate"},
            "limits": {"import_bytes_max": 1073741824},
            "peers": [
                {
                    "gateway_id": "bank-b",
                    "url": "http://lockgate.bank-b.example:8080",
                    "identity_key": json.dumps(p256_jwk("0x" + "00" * 31 + "03")),
                    "chain_id": 4301,
                    "block_producer": "0x1efF47bc3a10a45D4B230B5d10E37751FE6AA718",
                    "account": "0xe1AB8145F7E55DC933d51a18c793F901A3A0b276",
                    "routes": [4401],
                }
            ],
            "evm": [
                {
                    "chain_id": 31337,
                    "rpc_url": "https://evm.example",
                    "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                    "keystore": "/etc/lockgate-evm/keystore.json",
                    "keystore_password_env": "EVM_KEYSTORE_PASSWORD",
                    "assets": {"ETH": "native"},
                    "confirmations": 12,
                }
            ],
        },
        "extraVolumes": [{"name": "evm", "secret": {"secretName": "lockgate-evm"}}],
        "extraVolumeMounts": [{"name": "evm", "mountPath": "/etc/lockgate-evm", "readOnly": True}],
        "extraEnv": [
            {
                "name": "EVM_KEYSTORE_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "lockgate-evm", "key": "password"}},
            }
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "lockgate"}},
            }
        ],
    },
    "secrets from values, two replicas": {
        "replicaCount": 2,
        "database": {"url": "postgres://lockgate:not-a-secret@postgres:5432/lockgate"},
        "keys": {
            "blockKey": "0x" + "00" * 31 + "01",
            "jwtSecret": "0x" + "00" * 31 + "02",
            "satpIdentityKey": "0x" + "00" * 31 + "03",
            "connectorKey": "0x" + "00" * 31 + "04",
        },
        "podDisruptionBudget": {"enabled": True, "minAvailable": None, "maxUnavailable": 1},
    },
    "sqlite on a volume": {"persistence": {"enabled": True, "storageClass": "standard"}},
    "configToml passed through": {"configToml": (DEPLOY / "lockgate.example.toml").read_text()},
    "config from an existing secret": {"existingConfigSecret": "lockgate-config"},
}

# Value sets the chart must refuse, with a word of the expected refusal.
REFUSED = {
    "two replicas on SQLite": ({"replicaCount": 2}, "needs PostgreSQL"),
    "two replicas without shared keys": (
        {"replicaCount": 2, "database": {"url": "postgres://u:p@db/lockgate"}},
        "shared keys",
    ),
    "persistence with replicas": (
        {
            "replicaCount": 2,
            "persistence": {"enabled": True},
            "database": {"existingSecret": "db"},
            "keys": {"existingSecret": "k"},
        },
        "one replica only",
    ),
    "a secret in config": ({"config": {"auth": {"hs256_secret": "0x00"}}}, "schema"),
    "a peer token in config": (
        {
            "config": {
                "peers": [
                    {
                        "gateway_id": "b",
                        "url": "http://b:8080",
                        "identity_key": "{}",
                        "chain_id": 2,
                        "block_producer": "0x",
                        "account": "0x",
                        "token": "eyJ",
                    }
                ]
            }
        },
        "schema",
    ),
    "a misspelt value": ({"replicas": 2}, "schema"),
    "zero replicas": ({"replicaCount": 0}, "schema"),
    "both PDB bounds": ({"podDisruptionBudget": {"enabled": True, "maxUnavailable": 1}}, "exactly one"),
}


def kube_validate(doc: dict, where: str) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path)
            error(where, f"Kubernetes {version} schema: {path}: {e.message}")
            return
        except SchemaNotFoundError as e:
            error(where, e.message)
            return


def check_manifests(name: str, rendered: dict, values: dict, structs: dict, monitors: list) -> None:
    docs = []
    for template, text in rendered.items():
        if not template.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((template, doc))
    kinds = {}
    for template, doc in docs:
        where = f"helm template ({name}) {template} {doc.get('kind')}"
        kinds.setdefault(doc.get("kind"), []).append(doc)
        if doc.get("kind") == "ServiceMonitor":
            monitors.append({"where": where, "doc": doc})
            continue
        kube_validate(doc, where)
        if doc.get("kind") == "ConfigMap":
            check_config_text(structs, doc["data"]["lockgate.toml"], f"{where} lockgate.toml")
    where = f"helm template ({name})"
    for kind in ("Deployment", "Service"):
        if len(kinds.get(kind, [])) != 1:
            error(where, f"expected one {kind}")
            return
    pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    probes = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in probes.items():
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            error(where, f"{probe} should ask {path}, asks {got}")
    env = {e["name"]: e for e in container.get("env", [])}
    port = container["ports"][0]["containerPort"]
    if env.get("LOCKGATE_LISTEN", {}).get("value") != f"0.0.0.0:{port}":
        error(where, "LOCKGATE_LISTEN must be 0.0.0.0:<containerPort>")
    replicas = kinds["Deployment"][0]["spec"]["replicas"]
    if replicas > 1:
        for var in ("LOCKGATE_DATABASE_URL", "LOCKGATE_BLOCK_KEY", "LOCKGATE_JWT_SECRET",
                    "LOCKGATE_SATP_KEY", "LOCKGATE_CONNECTOR_KEY"):
            if var not in env:
                error(where, f"{replicas} replicas but {var} is not set from a Secret")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        error(where, "the pod must run as non-root")
    secrets = {d["metadata"]["name"]: d for d in kinds.get("Secret", [])}
    for var in env.values():
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref and not ref.get("optional") and var["name"].startswith("LOCKGATE_"):
            own = secrets.get(ref["name"])
            external = ref["name"] in (
                values.get("database", {}).get("existingSecret"),
                values.get("keys", {}).get("existingSecret"),
            )
            if not external and (own is None or ref["key"] not in own.get("stringData", {})):
                error(where, f"{var['name']} refers to {ref['name']}/{ref['key']}, which the chart does not render")
    service = kinds["Service"][0]
    if service["spec"]["ports"][0]["targetPort"] != "http":
        error(where, "the Service must target the container port named http")


def check_chart(structs: dict, monitors: list) -> None:
    import helm_python as helm

    where = "deploy/helm/lockgate"
    report = helm.lint(str(CHART), strict=True)
    for message in report.get("messages", []):
        if message["severity"] >= 2:
            error(where, f"helm lint: {message['path']}: {message['error']}")
    for message in report.get("errors", []):
        error(where, f"helm lint: {message}")
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    with helm.Chart.load(str(CHART)) as chart:
        for name, values in SCENARIOS.items():
            try:
                chart.validate_schema(values)
                rendered = chart.render(values, name="gw", namespace="ledger", is_install=True)
            except helm.HelmError as e:
                error(where, f"({name}) refused: {e}")
                continue
            check_manifests(name, rendered, _merge(defaults, values), structs, monitors)
        for name, (values, expected) in REFUSED.items():
            try:
                chart.validate_schema(values)
            except helm.HelmError as e:
                if expected != "schema":
                    error(where, f"({name}) refused by values.schema.json, expected the templates to: {e}")
                continue
            if expected == "schema":
                error(where, f"({name}) passed values.schema.json, which must refuse it")
                continue
            try:
                chart.render(values, name="gw", namespace="ledger", is_install=True)
            except helm.HelmError as e:
                if expected not in str(e):
                    error(where, f"({name}) refused, but not for the expected reason: {e}")
                continue
            error(where, f"({name}) was accepted; the chart must refuse it")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# ---------------------------------------------------------------- grafana

METRICS_RS = ROOT / "gateway" / "src" / "metrics.rs"
API_RS = ROOT / "gateway" / "src" / "api.rs"
DASHBOARD = DEPLOY / "grafana" / "lockgate-dashboard.json"
# Labels Prometheus adds to every scraped series.
SCRAPE_LABELS = frozenset({"instance", "job"})
DATASOURCE_UIDS = {"${datasource}", "$datasource"}
PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "state-timeline", "text"}
UNITS = {"none", "short", "s", "ms", "reqps", "rps", "ops", "opm", "percent", "percentunit",
         "bytes", "decbytes", "dtdurations"}
# Grafana's own variables that stand for durations or numbers, with a stand-in for parsing.
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "6h",
                     "__range_s": "21600", "__range_ms": "21600000", "__interval_ms": "60000"}
VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::[^}]*)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)(?::[^\]]*)?\]\]")
RATE_FUNCTIONS = {"rate", "irate", "increase"}
COUNTER_FUNCTIONS = RATE_FUNCTIONS | {"resets"}


def metrics_table(metrics_src: str, api_src: str) -> dict:
    """The module table of gateway/src/metrics.rs: {metric: (type, labels)},
    checked against the code that records (metrics.rs) and renders (api.rs)
    the metrics, so the dashboard is held to what /metrics really exposes."""
    where = str(METRICS_RS.relative_to(ROOT))
    table = {}
    for name, kind, labels in re.findall(
        r"^//! \| `(lockgate_\w+)` \| (\w+) \|([^|]*)\|", metrics_src, re.M
    ):
        # `outcome` (`applied`, `rejected`): the values in parentheses are no labels.
        table[name] = (kind, frozenset(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels))))
    if not table:
        raise SystemExit(
            f"check-deploy: found no metric table in {where}; "
            "deploy/check/validate.py (metrics_table) needs to follow its layout"
        )
    for name, (kind, _) in table.items():
        if kind not in ("counter", "gauge", "histogram"):
            error(where, f"{name}: unknown metric type {kind}")
    # Recorded metrics: `metrics::counter!(name::X, "label" => ...)`.
    consts = dict(re.findall(r'pub const (\w+): &str = "(lockgate_\w+)"', metrics_src))
    code: dict = {}
    for kind, const, body in re.findall(
        r"metrics::(counter|histogram|gauge)!\(\s*name::(\w+)(.*?)\)\s*\.(?:increment|record|set)",
        metrics_src, re.S,
    ):
        if const not in consts:
            error(where, f"name::{const} is recorded but not defined")
            continue
        code.setdefault(consts[const], set()).add((kind, frozenset(re.findall(r'"(\w+)"\s*=>', body))))
    # Gauges rendered at scrape time by api.rs: `# TYPE name gauge`, `name{{label=...}}`.
    for name, kind in re.findall(r"# TYPE (lockgate_\w+) (\w+)", api_src):
        labels = {frozenset(re.findall(r'(\w+)=\\"', body))
                  for body in re.findall(rf'"{name}\{{\{{(.*?)\}}\}}', api_src)} or {frozenset()}
        code.setdefault(name, set()).update((kind, ls) for ls in labels)
    for name in consts.values():
        code.setdefault(name, set())
    for name, seen in sorted(code.items()):
        if name not in table:
            error(where, f"{name} is exposed but not in the module table")
            continue
        for kind, labels in seen:
            if (kind, labels) != table[name]:
                error(where, f"{name}: the code exposes a {kind} with labels {sorted(labels)}, "
                             f"the table says {table[name][0]} {sorted(table[name][1])}")
    for name in table.keys() - code.keys():
        error(where, f"{name} is in the module table but nothing exposes it")
    return table


def _series(table: dict) -> dict:
    """Series name -> (table metric, kind for rate(): counter or gauge, labels)."""
    out = {}
    for name, (kind, labels) in table.items():
        labels = labels | SCRAPE_LABELS
        if kind == "histogram":
            out[name + "_bucket"] = (name, "counter", labels | {"le"})
            out[name + "_sum"] = (name, "counter", labels)
            out[name + "_count"] = (name, "counter", labels)
        else:
            out[name] = (name, kind, labels)
    return out


class PromQLCheck:
    """One PromQL expression: parsed (PyPI promql-parser, the Prometheus
    parser ported to Rust: syntax and argument types), then its label sets
    followed through the tree so that every label a selector matches on, a
    by/without/on/ignoring/group_left names, label_replace reads or a legend
    shows exists on the series at that point."""

    def __init__(self, series: dict, variables: dict, where: str, problems: list, used: set):
        self.series, self.variables, self.where = series, variables, where
        self.problems, self.used = problems, used
        self.template = False

    def fail(self, message: str) -> None:
        self.problems.append(f"{self.where}: {message}")

    def parse(self, text: str):
        """The AST of `text` with Grafana's variables replaced, or None."""
        import promql_parser

        def substitute(m: re.Match) -> str:
            name = m.group(1) or m.group(2) or m.group(3)
            if name in GRAFANA_VARIABLES:
                return GRAFANA_VARIABLES[name]
            if name not in self.variables:
                self.fail(f"${name} is not a variable of the dashboard")
            return m.group(0)

        for name in re.findall(r"lockgate_\w+", text):
            base = self.series.get(name, (None,))[0]
            if base is None and name in {s[0] for s in self.series.values()}:
                self.fail(f"{name} is a histogram: select {name}_bucket, _sum or _count")
            elif base is None:
                self.fail(f"unknown metric {name} (not in the table of {METRICS_RS.relative_to(ROOT)})")
            else:
                self.used.add(base)
        try:
            return promql_parser.parse(VARIABLE.sub(substitute, text))
        except ValueError as e:
            self.fail(f"PromQL does not parse: {e}: {text}")
            return None

    def labels(self, node, context: str | None = None):
        """The labels of `node`'s result (a frozenset), None for a scalar or
        string or where it cannot be known (an error is already reported)."""
        import promql_parser as pq

        kind = type(node).__name__
        if kind == "VectorSelector":
            return self.selector(node, context, matrix=False)
        if kind == "MatrixSelector":
            return self.selector(node.vector_selector, context, matrix=True)
        if kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
            return self.labels(node.expr)
        if kind in ("NumberLiteral", "StringLiteral"):
            return None
        if kind == "Call":
            return self.call(node)
        if kind == "AggregateExpr":
            inner = self.labels(node.expr)
            if isinstance(node.param, pq.Expr):
                self.labels(node.param)
            op = str(node.op)
            names = set(node.modifier.labels) if node.modifier else set()
            if inner is not None and names - inner:
                how = "by" if node.modifier.type == pq.AggModifierType.By else "without"
                self.fail(f"{op} {how} ({', '.join(sorted(names - inner))}): not a label of what it "
                          f"aggregates (labels there: {', '.join(sorted(inner)) or 'none'})")
            if op in ("topk", "bottomk", "limitk", "limit_ratio"):
                return inner
            extra = {node.param.val} if op == "count_values" else set()
            if node.modifier is None:
                return frozenset(extra)
            if node.modifier.type == pq.AggModifierType.By:
                return frozenset(names | extra)
            return None if inner is None else frozenset((inner - names) | extra)
        if kind == "BinaryExpr":
            return self.binary(node)
        self.fail(f"unexpected PromQL node {kind}")
        return None

    def selector(self, node, context, matrix: bool):
        import promql_parser as pq

        name = node.name or next(
            (m.value for m in node.matchers.matchers if m.name == "__name__" and m.op == pq.MatchOp.Equal), None
        )
        if name is None:
            self.fail(f"a selector without a metric name: {node}")
            return None
        if name not in self.series:
            if not name.startswith("lockgate_"):
                self.fail(f"unknown metric {name} (only the gateway's metrics are on this dashboard)")
            return None  # lockgate_*: reported by parse()
        base, kind, known = self.series[name]
        for m in node.matchers.matchers:
            if m.name == "__name__":
                continue
            if m.name not in known:
                self.fail(f"{{{m.name}...}}: {m.name} is not a label of {name} "
                          f"(it has: {', '.join(sorted(known))})")
            for v in VARIABLE.finditer(m.value):
                var = self.variables.get(v.group(1) or v.group(2) or v.group(3)) or {}
                if (var.get("multi") or var.get("includeAll")) and m.op not in (pq.MatchOp.Re, pq.MatchOp.NotRe):
                    self.fail(f'{m.name}="{m.value}": a multi-value variable needs =~')
        if not self.template:
            if kind == "gauge" and matrix and context in COUNTER_FUNCTIONS:
                self.fail(f"{context}() of {name}, a gauge")
            if kind == "counter" and not (matrix and context in COUNTER_FUNCTIONS):
                self.fail(f"{name} is a counter: use it through rate(), irate() or increase()")
        return known

    def call(self, node):
        import promql_parser as pq

        name = node.func.name
        args = list(node.args)
        found = [self.labels(a, name) for a in args]
        strings = [a.val if type(a).__name__ == "StringLiteral" else None for a in args]
        if node.func.return_type == pq.ValueType.Scalar:
            return None
        if name == "vector":
            return frozenset()
        vec = next((f for f in found if f is not None), None)
        if vec is None:
            return None
        if name == "histogram_quantile":
            if "le" not in vec:
                self.fail("histogram_quantile() needs the le label: a _bucket series, aggregated by (le, ...)")
            return vec - {"le"}
        if name in ("label_replace", "label_join"):
            sources = strings[3:4] if name == "label_replace" else strings[3:]
            for src in sources:
                if src and src not in vec:
                    self.fail(f"{name}() reads label {src}, which is not there (labels: {', '.join(sorted(vec))})")
            return vec | {strings[1]}
        return vec

    def binary(self, node):
        import promql_parser as pq

        left, right = self.labels(node.lhs), self.labels(node.rhs)
        op, mod = str(node.op), node.modifier
        matching = mod.matching if mod else None
        on = set(matching.labels) if matching else set()
        include = matching is not None and matching.type == pq.LabelModifierType.Include
        if include:
            for side, have in (("left", left), ("right", right)):
                if have is not None and on - have:
                    self.fail(f"on ({', '.join(sorted(on - have))}): not a label of the {side} side")
        elif matching is not None and left is not None and right is not None and on - (left | right):
            self.fail(f"ignoring ({', '.join(sorted(on - (left | right)))}): not a label of either side")
        card = mod.card if mod else None
        group = set(mod.group_labels or []) if mod else set()
        if card == pq.VectorMatchCardinality.ManyToOne:
            if right is not None and group - right:
                self.fail(f"group_left ({', '.join(sorted(group - right))}): not a label of the right side")
            return None if left is None else left | group
        if card == pq.VectorMatchCardinality.OneToMany:
            if left is not None and group - left:
                self.fail(f"group_right ({', '.join(sorted(group - left))}): not a label of the left side")
            return None if right is None else right | group
        if left is None or right is None:
            return left if right is None else right
        if op in ("and", "unless"):
            return left
        if op == "or":
            return left | right
        if matching is None:
            return left
        return frozenset(on) if include else left - on

    def expr(self, text: str, legend: str | None = None) -> None:
        tree = self.parse(text)
        if tree is None:
            return
        out = self.labels(tree)
        for shown in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend or ""):
            if out is not None and shown not in out:
                self.fail(f"the legend shows {{{{{shown}}}}}, which the query's result does not have "
                          f"(it has: {', '.join(sorted(out)) or 'no labels'})")

    def variable_query(self, text: str) -> None:
        self.template = True
        m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*(\w+)\s*\)\s*", text, re.S)
        q = re.fullmatch(r"\s*query_result\((.*)\)\s*", text, re.S)
        if m and m.group(1):
            tree = self.parse(m.group(1))
            known = self.labels(tree) if tree is not None else None
            if known is not None and m.group(2) not in known:
                self.fail(f"label_values(): {m.group(2)} is not a label of {m.group(1).strip()}")
        elif m:
            if not any(m.group(2) in labels for _, _, labels in self.series.values()):
                self.fail(f"label_values({m.group(2)}): no metric has that label")
        elif q:
            self.expr(q.group(1))
        else:
            self.fail(f"variable query {text!r}: only label_values() and query_result() are checked")


def _variable_query(query) -> str | None:
    """A Prometheus variable's query as the string Grafana runs: the query
    itself, or what Grafana's variable editor makes of its object form."""
    if isinstance(query, str) or not isinstance(query, dict):
        return query
    kind = query.get("qryType")
    if kind is None:
        return query.get("query")
    if kind == 1:  # label values
        filters = ",".join(f'{f.get("label")}{f.get("op")}"{f.get("value")}"' for f in query.get("labelFilters") or [])
        metric = f'{query.get("metric") or ""}{{{filters}}}' if filters else query.get("metric")
        return f'label_values({metric}, {query.get("label")})' if metric else f'label_values({query.get("label")})'
    if kind == 3:
        return f'query_result({query.get("varQuery")})'
    if kind == 5:
        return query.get("classicQuery")
    return None


def _no_duplicate_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"duplicate keys {duplicates}")
    return dict(pairs)


def dashboard_problems(dash, table: dict, where: str) -> list:
    """What is wrong with the dashboard `dash` (already parsed JSON)."""
    problems: list = []
    fail = lambda at, message: problems.append(f"{at}: {message}")  # noqa: E731
    series = _series(table)
    if not isinstance(dash, dict):
        return [f"{where}: not a JSON object"]
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        fail(where, "schemaVersion must be a number >= 36 (Grafana 9 and newer)")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(dash.get("uid", ""))) or not dash.get("title"):
        fail(where, "needs a title and a uid of 1-40 letters, digits, - and _")
    inputs = {i.get("name"): i for i in dash.get("__inputs", [])}
    ds_input = inputs.get("DS_PROMETHEUS", {})
    if ds_input.get("type") != "datasource" or ds_input.get("pluginId") != "prometheus":
        fail(where, "__inputs needs DS_PROMETHEUS, a datasource of plugin prometheus")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds_var = variables.get("datasource", {})
    if ds_var.get("type") != "datasource" or ds_var.get("query") != "prometheus":
        fail(where, "templating needs the variable datasource (type datasource, query prometheus)")
    # ${DS_PROMETHEUS} is filled in by an import only: everything else refers
    # to ${datasource}, so that a provisioned file works as well.
    rest = {k: v for k, v in dash.items() if k != "__inputs"}
    rest["templating"] = {"list": [v for n, v in variables.items() if n != "datasource"]}
    if "DS_PROMETHEUS" in json.dumps(rest):
        fail(where, "only the datasource variable may name ${DS_PROMETHEUS}; panels use ${datasource}")
    def ds_ok(ds) -> bool:
        return isinstance(ds, dict) and ds.get("type") == "prometheus" and ds.get("uid") in DATASOURCE_UIDS

    used: set = set()
    for name, var in variables.items():
        at = f"{where} variable {name}"
        if var.get("type") != "query":
            continue
        if not ds_ok(var.get("datasource")):
            fail(at, 'datasource must be {"type": "prometheus", "uid": "${datasource}"}')
        text = _variable_query(var.get("query"))
        if not isinstance(text, str) or not text.strip():
            fail(at, "has no query (label_values(...) or query_result(...))")
            continue
        if var.get("definition") and re.sub(r"\s", "", var["definition"]) != re.sub(r"\s", "", text):
            fail(at, "definition differs from the query")
        PromQLCheck(series, variables, at, problems, set()).variable_query(text)

    panels = []
    for panel in dash.get("panels", []):
        panels.append((panel, True))
        panels.extend((inner, False) for inner in panel.get("panels", []) if panel.get("type") == "row")
    if not panels:
        fail(where, "has no panels")
    ids, cells = set(), {}
    for panel, top in panels:
        at = f"{where} panel {panel.get('id')} ({panel.get('title')!r})"
        if panel.get("id") in ids or not isinstance(panel.get("id"), int):
            fail(at, "needs an id of its own")
        ids.add(panel.get("id"))
        kind = panel.get("type")
        if kind not in PANEL_TYPES:
            fail(at, f"panel type {kind!r} is not one of {sorted(PANEL_TYPES)}")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["w"] < 1 or grid["h"] < 1 \
                or grid["x"] < 0 or grid["x"] + grid["w"] > 24:
            fail(at, f"gridPos {grid} is not within the 24 columns")
        elif top:
            for cx in range(grid["x"], grid["x"] + grid["w"]):
                for cy in range(grid["y"], grid["y"] + grid["h"]):
                    if (cx, cy) in cells:
                        fail(at, f"overlaps panel {cells[(cx, cy)]}")
                        break
                    cells[(cx, cy)] = panel.get("id")
                else:
                    continue
                break
        if kind in ("row", "text"):
            continue
        if not ds_ok(panel.get("datasource")):
            fail(at, 'datasource must be {"type": "prometheus", "uid": "${datasource}"}')
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        units = [defaults.get("unit")] + [
            p.get("value") for o in panel.get("fieldConfig", {}).get("overrides", [])
            for p in o.get("properties", []) if p.get("id") == "unit"
        ]
        for unit in units:
            if unit not in UNITS:
                fail(at, f"unit {unit!r} is not one of {sorted(UNITS)}")
        targets = panel.get("targets") or []
        if not targets:
            fail(at, "has no queries")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            fail(at, "every query needs a refId of its own")
        for t in targets:
            tat = f"{at} query {t.get('refId')}"
            if "datasource" in t and not ds_ok(t["datasource"]):
                fail(tat, 'datasource must be {"type": "prometheus", "uid": "${datasource}"}')
            if kind == "table" and not (t.get("instant") and t.get("format") == "table"):
                fail(tat, "a table's queries must be instant, format table")
            if not isinstance(t.get("expr"), str) or not t["expr"].strip():
                fail(tat, "has no expr")
                continue
            PromQLCheck(series, variables, tat, problems, used).expr(t["expr"], t.get("legendFormat"))
    for name in sorted(table.keys() - used):
        fail(where, f"{name} ({METRICS_RS.relative_to(ROOT)}) is on no panel")
    return problems


def _breakages(table: dict) -> dict:
    """Dashboards the check must refuse: a small valid one made from the
    metric table, broken one way each, with a word of the expected error."""
    kinds = {k: sorted(n for n, (t, _) in table.items() if t == k) for k in ("counter", "gauge", "histogram")}
    counter = next(n for n in kinds["counter"] if table[n][1])
    histogram = next(n for n in kinds["histogram"] if table[n][1])
    gauge = kinds["gauge"][0]
    cl, hl = sorted(table[counter][1])[0], sorted(table[histogram][1])[0]
    ds = {"type": "prometheus", "uid": "${datasource}"}
    exprs = {
        "A": (f'sum by ({cl}) (rate({counter}{{instance=~"$instance"}}[$__rate_interval]))', f"{{{{{cl}}}}}"),
        "B": (f"histogram_quantile(0.99, sum by (le, {hl}) (rate({histogram}_bucket[$__rate_interval])))",
              f"{{{{{hl}}}}}"),
        "C": (f"max by (instance) ({gauge})", "{{instance}}"),
    }

    def make(**change) -> dict:
        ex = {**exprs, **{k: v for k, v in change.items() if len(k) == 1}}
        panel = {"id": 1, "type": "timeseries", "title": "t", "datasource": ds,
                 "gridPos": {"h": 8, "w": 24, "x": 0, "y": 0}, "fieldConfig": {"defaults": {"unit": "short"}},
                 "targets": [{"refId": r, "datasource": ds, "expr": e, "legendFormat": lf} for r, (e, lf) in ex.items()]}
        panel.update(change.get("panel", {}))
        return {
            "uid": "t", "title": "t", "schemaVersion": 39,
            "__inputs": [{"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}],
            "templating": {"list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "instance", "type": "query", "datasource": ds, "multi": True, "includeAll": True,
                 "query": f"label_values({gauge}, instance)"},
            ]},
            "panels": [panel],
        }

    a_expr = exprs["A"][0]
    return {
        "valid": (make(), None),
        "an unknown metric": (make(A=(a_expr.replace(counter, counter + "x"), "")), "unknown metric"),
        "an unknown label in a selector": (
            make(A=(a_expr.replace('{instance', '{no_such_label="1",instance'), "")), "not a label of"),
        "an unknown label in by ()": (make(A=(a_expr.replace(f"by ({cl})", "by (no_such_label)"), "")),
                                      "not a label of what it aggregates"),
        "histogram_quantile without le": (
            make(B=(exprs["B"][0].replace("by (le, ", "by ("), "")), "needs the le label"),
        "a legend label the result lacks": (make(C=(exprs["C"][0], "{{no_such_label}}")), "the legend shows"),
        "PromQL that does not parse": (make(A=(a_expr[:-1], "")), "does not parse"),
        "a counter without rate()": (make(A=(f"sum({counter})", "")), "is a counter"),
        "a panel without the datasource variable": (make(panel={"datasource": {"type": "prometheus", "uid": "x"}}),
                                                    "datasource must be"),
        "a multi-value variable with =": (make(A=(a_expr.replace("=~", "="), "")), "needs =~"),
        "an undefined variable": (make(A=(a_expr.replace("$instance", "$no_such_var"), "")), "not a variable"),
    }


def check_dashboard() -> int:
    """The Grafana dashboard; returns the number of queries checked."""
    table = metrics_table(METRICS_RS.read_text(), API_RS.read_text())
    where = str(DASHBOARD.relative_to(ROOT))
    try:
        dash = json.loads(DASHBOARD.read_text(), object_pairs_hook=_no_duplicate_keys)
    except (OSError, ValueError) as e:
        error(where, f"not valid JSON: {e}")
        return 0
    errors.extend(dashboard_problems(dash, table, where))
    # The check itself: each breakage must be found, the valid one pass.
    for name, (broken, expected) in _breakages(table).items():
        found = dashboard_problems(broken, table, "test dashboard")
        # The small test dashboard shows only three metrics.
        found = [p for p in found if "is on no panel" not in p]
        if expected is None and found:
            error("deploy/check/validate.py", f"the dashboard check refuses its valid test dashboard: {found}")
        elif expected is not None and not any(expected in p for p in found):
            error("deploy/check/validate.py", f"the dashboard check misses {name} (expected {expected!r}, got {found})")
    panels = [q for p in dash.get("panels", []) for q in [p, *p.get("panels", [])]]
    return sum(len(p.get("targets", [])) for p in panels)


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servicemonitors", type=Path, required=True,
                        help="write the rendered ServiceMonitors here (JSON)")
    args = parser.parse_args()
    self_test()
    structs = config_settings(CONFIG_RS.read_text())
    check_config_text(structs, (DEPLOY / "lockgate.example.toml").read_text(), "deploy/lockgate.example.toml")
    check_compose(structs)
    demo = DEPLOY / "compose" / "transfer-demo.py"
    try:
        compile(demo.read_text(), str(demo), "exec")
    except SyntaxError as e:
        error(str(demo.relative_to(ROOT)), f"does not compile: {e}")
    monitors: list = []
    check_chart(structs, monitors)
    if not monitors:
        error("deploy/helm/lockgate", "no value set rendered a ServiceMonitor")
    args.servicemonitors.write_text(json.dumps(monitors))
    queries = check_dashboard()
    for line in errors:
        print(f"ERROR {line}", file=sys.stderr)
    print(
        f"deploy files: config files, compose, chart ({len(SCENARIOS)} value sets rendered, "
        f"{len(REFUSED)} refused), Grafana dashboard ({queries} queries) checked: {len(errors)} error(s)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
