//! The domain's error: every case any call can return (`VaultError` in the `.did`, the
//! catalogue of all cases). The endpoints answer with a small per-feature subset of it
//! (`model::errors`; the mapping is `api::errors`).
//!
//! Case names are part of the public API: frontends match on them. A call that returns an
//! error has changed nothing.

use candid::CandidType;
use serde::{Deserialize, Serialize};

use crate::model::types::VaultStatus;

// Why a call was refused. Every case leaves the canister state unchanged.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum VaultError {
    // The caller may not do this (wrong role, anonymous, not an admin or controller).
    NotAuthorized,
    // The vault, member, invite, item, session or ticket does not exist.
    NotFound,
    // An argument is out of bounds or malformed; `field` names it, `reason` says why.
    InvalidInput {
        field: String,
        reason: String,
    },
    // The vault's lifecycle state does not allow this operation.
    InvalidState {
        current: VaultStatus,
    },
    // The upload would exceed the plan's storage (committed bytes + open reservations).
    QuotaExceeded {
        requested: u64,
        available: u64,
    },
    // A plan or canister limit is reached (heir slots, witness slot, vaults per owner, items).
    PlanLimit {
        resource: String,
        limit: u64,
    },
    // The invite token is unknown or malformed.
    TokenInvalid,
    // The invite token's 24 h validity is over.
    TokenExpired,
    // The owner revoked the invite.
    TokenRevoked,
    // Another principal already claimed this invite.
    TokenAlreadyClaimed,
    // No funds have arrived on the payment session's subaccount yet.
    NotYetPaid,
    // Funds arrived but less than required; the session stays open for a top-up.
    Underpaid {
        paid: u64,
        required: u64,
    },
    // The payment session expired and its purpose no longer applies.
    SessionExpired,
    // The payment session was already completed or refunded.
    SessionClosed,
    // Another call is working on the same resource right now; retry shortly.
    Busy,
    // The ICP ledger could not be reached or rejected the call; nothing changed, retry.
    LedgerUnavailable {
        reason: String,
    },
    // Upload chunks must arrive in order; `expected` is the next index.
    ChunkOutOfOrder {
        expected: u32,
    },
    // The SHA-256 of the uploaded payload differs from the one announced.
    ChecksumMismatch,
    // The uploaded byte count differs from the announced size.
    SizeMismatch {
        expected: u64,
        actual: u64,
    },
    // The upload session was collected after being idle for too long.
    UploadExpired,
    // The unlock time gate does not hold yet; `reason` says what is missing and
    // `time_gate_opens_at` (ns since epoch) when it will hold, if known.
    UnlockConditionsNotMet {
        reason: String,
        time_gate_opens_at: Option<u64>,
    },
    // Not enough approvals yet.
    QuorumNotMet {
        have: u32,
        need: u32,
    },
    // The vault is already unlockable.
    AlreadyUnlocked,
    // Too many calls from this principal; retry after the given number of seconds.
    RateLimited {
        retry_after_secs: u64,
    },
    // The daily download allowance is used up until `resets_at` (ns since epoch).
    DownloadLimitReached {
        resets_at: u64,
    },
    // The recovery code can no longer be used (a member joined and no bypass was enabled).
    RecoveryBlocked,
    // The canister is paused by an admin: writes other than check-in and downloads wait.
    Paused,
    // The vetKD service (management canister) did not answer a key request or the vetKD
    // public key is not known yet; nothing changed, retry later.
    KeyDerivationUnavailable {
        reason: String,
    },
}

