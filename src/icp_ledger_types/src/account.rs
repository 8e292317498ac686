//! Legacy ICP account identifiers and ICRC-1 textual accounts.
//!
//! An account identifier is `crc32(h) ‖ h` with `h = sha224("\x0Aaccount-id" ‖ owner ‖
//! subaccount)` (32 bytes; the default subaccount is 32 zero bytes). [`account_identifier`]
//! computes the bytes; [`AccountId`] is the checked type (hex as dfx prints it, checksum
//! verified when parsed).

use candid::Principal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha224};
use std::fmt;

/// A 32-byte subaccount.
pub type Subaccount = [u8; 32];

/// The legacy account identifier of `(owner, subaccount)` (`None` = default subaccount):
/// `crc32(h) ‖ h` with `h = sha224("\x0Aaccount-id" ‖ owner ‖ subaccount)`.
pub fn account_identifier(owner: &Principal, subaccount: Option<Subaccount>) -> [u8; 32] {
    let mut hasher = Sha224::new();
    hasher.update(b"\x0Aaccount-id");
    hasher.update(owner.as_slice());
    hasher.update(subaccount.unwrap_or([0; 32]));
    let hash = hasher.finalize();
    let mut out = [0u8; 32];
    out[..4].copy_from_slice(&crc32(&hash).to_be_bytes());
    out[4..].copy_from_slice(&hash);
    out
}

/// CRC-32 (IEEE 802.3, as used by principals and account identifiers). Bitwise, without a
/// table: the canister hashes a few dozen bytes per account, and the wasm stays small.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A 32-byte ICP ledger account identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub [u8; 32]);

/// Errors parsing an account identifier or a subaccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountIdError {
    /// Not 32 bytes (64 hex characters).
    Length(usize),
    /// Not hex.
    Hex,
    /// CRC-32 checksum mismatch.
    Checksum,
}

impl fmt::Display for AccountIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountIdError::Length(n) => write!(
                f,
                "account identifier must be 32 bytes (64 hex characters), got {n} bytes"
            ),
            AccountIdError::Hex => f.write_str("account identifier is not valid hex"),
            AccountIdError::Checksum => f.write_str("account identifier checksum mismatch"),
        }
    }
}

impl std::error::Error for AccountIdError {}

impl AccountId {
    /// The account of `owner` with `subaccount` (all zeros when `None`).
    pub fn new(owner: &Principal, subaccount: Option<Subaccount>) -> Self {
        AccountId(account_identifier(owner, subaccount))
    }

