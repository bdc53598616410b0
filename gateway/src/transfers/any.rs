//! [`AnyLedger`]: the ledger a transfer leg is on when this gateway acts on
//! it itself, a built-in ledger ([`LocalLedger`]) or an EVM chain
//! ([`crate::evm::EvmLedger`]), or a pinned peer's ledger read through its
//! API ([`crate::satp::peer::PeerLedger`]), behind one [`LedgerAdapter`] so
//! the connector's state machine runs unchanged over any pair of them.
//! Every call is timed (`lockgate_adapter_call_*`) and runs in an
//! `adapter.<call>` span (`crate::telemetry`).

use adapters::ledger::{
    Acted, AdapterError, EventPage, LedgerAdapter, LedgerDescription, LockInfo, LockTerms,
    OperationKey,
};
use ledger_core::{Address, AssetCode, ChainId, LockId};

use super::Connector;
use super::fault::{self, FaultPoint};
use super::local::LocalLedger;
use crate::app::App;
use crate::evm::EvmLedger;

/// A ledger this gateway acts on itself.
pub enum AnyLedger<'a> {
    /// A built-in ledger.
    Local(LocalLedger<'a>),
    /// A pinned peer's built-in ledger, read through its API (the receiving
    /// side of a SATP transfer).
    Peer(crate::satp::peer::PeerLedger<'a>),
    /// An EVM chain.
    Evm {
        /// Its adapter.
        ledger: &'a EvmLedger,
        /// Fault injection (crash tests): halts once an action is
        /// confirmed, before the transfer records it.
        fault: Option<&'a fault::FaultStep>,
    },
}

impl<'a> AnyLedger<'a> {
    /// The adapter of `chain`: an EVM chain when one is configured with
    /// that id, a built-in ledger otherwise.
    pub fn of(app: &'a App, connector: &'a Connector, chain: ChainId) -> Self {
        match app.evm(chain) {
            Some(ledger) => AnyLedger::Evm {
                ledger,
                fault: connector.config.fault_step.as_ref(),
            },
            None => AnyLedger::Local(LocalLedger::new(app, connector, chain)),
        }
    }

    /// The adapter's name in metrics.
    fn kind(&self) -> &'static str {
        match self {
            AnyLedger::Local(_) => "builtin",
            AnyLedger::Peer(_) => "peer",
            AnyLedger::Evm { .. } => "evm",
        }
    }

    /// Times one adapter call (`lockgate_adapter_call_*`).
    async fn timed<T>(
        &self,
        call: &'static str,
        future: impl std::future::Future<Output = Result<T, AdapterError>>,
    ) -> Result<T, AdapterError> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!(
            "adapter",
            otel.name = %format_args!("adapter.{call}"),
            ledger.kind = self.kind(),
            ledger.chain_id = self.describe().chain_id.get(),
        );
        let started = std::time::Instant::now();
        let result = future.instrument(span).await;
        crate::metrics::adapter_call(self.kind(), call, result.is_ok(), started.elapsed());
        result
    }

    async fn confirmed<T>(
        &self,
        op: OperationKey<'_>,
        acted: Result<Acted<T>, AdapterError>,
    ) -> Result<Acted<T>, AdapterError> {
        if let (AnyLedger::Evm { fault, .. }, Ok(Acted::Done(_))) = (self, &acted) {
            fault::reach(*fault, FaultPoint::AfterSubmit, op.action, op.transfer_id).await;
        }
        acted
    }
}

