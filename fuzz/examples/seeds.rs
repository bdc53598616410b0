//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/`)
//! from real, valid inputs, so each fuzzer starts past its parser's first
//! checks:
//!
//! - the independent vectors of the repository: the `eth_account` EIP-712
//!   vectors (`ledger-core/tests/vectors/eip712.json`, as API bodies and as
//!   text forms), the Python SATP session and JWS vectors
//!   (`adapters/tests/vectors/`);
//! - inputs made here with the project's own code and the fixtures of
//!   `src/lib.rs`: a ledger chain of every transaction kind (applied with
//!   `apply_batch`, sealed with `seal_block`) and its export; a whole SATP
//!   session over that chain (lock evidence, settlement evidence, hash
//!   chain), its envelopes, the recovery messages and a signed error;
//!   signed usage records as CSV and NDJSON, and their agreements.
//!
//! Every seed made here is checked the way its target checks it (the export
//! verifies, the session is accepted, the evidence is accepted, the records
//! validate), so a seed that stops passing shows up here first. Output is
//! deterministic (RFC 6979 signatures); re-running rewrites the same bytes.
//!
//! ```text
//! cargo +nightly run --manifest-path fuzz/Cargo.toml --example seeds [-- OUT_DIR]
//! ```
//!
//! `OUT_DIR` defaults to `fuzz/corpus`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use adapters::satp::context::TransferContext;
use adapters::satp::envelope::{self, Envelope};
use adapters::satp::jws;
use adapters::satp::messages::{
    Capabilities, FLOW, Message, NetworkLockType, Sender, TransferInitClaim, VERSION, hash_json,
};
use adapters::satp::recovery::{Compensation, RecoveryMessage};
use adapters::satp::session::Session;
use base64::Engine as _;
use ledger_core::block::Block;
use ledger_core::merkle::MerkleTree;
use ledger_core::settlement::Service;
use ledger_core::settlement::record::{ServiceLine, UsageRecord};
use ledger_core::settlement::typed::record_digest;
use ledger_core::{
    Address, Amount, BlockContext, ChainId, ChainTip, DocumentHash, Hashlock, LockId, Parties,
    Preimage, Scale, SignedTransaction, SigningKey, Snapshot, Transaction, TxBody, TxHash,
    apply_batch, seal_block,
};
use lockgate::dto::SignedTransactionDto;
use lockgate::export::{ExportBlock, ExportHead, ExportTransaction, verify_export};
use lockgate::satp::evidence;
use lockgate::satp::problem::SatpProblem;
use lockgate::settlement::import::{CSV_HEADER, csv_line};
use lockgate::settlement::{AgreementBody, UsageRecordBody};
use lockgate::views::{BatchRequest, BlockHeaderView, ProofView, rfc3339};
use lockgate_fuzz::{
    FEB_2026_MS, JAN_2026_MS, NOW_MS, SOURCE_CHAIN, TARGET_CHAIN, agreements, asset, chain,
    context, ledger_key, operators, preimage, producer, producer_key, rates, satp_client_key,
    satp_server_key, source_terms, target_terms,
};
use serde_json::{Value, json};

const SESSION_ID: &str = "3f0a1c52-6a4e-4b8e-9d3c-00000000f022";

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        self.written += 1;
    }

    fn json(&mut self, target: &str, name: &str, value: &impl serde::Serialize) {
        self.put(target, name, serde_json::to_vec(value).unwrap());
    }
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = std::env::args()
        .nth(1)
        .map_or_else(|| manifest.join("corpus"), PathBuf::from);
    let mut corpus = Corpus { root, written: 0 };
    let repo = manifest.parent().unwrap();

    let source = source_chain();
    let target = target_chain();
    ledger(&mut corpus, repo, &source);
    export(&mut corpus, &source);
    satp(&mut corpus, repo, &source, &target);
    settlement(&mut corpus);
    println!(
        "{} seeds written to {}",
        corpus.written,
        corpus.root.display()
    );
}

// ------------------------------------------------------------------ ledger

