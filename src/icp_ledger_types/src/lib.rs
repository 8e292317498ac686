//! # icp_ledger_types — the ICP ledger's Candid types and account identifiers
//!
//! One small crate shared by the canister (`livault_backend`, built for wasm32) and the
//! embedded host (`local_replica`, whose ledger model answers the canister's calls), so both
//! sides encode and decode exactly the same types:
//!
//! * [`types`]: the Candid types of the ledger methods used here, field and case names as in
//!   the official interface (`candid/icp_ledger.did`, checked against
//!   `candid/reference/icp_ledger.did`): legacy `transfer` / `account_balance`
//!   ([`TransferArgs`], [`TransferError`], [`Tokens`], ...) and ICRC-1 ([`Account`],
//!   [`Icrc1TransferArg`], [`Icrc1TransferError`]);
//! * [`account`]: legacy account identifiers (`crc32(h) ‖ h`, `h = sha224("\x0Aaccount-id" ‖
//!   owner ‖ subaccount)`) as bytes ([`account_identifier`]) or as a checked type
//!   ([`AccountId`], hex as dfx prints it), subaccounts, and the ICRC-1 textual encoding of
//!   accounts ([`icrc1_text`], [`icrc1_decode`]).
//!
//! It depends on `candid`, `serde`, `sha2` and `hex` only (no `ic-cdk`): the official
//! `ic-ledger-types` crate would pull a second `ic-cdk` into every build. The tests check the
//! account identifiers against `ic-ledger-types`.

#![warn(missing_docs)]

pub mod account;
pub mod types;

pub use account::{
    account_identifier, crc32, icrc1_decode, icrc1_text, subaccount, AccountId, AccountIdError,
    Subaccount,
};
pub use types::{
    Account, AccountBalanceArgs, Icrc1TransferArg, Icrc1TransferError, TimeStamp, Tokens,
    TransferArgs, TransferError, TransferResult, LEDGER_FEE_E8S,
};