    /// Parses 32 bytes, checking the checksum.
    pub fn from_slice(b: &[u8]) -> Result<Self, AccountIdError> {
        let arr: [u8; 32] = b.try_into().map_err(|_| AccountIdError::Length(b.len()))?;
        if crc32(&arr[4..]).to_be_bytes() != arr[..4] {
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

/// An optional subaccount blob as 32 bytes (`None` stays `None`; another length is an error).
pub fn subaccount(b: Option<&[u8]>) -> Result<Option<Subaccount>, AccountIdError> {
    match b {
        None => Ok(None),
        Some(b) => Ok(Some(
            b.try_into().map_err(|_| AccountIdError::Length(b.len()))?,
        )),
    }
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// RFC 4648 base32, lowercase, without padding.
fn base32(data: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in data {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The ICRC-1 checksum of an account: base32 of the big-endian CRC-32 of
/// `owner bytes ‖ subaccount` (7 characters).
fn icrc1_checksum(owner: &Principal, sub: &Subaccount) -> String {
    let mut data = owner.as_slice().to_vec();
    data.extend_from_slice(sub);
    base32(&crc32(&data).to_be_bytes())
}

/// ICRC-1 textual encoding of an account: the owner's text alone for the default
/// subaccount, otherwise `<owner>-<checksum>.<subaccount hex without leading zeros>`.
pub fn icrc1_text(owner: &Principal, subaccount: Option<Subaccount>) -> String {
    let sub = subaccount.unwrap_or([0; 32]);
    if sub == [0; 32] {
        return owner.to_text();
    }
    let hex = hex::encode(sub);
    let trimmed = hex.trim_start_matches('0');
    format!(
        "{}-{}.{}",
        owner.to_text(),
        icrc1_checksum(owner, &sub),
        trimmed
    )
}

/// Decodes an ICRC-1 textual account, checking every rule of the encoding (checksum, no
/// leading zeros, non-default subaccount after a `.`). Returns `(owner, subaccount)`.
pub fn icrc1_decode(text: &str) -> Result<(Principal, Option<Subaccount>), String> {
    let Some((head, sub_hex)) = text.split_once('.') else {
        let owner = Principal::from_text(text).map_err(|e| format!("bad principal: {e}"))?;
        return Ok((owner, None));
    };
    if sub_hex.is_empty() || sub_hex.len() > 64 {
        return Err("subaccount must be 1..=64 hex digits".into());
    }
    if sub_hex.starts_with('0') {
        return Err("subaccount must not have leading zeros".into());
    }
    if !sub_hex
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err("subaccount must be lowercase hex".into());
    }
    let (owner_text, checksum) = head
        .rsplit_once('-')
        .ok_or_else(|| "missing checksum".to_string())?;
    let owner = Principal::from_text(owner_text).map_err(|e| format!("bad principal: {e}"))?;
    let padded = format!("{sub_hex:0>64}");
    let bytes = hex::decode(&padded).map_err(|e| format!("bad hex: {e}"))?;
    let mut sub = [0u8; 32];
    sub.copy_from_slice(&bytes);
    if checksum != icrc1_checksum(&owner, &sub) {
        return Err("checksum mismatch".into());
    }
    Ok((owner, Some(sub)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_OWNER: &str = "k2t6j-2nvnp-4zjm3-25dtz-6xhaa-c7boj-5gayf-oj3xs-i43lp-teztq-6ae";

    fn spec_sub() -> Subaccount {
        let mut s = [0u8; 32];
        for (i, b) in s.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        s
    }

    /// A subaccount shaped like the canister's payment-session subaccounts (a tag byte, then
    /// a big-endian id).
    fn tagged_sub(id: u64) -> Subaccount {
        let mut sub = [0u8; 32];
        sub[23] = 0x01;
        sub[24..].copy_from_slice(&id.to_be_bytes());
        sub
    }

    #[test]
    fn account_identifier_equals_ic_ledger_types() {
        use ic_ledger_types::{AccountIdentifier, Subaccount as TheirSub};
        let owners = [
            Principal::from_text(SPEC_OWNER).unwrap(),
            Principal::anonymous(),
            Principal::management_canister(),
            Principal::from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").unwrap(),
        ];
        for owner in owners {
            for sub in [None, Some([0; 32]), Some(spec_sub()), Some(tagged_sub(7))] {
                let theirs =
                    *AccountIdentifier::new(&owner, &TheirSub(sub.unwrap_or([0; 32]))).as_bytes();
                assert_eq!(account_identifier(&owner, sub), theirs, "{owner} {sub:?}");
                assert_eq!(AccountId::new(&owner, sub).0, theirs);
                // The official hex form parses back, checksum included.
                let hex =
                    AccountIdentifier::new(&owner, &TheirSub(sub.unwrap_or([0; 32]))).to_hex();
                assert_eq!(AccountId::from_hex(&hex).unwrap().0, theirs);
            }
        }
    }

    #[test]
    fn crc32_known_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn account_id_parsing_checks_length_hex_and_checksum() {
        let owner = Principal::from_text(SPEC_OWNER).unwrap();
        let id = AccountId::new(&owner, Some(spec_sub()));
        assert_eq!(AccountId::from_hex(&id.to_hex()), Ok(id));
        assert_eq!(AccountId::from_slice(&id.0), Ok(id));
        assert_eq!(
            AccountId::from_hex(&id.to_hex()[2..]),
            Err(AccountIdError::Length(31))
        );
        assert_eq!(AccountId::from_hex("zz"), Err(AccountIdError::Hex));
        let mut bad = id.0;
        bad[31] ^= 1;
        assert_eq!(AccountId::from_slice(&bad), Err(AccountIdError::Checksum));
        // Serde reads the hex text (the host's saved state), checksum checked.
        assert_eq!(deserialize_text(&id.to_hex()), Ok(id));
        assert!(deserialize_text(&hex::encode(bad)).is_err());
    }

    /// Deserializes a string with serde's value deserializer (no data-format crate here).
    fn deserialize_text(text: &str) -> Result<AccountId, serde::de::value::Error> {
        use serde::de::IntoDeserializer;
        let d: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            text.into_deserializer();
        AccountId::deserialize(d)
    }

    #[test]
    fn subaccount_blobs_must_be_32_bytes() {
        assert_eq!(subaccount(None), Ok(None));
        assert_eq!(subaccount(Some(&[7; 32])), Ok(Some([7; 32])));
        assert_eq!(subaccount(Some(&[7; 31])), Err(AccountIdError::Length(31)));
    }

    #[test]
    fn icrc1_encoding_matches_the_standard_examples() {
        let owner = Principal::from_text(SPEC_OWNER).unwrap();
        // Examples of the ICRC-1 textual encoding specification.
        assert_eq!(icrc1_text(&owner, None), SPEC_OWNER);
        assert_eq!(icrc1_text(&owner, Some([0; 32])), SPEC_OWNER);
        assert_eq!(
            icrc1_text(&owner, Some(spec_sub())),
            format!(
                "{SPEC_OWNER}-dfxgiyy.102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
            )
        );
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(
            icrc1_text(&owner, Some(one)),
            format!("{SPEC_OWNER}-6cc627i.1")
        );
    }

    #[test]
    fn icrc1_round_trips_and_rejects_bad_text() {
        let owner = Principal::from_text(SPEC_OWNER).unwrap();
        for id in [1u64, 42, 1 << 40] {
            let sub = tagged_sub(id);
            let text = icrc1_text(&owner, Some(sub));
            assert_eq!(icrc1_decode(&text), Ok((owner, Some(sub))));
        }
        assert_eq!(icrc1_decode(SPEC_OWNER), Ok((owner, None)));
        let good = icrc1_text(&owner, Some(tagged_sub(0xabc)));
        assert!(good.ends_with(".10000000000000abc"));
        // A changed subaccount digit fails the checksum; so do a leading zero, an empty or
        // uppercase subaccount, and a missing checksum.
        assert!(icrc1_decode(&good.replace(".1000", ".1001")).is_err());
        let (head, tail) = good.split_once('.').unwrap();
        assert!(icrc1_decode(&format!("{head}.0{tail}")).is_err());
        assert!(icrc1_decode(&format!("{head}.")).is_err());
        assert!(icrc1_decode(&format!("{head}.{}", tail.to_uppercase())).is_err());
        assert!(icrc1_decode(&format!("{SPEC_OWNER}.{tail}")).is_err());
    }

    #[test]
    fn account_identifier_of_the_default_subaccount_equals_none() {
        let owner = Principal::from_text(SPEC_OWNER).unwrap();
        assert_eq!(
            account_identifier(&owner, None),
            account_identifier(&owner, Some([0; 32]))
        );
        let id = account_identifier(&owner, Some(tagged_sub(1)));
        assert_eq!(&id[..4], &crc32(&id[4..]).to_be_bytes());
    }
}