/// A ledger built block by block with the real state transition.
struct Chain {
    id: ChainId,
    snapshot: Snapshot,
    tip: ChainTip,
    nonces: BTreeMap<Address, u64>,
    blocks: Vec<(Block, MerkleTree)>,
    /// Every transaction by hash: (block index, position).
    places: BTreeMap<TxHash, (usize, usize)>,
}

impl Chain {
    fn new(id: u64) -> Self {
        Self {
            id: chain(id),
            snapshot: Snapshot::complete(),
            tip: ChainTip::GENESIS,
            nonces: BTreeMap::new(),
            blocks: Vec::new(),
            places: BTreeMap::new(),
        }
    }

    fn tx(&mut self, key: &SigningKey, body: TxBody) -> SignedTransaction {
        let nonce = self.nonces.entry(key.address()).or_insert(0);
        let tx = Transaction {
            chain_id: self.id,
            from: key.address(),
            nonce: *nonce,
            body,
        };
        *nonce += 1;
        tx.sign(key).unwrap()
    }

    /// Applies and seals one block; every transaction must apply.
    fn block(&mut self, timestamp_ms: u64, txs: Vec<SignedTransaction>) -> Vec<TxHash> {
        let verified: Vec<_> = txs.into_iter().map(|t| t.verify().unwrap()).collect();
        let context = BlockContext {
            chain_id: self.id,
            timestamp_ms,
        };
        let result = apply_batch(&mut self.snapshot, &context, &verified).unwrap();
        assert!(
            result.outcomes.iter().all(|o| o.is_applied()),
            "{:?}",
            result.outcomes
        );
        let (block, tree) = seal_block(&context, &self.tip, &verified, &producer_key()).unwrap();
        self.tip = ChainTip {
            next_height: self.tip.next_height + 1,
            last_hash: block.header.header.hash(),
            last_timestamp_ms: timestamp_ms,
        };
        let index = self.blocks.len();
        let hashes: Vec<TxHash> = verified.iter().map(|v| v.hash()).collect();
        for (position, hash) in hashes.iter().enumerate() {
            self.places.insert(*hash, (index, position));
        }
        self.blocks.push((block, tree));
        hashes
    }

    /// Inclusion evidence in the `ledger-inclusion-1` format.
    fn evidence(&self, hash: TxHash) -> Value {
        let (index, position) = self.places[&hash];
        let (block, tree) = &self.blocks[index];
        let proof = ProofView {
            block_header: BlockHeaderView::from(&block.header),
            index: position as u32,
            path: tree
                .path(position)
                .unwrap()
                .iter()
                .map(|h| format!("0x{}", hex::encode(h)))
                .collect(),
        };
        json!({
            "transaction": SignedTransactionDto::from_domain(&block.transactions[position]),
            "proof": proof,
        })
    }

    fn export(&self) -> String {
        let mut lines = vec![
            serde_json::to_string(&ExportHead::new(self.id, vec![producer()], &self.tip)).unwrap(),
        ];
        for (block, tree) in &self.blocks {
            let transactions = block
                .transactions
                .iter()
                .enumerate()
                .map(|(i, tx)| ExportTransaction {
                    transaction: SignedTransactionDto::from_domain(tx),
                    index: i as u32,
                    path: tree
                        .path(i)
                        .unwrap()
                        .iter()
                        .map(|h| format!("0x{}", hex::encode(h)))
                        .collect(),
                })
                .collect();
            let line = ExportBlock {
                header: BlockHeaderView::from(&block.header),
                transactions,
            };
            lines.push(serde_json::to_string(&line).unwrap());
        }
        lines.join("\n") + "\n"
    }
}

/// The short lock of the source chain, refunded in its last block.
fn refund_preimage() -> [u8; 32] {
    ledger_core::hash::sha256(b"lockgate-fuzz-refunded")
}

