//! Fuzz target: the strict text forms of `ledger-core`'s types, which every
//! wire format (API bodies and paths, SATP contexts, exports, CSV rows) is
//! built from: `Address` (EIP-55), `AssetCode`, `Amount`, the 32-byte
//! hashes, `Signature`, `Tadig`, `Service`; and raw signature recovery
//! (`recover_signer`) on any 32-byte digest and 65 bytes.
//!
//! The first byte picks the parser, the rest is the text (or, for recovery,
//! the 97 bytes `digest || r || s || v`).
//!
//! Asserts: no panic; what parses prints back to a text that parses to the
//! same value, and the printed form is the canonical one (EIP-55 for
//! addresses, lowercase hex for hashes and signatures, the exact input for
//! amounts, codes and services); recovery answers the same for `v` = 0/1
//! and 27/28.

#![no_main]

use std::fmt::Display;
use std::str::FromStr;

use ledger_core::settlement::{Service, Tadig};
use ledger_core::signature::recover_signer;
use ledger_core::{
    Address, Amount, AssetCode, BlockHash, DocumentHash, Hashlock, LockId, MerkleRoot, Signature,
    TxHash,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 12 == 11 {
        recover(rest);
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match selector % 12 {
        0 => address(text),
        1 => exact::<AssetCode>(text),
        2 => exact::<Amount>(text),
        3 => hash::<TxHash>(text),
        4 => hash::<BlockHash>(text),
        5 => hash::<LockId>(text),
        6 => hash::<Hashlock>(text),
        7 => hash::<DocumentHash>(text),
        8 => hash::<MerkleRoot>(text),
        9 => signature(text),
        _ => {
            exact::<Tadig>(text);
            if let Ok(service) = text.parse::<Service>() {
                assert_eq!(service.name(), text);
            }
        }
    }
});

/// A type whose text form is unique: printing what parsed gives the input.
fn exact<T: FromStr + Display + PartialEq + std::fmt::Debug>(text: &str) {
    if let Ok(value) = text.parse::<T>() {
        let printed = value.to_string();
        assert_eq!(printed, text, "not the canonical form, yet accepted");
        assert_eq!(printed.parse::<T>().ok(), Some(value));
    }
}

/// A 32-byte hash: `0x` + 64 hex digits of either case, printed lowercase.
fn hash<T: FromStr + Display + PartialEq + std::fmt::Debug>(text: &str) {
    if let Ok(value) = text.parse::<T>() {
        let printed = value.to_string();
        assert_eq!(printed, text.to_ascii_lowercase());
        assert_eq!(printed.parse::<T>().ok(), Some(value));
    }
}

fn address(text: &str) {
    let Ok(address) = text.parse::<Address>() else {
        return;
    };
    let printed = address.to_string();
    assert_eq!(printed, address.to_checksum());
    assert_eq!(printed.len(), 42);
    assert_eq!(printed.parse::<Address>().ok(), Some(address));
    // Mixed case is accepted only as the checksum itself.
    let digits = &text[2..];
    let mixed = digits.bytes().any(|b| b.is_ascii_lowercase())
        && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        assert_eq!(printed, text);
    }
    assert_eq!(printed.to_ascii_lowercase(), text.to_ascii_lowercase());
}

fn signature(text: &str) {
    if let Ok(signature) = text.parse::<Signature>() {
        let printed = signature.to_string();
        assert_eq!(printed, text.to_ascii_lowercase());
        assert_eq!(printed.parse::<Signature>().ok(), Some(signature));
    }
}

fn recover(bytes: &[u8]) {
    let (Some(digest), Some(raw)) = (bytes.get(..32), bytes.get(32..97)) else {
        return;
    };
    let mut d = [0u8; 32];
    d.copy_from_slice(digest);
    let mut s = [0u8; 65];
    s.copy_from_slice(raw);
    let signature = Signature::from_bytes(s);
    let recovered = recover_signer(&d, &signature);
    assert_eq!(recover_signer(&d, &signature.canonical()), recovered);
    if recovered.is_ok() {
        assert!(matches!(s[64], 0 | 1 | 27 | 28));
    }
}
