//! The state transition, table by table: each transaction kind's effects,
//! each rejection with its precedence, HTLC lifecycles, and the prefetch
//! protocol of partial snapshots. Every rejection is also checked to leave the
//! snapshot exactly as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ledger_core::apply::Settled;
use ledger_core::{
    ApplyError, ChainId, HtlcStatus, LockId, Outcome, Rejection, SignatureError, Snapshot,
    apply_batch,
};
use support::*;

/// A ledger where key 1 issued 1000 EUR (scale 2) to key 2.
fn funded() -> Ledger {
    let mut ledger = Ledger::new();
    let issuer = key(1);
    let outcomes = ledger.commit(vec![
        sign(&issuer, 0, register("EUR", 2)),
        sign(&issuer, 1, issue("EUR", key(2).address(), 1000)),
    ]);
    assert!(outcomes.iter().all(Outcome::is_applied));
    ledger
}

/// Applies one transaction expecting a rejection, and checks it changed nothing.
fn expect_rejected(ledger: &mut Ledger, tx: ledger_core::VerifiedTransaction) -> Rejection {
    let before = ledger.state.clone();
    let result = ledger.apply(&[tx]);
    assert_eq!(
        ledger.state, before,
        "a rejected transaction changed the state"
    );
    assert_eq!(result.changes, ledger_core::StateChanges::default());
    rejected(result.outcomes[0])
}

#[test]
fn register_issue_transfer_burn() {
    let mut ledger = funded();
    let (issuer, alice, bob) = (key(1), key(2), key(3));
    let state = ledger.state.asset(asset("EUR")).unwrap().unwrap();
    assert_eq!(state.asset.issuer, issuer.address());
    assert_eq!(state.supply, amount(1000));
    assert_eq!(ledger.balance(alice.address(), "EUR"), 1000);

    assert!(
        ledger
            .one(verified(&alice, 0, transfer("EUR", bob.address(), 300)))
            .is_applied()
    );
    assert_eq!(ledger.balance(alice.address(), "EUR"), 700);
    assert_eq!(ledger.balance(bob.address(), "EUR"), 300);
    assert_eq!(ledger.nonce(alice.address()), 1);

    // The issuer burns from its own balance only.
    assert!(
        ledger
            .one(verified(&bob, 0, transfer("EUR", issuer.address(), 100)))
            .is_applied()
    );
    assert!(
        ledger
            .one(verified(&issuer, 2, burn("EUR", 60)))
            .is_applied()
    );
    assert_eq!(ledger.balance(issuer.address(), "EUR"), 40);
    assert_eq!(
        ledger.state.asset(asset("EUR")).unwrap().unwrap().supply,
        amount(940)
    );
    ledger.state.check_supply().unwrap();
}

#[test]
fn state_changes_list_exactly_what_moved() {
    let mut ledger = funded();
    let (alice, bob) = (key(2), key(3));
    let result = ledger.apply(&[verified(&alice, 0, transfer("EUR", bob.address(), 5))]);
    assert_eq!(result.changes.accounts, vec![(alice.address(), 1)]);
    let mut balances = result.changes.balances.clone();
    balances.sort();
    let mut expected = vec![
        (alice.address(), asset("EUR"), amount(995)),
        (bob.address(), asset("EUR"), amount(5)),
    ];
    expected.sort();
    assert_eq!(balances, expected);
    assert!(result.changes.assets.is_empty());
    assert!(result.changes.locks.is_empty());
}

#[test]
fn self_transfer_uses_the_nonce_and_moves_nothing() {
    let mut ledger = funded();
    let alice = key(2);
    assert!(
        ledger
            .one(verified(&alice, 0, transfer("EUR", alice.address(), 10)))
            .is_applied()
    );
    assert_eq!(ledger.balance(alice.address(), "EUR"), 1000);
    assert_eq!(ledger.nonce(alice.address()), 1);
    // Still cannot move more than the balance to oneself.
    assert!(matches!(
        expect_rejected(
            &mut ledger,
            verified(&alice, 1, transfer("EUR", alice.address(), 1001))
        ),
        Rejection::InsufficientBalance { .. }
    ));
}

#[test]
fn wrong_chain_is_reported_after_a_valid_signature() {
    let mut ledger = funded();
    let alice = key(2);
    let other = ChainId::new(CHAIN + 1).unwrap();
    let tx = sign_on(other, &alice, 0, transfer("EUR", key(3).address(), 1));
    let verified = tx.verify().unwrap();
    assert_eq!(
        expect_rejected(&mut ledger, verified),
        Rejection::WrongChain {
            expected: chain(),
            actual: other
        }
    );
}

