//! Wire types of the ledger API (JSON), apart from the domain types of
//! `ledger-core`, with the conversions between them.
//!
//! A signed transaction travels as the parts of its EIP-712 typed data that
//! vary, so a client posts exactly what it signed:
//!
//! ```json
//! {
//!   "chainId": "4201",
//!   "primaryType": "Transfer",
//!   "message": {"from": "0x…", "nonce": "0", "asset": "EUR", "to": "0x…", "amount": "1250"},
//!   "signature": "0x…65 bytes…"
//! }
//! ```
//!
//! Every integer is a decimal string (JavaScript numbers lose precision past
//! 2^53, and amounts reach 2^128); byte strings are `0x`-prefixed hex;
//! addresses are EIP-55 (lowercase accepted). Unknown fields are rejected.
//! The gateway stores integers as signed 64-bit database columns, so nonces
//! and timelocks above 2^63-1 are refused at the edge.

use ledger_core::{
    Address, Amount, AssetCode, ChainId, DocumentHash, Hashlock, LockId, Parties, Preimage, Scale,
    Signature, SignedTransaction, Transaction, TxBody, TxKind,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a wire value could not become a domain value. The `pointer` is the
/// JSON pointer of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {reason}")]
pub struct FieldError {
    /// JSON pointer of the field (`/message/amount`).
    pub pointer: String,
    /// What is wrong with it.
    pub reason: String,
    /// The kind of fault, which picks the problem type.
    pub fault: FieldFault,
}

/// Kinds of field faults, each its own problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldFault {
    /// A field the schema does not have (`unknown-field`).
    UnknownField,
    /// A required field is absent (`missing-field`).
    MissingField,
    /// A value of the wrong JSON type (`wrong-type`).
    WrongType,
    /// A byte string that is not `0x` + the right number of hex digits (`invalid-hex`).
    InvalidHex,
    /// Any other bad value: range, format, checksum (`invalid-field`).
    InvalidValue,
}

impl FieldFault {
    /// The problem slug.
    pub fn slug(self) -> &'static str {
        match self {
            FieldFault::UnknownField => "unknown-field",
            FieldFault::MissingField => "missing-field",
            FieldFault::WrongType => "wrong-type",
            FieldFault::InvalidHex => "invalid-hex",
            FieldFault::InvalidValue => "invalid-field",
        }
    }

    /// Classifies a serde_json data error by its message, which is the only
    /// place serde reports the kind.
    pub fn of_serde(error: &serde_json::Error) -> Self {
        let text = error.to_string();
        if text.starts_with("unknown field") || text.starts_with("unknown variant") {
            FieldFault::UnknownField
        } else if text.starts_with("missing field") {
            FieldFault::MissingField
        } else if text.starts_with("invalid type") {
            FieldFault::WrongType
        } else {
            FieldFault::InvalidValue
        }
    }
}

fn field<T>(pointer: &str, result: Result<T, impl std::fmt::Display>) -> Result<T, FieldError> {
    result.map_err(|e| {
        let reason = e.to_string();
        let fault = if reason.starts_with("expected 0x followed by") {
            FieldFault::InvalidHex
        } else {
            FieldFault::InvalidValue
        };
        FieldError {
            pointer: pointer.to_string(),
            reason,
            fault,
        }
    })
}

/// The largest nonce, timelock or chain id the gateway stores (2^63-1).
pub const STORED_INTEGER_MAX: u64 = i64::MAX as u64;

fn parse_u64(pointer: &str, text: &str) -> Result<u64, FieldError> {
    let valid = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && !(text.len() > 1 && text.starts_with('0'));
    let value = if valid {
        text.parse::<u64>().ok()
    } else {
        None
    };
    match value {
        Some(v) if v <= STORED_INTEGER_MAX => Ok(v),
        _ => Err(FieldError {
            pointer: pointer.to_string(),
            reason: format!(
                "expected a decimal integer string from 0 to {STORED_INTEGER_MAX} without leading zeros"
            ),
            fault: FieldFault::InvalidValue,
        }),
    }
}

/// A signed ledger transaction as posted and returned. Its OpenAPI schema
/// (written by hand below) is one object per primary type, each naming the
/// message schema of that type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignedTransactionDto {
    /// The EIP-712 domain's `chainId`: the ledger's chain id, decimal string.
    pub chain_id: String,
    /// The EIP-712 primary type: the transaction kind.
    pub primary_type: TxKindDto,
    /// The EIP-712 message, with exactly the fields of the primary type.
    pub message: serde_json::Value,
    /// 65-byte signature `r || s || v` of the EIP-712 digest, low-S, `v` =
    /// 27 or 28 (0 or 1 accepted and stored as 27 or 28).
    pub signature: String,
}

