//! The settlement EIP-712 types against vectors made independently with
//! Python eth-account (`scripts/make_settlement_vectors.py`): the record's
//! hash, and the digests of a record, its acceptance and a dispute, and the
//! signer each signature recovers to.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ledger_core::settlement::record::{Rate, ServiceLine, UsageRecord};
use ledger_core::settlement::typed::{
    DisputeTerms, acceptance_digest, dispute_digest, record_digest, record_hash,
};
use ledger_core::signature::recover_signer;
use ledger_core::{Address, AssetCode, ChainId, Signature};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/settlement_eip712.json")).unwrap()
}

fn hex32(v: &Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap().trim_start_matches("0x"), &mut out).unwrap();
    out
}

fn uint(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

fn record_of(m: &Value) -> UsageRecord {
    UsageRecord {
        sender: m["sender"].as_str().unwrap().parse().unwrap(),
        recipient: m["recipient"].as_str().unwrap().parse().unwrap(),
        sequence: uint(&m["sequence"]),
        period_start_ms: uint(&m["periodStartMs"]),
        period_end_ms: uint(&m["periodEndMs"]),
        currency: AssetCode::new(m["currency"].as_str().unwrap()).unwrap(),
        agreement_version: u32::try_from(uint(&m["agreementVersion"])).unwrap(),
        lines: m["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| ServiceLine {
                service: l["service"].as_str().unwrap().parse().unwrap(),
                quantity: uint(&l["quantity"]),
                rate: Rate {
                    price: u128::from(uint(&l["ratePrice"])),
                    per: uint(&l["ratePer"]),
                },
                charge: u128::from(uint(&l["charge"])),
            })
            .collect(),
        charges_total: u128::from(uint(&m["chargesTotal"])),
        discount: u128::from(uint(&m["discount"])),
        total: u128::from(uint(&m["total"])),
    }
}

fn signer_of(digest: &[u8; 32], signature: &Value) -> Address {
    let signature: Signature = signature.as_str().unwrap().parse().unwrap();
    recover_signer(digest, &signature).unwrap()
}

#[test]
fn digests_and_signatures_match_eth_account() {
    let v = vectors();
    let chain = ChainId::new(v["chainId"].as_u64().unwrap()).unwrap();
    let signer: Address = v["signer"].as_str().unwrap().parse().unwrap();

    let record = record_of(&v["record"]["typedData"]["message"]);
    let hash = record_hash(&record);
    assert_eq!(hash, hex32(&v["record"]["recordHash"]));
    let digest = record_digest(chain, &record);
    assert_eq!(digest, hex32(&v["record"]["digest"]));
    assert_eq!(signer_of(&digest, &v["record"]["signature"]), signer);
    // Any change to the record changes the digest: the signature no longer
    // recovers to the signer.
    let mut changed = record.clone();
    changed.total += 1;
    assert_ne!(
        signer_of(&record_digest(chain, &changed), &v["record"]["signature"]),
        signer
    );

    let acceptance = &v["acceptance"]["typedData"]["message"];
    let digest = acceptance_digest(
        chain,
        &hex32(&acceptance["recordHash"]),
        acceptance["recipient"].as_str().unwrap(),
    );
    assert_eq!(digest, hex32(&v["acceptance"]["digest"]));
    assert_eq!(signer_of(&digest, &v["acceptance"]["signature"]), signer);

    let dispute = &v["dispute"]["typedData"]["message"];
    let digest = dispute_digest(
        chain,
        &DisputeTerms {
            record_hash: hex32(&dispute["recordHash"]),
            recipient: dispute["recipient"].as_str().unwrap(),
            reason: dispute["reason"].as_str().unwrap(),
            disputed_amount: u128::from(uint(&dispute["disputedAmount"])),
            evidence_hash: hex32(&dispute["evidenceHash"]),
        },
    );
    assert_eq!(digest, hex32(&v["dispute"]["digest"]));
    assert_eq!(signer_of(&digest, &v["dispute"]["signature"]), signer);
    // Another chain id is another domain.
    let other = ChainId::new(4202).unwrap();
    assert_ne!(record_digest(other, &record), record_digest(chain, &record));
}

#[test]
fn the_statement_digest_matches_eth_account() {
    use ledger_core::settlement::Tadig;
    use ledger_core::settlement::netting::Payment;
    use ledger_core::settlement::statement::{FxRate, Statement, StatementLine};
    use ledger_core::settlement::typed::{statement_digest, statement_hash};
    let v = vectors();
    let chain = ChainId::new(v["chainId"].as_u64().unwrap()).unwrap();
    let signer: Address = v["signer"].as_str().unwrap().parse().unwrap();
    let m = &v["statement"]["typedData"]["message"];
    let tadig = |v: &Value| v.as_str().unwrap().parse::<Tadig>().unwrap();
    let code = |v: &Value| AssetCode::new(v.as_str().unwrap()).unwrap();
    let statement = Statement {
        operator: tadig(&m["operator"]),
        currency: code(&m["currency"]),
        period_start_ms: uint(&m["periodStartMs"]),
        period_end_ms: uint(&m["periodEndMs"]),
        lines: m["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| StatementLine {
                record_hash: hex32(&l["recordHash"]),
                counterparty: tadig(&l["counterparty"]),
                amount: u128::from(uint(&l["amount"])),
                receivable: l["receivable"].as_bool().unwrap(),
            })
            .collect(),
        receivable: u128::from(uint(&m["receivable"])),
        payable: u128::from(uint(&m["payable"])),
        payments: m["payments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Payment {
                payer: tadig(&p["payer"]),
                payee: tadig(&p["payee"]),
                amount: u128::from(uint(&p["amount"])),
            })
            .collect(),
        fx_rates: m["fxRates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| FxRate {
                from: code(&r["from"]),
                to: code(&r["to"]),
                numerator: u128::from(uint(&r["numerator"])),
                denominator: u128::from(uint(&r["denominator"])),
            })
            .collect(),
    };
    let close_id = hex32(&m["closeId"]);
    assert_eq!(
        statement_hash(&close_id, &statement),
        hex32(&v["statement"]["statementHash"])
    );
    let digest = statement_digest(chain, &close_id, &statement);
    assert_eq!(digest, hex32(&v["statement"]["digest"]));
    assert_eq!(signer_of(&digest, &v["statement"]["signature"]), signer);
}

#[test]
fn the_note_digest_matches_eth_account() {
    use ledger_core::settlement::typed::note_digest;
    let v = vectors();
    let chain = ChainId::new(v["chainId"].as_u64().unwrap()).unwrap();
    let signer: Address = v["signer"].as_str().unwrap().parse().unwrap();
    let m = &v["note"]["typedData"]["message"];
    let digest = note_digest(
        chain,
        &hex32(&m["recordHash"]),
        m["kind"].as_str().unwrap(),
        u128::from(uint(&m["amount"])),
        m["reason"].as_str().unwrap(),
    );
    assert_eq!(digest, hex32(&v["note"]["digest"]));
    assert_eq!(signer_of(&digest, &v["note"]["signature"]), signer);
}
