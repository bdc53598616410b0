//! The `evm` adapter against a real anvil node (npm
//! `@foundry-rs/anvil-linux-amd64`), with `cast` as the independent client:
//! lock / claim / refund of native coin and an ERC-20; the refusals the
//! contract makes (refund before expiry, wrong preimage, claim after
//! expiry); the preimage read back from the claim event; event following;
//! concurrent sends; a counterparty's lock made with `cast` found and
//! claimed; reorgs (anvil snapshot / revert) of the adapter's own lock and
//! of a counterparty's claim; keys from a keystore file made by `cast`.
//!
//! Gas used per action is printed (`--nocapture`) for the figures in the
//! README.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapters::evm::{
    EvmAsset, EvmConfig, EvmKey, EvmLedger, HTLC_ARTIFACT, deploy, load_key, lock_id_of, salt_of,
};
use adapters::ledger::{
    Acted, AdapterError, LedgerAdapter, LockEvent, LockState, LockTerms, OperationKey,
};
use ledger_core::{Address, Amount, AssetCode, ChainId, Hashlock};
use lockgate_e2e::evm::*;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn addr(text: &str) -> Address {
    text.parse().unwrap()
}

fn op<'a>(transfer_id: &'a str, action: &'a str) -> OperationKey<'a> {
    OperationKey {
        transfer_id,
        action,
    }
}

struct Chain {
    anvil: Anvil,
    contract: Address,
    token: String,
}

/// anvil with the HTLC contract deployed by the adapter's own `deploy`
/// (from dev account 0) and the test token deployed with `cast` (from dev
/// account 3), 1,000,000 units minted to dev accounts 0 and 1.
async fn chain(extra: &[&str]) -> Chain {
    let anvil = Anvil::start(extra).await;
    let deployer = load_key(&EvmKey::Hex(DEV_KEYS[0].into())).unwrap();
    let (contract, _block) = deploy(&anvil.url, &deployer, HTLC_ARTIFACT, &[])
        .await
        .unwrap();
    eprintln!("gas: deploy HTLC {}", anvil.last_gas_used().await);
    let token = deploy_token(&anvil, 3, "EURT");
    for holder in [DEV_ADDRESSES[0], DEV_ADDRESSES[1]] {
        anvil.cast(&[
            "send",
            "--private-key",
            DEV_KEYS[3],
            &token,
            "mint(address,uint256)",
            holder,
            "1000000",
        ]);
    }
    Chain {
        anvil,
        contract,
        token,
    }
}

fn config(c: &Chain, confirmations: u32) -> EvmConfig {
    let mut config = EvmConfig::new(
        ChainId::new(ANVIL_CHAIN).unwrap(),
        &c.anvil.url,
        c.contract,
        vec![
            (AssetCode::new("ETH").unwrap(), EvmAsset::Native),
            (
                AssetCode::new("EURT").unwrap(),
                EvmAsset::Erc20(addr(&c.token)),
            ),
        ],
    );
    config.confirmations = confirmations;
    config.block_interval_ms_max = 2_000;
    config.poll_ms = 20;
    config.wait_ms_max = 20_000;
    config
}

fn adapter(c: &Chain, key: usize, confirmations: u32) -> EvmLedger {
    EvmLedger::new(
        config(c, confirmations),
        load_key(&EvmKey::Hex(DEV_KEYS[key].into())).unwrap(),
    )
    .unwrap()
}

fn terms(
    sender: &str,
    recipient: &str,
    asset: &str,
    amount: u128,
    secret: &[u8; 32],
    expires_at_ms: u64,
) -> LockTerms {
    LockTerms {
        sender: addr(sender),
        recipient: addr(recipient),
        asset: AssetCode::new(asset).unwrap(),
        amount: Amount::from_minor_units(amount),
        hashlock: Hashlock::of_preimage(secret),
        expires_at_ms,
    }
}

fn done<T: std::fmt::Debug>(acted: Acted<T>) -> T {
    match acted {
        Acted::Done(value) => value,
        Acted::Refused(reason) => panic!("refused: {reason}"),
    }
}

