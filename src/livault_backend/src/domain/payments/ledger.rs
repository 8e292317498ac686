//! Candid types of the ICP ledger methods the payment flow calls (`account_balance`,
//! `transfer`), from the crate shared with the embedded host (`icp_ledger_types`). Field and
//! case names are exactly those of the official interface (`candid/icp_ledger.did`, checked
//! against `candid/reference/icp_ledger.did`), so the canister encodes what the real ledger
//! decodes.

pub use icp_ledger_types::{
    AccountBalanceArgs, TimeStamp, Tokens, TransferArgs, TransferError, LEDGER_FEE_E8S,
};

/// A ledger call that did not produce a decodable reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFailure {
    /// `true` when the call may have been executed (a `SysUnknown` reject, or a reply that
    /// could not be decoded); `false` when it certainly was not.
    pub unknown: bool,
    /// What happened, for `LedgerUnavailable { reason }`.
    pub reason: String,
}
