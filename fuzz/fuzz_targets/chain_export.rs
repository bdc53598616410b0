//! Fuzz target: a chain export (`lockgate-export/1` NDJSON) as
//! `lockgate verify FILE` reads it — an auditor's input, from whoever
//! handed over the file. `export::verify_export` parses the head and every
//! block line (block headers, signed transactions, audit paths), recomputes
//! every hash, recovers every signature and replays every transaction with
//! `ledger_core::verify::ChainVerifier`.
//!
//! Run twice per input: trusting the producers the file names (no
//! `--producer`), and with the chain and producer pinned as an auditor
//! would. Asserts: no panic, whatever the file holds; a file that verifies
//! reports the chain it was asked about.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockgate::export::verify_export;
use lockgate_fuzz::{SOURCE_CHAIN, chain, producer};

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = verify_export(data, None, Vec::new()) {
        assert!(report.producers_from_file);
    }
    if let Ok(report) = verify_export(data, Some(chain(SOURCE_CHAIN)), vec![producer()]) {
        assert_eq!(report.chain_id, chain(SOURCE_CHAIN));
        assert_eq!(report.producers, vec![producer()]);
        assert!(!report.producers_from_file);
    }
});
