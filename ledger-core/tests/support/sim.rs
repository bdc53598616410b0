//! A driver that turns a stream of small random choices into valid and
//! invalid transactions over a few accounts and assets, applies them, and
//! checks the ledger invariants after every step. The property tests feed it
//! proptest-generated actions; the seeded simulation feeds it a SplitMix64
//! stream so a failing seed replays exactly.

use std::collections::{BTreeMap, BTreeSet};

use ledger_core::{
    AssetCode, BlockContext, ChainId, HtlcStatus, LockId, Outcome, SignedTransaction, SigningKey,
    Snapshot, TxBody, TxHash, VerifiedTransaction, apply_batch,
};

use super::*;

/// One step's random choices.
#[derive(Clone, Copy, Debug)]
pub struct Action {
    pub kind: u8,
    pub from: u8,
    pub to: u8,
    pub amount: u16,
    pub flag: u8,
}

const CODES: [&str; 3] = ["AAA", "BBB", "CCC"];

/// SplitMix64: a tiny, well-known generator, enough for replayable choices.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn action(&mut self) -> Action {
        let word = self.next();
        Action {
            kind: word as u8,
            from: (word >> 8) as u8,
            to: (word >> 16) as u8,
            amount: (word >> 24) as u16,
            flag: (word >> 40) as u8,
        }
    }
}

pub struct Driver {
    pub keys: Vec<SigningKey>,
    pub state: Snapshot,
    pub now_ms: u64,
    /// Locks created, with the preimage that opens them.
    pub locks: Vec<(LockId, [u8; 32])>,
    /// Every transaction that applied, in order, with the block time it applied at.
    pub applied: Vec<(SignedTransaction, u64)>,
    applied_hashes: BTreeSet<TxHash>,
    /// Supply per asset as Issue and Burn alone say it should be.
    expected_supply: BTreeMap<AssetCode, u128>,
    /// Locks seen settled, with how.
    settled: BTreeMap<LockId, HtlcStatus>,
    pub rejections: BTreeMap<String, u64>,
    /// The preimage of every hashlock the driver made.
    secrets: BTreeMap<ledger_core::Hashlock, [u8; 32]>,
    /// Next nonce per sender for transactions made since the last step, so a
    /// batch can hold several transactions of one sender.
    pending_nonces: BTreeMap<ledger_core::Address, u64>,
}

impl Driver {
    pub fn new(accounts: u64) -> Self {
        Self {
            keys: (0..accounts).map(key).collect(),
            state: Snapshot::complete(),
            now_ms: 1_000_000,
            locks: Vec::new(),
            applied: Vec::new(),
            applied_hashes: BTreeSet::new(),
            expected_supply: BTreeMap::new(),
            settled: BTreeMap::new(),
            rejections: BTreeMap::new(),
            secrets: BTreeMap::new(),
            pending_nonces: BTreeMap::new(),
        }
    }

    fn context(&self) -> BlockContext {
        BlockContext {
            chain_id: chain(),
            timestamp_ms: self.now_ms,
        }
    }