fn refused<T: std::fmt::Debug>(acted: Acted<T>) -> String {
    match acted {
        Acted::Refused(reason) => reason,
        Acted::Done(value) => panic!("done, expected a refusal: {value:?}"),
    }
}

#[tokio::test]
async fn native_and_erc20_lock_claim_and_refund_with_every_refusal() {
    let c = chain(&[]).await;
    let evm = adapter(&c, 0, 0);
    let me = DEV_ADDRESSES[0];
    let recipient = DEV_ADDRESSES[2];
    let hour = now_ms() + 3_600_000;

    // Native coin: lock, claim (by the adapter; the recipient is paid).
    let secret = [0x11u8; 32];
    let before = native_balance(&c.anvil, recipient);
    let id = done(
        evm.lock(
            op("t-native", "target-lock"),
            &terms(me, recipient, "ETH", 1_000, &secret, hour),
        )
        .await
        .unwrap(),
    );
    eprintln!("gas: lock native {}", c.anvil.last_gas_used().await);
    assert_eq!(
        id,
        lock_id_of(addr(me), salt_of(op("t-native", "target-lock")))
    );
    let info = evm.lock_status(id).await.unwrap().unwrap();
    assert_eq!(info.state, LockState::Locked);
    assert_eq!(info.terms.amount, Amount::from_minor_units(1_000));
    assert_eq!(info.terms.expires_at_ms, hour.div_ceil(1000) * 1000);
    assert_eq!(
        evm.committed_lock(op("t-native", "target-lock"))
            .await
            .unwrap(),
        Some(id)
    );
    // The same call again (a retry after a crash) makes no second lock.
    assert_eq!(
        done(
            evm.lock(
                op("t-native", "target-lock"),
                &terms(me, recipient, "ETH", 1_000, &secret, hour)
            )
            .await
            .unwrap()
        ),
        id
    );
    let wrong = refused(
        evm.claim(op("t-native", "target-claim"), id, [0x12; 32])
            .await
            .unwrap(),
    );
    assert!(wrong.contains("preimage does not match"), "{wrong}");
    done(
        evm.claim(op("t-native", "target-claim"), id, secret)
            .await
            .unwrap(),
    );
    eprintln!("gas: claim native {}", c.anvil.last_gas_used().await);
    assert_eq!(native_balance(&c.anvil, recipient), before + 1_000);
    // The preimage is read back from the Claimed event.
    assert_eq!(
        evm.lock_status(id).await.unwrap().unwrap().state,
        LockState::Claimed { preimage: secret }
    );
    let again = refused(
        evm.refund(op("t-native", "target-refund"), id)
            .await
            .unwrap(),
    );
    assert!(again.contains("claimed"), "{again}");

    // ERC-20: lock (the adapter approves the contract first), claim.
    let secret = [0x21u8; 32];
    let id = done(
        evm.lock(
            op("t-erc20", "target-lock"),
            &terms(me, recipient, "EURT", 500, &secret, hour),
        )
        .await
        .unwrap(),
    );
    eprintln!(
        "gas: lock ERC-20 {} (after a one-time approve)",
        c.anvil.last_gas_used().await
    );
    assert_eq!(
        token_balance(&c.anvil, &c.token, &c.contract.to_string()),
        500
    );
    done(
        evm.claim(op("t-erc20", "target-claim"), id, secret)
            .await
            .unwrap(),
    );
    eprintln!("gas: claim ERC-20 {}", c.anvil.last_gas_used().await);
    assert_eq!(token_balance(&c.anvil, &c.token, recipient), 500);

    // ERC-20 refund: refused before expiry, claim refused after it.
    let secret = [0x31u8; 32];
    let mine_before = token_balance(&c.anvil, &c.token, me);
    let soon = now_ms() + 5_000;
    let id = done(
        evm.lock(
            op("t-refund", "target-lock"),
            &terms(me, recipient, "EURT", 700, &secret, soon),
        )
        .await
        .unwrap(),
    );
    assert_eq!(token_balance(&c.anvil, &c.token, me), mine_before - 700);
    let early = refused(
        evm.refund(op("t-refund", "target-refund"), id)
            .await
            .unwrap(),
    );
    assert!(early.contains("has not passed"), "{early}");
    c.anvil.advance_time(30).await;
    let late = refused(
        evm.claim(op("t-refund", "target-claim"), id, secret)
            .await
            .unwrap(),
    );
    assert!(late.contains("has passed"), "{late}");
    done(
        evm.refund(op("t-refund", "target-refund"), id)
            .await
            .unwrap(),
    );
    eprintln!("gas: refund ERC-20 {}", c.anvil.last_gas_used().await);
    assert_eq!(token_balance(&c.anvil, &c.token, me), mine_before);
    assert_eq!(
        evm.lock_status(id).await.unwrap().unwrap().state,
        LockState::Refunded
    );

    // Native refund, for its gas.
    let id = done(
        // The chain's clock is 30 s ahead of ours now.
        evm.lock(
            op("t-refund-native", "target-lock"),
            &terms(me, recipient, "ETH", 900, &secret, now_ms() + 45_000),
        )
        .await
        .unwrap(),
    );
    c.anvil.advance_time(60).await;
    done(
        evm.refund(op("t-refund-native", "target-refund"), id)
            .await
            .unwrap(),
    );
    eprintln!("gas: refund native {}", c.anvil.last_gas_used().await);

    // An asset the chain does not have is refused without a transaction.
    let nonce = c.anvil.cast(&["nonce", me]);
    let unknown = refused(
        evm.lock(
            op("t-unknown", "target-lock"),
            &terms(me, recipient, "USD", 1, &secret, hour),
        )
        .await
        .unwrap(),
    );
    assert!(unknown.contains("not configured"), "{unknown}");
    assert_eq!(c.anvil.cast(&["nonce", me]), nonce);

    // Following events from a checkpoint: every lock, claim and refund, in order.
    let mut events = Vec::new();
    let mut checkpoint = 0;
    loop {
        let page = evm.events_since(checkpoint, 3).await.unwrap();
        events.extend(page.events.into_iter().map(|(_, e)| e));
        if page.next_checkpoint > c.anvil.block_number().await {
            break;
        }
        checkpoint = page.next_checkpoint;
    }
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            LockEvent::Locked(_) => "locked",
            LockEvent::Claimed { .. } => "claimed",
            LockEvent::Refunded { .. } => "refunded",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "locked", "claimed", "locked", "claimed", "locked", "refunded", "locked", "refunded"
        ]
    );
    assert!(matches!(events[1], LockEvent::Claimed { preimage, .. } if preimage == [0x11; 32]));
    c.anvil.stop().await;
}