impl utoipa::PartialSchema for SignedTransactionDto {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type,
        };
        use utoipa::openapi::{Ref, RefOr};
        let kinds = [
            ("RegisterAsset", "RegisterAssetMessage"),
            ("Issue", "PaymentMessage"),
            ("Burn", "BurnMessage"),
            ("Transfer", "PaymentMessage"),
            ("HtlcLock", "HtlcLockMessage"),
            ("HtlcClaim", "HtlcClaimMessage"),
            ("HtlcRefund", "HtlcRefundMessage"),
            ("Anchor", "AnchorMessage"),
        ];
        let mut one_of = OneOfBuilder::new().description(Some(
            "A signed ledger transaction: the EIP-712 domain's chainId, the primary type, the message \
             exactly as signed (integers as decimal strings), and the 65-byte signature r || s || v.",
        ));
        for (kind, message) in kinds {
            let object = ObjectBuilder::new()
                .title(Some(kind))
                .property(
                    "chainId",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(r"^[1-9][0-9]{0,18}$"))
                        .description(Some("The ledger's chain id (the EIP-712 domain's chainId)")),
                )
                .required("chainId")
                .property(
                    "primaryType",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([kind])),
                )
                .required("primaryType")
                .property("message", Ref::from_schema_name(message))
                .required("message")
                .property(
                    "signature",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(r"^0x[0-9a-fA-F]{130}$"))
                        .description(Some(
                            "r || s || v over the EIP-712 digest, s at most n/2; v = 27 or 28 \
                             (0 or 1 accepted as input, returned as 27 or 28)",
                        )),
                )
                .required("signature")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            one_of = one_of.item(Schema::Object(object.build()));
        }
        RefOr::T(Schema::OneOf(one_of.build()))
    }
}

impl utoipa::ToSchema for SignedTransactionDto {}

/// An address in text: `0x` + 40 hex digits (EIP-55 or one case).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(value_type = String, pattern = r"^0x[0-9a-fA-F]{40}$")]
pub struct AddressText(pub String);

/// The eight transaction kinds (EIP-712 primary types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum TxKindDto {
    /// Register a new asset; the signer becomes its issuer.
    RegisterAsset,
    /// Issue new units (issuer only).
    Issue,
    /// Burn units from the issuer's own balance.
    Burn,
    /// Move units to another account.
    Transfer,
    /// Lock units in a hash-time-locked contract.
    HtlcLock,
    /// Claim a lock with its preimage (pays the recipient).
    HtlcClaim,
    /// Refund an expired lock (pays the sender).
    HtlcRefund,
    /// Commit the hash of an off-ledger document and its parties.
    Anchor,
}

impl From<TxKind> for TxKindDto {
    fn from(kind: TxKind) -> Self {
        match kind {
            TxKind::RegisterAsset => Self::RegisterAsset,
            TxKind::Issue => Self::Issue,
            TxKind::Burn => Self::Burn,
            TxKind::Transfer => Self::Transfer,
            TxKind::HtlcLock => Self::HtlcLock,
            TxKind::HtlcClaim => Self::HtlcClaim,
            TxKind::HtlcRefund => Self::HtlcRefund,
            TxKind::Anchor => Self::Anchor,
        }
    }
}

/// `RegisterAsset(address from,uint64 nonce,string code,uint8 scale)`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterAssetMessage {
    /// Signer's address.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Signer's next nonce.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub nonce: String,
    /// New asset code.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub code: String,
    /// Decimal places, 0 to 18.
    #[schema(pattern = r"^([0-9]|1[0-8])$")]
    pub scale: String,
}

/// `Issue(address from,uint64 nonce,string asset,address to,uint256 amount)`
/// and `Transfer(...)` with the same fields.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentMessage {
    /// Signer's address.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Signer's next nonce.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub nonce: String,
    /// Asset code.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub asset: String,
    /// Account credited.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub to: String,
    /// Minor units, decimal string.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub amount: String,
}

/// `Burn(address from,uint64 nonce,string asset,uint256 amount)`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BurnMessage {
    /// Signer's address (the issuer).
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Signer's next nonce.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub nonce: String,
    /// Asset code.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub asset: String,
    /// Minor units, decimal string.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub amount: String,
}

