//! JSON Web Signatures (RFC 7515) with ES256 (RFC 7518 section 3.4: ECDSA
//! on P-256 with SHA-256, the signature as the 64 bytes `R || S`), the
//! algorithm draft-ietf-satp-core makes mandatory to implement.
//!
//! - The protected header is `{"alg":"ES256", ...}` in RFC 8785 canonical
//!   form; the algorithm is pinned: a JWS naming any other `alg` (including
//!   `none`) is refused before its signature is looked at, and so is one
//!   with a `crit` header (no extensions are understood).
//! - The payload is the RFC 8785 canonical form of the JSON being signed,
//!   so signer and verifier agree on its bytes whatever whitespace or member
//!   order a transport introduced.
//! - Compact serialization `BASE64URL(header) "." BASE64URL(payload) "."
//!   BASE64URL(signature)`, without padding; the detached form (RFC 7515
//!   appendix F) leaves the middle part empty and the verifier supplies the
//!   payload.
//! - Keys: pinned peer keys are JWKs (RFC 7517, `kty` `EC`, `crv` `P-256`);
//!   a key's `kid` is its RFC 7638 thumbprint. A [`KeySet`] holds the keys
//!   one signer may have signed with (its current key and the previous ones
//!   a verifier still accepts after a rotation); [`KeySet::signer_of`] picks
//!   the one the JWS header's `kid` names, never trying the others.
//!
//! Signing uses RFC 6979 deterministic nonces, so test vectors reproduce.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use super::jcs::{JcsError, canonicalize};

/// Why a JWS does not verify or cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts separated by dots.
    #[error("not a JWS in compact serialization")]
    Malformed,
    /// The protected header is not a JSON object.
    #[error("the JWS header is not a JSON object")]
    Header,
    /// The header names another algorithm than ES256.
    #[error("JWS algorithm {0:?} is not accepted; only ES256 is")]
    Algorithm(String),
    /// The header asks for extensions (`crit`) this implementation does not know.
    #[error("JWS critical header extensions are not supported")]
    Critical,
    /// The signature does not verify with the key.
    #[error("the JWS signature does not verify")]
    Signature,
    /// A detached JWS carried a payload, or an attached one did not.
    #[error("the JWS payload is {0}")]
    Payload(&'static str),
    /// The value to sign cannot be canonicalised.
    #[error(transparent)]
    Canonical(#[from] JcsError),
    /// A JWK is not a P-256 public key.
    #[error("not a P-256 JWK: {0}")]
    Key(String),
}

fn header_bytes(extra: &Map<String, Value>) -> Result<Vec<u8>, JwsError> {
    let mut header = extra.clone();
    header.insert("alg".into(), json!("ES256"));
    Ok(canonicalize(&Value::Object(header))?)
}

fn sign_input(key: &SigningKey, header_b64: &str, payload_b64: &str) -> String {
    let input = format!("{header_b64}.{payload_b64}");
    let signature: Signature = key.sign(input.as_bytes());
    B64.encode(signature.to_bytes())
}

/// Signs the canonical form of `payload`; `extra` adds header fields
/// (`kid`, `typ`, ...). Returns the compact serialization.
pub fn sign(
    payload: &Value,
    extra: &Map<String, Value>,
    key: &SigningKey,
) -> Result<String, JwsError> {
    let header_b64 = B64.encode(header_bytes(extra)?);
    let payload_b64 = B64.encode(canonicalize(payload)?);
    let signature = sign_input(key, &header_b64, &payload_b64);
    Ok(format!("{header_b64}.{payload_b64}.{signature}"))
}

/// Signs the canonical form of `payload` as a detached JWS (`header..signature`).
pub fn sign_detached(
    payload: &Value,
    extra: &Map<String, Value>,
    key: &SigningKey,
) -> Result<String, JwsError> {
    let header_b64 = B64.encode(header_bytes(extra)?);
    let payload_b64 = B64.encode(canonicalize(payload)?);
    let signature = sign_input(key, &header_b64, &payload_b64);
    Ok(format!("{header_b64}..{signature}"))
}

/// The parts of a verified JWS.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload bytes (the canonical JSON that was signed).
    pub payload: Vec<u8>,
}

fn split(jws: &str) -> Result<[&str; 3], JwsError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    Ok([h, p, s])
}

