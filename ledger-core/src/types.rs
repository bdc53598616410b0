//! Primitive domain types with checked constructors: [`Address`], [`AssetCode`],
//! [`Scale`], [`Asset`], [`Amount`], [`ChainId`], the 32-byte hashes
//! ([`TxHash`], [`BlockHash`], [`LockId`], [`Hashlock`], [`DocumentHash`],
//! [`MerkleRoot`]), [`Preimage`] and [`Parties`].
//!
//! Every type here is valid by construction: its fields are private and the
//! only ways in are constructors that check. Text forms are exact and strict
//! (no whitespace, no leading `+`, no leading zeros in amounts) because they are
//! wire formats other people's clients implement.

use std::fmt;
use std::str::FromStr;

use crate::hash::keccak256;

/// Why a value could not be parsed or constructed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not `0x` followed by the expected number of hex digits.
    #[error("expected 0x followed by {expected_hex_digits} hex digits")]
    Hex {
        /// Number of hex digits the value needs after `0x`.
        expected_hex_digits: usize,
    },
    /// A mixed-case address whose capitalisation is not its EIP-55 checksum.
    #[error("address has mixed case but its EIP-55 checksum is wrong")]
    AddressChecksum,
    /// Asset codes are 1 to 12 characters: an uppercase letter, then uppercase letters, digits or `-`.
    #[error(
        "asset code must be 1 to {max} characters: an uppercase letter A-Z, then A-Z, 0-9 or '-'",
        max = AssetCode::LEN_MAX
    )]
    AssetCode,
    /// Decimal scale above [`Scale::MAX`].
    #[error("decimal scale must be at most {max}", max = Scale::MAX)]
    Scale,
    /// Amounts are decimal strings of minor units: digits only, no leading zeros, at most u128::MAX.
    #[error(
        "amount must be a decimal string of minor units without sign, point or leading zeros, at most 2^128-1"
    )]
    Amount,
    /// Chain id 0 is reserved.
    #[error("chain id must be between 1 and 2^64-1")]
    ChainId,
    /// Preimage longer than [`Preimage::LEN_MAX`].
    #[error("preimage must be at most {max} bytes", max = Preimage::LEN_MAX)]
    PreimageTooLong,
    /// Anchor parties: 1 to [`Parties::COUNT_MAX`] distinct addresses.
    #[error("parties must be 1 to {max} distinct addresses", max = Parties::COUNT_MAX)]
    Parties,
}

fn decode_hex_fixed<const N: usize>(text: &str) -> Result<[u8; N], ParseError> {
    let error = ParseError::Hex {
        expected_hex_digits: N * 2,
    };
    let digits = text.strip_prefix("0x").ok_or(error.clone())?;
    if digits.len() != N * 2 {
        return Err(error);
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|_| error)?;
    Ok(out)
}

/// A 20-byte account address: the last 20 bytes of the Keccak-256 hash of the
/// uncompressed secp256k1 public key, as on Ethereum.
///
/// Text form: `0x` + 40 hex digits. Printing always gives the EIP-55 checksummed
/// form. Parsing accepts all-lowercase or all-uppercase digits without a
/// checksum, and mixed case only when it is the correct EIP-55 checksum.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address([u8; 20]);

impl Address {
    /// Wraps 20 raw bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The address of an uncompressed public key given as its 64-byte `x || y`.
    pub fn from_public_key_xy(xy: &[u8; 64]) -> Self {
        let hash = keccak256(xy);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Self(out)
    }

    /// The EIP-55 checksummed text form.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl FromStr for Address {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = decode_hex_fixed::<20>(text)?;
        let address = Self(bytes);
        let digits = &text[2..];
        let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper && address.to_checksum() != text {
            return Err(ParseError::AddressChecksum);
        }
        Ok(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// An asset code: 1 to 12 ASCII characters, an uppercase letter first, then
/// uppercase letters, digits or `-` (for example `EUR`, `USDC`, `TOKEN-1`).
///
/// Stored inline (no allocation) so it is `Copy` and cheap as a map key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetCode {
    // Sorted like the text: zero padding after the code sorts shorter codes first.
    bytes: [u8; AssetCode::LEN_MAX],
    len: u8,
}

impl AssetCode {
    /// Longest code, in characters.
    pub const LEN_MAX: usize = 12;

    /// Checks and wraps a code.
    pub fn new(code: &str) -> Result<Self, ParseError> {
        let raw = code.as_bytes();
        let valid_first = raw.first().is_some_and(|b| b.is_ascii_uppercase());
        let valid_rest = raw
            .iter()
            .skip(1)
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'-');
        if !valid_first || !valid_rest || raw.len() > Self::LEN_MAX {
            return Err(ParseError::AssetCode);
        }
        let mut bytes = [0u8; Self::LEN_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Self {
            bytes,
            // The length was checked against LEN_MAX (12) above.
            len: raw.len() as u8,
        })
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII was admitted by `new`, so this cannot fail; fall back to
        // an empty string rather than panic to keep the type total.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl FromStr for AssetCode {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl fmt::Display for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetCode({})", self.as_str())
    }
}

