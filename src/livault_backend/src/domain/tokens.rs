//! Secret tokens (invite tokens, recovery codes): format, strict validation and hashing.
//!
//! A token is a fixed prefix followed by 64 lowercase hex digits: the 32 bytes of one
//! `raw_rand` call (256 bits). Only `sha256(token text)` is stored; the token is shown once.
//! Input is validated for exact length and alphabet before it is hashed, so malformed text
//! never reaches a lookup (`TokenInvalid`).

use sha2::{Digest, Sha256};

use super::error::{VaultError, VaultResult};

/// Prefix of invite tokens.
pub const INVITE_PREFIX: &str = "lvi1_";
/// Prefix of recovery codes.
pub const RECOVERY_PREFIX: &str = "lvr1_";
/// Hex digits after the prefix.
pub const SECRET_HEX_LEN: usize = 64;
/// Longest token text accepted by any endpoint (prefix + hex).
pub const TOKEN_LEN: usize = 5 + SECRET_HEX_LEN;

/// Token text for `prefix` and 32 random bytes.
pub fn format(prefix: &str, random: &[u8; 32]) -> String {
    format!("{prefix}{}", hex::encode(random))
}

/// The stored hash of a token: SHA-256 of its exact text.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Validates `token` against the format for `prefix` and returns its hash.
/// Anything else (length, prefix, upper case, other characters) is `TokenInvalid`.
pub fn parse(prefix: &str, token: &str) -> VaultResult<[u8; 32]> {
    if token.len() != prefix.len() + SECRET_HEX_LEN {
        return Err(VaultError::TokenInvalid);
    }
    let Some(body) = token.strip_prefix(prefix) else {
        return Err(VaultError::TokenInvalid);
    };
    if !body.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(VaultError::TokenInvalid);
    }
    Ok(hash(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strict_format() {
        let t = format(INVITE_PREFIX, &[0xab; 32]);
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(parse(INVITE_PREFIX, &t), Ok(hash(&t)));
        // Wrong prefix, the other kind, upper case, short, long, non-hex, whitespace.
        assert_eq!(parse(RECOVERY_PREFIX, &t), Err(VaultError::TokenInvalid));
        assert_eq!(
            parse(INVITE_PREFIX, &t.to_uppercase()),
            Err(VaultError::TokenInvalid)
        );
        assert_eq!(
            parse(INVITE_PREFIX, &t[..t.len() - 1]),
            Err(VaultError::TokenInvalid)
        );
        assert_eq!(
            parse(INVITE_PREFIX, &format!("{t}0")),
            Err(VaultError::TokenInvalid)
        );
        let bad = format!("{}g{}", INVITE_PREFIX, &t[6..]);
        assert_eq!(parse(INVITE_PREFIX, &bad), Err(VaultError::TokenInvalid));
        assert_eq!(
            parse(INVITE_PREFIX, &format!(" {}", &t[1..])),
            Err(VaultError::TokenInvalid)
        );
        assert_eq!(parse(INVITE_PREFIX, ""), Err(VaultError::TokenInvalid));
        // Multi-byte characters of the right byte length are refused too.
        let multi = format!("{INVITE_PREFIX}{}", "é".repeat(32));
        assert_eq!(multi.len(), TOKEN_LEN);
        assert_eq!(parse(INVITE_PREFIX, &multi), Err(VaultError::TokenInvalid));
    }

    #[test]
    fn distinct_randomness_gives_distinct_hashes() {
        let a = format(INVITE_PREFIX, &[1; 32]);
        let b = format(INVITE_PREFIX, &[2; 32]);
        assert_ne!(hash(&a), hash(&b));
    }
}
