//! Fixtures shared by the fuzz targets and the seed generator
//! (`examples/seeds.rs`): the fixed keys, ledgers, SATP peers, transfer
//! terms and settlement agreements the seed corpora are made with. A target
//! pins the same values (the peer keys it accepts, the block producer it
//! trusts, the agreements a record is judged by), so a seed passes every
//! check and the fuzzer starts deep inside each decoder instead of at its
//! first byte.
//!
//! Every key here is a throwaway test key derived from a public string
//! (SHA-256 of a fixed text); never use one for anything of value.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use adapters::ledger::LockTerms;
use adapters::satp::context::TransferContext;
use adapters::satp::jws;
use ledger_core::settlement::record::{Agreement, Rate};
use ledger_core::settlement::{Service, Tadig};
use ledger_core::{Address, Amount, AssetCode, ChainId, Hashlock, SigningKey};
use p256::ecdsa::VerifyingKey;

/// The originating gateway's ledger (the source of a SATP transfer).
pub const SOURCE_CHAIN: u64 = 4201;
/// The receiving gateway's ledger (the target of a SATP transfer).
pub const TARGET_CHAIN: u64 = 4202;
/// 2026-01-01T00:00:00Z in ms: the start of the agreements' validity.
pub const JAN_2026_MS: u64 = 1_767_225_600_000;
/// 2026-02-01T00:00:00Z in ms: the end of the seed records' period.
pub const FEB_2026_MS: u64 = JAN_2026_MS + 31 * 86_400_000;
/// The "now" a settlement target judges records at (mid-February 2026).
pub const NOW_MS: u64 = FEB_2026_MS + 14 * 86_400_000;
/// The most items (messages, transactions, rows) a target looks at in one
/// input, so an input's cost stays bounded whatever its shape.
pub const ITEMS_MAX: usize = 64;

/// A chain id from a constant of this module (never 0).
pub fn chain(id: u64) -> ChainId {
    ChainId::new(id).unwrap_or_else(|_| unreachable!("the fixtures' chain ids are not 0"))
}

fn sha256(text: &str) -> [u8; 32] {
    ledger_core::hash::sha256(text.as_bytes())
}

fn ledger_key_of(seed: &str) -> SigningKey {
    // SHA-256 of a fixed text is a valid secp256k1 key with overwhelming
    // probability, and these texts were checked once.
    SigningKey::from_bytes(sha256(seed)).unwrap_or_else(|_| unreachable!("{seed} is a valid key"))
}

/// Ledger account `i` (1 to 4): the keys of `ledger-core/tests/vectors/`
/// (SHA-256 of `lockgate-test-key-<i>`). 1 is the sender of the SATP
/// seeds, 2 the recipient, 3 the receiving gateway's connector account.
pub fn ledger_key(i: u8) -> SigningKey {
    ledger_key_of(&format!("lockgate-test-key-{i}"))
}

/// The block key that seals every seed block (both ledgers).
pub fn producer_key() -> SigningKey {
    ledger_key_of("lockgate-fuzz-block-producer")
}

/// The address of [`producer_key`], the one block producer targets trust.
pub fn producer() -> Address {
    producer_key().address()
}

fn p256_key_of(seed: &str) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&sha256(seed))
        .unwrap_or_else(|_| unreachable!("{seed} is a valid P-256 key"))
}

/// The originating gateway's SATP identity key: the client key of
/// `adapters/tests/vectors/satp_session.json` (SHA-256 of `lockgate-satp-client`).
pub fn satp_client_key() -> p256::ecdsa::SigningKey {
    p256_key_of("lockgate-satp-client")
}

/// The receiving gateway's SATP identity key (SHA-256 of `lockgate-satp-server`).
pub fn satp_server_key() -> p256::ecdsa::SigningKey {
    p256_key_of("lockgate-satp-server")
}

/// The pinned peers a SATP target knows, by `kid` (RFC 7638 thumbprint):
/// the client and the server key.
pub static SATP_PEERS: LazyLock<Vec<(String, VerifyingKey)>> = LazyLock::new(|| {
    [satp_client_key(), satp_server_key()]
        .iter()
        .map(|key| {
            let public = *key.verifying_key();
            (jws::thumbprint(&public), public)
        })
        .collect()
});

