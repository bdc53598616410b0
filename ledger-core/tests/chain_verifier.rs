//! The offline chain verifier and inclusion proofs against every kind of
//! tampering: altered, removed, reordered and inserted transactions and
//! headers, forged producers, broken links, and committed transactions that
//! break the ledger rules. Each test checks the verifier names the exact item.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ledger_core::block::{ChainTip, inclusion_proof};
use ledger_core::merkle::MerkleTree;
use ledger_core::verify::{ChainFault, ChainVerifier, ExportedBlock, HeaderFault, TxFault};
use ledger_core::{Amount, BlockHash, InclusionProof, Rejection, TxBody, TxHash, seal_block};
use support::*;

/// Four blocks: setup, then three blocks of six transactions each.
fn ledger() -> Ledger {
    let mut ledger = Ledger::new();
    let issuer = key(1);
    let users: Vec<_> = (2..8).map(key).collect();
    let mut setup = vec![sign(&issuer, 0, register("EUR", 2))];
    for (i, user) in users.iter().enumerate() {
        setup.push(sign(
            &issuer,
            i as u64 + 1,
            issue("EUR", user.address(), 1000),
        ));
    }
    assert!(ledger.commit(setup).iter().all(|o| o.is_applied()));
    for round in 0..3u64 {
        ledger.now_ms += 1000;
        let txs = users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                let to = users[(i + 1) % users.len()].address();
                sign(user, round, transfer("EUR", to, 10 + i as u128))
            })
            .collect();
        assert!(ledger.commit(txs).iter().all(|o| o.is_applied()));
    }
    ledger
}

fn verify(
    ledger: &Ledger,
    blocks: &[ExportedBlock],
) -> Result<ledger_core::ChainSummary, ChainFault> {
    let mut verifier = ChainVerifier::new(chain(), vec![ledger.producer.address()]);
    for block in blocks {
        verifier.push_block(block)?;
    }
    verifier.finish()
}

fn tx_fault(result: Result<ledger_core::ChainSummary, ChainFault>) -> (u64, usize, TxFault) {
    match result {
        Err(ChainFault::Transaction {
            height,
            position,
            fault,
        }) => (height, position, fault),
        other => panic!("expected a transaction fault, got {other:?}"),
    }
}

fn header_fault(result: Result<ledger_core::ChainSummary, ChainFault>) -> (u64, u64, HeaderFault) {
    match result {
        Err(ChainFault::Header {
            position,
            height,
            fault,
        }) => (position, height, fault),
        other => panic!("expected a header fault, got {other:?}"),
    }
}

#[test]
fn an_honest_chain_verifies_and_replays_to_the_same_state() {
    let ledger = ledger();
    let summary = verify(&ledger, &ledger.export()).unwrap();
    assert_eq!(summary.blocks, 4);
    assert_eq!(summary.transactions, 7 + 18);
    assert_eq!(summary.state, ledger.state);
    assert_eq!(summary.tip, ledger.tip);
}

#[test]
fn an_altered_transaction_is_named() {
    let ledger = ledger();
    let mut blocks = ledger.export();
    if let TxBody::Transfer { amount, .. } =
        &mut blocks[2].transactions[3].transaction.transaction.body
    {
        *amount = Amount::from_minor_units(999);
    }
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (2, 3));
    assert!(matches!(fault, TxFault::Altered { .. }), "{fault:?}");
}

#[test]
fn an_altered_signature_is_named() {
    let ledger = ledger();
    let mut blocks = ledger.export();
    let mut bytes = *blocks[1].transactions[0].transaction.signature.as_bytes();
    bytes[10] ^= 0x40;
    blocks[1].transactions[0].transaction.signature = ledger_core::Signature::from_bytes(bytes);
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (1, 0));
    assert!(matches!(fault, TxFault::Altered { .. }), "{fault:?}");
}

#[test]
fn a_removed_transaction_is_named() {
    let ledger = ledger();
    let mut blocks = ledger.export();
    blocks[2].transactions.remove(2);
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (2, 2));
    assert_eq!(fault, TxFault::Removed { index: 2 });

    // Also with the indices renumbered to hide the gap.
    let mut blocks = ledger.export();
    blocks[2].transactions.remove(2);
    for (i, tx) in blocks[2].transactions.iter_mut().enumerate() {
        tx.index = i as u32;
    }
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (2, 2));
    assert_eq!(fault, TxFault::Removed { index: 2 });

    // The last transaction of a block.
    let mut blocks = ledger.export();
    blocks[3].transactions.pop();
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (3, 5));
    assert_eq!(fault, TxFault::Removed { index: 5 });
}

#[test]
fn reordered_transactions_are_named() {
    let ledger = ledger();
    let mut blocks = ledger.export();
    blocks[1].transactions.swap(1, 4);
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (1, 1));
    assert_eq!(fault, TxFault::Reordered { index: 1 });
}