/// `HtlcLock(address from,uint64 nonce,string asset,address recipient,uint256 amount,bytes32 hashlock,uint64 expiresAtMs)`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HtlcLockMessage {
    /// Signer's address.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Signer's next nonce.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub nonce: String,
    /// Asset code.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub asset: String,
    /// Paid on claim.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub recipient: String,
    /// Minor units, decimal string.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub amount: String,
    /// SHA-256 of the 32-byte preimage, 0x hex.
    #[schema(pattern = r"^0x[0-9a-fA-F]{64}$")]
    pub hashlock: String,
    /// Ledger time (ms since the Unix epoch) from which the lock is expired.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub expires_at_ms: String,
}

/// `HtlcClaim(address from,uint64 nonce,bytes32 lockId,bytes preimage)`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HtlcClaimMessage {
    /// Signer's address (anyone).
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Signer's next nonce.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub nonce: String,
    /// The lock (the hash of its HtlcLock transaction).
    #[schema(pattern = r"^0x[0-9a-fA-F]{64}$")]
    pub lock_id: String,
    /// The preimage, 0x hex (must be 32 bytes to succeed).
    #[schema(pattern = r"^0x([0-9a-fA-F]{2}){0,256}$")]
    pub preimage: String,
}

/// `HtlcRefund(address from,uint64 nonce,bytes32 lockId)`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HtlcRefundMessage {
    /// Signer's address (anyone).
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Signer's next nonce.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub nonce: String,
    /// The lock.
    #[schema(pattern = r"^0x[0-9a-fA-F]{64}$")]
    pub lock_id: String,
}

/// `Anchor(address from,uint64 nonce,bytes32 documentHash,address[] parties)`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnchorMessage {
    /// Signer's address.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Signer's next nonce.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub nonce: String,
    /// Hash of the off-ledger document, 0x hex.
    #[schema(pattern = r"^0x[0-9a-fA-F]{64}$")]
    pub document_hash: String,
    /// 1 to 32 distinct addresses.
    #[schema(min_items = 1, max_items = 32, value_type = Vec<AddressText>)]
    pub parties: Vec<String>,
}

fn message<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, FieldError> {
    T::deserialize(value).map_err(|e| FieldError {
        pointer: "/message".to_string(),
        fault: FieldFault::of_serde(&e),
        reason: e.to_string(),
    })
}

fn parse<T: std::str::FromStr>(pointer: &str, text: &str) -> Result<T, FieldError>
where
    T::Err: std::fmt::Display,
{
    field(pointer, text.parse::<T>())
}

fn hex_bytes(pointer: &str, text: &str) -> Result<Vec<u8>, FieldError> {
    let bad = |reason: String| FieldError {
        pointer: pointer.to_string(),
        reason,
        fault: FieldFault::InvalidHex,
    };
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| bad("expected 0x-prefixed hex".to_string()))?;
    hex::decode(digits).map_err(|e| bad(e.to_string()))
}

