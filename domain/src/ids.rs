//! Validated identifiers. Each parses from a string with a reason when it is malformed; whether
//! a well-formed symbol or model actually exists is for the server to decide.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why an identifier was rejected, in words fit for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError(pub String);

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdError {}

/// A public id: a UUID, written and read in its hyphenated form only (one id, one spelling).
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(Uuid);

        impl $name {
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 36 {
                    return Err(IdError(format!(
                        concat!("'{}' is not a ", $what, " (expected a UUID such as 0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a)"),
                        truncate(s)
                    )));
                }
                Uuid::parse_str(s)
                    .map($name)
                    .map_err(|_| IdError(format!(concat!("'{}' is not a ", $what, " (expected a UUID)"), truncate(s))))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// The public id of one analysis run.
    RunId,
    "run id"
);

uuid_id!(
    /// The public id of one backtest.
    BacktestId,
    "backtest id"
);

uuid_id!(
    /// The public id of one batch: runs of many symbols started at once.
    BatchId,
    "batch id"
);

uuid_id!(
    /// The public id of one schedule: a watchlist started as a batch on every tick of a cron.
    ScheduleId,
    "schedule id"
);

/// A ticker symbol: 1–10 characters of A–Z, 0–9, `.`, `-` or `^`, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Symbol(String);

impl Symbol {
    pub const MAX_LEN: usize = 10;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Symbol {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(IdError("a symbol is required, e.g. AAPL".into()));
        }
        if t.chars().count() > Self::MAX_LEN {
            return Err(IdError(format!(
                "'{}' is too long for a ticker symbol (at most {} characters)",
                truncate(t),
                Self::MAX_LEN
            )));
        }
        let up = t.to_ascii_uppercase();
        if let Some(bad) =
            up.chars().find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '^')))
        {
            return Err(IdError(format!(
                "'{}' is not a ticker symbol: '{}' is not allowed (letters, digits, '.', '-', '^')",
                truncate(t),
                bad
            )));
        }
        Ok(Symbol(up))
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A model id from the catalog, e.g. `offline`, `gpt-4o-mini`, `grok-4-fast`, `ollama/llama3.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelId(String);

impl ModelId {
    pub const OFFLINE: &'static str = "offline";
    pub const MAX_LEN: usize = 64;

    pub fn offline() -> Self {
        ModelId(Self::OFFLINE.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_offline(&self) -> bool {
        self.0 == Self::OFFLINE
    }
}

impl FromStr for ModelId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(IdError("a model id is required, e.g. offline".into()));
        }
        if t.len() > Self::MAX_LEN {
            return Err(IdError(format!(
                "'{}' is too long for a model id (at most {} characters)",
                truncate(t),
                Self::MAX_LEN
            )));
        }
        if let Some(bad) = t
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | ':' | '/')))
        {
            return Err(IdError(format!(
                "'{}' is not a model id: '{}' is not allowed (lower-case letters, digits, '.', '-', '_', ':', '/')",
                truncate(t),
                bad
            )));
        }
        Ok(ModelId(t.to_string()))
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ModelId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ModelId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Echoing user input back is useful, echoing a megabyte of it is not.
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_round_trips_and_rejects_other_spellings() {
        let id: RunId = "0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a".parse().unwrap();
        assert_eq!(id.to_string(), "0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a");
        assert!("0b6c4a3e8f1d4c529a572f0d8e9b1c7a".parse::<RunId>().is_err());
        assert!("not-a-uuid".parse::<RunId>().is_err());
        assert!("0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7g".parse::<RunId>().is_err());
    }

    #[test]
    fn symbol_is_normalised_and_checked() {
        assert_eq!("  aapl ".parse::<Symbol>().unwrap().as_str(), "AAPL");
        assert_eq!("brk-b".parse::<Symbol>().unwrap().to_string(), "BRK-B");
        assert_eq!("brk.b".parse::<Symbol>().unwrap().as_str(), "BRK.B");
        assert_eq!("^gspc".parse::<Symbol>().unwrap().as_str(), "^GSPC");
        let e = "AA PL".parse::<Symbol>().unwrap_err();
        assert!(e.0.contains("' '"), "{e}");
        assert!("".parse::<Symbol>().is_err());
        assert_eq!("ABCDEFGHIJ".parse::<Symbol>().unwrap().as_str(), "ABCDEFGHIJ", "ten characters is the most");
        let e = "ABCDEFGHIJK".parse::<Symbol>().unwrap_err();
        assert_eq!(e.to_string(), "'ABCDEFGHIJK' is too long for a ticker symbol (at most 10 characters)");
        assert!("<script>".parse::<Symbol>().is_err());
    }

    #[test]
    fn model_id_accepts_catalog_shapes_only() {
        assert!("offline".parse::<ModelId>().unwrap().is_offline());
        assert_eq!("ollama/llama3.1:8b".parse::<ModelId>().unwrap().as_str(), "ollama/llama3.1:8b");
        assert!("GPT-4".parse::<ModelId>().is_err());
        assert!("a b".parse::<ModelId>().is_err());
        assert!("x".repeat(65).parse::<ModelId>().is_err());
        let longest = "x".repeat(64).parse::<ModelId>().unwrap();
        assert_eq!(longest.to_string(), "x".repeat(64), "64 characters is the most, shown as given");
        assert!(!longest.is_offline());
        assert!(!"offline-2".parse::<ModelId>().unwrap().is_offline());
    }

    #[test]
    fn long_input_is_truncated_in_messages() {
        let e = "!".repeat(5000).parse::<Symbol>().unwrap_err();
        assert!(e.0.len() < 200, "{}", e.0.len());
    }
}
