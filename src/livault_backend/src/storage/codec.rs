//! Encoding of stored records: one version byte, then CBOR (field names included).
//!
//! CBOR maps keyed by field name make records tolerant of new optional fields
//! (`#[serde(default)]`): an old record decodes into a newer struct. A breaking change gets a
//! new version byte and a migration; an unknown version is a programming error and traps.

use serde::{de::DeserializeOwned, Serialize};

/// Serializes `value` behind `version`.
pub fn encode<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    // Writing into a Vec cannot fail; serialization of our plain records cannot either.
    ciborium::into_writer(value, &mut out).expect("BUG: record serialization failed");
    out
}

/// Decodes a record written by [`encode`] with the expected `version`.
pub fn decode<T: DeserializeOwned>(version: u8, what: &str, bytes: &[u8]) -> T {
    match bytes.split_first() {
        Some((v, body)) if *v == version => ciborium::from_reader(body)
            .unwrap_or_else(|e| panic!("BUG: corrupt stored {what}: {e}")),
        Some((v, _)) => panic!("BUG: stored {what} has unknown version {v}"),
        None => panic!("BUG: empty stored {what}"),
    }
}

/// Implements `Storable` (unbounded) for a record type with a fixed schema version.
#[macro_export]
macro_rules! cbor_storable {
    ($ty:ty, $version:expr) => {
        impl ic_stable_structures::Storable for $ty {
            fn to_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
                std::borrow::Cow::Owned($crate::storage::codec::encode($version, self))
            }
            fn into_bytes(self) -> Vec<u8> {
                $crate::storage::codec::encode($version, &self)
            }
            fn from_bytes(bytes: std::borrow::Cow<[u8]>) -> Self {
                $crate::storage::codec::decode($version, stringify!($ty), &bytes)
            }
            const BOUND: ic_stable_structures::storable::Bound =
                ic_stable_structures::storable::Bound::Unbounded;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Old {
        a: u64,
        b: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct New {
        a: u64,
        b: String,
        #[serde(default)]
        c: Option<u32>,
    }

    #[test]
    fn new_optional_fields_are_tolerated() {
        let bytes = encode(
            1,
            &Old {
                a: 7,
                b: "x".into(),
            },
        );
        let new: New = decode(1, "New", &bytes);
        assert_eq!(
            new,
            New {
                a: 7,
                b: "x".into(),
                c: None
            }
        );
        // And a newer record still reads as the older shape (unknown fields ignored).
        let bytes = encode(
            1,
            &New {
                a: 1,
                b: "y".into(),
                c: Some(3),
            },
        );
        let old: Old = decode(1, "Old", &bytes);
        assert_eq!(
            old,
            Old {
                a: 1,
                b: "y".into()
            }
        );
    }

    #[test]
    #[should_panic(expected = "unknown version 2")]
    fn unknown_version_is_refused() {
        let bytes = encode(
            2,
            &Old {
                a: 7,
                b: "x".into(),
            },
        );
        let _: Old = decode(1, "Old", &bytes);
    }
}
