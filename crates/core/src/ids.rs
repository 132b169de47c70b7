//! Identifiers parsed once at the edge. A `Sku` identifies a variant; a `Code` identifies a
//! location or a channel. Past the edge nothing re-checks them.

use std::fmt;

/// Why a wire string is not a valid identifier. The message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    #[error("{what} is empty; give 1 to {max} characters")]
    Empty { what: &'static str, max: usize },
    #[error("{what} is {len} characters long; the limit is {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "{what} holds a control character at position {position}; use printable characters only"
    )]
    ControlCharacter { what: &'static str, position: usize },
    #[error("{what} holds {found:?} at position {position}; use letters, digits, '-', '_' or '.'")]
    BadCharacter {
        what: &'static str,
        found: char,
        position: usize,
    },
}

/// A variant's stock-keeping unit: case-sensitive, trimmed, 1–128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let trimmed = raw.trim();
        let what = "sku";
        let len = trimmed.chars().count();
        if len == 0 {
            return Err(InvalidId::Empty {
                what,
                max: Self::MAX_CHARS,
            });
        }
        if len > Self::MAX_CHARS {
            return Err(InvalidId::TooLong {
                what,
                len,
                max: Self::MAX_CHARS,
            });
        }
        if let Some(position) = trimmed.chars().position(char::is_control) {
            return Err(InvalidId::ControlCharacter { what, position });
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The code of a location or a channel: 1–64 characters of ASCII letters, digits, `-`, `_`, `.`
/// so that it can stand in a URL path unescaped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Code(String);

impl Code {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(what: &'static str, raw: &str) -> Result<Self, InvalidId> {
        let len = raw.chars().count();
        if len == 0 {
            return Err(InvalidId::Empty {
                what,
                max: Self::MAX_CHARS,
            });
        }
        if len > Self::MAX_CHARS {
            return Err(InvalidId::TooLong {
                what,
                len,
                max: Self::MAX_CHARS,
            });
        }
        for (position, found) in raw.chars().enumerate() {
            if found.is_control() {
                return Err(InvalidId::ControlCharacter { what, position });
            }
            if !(found.is_ascii_alphanumeric() || matches!(found, '-' | '_' | '.')) {
                return Err(InvalidId::BadCharacter {
                    what,
                    found,
                    position,
                });
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_is_trimmed_and_case_sensitive() {
        assert_eq!(Sku::parse("  Tee-S ").unwrap().as_str(), "Tee-S");
        assert_ne!(Sku::parse("tee").unwrap(), Sku::parse("TEE").unwrap());
    }

    #[test]
    fn sku_rejects_empty_long_and_control() {
        assert!(matches!(Sku::parse("   "), Err(InvalidId::Empty { .. })));
        assert!(matches!(
            Sku::parse(&"x".repeat(129)),
            Err(InvalidId::TooLong { len: 129, .. })
        ));
        assert!(Sku::parse(&"x".repeat(128)).is_ok());
        assert!(matches!(
            Sku::parse("a\u{7}b"),
            Err(InvalidId::ControlCharacter { position: 1, .. })
        ));
    }

    #[test]
    fn code_allows_url_safe_characters_only() {
        assert!(Code::parse("location", "wh-1.east_2").is_ok());
        assert!(matches!(
            Code::parse("location", "wh 1"),
            Err(InvalidId::BadCharacter { found: ' ', .. })
        ));
    }
}