#[test]
fn nonce_replay_and_gap() {
    let mut ledger = funded();
    let alice = key(2);
    let first = verified(&alice, 0, transfer("EUR", key(3).address(), 1));
    assert!(ledger.one(first.clone()).is_applied());
    // The very same signed transaction again: a replay, never applied twice.
    assert_eq!(
        expect_rejected(&mut ledger, first),
        Rejection::NonceReplay {
            expected: 1,
            actual: 0
        }
    );
    assert_eq!(
        expect_rejected(
            &mut ledger,
            verified(&alice, 5, transfer("EUR", key(3).address(), 1))
        ),
        Rejection::NonceGap {
            expected: 1,
            actual: 5
        }
    );
}

#[test]
fn asset_rules() {
    let mut ledger = funded();
    let (issuer, alice) = (key(1), key(2));
    assert_eq!(
        expect_rejected(
            &mut ledger,
            verified(&alice, 0, transfer("USD", issuer.address(), 1))
        ),
        Rejection::UnknownAsset {
            asset: asset("USD")
        }
    );
    assert_eq!(
        expect_rejected(&mut ledger, verified(&alice, 0, register("EUR", 0))),
        Rejection::AssetExists {
            asset: asset("EUR")
        }
    );
    assert_eq!(
        expect_rejected(
            &mut ledger,
            verified(&alice, 0, issue("EUR", alice.address(), 1))
        ),
        Rejection::NotIssuer {
            asset: asset("EUR"),
            issuer: issuer.address()
        }
    );
    assert_eq!(
        expect_rejected(&mut ledger, verified(&alice, 0, burn("EUR", 1))),
        Rejection::NotIssuer {
            asset: asset("EUR"),
            issuer: issuer.address()
        }
    );
    assert_eq!(
        expect_rejected(&mut ledger, verified(&issuer, 2, burn("EUR", 1))),
        Rejection::InsufficientBalance {
            asset: asset("EUR"),
            available: amount(0),
            required: amount(1)
        }
    );
}

#[test]
fn zero_amounts_are_rejected_for_every_kind_that_moves_value() {
    let mut ledger = funded();
    let (issuer, alice) = (key(1), key(2));
    let preimage = preimage("p");
    for (signer, nonce, body) in [
        (&issuer, 2, issue("EUR", alice.address(), 0)),
        (&issuer, 2, burn("EUR", 0)),
        (&alice, 0, transfer("EUR", issuer.address(), 0)),
        (
            &alice,
            0,
            lock("EUR", issuer.address(), 0, &preimage, u64::MAX),
        ),
    ] {
        assert_eq!(
            expect_rejected(&mut ledger, verified(signer, nonce, body)),
            Rejection::ZeroAmount
        );
    }
}

#[test]
fn issuing_past_u128_overflows_and_changes_nothing() {
    let mut ledger = funded();
    let issuer = key(1);
    let room = u128::MAX - 1000;
    assert!(
        ledger
            .one(verified(&issuer, 2, issue("EUR", issuer.address(), room)))
            .is_applied()
    );
    assert_eq!(
        expect_rejected(
            &mut ledger,
            verified(&issuer, 3, issue("EUR", issuer.address(), 1))
        ),
        Rejection::Overflow
    );
    ledger.state.check_supply().unwrap();
}

