//! Candid replies whose message header and type table are built once per wasm instance.
//!
//! `candid::encode_one` rebuilds the type table of the reply type on every call. For the
//! `VaultResult<_>` types that table includes the whole `VaultError` variant and costs about
//! 1.8 M instructions — for the byte-heavy endpoints (`upload_chunk`, `get_download_chunk`)
//! that is ~1.7 instructions per byte of a 1 MiB chunk. This module caches the part of the
//! encoding that depends only on the type (`DIDL`, type table, argument count and type
//! reference) and serializes the value alone: candid's value serialization never consults
//! the type table (variant indices and record field orders are fixed when `CandidType` is
//! derived), so prefix ‖ value is byte for byte what `encode_one` produces (unit tests below
//! and in `api::content` check it).

use candid::ser::ValueSerializer;
use candid::CandidType;

/// The value part of `value`'s Candid encoding (no header, no type table).
pub fn value_bytes<T: CandidType>(value: &T) -> Vec<u8> {
    let mut ser = ValueSerializer::new();
    value
        .idl_serialize(&mut ser)
        .unwrap_or_else(|e| ic_cdk::trap(format!("BUG: encode reply value: {e}")));
    ser.get_result().to_vec()
}

/// The type-only prefix of `encode_one(v)` for every `v` of type `T`, found from one `sample`:
/// its full encoding minus its value part.
pub fn type_prefix<T: CandidType>(sample: &T) -> Vec<u8> {
    let mut full = candid::encode_one(sample)
        .unwrap_or_else(|e| ic_cdk::trap(format!("BUG: encode reply: {e}")));
    let value = value_bytes(sample);
    assert!(
        full.ends_with(&value),
        "BUG: a Candid encoding does not end with its value"
    );
    full.truncate(full.len() - value.len());
    full
}

/// `encode_one(value)` given the cached `prefix` of `T` (from [`type_prefix`]).
pub fn encode_with_prefix<T: CandidType>(prefix: &[u8], value: &T) -> Vec<u8> {
    let v = value_bytes(value);
    let mut out = Vec::with_capacity(prefix.len() + v.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(&v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::{VaultError, VaultResult};
    use crate::domain::types::VaultStatus;

    #[test]
    fn prefix_and_value_equal_the_typed_encoding() {
        let sample: VaultResult<Option<Vec<u64>>> = Err(VaultError::NotFound);
        let prefix = type_prefix(&sample);
        let values: Vec<VaultResult<Option<Vec<u64>>>> = vec![
            Ok(None),
            Ok(Some(vec![])),
            Ok(Some(vec![1, u64::MAX])),
            Err(VaultError::NotAuthorized),
            Err(VaultError::InvalidState {
                current: VaultStatus::Active,
            }),
            Err(VaultError::invalid("field", "reason")),
        ];
        for v in values {
            let bytes = encode_with_prefix(&prefix, &v);
            assert_eq!(bytes, candid::encode_one(&v).unwrap());
            let back: VaultResult<Option<Vec<u64>>> = candid::decode_one(&bytes).unwrap();
            assert_eq!(back, v);
        }
    }
}