/// The source ledger: every transaction kind, the sender's lock of the SATP
/// seeds claimed by the connector, and a second lock refunded.
fn source_chain() -> Chain {
    let c = context();
    let (k1, k2, k3) = (ledger_key(1), ledger_key(2), ledger_key(3));
    let usd = asset("USD");
    let mut chain = Chain::new(SOURCE_CHAIN);
    let register = chain.tx(
        &k1,
        TxBody::RegisterAsset {
            code: usd,
            scale: Scale::new(2).unwrap(),
        },
    );
    let issue = chain.tx(
        &k1,
        TxBody::Issue {
            asset: usd,
            to: k1.address(),
            amount: Amount::from_minor_units(1_000_000),
        },
    );
    chain.block(JAN_2026_MS + 1_000, vec![register, issue]);
    let lock = chain.tx(
        &k1,
        TxBody::HtlcLock {
            asset: usd,
            recipient: c.source_lock_recipient,
            amount: c.amount,
            hashlock: c.hashlock,
            expires_at_ms: c.source_expires_at_ms,
        },
    );
    let short = chain.tx(
        &k1,
        TxBody::HtlcLock {
            asset: usd,
            recipient: k3.address(),
            amount: Amount::from_minor_units(100),
            hashlock: Hashlock::of_preimage(&refund_preimage()),
            expires_at_ms: JAN_2026_MS + 20_000,
        },
    );
    let transfer = chain.tx(
        &k1,
        TxBody::Transfer {
            asset: usd,
            to: k2.address(),
            amount: Amount::from_minor_units(5),
        },
    );
    let anchor = chain.tx(
        &k1,
        TxBody::Anchor {
            document_hash: DocumentHash::from_bytes(ledger_core::hash::sha256(b"document")),
            parties: Parties::new(vec![k1.address(), k2.address()]).unwrap(),
        },
    );
    let hashes = chain.block(JAN_2026_MS + 2_000, vec![lock, short, transfer, anchor]);
    let (lock_id, short_id) = (LockId::from(hashes[0]), LockId::from(hashes[1]));
    let claim = chain.tx(
        &k3,
        TxBody::HtlcClaim {
            lock_id,
            preimage: Preimage::new(preimage().to_vec()).unwrap(),
        },
    );
    let burn = chain.tx(
        &k1,
        TxBody::Burn {
            asset: usd,
            amount: Amount::from_minor_units(1),
        },
    );
    chain.block(JAN_2026_MS + 5_000, vec![claim, burn]);
    let refund = chain.tx(&k2, TxBody::HtlcRefund { lock_id: short_id });
    chain.block(JAN_2026_MS + 30_000, vec![refund]);
    chain
}

/// The target ledger: the connector's lock to the recipient, claimed.
fn target_chain() -> Chain {
    let c = context();
    let (k2, k3) = (ledger_key(2), ledger_key(3));
    let usd = asset("USD");
    let mut chain = Chain::new(TARGET_CHAIN);
    let register = chain.tx(
        &k3,
        TxBody::RegisterAsset {
            code: usd,
            scale: Scale::new(2).unwrap(),
        },
    );
    let issue = chain.tx(
        &k3,
        TxBody::Issue {
            asset: usd,
            to: k3.address(),
            amount: Amount::from_minor_units(1_000_000),
        },
    );
    chain.block(JAN_2026_MS + 1_000, vec![register, issue]);
    let terms = target_terms(&c);
    let lock = chain.tx(
        &k3,
        TxBody::HtlcLock {
            asset: terms.asset,
            recipient: terms.recipient,
            amount: terms.amount,
            hashlock: terms.hashlock,
            expires_at_ms: terms.expires_at_ms,
        },
    );
    let hashes = chain.block(JAN_2026_MS + 3_000, vec![lock]);
    let claim = chain.tx(
        &k2,
        TxBody::HtlcClaim {
            lock_id: LockId::from(hashes[0]),
            preimage: Preimage::new(preimage().to_vec()).unwrap(),
        },
    );
    chain.block(JAN_2026_MS + 4_000, vec![claim]);
    chain
}

