//! The public error types of the endpoints: one small `variant` per feature, each holding
//! exactly the cases its endpoints can return (docs/decisions.md, "Per-feature error types").
//!
//! Every case has the name, the fields and the meaning of the case of the same name in the
//! domain's internal [`VaultError`](crate::domain::error::VaultError) (28 cases), so a reply
//! decodes into the big type too (Candid variant subtyping). A call that returns an error
//! changed nothing. Frontends match on the case name (`"NotFound"`, ...), never on the
//! position or the type's name. The endpoints map the domain's error into their type in
//! `api::errors`; which endpoint returns which type is the table there.
//!
//! Small types keep the reply's Candid type table small: encoding a reply builds its table,
//! and the 28-case `VaultError` made that the larger part of a metadata call's cost.

use candid::CandidType;
use serde::{Deserialize, Serialize};

use super::types::VaultStatus;

/// Defines a public error type with the given cases, each with the fields (and meaning) of the
/// `VaultError` case of the same name, and `CASES`, their names.
macro_rules! public_error {
    ($(#[$meta:meta])* $name:ident { $($(#[$cmeta:meta])* $case:ident $({ $($field:ident : $ty:ty),* $(,)? })?),* $(,)? }) => {
        // The docs reach rustdoc only (`cfg_attr(doc, ..)`): the Candid derive would otherwise
        // rebuild them as strings on every encode and decode (docs/decisions.md).
        $(#[cfg_attr(doc, $meta)])*
        #[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
        pub enum $name {
            $($(#[cfg_attr(doc, $cmeta)])* $case $({ $($field: $ty),* })?,)*
        }

        impl $name {
            /// The names of the cases, as in the `.did`.
            pub const CASES: &'static [&'static str] = &[$(stringify!($case)),*];

            /// The case name, as in the `.did`.
            pub fn name(&self) -> &'static str {
                match self {
                    $($name::$case { .. } => stringify!($case),)*
                }
            }
        }
    };
}

public_error! {
    /// Queries of owners, members and admins (views, pages, quotes, metrics): the caller's
    /// access, the vault's existence and the page arguments are all they check.
    ReadError {
        /// The caller may not do this (wrong role, anonymous, not an admin or controller).
        NotAuthorized,
        /// The vault, member, invite, item, session or ticket does not exist.
        NotFound,
        /// An argument is out of bounds or malformed; `field` names it, `reason` says why.
        InvalidInput { field: String, reason: String },
    }
}

public_error! {
    /// Vault updates (`create_vault`, `update_vault`, `check_in`, `finalize_setup`,
    /// `delete_vault`) and `quote_upgrade`.
    VaultsError {
        /// The caller may not do this (wrong role, anonymous, not an admin or controller).
        NotAuthorized,
        /// The vault, member, invite, item, session or ticket does not exist.
        NotFound,
        /// An argument is out of bounds or malformed; `field` names it, `reason` says why.
        InvalidInput { field: String, reason: String },
        /// The vault's lifecycle state does not allow this operation.
        InvalidState { current: VaultStatus },
        /// A plan or canister limit is reached (heir slots, witness slot, vaults per owner, items, canister storage).
        PlanLimit { resource: String, limit: u64 },
        /// Too many calls from this principal; retry after the given number of seconds.
        RateLimited { retry_after_secs: u64 },
        /// The canister is paused by an admin: writes other than check-in and downloads wait.
        Paused,
    }
}

public_error! {
    /// Invites, members and recovery codes (`generate_invite`, `claim_invite`,
    /// `get_invite_info`, `revoke_invite`, `regenerate_invite`, `remove_member`,
    /// `issue_recovery_code`, `revoke_recovery_code`, `use_recovery_code`).
    MembersError {
        /// The caller may not do this (wrong role, anonymous, not an admin or controller).
        NotAuthorized,
        /// The vault, member, invite, item, session or ticket does not exist.
        NotFound,
        /// An argument is out of bounds or malformed; `field` names it, `reason` says why.
        InvalidInput { field: String, reason: String },
        /// The vault's lifecycle state does not allow this operation.
        InvalidState { current: VaultStatus },
        /// A plan or canister limit is reached (heir slots, witness slot, vaults per owner, items, canister storage).
        PlanLimit { resource: String, limit: u64 },
        /// The invite token or recovery code is unknown or malformed.
        TokenInvalid,
        /// The invite token's validity (or a download ticket's) is over.
        TokenExpired,
        /// The owner revoked the invite.
        TokenRevoked,
        /// Another principal already claimed this invite.
        TokenAlreadyClaimed,
        /// Another call is working on the same resource right now; retry shortly.
        Busy,
        /// Too many calls from this principal; retry after the given number of seconds.
        RateLimited { retry_after_secs: u64 },
        /// The recovery code can no longer be used (a member joined and no bypass was enabled).
        RecoveryBlocked,
        /// The canister is paused by an admin: writes other than check-in and downloads wait.
        Paused,
    }
}

public_error! {
    /// Unlock requests and approvals (`trigger_unlock`, `approve_unlock`,
    /// `approve_unlock_with_recovery`).
    UnlockError {
        /// The caller may not do this (wrong role, anonymous, not an admin or controller).
        NotAuthorized,
        /// The vault, member, invite, item, session or ticket does not exist.
        NotFound,
        /// The vault's lifecycle state does not allow this operation.
        InvalidState { current: VaultStatus },
        /// The invite token or recovery code is unknown or malformed.
        TokenInvalid,
        /// The unlock time gate does not hold yet; `reason` says what is missing and
        /// `time_gate_opens_at` (ns since epoch) when it will hold, if known.
        UnlockConditionsNotMet { reason: String, time_gate_opens_at: Option<u64> },
        /// Not enough approvals yet.
        QuorumNotMet { have: u32, need: u32 },
        /// The vault is already unlockable.
        AlreadyUnlocked,
        /// Too many calls from this principal; retry after the given number of seconds.
        RateLimited { retry_after_secs: u64 },
        /// The recovery code can no longer be used (a member joined and no bypass was enabled).
        RecoveryBlocked,
        /// The canister is paused by an admin: writes other than check-in and downloads wait.
        Paused,
    }
}

public_error! {
    /// Uploads, items and download tickets (`begin_upload`, `upload_chunk`,
    /// `finish_upload`, `abort_upload`, `delete_item`, `update_item_meta`, `request_download`).
    ContentError {
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
        /// A plan or canister limit is reached (heir slots, witness slot, vaults per owner, items, canister storage).
        PlanLimit { resource: String, limit: u64 },
        /// Upload chunks must arrive in order; `expected` is the next index.
        ChunkOutOfOrder { expected: u32 },
        /// The SHA-256 of the uploaded payload differs from the one announced.
        ChecksumMismatch,
        /// The uploaded byte count differs from the announced size.
        SizeMismatch { expected: u64, actual: u64 },
        /// The upload session was collected after being idle for too long.
        UploadExpired,
        /// Too many calls from this principal; retry after the given number of seconds.
        RateLimited { retry_after_secs: u64 },
        /// The daily download allowance is used up until `resets_at` (ns since epoch).
        DownloadLimitReached { resets_at: u64 },
        /// The canister is paused by an admin: writes other than check-in and downloads wait.
        Paused,
    }
}

public_error! {
    /// `get_download_chunk`: the ticket, the caller's right to it and the chunk index.
    DownloadError {
        /// The caller may not do this (wrong role, anonymous, not an admin or controller).
        NotAuthorized,
        /// The vault, member, invite, item, session or ticket does not exist.
        NotFound,
        /// An argument is out of bounds or malformed; `field` names it, `reason` says why.
        InvalidInput { field: String, reason: String },
        /// The invite token's validity (or a download ticket's) is over.
        TokenExpired,
    }
}

public_error! {
    /// Payment sessions, verification, refunds and the refund account (`init_payment`,
    /// `verify_payment`, `refund_session`, `set_refund_account`, `set_treasury`).
    PaymentsError {
        /// The caller may not do this (wrong role, anonymous, not an admin or controller).
        NotAuthorized,
        /// The vault, member, invite, item, session or ticket does not exist.
        NotFound,
        /// An argument is out of bounds or malformed; `field` names it, `reason` says why.
        InvalidInput { field: String, reason: String },
        /// The vault's lifecycle state does not allow this operation.
        InvalidState { current: VaultStatus },
        /// A plan or canister limit is reached (heir slots, witness slot, vaults per owner, items, canister storage).
        PlanLimit { resource: String, limit: u64 },
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
        /// Too many calls from this principal; retry after the given number of seconds.
        RateLimited { retry_after_secs: u64 },
        /// The canister is paused by an admin: writes other than check-in and downloads wait.
        Paused,
    }
}

public_error! {
    /// vetKeys (`get_vetkd_public_key`, `derive_vetkey`).
    KeysError {
        /// The caller may not do this (wrong role, anonymous, not an admin or controller).
        NotAuthorized,
        /// The vault, member, invite, item, session or ticket does not exist.
        NotFound,
        /// An argument is out of bounds or malformed; `field` names it, `reason` says why.
        InvalidInput { field: String, reason: String },
        /// The vault's lifecycle state does not allow this operation.
        InvalidState { current: VaultStatus },
        /// A plan or canister limit is reached (heir slots, witness slot, vaults per owner, items, canister storage).
        PlanLimit { resource: String, limit: u64 },
        /// Too many calls from this principal; retry after the given number of seconds.
        RateLimited { retry_after_secs: u64 },
        /// The vetKD service did not answer or its public key is not known yet; nothing
        /// changed, retry later.
        KeyDerivationUnavailable { reason: String },
    }
}

public_error! {
    /// Admin updates (`set_pricing`, `set_paused`, `set_admins`): non-admins are refused
    /// (and rate-limited like everyone).
    AdminError {
        /// The caller may not do this (wrong role, anonymous, not an admin or controller).
        NotAuthorized,
        /// An argument is out of bounds or malformed; `field` names it, `reason` says why.
        InvalidInput { field: String, reason: String },
        /// Too many calls from this principal; retry after the given number of seconds.
        RateLimited { retry_after_secs: u64 },
    }
}
