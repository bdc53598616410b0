//! `adapters`: what the cross-ledger transfer engine knows of a ledger.
//!
//! The [`ledger::LedgerAdapter`] trait (describe, lock, claim, refund, lock
//! status, finding a counterparty's lock; every action idempotent under an
//! operation key), each ledger's [`finality::FinalityModel`], and the
//! [`planner`] that derives every leg's HTLC expiry from those models, so
//! that each party can always claim after the preimage appears. The `local`
//! and `peer` implementations live in the gateway (they drive the gateway's
//! store and HTTP client); `evm` (feature `evm`) is here: [`evm`], the
//! Lockgate HTLC contract on an EVM chain, driven with alloy.
//!
//! The [`satp`] module holds the building blocks of the gateway-to-gateway
//! protocol's wire format: RFC 8785 canonical JSON, JWS ES256 signatures,
//! and the hash chain over messages.
//!
//! Pure code except [`evm`]: no I/O, no clock (times are inputs, in ms since
//! the Unix epoch). The `evm` adapter talks JSON-RPC to a node and is
//! behind its cargo feature so the core builds stay light.

#![forbid(unsafe_code)]

#[cfg(feature = "evm")]
pub mod evm;
pub mod finality;
pub mod ledger;
pub mod planner;
pub mod satp;