fn check(
    header_b64: &str,
    payload_b64: &str,
    signature_b64: &str,
    key: &VerifyingKey,
) -> Result<Map<String, Value>, JwsError> {
    let header_bytes = B64.decode(header_b64).map_err(|_| JwsError::Malformed)?;
    let header: Value = serde_json::from_slice(&header_bytes).map_err(|_| JwsError::Header)?;
    let Value::Object(header) = header else {
        return Err(JwsError::Header);
    };
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "ES256" => {}
        Some(Value::String(alg)) => return Err(JwsError::Algorithm(alg.clone())),
        _ => return Err(JwsError::Algorithm(String::new())),
    }
    if header.contains_key("crit") {
        return Err(JwsError::Critical);
    }
    let signature_bytes = B64.decode(signature_b64).map_err(|_| JwsError::Malformed)?;
    let signature = Signature::from_slice(&signature_bytes).map_err(|_| JwsError::Signature)?;
    key.verify(format!("{header_b64}.{payload_b64}").as_bytes(), &signature)
        .map_err(|_| JwsError::Signature)?;
    Ok(header)
}

/// Verifies a compact JWS with `key`.
pub fn verify(jws: &str, key: &VerifyingKey) -> Result<Verified, JwsError> {
    let [h, p, s] = split(jws)?;
    if p.is_empty() {
        return Err(JwsError::Payload("missing"));
    }
    let header = check(h, p, s, key)?;
    let payload = B64.decode(p).map_err(|_| JwsError::Malformed)?;
    Ok(Verified { header, payload })
}

/// Verifies a detached JWS over the canonical form of `payload` with `key`.
pub fn verify_detached(
    jws: &str,
    payload: &Value,
    key: &VerifyingKey,
) -> Result<Map<String, Value>, JwsError> {
    let [h, p, s] = split(jws)?;
    if !p.is_empty() {
        return Err(JwsError::Payload("present in a detached signature"));
    }
    let payload_b64 = B64.encode(canonicalize(payload)?);
    check(h, &payload_b64, s, key)
}

/// Reads a public JWK (`{"kty":"EC","crv":"P-256","x":…,"y":…}`).
pub fn key_from_jwk(jwk: &str) -> Result<VerifyingKey, JwsError> {
    let public = p256::PublicKey::from_jwk_str(jwk).map_err(|e| JwsError::Key(e.to_string()))?;
    Ok(VerifyingKey::from(public))
}

/// The public JWK of a key, members in canonical order.
pub fn jwk(key: &VerifyingKey) -> Value {
    let point = key.to_encoded_point(false);
    // An uncompressed point always has both coordinates.
    let x = point.x().map(|x| B64.encode(x)).unwrap_or_default();
    let y = point.y().map(|y| B64.encode(y)).unwrap_or_default();
    json!({"crv": "P-256", "kty": "EC", "x": x, "y": y})
}

/// The RFC 7638 thumbprint of a key (SHA-256 of its required JWK members in
/// canonical form, base64url): the `kid` Lockgate puts in its headers.
pub fn thumbprint(key: &VerifyingKey) -> String {
    // The JWK holds only strings, so canonicalisation cannot fail.
    let bytes = canonicalize(&jwk(key)).unwrap_or_default();
    B64.encode(sha2::Sha256::digest(bytes))
}

/// The `kid` of a JWS's protected header, not verified (a compact or
/// detached JWS, or the base64url header alone): which key to check it with.
pub fn header_kid(jws: &str) -> Option<String> {
    let header_b64 = jws.split('.').next()?;
    let bytes = B64.decode(header_b64).ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("kid")?.as_str().map(str::to_string)
}

/// The public keys one signer may have signed with, each known by its RFC
/// 7638 thumbprint: its current key first, then the previous keys a
/// verifier still accepts after a rotation (signatures made before it, and
/// messages sent during the overlap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    /// `(kid, key)`, the current key first; no two with the same kid.
    keys: Vec<(String, VerifyingKey)>,
}

impl KeySet {
    /// A set of one key, the current one.
    pub fn new(current: VerifyingKey) -> Self {
        Self {
            keys: vec![(thumbprint(&current), current)],
        }
    }

    /// Adds a previous key (a key already in the set is not added twice).
    pub fn with_previous(mut self, key: VerifyingKey) -> Self {
        let kid = thumbprint(&key);
        if self.get(&kid).is_none() {
            self.keys.push((kid, key));
        }
        self
    }

    /// The current key.
    pub fn current(&self) -> &VerifyingKey {
        // `new` puts one key in and nothing takes keys out.
        &self.keys[0].1
    }

    /// The current key's thumbprint.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// The key whose thumbprint is `kid`, current or previous.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    /// True when `key` is in the set.
    pub fn contains(&self, key: &VerifyingKey) -> bool {
        self.keys.iter().any(|(_, k)| k == key)
    }

    /// The previous keys, in the order given.
    pub fn previous(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter().skip(1).map(|(_, key)| key)
    }