#[test]
fn precedence_follows_the_documented_order() {
    let mut ledger = funded();
    let (issuer, alice) = (key(1), key(2));
    let other = ChainId::new(CHAIN + 1).unwrap();
    // Wrong chain beats a nonce gap, an unknown asset and a zero amount.
    let tx = sign_on(other, &alice, 9, transfer("XXX", issuer.address(), 0))
        .verify()
        .unwrap();
    assert!(matches!(
        expect_rejected(&mut ledger, tx),
        Rejection::WrongChain { .. }
    ));
    // A nonce fault beats an unknown asset.
    let tx = verified(&alice, 9, transfer("XXX", issuer.address(), 0));
    assert!(matches!(
        expect_rejected(&mut ledger, tx),
        Rejection::NonceGap { .. }
    ));
    // An unknown asset beats a zero amount.
    let tx = verified(&alice, 0, transfer("XXX", issuer.address(), 0));
    assert!(matches!(
        expect_rejected(&mut ledger, tx),
        Rejection::UnknownAsset { .. }
    ));
    // Not the issuer beats insufficient balance and a zero amount.
    let tx = verified(&alice, 0, burn("EUR", 0));
    assert!(matches!(
        expect_rejected(&mut ledger, tx),
        Rejection::NotIssuer { .. }
    ));
    // Insufficient balance beats a timelock in the past.
    let tx = verified(
        &alice,
        0,
        lock("EUR", issuer.address(), 5000, &preimage("x"), 1),
    );
    assert!(matches!(
        expect_rejected(&mut ledger, tx),
        Rejection::InsufficientBalance { .. }
    ));
    // A zero amount beats a timelock in the past.
    let tx = verified(
        &alice,
        0,
        lock("EUR", issuer.address(), 0, &preimage("x"), 1),
    );
    assert_eq!(expect_rejected(&mut ledger, tx), Rejection::ZeroAmount);
    // Bad signature is checked before anything else, when verifying.
    let mut bad = sign(&alice, 9, transfer("XXX", issuer.address(), 0));
    bad.signature = sign(&issuer, 0, transfer("EUR", alice.address(), 1)).signature;
    assert!(matches!(
        bad.verify(),
        Err(SignatureError::SignerMismatch { .. })
    ));
}

#[test]
fn htlc_claim_pays_the_recipient_and_records_the_preimage() {
    let mut ledger = funded();
    let (alice, bob, carol) = (key(2), key(3), key(4));
    let secret = preimage("secret");
    let expiry = ledger.now_ms + 60_000;
    let lock_tx = verified(&alice, 0, lock("EUR", bob.address(), 250, &secret, expiry));
    let lock_id = LockId::from(lock_tx.hash());
    assert!(ledger.one(lock_tx).is_applied());
    assert_eq!(ledger.balance(alice.address(), "EUR"), 750);
    let htlc = *ledger.state.lock(lock_id).unwrap().unwrap();
    assert_eq!(htlc.status, HtlcStatus::Locked);
    assert_eq!(
        (htlc.sender, htlc.recipient, htlc.amount),
        (alice.address(), bob.address(), amount(250))
    );
    ledger.state.check_supply().unwrap();

    // Anyone may claim (here carol, a relayer); the recipient is paid.
    assert!(
        ledger
            .one(verified(&carol, 0, claim(lock_id, &secret)))
            .is_applied()
    );
    assert_eq!(ledger.balance(bob.address(), "EUR"), 250);
    assert_eq!(ledger.balance(carol.address(), "EUR"), 0);
    assert_eq!(
        ledger.state.lock(lock_id).unwrap().unwrap().status,
        HtlcStatus::Claimed { preimage: secret }
    );
    ledger.state.check_supply().unwrap();

    // Settles once: a second claim and a later refund both fail.
    assert!(matches!(
        expect_rejected(&mut ledger, verified(&bob, 0, claim(lock_id, &secret))),
        Rejection::AlreadySettled {
            settled: Settled::Claimed,
            ..
        }
    ));
    ledger.now_ms = expiry;
    assert!(matches!(
        expect_rejected(&mut ledger, verified(&alice, 1, refund(lock_id))),
        Rejection::AlreadySettled { .. }
    ));
}

#[test]
fn htlc_claim_faults_in_order() {
    let mut ledger = funded();
    let (alice, bob) = (key(2), key(3));
    let secret = preimage("secret");
    let expiry = ledger.now_ms + 1000;
    let lock_tx = verified(&alice, 0, lock("EUR", bob.address(), 10, &secret, expiry));
    let lock_id = LockId::from(lock_tx.hash());
    assert!(ledger.one(lock_tx).is_applied());

    let missing = LockId::from_bytes([7; 32]);
    assert_eq!(
        expect_rejected(&mut ledger, verified(&bob, 0, claim(missing, &[1; 5]))),
        Rejection::HtlcNotFound { lock_id: missing }
    );
    for length in [0usize, 31, 33, 64] {
        assert_eq!(
            expect_rejected(
                &mut ledger,
                verified(&bob, 0, claim(lock_id, &vec![0; length]))
            ),
            Rejection::PreimageLength { length }
        );
    }
    assert!(matches!(
        expect_rejected(
            &mut ledger,
            verified(&bob, 0, claim(lock_id, &preimage("wrong")))
        ),
        Rejection::PreimageMismatch { .. }
    ));
    // At the expiry instant the claim is too late (expired means now >= expiry).
    ledger.now_ms = expiry;
    assert_eq!(
        expect_rejected(&mut ledger, verified(&bob, 0, claim(lock_id, &secret))),
        Rejection::Expired {
            expires_at_ms: expiry,
            block_timestamp_ms: expiry
        }
    );
}