/// The pinned key whose thumbprint is `kid`, as `SatpState::peer_by_kid` finds it.
pub fn peer_by_kid(kid: &str) -> Option<&'static VerifyingKey> {
    SATP_PEERS
        .iter()
        .find(|(known, _)| known == kid)
        .map(|(_, key)| key)
}

/// The preimage of the SATP seeds' hashlock.
pub fn preimage() -> [u8; 32] {
    sha256("lockgate-fuzz-preimage")
}

/// The terms the SATP seeds agree on (`transferContextId`).
pub fn context() -> TransferContext {
    TransferContext {
        transfer_id: "0b7d2c3e-0000-4000-8000-00000000f022".into(),
        source_chain_id: chain(SOURCE_CHAIN),
        target_chain_id: chain(TARGET_CHAIN),
        source_asset: asset("USD"),
        target_asset: asset("USD"),
        amount: Amount::from_minor_units(2_500),
        sender: ledger_key(1).address(),
        recipient: ledger_key(2).address(),
        source_lock_recipient: ledger_key(3).address(),
        hashlock: Hashlock::of_preimage(&preimage()),
        source_lock_by_ms: JAN_2026_MS + 10_000,
        source_expires_at_ms: JAN_2026_MS + 110_000,
        target_expires_at_ms: JAN_2026_MS + 90_000,
        hop_expires_at_ms: None,
    }
}

/// The sender's lock on the source ledger as the receiving gateway checks
/// it in lock-assert (`satp::server`).
pub fn source_terms(c: &TransferContext) -> LockTerms {
    LockTerms {
        sender: c.sender,
        recipient: c.source_lock_recipient,
        asset: c.source_asset,
        amount: c.amount,
        hashlock: c.hashlock,
        expires_at_ms: c.source_expires_at_ms,
    }
}

/// The receiving gateway's lock on the target ledger as the originating
/// gateway checks it in commit-ready (`satp::client`).
pub fn target_terms(c: &TransferContext) -> LockTerms {
    LockTerms {
        sender: ledger_key(3).address(),
        recipient: c.recipient,
        asset: c.target_asset,
        amount: c.amount,
        hashlock: c.hashlock,
        expires_at_ms: c.hop_expires_at_ms.unwrap_or(c.target_expires_at_ms),
    }
}

/// An asset code of the fixtures.
pub fn asset(code: &str) -> AssetCode {
    AssetCode::new(code).unwrap_or_else(|_| unreachable!("{code} is an asset code"))
}

/// The settlement operators of the seeds: `BEN00` and `BEN01`, with the
/// keys `gateway/examples/usage_records.rs` gives them.
pub fn operators() -> Vec<(Tadig, SigningKey)> {
    (0..2)
        .map(|i| {
            let code: Tadig = format!("BEN{i:02}")
                .parse()
                .unwrap_or_else(|_| unreachable!("BEN0{i} is a TADIG code"));
            (code, ledger_key_of(&format!("bench-operator-{i}")))
        })
        .collect()
}

/// The rates of `gateway/examples/usage_records.rs`.
pub fn rates() -> BTreeMap<Service, Rate> {
    BTreeMap::from([
        (Service::VoiceMo, Rate { price: 10, per: 60 }),
        (Service::VoiceMt, Rate { price: 2, per: 60 }),
        (Service::Sms, Rate { price: 3, per: 1 }),
        (
            Service::Data,
            Rate {
                price: 150,
                per: 1_000_000,
            },
        ),
    ])
}

/// The agreements settlement records are judged by: version 1 in EUR both
/// ways between the two operators (2.5 % on the total), and version 2 from
/// BEN00 to BEN01 in USD with its own discount on data (so both discount
/// rules are reachable).
pub fn agreements() -> Vec<Agreement> {
    let ops = operators();
    let (a, b) = (ops[0].0, ops[1].0);
    let v1 = |sender: Tadig, recipient: Tadig| Agreement {
        sender,
        recipient,
        version: 1,
        currency: asset("EUR"),
        valid_from_ms: JAN_2026_MS,
        valid_until_ms: FEB_2026_MS + 365 * 86_400_000,
        rates: rates(),
        discount_bps: 250,
        service_discount_bps: BTreeMap::new(),
    };
    let usd = Agreement {
        version: 2,
        currency: asset("USD"),
        service_discount_bps: BTreeMap::from([(Service::Data, 1_000)]),
        ..v1(a, b)
    };
    vec![v1(a, b), v1(b, a), usd]
}
