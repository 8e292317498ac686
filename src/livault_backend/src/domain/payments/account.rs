//! Where payers send ICP: the per-session subaccount of this canister, its legacy account
//! identifier (hex) and its ICRC-1 textual account.
//!
//! Subaccount of session `id` (32 bytes): 23 zero bytes, the tag byte `0x01` ("payment
//! session"), then `id` as 8 big-endian bytes. Session ids start at 1 and are never reused,
//! so every session has its own subaccount and none is the default (all-zero) subaccount.
//! Other tags stay free for future uses of this canister's subaccounts.

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

// Account identifiers, CRC-32 and the ICRC-1 textual encoding come from the crate shared
// with the embedded host (`icp_ledger_types`, no ic-cdk; its tests check the identifiers
// against `ic-ledger-types`).
pub use icp_ledger_types::{account_identifier, crc32, icrc1_decode, icrc1_text};

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Principal;

    const SPEC_OWNER: &str = "k2t6j-2nvnp-4zjm3-25dtz-6xhaa-c7boj-5gayf-oj3xs-i43lp-teztq-6ae";

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