    /// The key that the `kid` of `jws`'s header names, if it is in the set.
    pub fn signer_of(&self, jws: &str) -> Option<&VerifyingKey> {
        self.get(&header_kid(jws)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        let secret = sha2::Sha256::digest([seed]);
        SigningKey::from_slice(&secret).unwrap()
    }

    #[test]
    fn sign_verify_and_tamper() {
        let signer = key(1);
        let payload = json!({"b": 1, "a": "x"});
        let mut extra = Map::new();
        extra.insert("kid".into(), json!(thumbprint(signer.verifying_key())));
        let jws = sign(&payload, &extra, &signer).unwrap();
        let verified = verify(&jws, signer.verifying_key()).unwrap();
        assert_eq!(verified.payload, br#"{"a":"x","b":1}"#);
        assert_eq!(verified.header["alg"], "ES256");
        assert_eq!(
            sign(&payload, &extra, &signer).unwrap(),
            jws,
            "RFC 6979: deterministic"
        );
        assert_eq!(
            verify(&jws, key(2).verifying_key()),
            Err(JwsError::Signature)
        );
        let [h, _, s] = split(&jws).unwrap();
        let other = B64.encode(br#"{"a":"y","b":1}"#);
        assert_eq!(
            verify(&format!("{h}.{other}.{s}"), signer.verifying_key()),
            Err(JwsError::Signature)
        );
    }

    #[test]
    fn detached_signatures_cover_the_canonical_payload() {
        let signer = key(3);
        let payload = json!({"x": [1, 2], "y": "z"});
        let jws = sign_detached(&payload, &Map::new(), &signer).unwrap();
        assert!(jws.contains(".."));
        // Member order does not matter; content does.
        verify_detached(
            &jws,
            &json!({"y": "z", "x": [1, 2]}),
            signer.verifying_key(),
        )
        .unwrap();
        assert_eq!(
            verify_detached(
                &jws,
                &json!({"y": "z", "x": [2, 1]}),
                signer.verifying_key()
            ),
            Err(JwsError::Signature)
        );
        assert_eq!(
            verify(&jws, signer.verifying_key()),
            Err(JwsError::Payload("missing"))
        );
    }

    #[test]
    fn other_algorithms_and_critical_headers_are_refused() {
        let signer = key(4);
        let payload_b64 = B64.encode(b"{}");
        for (header, error) in [
            (r#"{"alg":"none"}"#, JwsError::Algorithm("none".into())),
            (r#"{"alg":"HS256"}"#, JwsError::Algorithm("HS256".into())),
            (r#"{"alg":"ES256","crit":["x"],"x":1}"#, JwsError::Critical),
            (r#"{}"#, JwsError::Algorithm(String::new())),
        ] {
            let header_b64 = B64.encode(header);
            let signature = sign_input(&signer, &header_b64, &payload_b64);
            assert_eq!(
                verify(
                    &format!("{header_b64}.{payload_b64}.{signature}"),
                    signer.verifying_key()
                ),
                Err(error)
            );
        }
        assert_eq!(
            verify("a.b", signer.verifying_key()),
            Err(JwsError::Malformed)
        );
    }

    #[test]
    fn jwk_round_trip() {
        let signer = key(5);
        let jwk_text = jwk(signer.verifying_key()).to_string();
        assert_eq!(&key_from_jwk(&jwk_text).unwrap(), signer.verifying_key());
        assert!(key_from_jwk(r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#).is_err());
    }

    #[test]
    fn a_key_set_picks_the_key_the_kid_names() {
        let (old, new, stranger) = (key(6), key(7), key(8));
        let set = KeySet::new(*new.verifying_key()).with_previous(*old.verifying_key());
        assert_eq!(set.current(), new.verifying_key());
        assert_eq!(set.current_kid(), thumbprint(new.verifying_key()));
        assert_eq!(set.previous().count(), 1);
        let signed = |signer: &SigningKey| {
            let mut extra = Map::new();
            extra.insert("kid".into(), json!(thumbprint(signer.verifying_key())));
            sign(&json!({"n": 1}), &extra, signer).unwrap()
        };
        for signer in [&old, &new] {
            let jws = signed(signer);
            let key = set.signer_of(&jws).unwrap();
            assert_eq!(key, signer.verifying_key());
            verify(&jws, key).unwrap();
        }
        assert_eq!(set.signer_of(&signed(&stranger)), None);
        // A kid names a key; a signature by another key under it fails.
        let mut extra = Map::new();
        extra.insert("kid".into(), json!(thumbprint(new.verifying_key())));
        let lying = sign(&json!({"n": 1}), &extra, &stranger).unwrap();
        assert_eq!(
            verify(&lying, set.signer_of(&lying).unwrap()),
            Err(JwsError::Signature)
        );
        assert_eq!(header_kid("not a jws"), None);
        // A key given twice is held once.
        let twice = set.clone().with_previous(*new.verifying_key());
        assert_eq!(twice, set);
    }
}
