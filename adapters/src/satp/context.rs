//! The transfer context: the HTLC terms both gateways agree on in a SATP
//! session, carried in `transferContextId`.
//!
//! The draft's transfer-init claim names the asset, the parties and the
//! gateways but has no field for an amount, a hashlock or the expiry of
//! each leg, and it says (section 5.3.6) that the transfer context's default
//! format "is JSON, with base64 encoding". So Lockgate's `transferContextId`
//! is `base64url(JCS(context))`, without padding, where the context is this
//! JSON object (every number a decimal string, every byte string `0x` hex):
//!
//! ```json
//! {"transferId":"<uuid>","sourceChainId":"4201","targetChainId":"4202",
//!  "sourceAsset":"USD","targetAsset":"USD","amount":"2500",
//!  "sender":"0x…","recipient":"0x…","sourceLockRecipient":"0x…",
//!  "hashlock":"0x…","sourceLockByMs":"…","sourceExpiresAtMs":"…",
//!  "targetExpiresAtMs":"…"}
//! ```
//!
//! and, for a route through the receiving gateway to a third one (topology
//! c), `"hopExpiresAtMs"`: the receiving gateway then locks on its own
//! ledger to the account of the peer that hosts `targetChainId`, expiring
//! at `hopExpiresAtMs`, and forwards the transfer to that peer (whose lock to
//! `recipient` expires at `targetExpiresAtMs`).
//!
//! `sender` locks `amount` of `sourceAsset` on the source ledger to
//! `sourceLockRecipient` (the receiving gateway's account there) under
//! `hashlock`, final by `sourceLockByMs`, expiring no earlier than
//! `sourceExpiresAtMs`; the receiving gateway then locks `amount` of
//! `targetAsset` on the target ledger to `recipient`, expiring at
//! `targetExpiresAtMs`. Since the id is the canonical form of the terms, a
//! message that names the session's context id names its terms too, and
//! the id cannot be altered without the hash chain noticing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ledger_core::{Address, Amount, AssetCode, ChainId, Hashlock};
use serde::{Deserialize, Serialize};

use super::jcs::canonicalize;

/// The agreed terms of a two-gateway transfer (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferContext {
    /// The transfer's id at the originating gateway (a UUID).
    pub transfer_id: String,
    /// The source ledger (hosted by the originating gateway).
    pub source_chain_id: ChainId,
    /// The target ledger (hosted by the receiving gateway).
    pub target_chain_id: ChainId,
    /// The asset locked on the source.
    pub source_asset: AssetCode,
    /// The asset paid on the target.
    pub target_asset: AssetCode,
    /// Minor units, the same on both legs.
    pub amount: Amount,
    /// Who locks on the source.
    pub sender: Address,
    /// Who is paid on the target.
    pub recipient: Address,
    /// The receiving gateway's account on the source ledger.
    pub source_lock_recipient: Address,
    /// SHA-256 of the preimage.
    pub hashlock: Hashlock,
    /// The sender's lock must be final by then.
    pub source_lock_by_ms: u64,
    /// The sender's lock must not expire before this.
    pub source_expires_at_ms: u64,
    /// The receiving gateway's lock on the target expires then.
    pub target_expires_at_ms: u64,
    /// A route through the receiving gateway (topology c): it does not host
    /// the target ledger but forwards to the peer that does. Its own lock,
    /// on its own ledger to that peer's account, expires then.
    pub hop_expires_at_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Wire {
    transfer_id: String,
    source_chain_id: String,
    target_chain_id: String,
    source_asset: String,
    target_asset: String,
    amount: String,
    sender: String,
    recipient: String,
    source_lock_recipient: String,
    hashlock: String,
    source_lock_by_ms: String,
    source_expires_at_ms: String,
    target_expires_at_ms: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hop_expires_at_ms: Option<String>,
}

/// A context id that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transferContextId is not a Lockgate transfer context: {0}")]
pub struct ContextError(String);

fn field<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, ContextError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| ContextError(format!("{name}: {e}")))
}

impl TransferContext {
    fn wire(&self) -> Wire {
        Wire {
            transfer_id: self.transfer_id.clone(),
            source_chain_id: self.source_chain_id.get().to_string(),
            target_chain_id: self.target_chain_id.get().to_string(),
            source_asset: self.source_asset.as_str().to_string(),
            target_asset: self.target_asset.as_str().to_string(),
            amount: self.amount.to_string(),
            sender: self.sender.to_string(),
            recipient: self.recipient.to_string(),
            source_lock_recipient: self.source_lock_recipient.to_string(),
            hashlock: self.hashlock.to_string(),
            source_lock_by_ms: self.source_lock_by_ms.to_string(),
            source_expires_at_ms: self.source_expires_at_ms.to_string(),
            target_expires_at_ms: self.target_expires_at_ms.to_string(),
            hop_expires_at_ms: self.hop_expires_at_ms.map(|ms| ms.to_string()),
        }
    }

