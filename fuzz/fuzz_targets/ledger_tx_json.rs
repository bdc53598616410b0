//! Fuzz target: a signed ledger transaction as `POST /v1/ledger/transactions`
//! (and `/assets`, `/transactions/batch`) receives it. The body goes through
//! what `api::JsonBody` and `api::submit_one`/`submit_many` do before the
//! sequencer: strict JSON into `SignedTransactionDto` (or `BatchRequest`),
//! every failure made into its problem, `to_domain`, then the signature
//! recovery of `SignedTransaction::verify`.
//!
//! Asserts: no panic; a transaction that decodes survives its encoder
//! (`SignedTransactionDto::from_domain`) unchanged, and so does the wire
//! form (decode -> encode -> decode -> encode is stable); a transaction that
//! verifies keeps its hash and verifies again from the form the ledger
//! stores (`v` made 27/28).

#![no_main]

use ledger_core::{Rejection, SignedTransaction};
use libfuzzer_sys::fuzz_target;
use lockgate::dto::SignedTransactionDto;
use lockgate::problem::Problem;
use lockgate::views::BatchRequest;
use lockgate_fuzz::ITEMS_MAX;

fuzz_target!(|data: &[u8]| {
    match serde_json::from_slice::<SignedTransactionDto>(data) {
        Ok(dto) => check(&dto),
        Err(error) => refuse_body(&error),
    }
    if let Ok(batch) = serde_json::from_slice::<BatchRequest>(data) {
        for dto in batch.transactions.iter().take(ITEMS_MAX) {
            check(dto);
        }
    }
});

/// What `JsonBody` answers for a body that does not parse.
fn refuse_body(error: &serde_json::Error) {
    let problem = if error.is_syntax() || error.is_eof() {
        Problem::malformed_json(error.to_string())
    } else {
        Problem::invalid_body(error)
    };
    assert!(problem.status().is_client_error());
}

fn check(dto: &SignedTransactionDto) {
    let signed = match dto.to_domain() {
        Ok(signed) => signed,
        Err(error) => {
            assert!(Problem::from(error).status().is_client_error());
            return;
        }
    };
    let wire = round_trip(&signed);
    assert_eq!(
        round_trip(&wire.to_domain().expect("an encoded transaction decodes")),
        wire,
        "encode -> decode -> encode changed the wire form"
    );
    let hash = signed.transaction.hash();
    match signed.clone().verify() {
        Ok(verified) => {
            assert_eq!(verified.hash(), hash);
            assert!(verified.signed().signature.is_canonical());
            assert_eq!(verified.transaction(), &signed.transaction);
            // The stored form (canonical `v`) read back verifies to the same.
            let stored = round_trip(verified.signed());
            let again = stored
                .to_domain()
                .expect("the stored form decodes")
                .verify()
                .expect("the stored form verifies");
            assert_eq!(again, verified);
        }
        Err(error) => {
            let problem = Problem::rejected(&Rejection::BadSignature(error));
            assert!(problem.status().is_client_error());
        }
    }
}

/// Encodes `signed`, sends the encoding through JSON text, decodes it, and
/// checks it came back unchanged. Returns the encoding.
fn round_trip(signed: &SignedTransaction) -> SignedTransactionDto {
    let wire = SignedTransactionDto::from_domain(signed);
    let text = serde_json::to_vec(&wire).expect("a DTO serialises");
    let parsed: SignedTransactionDto =
        serde_json::from_slice(&text).expect("an encoded transaction parses");
    assert_eq!(parsed, wire, "the wire form changed through JSON text");
    let back = parsed.to_domain().expect("an encoded transaction decodes");
    assert_eq!(
        &back, signed,
        "decode -> encode -> decode changed the transaction"
    );
    wire
}
