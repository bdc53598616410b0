//! API authentication and authorisation: JWT bearer tokens (RFC 7519) signed
//! with HS256, the one algorithm accepted (pinned: a token naming any other
//! `alg`, `none` included, is refused before its signature is looked at).
//! `iss`, `aud` and `exp` are required and checked; `nbf` is checked when
//! present; 30 seconds of clock skew are allowed.
//!
//! Claims the gateway reads:
//! - `sub`: who is calling (logged);
//! - `tenant`: the participant the caller acts for; idempotency keys are
//!   scoped to it;
//! - `scope`: space-separated scopes (RFC 8693 style), see [`Scope`];
//! - `accounts`: the ledger addresses the tenant owns. A caller without the
//!   `ledger:read-all` scope sees only accounts, transactions and HTLCs that
//!   involve one of them (anything else answers 404, so existence does not
//!   leak); block headers are public to every reader.

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ledger_core::Address;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read ledger data involving the tenant's accounts, and block headers.
    LedgerRead,
    /// Read all ledger data.
    LedgerReadAll,
    /// Submit transactions (except RegisterAsset).
    LedgerSubmit,
    /// Submit RegisterAsset transactions.
    LedgerRegisterAsset,
    /// Stream the chain export.
    LedgerExport,
    /// Read the tenant's transfers.
    TransfersRead,
    /// Create transfers.
    TransfersWrite,
    /// Read the settlement records and agreements of the tenant's operators.
    SettlementRead,
    /// Submit, accept and dispute usage records for the tenant's operators.
    SettlementWrite,
    /// Manage the operator registry and agreements.
    SettlementAdmin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 10] = [
        Scope::LedgerRead,
        Scope::LedgerReadAll,
        Scope::LedgerSubmit,
        Scope::LedgerRegisterAsset,
        Scope::LedgerExport,
        Scope::TransfersRead,
        Scope::TransfersWrite,
        Scope::SettlementRead,
        Scope::SettlementWrite,
        Scope::SettlementAdmin,
    ];

    /// The scope's name in tokens.
    pub fn name(self) -> &'static str {
        match self {
            Scope::LedgerRead => "ledger:read",
            Scope::LedgerReadAll => "ledger:read-all",
            Scope::LedgerSubmit => "ledger:submit",
            Scope::LedgerRegisterAsset => "ledger:register-asset",
            Scope::LedgerExport => "ledger:export",
            Scope::TransfersRead => "transfers:read",
            Scope::TransfersWrite => "transfers:write",
            Scope::SettlementRead => "settlement:read",
            Scope::SettlementWrite => "settlement:write",
            Scope::SettlementAdmin => "settlement:admin",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.name() == name)
    }
}

/// The claims of a Lockgate API token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at (optional).
    #[serde(default)]
    pub iat: u64,
    /// Tenant.
    pub tenant: String,
    /// Space-separated scopes (none if absent).
    #[serde(default)]
    pub scope: String,
    /// Addresses the tenant owns.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Subject.
    pub subject: String,
    /// Tenant.
    pub tenant: String,
    /// Scopes granted.
    pub scopes: BTreeSet<Scope>,
    /// Addresses owned.
    pub accounts: BTreeSet<Address>,
}

impl Caller {
    /// 403 unless the caller has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(Problem::insufficient_scope(scope.name()))
        }
    }

    /// True when the caller may read data involving any of `parties`.
    pub fn may_see(&self, parties: &[Address]) -> bool {
        self.scopes.contains(&Scope::LedgerReadAll)
            || parties.iter().any(|p| self.accounts.contains(p))
    }
}

/// Verifies and mints tokens.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for HS256 tokens with this secret, issuer and audience.
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        Self {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
        }
    }

    /// Mints a token (for `lockgate token` and tests).
    pub fn mint(
        &self,
        subject: &str,
        tenant: &str,
        scopes: &[Scope],
        accounts: &[Address],
        now_s: u64,
        ttl_s: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.to_string(),
            exp: now_s + ttl_s,
            iat: now_s,
            tenant: tenant.to_string(),
            scope: scopes
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(" "),
            accounts: accounts.iter().map(ToString::to_string).collect(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Checks a bearer token.
    pub fn verify(&self, token: &str) -> Result<Caller, Problem> {
        // Refuse any other algorithm before the library sees the token.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Problem::unauthorized("the bearer token is not a well-formed JWT"))?;
        if header.alg != Algorithm::HS256 {
            return Err(Problem::unauthorized(
                "the token's algorithm is not accepted",
            ));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let reason = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                    ErrorKind::InvalidAudience => "the token's audience is not this gateway",
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is not valid",
                };
                Problem::unauthorized(reason)
            })?;
        let claims = data.claims;
        let mut accounts = BTreeSet::new();
        for account in &claims.accounts {
            let address = account.parse().map_err(|_| {
                Problem::unauthorized("the token's accounts claim holds a bad address")
            })?;
            accounts.insert(address);
        }
        Ok(Caller {
            subject: claims.sub,
            tenant: claims.tenant,
            scopes: claims
                .scope
                .split_whitespace()
                .filter_map(Scope::from_name)
                .collect(),
            accounts,
        })
    }
}

/// Anything that holds the gateway's authenticator.
pub trait HasAuthenticator {
    /// The authenticator.
    fn authenticator(&self) -> &Authenticator;
}

impl<S> FromRequestParts<S> for Caller
where
    S: HasAuthenticator + Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Verified already by the rate limit (`crate::limits::rate_limit`).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        state.authenticator().verify(bearer_token(&parts.headers)?)
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, RFC 9110 section 11.1), or the 401 that says what is
/// wrong with the header.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, Problem> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            Problem::credentials_missing("send an Authorization: Bearer <token> header")
        })?;
    let text = value
        .to_str()
        .map_err(|_| Problem::unauthorized("the Authorization header is not ASCII"))?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(Problem::credentials_missing(
            "the Authorization scheme must be Bearer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(&[7; 32], "iss", "aud")
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_minted_token_verifies_with_its_scopes() {
        let token = auth()
            .mint("me", "t1", &[Scope::LedgerRead], &[], now(), 60)
            .unwrap();
        let caller = auth().verify(&token).unwrap();
        assert_eq!(caller.tenant, "t1");
        assert!(caller.require(Scope::LedgerRead).is_ok());
        assert_eq!(caller.require(Scope::LedgerSubmit).unwrap_err().status, 403);
    }

    #[test]
    fn bad_tokens_are_refused() {
        let a = auth();
        let expired = a
            .mint("me", "t", &[Scope::LedgerRead], &[], now() - 3600, 60)
            .unwrap();
        let other_issuer = Authenticator::new(&[7; 32], "other", "aud")
            .mint("me", "t", &[], &[], now(), 60)
            .unwrap();
        let other_audience = Authenticator::new(&[7; 32], "iss", "other")
            .mint("me", "t", &[], &[], now(), 60)
            .unwrap();
        let other_key = Authenticator::new(&[8; 32], "iss", "aud")
            .mint("me", "t", &[], &[], now(), 60)
            .unwrap();
        for token in [
            expired,
            other_issuer,
            other_audience,
            other_key,
            "garbage".to_string(),
        ] {
            assert_eq!(a.verify(&token).unwrap_err().status, 401, "{token}");
        }
    }
}