/// The number of decimal places between an asset's minor unit and its major
/// unit (2 for cents, 18 for wei). At most 18.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Scale(u8);

impl Scale {
    /// The largest scale accepted (as on EVM tokens).
    pub const MAX: u8 = 18;

    /// Checks and wraps a scale.
    pub fn new(scale: u8) -> Result<Self, ParseError> {
        if scale > Self::MAX {
            return Err(ParseError::Scale);
        }
        Ok(Self(scale))
    }

    /// The scale as a number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// An asset of the built-in ledger: its code, its decimal scale, and the one
/// address allowed to issue and burn it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Asset {
    /// The asset's code, unique on its ledger.
    pub code: AssetCode,
    /// Decimal places of the minor unit.
    pub scale: Scale,
    /// The address that registered the asset; only it may issue and burn.
    pub issuer: Address,
}

/// An amount of an asset in minor units. All arithmetic is checked.
///
/// Text form: a decimal string of digits with no sign, point or leading zeros
/// (`"0"`, `"1050"`), at most 2^128-1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(u128);

impl Amount {
    /// Zero minor units.
    pub const ZERO: Self = Self(0);
    /// The largest representable amount.
    pub const MAX: Self = Self(u128::MAX);

    /// Wraps a number of minor units.
    pub const fn from_minor_units(units: u128) -> Self {
        Self(units)
    }

    /// The number of minor units.
    pub const fn minor_units(self) -> u128 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub const fn checked_add(self, other: Self) -> Option<Self> {
        match self.0.checked_add(other.0) {
            Some(sum) => Some(Self(sum)),
            None => None,
        }
    }

    /// `self - other`, or `None` when `other` is larger.
    pub const fn checked_sub(self, other: Self) -> Option<Self> {
        match self.0.checked_sub(other.0) {
            Some(difference) => Some(Self(difference)),
            None => None,
        }
    }

