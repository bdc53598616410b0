//! Transfers between two gateways over SATP (draft-ietf-satp-core-17):
//! topology (b) of DESIGN.md, each gateway with its own built-in ledger and
//! its own database.
//!
//! **Roles.** The originating gateway G1 (the SATP *client*) hosts the
//! source ledger and takes `POST /v1/transfers` from its client; the
//! receiving gateway G2 (the *server*) hosts the target ledger and provides
//! the liquidity there, as a connector does in topology (a). The sender
//! locks on the source ledger to G2's own account (every built-in ledger
//! accepts any secp256k1 account); G2 locks the same amount on the target
//! ledger to the recipient under the same hashlock with an earlier expiry;
//! the recipient's claim on the target reveals the preimage and G2 claims
//! the source lock with it. So no gateway ever holds another's funds, and a
//! transfer completes on both ledgers or is refunded on both.
//!
//! **Messages** (`client` sends each over `POST /v1/satp/messages`; the
//! server answers in the HTTP response):
//!
//! | stage | client → server | server → client | what happens |
//! |---|---|---|---|
//! | 1 | transfer-proposal | proposal-receipt, or a signed reject | G2 checks the terms in `transferContextId` ([`adapters::satp::context`]) and its margins, and records the transfer |
//! | 1 | transfer-commence | ack-commence | |
//! | 2 | lock-assert | assertion-receipt | G1 sends the sender's lock transaction with its inclusion proof; G2 checks it against G1's pinned block key |
//! | 3 | commit-prepare | commit-ready | G2 locks on the target ledger and sends that lock with its inclusion proof; G1 checks it against G2's pinned block key |
//! | 3 | commit-final | ack-commit-final | once the source lock is claimed (G2's claim reveals the preimage), each side shows the settled lock and its preimage |
//! | 3 | transfer-complete | (204) | the session closes |
//! | any | session-abort | (204) | the session ends; each side unwinds what it locked (refund at expiry) |
//!
//! **Trust.** A peer is configured (`[[peers]]`) with its SATP identity key
//! (a P-256 JWK), the block key of its ledger, its account and a token for
//! its ledger API; nothing is taken from a message that the pinned keys do
//! not prove. Every message travels as a flattened JWS signed by the
//! sender's identity key; an error is a signed problem document
//! ([`problem`]). Every message sent and received is stored in order
//! (`satp_messages`), and each step is bracketed by signed, hash-chained
//! recovery-log entries (`satp_log`, [`log`]).
//!
//! **Key rotation.** A gateway signs with one identity key, its current
//! one. Every signature names its key by the JWS `kid` (the key's RFC 7638
//! thumbprint), and a verifier checks it with the pinned key of that
//! thumbprint, never trying others: a peer's current key or one of its
//! `previous_identity_keys` for what the peer signed, this gateway's
//! current key or its `satp.previous_identity_keys` for what it signed
//! itself (its recovery log, its own messages handed back in RECOVER-UPDATE).
//! An unknown `kid` is refused like a bad signature (`err_0.1.3`). So
//! messages and logs signed before a rotation still verify, and during the
//! overlap a peer may still send with its old key; the procedure is in
//! docs/operations.md ("Keys").

pub mod client;
pub mod evidence;
pub mod fault;
pub mod log;
pub mod peer;
pub mod problem;
pub mod recovery;
pub mod server;
pub mod store;

use adapters::finality::FinalityModel;
use adapters::satp::jws::{self, KeySet};
use anyhow::Context as _;
use ledger_core::{Address, ChainId};
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde_json::Value;

use crate::config::{Config, PeerConfig, Secret, development_secret};