fn ledger(corpus: &mut Corpus, repo: &Path, source: &Chain) {
    let vectors: Value = serde_json::from_slice(
        &std::fs::read(repo.join("ledger-core/tests/vectors/eip712.json")).unwrap(),
    )
    .unwrap();
    let mut text_seeds: Vec<(u8, String)> = Vec::new();
    let mut raw_seeds: Vec<Vec<u8>> = Vec::new();
    for vector in vectors["vectors"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        let typed = &vector["typedData"];
        let signature = vector["signature"].as_str().unwrap();
        let digest = vector["digest"].as_str().unwrap();
        let mut raw = hex::decode(&digest[2..]).unwrap();
        raw.extend(hex::decode(&signature[2..]).unwrap());
        raw_seeds.push(raw);
        text_seeds.push((9, signature.to_string()));
        text_seeds.push((3, digest.to_string()));
        text_seeds.push((0, vector["address"].as_str().unwrap().to_string()));
        for (field, value) in typed["message"].as_object().unwrap() {
            let Some(text) = value.as_str() else {
                continue;
            };
            let selector = match field.as_str() {
                "asset" | "code" => 1,
                "amount" => 2,
                "lockId" => 5,
                "hashlock" => 6,
                "documentHash" => 7,
                "txRoot" => 8,
                "previousHash" => 4,
                "to" | "recipient" | "producer" => 0,
                _ => continue,
            };
            text_seeds.push((selector, text.to_string()));
        }
        if typed["primaryType"] == "BlockHeader" {
            continue;
        }
        // The API body: the varying parts of the typed data, as signed.
        let body = json!({
            "chainId": typed["domain"]["chainId"],
            "primaryType": typed["primaryType"],
            "message": typed["message"],
            "signature": signature,
        });
        corpus.json("ledger_tx_json", &format!("eth-account-{name}.json"), &body);
    }
    // Every kind made here, one by one, as a batch, and with v = 0/1.
    let mut all = Vec::new();
    for (block, _) in &source.blocks {
        for tx in &block.transactions {
            let dto = SignedTransactionDto::from_domain(tx);
            let kind = tx.transaction.kind().name().to_ascii_lowercase();
            corpus.json(
                "ledger_tx_json",
                &format!("made-{kind}-nonce{}.json", tx.transaction.nonce),
                &dto,
            );
            all.push(dto);
        }
    }
    let mut low_v = all[0].clone();
    let mut bytes = hex::decode(&low_v.signature[2..]).unwrap();
    bytes[64] -= 27;
    low_v.signature = format!("0x{}", hex::encode(bytes));
    corpus.json("ledger_tx_json", "made-registerasset-v01.json", &low_v);
    corpus.json(
        "ledger_tx_json",
        "made-batch.json",
        &BatchRequest {
            transactions: all.clone(),
        },
    );
    for (i, raw) in raw_seeds.iter().enumerate() {
        let mut seed = vec![11u8];
        seed.extend(raw);
        corpus.put("ledger_text", &format!("recover-{i:02}"), seed);
    }
    text_seeds.extend([
        (2, "0".to_string()),
        (2, u128::MAX.to_string()),
        (10, "DEUD2".to_string()),
        (10, "voice_mo".to_string()),
        (10, "data".to_string()),
        (1, "TOKEN-1".to_string()),
    ]);
    text_seeds.sort();
    text_seeds.dedup();
    for (i, (selector, text)) in text_seeds.iter().enumerate() {
        let mut seed = vec![*selector];
        seed.extend(text.as_bytes());
        corpus.put("ledger_text", &format!("text-{selector:02}-{i:03}"), seed);
    }
}

fn export(corpus: &mut Corpus, source: &Chain) {
    let text = source.export();
    verify_export(text.as_bytes(), Some(source.id), vec![producer()]).unwrap();
    corpus.put("chain_export", "source-chain.ndjson", &text);
    let target = target_chain();
    let text = target.export();
    verify_export(text.as_bytes(), None, Vec::new()).unwrap();
    corpus.put("chain_export", "target-chain.ndjson", &text);
    let empty = Chain::new(SOURCE_CHAIN).export();
    verify_export(empty.as_bytes(), None, Vec::new()).unwrap();
    corpus.put("chain_export", "empty-chain.ndjson", &empty);
}

// -------------------------------------------------------------------- SATP

fn sealed(message: &Message) -> Envelope {
    let key = match FLOW.iter().find(|(name, _)| *name == message.type_name()) {
        Some((_, Sender::Server)) => satp_server_key(),
        _ => satp_client_key(),
    };
    envelope::seal(message, &key).unwrap()
}