#[tokio::test]
async fn concurrent_locks_take_distinct_nonces() {
    let c = chain(&[]).await;
    let evm = Arc::new(adapter(&c, 0, 0));
    let me = DEV_ADDRESSES[0];
    let nonce_before: u64 = c.anvil.cast(&["nonce", me]).parse().unwrap();
    let hour = now_ms() + 3_600_000;
    let mut tasks = Vec::new();
    for i in 0..12u8 {
        let evm = evm.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("t-{i}");
            let asset = if i % 2 == 0 { "ETH" } else { "EURT" };
            evm.lock(
                op(&id, "target-lock"),
                &terms(
                    me,
                    DEV_ADDRESSES[2],
                    asset,
                    10 + u128::from(i),
                    &[i; 32],
                    hour,
                ),
            )
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        ids.insert(done(task.await.unwrap().unwrap()));
    }
    assert_eq!(ids.len(), 12);
    for id in &ids {
        assert_eq!(
            evm.lock_status(*id).await.unwrap().unwrap().state,
            LockState::Locked
        );
    }
    // Twelve locks and one approval, on consecutive nonces.
    let nonce_after: u64 = c.anvil.cast(&["nonce", me]).parse().unwrap();
    assert_eq!(nonce_after - nonce_before, 13);
    c.anvil.stop().await;
}

