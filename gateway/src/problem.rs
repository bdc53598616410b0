//! Errors at the API edge as RFC 9457 problem details
//! (`application/problem+json`), and the one place where anything becomes an
//! HTTP status.
//!
//! Every problem has a stable `type` URI, `urn:lockgate:problem:<slug>`, that
//! clients can match on; `title` is fixed per type, `detail` explains this
//! occurrence. Extensions: `requestId` (also in the `x-request-id` header),
//! `pointer` (a JSON pointer to the offending field, for field errors), and
//! `rejection` (the ledger's rejection details, for refused transactions).
//! 500s say nothing about the cause; the cause is logged with the request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ledger_core::Rejection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Stable identifier of the problem type: `urn:lockgate:problem:<slug>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:lockgate:problem:nonce-replay")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// JSON pointer of the request field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The ledger's reasons, for a refused transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub rejection: Option<serde_json::Value>,
    /// The request's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip)]
    retry_after_s: Option<u32>,
}

impl Problem {
    /// A problem of type `slug`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:lockgate:problem:{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            pointer: None,
            rejection: None,
            request_id: None,
            retry_after_s: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }

    /// Asks the client to retry after `seconds` (503s).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// 400: the body is not JSON.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            detail,
        )
    }

    /// 400: the JSON does not have the expected shape: `unknown-field`,
    /// `missing-field`, `wrong-type`, or `invalid-body` for anything else.
    pub fn invalid_body(error: &serde_json::Error) -> Self {
        let fault = crate::dto::FieldFault::of_serde(error);
        let slug = match fault {
            crate::dto::FieldFault::InvalidValue | crate::dto::FieldFault::InvalidHex => {
                "invalid-body"
            }
            other => other.slug(),
        };
        Self::new(
            StatusCode::BAD_REQUEST,
            slug,
            "Invalid request body",
            error.to_string(),
        )
    }

    /// 400: one field has a bad value.
    pub fn invalid_field(pointer: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-field",
            "Invalid field",
            detail,
        )
        .with_pointer(pointer)
    }

    /// 400: a path or query parameter has a bad value.
    pub fn invalid_parameter(name: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid parameter",
            detail,
        )
        .with_pointer(format!("/{name}"))
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 413.
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("the request body exceeds {limit_bytes} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json",
        )
    }

    /// 429 with Retry-After (seconds).
    pub fn too_many_requests(slug: &str, detail: impl Into<String>, retry_after_s: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            slug,
            "Too many requests",
            detail,
        )
        .retry_after(u32::try_from(retry_after_s).unwrap_or(u32::MAX))
    }

    /// 503 with Retry-After.
    pub fn unavailable(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            slug,
            "Service unavailable",
            detail,
        )
        .retry_after(1)
    }

    /// 500; the detail never carries the cause.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the gateway failed; the request id identifies the cause in its logs",
        )
    }

    /// 422: the ledger refused the transaction. The slug names the rule.
    pub fn rejected(rejection: &Rejection) -> Self {
        let (slug, title) = rejection_slug(rejection);
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            slug,
            title,
            rejection.to_string(),
        );
        problem.rejection = Some(rejection_json(rejection));
        problem
    }

    /// The problem for an error response some layer produced without a
    /// body of ours (405 from the router, a rejected path parameter, ...).
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> Self {
        let slug = match status {
            StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            // axum's own 400s come from path and query extraction.
            StatusCode::BAD_REQUEST => "invalid-parameter",
            s if s.is_server_error() => return Self::internal(),
            _ => "bad-request",
        };
        let title = status.canonical_reason().unwrap_or("Error");
        Self::new(status, slug, title, detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The slug of the problem type (`urn:lockgate:problem:<slug>`).
    pub fn slug(&self) -> &str {
        self.type_uri
            .strip_prefix("urn:lockgate:problem:")
            .unwrap_or(&self.type_uri)
    }
}

/// The problem slug and title of each ledger rejection.
pub fn rejection_slug(rejection: &Rejection) -> (&'static str, &'static str) {
    match rejection {
        Rejection::BadSignature(_) => ("bad-signature", "Bad signature"),
        Rejection::WrongChain { .. } => ("wrong-chain", "Wrong chain"),
        Rejection::NonceReplay { .. } => ("nonce-replay", "Nonce already used"),
        Rejection::NonceGap { .. } => ("nonce-gap", "Nonce ahead of the account"),
        Rejection::UnknownAsset { .. } => ("unknown-asset", "Unknown asset"),
        Rejection::AssetExists { .. } => ("asset-exists", "Asset already exists"),
        Rejection::NotIssuer { .. } => ("not-issuer", "Not the issuer"),
        Rejection::InsufficientBalance { .. } => ("insufficient-balance", "Insufficient balance"),
        Rejection::ZeroAmount => ("zero-amount", "Zero amount"),
        Rejection::Overflow => ("overflow", "Amount overflow"),
        Rejection::TimelockNotInFuture { .. } => {
            ("timelock-not-in-future", "Timelock not in the future")
        }
        Rejection::HtlcNotFound { .. } => ("htlc-not-found", "HTLC not found"),
        Rejection::PreimageLength { .. } => ("preimage-length", "Preimage is not 32 bytes"),
        Rejection::PreimageMismatch { .. } => ("preimage-mismatch", "Preimage does not match"),
        Rejection::Expired { .. } => ("htlc-expired", "HTLC expired"),
        Rejection::NotYetExpired { .. } => ("htlc-not-yet-expired", "HTLC not yet expired"),
        Rejection::AlreadySettled { .. } => ("htlc-already-settled", "HTLC already settled"),
    }
}

/// The rejection as JSON: `code` (the slug) and its fields.
pub fn rejection_json(rejection: &Rejection) -> serde_json::Value {
    use serde_json::json;
    let (code, _) = rejection_slug(rejection);
    let fields = match rejection {
        Rejection::BadSignature(error) => json!({ "reason": error.to_string() }),
        Rejection::WrongChain { expected, actual } => {
            json!({ "expectedChainId": expected.to_string(), "actualChainId": actual.to_string() })
        }
        Rejection::NonceReplay { expected, actual } | Rejection::NonceGap { expected, actual } => {
            json!({ "expectedNonce": expected.to_string(), "actualNonce": actual.to_string() })
        }
        Rejection::UnknownAsset { asset } | Rejection::AssetExists { asset } => {
            json!({ "asset": asset.as_str() })
        }
        Rejection::NotIssuer { asset, issuer } => {
            json!({ "asset": asset.as_str(), "issuer": issuer.to_string() })
        }
        Rejection::InsufficientBalance {
            asset,
            available,
            required,
        } => {
            json!({ "asset": asset.as_str(), "available": available.to_string(), "required": required.to_string() })
        }
        Rejection::ZeroAmount | Rejection::Overflow => json!({}),
        Rejection::TimelockNotInFuture {
            expires_at_ms,
            block_timestamp_ms,
        }
        | Rejection::Expired {
            expires_at_ms,
            block_timestamp_ms,
        }
        | Rejection::NotYetExpired {
            expires_at_ms,
            block_timestamp_ms,
        } => {
            json!({ "expiresAtMs": expires_at_ms.to_string(), "blockTimestampMs": block_timestamp_ms.to_string() })
        }
        Rejection::HtlcNotFound { lock_id } => json!({ "lockId": lock_id.to_string() }),
        Rejection::PreimageLength { length } => json!({ "length": length }),
        Rejection::PreimageMismatch { hashlock } => json!({ "hashlock": hashlock.to_string() }),
        Rejection::AlreadySettled { lock_id, settled } => {
            json!({ "lockId": lock_id.to_string(), "settled": format!("{settled:?}").to_lowercase() })
        }
    };
    let mut object = serde_json::Map::new();
    object.insert("code".into(), json!(code));
    if let serde_json::Value::Object(fields) = fields {
        object.extend(fields);
    }
    serde_json::Value::Object(object)
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after_s;
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 section 11.6.1 / RFC 6750 section 3.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lockgate\", error=\"invalid_token\""),
            );
        }
        response.extensions_mut().insert(ProblemMarker);
        response
    }
}

/// Marks responses that carry a problem, so the request-id middleware can
/// add the id to the body.
#[derive(Clone, Copy, Debug)]
pub struct ProblemMarker;

impl From<crate::dto::FieldError> for Problem {
    fn from(error: crate::dto::FieldError) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            error.fault.slug(),
            "Invalid field",
            error.reason,
        )
        .with_pointer(error.pointer)
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(error: crate::store::StoreError) -> Self {
        match &error {
            error if error.is_unavailable() => {
                tracing::warn!(%error, "database unavailable");
                Problem::unavailable(
                    "database-unavailable",
                    "the database is not reachable; retry later",
                )
            }
            _ => {
                tracing::error!(%error, "store failure");
                Problem::internal()
            }
        }
    }
}