/// A whole session over the seed chains, as the two gateways make it.
fn session(source: &Chain, target: &Chain) -> Vec<Message> {
    let c = context();
    let context_id = c.encode();
    let m = |f: &dyn Fn(String, String) -> Message| f(SESSION_ID.to_string(), context_id.clone());
    let claim = TransferInitClaim {
        digital_asset_id: format!("lockgate:{SOURCE_CHAIN}:USD"),
        asset_profile_id: format!("lockgate:{TARGET_CHAIN}:USD"),
        network_lock_type: NetworkLockType::HashTimeLock,
        asset_lock_expiration_time: Some(110),
        verified_originator_entity_id: c.sender.to_string(),
        verified_beneficiary_entity_id: c.recipient.to_string(),
        originator_public_key: c.sender.to_string(),
        beneficiary_public_key: c.recipient.to_string(),
        sender_gateway_signature_public_key: jws::jwk(satp_client_key().verifying_key())
            .to_string(),
        receiver_gateway_signature_public_key: jws::jwk(satp_server_key().verifying_key())
            .to_string(),
        sender_gateway_id: "gateway-a".into(),
        recipient_gateway_id: "gateway-b".into(),
        sender_gateway_network_id: SOURCE_CHAIN.to_string(),
        recipient_gateway_network_id: TARGET_CHAIN.to_string(),
        sender_gateway_device_identity_public_key: None,
        receiver_gateway_device_identity_public_key: None,
        sender_gateway_owner_id: None,
        receiver_gateway_owner_id: None,
    };
    let claim_hash = hash_json(&serde_json::to_value(&claim).unwrap()).unwrap();
    let source_lock = source.blocks[1].0.transactions[0].transaction.hash();
    let target_lock = target.blocks[1].0.transactions[0].transaction.hash();
    let mut messages = vec![m(&|session_id, transfer_context_id| {
        Message::TransferProposal {
            version: VERSION.into(),
            session_id,
            transfer_context_id,
            transfer_init_claim_format: "TRANSFER_INIT_CLAIM_FORMAT_1".into(),
            transfer_init_claim: claim.clone(),
            gateway_and_network_capabilities: Capabilities {
                gateway_default_signature_algorithm: "ES256".into(),
                gateway_supported_signature_algorithms: Some(vec!["ES256".into()]),
                network_lock_type: NetworkLockType::HashTimeLock,
                network_lock_expiration_time: 86_400,
                gateway_tls_scheme: "TLS_AES_128_GCM_SHA256".into(),
            },
        }
    })];
    let next = |messages: &Vec<Message>| messages.last().unwrap().hash().unwrap();
    let receipt = m(
        &|session_id, transfer_context_id| Message::ProposalReceipt {
            version: VERSION.into(),
            session_id,
            transfer_context_id,
            hash_transfer_init_claim: claim_hash.clone(),
            timestamp: rfc3339(JAN_2026_MS + 100),
        },
    );
    messages.push(receipt);
    let prev = next(&messages);
    messages.push(m(&|session_id, transfer_context_id| {
        Message::TransferCommence {
            session_id,
            transfer_context_id,
            hash_transfer_init_claim: claim_hash.clone(),
            hash_prev_message: prev.clone(),
        }
    }));
    let commence_hash = next(&messages);
    let prev = commence_hash.clone();
    messages.push(m(&|session_id, transfer_context_id| Message::AckCommence {
        session_id,
        transfer_context_id,
        hash_prev_message: prev.clone(),
    }));
    let prev = next(&messages);
    let lock_claim = source.evidence(source_lock);
    messages.push(m(&|session_id, transfer_context_id| Message::LockAssert {
        session_id,
        transfer_context_id,
        lock_assertion_claim_format: evidence::INCLUSION.into(),
        lock_assertion_claim: lock_claim.clone(),
        lock_assertion_expiration: rfc3339(c.source_expires_at_ms),
        hash_prev_message: prev.clone(),
    }));
    let prev = next(&messages);
    messages.push(m(&|session_id, transfer_context_id| {
        Message::AssertionReceipt {
            session_id,
            transfer_context_id,
            hash_prev_message: prev.clone(),
        }
    }));
    let prev = next(&messages);
    messages.push(m(&|session_id, transfer_context_id| {
        Message::CommitPrepare {
            session_id,
            transfer_context_id,
            hash_prev_message: prev.clone(),
        }
    }));
    let prev = next(&messages);
    let mint_claim = target.evidence(target_lock);
    messages.push(m(&|session_id, transfer_context_id| Message::CommitReady {
        session_id,
        transfer_context_id,
        hash_prev_message: prev.clone(),
        mint_assertion_format: evidence::INCLUSION.into(),
        mint_assertion_claim: mint_claim.clone(),
    }));
    let prev = next(&messages);
    messages.push(m(&|session_id, transfer_context_id| Message::CommitFinal {
        session_id,
        transfer_context_id,
        hash_prev_message: prev.clone(),
        burn_assertion_claim_format: evidence::SETTLEMENT.into(),
        burn_assertion_claim: evidence::settlement(
            c.source_chain_id,
            LockId::from(source_lock),
            preimage(),
        ),
    }));
    let prev = next(&messages);
    messages.push(m(&|session_id, transfer_context_id| {
        Message::AckCommitFinal {
            session_id,
            transfer_context_id,
            hash_prev_message: prev.clone(),
            assignment_assertion_claim_format: evidence::SETTLEMENT.into(),
            assignment_assertion_claim: evidence::settlement(
                c.target_chain_id,
                LockId::from(target_lock),
                preimage(),
            ),
        }
    }));
    let prev = next(&messages);
    messages.push(m(&|session_id, transfer_context_id| {
        Message::TransferComplete {
            session_id,
            transfer_context_id,
            hash_prev_message: prev.clone(),
            hash_transfer_commence: commence_hash.clone(),
        }
    }));
    // Checked as the two gateways check it.
    let mut state = Session::new();
    for message in &messages {
        let sender = FLOW
            .iter()
            .find(|(name, _)| *name == message.type_name())
            .unwrap()
            .1;
        state.accept(message, &message.to_json(), sender).unwrap();
    }
    assert!(state.is_complete());
    let decoded = TransferContext::decode(&context_id).unwrap();
    assert_eq!(decoded, c);
    evidence::verify_lock(
        &lock_claim,
        c.source_chain_id,
        &[producer()],
        &source_terms(&c),
        false,
        true,
    )
    .unwrap();
    evidence::verify_lock(
        &mint_claim,
        c.target_chain_id,
        &[producer()],
        &target_terms(&c),
        true,
        true,
    )
    .unwrap();
    messages
}

