//! Fuzz target: the JSON bodies of roaming settlement, one per line as the
//! NDJSON import (`application/x-ndjson`) cuts them: a `SubmitRecord` (the
//! body of `POST /v1/settlement/records` and of every NDJSON import row,
//! parsed by `settlement::import::ndjson_row` through its `fuzzing`
//! facade), or else an `AgreementBody` (`POST /v1/settlement/agreements`).
//! Agreements that parse and pass `Agreement::check` join the fixtures'
//! agreements for the records after them, so the fuzzer controls rates and
//! discounts too. Every record then goes through the pure checks of a
//! submission: the EIP-712 digest and signature recovery,
//! `UsageRecord::validate`, the sequence rule, the record hash.
//!
//! Asserts: no panic (no arithmetic overflow in charging, rounding or
//! discounts); a record or agreement survives its JSON wire form
//! (decode -> encode -> decode); a record whose lines are in the CSV order
//! survives the CSV form too.

#![no_main]

use ledger_core::settlement::record::{Agreement, UsageRecord, check_sequence};
use ledger_core::settlement::typed::{record_digest, record_hash};
use ledger_core::signature::recover_signer;
use libfuzzer_sys::fuzz_target;
use lockgate::settlement::import::{csv_line, fuzzing};
use lockgate::settlement::{AgreementBody, UsageRecordBody};
use lockgate_fuzz::{ITEMS_MAX, NOW_MS, SOURCE_CHAIN, agreements, chain};

fuzz_target!(|data: &[u8]| {
    let mut agreements = agreements();
    for raw in data.split(|b| *b == b'\n').take(ITEMS_MAX) {
        let Ok(text) = std::str::from_utf8(raw) else {
            continue;
        };
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        match fuzzing::ndjson_row(text) {
            Ok((record, signature)) => {
                record_round_trips(&record, &signature);
                let _ = recover_signer(&record_digest(chain(SOURCE_CHAIN), &record), &signature);
                let _ = record.validate(&agreements, NOW_MS);
                let _ = check_sequence(record.sequence.checked_sub(1), record.sequence);
                let _ = record_hash(&record);
            }
            Err(_) => {
                if let Some(agreement) = agreement(text) {
                    agreements.push(agreement);
                }
            }
        }
    }
});

fn record_round_trips(record: &UsageRecord, signature: &ledger_core::Signature) {
    let wire = UsageRecordBody::from_domain(record);
    let text = serde_json::to_string(&wire).expect("a record body serialises");
    let parsed: UsageRecordBody = serde_json::from_str(&text).expect("its JSON parses");
    assert_eq!(parsed, wire);
    assert_eq!(
        &parsed.to_domain().expect("the wire form decodes"),
        record,
        "JSON decode -> encode -> decode changed the record"
    );
    // The CSV form writes the lines in service order, one per service.
    let in_csv_order = record
        .lines
        .windows(2)
        .all(|pair| pair[0].service < pair[1].service);
    if in_csv_order {
        let line = csv_line(record, signature);
        let (again, signature_again) =
            fuzzing::csv_row(&line).expect("csv_line writes a row csv_row reads");
        assert_eq!(&again, record, "CSV form changed a JSON record");
        assert_eq!(&signature_again, signature);
    }
}

/// An agreement body as `POST /v1/settlement/agreements` takes it.
fn agreement(text: &str) -> Option<Agreement> {
    let body: AgreementBody = serde_json::from_str(text).ok()?;
    let agreement = body.to_domain().ok()?;
    let wire = AgreementBody::from_domain(&agreement);
    assert_eq!(
        wire.to_domain().expect("an encoded agreement decodes"),
        agreement,
        "decode -> encode -> decode changed the agreement"
    );
    agreement.check().ok()?;
    Some(agreement)
}