impl SignedTransactionDto {
    /// Converts to the domain form, naming the first bad field.
    pub fn to_domain(&self) -> Result<SignedTransaction, FieldError> {
        let chain_id = parse_u64("/chainId", &self.chain_id)?;
        let chain_id = field("/chainId", ChainId::new(chain_id))?;
        let signature: Signature = parse("/signature", &self.signature)?;
        let m = &self.message;
        let (from, nonce, body) = match self.primary_type {
            TxKindDto::RegisterAsset => {
                let msg: RegisterAssetMessage = message(m)?;
                let scale = parse_u64("/message/scale", &msg.scale)?;
                let scale = u8::try_from(scale).map_err(|_| FieldError {
                    pointer: "/message/scale".into(),
                    reason: "decimal scale must be at most 18".into(),
                    fault: FieldFault::InvalidValue,
                })?;
                let body = TxBody::RegisterAsset {
                    code: parse("/message/code", &msg.code)?,
                    scale: field("/message/scale", Scale::new(scale))?,
                };
                (msg.from, msg.nonce, body)
            }
            TxKindDto::Issue | TxKindDto::Transfer => {
                let msg: PaymentMessage = message(m)?;
                let asset: AssetCode = parse("/message/asset", &msg.asset)?;
                let to: Address = parse("/message/to", &msg.to)?;
                let amount: Amount = parse("/message/amount", &msg.amount)?;
                let body = if self.primary_type == TxKindDto::Issue {
                    TxBody::Issue { asset, to, amount }
                } else {
                    TxBody::Transfer { asset, to, amount }
                };
                (msg.from, msg.nonce, body)
            }
            TxKindDto::Burn => {
                let msg: BurnMessage = message(m)?;
                let body = TxBody::Burn {
                    asset: parse("/message/asset", &msg.asset)?,
                    amount: parse("/message/amount", &msg.amount)?,
                };
                (msg.from, msg.nonce, body)
            }
            TxKindDto::HtlcLock => {
                let msg: HtlcLockMessage = message(m)?;
                let body = TxBody::HtlcLock {
                    asset: parse("/message/asset", &msg.asset)?,
                    recipient: parse("/message/recipient", &msg.recipient)?,
                    amount: parse("/message/amount", &msg.amount)?,
                    hashlock: parse::<Hashlock>("/message/hashlock", &msg.hashlock)?,
                    expires_at_ms: parse_u64("/message/expiresAtMs", &msg.expires_at_ms)?,
                };
                (msg.from, msg.nonce, body)
            }
            TxKindDto::HtlcClaim => {
                let msg: HtlcClaimMessage = message(m)?;
                let preimage = hex_bytes("/message/preimage", &msg.preimage)?;
                let body = TxBody::HtlcClaim {
                    lock_id: parse::<LockId>("/message/lockId", &msg.lock_id)?,
                    preimage: field("/message/preimage", Preimage::new(preimage))?,
                };
                (msg.from, msg.nonce, body)
            }
            TxKindDto::HtlcRefund => {
                let msg: HtlcRefundMessage = message(m)?;
                let body = TxBody::HtlcRefund {
                    lock_id: parse::<LockId>("/message/lockId", &msg.lock_id)?,
                };
                (msg.from, msg.nonce, body)
            }
            TxKindDto::Anchor => {
                let msg: AnchorMessage = message(m)?;
                let mut parties = Vec::with_capacity(msg.parties.len());
                for (i, party) in msg.parties.iter().enumerate() {
                    parties.push(parse::<Address>(&format!("/message/parties/{i}"), party)?);
                }
                let body = TxBody::Anchor {
                    document_hash: parse::<DocumentHash>(
                        "/message/documentHash",
                        &msg.document_hash,
                    )?,
                    parties: field("/message/parties", Parties::new(parties))?,
                };
                (msg.from, msg.nonce, body)
            }
        };
        Ok(SignedTransaction {
            transaction: Transaction {
                chain_id,
                from: parse("/message/from", &from)?,
                nonce: parse_u64("/message/nonce", &nonce)?,
                body,
            },
            signature,
        })
    }

    /// The wire form of a domain transaction.
    pub fn from_domain(signed: &SignedTransaction) -> Self {
        let tx = &signed.transaction;
        Self {
            chain_id: tx.chain_id.to_string(),
            primary_type: tx.kind().into(),
            message: message_value(tx, Address::to_checksum),
            signature: signed.signature.to_string(),
        }
    }

    /// The `message` as the ledger stores it (`transactions.message`): the
    /// wire form's fields, but addresses in lowercase hex rather than
    /// EIP-55 checksummed. The checksum costs a Keccak-256 per address, and
    /// the block producer writes every transaction of a block one after
    /// another; what reads the column back parses it with
    /// [`Self::to_domain`], which takes either case, and answers in the
    /// wire form.
    pub fn stored_message(tx: &Transaction) -> String {
        message_value(tx, |address| {
            format!("0x{}", hex::encode(address.as_bytes()))
        })
        .to_string()
    }
}