#[tokio::test]
async fn a_counterparty_lock_made_with_cast_is_found_proven_and_claimed() {
    let c = chain(&[]).await;
    let evm = adapter(&c, 0, 0);
    let (me, counterparty) = (DEV_ADDRESSES[0], DEV_ADDRESSES[1]);
    let secret = [0x41u8; 32];
    let hashlock = format!("{}", Hashlock::of_preimage(&secret));
    let timelock = (now_ms() / 1000 + 3_600).to_string();
    let contract = c.contract.to_string();
    // The counterparty approves and locks 250 EURT to the adapter's account,
    // and a decoy of 249 under the same hashlock.
    c.anvil.cast(&[
        "send",
        "--private-key",
        DEV_KEYS[1],
        &c.token,
        "approve(address,uint256)",
        &contract,
        "1000",
    ]);
    for (salt, amount) in [("0x01", "249"), ("0x02", "250")] {
        let salt = format!("0x{:0>64}", salt.trim_start_matches("0x"));
        c.anvil.cast(&[
            "send",
            "--private-key",
            DEV_KEYS[1],
            &contract,
            "lock(bytes32,address,address,uint256,bytes32,uint64)",
            &salt,
            me,
            &c.token,
            amount,
            &hashlock,
            &timelock,
        ]);
    }
    let expected_id = c.anvil.cast(&[
        "call",
        &contract,
        "lockId(address,bytes32)(bytes32)",
        counterparty,
        &format!("0x{:0>64}", "02"),
    ]);
    let wanted = terms(counterparty, me, "EURT", 250, &secret, now_ms() + 1_800_000);
    let found = evm
        .find_open_lock(&wanted)
        .await
        .unwrap()
        .expect("the lock is found");
    assert_eq!(found.id.to_string(), expected_id);
    assert_eq!(found.terms.sender, addr(counterparty));
    // Not found when the terms ask for more time than the lock gives.
    let too_long = LockTerms {
        expires_at_ms: now_ms() + 7_200_000,
        ..wanted
    };
    assert!(evm.find_open_lock(&too_long).await.unwrap().is_none());
    // The proof names the locking transaction, which cast confirms.
    let proof = evm.prove_lock(found.id).await.unwrap().unwrap();
    assert_eq!(proof["format"], "lockgate-evm-lock-1");
    let tx = proof["transactionHash"].as_str().unwrap();
    let receipt: serde_json::Value =
        serde_json::from_str(&c.anvil.cast(&["receipt", "--json", tx])).unwrap();
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(
        receipt["to"].as_str().unwrap().to_lowercase(),
        contract.to_lowercase()
    );
    let mine_before = token_balance(&c.anvil, &c.token, me);
    done(
        evm.claim(op("t-in", "source-claim"), found.id, secret)
            .await
            .unwrap(),
    );
    assert_eq!(token_balance(&c.anvil, &c.token, me), mine_before + 250);
    // And cast sees the lock settled.
    let state = c.anvil.cast(&[
        "call",
        &contract,
        "locks(bytes32)(address,uint64,uint8,address,address,uint256,bytes32)",
        &expected_id,
    ]);
    assert_eq!(state.lines().nth(2), Some("2"), "{state}");
    c.anvil.stop().await;
}

