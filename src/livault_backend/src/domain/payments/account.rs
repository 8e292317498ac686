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

    // The ICRC-1 text, its checksum and the account identifier of these subaccounts are
    // tested in `icp_ledger_types` (with the same tag layout), against `ic-ledger-types`.
}