#[test]
fn an_inserted_transaction_is_named() {
    let ledger = ledger();
    let mut blocks = ledger.export();
    // A validly signed transaction the block never committed to.
    let stranger = sign(&key(2), 9, transfer("EUR", key(3).address(), 1));
    let path = blocks[2].transactions[4].path.clone();
    blocks[2].transactions.insert(
        4,
        ledger_core::verify::ProvenTransaction {
            transaction: stranger.clone(),
            index: 4,
            path,
        },
    );
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (2, 4));
    assert_eq!(
        fault,
        TxFault::Inserted {
            tx_hash: stranger.transaction.hash()
        }
    );

    // A second copy of a committed transaction.
    let mut blocks = ledger.export();
    let copy = blocks[2].transactions[1].clone();
    blocks[2].transactions.insert(3, copy.clone());
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (2, 3));
    assert_eq!(
        fault,
        TxFault::Duplicate {
            tx_hash: copy.transaction.transaction.hash(),
            index: 1
        }
    );
}

#[test]
fn an_altered_header_is_named() {
    let ledger = ledger();
    let mut blocks = ledger.export();
    blocks[2].header.header.timestamp_ms += 1;
    let (position, height, fault) = header_fault(verify(&ledger, &blocks));
    assert_eq!((position, height), (2, 2));
    assert!(matches!(fault, HeaderFault::Altered(_)), "{fault:?}");
}

#[test]
fn removed_reordered_and_inserted_blocks_are_named() {
    let ledger = ledger();

    let mut blocks = ledger.export();
    blocks.remove(1);
    let (position, height, fault) = header_fault(verify(&ledger, &blocks));
    assert_eq!((position, height), (1, 2));
    assert_eq!(
        fault,
        HeaderFault::Removed {
            expected_height: 1,
            found_height: 2
        }
    );

    let mut blocks = ledger.export();
    blocks.swap(1, 2);
    let (position, height, fault) = header_fault(verify(&ledger, &blocks));
    assert_eq!((position, height), (1, 2));
    assert_eq!(
        fault,
        HeaderFault::Reordered {
            expected_height: 1,
            found_height: 2
        }
    );

    let mut blocks = ledger.export();
    let copy = blocks[1].clone();
    blocks.insert(2, copy);
    let (position, height, fault) = header_fault(verify(&ledger, &blocks));
    assert_eq!((position, height), (2, 1));
    assert_eq!(
        fault,
        HeaderFault::Inserted {
            expected_height: 2,
            found_height: 1
        }
    );
}

#[test]
fn a_chain_signed_by_an_untrusted_key_is_refused() {
    let ledger = ledger();
    let mut verifier = ChainVerifier::new(chain(), vec![key(12345).address()]);
    let fault = verifier.push_block(&ledger.export()[0]).unwrap_err();
    assert!(matches!(
        fault,
        ChainFault::Header {
            fault: HeaderFault::UntrustedProducer { .. },
            ..
        }
    ));
    let mut verifier = ChainVerifier::new(
        ledger_core::ChainId::new(CHAIN + 1).unwrap(),
        vec![ledger.producer.address()],
    );
    assert!(matches!(
        verifier.push_block(&ledger.export()[0]).unwrap_err(),
        ChainFault::Header {
            fault: HeaderFault::WrongChain { .. },
            ..
        }
    ));
}

#[test]
fn a_producer_signed_fork_or_double_spend_is_caught() {
    // The producer itself misbehaves: a block that does not link to its
    // predecessor, and a block that commits a replayed transaction. Both are
    // validly signed; the link check and the replay catch them.
    let ledger = ledger();
    let mut blocks = ledger.export();
    let replay = blocks[1].transactions[0]
        .transaction
        .clone()
        .verify()
        .unwrap();
    let (double_spend, _) = seal_block(
        &ledger.context(),
        &ledger.tip,
        std::slice::from_ref(&replay),
        &ledger.producer,
    )
    .unwrap();
    blocks.push(ExportedBlock::from_block(&double_spend));
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (4, 0));
    assert!(matches!(
        fault,
        TxFault::Rejected {
            rejection: Rejection::NonceReplay { .. },
            ..
        }
    ));

    let mut blocks = ledger.export();
    let forked_tip = ChainTip {
        last_hash: BlockHash::from_bytes([5; 32]),
        ..ledger.tip
    };
    let (fork, _) = seal_block(&ledger.context(), &forked_tip, &[], &ledger.producer).unwrap();
    blocks.push(ExportedBlock::from_block(&fork));
    let (position, height, fault) = header_fault(verify(&ledger, &blocks));
    assert_eq!((position, height), (4, 4));
    assert_eq!(
        fault,
        HeaderFault::BrokenLink {
            expected: ledger.tip.last_hash
        }
    );
}