/// Waits until the lock `id` has `state` at the head, read with cast (a
/// bound in time, not in calls: under a loaded CI each `cast` call can take
/// tens of milliseconds).
async fn wait_head_state(anvil: &Anvil, contract: &str, id: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let stored = anvil.cast(&[
            "call",
            contract,
            "locks(bytes32)(address,uint64,uint8,address,address,uint256,bytes32)",
            id,
        ]);
        if stored.lines().nth(2) == Some(state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("lock {id} never reached state {state} at the head");
}

#[tokio::test]
async fn reorgs_of_an_own_lock_and_of_a_counterparty_claim() {
    let c = chain(&[]).await;
    // Two confirmations: nothing counts until two blocks are on top.
    let evm = Arc::new(adapter(&c, 0, 2));
    let (me, recipient) = (DEV_ADDRESSES[0], DEV_ADDRESSES[2]);
    let contract = c.contract.to_string();
    let secret = [0x51u8; 32];
    let wanted = terms(me, recipient, "ETH", 4_000, &secret, now_ms() + 3_600_000);
    let id = evm.lock_id_for(op("t-reorg", "target-lock"));

    // The adapter's own lock is mined, then reorged away before it is
    // confirmed: the adapter sends it again and it ends confirmed, once.
    let snapshot = c.anvil.snapshot().await;
    let locking = {
        let evm = evm.clone();
        tokio::spawn(async move {
            // Retried on "unavailable", as the transfer engine does at its
            // next tick: a read racing the revert below can fail (anvil
            // refuses a height its block number reported a moment before).
            loop {
                match evm.lock(op("t-reorg", "target-lock"), &wanted).await {
                    Err(AdapterError::Unavailable(error)) => {
                        eprintln!("lock: {error}; retrying");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => return other,
                }
            }
        })
    };
    wait_head_state(&c.anvil, &contract, &id.to_string(), "1").await;
    assert_eq!(
        evm.committed_lock(op("t-reorg", "target-lock"))
            .await
            .unwrap(),
        None
    );
    c.anvil.revert(&snapshot).await;
    // Gone from the chain: the adapter notices and sends again.
    wait_head_state(&c.anvil, &contract, &id.to_string(), "1").await;
    while !locking.is_finished() {
        c.anvil.mine(1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done(locking.await.unwrap().unwrap()), id);
    let locks: Vec<_> = evm
        .events_since(0, 1_000)
        .await
        .unwrap()
        .events
        .into_iter()
        .filter(|(_, e)| matches!(e, LockEvent::Locked(info) if info.id == id))
        .collect();
    assert_eq!(locks.len(), 1, "one lock, not two");

    // The recipient claims with cast; before the claim is confirmed a
    // reorg removes it: the adapter never reported it claimed.
    let snapshot = c.anvil.snapshot().await;
    c.anvil.cast(&[
        "send",
        "--private-key",
        DEV_KEYS[2],
        &contract,
        "claim(bytes32,bytes32)",
        &id.to_string(),
        &format!("0x{}", hex::encode(secret)),
    ]);
    wait_head_state(&c.anvil, &contract, &id.to_string(), "2").await;
    assert_eq!(
        evm.lock_status(id).await.unwrap().unwrap().state,
        LockState::Locked
    );
    c.anvil.revert(&snapshot).await;
    c.anvil.mine(3).await;
    assert_eq!(
        evm.lock_status(id).await.unwrap().unwrap().state,
        LockState::Locked
    );
    // Claimed again, and confirmed this time: the preimage is read back.
    c.anvil.cast(&[
        "send",
        "--private-key",
        DEV_KEYS[2],
        &contract,
        "claim(bytes32,bytes32)",
        &id.to_string(),
        &format!("0x{}", hex::encode(secret)),
    ]);
    c.anvil.mine(2).await;
    assert_eq!(
        evm.lock_status(id).await.unwrap().unwrap().state,
        LockState::Claimed { preimage: secret }
    );
    c.anvil.stop().await;
}

#[tokio::test]
async fn a_keystore_made_by_cast_loads_and_a_wrong_password_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let out = cast(&[
        "wallet",
        "new",
        dir.path().to_str().unwrap(),
        "--unsafe-password",
        "correct horse",
    ]);
    let address = out
        .lines()
        .find_map(|l| l.strip_prefix("Address:"))
        .unwrap()
        .trim()
        .to_string();
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // The gateway's one loader of keystores (`lockgate::keys`) reads cast's.
    let password = |text: &str| lockgate::config::Secret::new(text.into());
    let bytes = lockgate::keys::decrypt_keystore(&file, &password("correct horse")).unwrap();
    let signer = load_key(&EvmKey::Bytes(bytes)).unwrap();
    assert_eq!(
        adapters::evm::lockgate_address(signer.address()),
        addr(&address)
    );
    let wrong = lockgate::keys::decrypt_keystore(&file, &password("wrong")).unwrap_err();
    assert!(
        matches!(wrong, lockgate::keys::KeyError::WrongPassword { .. }),
        "{wrong}"
    );
    assert!(load_key(&EvmKey::Hex("0x1234".into())).is_err());
}