fn recovery_messages(source: &Chain, envelopes: &[Envelope]) -> Vec<RecoveryMessage> {
    let context_id = context().encode();
    let recover = RecoveryMessage::Recover {
        session_id: SESSION_ID.into(),
        context_id: context_id.clone(),
        satp_phase: "2".into(),
        sequence_number: 4,
        is_backup: false,
        last_entry_timestamp: (JAN_2026_MS + 2_500).to_string(),
    };
    let update = RecoveryMessage::RecoverUpdate {
        session_id: SESSION_ID.into(),
        context_id: context_id.clone(),
        hash_recover_message: recover.hash().unwrap(),
        recovered_messages: envelopes.to_vec(),
    };
    let ack = RecoveryMessage::RecoverUpdateAck {
        session_id: SESSION_ID.into(),
        context_id: context_id.clone(),
        hash_recover_update_message: update.hash().unwrap(),
        success: true,
        sequence_number: envelopes.len() as u32,
    };
    let success = RecoveryMessage::RecoverSuccess {
        session_id: SESSION_ID.into(),
        context_id: context_id.clone(),
        hash_recover_update_ack_message: ack.hash().unwrap(),
        success: true,
    };
    let (refund_block, _) = &source.blocks[3];
    let refund = &refund_block.transactions[0];
    let TxBody::HtlcRefund { lock_id } = refund.transaction.body else {
        unreachable!("the last source block refunds");
    };
    let refund_evidence = source.evidence(refund.transaction.hash());
    evidence::verify_inclusion(&refund_evidence, source.id, &[producer()]).unwrap();
    let rollback = RecoveryMessage::Rollback {
        session_id: SESSION_ID.into(),
        context_id: context_id.clone(),
        actions: vec![Compensation {
            action: "source-refund".into(),
            chain_id: SOURCE_CHAIN.to_string(),
            lock_id: Some(lock_id.to_string()),
            status: "refunded".into(),
            expires_at_ms: Some((JAN_2026_MS + 20_000).to_string()),
            evidence: Some(refund_evidence),
        }],
    };
    let rollback_ack = RecoveryMessage::RollbackAck {
        session_id: SESSION_ID.into(),
        context_id,
        hash_rollback_message: rollback.hash().unwrap(),
        actions: vec![Compensation {
            action: "target-refund".into(),
            chain_id: TARGET_CHAIN.to_string(),
            lock_id: Some(LockId::from_bytes([7; 32]).to_string()),
            status: "pending".into(),
            expires_at_ms: Some(context().target_expires_at_ms.to_string()),
            evidence: None,
        }],
    };
    vec![recover, update, ack, success, rollback, rollback_ack]
}

