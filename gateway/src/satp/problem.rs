//! SATP errors as signed problem details (RFC 9457, draft-ietf-satp-core-17
//! section 11.3): `application/problem+json` with the draft's members
//! (`messageType` = `urn:ietf:params:satp:core:msgtype:error-msg`, `type` =
//! `urn:ietf:params:satp:core:error:err_X.Y.Z`, `status` equal to the HTTP
//! status, `title`, `detail`, `version`, `sessionId`, `transferContextId`,
//! `hashPrevMessage` = the hash of the offending message, `timestamp`) plus
//! one member of Lockgate's, `jws`: a detached JWS (RFC 7515 appendix F,
//! `header..signature`, ES256, `kid` = the signer's thumbprint, `typ` =
//! `satp-error+json`) over the RFC 8785 canonical form of the object without
//! `jws`. A receiver removes `jws`, canonicalises the rest and verifies it
//! with the sender's pinned key.

use adapters::satp::jws::{self, KeySet};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Identity;

/// The `typ` of a signed error.
pub const TYP: &str = "satp-error+json";

/// The signed SATP error document, as published in the OpenAPI document.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SatpError {
    /// `urn:ietf:params:satp:core:msgtype:error-msg`.
    pub message_type: String,
    /// `urn:ietf:params:satp:core:error:err_X.Y.Z`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// The code's description from the draft's table.
    pub title: String,
    /// What went wrong this time.
    pub detail: String,
    /// `"1.0"`.
    pub version: String,
    /// The session (empty when unknown).
    pub session_id: String,
    /// The transfer context (empty when unknown).
    pub transfer_context_id: String,
    /// SHA-256 (hex) of the canonical form of the offending message.
    pub hash_prev_message: String,
    /// When, RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Detached JWS (`header..signature`, ES256, `typ` `satp-error+json`) over
    /// the RFC 8785 form of this object without `jws`.
    pub jws: String,
}

/// Marks a response as a signed SATP error, which no later layer may change.
#[derive(Clone, Copy, Debug)]
pub struct Signed;

/// An error to send, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SatpProblem {
    /// The HTTP status (and `status`).
    pub status: u16,
    /// The code, `err_X.Y.Z`.
    pub code: String,
    /// The title.
    pub title: String,
    /// What went wrong this time.
    pub detail: String,
    /// The session, where known.
    pub session_id: String,
    /// The transfer context, where known.
    pub transfer_context_id: String,
    /// The hash of the offending message, where it could be computed.
    pub hash_prev_message: String,
}

impl SatpProblem {
    /// An error with its code's status and title from the draft's table.
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        let (status, title) = describe(code);
        Self {
            status,
            code: code.to_string(),
            title: title.to_string(),
            detail: detail.into(),
            session_id: String::new(),
            transfer_context_id: String::new(),
            hash_prev_message: String::new(),
        }
    }

    /// Names the session and the offending message.
    pub fn about(mut self, session_id: &str, context_id: &str, hash: &str) -> Self {
        self.session_id = session_id.to_string();
        self.transfer_context_id = context_id.to_string();
        self.hash_prev_message = hash.to_string();
        self
    }

    /// The `type` URN.
    pub fn type_urn(&self) -> String {
        format!("urn:ietf:params:satp:core:error:{}", self.code)
    }

    /// The signed document.
    pub fn signed(&self, identity: &Identity, now_ms: u64) -> Value {
        let mut body = Map::new();
        body.insert(
            "messageType".into(),
            json!("urn:ietf:params:satp:core:msgtype:error-msg"),
        );
        body.insert("type".into(), json!(self.type_urn()));
        body.insert("status".into(), json!(self.status));
        body.insert("title".into(), json!(self.title));
        body.insert("detail".into(), json!(self.detail));
        body.insert("version".into(), json!(adapters::satp::messages::VERSION));
        body.insert("sessionId".into(), json!(self.session_id));
        body.insert("transferContextId".into(), json!(self.transfer_context_id));
        body.insert("hashPrevMessage".into(), json!(self.hash_prev_message));
        body.insert("timestamp".into(), json!(super::rfc3339_ms(now_ms)));
        let mut header = Map::new();
        header.insert("kid".into(), json!(identity.kid));
        header.insert("typ".into(), json!(TYP));
        // The body holds strings and a small integer only: signing cannot fail.
        let signature = jws::sign_detached(&Value::Object(body.clone()), &header, &identity.key)
            .unwrap_or_default();
        body.insert("jws".into(), json!(signature));
        Value::Object(body)
    }

    /// The signed document as an HTTP response.
    pub fn response(&self, identity: &Identity, now_ms: u64) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, axum::Json(self.signed(identity, now_ms))).into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        response.extensions_mut().insert(Signed);
        response
    }
}