#[test]
fn htlc_refund_only_from_expiry_and_only_once() {
    let mut ledger = funded();
    let (alice, bob) = (key(2), key(3));
    let expiry = ledger.now_ms + 1000;
    let lock_tx = verified(
        &alice,
        0,
        lock("EUR", bob.address(), 10, &preimage("s"), expiry),
    );
    let lock_id = LockId::from(lock_tx.hash());
    assert!(ledger.one(lock_tx).is_applied());

    ledger.now_ms = expiry - 1;
    assert_eq!(
        expect_rejected(&mut ledger, verified(&bob, 0, refund(lock_id))),
        Rejection::NotYetExpired {
            expires_at_ms: expiry,
            block_timestamp_ms: expiry - 1
        }
    );
    ledger.now_ms = expiry;
    // Anyone may trigger the refund; the sender is paid.
    assert!(ledger.one(verified(&bob, 0, refund(lock_id))).is_applied());
    assert_eq!(ledger.balance(alice.address(), "EUR"), 1000);
    assert_eq!(ledger.balance(bob.address(), "EUR"), 0);
    assert_eq!(
        ledger.state.lock(lock_id).unwrap().unwrap().status,
        HtlcStatus::Refunded
    );
    assert!(matches!(
        expect_rejected(&mut ledger, verified(&alice, 1, refund(lock_id))),
        Rejection::AlreadySettled {
            settled: Settled::Refunded,
            ..
        }
    ));
    ledger.state.check_supply().unwrap();
}

#[test]
fn a_lock_must_expire_in_the_future() {
    let mut ledger = funded();
    let alice = key(2);
    let now = ledger.now_ms;
    assert_eq!(
        expect_rejected(
            &mut ledger,
            verified(
                &alice,
                0,
                lock("EUR", key(3).address(), 1, &preimage("s"), now)
            )
        ),
        Rejection::TimelockNotInFuture {
            expires_at_ms: now,
            block_timestamp_ms: now
        }
    );
}

#[test]
fn anchor_uses_the_nonce_only() {
    let mut ledger = funded();
    let alice = key(2);
    let before = ledger.state.clone();
    let result = ledger.apply(&[verified(
        &alice,
        0,
        anchor("statement-2026-10", &[alice.address(), key(3).address()]),
    )]);
    assert!(result.outcomes[0].is_applied());
    assert_eq!(result.changes.accounts, vec![(alice.address(), 1)]);
    assert!(result.changes.balances.is_empty());
    let mut expected = before;
    expected.insert_account(alice.address(), 1);
    assert_eq!(ledger.state, expected);
}

#[test]
fn a_batch_applies_in_order_and_rejects_only_the_bad_ones() {
    let mut ledger = funded();
    let (alice, bob) = (key(2), key(3));
    let secret = preimage("batch");
    let expiry = ledger.now_ms + 1000;
    let lock_tx = verified(&alice, 1, lock("EUR", bob.address(), 100, &secret, expiry));
    let lock_id = LockId::from(lock_tx.hash());
    let batch = vec![
        verified(&alice, 0, transfer("EUR", bob.address(), 800)),
        lock_tx,
        verified(&alice, 2, transfer("EUR", bob.address(), 200)), // only 100 left
        verified(&bob, 0, claim(lock_id, &secret)),               // lock made in this batch
        verified(&bob, 0, transfer("EUR", alice.address(), 1)),   // nonce 0 used just before
    ];
    let result = ledger.apply(&batch);
    assert_eq!(result.outcomes[0], Outcome::Applied);
    assert_eq!(result.outcomes[1], Outcome::Applied);
    assert!(matches!(
        result.outcomes[2],
        Outcome::Rejected(Rejection::InsufficientBalance { .. })
    ));
    assert_eq!(result.outcomes[3], Outcome::Applied);
    assert_eq!(
        result.outcomes[4],
        Outcome::Rejected(Rejection::NonceReplay {
            expected: 1,
            actual: 0
        })
    );
    assert_eq!(ledger.balance(alice.address(), "EUR"), 100);
    assert_eq!(ledger.balance(bob.address(), "EUR"), 900);
    assert_eq!(result.changes.locks.len(), 1);
    assert_eq!(
        result.changes.locks[0].status,
        HtlcStatus::Claimed { preimage: secret }
    );
    ledger.state.check_supply().unwrap();
}