    /// True for zero minor units.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for Amount {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        let leading_zero = text.len() > 1 && text.starts_with('0');
        if !digits_only || leading_zero {
            return Err(ParseError::Amount);
        }
        text.parse::<u128>()
            .map(Self)
            .map_err(|_| ParseError::Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

/// The id of a ledger (the EIP-712 domain's `chainId`), 1 to 2^64-1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ChainId(u64);

impl ChainId {
    /// Checks and wraps a chain id.
    pub const fn new(id: u64) -> Result<Self, ParseError> {
        if id == 0 {
            return Err(ParseError::ChainId);
        }
        Ok(Self(id))
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! hash32 {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        ///
        /// Text form: `0x` + 64 lowercase hex digits (uppercase digits are accepted).
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                decode_hex_fixed::<32>(text).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

hash32!(
    /// A transaction's hash: the EIP-712 signing digest of the transaction
    /// (see [`crate::tx`]). Known before signing, identical for every signature
    /// of the same content.
    TxHash
);
hash32!(
    /// A block's hash: the EIP-712 digest of its header (see [`crate::block`]).
    BlockHash
);
hash32!(
    /// The id of an HTLC: the [`TxHash`] of the `HtlcLock` transaction that created it.
    LockId
);
hash32!(
    /// An HTLC's hashlock: the SHA-256 of a 32-byte preimage.
    Hashlock
);
hash32!(
    /// The hash of an off-ledger document committed by an `Anchor` transaction.
    /// The ledger does not care which hash function produced it.
    DocumentHash
);
hash32!(
    /// The root of the RFC 6962 Merkle tree over a block's transaction hashes
    /// (see [`crate::merkle`]).
    MerkleRoot
);

impl From<TxHash> for LockId {
    fn from(hash: TxHash) -> Self {
        Self(hash.0)
    }
}

impl Hashlock {
    /// The hashlock of a preimage: SHA-256 of its bytes.
    pub fn of_preimage(preimage: &[u8]) -> Self {
        Self(crate::hash::sha256(preimage))
    }
}

/// The bytes offered to open an HTLC. A claim succeeds only with exactly 32
/// bytes whose SHA-256 is the hashlock; any length up to [`Preimage::LEN_MAX`]
/// can be carried so that a wrong length is a ledger outcome, not a parse error.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Preimage(Vec<u8>);

impl Preimage {
    /// The most bytes a claim may carry.
    pub const LEN_MAX: usize = 256;

    /// Checks and wraps preimage bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, ParseError> {
        if bytes.len() > Self::LEN_MAX {
            return Err(ParseError::PreimageTooLong);
        }
        Ok(Self(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Preimage(0x{})", hex::encode(&self.0))
    }
}

/// The parties of an anchored document: 1 to [`Parties::COUNT_MAX`] distinct
/// addresses, in the order the signer gave them.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Parties(Vec<Address>);

impl Parties {
    /// The most parties one anchor may name.
    pub const COUNT_MAX: usize = 32;

    /// Checks and wraps a list of parties.
    pub fn new(parties: Vec<Address>) -> Result<Self, ParseError> {
        if parties.is_empty() || parties.len() > Self::COUNT_MAX {
            return Err(ParseError::Parties);
        }
        for (i, party) in parties.iter().enumerate() {
            if parties[..i].contains(party) {
                return Err(ParseError::Parties);
            }
        }
        Ok(Self(parties))
    }

    /// The addresses.
    pub fn as_slice(&self) -> &[Address] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The four examples of the EIP-55 specification.
    const EIP55_EXAMPLES: [&str; 4] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn address_prints_eip55_and_round_trips() {
        for text in EIP55_EXAMPLES {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
            let lower: Address = text.to_lowercase().replace("0X", "0x").parse().unwrap();
            assert_eq!(lower, address);
            let upper = format!("0x{}", text[2..].to_uppercase());
            assert_eq!(upper.parse::<Address>().unwrap(), address);
        }
    }

    #[test]
    fn address_rejects_a_wrong_checksum_and_bad_hex() {
        // Flip the case of one letter of a valid checksummed address.
        let wrong = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert_eq!(wrong.parse::<Address>(), Err(ParseError::AddressChecksum));
        for bad in [
            "",
            "0x",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd",
            "0xzaAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn asset_codes_are_checked() {
        for good in ["EUR", "USDC", "TOKEN-1", "ABCDEFGHIJ12", "A"] {
            assert_eq!(AssetCode::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "eur",
            "1EUR",
            "-EUR",
            "EUR ",
            "ABCDEFGHIJ123",
            "EU_R",
            "ÉUR",
        ] {
            assert_eq!(AssetCode::new(bad), Err(ParseError::AssetCode), "{bad:?}");
        }
        // Codes sort like their text.
        let mut codes = ["USDC", "EUR", "EURO", "E"].map(|c| AssetCode::new(c).unwrap());
        codes.sort();
        assert_eq!(codes.map(|c| c.to_string()), ["E", "EUR", "EURO", "USDC"]);
    }

    #[test]
    fn amounts_parse_strictly_and_add_checked() {
        assert_eq!("0".parse::<Amount>().unwrap(), Amount::ZERO);
        assert_eq!(
            "340282366920938463463374607431768211455"
                .parse::<Amount>()
                .unwrap(),
            Amount::MAX
        );
        for bad in [
            "",
            "-1",
            "+1",
            "01",
            "1.0",
            "1e3",
            " 1",
            "340282366920938463463374607431768211456",
        ] {
            assert_eq!(bad.parse::<Amount>(), Err(ParseError::Amount), "{bad:?}");
        }
        let one = Amount::from_minor_units(1);
        assert_eq!(Amount::MAX.checked_add(one), None);
        assert_eq!(Amount::ZERO.checked_sub(one), None);
        assert_eq!(one.checked_add(one), Some(Amount::from_minor_units(2)));
    }

    #[test]
    fn scale_chain_id_preimage_and_parties_are_bounded() {
        assert!(Scale::new(18).is_ok());
        assert_eq!(Scale::new(19), Err(ParseError::Scale));
        assert_eq!(ChainId::new(0), Err(ParseError::ChainId));
        assert!(Preimage::new(vec![0; 256]).is_ok());
        assert_eq!(
            Preimage::new(vec![0; 257]),
            Err(ParseError::PreimageTooLong)
        );
        let a = Address::from_bytes([1; 20]);
        let b = Address::from_bytes([2; 20]);
        assert!(Parties::new(vec![a, b]).is_ok());
        assert_eq!(Parties::new(vec![]), Err(ParseError::Parties));
        assert_eq!(Parties::new(vec![a, b, a]), Err(ParseError::Parties));
        let many = (0..33u8).map(|i| Address::from_bytes([i; 20])).collect();
        assert_eq!(Parties::new(many), Err(ParseError::Parties));
    }

    #[test]
    fn hashes_parse_with_0x_and_exact_length() {
        let text = format!("0x{}", "ab".repeat(32));
        assert_eq!(text.parse::<TxHash>().unwrap().to_string(), text);
        assert!("ab".repeat(32).parse::<TxHash>().is_err());
        assert!(format!("0x{}", "ab".repeat(31)).parse::<TxHash>().is_err());
    }
}
