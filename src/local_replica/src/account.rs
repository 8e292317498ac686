//! ICP account identifiers: `CRC32(h) ++ h` with `h = SHA-224("\x0Aaccount-id" ++ principal ++ subaccount)`.

use candid::Principal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha224};
use std::fmt;

/// A 32-byte ICP ledger account identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub [u8; 32]);

/// Errors parsing an account identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountIdError {
    /// Not 64 hex characters / 32 bytes.
    #[error("account identifier must be 32 bytes (64 hex characters), got {0} bytes")]
    Length(usize),
    /// Not hex.
    #[error("account identifier is not valid hex")]
    Hex,
    /// CRC32 checksum mismatch.
    #[error("account identifier checksum mismatch")]
    Checksum,
}

impl AccountId {
    /// The account of `owner` with `subaccount` (all zeros when `None`).
    pub fn new(owner: &Principal, subaccount: Option<[u8; 32]>) -> Self {
        let sub = subaccount.unwrap_or([0; 32]);
        let mut h = Sha224::new();
        h.update(b"\x0Aaccount-id");
        h.update(owner.as_slice());
        h.update(sub);
        let hash = h.finalize();
        let crc = crc32fast::hash(&hash);
        let mut out = [0u8; 32];
        out[..4].copy_from_slice(&crc.to_be_bytes());
        out[4..].copy_from_slice(&hash);
        AccountId(out)
    }

    /// Parses 32 bytes, checking the checksum.
    pub fn from_slice(b: &[u8]) -> Result<Self, AccountIdError> {
        let arr: [u8; 32] = b.try_into().map_err(|_| AccountIdError::Length(b.len()))?;
        if crc32fast::hash(&arr[4..]).to_be_bytes() != arr[..4] {
            return Err(AccountIdError::Checksum);
        }
        Ok(AccountId(arr))
    }

    /// Parses 64 hex characters, checking the checksum.
    pub fn from_hex(s: &str) -> Result<Self, AccountIdError> {
        let b = hex::decode(s.trim()).map_err(|_| AccountIdError::Hex)?;
        Self::from_slice(&b)
    }

    /// Lower-case hex (as dfx prints it).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.to_hex())
    }
}

/// Converts an optional subaccount blob into 32 bytes.
pub fn subaccount(b: Option<&[u8]>) -> Result<Option<[u8; 32]>, AccountIdError> {
    match b {
        None => Ok(None),
        Some(b) => Ok(Some(
            b.try_into().map_err(|_| AccountIdError::Length(b.len()))?,
        )),
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AccountId::from_hex(&s).map_err(serde::de::Error::custom)
    }
}