    /// Turns an action into a signed transaction (possibly an invalid one).
    pub fn transaction(&mut self, action: Action) -> SignedTransaction {
        let n = self.keys.len();
        let sender = &self.keys[usize::from(action.from) % n];
        let to = self.keys[usize::from(action.to) % n].address();
        let code = CODES[usize::from(action.to) % CODES.len()];
        let units = u128::from(action.amount % 1000);
        let expected_nonce = self.next_nonce(sender.address());
        let nonce = match action.flag % 16 {
            0 => expected_nonce + 1,
            1 => expected_nonce.saturating_sub(1),
            _ => expected_nonce,
        };
        // Issuers: asset i is usually registered by key i, so Issue from key i
        // is usually allowed and from others refused.
        let issuer_sender = &self.keys[usize::from(action.to) % CODES.len() % n];
        let picked = self
            .locks
            .get(usize::from(action.amount) % self.locks.len().max(1))
            .copied();
        let (signer, body) = match action.kind % 10 {
            0 => (issuer_sender, register(code, action.flag % 19)),
            1 => (
                if action.flag.is_multiple_of(4) {
                    sender
                } else {
                    issuer_sender
                },
                issue(code, to, units * 10),
            ),
            2 => (
                if action.flag.is_multiple_of(4) {
                    sender
                } else {
                    issuer_sender
                },
                burn(code, units),
            ),
            3 | 4 => (sender, transfer(code, to, units)),
            5 => {
                let expiry = (self.now_ms + u64::from(action.flag % 8) * 700).saturating_sub(700);
                let secret = preimage(&format!("{}-{}", action.amount, action.flag));
                self.secrets
                    .insert(ledger_core::Hashlock::of_preimage(&secret), secret);
                (sender, lock(code, to, units, &secret, expiry))
            }
            6 => match picked {
                Some((id, secret)) => {
                    let offered: Vec<u8> = match action.flag % 5 {
                        0 => preimage("wrong").to_vec(),
                        1 => secret[..31].to_vec(),
                        _ => secret.to_vec(),
                    };
                    (sender, claim(id, &offered))
                }
                None => (sender, claim(LockId::from_bytes([9; 32]), &[0; 32])),
            },
            7 => match picked {
                Some((id, _)) => (sender, refund(id)),
                None => (sender, refund(LockId::from_bytes([9; 32]))),
            },
            8 => {
                let parties = if to == sender.address() {
                    vec![to]
                } else {
                    vec![sender.address(), to]
                };
                (sender, anchor(&format!("doc-{}", action.amount), &parties))
            }
            _ => {
                // Replay a transaction that already applied, verbatim.
                if let Some((old, _)) = self
                    .applied
                    .get(usize::from(action.amount) % self.applied.len().max(1))
                {
                    return old.clone();
                }
                (sender, transfer(code, to, units))
            }
        };
        let signer = signer.clone();
        let nonce = if signer.address() == sender.address() {
            nonce
        } else {
            self.next_nonce(signer.address())
        };
        if nonce == self.next_nonce(signer.address()) {
            self.pending_nonces.insert(signer.address(), nonce + 1);
        }
        let chain_id = if action.flag == 255 {
            ChainId::new(CHAIN + 1).unwrap()
        } else {
            chain()
        };
        sign_on(chain_id, &signer, nonce, body)
    }

    fn next_nonce(&self, address: ledger_core::Address) -> u64 {
        match self.pending_nonces.get(&address) {
            Some(nonce) => *nonce,
            None => self.state.next_nonce(address).unwrap(),
        }
    }

    /// Applies a batch, checks it against one-by-one application, records
    /// what applied, and checks every invariant.
    pub fn step(&mut self, txs: Vec<SignedTransaction>, advance_ms: u64) {
        self.now_ms += advance_ms;
        self.pending_nonces.clear();
        let context = self.context();
        let verified: Vec<VerifiedTransaction> =
            txs.into_iter().map(|t| t.verify().unwrap()).collect();

        // One by one, checking that every rejection changes nothing.
        let mut single = self.state.clone();
        let mut single_outcomes = Vec::new();
        for tx in &verified {
            let before = single.clone();
            let result = apply_batch(&mut single, &context, std::slice::from_ref(tx)).unwrap();
            if let Outcome::Rejected(rejection) = result.outcomes[0] {
                assert_eq!(single, before, "rejected {rejection:?} changed the state");
                let name = format!("{rejection:?}");
                let name = name.split([' ', '(', '{']).next().unwrap_or("").to_string();
                *self.rejections.entry(name).or_default() += 1;
            }
            single_outcomes.push(result.outcomes[0]);
        }

        let before = self.state.clone();
        // The gateway's way: a partial snapshot filled by the prefetch
        // protocol must give the same outcomes and changes.
        let mut partial = Snapshot::partial();
        prefetch(&before, &mut partial, &verified);
        let from_partial = apply_batch(&mut partial, &context, &verified).unwrap();
        let result = apply_batch(&mut self.state, &context, &verified).unwrap();
        assert_eq!(
            from_partial, result,
            "a prefetched partial snapshot gave another result"
        );
        assert_eq!(
            result.outcomes, single_outcomes,
            "a batch differs from one-by-one application"
        );
        assert_eq!(
            self.state, single,
            "a batch differs from one-by-one application"
        );
        self.check_changes(&before, &result.changes);

        for (tx, outcome) in verified.iter().zip(&result.outcomes) {
            if !outcome.is_applied() {
                continue;
            }
            assert!(
                self.applied_hashes.insert(tx.hash()),
                "a signed transaction applied twice"
            );
            match &tx.transaction().body {
                TxBody::Issue { asset, amount, .. } => {
                    *self.expected_supply.entry(*asset).or_default() += amount.minor_units();
                }
                TxBody::Burn { asset, amount } => {
                    *self.expected_supply.entry(*asset).or_default() -= amount.minor_units();
                }
                _ => {}
            }
            self.applied.push((tx.signed().clone(), self.now_ms));
        }
        self.track_locks(&verified, &result.outcomes);
        self.check_invariants();
    }

