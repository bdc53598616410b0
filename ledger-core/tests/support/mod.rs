//! Shared helpers of ledger-core's integration tests: deterministic keys,
//! transaction builders, and a small in-memory ledger that applies batches
//! and seals blocks the way the gateway does.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use ledger_core::block::ChainTip;
use ledger_core::hash::sha256;
use ledger_core::verify::ExportedBlock;
use ledger_core::{
    Address, Amount, AssetCode, BatchResult, Block, BlockContext, ChainId, Hashlock, LockId,
    Outcome, Parties, Preimage, Rejection, Scale, SignedTransaction, SigningKey, Snapshot,
    Transaction, TxBody, VerifiedTransaction, apply_batch, seal_block,
};

pub const CHAIN: u64 = 77;

pub fn chain() -> ChainId {
    ChainId::new(CHAIN).unwrap()
}

/// Key number `i`: SHA-256 of `ledger-core-test-<i>`.
pub fn key(i: u64) -> SigningKey {
    SigningKey::from_bytes(sha256(format!("ledger-core-test-{i}").as_bytes())).unwrap()
}

pub fn asset(code: &str) -> AssetCode {
    AssetCode::new(code).unwrap()
}

pub fn amount(units: u128) -> Amount {
    Amount::from_minor_units(units)
}

pub fn sign(key: &SigningKey, nonce: u64, body: TxBody) -> SignedTransaction {
    sign_on(chain(), key, nonce, body)
}

pub fn sign_on(chain_id: ChainId, key: &SigningKey, nonce: u64, body: TxBody) -> SignedTransaction {
    Transaction {
        chain_id,
        from: key.address(),
        nonce,
        body,
    }
    .sign(key)
    .unwrap()
}

pub fn verified(key: &SigningKey, nonce: u64, body: TxBody) -> VerifiedTransaction {
    sign(key, nonce, body).verify().unwrap()
}

pub fn register(code: &str, scale: u8) -> TxBody {
    TxBody::RegisterAsset {
        code: asset(code),
        scale: Scale::new(scale).unwrap(),
    }
}

pub fn issue(code: &str, to: Address, units: u128) -> TxBody {
    TxBody::Issue {
        asset: asset(code),
        to,
        amount: amount(units),
    }
}

pub fn burn(code: &str, units: u128) -> TxBody {
    TxBody::Burn {
        asset: asset(code),
        amount: amount(units),
    }
}

pub fn transfer(code: &str, to: Address, units: u128) -> TxBody {
    TxBody::Transfer {
        asset: asset(code),
        to,
        amount: amount(units),
    }
}

pub fn preimage(seed: &str) -> [u8; 32] {
    sha256(seed.as_bytes())
}

pub fn lock(
    code: &str,
    recipient: Address,
    units: u128,
    preimage: &[u8; 32],
    expires_at_ms: u64,
) -> TxBody {
    TxBody::HtlcLock {
        asset: asset(code),
        recipient,
        amount: amount(units),
        hashlock: Hashlock::of_preimage(preimage),
        expires_at_ms,
    }
}

pub fn claim(lock_id: LockId, preimage: &[u8]) -> TxBody {
    TxBody::HtlcClaim {
        lock_id,
        preimage: Preimage::new(preimage.to_vec()).unwrap(),
    }
}

pub fn refund(lock_id: LockId) -> TxBody {
    TxBody::HtlcRefund { lock_id }
}

pub fn anchor(document: &str, parties: &[Address]) -> TxBody {
    TxBody::Anchor {
        document_hash: ledger_core::DocumentHash::from_bytes(sha256(document.as_bytes())),
        parties: Parties::new(parties.to_vec()).unwrap(),
    }
}

/// An in-memory ledger: a complete snapshot, per-key nonce counters, and the
/// sealed blocks.
pub struct Ledger {
    pub state: Snapshot,
    pub producer: SigningKey,
    pub tip: ChainTip,
    pub blocks: Vec<Block>,
    pub now_ms: u64,
}

impl Ledger {
    pub fn new() -> Self {
        Self {
            state: Snapshot::complete(),
            producer: key(1_000_000),
            tip: ChainTip::GENESIS,
            blocks: Vec::new(),
            now_ms: 1_700_000_000_000,
        }
    }

    pub fn context(&self) -> BlockContext {
        BlockContext {
            chain_id: chain(),
            timestamp_ms: self.now_ms,
        }
    }

    /// Applies a batch at the current time without sealing.
    pub fn apply(&mut self, txs: &[VerifiedTransaction]) -> BatchResult {
        let context = self.context();
        apply_batch(&mut self.state, &context, txs).unwrap()
    }

    /// Applies a batch and seals the applied transactions into a block.
    pub fn commit(&mut self, txs: Vec<SignedTransaction>) -> Vec<Outcome> {
        let verified: Vec<VerifiedTransaction> =
            txs.into_iter().map(|t| t.verify().unwrap()).collect();
        let result = self.apply(&verified);
        let applied: Vec<VerifiedTransaction> = verified
            .into_iter()
            .zip(&result.outcomes)
            .filter(|(_, o)| o.is_applied())
            .map(|(t, _)| t)
            .collect();
        let (block, _) = seal_block(&self.context(), &self.tip, &applied, &self.producer).unwrap();
        self.tip = ChainTip {
            next_height: block.header.header.height + 1,
            last_hash: block.header.header.hash(),
            last_timestamp_ms: self.now_ms,
        };
        self.blocks.push(block);
        result.outcomes
    }

    /// Applies one transaction and returns its outcome.
    pub fn one(&mut self, tx: VerifiedTransaction) -> Outcome {
        self.apply(&[tx]).outcomes[0]
    }

    pub fn balance(&self, address: Address, code: &str) -> u128 {
        self.state
            .balance(address, asset(code))
            .unwrap()
            .minor_units()
    }

    pub fn nonce(&self, address: Address) -> u64 {
        self.state.next_nonce(address).unwrap()
    }

    pub fn export(&self) -> Vec<ExportedBlock> {
        self.blocks.iter().map(ExportedBlock::from_block).collect()
    }
}

pub fn rejected(outcome: Outcome) -> Rejection {
    match outcome {
        Outcome::Rejected(rejection) => rejection,
        Outcome::Applied => panic!("expected a rejection, the transaction applied"),
    }
}

pub mod sim;
