//! A webhook secret: kept as its SHA-256 digest, so comparisons take the same time whatever
//! the candidate's length, and nothing can print it.

use subtle::{Choice, ConstantTimeEq};

/// A webhook secret. Kept as its SHA-256 digest so comparisons take the same time whatever
/// the candidate's length, and `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    /// The secret `value` (kept as its digest).
    pub fn new(value: &str) -> Self {
        Self(digest(value.as_bytes()))
    }

    /// One secret per non-blank line; two lines while a secret is being rotated.
    pub fn parse_lines(text: &str) -> Vec<Self> {
        text.lines().map(str::trim).filter(|line| !line.is_empty()).map(Self::new).collect()
    }

    pub(crate) fn matches(&self, candidate_digest: &[u8; 32]) -> Choice {
        self.0.ct_eq(candidate_digest)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

pub(crate) fn digest(bytes: &[u8]) -> [u8; 32] {
    crate::digest::sha256(bytes)
}