    fn track_locks(&mut self, verified: &[VerifiedTransaction], outcomes: &[Outcome]) {
        for (tx, outcome) in verified.iter().zip(outcomes) {
            if let (TxBody::HtlcLock { hashlock, .. }, Outcome::Applied) =
                (&tx.transaction().body, outcome)
                && let Some(secret) = self.secrets.get(hashlock)
            {
                self.locks.push((LockId::from(tx.hash()), *secret));
            }
        }
    }

    /// StateChanges hold every key whose value differs, with the new values.
    fn check_changes(&self, before: &Snapshot, changes: &ledger_core::StateChanges) {
        for (address, nonce) in &changes.accounts {
            assert_eq!(self.state.next_nonce(*address).unwrap(), *nonce);
        }
        let changed_accounts: BTreeSet<_> = changes.accounts.iter().map(|(a, _)| *a).collect();
        for (address, nonce) in self.state.nonces() {
            if before.next_nonce(address).unwrap() != nonce {
                assert!(
                    changed_accounts.contains(&address),
                    "unreported nonce change"
                );
            }
        }
        for state in &changes.assets {
            assert_eq!(self.state.asset(state.asset.code).unwrap(), Some(state));
        }
        for state in self.state.assets() {
            if before.asset(state.asset.code).unwrap() != Some(state) {
                assert!(changes.assets.contains(state), "unreported asset change");
            }
        }
        for htlc in &changes.locks {
            assert_eq!(self.state.lock(htlc.id).unwrap(), Some(htlc));
        }
        for htlc in self.state.locks() {
            if before.lock(htlc.id).unwrap() != Some(htlc) {
                assert!(changes.locks.contains(htlc), "unreported lock change");
            }
        }
        for (address, code, amount) in &changes.balances {
            assert_eq!(self.state.balance(*address, *code).unwrap(), *amount);
        }
        let changed_balances: BTreeSet<_> =
            changes.balances.iter().map(|(a, c, _)| (*a, *c)).collect();
        for (address, code, amount) in self.state.balances() {
            if before.balance(address, code).unwrap() != amount {
                assert!(
                    changed_balances.contains(&(address, code)),
                    "unreported balance change"
                );
            }
        }
    }

    pub fn check_invariants(&mut self) {
        // Balances plus open locks equal each asset's supply (no value is
        // created or lost; u128 balances cannot go negative).
        self.state.check_supply().unwrap();
        // Supply changes only by Issue and Burn.
        for asset in self.state.assets() {
            assert_eq!(
                asset.supply.minor_units(),
                self.expected_supply
                    .get(&asset.asset.code)
                    .copied()
                    .unwrap_or(0),
                "supply of {} moved other than by Issue/Burn",
                asset.asset.code
            );
        }
        // A lock settles at most once and never changes after settling.
        for htlc in self.state.locks() {
            if let Some(previous) = self.settled.get(&htlc.id) {
                assert_eq!(*previous, htlc.status, "a settled lock changed");
            } else if htlc.status != HtlcStatus::Locked {
                self.settled.insert(htlc.id, htlc.status);
            }
        }
    }
}

/// Fills a partial snapshot the way the gateway does: ask what is missing,
/// load it from the "database" (a complete snapshot), until nothing is.
pub fn prefetch(database: &Snapshot, partial: &mut Snapshot, txs: &[VerifiedTransaction]) {
    for _round in 0..3 {
        let missing = partial.missing(txs);
        if missing.is_empty() {
            return;
        }
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
    assert!(
        partial.missing(txs).is_empty(),
        "prefetch needed more than two rounds"
    );
}
