//! Candid types of the ICP ledger methods the payment flow calls (`account_balance`,
//! `transfer`). Field and case names are exactly those of the official interface
//! (`candid/icp_ledger.did`, checked against `candid/reference/icp_ledger.did`), so the
//! canister encodes what the real ledger decodes.

use candid::CandidType;
use serde::{Deserialize, Serialize};

/// The ledger's fee for a transfer, in e8s (fixed by the ICP ledger).
pub const LEDGER_FEE_E8S: u64 = 10_000;

/// `Tokens`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Tokens {
    pub e8s: u64,
}

/// `TimeStamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct TimeStamp {
    pub timestamp_nanos: u64,
}

/// `TransferArgs` of the legacy `transfer` method.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct TransferArgs {
    pub memo: u64,
    pub amount: Tokens,
    pub fee: Tokens,
    pub from_subaccount: Option<serde_bytes::ByteBuf>,
    /// 32-byte account identifier.
    pub to: serde_bytes::ByteBuf,
    pub created_at_time: Option<TimeStamp>,
}

/// `TransferError` of the legacy `transfer` method.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum TransferError {
    BadFee { expected_fee: Tokens },
    InsufficientFunds { balance: Tokens },
    TxTooOld { allowed_window_nanos: u64 },
    TxCreatedInFuture,
    TxDuplicate { duplicate_of: u64 },
}

/// `AccountBalanceArgs`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct AccountBalanceArgs {
    /// 32-byte account identifier.
    pub account: serde_bytes::ByteBuf,
}

/// A ledger call that did not produce a decodable reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFailure {
    /// `true` when the call may have been executed (a `SysUnknown` reject, or a reply that
    /// could not be decoded); `false` when it certainly was not.
    pub unknown: bool,
    /// What happened, for `LedgerUnavailable { reason }`.
    pub reason: String,
}