/// Loads into a partial snapshot everything `missing` asks for, from a
/// complete snapshot standing in for the database.
fn prefetch(
    database: &Snapshot,
    partial: &mut Snapshot,
    txs: &[ledger_core::VerifiedTransaction],
) -> usize {
    let mut rounds = 0;
    loop {
        let missing = partial.missing(txs);
        if missing.is_empty() {
            return rounds;
        }
        rounds += 1;
        for address in missing.accounts {
            partial.insert_account(address, database.next_nonce(address).unwrap());
        }
        for (address, code) in missing.balances {
            partial.insert_balance(address, code, database.balance(address, code).unwrap());
        }
        for code in missing.assets {
            partial.insert_asset(code, database.asset(code).unwrap().copied());
        }
        for id in missing.locks {
            partial.insert_lock(id, database.lock(id).unwrap().copied());
        }
    }
}

#[test]
fn partial_snapshot_prefetch_gives_the_same_result_as_the_complete_state() {
    let mut ledger = funded();
    let (alice, bob, carol) = (key(2), key(3), key(4));
    let secret = preimage("two-rounds");
    let expiry = ledger.now_ms + 1000;
    let lock_tx = verified(&alice, 0, lock("EUR", carol.address(), 50, &secret, expiry));
    let existing_lock = LockId::from(lock_tx.hash());
    assert!(ledger.one(lock_tx).is_applied());

    let new_lock_tx = verified(&alice, 2, lock("EUR", bob.address(), 5, &secret, expiry));
    let new_lock = LockId::from(new_lock_tx.hash());
    let batch = vec![
        verified(&alice, 1, transfer("EUR", bob.address(), 10)),
        verified(&bob, 0, claim(existing_lock, &secret)), // needs carol's balance: round two
        new_lock_tx,
        verified(&carol, 0, claim(new_lock, &secret)), // lock created in this batch
        verified(&bob, 1, claim(LockId::from_bytes([1; 32]), &secret)), // no such lock
    ];

    let database = ledger.state.clone();
    let mut partial = Snapshot::partial();
    assert_eq!(prefetch(&database, &mut partial, &batch), 2);
    let context = ledger.context();
    let from_partial = apply_batch(&mut partial, &context, &batch).unwrap();
    let from_complete = ledger.apply(&batch);
    assert_eq!(from_partial, from_complete);
    assert!(matches!(
        from_partial.outcomes[4],
        Outcome::Rejected(Rejection::HtlcNotFound { .. })
    ));
}

#[test]
fn reading_what_was_not_prefetched_is_an_error_not_an_outcome() {
    let alice = key(2);
    let mut partial = Snapshot::partial();
    let context = ledger_core::BlockContext {
        chain_id: chain(),
        timestamp_ms: 1,
    };
    let tx = verified(&alice, 0, transfer("EUR", key(3).address(), 1));
    assert_eq!(
        apply_batch(&mut partial, &context, &[tx]),
        Err(ApplyError::NotPrefetched(
            ledger_core::state::StateKey::Account(alice.address())
        ))
    );
}

#[test]
fn a_claim_of_a_lock_rejected_in_the_same_batch_is_not_found_not_an_error() {
    // A lock its sender cannot fund, and a claim of it, in one batch: the
    // prefetch protocol must still cover the claim's reads.
    let mut ledger = funded();
    let (alice, bob) = (key(2), key(3));
    let secret = preimage("unfunded");
    let lock_tx = verified(
        &alice,
        0,
        lock("EUR", bob.address(), 5000, &secret, ledger.now_ms + 1000),
    );
    let lock_id = LockId::from(lock_tx.hash());
    let batch = vec![lock_tx, verified(&bob, 0, claim(lock_id, &secret))];
    let database = ledger.state.clone();
    let mut partial = Snapshot::partial();
    prefetch(&database, &mut partial, &batch);
    let result = apply_batch(&mut partial, &ledger.context(), &batch).unwrap();
    assert!(matches!(
        result.outcomes[0],
        Outcome::Rejected(Rejection::InsufficientBalance { .. })
    ));
    assert_eq!(
        result.outcomes[1],
        Outcome::Rejected(Rejection::HtlcNotFound { lock_id })
    );
    assert_eq!(ledger.apply(&batch), result);
}
