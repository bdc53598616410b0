//! Criterion benchmarks of the ledger's hot paths, each reported per element
//! so the figures read as operations per second:
//! - `recover/secp256k1` and `recover/k256`: public-key recovery of a 65-byte
//!   signature to an address, with libsecp256k1 and with pure-Rust k256 (the
//!   baseline that decided which one the verification path uses);
//! - `verify_tx`: hashing a transfer (EIP-712) and recovering its signer;
//! - `apply/transfers`: the state transition over a batch of verified
//!   transfers on an in-memory snapshot;
//! - `merkle/root`: the RFC 6962 root over a block of transaction hashes.
//!
//! Run: `cargo bench -p ledger-core --bench ledger`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ledger_core::hash::{keccak256, sha256};
use ledger_core::merkle::MerkleTree;
use ledger_core::signature::recover_signer;
use ledger_core::{
    Address, Amount, AssetCode, BlockContext, ChainId, Scale, SignedTransaction, SigningKey,
    Snapshot, Transaction, TxBody, TxHash, VerifiedTransaction, apply_batch,
};
use std::hint::black_box;

const CHAIN: u64 = 4242;

fn key(i: u64) -> SigningKey {
    SigningKey::from_bytes(sha256(format!("bench-key-{i}").as_bytes())).unwrap()
}

fn signed(key: &SigningKey, nonce: u64, body: TxBody) -> SignedTransaction {
    Transaction {
        chain_id: ChainId::new(CHAIN).unwrap(),
        from: key.address(),
        nonce,
        body,
    }
    .sign(key)
    .unwrap()
}

fn k256_recover(digest: &[u8; 32], signature: &[u8; 65]) -> Address {
    let sig = k256::ecdsa::Signature::from_slice(&signature[..64]).unwrap();
    let recovery_id = k256::ecdsa::RecoveryId::from_byte(signature[64] - 27).unwrap();
    let key = k256::ecdsa::VerifyingKey::recover_from_prehash(digest, &sig, recovery_id).unwrap();
    let point = key.to_encoded_point(false);
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&point.as_bytes()[1..]);
    Address::from_public_key_xy(&xy)
}

fn recover(c: &mut Criterion) {
    let key = key(0);
    let digests: Vec<[u8; 32]> = (0..64u64).map(|i| keccak256(&i.to_be_bytes())).collect();
    let signatures: Vec<[u8; 65]> = digests
        .iter()
        .map(|d| *key.sign_digest(d).as_bytes())
        .collect();
    // Both libraries must agree before their speed is compared.
    for (digest, signature) in digests.iter().zip(&signatures) {
        assert_eq!(k256_recover(digest, signature), key.address());
    }
    let mut group = c.benchmark_group("recover");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("secp256k1", |b| {
        b.iter(|| {
            i = (i + 1) % digests.len();
            let signature = ledger_core::Signature::from_bytes(signatures[i]);
            black_box(recover_signer(&digests[i], &signature).unwrap())
        })
    });
    group.bench_function("k256", |b| {
        b.iter(|| {
            i = (i + 1) % digests.len();
            black_box(k256_recover(&digests[i], &signatures[i]))
        })
    });
    group.finish();
}

fn eur() -> AssetCode {
    AssetCode::new("EUR").unwrap()
}

/// A funded ledger of `accounts` accounts and a batch of `batch` transfers
/// between them, already verified.
fn transfer_batch(accounts: u64, batch: u64) -> (Snapshot, Vec<VerifiedTransaction>) {
    let issuer = key(u64::MAX);
    let keys: Vec<SigningKey> = (0..accounts).map(key).collect();
    let mut setup = vec![signed(
        &issuer,
        0,
        TxBody::RegisterAsset {
            code: eur(),
            scale: Scale::new(2).unwrap(),
        },
    )];
    for (n, k) in keys.iter().enumerate() {
        setup.push(signed(
            &issuer,
            n as u64 + 1,
            TxBody::Issue {
                asset: eur(),
                to: k.address(),
                amount: Amount::from_minor_units(1_000_000),
            },
        ));
    }
    let setup: Vec<_> = setup.into_iter().map(|t| t.verify().unwrap()).collect();
    let mut snapshot = Snapshot::complete();
    let context = BlockContext {
        chain_id: ChainId::new(CHAIN).unwrap(),
        timestamp_ms: 1,
    };
    let result = apply_batch(&mut snapshot, &context, &setup).unwrap();
    assert!(result.outcomes.iter().all(|o| o.is_applied()));
    let mut nonces = vec![0u64; keys.len()];
    let txs = (0..batch)
        .map(|i| {
            let from = (i % accounts) as usize;
            let to = ((i * 7 + 3) % accounts) as usize;
            let tx = signed(
                &keys[from],
                nonces[from],
                TxBody::Transfer {
                    asset: eur(),
                    to: keys[to].address(),
                    amount: Amount::from_minor_units(1),
                },
            );
            nonces[from] += 1;
            tx.verify().unwrap()
        })
        .collect();
    (snapshot, txs)
}

fn verify_and_apply(c: &mut Criterion) {
    let (snapshot, txs) = transfer_batch(1024, 1024);
    let signed: Vec<SignedTransaction> = txs.iter().map(|t| t.signed().clone()).collect();
    let mut group = c.benchmark_group("verify_tx");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("transfer", |b| {
        b.iter(|| {
            i = (i + 1) % signed.len();
            black_box(signed[i].clone().verify().unwrap())
        })
    });
    group.finish();

    let context = BlockContext {
        chain_id: ChainId::new(CHAIN).unwrap(),
        timestamp_ms: 2,
    };
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(txs.len() as u64));
    group.bench_function("transfers_1024_over_1024_accounts", |b| {
        b.iter_batched(
            || snapshot.clone(),
            |mut s| {
                let result = apply_batch(&mut s, &context, &txs).unwrap();
                debug_assert!(result.outcomes.iter().all(|o| o.is_applied()));
                black_box(result)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn merkle(c: &mut Criterion) {
    let hashes: Vec<TxHash> = (0..1024u64)
        .map(|i| TxHash::from_bytes(sha256(&i.to_be_bytes())))
        .collect();
    let mut group = c.benchmark_group("merkle");
    group.throughput(Throughput::Elements(hashes.len() as u64));
    group.bench_function("root_1024", |b| {
        b.iter(|| black_box(MerkleTree::new(&hashes).root()))
    });
    group.finish();
}

criterion_group!(benches, recover, verify_and_apply, merkle);
criterion_main!(benches);
