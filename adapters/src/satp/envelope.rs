//! How a SATP message travels signed: as a flattened JWS JSON serialization
//! object (RFC 7515 section 7.2.2), itself JSON, sent as
//! `application/satp+json`:
//!
//! ```json
//! {"protected": "<base64url(JCS(header))>", "payload": "<base64url(JCS(message))>", "signature": "<base64url(R || S)>"}
//! ```
//!
//! with the header `{"alg":"ES256","kid":"<RFC 7638 thumbprint>","typ":"satp+json"}`.
//! The signing input is the compact form's, `protected "." payload`, so the
//! same bytes verify as a compact JWS. The draft says every message MUST be
//! signed with JWS and ES256 but not how the JWS travels; this is Lockgate's
//! choice (documented in `docs/satp.md`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::jws::{self, JwsError, KeySet};
use super::messages::Message;

/// The `typ` of a signed SATP message.
pub const TYP: &str = "satp+json";

/// A signed message on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// base64url of the canonical protected header.
    pub protected: String,
    /// base64url of the canonical message.
    pub payload: String,
    /// base64url of the 64-byte ES256 signature.
    pub signature: String,
}

/// Why an envelope cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The signature or header is not acceptable.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The header's `typ` is not `satp+json`.
    #[error("the JWS typ is not satp+json")]
    Typ,
    /// The payload is not a SATP message this implementation knows.
    #[error("not a SATP core message: {0}")]
    Message(String),
}

/// The protected-header parameter carrying the sender's W3C trace context
/// (a `traceparent` value of W3C Trace Context level 1), so a trace follows
/// the message; optional, and ignored by a receiver that does not trace.
pub const TRACEPARENT: &str = "traceparent";

/// Signs a message with the gateway's key.
pub fn seal(message: &Message, key: &SigningKey) -> Result<Envelope, JwsError> {
    seal_traced(message, key, None)
}

/// Signs a message, with the sender's trace context in the protected header.
pub fn seal_traced(
    message: &Message,
    key: &SigningKey,
    traceparent: Option<&str>,
) -> Result<Envelope, JwsError> {
    seal_value_traced(&message.to_json(), key, traceparent)
}

/// Signs any JSON message (the recovery messages travel the same way).
pub fn seal_value(message: &Value, key: &SigningKey) -> Result<Envelope, JwsError> {
    seal_value_traced(message, key, None)
}

/// [`seal_value`] with the sender's trace context in the protected header.
pub fn seal_value_traced(
    message: &Value,
    key: &SigningKey,
    traceparent: Option<&str>,
) -> Result<Envelope, JwsError> {
    let mut header = Map::new();
    header.insert("kid".into(), json!(jws::thumbprint(key.verifying_key())));
    header.insert("typ".into(), json!(TYP));
    if let Some(traceparent) = traceparent {
        header.insert(TRACEPARENT.into(), json!(traceparent));
    }
    let compact = jws::sign(message, &header, key)?;
    let mut parts = compact.split('.');
    let (Some(protected), Some(payload), Some(signature)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    Ok(Envelope {
        protected: protected.to_string(),
        payload: payload.to_string(),
        signature: signature.to_string(),
    })
}

/// The key of `keys` that the envelope's `kid` names (not yet verified:
/// open the envelope with it). `None` when the signer is not pinned there.
pub fn signer<'k>(envelope: &Envelope, keys: &'k KeySet) -> Option<&'k VerifyingKey> {
    keys.signer_of(&envelope.protected)
}

/// Verifies an envelope with the peer's pinned key and parses the message.
/// Returns the message and its JSON (for hashing).
pub fn open(envelope: &Envelope, key: &VerifyingKey) -> Result<(Message, Value), EnvelopeError> {
    let value = open_value(envelope, key)?;
    let message: Message =
        serde_json::from_value(value.clone()).map_err(|e| EnvelopeError::Message(e.to_string()))?;
    Ok((message, value))
}

/// Verifies an envelope with the signer's key and returns the JSON it signs.
pub fn open_value(envelope: &Envelope, key: &VerifyingKey) -> Result<Value, EnvelopeError> {
    let compact = format!(
        "{}.{}.{}",
        envelope.protected, envelope.payload, envelope.signature
    );
    let verified = jws::verify(&compact, key)?;
    if verified.header.get("typ") != Some(&json!(TYP)) {
        return Err(EnvelopeError::Typ);
    }
    serde_json::from_slice(&verified.payload).map_err(|e| EnvelopeError::Message(e.to_string()))
}

/// The `traceparent` protected-header parameter of an envelope, if any.
/// Not checked here: it is signed, but a caller that reads it before
/// [`open`] (to place a span, as Lockgate does) takes what the sender
/// claims, like an HTTP `traceparent` header.
pub fn traceparent(envelope: &Envelope) -> Option<String> {
    let bytes = B64.decode(&envelope.protected).ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    header.get(TRACEPARENT)?.as_str().map(str::to_string)
}

/// The message inside an envelope, without checking the signature (for
/// logs and error reports only).
pub fn peek(envelope: &Envelope) -> Option<Value> {
    let bytes = B64.decode(&envelope.payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}