/// This gateway's SATP identity.
#[derive(Clone)]
pub struct Identity {
    /// Its gateway id.
    pub gateway_id: String,
    /// The key that signs its messages (the current one; the only one that
    /// signs).
    pub key: SigningKey,
    /// The public key as a JWK.
    pub jwk: Value,
    /// The RFC 7638 thumbprint (`kid`).
    pub kid: String,
    /// The current public key and the previous ones
    /// (`satp.previous_identity_keys`): what verifies this gateway's own
    /// signatures, old and new.
    pub keys: KeySet,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("gateway_id", &self.gateway_id)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A pinned peer gateway.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its gateway id.
    pub gateway_id: String,
    /// Its API's base URL, without a trailing slash.
    pub url: String,
    /// Its identity keys: the current one and the previous ones still
    /// accepted (each message is checked with the one its `kid` names).
    pub keys: KeySet,
    /// The current key's JWK as pinned (JSON text).
    pub jwk_text: String,
    /// The ledger it hosts.
    pub chain_id: ChainId,
    /// The block keys of that ledger whose evidence is accepted: the current
    /// one first, then the earlier ones (`previous_block_producers`).
    pub block_producers: Vec<Address>,
    /// Its own account on every ledger.
    pub account: Address,
    /// The token for its ledger API.
    pub token: Option<Secret>,
    /// Its ledger's finality as seen from here.
    pub finality: FinalityModel,
    /// Ledgers reachable through it.
    pub routes: Vec<ChainId>,
}

/// SATP settings of a running gateway.
#[derive(Debug)]
pub struct Satp {
    /// This gateway.
    pub identity: Identity,
    /// The pinned peers.
    pub peers: Vec<Peer>,
    /// The client for peers' APIs.
    pub http: reqwest::Client,
    /// Crash tests only.
    pub fault: Option<fault::SatpFault>,
    /// Sessions this process holds in full: created here, or recovered
    /// with the peer after the process started.
    recovered: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Satp {
    /// Builds the settings from the configuration.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let identity = identity(config)?;
        let peers = config
            .peers
            .iter()
            .map(peer)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .connect_timeout(std::time::Duration::from_secs(2))
            .build()
            .context("building the HTTP client for peers")?;
        let fault = config
            .satp
            .fault_step
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: fault::BadSatpFault| anyhow::anyhow!("satp.fault_step: {e}"))?;
        Ok(Self {
            identity,
            peers,
            http,
            fault,
            recovered: std::sync::Mutex::default(),
        })
    }

    /// True when this process holds session `id` in full.
    pub fn is_recovered(&self, id: &str) -> bool {
        self.recovered.lock().is_ok_and(|set| set.contains(id))
    }

    /// Records that this process holds session `id` in full.
    pub fn mark_recovered(&self, id: &str) {
        if let Ok(mut set) = self.recovered.lock() {
            set.insert(id.to_string());
        }
    }

    /// The peer hosting ledger `chain`.
    pub fn peer_for_chain(&self, chain: ChainId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.chain_id == chain)
    }

    /// The peer through which ledger `chain` is reached (a route).
    pub fn route_for_chain(&self, chain: ChainId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.routes.contains(&chain))
    }

    /// The peer hosting ledger `chain`, or through which it is reached.
    pub fn remote_for_chain(&self, chain: ChainId) -> Option<&Peer> {
        self.peer_for_chain(chain)
            .or_else(|| self.route_for_chain(chain))
    }

    /// The peer with gateway id `id`.
    pub fn peer(&self, id: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.gateway_id == id)
    }

    /// The peer one of whose pinned identity keys (current or previous)
    /// has thumbprint `kid`, and that key.
    pub fn peer_by_kid(&self, kid: &str) -> Option<(&Peer, &VerifyingKey)> {
        self.peers
            .iter()
            .find_map(|p| p.keys.get(kid).map(|key| (p, key)))
    }
}

/// Loads (or, for development, generates) the identity key: configured
/// (hex or keystore, `crate::keys`), or `<data_dir>/satp-key.hex`.
pub fn identity(config: &Config) -> anyhow::Result<Identity> {
    let key = match config.identity_key_source().p256()? {
        Some(key) => key,
        None => {
            let bytes = development_secret(&config.data_dir.join("satp-key.hex"))
                .context("development SATP identity key")?;
            SigningKey::from_slice(&bytes).map_err(|_| {
                anyhow::anyhow!("the development SATP identity key is not a valid P-256 key")
            })?
        }
    };
    let public = *key.verifying_key();
    let mut keys = KeySet::new(public);
    for jwk in &config.satp.previous_identity_keys {
        let previous = jws::key_from_jwk(jwk)
            .map_err(|e| anyhow::anyhow!("satp.previous_identity_keys: {e}"))?;
        keys = keys.with_previous(previous);
    }
    Ok(Identity {
        gateway_id: config.satp.gateway_id.clone(),
        jwk: jws::jwk(&public),
        kid: jws::thumbprint(&public),
        key,
        keys,
    })
}

