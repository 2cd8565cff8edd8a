//! The BLAKE3 hash that names a blob's bytes.

use std::fmt;
use std::str::FromStr;

/// A blob's id: the BLAKE3 hash of its bytes. Shown and stored as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobHash {
        BlobHash(*blake3::hash(bytes).as_bytes())
    }

    /// The hash from 32 raw bytes, or `None` if there are not exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<BlobHash> {
        bytes.try_into().ok().map(BlobHash)
    }

    /// The 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl From<blake3::Hash> for BlobHash {
    fn from(hash: blake3::Hash) -> Self {
        BlobHash(*hash.as_bytes())
    }
}

/// A text that is not 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a blob hash (64 lowercase hex digits)")]
pub struct NotAHash(pub String);

impl FromStr for BlobHash {
    type Err = NotAHash;

    /// Parses exactly 64 lowercase hex digits: the form the listing stores, so one blob has
    /// one spelling.
    fn from_str(text: &str) -> Result<BlobHash, NotAHash> {
        let lowercase = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lowercase {
            return Err(NotAHash(text.chars().take(80).collect()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| NotAHash(text.into()))?;
        Ok(BlobHash(out))
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", &self.to_hex()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_hex_and_refuse_other_spellings() {
        let hash = BlobHash::of(b"hello");
        assert_eq!(hash.to_hex().parse::<BlobHash>(), Ok(hash));
        assert!(hash.to_hex().to_uppercase().parse::<BlobHash>().is_err());
        assert!("../x".parse::<BlobHash>().is_err());
        assert!(hash.to_hex()[..63].parse::<BlobHash>().is_err());
        assert!(format!("{}g", &hash.to_hex()[..63])
            .parse::<BlobHash>()
            .is_err());
    }
}
