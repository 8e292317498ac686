//! vetKeys records: the cached public key, the stored counters and the metrics view. The
//! rules around them are `domain::keys`.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

// The vetKD public key of this canister and LiVault's context.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct VetKdPublicKey {
    pub key_name: String,
    // `domain::keys::CONTEXT`.
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
    // Compressed BLS12-381 G2 point (96 bytes).
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    // When the canister fetched it from the management canister.
    pub fetched_at: u64,
}

// vetKeys part of `get_metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct VetKeyMetrics {
    // The configured master key name.
    pub key_name: String,
    // Whether the public key of that key is cached.
    pub public_key_cached: bool,
    // vetKeys handed out (`key.derived`), in total.
    pub derived_total: u64,
    // Cycles attached to those derivations (the vetKD fees).
    pub cycles_spent: u128,
    // Derivations the management canister did not complete (released, not counted above).
    pub failed_total: u64,
    // Since the last upgrade: refusals for the per-caller daily limit or the unpaid-vault cap.
    pub rate_limited: u64,
    // Since the last upgrade: refusals for the per-vault budget.
    pub budget_exhausted: u64,
}

/// One entry of the vetKeys map (the vetKeys map of the storage).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyRecord {
    /// `(0, 0)`: the cached public key.
    PublicKey(VetKdPublicKey),
    /// `(1, 0)`: canister-wide counters.
    Totals(KeyTotals),
    /// `(2, vault id)`: a vault's derivation counters.
    Usage(VaultKeyUsage),
}

/// Canister-wide vetKeys counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyTotals {
    pub derived: u64,
    pub cycles: u128,
    pub failed: u64,
    /// UTC day of `unpaid_count`.
    pub unpaid_day: u64,
    /// Derivations (reserved or done) for `Draft` vaults on `unpaid_day`.
    pub unpaid_count: u32,
}

/// One caller's derivations on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerDay {
    pub principal: Principal,
    pub day: u64,
    pub count: u32,
}

/// A vault's derivation counters: the current budget window and today's per-caller counts
/// (older days are dropped on every write, so the list holds at most the owner and heirs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultKeyUsage {
    pub window_start: u64,
    pub window_count: u32,
    pub callers: Vec<CallerDay>,
}

/// Why a `vetkd_derive_key` call failed (what the runtime's `vetkd_derive_key`
/// returns; `domain::keys` maps it to the caller's error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VetKdFailure {
    /// The management canister refused the transport public key.
    InvalidTransportKey(String),
    /// Anything else: rejected, not answered, unknown key, insufficient cycles.
    Unavailable(String),
}

impl VetKdFailure {
    /// Whether a reject message of `vetkd_derive_key` says the transport public key is
    /// invalid (the runtime then answers [`Self::InvalidTransportKey`]).
    pub fn is_transport_key_reject(message: &str) -> bool {
        message
            .to_ascii_lowercase()
            .contains("transport public key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_key_rejects_are_recognised() {
        assert!(VetKdFailure::is_transport_key_reject(
            "The provided transport public key is invalid."
        ));
        assert!(!VetKdFailure::is_transport_key_reject("unknown key"));
    }
}