    /// The context as `transferContextId`.
    pub fn encode(&self) -> String {
        // The wire form holds strings only, so canonicalisation cannot fail.
        let value = serde_json::to_value(self.wire()).unwrap_or_default();
        B64.encode(canonicalize(&value).unwrap_or_default())
    }

    /// Reads a `transferContextId`. The id must be exactly the encoding of
    /// what it decodes to, so one context has one id.
    pub fn decode(id: &str) -> Result<Self, ContextError> {
        let bytes = B64
            .decode(id)
            .map_err(|e| ContextError(format!("base64url: {e}")))?;
        let wire: Wire =
            serde_json::from_slice(&bytes).map_err(|e| ContextError(format!("JSON: {e}")))?;
        let chain = |name: &str, text: &str| -> Result<ChainId, ContextError> {
            ChainId::new(field(name, text)?).map_err(|e| ContextError(format!("{name}: {e}")))
        };
        let context = TransferContext {
            transfer_id: wire.transfer_id.clone(),
            source_chain_id: chain("sourceChainId", &wire.source_chain_id)?,
            target_chain_id: chain("targetChainId", &wire.target_chain_id)?,
            source_asset: field("sourceAsset", &wire.source_asset)?,
            target_asset: field("targetAsset", &wire.target_asset)?,
            amount: field("amount", &wire.amount)?,
            sender: field("sender", &wire.sender)?,
            recipient: field("recipient", &wire.recipient)?,
            source_lock_recipient: field("sourceLockRecipient", &wire.source_lock_recipient)?,
            hashlock: field("hashlock", &wire.hashlock)?,
            source_lock_by_ms: field("sourceLockByMs", &wire.source_lock_by_ms)?,
            source_expires_at_ms: field("sourceExpiresAtMs", &wire.source_expires_at_ms)?,
            target_expires_at_ms: field("targetExpiresAtMs", &wire.target_expires_at_ms)?,
            hop_expires_at_ms: wire
                .hop_expires_at_ms
                .as_deref()
                .map(|text| field("hopExpiresAtMs", text))
                .transpose()?,
        };
        if context.transfer_id.is_empty() || context.transfer_id.len() > 64 {
            return Err(ContextError("transferId must be 1 to 64 characters".into()));
        }
        if context.encode() != id {
            return Err(ContextError(
                "not in canonical form (RFC 8785, base64url without padding)".into(),
            ));
        }
        Ok(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> TransferContext {
        TransferContext {
            transfer_id: "0b7d2c3e-0000-4000-8000-000000000001".into(),
            source_chain_id: ChainId::new(4201).unwrap(),
            target_chain_id: ChainId::new(4202).unwrap(),
            source_asset: "USD".parse().unwrap(),
            target_asset: "USD".parse().unwrap(),
            amount: "2500".parse().unwrap(),
            sender: Address::from_bytes([1; 20]),
            recipient: Address::from_bytes([2; 20]),
            source_lock_recipient: Address::from_bytes([3; 20]),
            hashlock: Hashlock::from_bytes([4; 32]),
            source_lock_by_ms: 1_000,
            source_expires_at_ms: 120_000,
            target_expires_at_ms: 90_000,
            hop_expires_at_ms: None,
        }
    }

    #[test]
    fn round_trips_and_only_the_canonical_form_is_accepted() {
        let c = context();
        let id = c.encode();
        assert_eq!(TransferContext::decode(&id).unwrap(), c);
        // The same JSON with its members in another order is not the id.
        let json = String::from_utf8(B64.decode(&id).unwrap()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let error = TransferContext::decode(&B64.encode(pretty)).unwrap_err();
        assert!(error.to_string().contains("canonical"), "{error}");
        assert!(TransferContext::decode("not base64!").is_err());
        let unknown = json.replacen('{', "{\"extra\":\"1\",", 1);
        assert!(TransferContext::decode(&B64.encode(unknown)).is_err());
        let routed = TransferContext {
            hop_expires_at_ms: Some(100_000),
            ..c
        };
        assert_eq!(TransferContext::decode(&routed.encode()).unwrap(), routed);
        assert_ne!(routed.encode(), id);
    }
}