fn satp(corpus: &mut Corpus, repo: &Path, source: &Chain, target: &Chain) {
    let messages = session(source, target);
    let envelopes: Vec<Envelope> = messages.iter().map(sealed).collect();
    for (i, (message, envelope)) in messages.iter().zip(&envelopes).enumerate() {
        let name = format!("made-{i:02}-{}.json", message.type_name());
        corpus.json("satp_message", &name, &message.to_json());
        corpus.json("satp_envelope", &name, envelope);
    }
    let all: Vec<Value> = messages.iter().map(Message::to_json).collect();
    corpus.json("satp_message", "made-session.json", &all);
    let abort = Message::SessionAbort {
        session_id: SESSION_ID.into(),
    };
    let mut aborted: Vec<Value> = all[..4].to_vec();
    aborted.push(abort.to_json());
    corpus.json("satp_message", "made-session-aborted.json", &aborted);
    corpus.json("satp_envelope", "made-session-abort.json", &sealed(&abort));

    for (i, message) in recovery_messages(source, &envelopes[4..])
        .iter()
        .enumerate()
    {
        let name = format!("made-recovery-{i}-{}.json", message.type_name());
        corpus.json("satp_message", &name, &message.to_json());
        let envelope = envelope::seal_value(&message.to_json(), &satp_client_key()).unwrap();
        corpus.json("satp_envelope", &name, &envelope);
    }

    // A signed error document, as a server refuses a message.
    let identity = lockgate::satp::Identity {
        gateway_id: "gateway-b".into(),
        key: satp_server_key(),
        jwk: jws::jwk(satp_server_key().verifying_key()),
        kid: jws::thumbprint(satp_server_key().verifying_key()),
        keys: jws::KeySet::new(*satp_server_key().verifying_key()),
    };
    let refusal = SatpProblem::new(
        "err_1.3.4",
        "hashPrevMessage is not the hash of the previous message",
    )
    .about(
        SESSION_ID,
        &context().encode(),
        &messages[2].hash().unwrap(),
    )
    .signed(&identity, JAN_2026_MS + 200);
    lockgate::satp::problem::verify(
        &refusal,
        &jws::KeySet::new(*satp_server_key().verifying_key()),
    )
    .unwrap();
    corpus.json("satp_envelope", "made-error-document.json", &refusal);

    // The independent Python session and JWS vectors.
    let python: Value = serde_json::from_slice(
        &std::fs::read(repo.join("adapters/tests/vectors/satp_session.json")).unwrap(),
    )
    .unwrap();
    let mut python_messages = Vec::new();
    for (i, entry) in python["messages"].as_array().unwrap().iter().enumerate() {
        let envelope: Envelope = serde_json::from_value(entry["envelope"].clone()).unwrap();
        let key = if entry["sender"] == "server" {
            satp_server_key()
        } else {
            satp_client_key()
        };
        envelope::open(&envelope, key.verifying_key())
            .expect("the Python session is signed with the fixtures' keys");
        corpus.json(
            "satp_envelope",
            &format!("python-{i:02}.json"),
            &entry["envelope"],
        );
        corpus.json(
            "satp_message",
            &format!("python-{i:02}.json"),
            &entry["message"],
        );
        python_messages.push(entry["message"].clone());
    }
    corpus.json("satp_message", "python-session.json", &python_messages);
    let vectors: Value = serde_json::from_slice(
        &std::fs::read(repo.join("adapters/tests/vectors/satp.json")).unwrap(),
    )
    .unwrap();
    let compact = vectors["jws"]["compact"].as_str().unwrap();
    let parts: Vec<&str> = compact.split('.').collect();
    corpus.json(
        "satp_envelope",
        "python-jws-other-key.json",
        &json!({"protected": parts[0], "payload": parts[1], "signature": parts[2]}),
    );
    for (i, case) in vectors["jcs"].as_array().unwrap().iter().enumerate() {
        corpus.put(
            "satp_message",
            &format!("python-jcs-{i}.json"),
            case["input"].as_str().unwrap(),
        );
    }
    // The context id alone, as a base64url string the fuzzer can reshape.
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(context().encode())
        .unwrap();
    corpus.put("satp_message", "context-json.json", id);
}