/// Why a received error document cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the peer's error document is not validly signed: {0}")]
pub struct UnsignedProblem(String);

/// A verified error document's members that matter to the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `type`.
    pub type_uri: String,
    /// `detail`.
    pub detail: String,
    /// `status`.
    pub status: u64,
    /// `sessionId`.
    pub session_id: String,
}

/// Verifies a received error document with the sender's pinned key that
/// its `kid` names.
pub fn verify(document: &Value, keys: &KeySet) -> Result<Verified, UnsignedProblem> {
    let Value::Object(body) = document else {
        return Err(UnsignedProblem("not a JSON object".into()));
    };
    let mut body = body.clone();
    let Some(Value::String(signature)) = body.remove("jws") else {
        return Err(UnsignedProblem("no jws member".into()));
    };
    let key = keys
        .signer_of(&signature)
        .ok_or_else(|| UnsignedProblem("signed by a key that is not pinned".into()))?;
    let header = jws::verify_detached(&signature, &Value::Object(body.clone()), key)
        .map_err(|e| UnsignedProblem(e.to_string()))?;
    if header.get("typ") != Some(&json!(TYP)) {
        return Err(UnsignedProblem("typ is not satp-error+json".into()));
    }
    let text = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(Verified {
        type_uri: text("type"),
        detail: text("detail"),
        status: body
            .get("status")
            .and_then(Value::as_u64)
            .unwrap_or_default(),
        session_id: text("sessionId"),
    })
}

/// Status and title of a code (draft section 11.4, table 1; Lockgate's
/// own codes for what the table lacks are in `docs/satp.md`).
fn describe(code: &str) -> (u16, &'static str) {
    match code {
        "err_0.1.1" => (400, "Invalid message type"),
        "err_0.1.2" => (403, "Insufficient permissions"),
        "err_0.1.3" => (422, "Bad signature"),
        "err_1.1.1" => (422, "Invalid transferContextId"),
        "err_1.1.2" => (422, "Invalid sessionId"),
        "err_1.1.3" => (422, "Incorrect transferInitClaimFormat"),
        "err_1.1.11" => (422, "Invalid digitalAssetId"),
        "err_1.1.12" => (422, "Invalid assetProfileId"),
        "err_1.1.17" => (422, "Invalid senderGatewaySignaturePublicKey"),
        "err_1.1.18" => (422, "Invalid receiverGatewaySignaturePublicKey"),
        "err_1.1.32" => (415, "Unsupported networkLockType"),
        "err_1.1.33" => (415, "Unsupported networkLockExpirationTime"),
        "err_2.2.3" => (415, "Unsupported lockAssertionClaimFormat"),
        "err_2.2.7" => (404, "Asset not found"),
        "err_2.2.8" => (409, "Asset already locked"),
        "err_2.2.9" => (410, "Asset lock expired"),
        "err_3.5.4" => (415, "Unsupported burnAssertionClaimFormat"),
        code if code.starts_with("err_") => (404, "Message does not match the session"),
        _ => (400, "Error"),
    }
}
