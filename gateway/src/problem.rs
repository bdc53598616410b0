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

/// The realm of every bearer challenge.
const REALM: &str = "lockgate";

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Stable identifier of the problem type: `urn:lockgate:problem:<slug>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:lockgate:problem:nonce-replay", format = "uri")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code; in a batch's per-transaction results (answered
    /// 200 as a whole), the status the transaction alone would have had.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// JSON pointer of the request field at fault (`/message/amount`), or
    /// for a path or query parameter `/` and its name; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub pointer: Option<String>,
    /// The ledger's reasons, for a refused transaction; absent otherwise.
    /// `code` is the problem's slug; the other members depend on it, all
    /// strings (integers in decimal) but `length`: `bad-signature`:
    /// `reason`; `wrong-chain`: `expectedChainId`, `actualChainId`;
    /// `nonce-replay`, `nonce-gap`: `expectedNonce`, `actualNonce`;
    /// `unknown-asset`, `asset-exists`: `asset`; `not-issuer`: `asset`,
    /// `issuer`; `insufficient-balance`: `asset`, `available`, `required`;
    /// `timelock-not-in-future`, `htlc-expired`, `htlc-not-yet-expired`:
    /// `expiresAtMs`, `blockTimestampMs`; `htlc-not-found`: `lockId`;
    /// `preimage-length`: `length` (an integer); `preimage-mismatch`:
    /// `hashlock`; `htlc-already-settled`: `lockId`, `settled` (`claimed` or
    /// `refunded`); `zero-amount`, `overflow`: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub rejection: Option<serde_json::Value>,
    /// The request's id (as in the `x-request-id` header); absent only in a
    /// batch's per-transaction results.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub request_id: Option<String>,
    #[serde(skip)]
    retry_after_s: Option<u32>,
    /// The `WWW-Authenticate` challenge of a 401 or 403 (RFC 6750 section 3).
    #[serde(skip)]
    challenge: Option<String>,
}

/// The title of each problem type that more than one part of the gateway
/// answers (RFC 9457 section 3.1.3: a type's title does not change from
/// occurrence to occurrence; what differs goes in `detail`). [`Problem::new`]
/// uses it over the title its caller gives, so a layer's 404 and a
/// handler's carry the same title.
pub fn fixed_title(slug: &str) -> Option<&'static str> {
    Some(match slug {
        "not-found" => "Not found",
        "method-not-allowed" => "Method not allowed",
        "bad-request" => "Bad request",
        "invalid-parameter" => "Invalid parameter",
        "payload-too-large" => "Payload too large",
        "unsupported-media-type" => "Unsupported media type",
        "invalid-body" | "unknown-field" | "missing-field" | "wrong-type" => "Invalid request body",
        "invalid-field" | "invalid-hex" => "Invalid field",
        "unauthorized" => "Unauthorized",
        "forbidden" => "Forbidden",
        "internal" => "Internal error",
        "record-answered" => "Record already answered",
        "record-not-disputed" => "Record not disputed",
        _ => return None,
    })
}

impl Problem {
    /// A problem of type `slug` (titled by [`fixed_title`] where it names
    /// one).
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:lockgate:problem:{slug}"),
            title: fixed_title(slug).unwrap_or(title).to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            pointer: None,
            rejection: None,
            request_id: None,
            retry_after_s: None,
            challenge: None,
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

    /// 401 for a bearer token that was sent and is not valid (malformed,
    /// expired, wrongly signed): challenge `error="invalid_token"`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut problem = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        );
        problem.challenge = Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""));
        problem
    }

    /// 401 for a request without a bearer token (no `Authorization` header,
    /// or another scheme): a challenge without an error code, as RFC 6750
    /// section 3.1 asks of a request that carries no credentials of the
    /// scheme.
    pub fn credentials_missing(detail: impl Into<String>) -> Self {
        let mut problem = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        );
        problem.challenge = Some(format!("Bearer realm=\"{REALM}\""));
        problem
    }

    /// 403 for a valid token without `scope`: challenge
    /// `error="insufficient_scope"` naming the scope (RFC 6750 section 3.1).
    pub fn insufficient_scope(scope: &str) -> Self {
        let mut problem = Self::forbidden(format!("this operation needs the scope {scope}"));
        problem.challenge = Some(format!(
            "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
        ));
        problem
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
        Self::new(
            status,
            slug,
            status.canonical_reason().unwrap_or("Error"),
            detail,
        )
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
        // RFC 9110 section 11.6.1: every 401 challenges; RFC 6750 section 3.
        let challenge = match (&self.challenge, status) {
            (Some(challenge), _) => HeaderValue::from_str(challenge).ok(),
            (None, StatusCode::UNAUTHORIZED) => {
                HeaderValue::from_str(&format!("Bearer realm=\"{REALM}\"")).ok()
            }
            (None, _) => None,
        };
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A type answered by a layer and by a handler has one title.
    #[test]
    fn a_problem_type_has_one_title_whoever_answers_it() {
        let pairs = [
            (
                Problem::for_status(StatusCode::NOT_FOUND, "no route"),
                Problem::not_found("no transfer"),
            ),
            (
                Problem::for_status(StatusCode::BAD_REQUEST, "bad path"),
                Problem::invalid_parameter("height", "not a number"),
            ),
            (
                Problem::for_status(StatusCode::PAYLOAD_TOO_LARGE, "limit"),
                Problem::payload_too_large(10),
            ),
            (
                Problem::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain"),
                Problem::unsupported_media_type(),
            ),
            (
                Problem::from(crate::dto::FieldError {
                    pointer: "/x".into(),
                    reason: "unknown field".into(),
                    fault: crate::dto::FieldFault::UnknownField,
                }),
                Problem::new(StatusCode::BAD_REQUEST, "unknown-field", "Other", "x"),
            ),
        ];
        for (layer, handler) in pairs {
            assert_eq!(layer.type_uri, handler.type_uri);
            assert_eq!(layer.title, handler.title, "{}", layer.type_uri);
        }
        assert_eq!(
            Problem::new(StatusCode::CONFLICT, "record-not-disputed", "No note", "d").title,
            "Record not disputed"
        );
    }
}
