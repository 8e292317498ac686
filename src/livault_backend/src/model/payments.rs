//! API (and stored) types of payments: sessions, billing entries, receipts.
//!
//! Sessions, billing entries and journal entries are stored in the compact binary form of
//! `storage::binary` (older records in CBOR, `storage::codec`, still read): a new field is
//! appended there too, and must be `#[serde(default)]` here so the CBOR records still decode.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use super::types::{PlanSelection, VaultId, VaultStatus};

/// Payment session identifier: sequential from 1, never reused.
pub type SessionId = u64;
/// Billing entry identifier: sequential from 1, never reused (the `list_billing` cursor).
pub type BillingId = u64;

// What a payment is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum PaymentPurpose {
    // The creation payment of a `Draft` vault (its frozen `price_e8s`).
    Create,
    // Move a paid vault (NeedSetup..Active) to a bigger plan (prorated price).
    Upgrade(PlanSelection),
    // Renew a vault in `GraceMaster` (the current plan's full price).
    Renew,
}

// State of a payment session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum PaymentSessionStatus {
    // Waiting for (enough) funds, or for a pending sweep to settle.
    Open,
    // Paid: swept to the treasury, purpose applied, billing entry recorded.
    Completed,
    // Its balance was returned to the owner by an admin (`refund_session`).
    Refunded,
}

// A payment session: where to pay, how much, until when.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct PaymentSession {
    pub id: SessionId,
    pub vault_id: VaultId,
    // The vault owner (who may verify and who receives refunds, default account).
    pub owner: Principal,
    pub purpose: PaymentPurpose,
    // Price frozen into the session (e8s). Pay exactly this to the subaccount.
    pub amount_e8s: u64,
    // This canister's subaccount for the session (32 bytes).
    pub subaccount: serde_bytes::ByteBuf,
    // Legacy account identifier (64 hex chars): for NNS dapp, Plug, exchanges.
    pub account_identifier: String,
    // ICRC-1 textual account: for Oisy and ICRC-1 wallets.
    pub icrc1_account: String,
    pub created_at: u64,
    // `created_at + payment_session_secs`. Funds arriving later still count while the
    // purpose applies.
    pub expires_at: u64,
    pub status: PaymentSessionStatus,
    // Subaccount balance when the payment was confirmed (0 before).
    pub received_e8s: u64,
    // The billing entry, once completed.
    pub billing_id: Option<BillingId>,
    // When the session was completed or refunded.
    pub closed_at: Option<u64>,
    // Refunded to the owner (e8s, after the fee) by `refund_session`.
    #[serde(default)]
    pub refunded_e8s: u64,
    // Ledger block of the `refund_session` transfer.
    #[serde(default)]
    pub refund_block: Option<u64>,
    // The vault's `expires_at` when the session was opened: the validity period an
    // `Upgrade` or `Renew` session was priced for. A late session of either purpose applies
    // only while the vault is still in that period (SPEC §6); `null` for sessions opened
    // before this field existed.
    #[serde(default)]
    pub period_expires_at: Option<u64>,
    // When the scheduler checks the session next (balance, or a transfer still awaiting
    // its outcome); `null` when it will not check it again.
    #[serde(default)]
    pub next_check_at: Option<u64>,
}

// One confirmed payment (admin `list_billing`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct BillingEntry {
    pub id: BillingId,
    pub session_id: SessionId,
    pub vault_id: VaultId,
    pub owner: Principal,
    pub purpose: PaymentPurpose,
    // The session price.
    pub amount_e8s: u64,
    // Balance of the session subaccount when the payment was confirmed.
    pub received_e8s: u64,
    // Sent to the treasury: `amount_e8s − fee`.
    pub treasury_e8s: u64,
    // Ledger block of the sweep (`None` while `sweep_pending`, or when the sweep was
    // resolved after the ledger's 24 h deduplication window, see docs/payments.md).
    pub sweep_block: Option<u64>,
    // Whether the sweep to the treasury still awaits a known outcome. The payment is
    // confirmed (purpose applied) as soon as the balance is seen; the canister keeps
    // sending the sweep with the same dedup key until the ledger answers.
    #[serde(default)]
    pub sweep_pending: bool,
    // Excess returned to the owner (`received − amount − fee`), 0 when none.
    pub refund_e8s: u64,
    // Ledger block of that refund.
    pub refund_block: Option<u64>,
    // Whether the refund transfer still awaits a known outcome (retried by the next
    // `verify_payment` and by the scheduler).
    pub refund_pending: bool,
    // Excess of at most one fee left on the session subaccount (not worth a transfer).
    pub dust_e8s: u64,
    // Ledger fees paid by the canister for this payment (sweep and refund).
    pub fees_e8s: u64,
    // Whether the purpose was applied. Always `true` for entries recorded since the
    // purpose is applied in the same step that confirms the payment (docs/payments.md);
    // `false` only in entries written by older versions.
    pub applied: bool,
    pub recorded_at: u64,
}

// What `verify_payment` returns on success.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct PaymentReceipt {
    pub session: PaymentSession,
    pub billing: BillingEntry,
    // The vault's status after the purpose was applied.
    pub vault_status: VaultStatus,
}

/// A page of sessions.
pub type PaymentSessionPage = super::types::Page<PaymentSession>;
/// A page of billing entries.
pub type BillingPage = super::types::Page<BillingEntry>;

// ---- payment journal (the rules are `domain::payments::journal`)

/// Why the canister moves funds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferKind {
    /// The session price minus the fee, to the treasury.
    Sweep,
    /// The excess of a confirmed payment minus the fee, to the owner's default account.
    Refund,
    /// `refund_session` (admin): the subaccount balance minus the fee, to the owner.
    LateRefund,
}

/// What is known about a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Written before the call; outcome not known yet.
    Pending,
    /// Applied by the ledger in `block` (`None`: known applied, block index not known).
    Done { block: Option<u64> },
    /// Certainly not applied.
    Failed { reason: String },
}

/// One transfer intent and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub session_id: SessionId,
    pub seq: u32,
    pub kind: TransferKind,
    #[serde(with = "serde_bytes")]
    pub from_subaccount: Vec<u8>,
    /// Destination account identifier (32 bytes).
    #[serde(with = "serde_bytes")]
    pub to: Vec<u8>,
    /// The principal owning the destination (for audits; the treasury or the vault owner).
    pub to_owner: Principal,
    pub amount_e8s: u64,
    pub fee_e8s: u64,
    pub memo: u64,
    pub created_at_time: u64,
    /// Balance of the subaccount the transfer was planned from.
    pub balance_before: u64,
    pub attempts: u32,
    pub outcome: Outcome,
    pub written_at: u64,
    pub settled_at: Option<u64>,
}