/// A transaction's `message` object, addresses written by `address`.
fn message_value(tx: &Transaction, address: fn(&Address) -> String) -> serde_json::Value {
    let from = address(&tx.from);
    let nonce = tx.nonce.to_string();
    match &tx.body {
        TxBody::RegisterAsset { code, scale } => serde_json::json!({
            "from": from, "nonce": nonce, "code": code.as_str(), "scale": scale.get().to_string(),
        }),
        TxBody::Issue { asset, to, amount } | TxBody::Transfer { asset, to, amount } => {
            serde_json::json!({
                "from": from, "nonce": nonce, "asset": asset.as_str(),
                "to": address(to), "amount": amount.to_string(),
            })
        }
        TxBody::Burn { asset, amount } => serde_json::json!({
            "from": from, "nonce": nonce, "asset": asset.as_str(), "amount": amount.to_string(),
        }),
        TxBody::HtlcLock {
            asset,
            recipient,
            amount,
            hashlock,
            expires_at_ms,
        } => serde_json::json!({
            "from": from, "nonce": nonce, "asset": asset.as_str(),
            "recipient": address(recipient), "amount": amount.to_string(),
            "hashlock": hashlock.to_string(), "expiresAtMs": expires_at_ms.to_string(),
        }),
        TxBody::HtlcClaim { lock_id, preimage } => serde_json::json!({
            "from": from, "nonce": nonce, "lockId": lock_id.to_string(),
            "preimage": format!("0x{}", hex::encode(preimage.as_bytes())),
        }),
        TxBody::HtlcRefund { lock_id } => serde_json::json!({
            "from": from, "nonce": nonce, "lockId": lock_id.to_string(),
        }),
        TxBody::Anchor {
            document_hash,
            parties,
        } => serde_json::json!({
            "from": from, "nonce": nonce, "documentHash": document_hash.to_string(),
            "parties": parties.as_slice().iter().map(address).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::SigningKey;

    fn key() -> SigningKey {
        SigningKey::from_bytes(ledger_core::hash::sha256(b"dto")).unwrap()
    }

    #[test]
    fn every_kind_round_trips_through_the_wire_form() {
        let key = key();
        let lock_id = LockId::from_bytes([3; 32]);
        let bodies = vec![
            TxBody::RegisterAsset {
                code: AssetCode::new("EUR").unwrap(),
                scale: Scale::new(2).unwrap(),
            },
            TxBody::Issue {
                asset: AssetCode::new("EUR").unwrap(),
                to: key.address(),
                amount: Amount::MAX,
            },
            TxBody::Burn {
                asset: AssetCode::new("EUR").unwrap(),
                amount: Amount::from_minor_units(5),
            },
            TxBody::Transfer {
                asset: AssetCode::new("EUR").unwrap(),
                to: key.address(),
                amount: Amount::from_minor_units(5),
            },
            TxBody::HtlcLock {
                asset: AssetCode::new("EUR").unwrap(),
                recipient: key.address(),
                amount: Amount::from_minor_units(5),
                hashlock: Hashlock::of_preimage(&[1; 32]),
                expires_at_ms: 1_800_000_000_000,
            },
            TxBody::HtlcClaim {
                lock_id,
                preimage: Preimage::new(vec![1; 32]).unwrap(),
            },
            TxBody::HtlcRefund { lock_id },
            TxBody::Anchor {
                document_hash: DocumentHash::from_bytes([4; 32]),
                parties: Parties::new(vec![key.address(), Address::from_bytes([1; 20])]).unwrap(),
            },
        ];
        for (nonce, body) in bodies.into_iter().enumerate() {
            let signed = Transaction {
                chain_id: ChainId::new(4201).unwrap(),
                from: key.address(),
                nonce: nonce as u64,
                body,
            }
            .sign(&key)
            .unwrap();
            let dto = SignedTransactionDto::from_domain(&signed);
            let json = serde_json::to_string(&dto).unwrap();
            let back: SignedTransactionDto = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_domain().unwrap(), signed);
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let key = key();
        let signed = Transaction {
            chain_id: ChainId::new(4201).unwrap(),
            from: key.address(),
            nonce: 0,
            body: TxBody::Transfer {
                asset: AssetCode::new("EUR").unwrap(),
                to: key.address(),
                amount: Amount::from_minor_units(5),
            },
        }
        .sign(&key)
        .unwrap();
        let good = SignedTransactionDto::from_domain(&signed);
        let cases = [
            ("/message/amount", serde_json::json!("-5")),
            ("/message/amount", serde_json::json!("05")),
            ("/message/to", serde_json::json!("0x1234")),
            ("/message/asset", serde_json::json!("eur")),
            ("/message/nonce", serde_json::json!("9223372036854775808")),
        ];
        for (pointer, value) in cases {
            let mut dto = good.clone();
            let name = pointer.rsplit('/').next().unwrap();
            dto.message[name] = value;
            assert_eq!(dto.to_domain().unwrap_err().pointer, pointer);
        }
        let mut extra = good.clone();
        extra.message["memo"] = serde_json::json!("x");
        assert_eq!(extra.to_domain().unwrap_err().pointer, "/message");
        let mut chain = good.clone();
        chain.chain_id = "0".into();
        assert_eq!(chain.to_domain().unwrap_err().pointer, "/chainId");
        let mut sig = good;
        sig.signature = "0x12".into();
        assert_eq!(sig.to_domain().unwrap_err().pointer, "/signature");
    }
}
