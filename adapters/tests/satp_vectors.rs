//! The SATP building blocks against an independent implementation: the
//! vectors in `tests/vectors/satp.json` were made with Python `rfc8785` and
//! `cryptography` (see `tests/vectors/generate_satp.py`). Lockgate must give
//! the same canonical bytes, the same JWK and RFC 7638 thumbprint for the
//! key, and accept the JWS signatures made there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use adapters::satp::{jcs, jws};

fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/satp.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn canonical_json_matches_rfc8785_reference() {
    let v = vectors();
    let cases = v["jcs"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let input: serde_json::Value =
            serde_json::from_str(case["input"].as_str().unwrap()).unwrap();
        let ours = String::from_utf8(jcs::canonicalize(&input).unwrap()).unwrap();
        assert_eq!(
            ours,
            case["canonical"].as_str().unwrap(),
            "input {}",
            case["input"]
        );
    }
}

#[test]
fn keys_thumbprints_and_signatures_interoperate() {
    let v = vectors();
    let secret = hex::decode(v["privateKey"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let signer = p256::ecdsa::SigningKey::from_slice(&secret).unwrap();
    assert_eq!(jws::jwk(signer.verifying_key()), v["jwk"]);
    assert_eq!(
        jws::thumbprint(signer.verifying_key()),
        v["thumbprint"].as_str().unwrap()
    );
    let pinned = jws::key_from_jwk(&v["jwk"].to_string()).unwrap();

    let compact = v["jws"]["compact"].as_str().unwrap();
    let verified = jws::verify(compact, &pinned).unwrap();
    assert_eq!(verified.header["kid"], v["thumbprint"]);
    assert_eq!(
        verified.payload,
        jcs::canonicalize(&v["jws"]["payload"]).unwrap()
    );
    jws::verify_detached(
        v["jws"]["detached"].as_str().unwrap(),
        &v["jws"]["payload"],
        &pinned,
    )
    .unwrap();

    // Their signature over one payload does not cover another.
    let mut other = v["jws"]["payload"].clone();
    other["sessionId"] = serde_json::json!("a2");
    assert!(jws::verify_detached(v["jws"]["detached"].as_str().unwrap(), &other, &pinned).is_err());
}
