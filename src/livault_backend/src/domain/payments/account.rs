//! Where payers send ICP: the per-session subaccount of this canister, its legacy account
//! identifier (hex) and its ICRC-1 textual account.
//!
//! Subaccount of session `id` (32 bytes): 23 zero bytes, the tag byte `0x01` ("payment
//! session"), then `id` as 8 big-endian bytes. Session ids start at 1 and are never reused,
//! so every session has its own subaccount and none is the default (all-zero) subaccount.
//! Other tags stay free for future uses of this canister's subaccounts.

use candid::Principal;
use sha2::{Digest, Sha224};

/// Tag byte (index 23) of payment-session subaccounts.
pub const SESSION_SUBACCOUNT_TAG: u8 = 0x01;

/// The subaccount of payment session `session_id`.
pub fn session_subaccount(session_id: u64) -> [u8; 32] {
    let mut sub = [0u8; 32];
    sub[23] = SESSION_SUBACCOUNT_TAG;
    sub[24..].copy_from_slice(&session_id.to_be_bytes());
    sub
}

/// The session id encoded in a payment-session subaccount, if it is one.
pub fn session_of_subaccount(sub: &[u8; 32]) -> Option<u64> {
    if sub[..23].iter().all(|b| *b == 0) && sub[23] == SESSION_SUBACCOUNT_TAG {
        let mut id = [0u8; 8];
        id.copy_from_slice(&sub[24..]);
        Some(u64::from_be_bytes(id))
    } else {
        None
    }
}

/// The legacy account identifier of `(owner, subaccount)` (`None` = default subaccount):
/// `crc32(h) ‖ h` with `h = sha224("\x0Aaccount-id" ‖ owner ‖ subaccount)`.
///
/// Computed here rather than with `ic-ledger-types` (which pulls a second `ic-cdk` into every
/// build); the unit test below checks it against `ic-ledger-types` and the payments E2E
/// against `@dfinity/ledger-icp`'s vector.
pub fn account_identifier(owner: &Principal, subaccount: Option<[u8; 32]>) -> [u8; 32] {
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

/// CRC-32 (IEEE 802.3, as used by principals and account identifiers).
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
fn icrc1_checksum(owner: &Principal, sub: &[u8; 32]) -> String {
    let mut data = owner.as_slice().to_vec();
    data.extend_from_slice(sub);
    base32(&crc32(&data).to_be_bytes())
}

/// ICRC-1 textual encoding of an account: the owner's text alone for the default
/// subaccount, otherwise `<owner>-<checksum>.<subaccount hex without leading zeros>`.
pub fn icrc1_text(owner: &Principal, subaccount: Option<[u8; 32]>) -> String {
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
pub fn icrc1_decode(text: &str) -> Result<(Principal, Option<[u8; 32]>), String> {
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

    fn spec_sub() -> [u8; 32] {
        let mut s = [0u8; 32];
        for (i, b) in s.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        s
    }

    #[test]
    fn account_identifier_equals_ic_ledger_types() {
        use ic_ledger_types::{AccountIdentifier, Subaccount};
        let owners = [
            Principal::from_text(SPEC_OWNER).unwrap(),
            Principal::anonymous(),
            Principal::management_canister(),
            Principal::from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").unwrap(),
        ];
        for owner in owners {
            for sub in [
                None,
                Some([0; 32]),
                Some(spec_sub()),
                Some(session_subaccount(7)),
            ] {
                let theirs =
                    *AccountIdentifier::new(&owner, &Subaccount(sub.unwrap_or([0; 32]))).as_bytes();
                assert_eq!(account_identifier(&owner, sub), theirs, "{owner} {sub:?}");
            }
        }
    }

    #[test]
    fn crc32_known_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn subaccounts_are_unique_tagged_and_reversible() {
        let a = session_subaccount(1);
        assert_eq!(
            hex::encode(a),
            format!("{}01{}", "00".repeat(23), "0000000000000001")
        );
        assert_ne!(a, [0; 32]);
        let mut seen = std::collections::BTreeSet::new();
        for id in [1u64, 2, 255, 256, u32::MAX as u64, u64::MAX] {
            let s = session_subaccount(id);
            assert!(seen.insert(s));
            assert_eq!(session_of_subaccount(&s), Some(id));
        }
        assert_eq!(session_of_subaccount(&[0; 32]), None);
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
            let sub = session_subaccount(id);
            let text = icrc1_text(&owner, Some(sub));
            assert_eq!(icrc1_decode(&text), Ok((owner, Some(sub))));
        }
        assert_eq!(icrc1_decode(SPEC_OWNER), Ok((owner, None)));
        let good = icrc1_text(&owner, Some(session_subaccount(0xabc)));
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
        let id = account_identifier(&owner, Some(session_subaccount(1)));
        assert_eq!(&id[..4], &crc32(&id[4..]).to_be_bytes());
    }
}
