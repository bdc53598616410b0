//! The Lockgate gateway as a library, so tests can run it in-process; the
//! `lockgate` binary (`main.rs`) is a thin command line over it.
//!
//! Map: `config` (settings), `app` (assembly), `startup` (serving while
//! the gateway starts, then the API), `api` (routes, OpenAPI),
//! `auth` (JWT), `problem` (RFC 9457 errors), `dto`/`views` (wire types),
//! `store` (PostgreSQL and SQLite), `sequencer` (batching and group commit),
//! `producer` (the one block producer per database), `export` (audit export
//! and offline verification), `keys` (every signing key: hex or encrypted
//! keystore), `transfers` (cross-ledger transfers between
//! hosted ledgers, with the gateway as connector), `evm` (EVM chains through
//! the HTLC contract, feature `evm`), `satp` (gateway-to-gateway protocol), `settlement` (roaming settlement:
//! operators, agreements, usage records and their anchors).

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod bench;
pub mod config;
pub mod dto;
pub mod evm;
pub mod export;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod problem;
pub mod producer;
pub mod satp;
pub mod sequencer;
pub mod settlement;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod transfers;
pub mod views;