// -------------------------------------------------------------- settlement

fn record(sequence: u64, services: &[Service], currency: &str, n: u64) -> UsageRecord {
    let ops = operators();
    let agreements = agreements();
    let rates = rates();
    let lines: Vec<ServiceLine> = services
        .iter()
        .map(|service| {
            let quantity = match service {
                Service::VoiceMo => 1_000 + n,
                Service::VoiceMt => 500 + n,
                Service::Sms => n % 1_000,
                Service::Data => 1_000_000 + n * 17,
            };
            let rate = rates[service];
            ServiceLine {
                service: *service,
                quantity,
                rate,
                charge: rate.charge(quantity).unwrap(),
            }
        })
        .collect();
    let charges_total: u128 = lines.iter().map(|l| l.charge).sum();
    let agreement = agreements
        .iter()
        .find(|a| a.currency.as_str() == currency)
        .unwrap();
    let discount = agreement.discount(&lines, charges_total).unwrap();
    let record = UsageRecord {
        sender: ops[0].0,
        recipient: ops[1].0,
        sequence,
        period_start_ms: JAN_2026_MS,
        period_end_ms: FEB_2026_MS,
        currency: asset(currency),
        agreement_version: agreement.version,
        lines,
        charges_total,
        discount,
        total: charges_total - discount,
    };
    record.validate(&agreements, NOW_MS).unwrap();
    record
}

fn settlement(corpus: &mut Corpus) {
    let key = &operators()[0].1;
    let records = [
        record(1, &Service::ALL, "EUR", 1),
        record(2, &[Service::VoiceMo, Service::Sms], "EUR", 2),
        record(3, &[Service::Data], "EUR", 3),
        record(4, &Service::ALL, "USD", 4),
    ];
    let signed: Vec<(UsageRecord, ledger_core::Signature)> = records
        .into_iter()
        .map(|r| {
            let signature = key.sign_digest(&record_digest(chain(SOURCE_CHAIN), &r));
            (r, signature)
        })
        .collect();
    let mut csv = vec![CSV_HEADER.to_string()];
    let mut ndjson = Vec::new();
    for (i, (record, signature)) in signed.iter().enumerate() {
        let line = csv_line(record, signature);
        corpus.put("settlement_csv", &format!("row-{i}.csv"), &line);
        csv.push(line);
        let submit = json!({
            "record": UsageRecordBody::from_domain(record),
            "signature": signature.to_string(),
        });
        let text = serde_json::to_string(&submit).unwrap();
        corpus.put("settlement_json", &format!("record-{i}.json"), &text);
        ndjson.push(text);
    }
    corpus.put("settlement_csv", "import.csv", csv.join("\r\n") + "\r\n");
    let agreements: Vec<String> = agreements()
        .iter()
        .map(|a| serde_json::to_string(&AgreementBody::from_domain(a)).unwrap())
        .collect();
    for (i, text) in agreements.iter().enumerate() {
        corpus.put("settlement_json", &format!("agreement-{i}.json"), text);
    }
    corpus.put("settlement_json", "import.ndjson", ndjson.join("\n") + "\n");
    let mixed = [agreements.clone(), ndjson].concat();
    corpus.put(
        "settlement_json",
        "agreements-then-records.ndjson",
        mixed.join("\n"),
    );
}
