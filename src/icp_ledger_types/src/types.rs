//! Candid types of the ICP ledger methods used by the canister and modelled by the host.
//! Field and case names are exactly those of the official interface (`candid/icp_ledger.did`,
//! checked against `candid/reference/icp_ledger.did`), so what one side encodes the real
//! ledger decodes.

// The types the canister encodes and decodes (`Tokens` to `AccountBalanceArgs`) document
// their fields with plain comments: candid's derive embeds doc comments in the wasm (the
// `_ty_doc` of each type, ~2-4 KiB per documented type), and the canister must not grow.
#![allow(missing_docs)]

use candid::{CandidType, Nat, Principal};
use serde::{Deserialize, Serialize};

/// The ledger's fee for a transfer, in e8s (fixed by the ICP ledger).
pub const LEDGER_FEE_E8S: u64 = 10_000;

/// `Tokens`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Tokens {
    // Amount in e8s.
    pub e8s: u64,
}

/// `TimeStamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct TimeStamp {
    // Nanoseconds since the epoch.
    pub timestamp_nanos: u64,
}

/// `TransferArgs` of the legacy `transfer` method.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct TransferArgs {
    // Memo.
    pub memo: u64,
    // Amount.
    pub amount: Tokens,
    // Fee (must be [`LEDGER_FEE_E8S`]).
    pub fee: Tokens,
    // Sender subaccount (32 bytes; none = the default subaccount).
    pub from_subaccount: Option<serde_bytes::ByteBuf>,
    // Destination: a 32-byte account identifier.
    pub to: serde_bytes::ByteBuf,
    // Creation time (the deduplication key, with the other fields).
    pub created_at_time: Option<TimeStamp>,
}

/// `TransferError` of the legacy `transfer` method.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum TransferError {
    // Wrong fee.
    BadFee {
        // The fee to use.
        expected_fee: Tokens,
    },
    // Balance too low for amount + fee.
    InsufficientFunds {
        // Current balance.
        balance: Tokens,
    },
    // `created_at_time` older than the deduplication window.
    TxTooOld {
        // The window.
        allowed_window_nanos: u64,
    },
    // `created_at_time` in the future.
    TxCreatedInFuture,
    // The same transaction is already in the log.
    TxDuplicate {
        // The original block.
        duplicate_of: u64,
    },
}

impl TransferError {
    /// The case name (metrics labels, log lines).
    pub fn name(&self) -> &'static str {
        match self {
            TransferError::BadFee { .. } => "BadFee",
            TransferError::InsufficientFunds { .. } => "InsufficientFunds",
            TransferError::TxTooOld { .. } => "TxTooOld",
            TransferError::TxCreatedInFuture => "TxCreatedInFuture",
            TransferError::TxDuplicate { .. } => "TxDuplicate",
        }
    }
}

/// The result of the legacy `transfer` method: the block index or the error.
pub type TransferResult = Result<u64, TransferError>;

/// `AccountBalanceArgs`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct AccountBalanceArgs {
    // 32-byte account identifier.
    pub account: serde_bytes::ByteBuf,
}

/// ICRC-1 `Account`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Account {
    /// Owner.
    pub owner: Principal,
    /// Subaccount (32 bytes; none = the default subaccount).
    pub subaccount: Option<serde_bytes::ByteBuf>,
}

/// ICRC-1 `TransferArg`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Icrc1TransferArg {
    /// Sender subaccount.
    pub from_subaccount: Option<serde_bytes::ByteBuf>,
    /// Destination.
    pub to: Account,
    /// Amount (e8s).
    pub amount: Nat,
    /// Fee (e8s).
    pub fee: Option<Nat>,
    /// Memo.
    pub memo: Option<serde_bytes::ByteBuf>,
    /// Creation time (ns).
    pub created_at_time: Option<u64>,
}

/// ICRC-1 `TransferError`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum Icrc1TransferError {
    /// Wrong fee.
    BadFee {
        /// Expected fee.
        expected_fee: Nat,
    },
    /// Burn too small.
    BadBurn {
        /// Minimum.
        min_burn_amount: Nat,
    },
    /// Insufficient funds.
    InsufficientFunds {
        /// Balance.
        balance: Nat,
    },
    /// Too old.
    TooOld,
    /// In the future.
    CreatedInFuture {
        /// Ledger time.
        ledger_time: u64,
    },
    /// Temporarily unavailable.
    TemporarilyUnavailable,
    /// Duplicate.
    Duplicate {
        /// Original block.
        duplicate_of: Nat,
    },
    /// Generic error.
    GenericError {
        /// Code.
        error_code: Nat,
        /// Message.
        message: String,
    },
}