fn peer(config: &PeerConfig) -> anyhow::Result<Peer> {
    let key = jws::key_from_jwk(&config.identity_key)
        .map_err(|e| anyhow::anyhow!("peer {}: identity_key: {e}", config.gateway_id))?;
    let mut keys = KeySet::new(key);
    for jwk in &config.previous_identity_keys {
        let previous = jws::key_from_jwk(jwk).map_err(|e| {
            anyhow::anyhow!("peer {}: previous_identity_keys: {e}", config.gateway_id)
        })?;
        keys = keys.with_previous(previous);
    }
    let address = |text: &str, what: &str| -> anyhow::Result<Address> {
        text.parse()
            .map_err(|e| anyhow::anyhow!("peer {}: {what}: {e}", config.gateway_id))
    };
    let mut block_producers = vec![address(&config.block_producer, "block_producer")?];
    for text in &config.previous_block_producers {
        block_producers.push(address(text, "previous_block_producers")?);
    }
    Ok(Peer {
        gateway_id: config.gateway_id.clone(),
        url: config.url.trim_end_matches('/').to_string(),
        keys,
        jwk_text: config.identity_key.clone(),
        chain_id: ChainId::new(config.chain_id).context("peer chain_id")?,
        block_producers,
        account: address(&config.account, "account")?,
        token: config.token.clone(),
        finality: FinalityModel::built_in(config.commit_ms_max, config.clock_drift_ms_max),
        routes: config
            .routes
            .iter()
            .map(|chain| ChainId::new(*chain).context("peer route"))
            .collect::<anyhow::Result<_>>()?,
    })
}

/// What a peer pins of this gateway: printed by `lockgate satp-identity` and
/// served at `GET /v1/satp/identity`. `identityKey` is the current key (the
/// peer's `identity_key`). The keys this gateway signed with before a
/// rotation (`satp.previous_identity_keys`) are not listed: they only verify
/// what it signed with them, and a peer keeps the one it pinned before as
/// its `previous_identity_keys` for the overlap; listing them would ask a
/// new peer to accept a retired, perhaps compromised, key.
pub fn identity_document(
    identity: &Identity,
    chain_id: ChainId,
    block_producer: Address,
    account: Address,
) -> Value {
    serde_json::json!({
        "gatewayId": identity.gateway_id,
        "identityKey": identity.jwk,
        "kid": identity.kid,
        "chainId": chain_id.get().to_string(),
        "blockProducer": block_producer.to_string(),
        "account": account.to_string(),
    })
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    crate::views::rfc3339(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(seed: &str) -> VerifyingKey {
        let secret = ledger_core::hash::sha256(seed.as_bytes());
        *SigningKey::from_slice(&secret).unwrap().verifying_key()
    }

    #[test]
    fn a_pinned_peer_holds_its_previous_keys_and_block_producers() {
        let (old, new) = (public("old"), public("new"));
        let address = |byte: u8| Address::from_bytes([byte; 20]);
        let config = PeerConfig {
            gateway_id: "b".into(),
            url: "http://127.0.0.1:1/".into(),
            identity_key: jws::jwk(&new).to_string(),
            previous_identity_keys: vec![jws::jwk(&old).to_string()],
            chain_id: 4301,
            block_producer: address(1).to_string(),
            previous_block_producers: vec![address(2).to_string()],
            account: address(3).to_string(),
            token: None,
            commit_ms_max: 500,
            clock_drift_ms_max: 100,
            routes: Vec::new(),
        };
        let peer = peer(&config).unwrap();
        assert_eq!(peer.keys.current(), &new);
        assert_eq!(peer.keys.get(&jws::thumbprint(&old)), Some(&old));
        assert_eq!(peer.keys.get(&jws::thumbprint(&public("other"))), None);
        assert_eq!(peer.block_producers, [address(1), address(2)]);
        assert_eq!(peer.jwk_text, config.identity_key);
    }
}
