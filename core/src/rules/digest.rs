//! The state digest: an order-independent hash of a replica's whole CRDT state.
//!
//! Every live register contributes BLAKE3(table, key, slot, causal length, clock, site, value);
//! contributions are added modulo 2^256, so the digest does not depend on the order cells were
//! written or merged in, and a register's contribution can be subtracted when it is replaced.
//! Two replicas have equal digests exactly when they hold the same registers (up to BLAKE3
//! collisions).

use crate::rules::merge::{Register, Slot};
use std::fmt;

/// A sum of register hashes modulo 2^256, as four little-endian 64-bit limbs.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Digest([u64; 4]);

impl Digest {
    /// The digest of an empty state.
    pub const ZERO: Digest = Digest([0; 4]);

    /// Adds one contribution.
    pub fn add(&mut self, other: &Digest) {
        let mut carry = false;
        for (limb, add) in self.0.iter_mut().zip(other.0) {
            let (sum, c1) = limb.overflowing_add(add);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            *limb = sum;
            carry = c1 || c2;
        }
    }

    /// Removes one contribution added before.
    pub fn sub(&mut self, other: &Digest) {
        let mut borrow = false;
        for (limb, sub) in self.0.iter_mut().zip(other.0) {
            let (diff, b1) = limb.overflowing_sub(sub);
            let (diff, b2) = diff.overflowing_sub(u64::from(borrow));
            *limb = diff;
            borrow = b1 || b2;
        }
    }

    /// The 32-byte form (little-endian).
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Reads the 32-byte form; `None` unless exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Digest> {
        if bytes.len() != 32 {
            return None;
        }
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(word);
        }
        Some(Digest(limbs))
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

const DOMAIN: &str = "weft 2026-11 register digest v1";

/// BLAKE3's key-derivation mode for [`DOMAIN`], with the derived key computed once.
fn domain_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| blake3::derive_key(DOMAIN, b""))
}

/// The contribution of one register of row `key` (canonical bytes) of `table`.
pub(crate) fn register_hash(table: &str, key: &[u8], slot: &Slot, register: &Register) -> Digest {
    // One buffer and one update: BLAKE3's per-call overhead dominated with eight small ones.
    let mut input = Vec::with_capacity(64 + table.len() + key.len());
    input.extend_from_slice(&(table.len() as u64).to_le_bytes());
    input.extend_from_slice(table.as_bytes());
    input.extend_from_slice(&(key.len() as u64).to_le_bytes());
    input.extend_from_slice(key);
    match slot {
        Slot::Row => input.push(0),
        Slot::Column(name) => {
            input.push(1);
            input.extend_from_slice(&(name.len() as u64).to_le_bytes());
            input.extend_from_slice(name.as_bytes());
        }
    }
    input.extend_from_slice(&register.stamp.cl.to_le_bytes());
    input.extend_from_slice(&register.stamp.clock.to_le_bytes());
    input.extend_from_slice(&register.stamp.site.0);
    register.value.write_canonical(&mut input);
    let hash = blake3::keyed_hash(domain_key(), &input);
    Digest::from_bytes(hash.as_bytes()).expect("BLAKE3 output is 32 bytes")
}

/// The sum of the contributions of several registers of one row.
pub(crate) fn row_hash<'a>(
    table: &str,
    key: &[u8],
    registers: impl IntoIterator<Item = (&'a Slot, &'a Register)>,
) -> Digest {
    let mut sum = Digest::ZERO;
    for (slot, register) in registers {
        sum.add(&register_hash(table, key, slot, register));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_sub_returns_to_start_across_carries() {
        let mut d = Digest([u64::MAX, u64::MAX, 0, 5]);
        let one = Digest([1, 0, 0, 0]);
        d.add(&one);
        assert_eq!(d, Digest([0, 0, 1, 5]));
        d.sub(&one);
        assert_eq!(d, Digest([u64::MAX, u64::MAX, 0, 5]));
        assert_eq!(Digest::from_bytes(&d.to_bytes()), Some(d));
    }
}