#[test]
fn inclusion_proofs_check_out_for_every_transaction_and_fail_when_bent() {
    let ledger = ledger();
    let trusted = [ledger.producer.address()];
    for block in &ledger.blocks {
        let hashes: Vec<TxHash> = block
            .transactions
            .iter()
            .map(|t| t.transaction.hash())
            .collect();
        let tree = MerkleTree::new(&hashes);
        for (i, tx) in block.transactions.iter().enumerate() {
            let proof = inclusion_proof(&block.header, &tree, i as u32).unwrap();
            proof.verify(tx, &trusted).unwrap();
        }
    }
    let block = &ledger.blocks[2];
    let hashes: Vec<TxHash> = block
        .transactions
        .iter()
        .map(|t| t.transaction.hash())
        .collect();
    let tree = MerkleTree::new(&hashes);
    let tx = &block.transactions[3];
    let proof = inclusion_proof(&block.header, &tree, 3).unwrap();

    let other_tx = &block.transactions[2];
    assert_eq!(
        proof.verify(other_tx, &trusted),
        Err(ledger_core::block::ProofError::NotIncluded)
    );
    let wrong_index = InclusionProof {
        index: 2,
        ..proof.clone()
    };
    assert_eq!(
        wrong_index.verify(tx, &trusted),
        Err(ledger_core::block::ProofError::NotIncluded)
    );
    let mut bent = proof.clone();
    bent.path[0][0] ^= 1;
    assert_eq!(
        bent.verify(tx, &trusted),
        Err(ledger_core::block::ProofError::NotIncluded)
    );
    let mut forged_header = proof.clone();
    forged_header.header.header.tx_count += 1;
    assert!(matches!(
        forged_header.verify(tx, &trusted),
        Err(ledger_core::block::ProofError::HeaderSignature(_))
    ));
    assert!(matches!(
        proof.verify(tx, &[key(4242).address()]),
        Err(ledger_core::block::ProofError::UntrustedProducer { .. })
    ));
}

#[test]
fn the_first_fault_in_block_order_is_the_one_reported() {
    // Transaction 1 removed and (what was) transaction 5 altered: the
    // removal comes first.
    let ledger = ledger();
    let mut blocks = ledger.export();
    blocks[2].transactions.remove(1);
    if let TxBody::Transfer { amount, .. } =
        &mut blocks[2].transactions[4].transaction.transaction.body
    {
        *amount = Amount::from_minor_units(1);
    }
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (2, 1));
    assert_eq!(fault, TxFault::Removed { index: 1 });
}

#[test]
fn reordering_with_renumbered_indices_is_still_a_reordering() {
    let ledger = ledger();
    let mut blocks = ledger.export();
    blocks[1].transactions.swap(1, 4);
    for (i, tx) in blocks[1].transactions.iter_mut().enumerate() {
        tx.index = i as u32;
    }
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (1, 1));
    assert_eq!(fault, TxFault::Reordered { index: 1 });
}

#[test]
fn a_re_encoded_signature_is_an_alteration() {
    // v = 0 instead of 27 still recovers the same signer, but the ledger
    // never writes it: the export was edited.
    let ledger = ledger();
    let mut blocks = ledger.export();
    let mut bytes = *blocks[1].transactions[2].transaction.signature.as_bytes();
    bytes[64] -= 27;
    blocks[1].transactions[2].transaction.signature = ledger_core::Signature::from_bytes(bytes);
    let (height, position, fault) = tx_fault(verify(&ledger, &blocks));
    assert_eq!((height, position), (1, 2));
    assert!(matches!(fault, TxFault::Altered { .. }), "{fault:?}");

    let mut blocks = ledger.export();
    let mut bytes = *blocks[2].header.signature.as_bytes();
    bytes[64] -= 27;
    blocks[2].header.signature = ledger_core::Signature::from_bytes(bytes);
    let (position, height, fault) = header_fault(verify(&ledger, &blocks));
    assert_eq!((position, height), (2, 2));
    assert!(matches!(fault, HeaderFault::Altered(_)), "{fault:?}");
}

#[test]
fn a_forged_block_cannot_turn_a_removal_into_a_reordering() {
    // Block 1 removed, and a forged header claiming height 1 appended: the
    // forgery's signature fails, so the gap stays a removal.
    let ledger = ledger();
    let mut blocks = ledger.export();
    let mut forged = blocks.remove(1);
    forged.header.header.timestamp_ms += 7;
    blocks.push(forged);
    let (position, height, fault) = header_fault(verify(&ledger, &blocks));
    assert_eq!((position, height), (1, 2));
    assert_eq!(
        fault,
        HeaderFault::Removed {
            expected_height: 1,
            found_height: 2
        }
    );
}

#[test]
fn signatures_are_stored_with_v_27_or_28() {
    let alice = key(2);
    let mut signed = sign(&alice, 0, transfer("EUR", key(3).address(), 1));
    let mut bytes = *signed.signature.as_bytes();
    bytes[64] -= 27;
    signed.signature = ledger_core::Signature::from_bytes(bytes);
    let verified = signed.verify().unwrap();
    assert!(verified.signed().signature.is_canonical());
}