impl LedgerAdapter for AnyLedger<'_> {
    fn describe(&self) -> LedgerDescription {
        match self {
            AnyLedger::Local(l) => l.describe(),
            AnyLedger::Peer(l) => l.describe(),
            AnyLedger::Evm { ledger, .. } => ledger.describe(),
        }
    }

    fn account(&self) -> Address {
        match self {
            AnyLedger::Local(l) => l.account(),
            AnyLedger::Peer(l) => l.account(),
            AnyLedger::Evm { ledger, .. } => ledger.account(),
        }
    }

    async fn lock(
        &self,
        op: OperationKey<'_>,
        terms: &LockTerms,
    ) -> Result<Acted<LockId>, AdapterError> {
        self.timed("lock", async {
            match self {
                AnyLedger::Local(l) => l.lock(op, terms).await,
                AnyLedger::Peer(l) => l.lock(op, terms).await,
                AnyLedger::Evm { ledger, .. } => {
                    self.confirmed(op, ledger.lock(op, terms).await).await
                }
            }
        })
        .await
    }

    async fn claim(
        &self,
        op: OperationKey<'_>,
        lock: LockId,
        preimage: [u8; 32],
    ) -> Result<Acted<()>, AdapterError> {
        self.timed("claim", async {
            match self {
                AnyLedger::Local(l) => l.claim(op, lock, preimage).await,
                AnyLedger::Peer(l) => l.claim(op, lock, preimage).await,
                AnyLedger::Evm { ledger, .. } => {
                    self.confirmed(op, ledger.claim(op, lock, preimage).await)
                        .await
                }
            }
        })
        .await
    }

    async fn refund(&self, op: OperationKey<'_>, lock: LockId) -> Result<Acted<()>, AdapterError> {
        self.timed("refund", async {
            match self {
                AnyLedger::Local(l) => l.refund(op, lock).await,
                AnyLedger::Peer(l) => l.refund(op, lock).await,
                AnyLedger::Evm { ledger, .. } => {
                    self.confirmed(op, ledger.refund(op, lock).await).await
                }
            }
        })
        .await
    }

    async fn committed_lock(&self, op: OperationKey<'_>) -> Result<Option<LockId>, AdapterError> {
        self.timed("committed_lock", async {
            match self {
                AnyLedger::Local(l) => l.committed_lock(op).await,
                AnyLedger::Peer(l) => l.committed_lock(op).await,
                AnyLedger::Evm { ledger, .. } => ledger.committed_lock(op).await,
            }
        })
        .await
    }

    async fn lock_status(&self, id: LockId) -> Result<Option<LockInfo>, AdapterError> {
        self.timed("lock_status", async {
            match self {
                AnyLedger::Local(l) => l.lock_status(id).await,
                AnyLedger::Peer(l) => l.lock_status(id).await,
                AnyLedger::Evm { ledger, .. } => ledger.lock_status(id).await,
            }
        })
        .await
    }

    async fn assets(&self) -> Result<Vec<AssetCode>, AdapterError> {
        self.timed("assets", async {
            match self {
                AnyLedger::Local(l) => l.assets().await,
                AnyLedger::Peer(l) => l.assets().await,
                AnyLedger::Evm { ledger, .. } => ledger.assets().await,
            }
        })
        .await
    }

    async fn events_since(
        &self,
        checkpoint: u64,
        blocks_max: u32,
    ) -> Result<EventPage, AdapterError> {
        self.timed("events_since", async {
            match self {
                AnyLedger::Local(l) => l.events_since(checkpoint, blocks_max).await,
                AnyLedger::Peer(l) => l.events_since(checkpoint, blocks_max).await,
                AnyLedger::Evm { ledger, .. } => ledger.events_since(checkpoint, blocks_max).await,
            }
        })
        .await
    }

    async fn prove_lock(&self, id: LockId) -> Result<Option<serde_json::Value>, AdapterError> {
        self.timed("prove_lock", async {
            match self {
                AnyLedger::Local(l) => l.prove_lock(id).await,
                AnyLedger::Peer(l) => l.prove_lock(id).await,
                AnyLedger::Evm { ledger, .. } => ledger.prove_lock(id).await,
            }
        })
        .await
    }

    async fn find_open_lock(&self, terms: &LockTerms) -> Result<Option<LockInfo>, AdapterError> {
        self.timed("find_open_lock", async {
            match self {
                AnyLedger::Local(l) => l.find_open_lock(terms).await,
                AnyLedger::Peer(l) => l.find_open_lock(terms).await,
                AnyLedger::Evm { ledger, .. } => ledger.find_open_lock(terms).await,
            }
        })
        .await
    }
}
