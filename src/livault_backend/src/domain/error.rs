//! The one error type every endpoint returns (`VaultError` in the `.did`).
//!
//! Case names are part of the public API: frontends match on them. A call that returns an
//! error has changed nothing.

use candid::CandidType;
use serde::{Deserialize, Serialize};

use super::types::VaultStatus;

/// Why a call was refused. Every case leaves the canister state unchanged.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum VaultError {
    /// The caller may not do this (wrong role, anonymous, not an admin or controller).
    NotAuthorized,
    /// The vault, member, invite, item, session or ticket does not exist.
    NotFound,
    /// An argument is out of bounds or malformed; `field` names it, `reason` says why.
    InvalidInput { field: String, reason: String },
    /// The vault's lifecycle state does not allow this operation.
    InvalidState { current: VaultStatus },
    /// The upload would exceed the plan's storage (committed bytes + open reservations).
    QuotaExceeded { requested: u64, available: u64 },
    /// A plan or canister limit is reached (heir slots, witness slot, vaults per owner, items).
    PlanLimit { resource: String, limit: u64 },
    /// The invite token is unknown or malformed.
    TokenInvalid,
    /// The invite token's 24 h validity is over.
    TokenExpired,
    /// The owner revoked the invite.
    TokenRevoked,
    /// Another principal already claimed this invite.
    TokenAlreadyClaimed,
    /// No funds have arrived on the payment session's subaccount yet.
    NotYetPaid,
    /// Funds arrived but less than required; the session stays open for a top-up.
    Underpaid { paid: u64, required: u64 },
    /// The payment session expired and its purpose no longer applies.
    SessionExpired,
    /// The payment session was already completed or refunded.
    SessionClosed,
    /// Another call is working on the same resource right now; retry shortly.
    Busy,
    /// The ICP ledger could not be reached or rejected the call; nothing changed, retry.
    LedgerUnavailable { reason: String },
    /// Upload chunks must arrive in order; `expected` is the next index.
    ChunkOutOfOrder { expected: u32 },
    /// The SHA-256 of the uploaded payload differs from the one announced.
    ChecksumMismatch,
    /// The uploaded byte count differs from the announced size.
    SizeMismatch { expected: u64, actual: u64 },
    /// The upload session was collected after being idle for too long.
    UploadExpired,
    /// The unlock time gate does not hold yet; `reason` says what is missing and
    /// `time_gate_opens_at` (ns since epoch) when it will hold, if known.
    UnlockConditionsNotMet {
        reason: String,
        time_gate_opens_at: Option<u64>,
    },
    /// Not enough approvals yet.
    QuorumNotMet { have: u32, need: u32 },
    /// The vault is already unlockable.
    AlreadyUnlocked,
    /// Too many calls from this principal; retry after the given number of seconds.
    RateLimited { retry_after_secs: u64 },
    /// The daily download allowance is used up until `resets_at` (ns since epoch).
    DownloadLimitReached { resets_at: u64 },
    /// The recovery code can no longer be used (a member joined and no bypass was enabled).
    RecoveryBlocked,
    /// The canister is paused by an admin: writes other than check-in and downloads wait.
    Paused,
    /// The vetKD service (management canister) did not answer a key request or the vetKD
    /// public key is not known yet; nothing changed, retry later.
    KeyDerivationUnavailable { reason: String },
}

impl VaultError {
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
