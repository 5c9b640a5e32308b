//! SHA-256 by AWS-LC (linked already for TLS): secrets compared as digests, and the short
//! hashes that make keys from events, ids and versions.

use aws_lc_rs::digest::{Context, SHA256};

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The first 16 hex digits of the SHA-256 of `bytes` (event-log keys are made of it:
/// changing it would give a stored event a second key).
pub fn short_hash(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes).get(..8).unwrap_or_default())
}

/// [`short_hash`] of several pieces, each ended so that ("ab", "c") and ("a", "bc") differ.
pub struct ShortHasher(Context);

impl ShortHasher {
    /// An empty hash.
    pub fn new() -> Self {
        Self(Context::new(&SHA256))
    }

    /// Adds `bytes` as one piece.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    /// The first 16 hex digits of the hash.
    pub fn finish(self) -> String {
        hex::encode(self.0.finish().as_ref().get(..8).unwrap_or_default())
    }
}

impl Default for ShortHasher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256() {
        // SHA-256 of the empty string, as published.
        assert_eq!(hex::encode(sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(short_hash(b""), "e3b0c44298fc1c14");
    }

    #[test]
    fn pieces_are_kept_apart() {
        let of = |pieces: &[&str]| {
            let mut hasher = ShortHasher::new();
            pieces.iter().for_each(|piece| hasher.update(piece.as_bytes()));
            hasher.finish()
        };
        assert_ne!(of(&["ab", "c"]), of(&["a", "bc"]));
        assert_eq!(of(&["ab", "c"]), of(&["ab", "c"]));
    }
}
