//! Roaming settlement: the money rules of usage records, agreements, and
//! netting, modelled on the GSMA roaming processes (TAP3 audit summaries,
//! the BCE usage data, billing statement and dispute reports).
//!
//! - [`Tadig`]: an operator's TADIG code;
//! - [`Service`]: what is charged (voice originated / terminated, SMS, data);
//! - [`record`]: agreements (versioned rate cards with a discount), usage
//!   records, their validation with one error per violation, and the
//!   sequence rule;
//! - [`netting`]: net positions, bilateral and multilateral netting;
//! - [`statement`]: closing a period into per-operator statements, with FX
//!   conversion into a settlement currency;
//! - [`typed`]: the EIP-712 types an operator signs (a record, its
//!   acceptance, a dispute) and the gateway signs (a statement).
//!
//! Pure, like the rest of the crate: times are inputs (ms since the Unix
//! epoch), and amounts are integers in minor units.

pub mod netting;
pub mod record;
pub mod statement;
pub mod typed;

use std::fmt;
use std::str::FromStr;

/// An operator's TADIG code: three letters (the ISO 3166 alpha-3 country)
/// and two letters or digits, upper case, e.g. `DEUD2`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tadig([u8; 5]);

/// A TADIG code that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a TADIG code is 3 upper-case letters and 2 upper-case letters or digits, e.g. DEUD2; got {0:?}"
)]
pub struct BadTadig(pub String);

impl Tadig {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl FromStr for Tadig {
    type Err = BadTadig;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        let ok = bytes.len() == 5
            && bytes[..3].iter().all(u8::is_ascii_uppercase)
            && bytes[3..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err(BadTadig(text.chars().take(16).collect()));
        }
        let mut code = [0u8; 5];
        code.copy_from_slice(bytes);
        Ok(Tadig(code))
    }
}

impl fmt::Display for Tadig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Tadig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tadig({})", self.as_str())
    }
}

/// A charged service, with its unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// Voice calls originated by the roaming subscriber; seconds.
    VoiceMo,
    /// Voice calls terminated to the roaming subscriber; seconds.
    VoiceMt,
    /// SMS sent; messages.
    Sms,
    /// Data volume; kilobytes (1,000 bytes).
    Data,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 4] = [
        Service::VoiceMo,
        Service::VoiceMt,
        Service::Sms,
        Service::Data,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Service::VoiceMo => "voice_mo",
            Service::VoiceMt => "voice_mt",
            Service::Sms => "sms",
            Service::Data => "data",
        }
    }

    /// The unit of its quantities.
    pub fn unit(self) -> &'static str {
        match self {
            Service::VoiceMo | Service::VoiceMt => "seconds",
            Service::Sms => "messages",
            Service::Data => "kilobytes",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A service name that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("service must be one of voice_mo, voice_mt, sms, data; got {0:?}")]
pub struct BadService(pub String);

impl FromStr for Service {
    type Err = BadService;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| BadService(text.chars().take(16).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tadig_codes_parse_strictly() {
        for good in ["DEUD2", "GBRCN", "FRAF1", "USA01"] {
            assert_eq!(
                good.parse::<Tadig>().map(|t| t.to_string()),
                Ok(good.to_string())
            );
        }
        for bad in [
            "", "DEUD", "DEUD22", "deud2", "DE1D2", "DEU-2", "DEUd2", "ÄEUD2",
        ] {
            assert!(bad.parse::<Tadig>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn services_round_trip() {
        for service in Service::ALL {
            assert_eq!(service.name().parse::<Service>(), Ok(service));
        }
        assert!("voice".parse::<Service>().is_err());
    }
}
