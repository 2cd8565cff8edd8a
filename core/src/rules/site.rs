//! Site ids and incarnations: the 16-byte identities of a replica and of a life of its data,
//! and where fresh ones come from ([`IdSource`]: random, or seeded in tests).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// Where a replica's fresh 16-byte ids come from: its site id when its file is first made, and
/// each new incarnation. Random ([`RandomIds`]) unless a caller hands in its own, as the
/// simulation does with a seeded one so that a seed replays the same run.
pub trait IdSource: Send + Sync + 'static {
    /// 16 bytes that no other replica's source is expected ever to produce.
    fn fresh_id(&self) -> [u8; 16];
}

/// Ids from the thread's random number generator, which the operating system seeds.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn fresh_id(&self) -> [u8; 16] {
        rand::random()
    }
}

/// A shareable id source.
pub type SharedIdSource = Arc<dyn IdSource>;

/// Defines a 16-byte random identity: hex display, MessagePack binary on the wire.
macro_rules! random_id16 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A fresh random id.
            pub fn random() -> $name {
                $name(rand::random())
            }

            /// Reads an id from exactly 16 bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<$name> {
                bytes.try_into().ok().map($name)
            }

            /// The id as 32 lowercase hex characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let bytes: serde_bytes_like::Bytes = Deserialize::deserialize(deserializer)?;
                $name::from_slice(&bytes.0).ok_or_else(|| {
                    serde::de::Error::custom(concat!("a ", stringify!($name), " is exactly 16 bytes"))
                })
            }
        }
    };
}

random_id16!(
    /// The random, persisted 16-byte identity of one replica; the final tie-break between writes.
    SiteId
);

random_id16!(
    /// The identity of one life of a replica's data: a replica restored from a copy takes a new
    /// one, so cursors that other replicas hold for the old life are not trusted.
    Incarnation
);

mod serde_bytes_like {
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
    use std::fmt;

    /// Bytes accepted as MessagePack binary or as an array of small integers.
    pub(super) struct Bytes(pub(super) Vec<u8>);

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct BytesVisitor;
            impl<'de> Visitor<'de> for BytesVisitor {
                type Value = Bytes;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                    let mut out = Vec::new();
                    while let Some(byte) = seq.next_element::<u8>()? {
                        if out.len() >= 64 {
                            return Err(serde::de::Error::custom("byte string too long"));
                        }
                        out.push(byte);
                    }
                    Ok(Bytes(out))
                }
            }
            deserializer.deserialize_bytes(BytesVisitor)
        }
    }
}
