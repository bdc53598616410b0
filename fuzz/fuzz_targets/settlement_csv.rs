//! Fuzz target: a CSV body of `POST /v1/settlement/records/import`
//! (`text/csv`; `lockgate records import FILE` streams a file to it), cut
//! into lines as the import cuts them (`\n`, an optional `\r`, blank lines
//! skipped, not UTF-8 refused, the header line skipped). Every data line
//! goes through the import's row parser (`settlement::import::csv_row`,
//! through its `fuzzing` facade) and then through the pure part of the
//! checks a batch runs on every row: the EIP-712 digest and the recovery of
//! the sender's signature, `UsageRecord::validate` against the fixtures'
//! agreements (charges, rounding, discounts, totals, period), the sequence
//! rule and the record hash. The database-bound part (operators, storing)
//! is left out.
//!
//! Asserts: no panic (in particular no arithmetic overflow: the target is
//! built with overflow checks); a row that parses is re-encoded by
//! `import::csv_line` to a row that parses to the same record and
//! signature, and by the JSON wire form (`UsageRecordBody`) to the same
//! record.

#![no_main]

use ledger_core::Signature;
use ledger_core::settlement::record::{UsageRecord, check_sequence};
use ledger_core::settlement::typed::{record_digest, record_hash};
use ledger_core::signature::recover_signer;
use libfuzzer_sys::fuzz_target;
use lockgate::settlement::UsageRecordBody;
use lockgate::settlement::import::{CSV_HEADER, csv_line, fuzzing};
use lockgate_fuzz::{ITEMS_MAX, NOW_MS, SOURCE_CHAIN, agreements, chain, operators};

fuzz_target!(|data: &[u8]| {
    let agreements = agreements();
    let operators = operators();
    for raw in data.split(|b| *b == b'\n').take(ITEMS_MAX) {
        let Ok(text) = std::str::from_utf8(raw) else {
            continue;
        };
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() || text == CSV_HEADER {
            continue;
        }
        let Ok((record, signature)) = fuzzing::csv_row(text) else {
            continue;
        };
        round_trips(&record, &signature);
        let signer = recover_signer(&record_digest(chain(SOURCE_CHAIN), &record), &signature);
        if let Ok(signer) = signer {
            let _ = operators
                .iter()
                .any(|(code, key)| *code == record.sender && key.address() == signer);
        }
        let _ = record.validate(&agreements, NOW_MS);
        let _ = check_sequence(Some(record.sequence), record.sequence);
        let _ = check_sequence(record.sequence.checked_sub(1), record.sequence);
        let _ = check_sequence(None, record.sequence);
        let _ = record_hash(&record);
    }
});

fn round_trips(record: &UsageRecord, signature: &Signature) {
    let line = csv_line(record, signature);
    let again = fuzzing::csv_row(&line).expect("csv_line writes a row csv_row reads");
    assert_eq!(
        &again.0, record,
        "CSV decode -> encode -> decode changed the record"
    );
    assert_eq!(&again.1, signature);
    assert_eq!(
        csv_line(&again.0, &again.1),
        line,
        "CSV encoding is not stable"
    );
    let wire = UsageRecordBody::from_domain(record);
    assert_eq!(
        &wire.to_domain().expect("the JSON wire form decodes"),
        record,
        "JSON wire form changed the record"
    );
}
