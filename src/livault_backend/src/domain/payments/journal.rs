//! The payment journal (stable memory, `PAYMENT_JOURNAL`): every ledger transfer the
//! canister makes is written here as an *intent* before the call and settled after it.
//!
//! Entry key: `(session id, seq)`, seq counting the session's transfers from 0. The dedup key
//! the ledger sees is fixed in the intent and reused by every retry:
//! - `memo = session_id << 16 | seq` (session ids stay below 2^48);
//! - `created_at_time` = the time the intent was written.
//!
//! States: `Pending` → `Done { block }` (a reply with a block, or `TxDuplicate` naming the
//! original block) or `Failed { reason }` (the ledger definitely did not apply it:
//! `InsufficientFunds`, `BadFee`, or `TxTooOld` when the balance shows no debit). A reject or
//! an undecodable reply leaves it `Pending`: the next attempt resends the same arguments.

use candid::Principal;

use super::ledger::{CallFailure, TimeStamp, Tokens, TransferArgs, TransferError};
use crate::model::payments::SessionId;
use crate::storage::State;

use crate::model::payments::{JournalEntry, Outcome, TransferKind};

impl JournalEntry {
    /// The ledger arguments: identical for every attempt (same dedup key).
    pub fn transfer_args(&self) -> TransferArgs {
        TransferArgs {
            memo: self.memo,
            amount: Tokens {
                e8s: self.amount_e8s,
            },
            fee: Tokens { e8s: self.fee_e8s },
            from_subaccount: Some(serde_bytes::ByteBuf::from(self.from_subaccount.clone())),
            to: serde_bytes::ByteBuf::from(self.to.clone()),
            created_at_time: Some(TimeStamp {
                timestamp_nanos: self.created_at_time,
            }),
        }
    }

    /// Key in the journal.
    pub fn key(&self) -> (SessionId, u32) {
        (self.session_id, self.seq)
    }
}

/// The memo of transfer `seq` of session `session_id`.
pub fn memo(session_id: SessionId, seq: u32) -> u64 {
    (session_id << 16) | u64::from(seq & 0xFFFF)
}

/// What one transfer attempt tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Applied (now or by an earlier attempt with the same key).
    Done(u64),
    /// Certainly not applied.
    Failed(String),
    /// `TxTooOld`: the key left the ledger's window; whether an earlier attempt was applied
    /// must be read from the balance.
    TooOld,
    /// Unknown; `retry_now` when an immediate retry is worthwhile (`SysUnknown`).
    Unknown { retry_now: bool, reason: String },
}

/// Classifies the result of a `transfer` call.
pub fn classify(result: Result<Result<u64, TransferError>, CallFailure>) -> Attempt {
    match result {
        Ok(Ok(block)) => Attempt::Done(block),
        Ok(Err(TransferError::TxDuplicate { duplicate_of })) => Attempt::Done(duplicate_of),
        Ok(Err(TransferError::TxTooOld { .. })) => Attempt::TooOld,
        Ok(Err(TransferError::TxCreatedInFuture)) => Attempt::Unknown {
            retry_now: false,
            reason: "the ledger's clock is behind ours (TxCreatedInFuture)".into(),
        },
        Ok(Err(TransferError::InsufficientFunds { balance })) => {
            Attempt::Failed(format!("insufficient funds: balance {} e8s", balance.e8s))
        }
        Ok(Err(TransferError::BadFee { expected_fee })) => Attempt::Failed(format!(
            "bad fee: the ledger expects {} e8s",
            expected_fee.e8s
        )),
        Err(f) => Attempt::Unknown {
            retry_now: f.unknown,
            reason: f.reason,
        },
    }
}

/// The session's transfer whose outcome is not known yet (at most one exists).
pub fn pending(state: &State, session_id: SessionId) -> Option<JournalEntry> {
    state
        .payments
        .journal_of(session_id)
        .find(|e| e.outcome == Outcome::Pending)
}

/// Every transfer of a session, oldest first.
pub fn entries(state: &State, session_id: SessionId) -> Vec<JournalEntry> {
    state.payments.journal_of(session_id).collect()
}

/// Sessions with a pending transfer, for the scheduler (at most `limit`).
pub fn sessions_with_pending(state: &State, limit: usize) -> Vec<SessionId> {
    let mut out: Vec<SessionId> = Vec::new();
    for entry in state.payments.journal() {
        if entry.outcome == Outcome::Pending && out.last() != Some(&entry.session_id) {
            out.push(entry.session_id);
            if out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// Parameters of a new intent.
pub struct Intent {
    pub kind: TransferKind,
    pub from_subaccount: [u8; 32],
    pub to: [u8; 32],
    pub to_owner: Principal,
    pub amount_e8s: u64,
    pub fee_e8s: u64,
    pub balance_before: u64,
}

/// Writes a new intent for `session_id` (the next seq) and returns it.
pub fn write_intent(
    state: &mut State,
    session_id: SessionId,
    intent: Intent,
    now: u64,
) -> JournalEntry {
    let seq = state.payments.next_journal_seq(session_id);
    let entry = JournalEntry {
        session_id,
        seq,
        kind: intent.kind,
        from_subaccount: intent.from_subaccount.to_vec(),
        to: intent.to.to_vec(),
        to_owner: intent.to_owner,
        amount_e8s: intent.amount_e8s,
        fee_e8s: intent.fee_e8s,
        memo: memo(session_id, seq),
        created_at_time: now,
        balance_before: intent.balance_before,
        attempts: 0,
        outcome: Outcome::Pending,
        written_at: now,
        settled_at: None,
    };
    state.payments.append_journal(&entry);
    entry
}

/// Counts an attempt (written before the call).
pub fn note_attempt(state: &mut State, key: (SessionId, u32)) {
    if let Some(mut e) = state.payments.journal_entry(key) {
        e.attempts = e.attempts.saturating_add(1);
        state.payments.save_journal(&e);
    }
}

/// Records the outcome of a pending entry; returns the updated entry. Settling an entry
/// that is no longer pending changes nothing (outcomes are final).
pub fn settle(
    state: &mut State,
    key: (SessionId, u32),
    outcome: Outcome,
    now: u64,
) -> Option<JournalEntry> {
    let mut e = state.payments.journal_entry(key)?;
    if e.outcome != Outcome::Pending {
        return Some(e);
    }
    e.outcome = outcome;
    e.settled_at = Some(now);
    state.payments.save_journal(&e);
    Some(e)
}
