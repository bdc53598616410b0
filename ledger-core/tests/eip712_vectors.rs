//! Interoperability with standard Ethereum tooling: the vectors in
//! `tests/vectors/eip712.json` were made by Python `eth_account` (see
//! `tests/vectors/generate.py`). For each one, ledger-core must compute the
//! same type string, domain separator, struct hash and digest, accept the
//! signature and recover the same address, and produce the same signature
//! byte for byte when it signs with the same key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use ledger_core::block::{BlockHeader, block_header_eip712_type};
use ledger_core::eip712::domain_separator;
use ledger_core::signature::recover_signer;
use ledger_core::{
    Address, Amount, AssetCode, ChainId, DocumentHash, Hashlock, LockId, MerkleRoot, Parties,
    Preimage, Scale, Signature, SigningKey, Transaction, TxBody, TxKind,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VectorFile {
    generator: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    name: String,
    private_key: String,
    address: String,
    typed_data: TypedData,
    type_string: String,
    domain_separator: String,
    struct_hash: String,
    digest: String,
    signature: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedData {
    types: BTreeMap<String, Vec<Field>>,
    primary_type: String,
    domain: BTreeMap<String, String>,
    message: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Field {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

fn load() -> VectorFile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/eip712.json");
    let text = std::fs::read_to_string(path).expect("read vectors");
    serde_json::from_str(&text).expect("parse vectors")
}

fn hex32(text: &str) -> [u8; 32] {
    let bytes = hex::decode(text.strip_prefix("0x").expect("0x")).expect("hex");
    bytes.try_into().expect("32 bytes")
}

struct Message<'a>(&'a BTreeMap<String, serde_json::Value>);

impl Message<'_> {
    fn str(&self, field: &str) -> &str {
        self.0[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is a string"))
    }
    fn parse<T: std::str::FromStr>(&self, field: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        self.str(field)
            .parse()
            .unwrap_or_else(|e| panic!("{field}: {e:?}"))
    }
    fn amount(&self) -> Amount {
        self.parse("amount")
    }
    fn asset(&self, field: &str) -> AssetCode {
        self.parse(field)
    }
    fn bytes(&self, field: &str) -> Vec<u8> {
        hex::decode(self.str(field).strip_prefix("0x").expect("0x")).expect("hex")
    }
}

fn transaction(vector: &Vector, chain_id: ChainId, kind: TxKind) -> Transaction {
    let m = Message(&vector.typed_data.message);
    let body = match kind {
        TxKind::RegisterAsset => TxBody::RegisterAsset {
            code: m.asset("code"),
            scale: Scale::new(m.parse("scale")).unwrap(),
        },
        TxKind::Issue => TxBody::Issue {
            asset: m.asset("asset"),
            to: m.parse("to"),
            amount: m.amount(),
        },
        TxKind::Burn => TxBody::Burn {
            asset: m.asset("asset"),
            amount: m.amount(),
        },
        TxKind::Transfer => TxBody::Transfer {
            asset: m.asset("asset"),
            to: m.parse("to"),
            amount: m.amount(),
        },
        TxKind::HtlcLock => TxBody::HtlcLock {
            asset: m.asset("asset"),
            recipient: m.parse("recipient"),
            amount: m.amount(),
            hashlock: m.parse::<Hashlock>("hashlock"),
            expires_at_ms: m.parse("expiresAtMs"),
        },
        TxKind::HtlcClaim => TxBody::HtlcClaim {
            lock_id: m.parse::<LockId>("lockId"),
            preimage: Preimage::new(m.bytes("preimage")).unwrap(),
        },
        TxKind::HtlcRefund => TxBody::HtlcRefund {
            lock_id: m.parse::<LockId>("lockId"),
        },
        TxKind::Anchor => TxBody::Anchor {
            document_hash: m.parse::<DocumentHash>("documentHash"),
            parties: Parties::new(
                m.0["parties"]
                    .as_array()
                    .expect("parties is a list")
                    .iter()
                    .map(|p| p.as_str().expect("address").parse::<Address>().unwrap())
                    .collect(),
            )
            .unwrap(),
        },
    };
    Transaction {
        chain_id,
        from: m.parse("from"),
        nonce: m.parse("nonce"),
        body,
    }
}

fn block_header(vector: &Vector, chain_id: ChainId) -> BlockHeader {
    let m = Message(&vector.typed_data.message);
    BlockHeader {
        chain_id,
        height: m.parse("height"),
        previous_hash: m.parse("previousHash"),
        timestamp_ms: m.parse("timestampMs"),
        tx_root: m.parse::<MerkleRoot>("txRoot"),
        tx_count: m.parse("txCount"),
        producer: m.parse("producer"),
    }
}

/// The type string rebuilt from the vector's own `types` table, the way the
/// EIP encodes it: `Name(type1 name1,type2 name2,...)`.
fn type_string_from_table(typed: &TypedData) -> String {
    let fields = &typed.types[&typed.primary_type];
    let inner: Vec<String> = fields
        .iter()
        .map(|f| format!("{} {}", f.ty, f.name))
        .collect();
    format!("{}({})", typed.primary_type, inner.join(","))
}

#[test]
fn vectors_cover_every_message_type() {
    let file = load();
    assert!(
        file.generator.starts_with("eth_account"),
        "{}",
        file.generator
    );
    let mut seen: Vec<&str> = file
        .vectors
        .iter()
        .map(|v| v.typed_data.primary_type.as_str())
        .collect();
    seen.sort();
    seen.dedup();
    let mut expected: Vec<&str> = TxKind::ALL.iter().map(|k| k.name()).collect();
    expected.push("BlockHeader");
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn ledger_core_agrees_with_eth_account_on_every_vector() {
    let file = load();
    assert!(file.vectors.len() >= 20);
    for vector in &file.vectors {
        let name = &vector.name;
        let typed = &vector.typed_data;
        let chain_id = ChainId::new(typed.domain["chainId"].parse().unwrap()).unwrap();
        assert_eq!(typed.domain["name"], "Lockgate Ledger", "{name}");
        assert_eq!(typed.domain["version"], "1", "{name}");
        assert_eq!(
            hex::encode(domain_separator(chain_id)),
            vector.domain_separator[2..],
            "{name}: domain separator"
        );

        let key = SigningKey::from_bytes(hex32(&vector.private_key)).unwrap();
        let address: Address = vector.address.parse().unwrap();
        assert_eq!(key.address(), address, "{name}: key address");
        assert_eq!(
            key.address().to_string(),
            vector.address,
            "{name}: EIP-55 form"
        );
        let signature: Signature = vector.signature.parse().unwrap();
        let digest = hex32(&vector.digest);

        let (our_type, struct_hash, our_digest) = if typed.primary_type == "BlockHeader" {
            let header = block_header(vector, chain_id);
            let signed = header.sign(&key).unwrap();
            assert_eq!(signed.signature, signature, "{name}: signature bytes");
            signed.verify_signature().unwrap();
            (block_header_eip712_type(), None, *header.hash().as_bytes())
        } else {
            let kind = TxKind::from_name(&typed.primary_type).expect("known type");
            let tx = transaction(vector, chain_id, kind);
            let struct_hash = tx.struct_hash();
            let digest = *tx.hash().as_bytes();
            let signed = tx.sign(&key).unwrap();
            assert_eq!(signed.signature, signature, "{name}: signature bytes");
            let mut theirs = signed.clone();
            theirs.signature = signature;
            let verified = theirs.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(verified.transaction().from, address);
            (kind.eip712_type(), Some(struct_hash), digest)
        };
        assert_eq!(our_type, vector.type_string, "{name}: type string");
        assert_eq!(
            our_type,
            type_string_from_table(typed),
            "{name}: types table"
        );
        if let Some(struct_hash) = struct_hash {
            assert_eq!(
                hex::encode(struct_hash),
                vector.struct_hash[2..],
                "{name}: struct hash"
            );
        }
        assert_eq!(our_digest, digest, "{name}: digest");
        assert_eq!(
            recover_signer(&digest, &signature),
            Ok(address),
            "{name}: recovery"
        );
    }
}

#[test]
fn a_vector_signature_does_not_carry_over_to_changed_content() {
    let file = load();
    let vector = file
        .vectors
        .iter()
        .find(|v| v.typed_data.primary_type == "Transfer")
        .expect("a transfer vector");
    let chain_id = ChainId::new(vector.typed_data.domain["chainId"].parse().unwrap()).unwrap();
    let mut tx = transaction(vector, chain_id, TxKind::Transfer);
    if let TxBody::Transfer { amount, .. } = &mut tx.body {
        *amount = amount
            .checked_add(Amount::from_minor_units(1))
            .unwrap_or(Amount::ZERO);
    }
    let signed = ledger_core::SignedTransaction {
        transaction: tx,
        signature: vector.signature.parse().unwrap(),
    };
    assert!(signed.verify().is_err());
}