impl VaultError {
    /// The case name, as in the `.did` (metrics labels, log lines).
    pub fn name(&self) -> &'static str {
        match self {
            VaultError::NotAuthorized => "NotAuthorized",
            VaultError::NotFound => "NotFound",
            VaultError::InvalidInput { .. } => "InvalidInput",
            VaultError::InvalidState { .. } => "InvalidState",
            VaultError::QuotaExceeded { .. } => "QuotaExceeded",
            VaultError::PlanLimit { .. } => "PlanLimit",
            VaultError::TokenInvalid => "TokenInvalid",
            VaultError::TokenExpired => "TokenExpired",
            VaultError::TokenRevoked => "TokenRevoked",
            VaultError::TokenAlreadyClaimed => "TokenAlreadyClaimed",
            VaultError::NotYetPaid => "NotYetPaid",
            VaultError::Underpaid { .. } => "Underpaid",
            VaultError::SessionExpired => "SessionExpired",
            VaultError::SessionClosed => "SessionClosed",
            VaultError::Busy => "Busy",
            VaultError::LedgerUnavailable { .. } => "LedgerUnavailable",
            VaultError::ChunkOutOfOrder { .. } => "ChunkOutOfOrder",
            VaultError::ChecksumMismatch => "ChecksumMismatch",
            VaultError::SizeMismatch { .. } => "SizeMismatch",
            VaultError::UploadExpired => "UploadExpired",
            VaultError::UnlockConditionsNotMet { .. } => "UnlockConditionsNotMet",
            VaultError::QuorumNotMet { .. } => "QuorumNotMet",
            VaultError::AlreadyUnlocked => "AlreadyUnlocked",
            VaultError::RateLimited { .. } => "RateLimited",
            VaultError::DownloadLimitReached { .. } => "DownloadLimitReached",
            VaultError::RecoveryBlocked => "RecoveryBlocked",
            VaultError::Paused => "Paused",
            VaultError::KeyDerivationUnavailable { .. } => "KeyDerivationUnavailable",
        }
    }

    /// Shorthand for [`VaultError::InvalidInput`].
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        VaultError::InvalidInput {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// Result alias used by the domain and the endpoints.
pub type VaultResult<T> = Result<T, VaultError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// `name` is the Candid case name: the label of the variant in the encoding.
    #[test]
    fn names_are_the_candid_case_names() {
        let all = [
            VaultError::NotAuthorized,
            VaultError::NotFound,
            VaultError::invalid("f", "r"),
            VaultError::InvalidState {
                current: VaultStatus::Draft,
            },
            VaultError::QuotaExceeded {
                requested: 1,
                available: 0,
            },
            VaultError::PlanLimit {
                resource: "r".into(),
                limit: 1,
            },
            VaultError::TokenInvalid,
            VaultError::TokenExpired,
            VaultError::TokenRevoked,
            VaultError::TokenAlreadyClaimed,
            VaultError::NotYetPaid,
            VaultError::Underpaid {
                paid: 1,
                required: 2,
            },
            VaultError::SessionExpired,
            VaultError::SessionClosed,
            VaultError::Busy,
            VaultError::LedgerUnavailable { reason: "r".into() },
            VaultError::ChunkOutOfOrder { expected: 1 },
            VaultError::ChecksumMismatch,
            VaultError::SizeMismatch {
                expected: 1,
                actual: 2,
            },
            VaultError::UploadExpired,
            VaultError::UnlockConditionsNotMet {
                reason: "r".into(),
                time_gate_opens_at: None,
            },
            VaultError::QuorumNotMet { have: 0, need: 1 },
            VaultError::AlreadyUnlocked,
            VaultError::RateLimited {
                retry_after_secs: 1,
            },
            VaultError::DownloadLimitReached { resets_at: 1 },
            VaultError::RecoveryBlocked,
            VaultError::Paused,
            VaultError::KeyDerivationUnavailable { reason: "r".into() },
        ];
        let candid::types::TypeInner::Variant(fields) = VaultError::ty().as_ref().clone() else {
            panic!("VaultError is a variant");
        };
        assert_eq!(all.len(), fields.len(), "every case is listed here");
        let mut seen = std::collections::BTreeSet::new();
        for e in &all {
            let debug = format!("{e:?}");
            assert!(debug.starts_with(e.name()), "{debug}");
            assert!(
                fields.iter().any(|f| f.id.to_string() == e.name()),
                "{} is not a case of the Candid type",
                e.name()
            );
            assert!(seen.insert(e.name()));
        }
    }
}
