//! The `local` and `peer` ledger adapters' reading side, against real
//! gateways over real HTTP on PostgreSQL: the assets, the lock events from a
//! checkpoint, and lock proofs a third party checks itself. Gateway A hosts
//! the ledger; gateway B pins A as a peer and reads A's ledger through its
//! API with a token bound to bob's account.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use adapters::ledger::{LedgerAdapter, LockEvent, LockTerms};
use ledger_core::{Amount, Hashlock, LockId, Preimage, TxBody};
use lockgate::auth::Scope;
use lockgate::config::PeerConfig;
use lockgate::satp::evidence;
use lockgate::transfers::local::LocalLedger;
use support::*;

#[tokio::test]
async fn local_and_peer_adapters_follow_lock_events_and_prove_locks() {
    let a = Gateway::start(Db::Postgres).await;
    let (issuer, alice, bob) = (key(1), key(2), key(3));
    let preimage = [0x71u8; 32];
    let hashlock = Hashlock::of_preimage(&preimage);
    let now = lockgate::sequencer::now_ms();
    let lock = |nonce, expires_at_ms| {
        sign(
            &alice,
            nonce,
            TxBody::HtlcLock {
                asset: asset("EUR"),
                recipient: bob.address(),
                amount: Amount::from_minor_units(40),
                hashlock,
                expires_at_ms,
            },
        )
    };
    let paid = lock(0, now + 60_000);
    let expiring = lock(1, now + 1_500);
    let paid_id = LockId::from(paid.transaction.hash());
    let expiring_id = LockId::from(expiring.transaction.hash());
    for tx in [
        sign(
            &issuer,
            0,
            TxBody::RegisterAsset {
                code: asset("EUR"),
                scale: ledger_core::Scale::new(2).unwrap(),
            },
        ),
        sign(
            &issuer,
            1,
            TxBody::Issue {
                asset: asset("EUR"),
                to: alice.address(),
                amount: Amount::from_minor_units(100),
            },
        ),
        paid.clone(),
        expiring.clone(),
    ] {
        let (status, body) = a.submit(&tx).await;
        assert_eq!(status, 201, "{body}");
    }
    let claim = sign(
        &bob,
        0,
        TxBody::HtlcClaim {
            lock_id: paid_id,
            preimage: Preimage::new(preimage.to_vec()).unwrap(),
        },
    );
    let (status, body) = a.submit(&claim).await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    let refund = sign(
        &bob,
        1,
        TxBody::HtlcRefund {
            lock_id: expiring_id,
        },
    );
    let (status, body) = a.submit(&refund).await;
    assert_eq!(status, 201, "{body}");

    // The local adapter: every lock event from block 0, then nothing more.
    let local = LocalLedger::new(&a.app, &a.app.connector, chain());
    assert_eq!(local.assets().await.unwrap(), vec![asset("EUR")]);
    let page = local.events_since(0, 1_000).await.unwrap();
    let events: Vec<&LockEvent> = page.events.iter().map(|(_, e)| e).collect();
    let paid_terms = LockTerms {
        sender: alice.address(),
        recipient: bob.address(),
        asset: asset("EUR"),
        amount: Amount::from_minor_units(40),
        hashlock,
        expires_at_ms: now + 60_000,
    };
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LockEvent::Locked(l) if l.id == paid_id && l.terms == paid_terms)),
        "{events:?}"
    );
    assert!(
        events.contains(&&LockEvent::Claimed {
            id: paid_id,
            preimage
        }),
        "{events:?}"
    );
    assert!(
        events.contains(&&LockEvent::Refunded { id: expiring_id }),
        "{events:?}"
    );
    assert!(
        page.events.windows(2).all(|w| w[0].0 <= w[1].0),
        "in ledger order"
    );
    let rest = local.events_since(page.next_checkpoint, 10).await.unwrap();
    assert!(rest.events.is_empty());
    assert_eq!(rest.next_checkpoint, page.next_checkpoint);
    // A checkpoint in the middle skips what came before it.
    let (claim_height, _) = page
        .events
        .iter()
        .find(|(_, e)| matches!(e, LockEvent::Claimed { .. }))
        .unwrap();
    let later = local.events_since(*claim_height, 1_000).await.unwrap();
    assert!(later.events.iter().all(|(h, _)| h >= claim_height));
    assert!(
        !later
            .events
            .iter()
            .any(|(_, e)| matches!(e, LockEvent::Locked(l) if l.id == paid_id))
    );

    // Its proof checks out against A's block key, and names the exact lock.
    let proof = local.prove_lock(paid_id).await.unwrap().unwrap();
    let proven = evidence::verify_lock(
        &proof,
        chain(),
        &[a.app.block_producer],
        &paid_terms,
        true,
        true,
    )
    .unwrap();
    assert_eq!(proven, paid_id);
    assert!(
        evidence::verify_lock(
            &proof,
            chain(),
            &[key(9).address()],
            &paid_terms,
            true,
            true
        )
        .is_err()
    );
    assert!(
        local
            .prove_lock(LockId::from_bytes([7; 32]))
            .await
            .unwrap()
            .is_none()
    );
    let claim_as_lock = LockId::from(claim.transaction.hash());
    assert!(
        local.prove_lock(claim_as_lock).await.unwrap().is_none(),
        "a claim is no lock"
    );

    // Gateway B pins A and reads A's ledger through A's API as bob.
    let peer_config = PeerConfig {
        gateway_id: a.app.satp.identity.gateway_id.clone(),
        url: a.base.clone(),
        identity_key: a.app.satp.identity.jwk.to_string(),
        previous_identity_keys: Vec::new(),
        chain_id: chain().get(),
        block_producer: a.app.block_producer.to_string(),
        previous_block_producers: Vec::new(),
        account: a.app.connector.key.address().to_string(),
        token: Some(lockgate::config::Secret::new(
            a.token(&[Scope::LedgerRead], &[bob.address()]),
        )),
        commit_ms_max: 500,
        clock_drift_ms_max: 100,
        routes: Vec::new(),
    };
    let b = Gateway::start_on(TestDb::new(Db::Postgres).await, |config| {
        config.ledger.chain_id = chain().get() + 100;
        config.peers = vec![peer_config];
    })
    .await;
    let peer = b.app.satp.peer(&a.app.satp.identity.gateway_id).unwrap();
    let remote = lockgate::satp::peer::PeerLedger::new(&b.app, peer, &b.app.connector.key);
    assert_eq!(remote.describe().kind, adapters::ledger::LedgerKind::Peer);
    assert_eq!(remote.assets().await.unwrap(), vec![asset("EUR")]);
    let seen = remote.events_since(0, 1_000).await.unwrap();
    assert_eq!(
        seen.next_checkpoint, page.next_checkpoint,
        "read to A's tip"
    );
    // Bob's token reads the locks to him and his claim; nothing it sees is
    // other than what A's own adapter reports.
    for event in &seen.events {
        assert!(page.events.contains(event), "{event:?}");
    }
    assert!(seen.events.iter().any(|(_, e)| *e
        == LockEvent::Claimed {
            id: paid_id,
            preimage
        }));
    let remote_proof = remote.prove_lock(paid_id).await.unwrap().unwrap();
    assert_eq!(
        evidence::verify_lock(
            &remote_proof,
            chain(),
            &[a.app.block_producer],
            &paid_terms,
            true,
            true
        )
        .unwrap(),
        paid_id
    );
}
