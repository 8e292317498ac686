//! The scheduler's checks of payment sessions (SPEC §6, §10): when the canister looks at a
//! session's subaccount without the payer pressing "verify", and when it sends again a
//! transfer that still awaits its outcome.
//!
//! At most one entry per session, in a due queue of its own (`PAYMENT_CHECKS`), keyed
//! `(due, 9, session id)` with the number of consecutive retries as value; the session
//! remembers its entry's due time (`next_check_at`) so rescheduling replaces it. The queue is
//! kept apart from the lifecycle queue so payment checks (each an inter-canister call) never
//! delay vault deadlines, and a tick runs at most [`MAX_CHECKS_PER_TICK`] of them.
//!
//! Policy — what one session can make the canister do (docs/security.md):
//! - open, nothing seen yet: checked 2 and 10 minutes after it was (re)opened and once at its
//!   expiry — at most [`MAX_CHECKS_UNPAID`] balance checks per `init_payment` that opened or
//!   reopened it; never after it expired with nothing on it;
//! - funds seen but short (`Underpaid`): hourly, until one day after expiry;
//! - a confirmed payment whose sweep or refund awaits the ledger, a refund in flight, or a
//!   ledger that did not answer: again after 1, 2, 4 … 60 minutes, until known;
//! - anything final (completed and settled, refunded, refund-only, gone): no more checks.
//!
//! After a user's `verify_payment` or an admin's `refund_session`, whatever the flow left
//! unfinished (a transfer whose outcome is unknown) is finished by the scheduler (issue #12
//! L1); a refused call changes nothing.

use super::journal;
use crate::domain::error::{VaultError, VaultResult};
use crate::model::payments::{PaymentReceipt, PaymentSession, PaymentSessionStatus, SessionId};
use crate::model::types::{NANOS_PER_DAY, NANOS_PER_SEC};
use crate::storage::State;

/// Most payment checks one maintenance tick runs (each awaits the ledger).
pub const MAX_CHECKS_PER_TICK: usize = 10;
/// Most balance checks the scheduler makes of an open session that receives nothing, per
/// opening (two timed checks and the one at expiry).
pub const MAX_CHECKS_UNPAID: u64 = 3;
/// Queue kind code of a payment check (the code the lifecycle queue used for them).
pub const KIND: u8 = crate::storage::repositories::payments::CHECK_KIND;

const MINUTE: u64 = 60 * NANOS_PER_SEC;
/// Offsets after (re)opening of the timed checks of an unpaid session.
const UNPAID_OFFSETS: [u64; 2] = [2 * MINUTE, 10 * MINUTE];
/// Interval of the checks of an underpaid session.
const UNDERPAID_INTERVAL: u64 = 60 * MINUTE;
/// Longest wait between retries of a transfer or an unanswered ledger.
const MAX_RETRY_DELAY: u64 = 60 * MINUTE;

/// Replaces the session's check with one due at `due` (`None`: no check) with `retries`
/// consecutive retries behind it, and stores the session.
pub fn set(state: &mut State, session: &mut PaymentSession, due: Option<u64>, retries: u32) {
    state.payments.reschedule_check(session, due, retries);
}

/// When the session was (re)opened: its expiry minus the session lifetime.
fn opened_at(state: &State, session: &PaymentSession) -> u64 {
    let secs = state.config().durations.payment_session_secs;
    session
        .expires_at
        .saturating_sub(secs.saturating_mul(NANOS_PER_SEC))
}

/// Schedules the first check of a stored session that was just reopened.
pub fn schedule_first(state: &mut State, session: &mut PaymentSession, now: u64) {
    let due = next_unpaid_check(opened_at(state, session), session.expires_at, now);
    set(state, session, due, 0);
}

/// Stores a new session (with its by-vault index entry) and schedules its first check.
pub fn open(state: &mut State, session: &mut PaymentSession, now: u64) {
    let due = next_unpaid_check(opened_at(state, session), session.expires_at, now);
    state.payments.open_session(session, due);
}

/// The next timed check of an unpaid session at `now`, if any.
fn next_unpaid_check(opened: u64, expires_at: u64, now: u64) -> Option<u64> {
    UNPAID_OFFSETS
        .iter()
        .map(|o| opened.saturating_add(*o).min(expires_at))
        .chain(std::iter::once(expires_at))
        .find(|t| *t > now)
}

fn retry_delay(retries: u32) -> u64 {
    MINUTE
        .saturating_mul(1u64 << retries.min(16))
        .min(MAX_RETRY_DELAY)
}

/// Sessions whose check is due at `now`, oldest first (at most `max`).
pub fn due(state: &State, now: u64, max: usize) -> Vec<SessionId> {
    state.payments.checks_due(now).take(max).collect()
}

/// Due checks at `now`, counting at most `cap` (metrics).
pub fn due_count(state: &State, now: u64, cap: usize) -> u64 {
    state.payments.checks_due(now).take(cap).count() as u64
}

/// Before a scheduled check awaits the ledger: moves its entry to a retry time, so that a
/// trap after the await (which rolls back only the callback) leaves the check queued
/// (issue #12 L2). Returns whether the session has a check due at `now`.
pub fn begin(state: &mut State, session_id: SessionId, now: u64) -> bool {
    let Some(mut session) = state.payments.session(session_id) else {
        return false;
    };
    let Some(due) = session.next_check_at.filter(|d| *d <= now) else {
        return false;
    };
    let retries = state
        .payments
        .check_retries(due, session_id)
        .unwrap_or(0)
        .saturating_add(1);
    set(
        state,
        &mut session,
        Some(now.saturating_add(retry_delay(retries))),
        retries,
    );
    true
}

/// Which flow ran, for [`after`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow<'a> {
    /// The scheduler's check, with the verification's answer.
    Scheduled(&'a VaultResult<PaymentReceipt>),
    /// A user's `verify_payment`, with its answer.
    User(&'a VaultResult<PaymentReceipt>),
    /// An admin's `refund_session`.
    Refund,
}

/// After a payment flow on the session ended at `now`: a transfer left unsettled is retried
/// by the scheduler (backing off); the scheduler's own check is rescheduled by the policy
/// above; a user's verification that completed the payment ends the checks. A refused call
/// (`Err`) of a user or a refund changes nothing else: the session keeps its schedule.
pub fn after(state: &mut State, session_id: SessionId, flow: Flow, now: u64) {
    let Some(mut session) = state.payments.session(session_id) else {
        return;
    };
    let retries = session
        .next_check_at
        .and_then(|d| state.payments.check_retries(d, session_id))
        .unwrap_or(0);
    let unsettled = journal::pending(state, session_id).is_some()
        || session
            .billing_id
            .and_then(|id| state.payments.billing(id))
            .is_some_and(|b| b.sweep_pending || b.refund_pending);
    let retry = || Some(now.saturating_add(retry_delay(retries)));
    let (due, retries) = if unsettled {
        (retry(), retries.saturating_add(1))
    } else {
        match flow {
            Flow::Scheduled(outcome) => scheduled_next(state, &session, outcome, now, retries),
            Flow::User(Ok(_)) => (None, 0),
            Flow::User(Err(_)) | Flow::Refund => return,
        }
    };
    if due != session.next_check_at {
        set(state, &mut session, due, retries);
    }
}

/// The next check after the scheduler's own check answered `outcome` (nothing unsettled).
fn scheduled_next(
    state: &State,
    session: &PaymentSession,
    outcome: &VaultResult<PaymentReceipt>,
    now: u64,
    retries: u32,
) -> (Option<u64>, u32) {
    let open_until = session.expires_at.saturating_add(NANOS_PER_DAY);
    match (session.status, outcome) {
        (PaymentSessionStatus::Open, Err(VaultError::NotYetPaid)) => (
            next_unpaid_check(opened_at(state, session), session.expires_at, now),
            0,
        ),
        (PaymentSessionStatus::Open, Err(VaultError::Underpaid { .. })) if now < open_until => {
            (Some(now.saturating_add(UNDERPAID_INTERVAL)), 0)
        }
        (
            PaymentSessionStatus::Open,
            Err(VaultError::LedgerUnavailable { .. } | VaultError::Busy),
        ) if now < open_until => (
            Some(now.saturating_add(retry_delay(retries))),
            retries.saturating_add(1),
        ),
        _ => (None, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unpaid_session_is_checked_at_two_and_ten_minutes_and_at_expiry_only() {
        let opened = 1_000 * MINUTE;
        let expires = opened + 30 * MINUTE;
        let mut now = opened;
        let mut checks = Vec::new();
        while let Some(t) = next_unpaid_check(opened, expires, now) {
            checks.push((t - opened) / MINUTE);
            now = t;
        }
        assert_eq!(checks, vec![2, 10, 30]);
        assert_eq!(checks.len() as u64, MAX_CHECKS_UNPAID);
        // A session shorter than the offsets is checked at its expiry only.
        assert_eq!(
            next_unpaid_check(opened, opened + MINUTE, opened),
            Some(opened + MINUTE)
        );
        assert_eq!(
            next_unpaid_check(opened, opened + MINUTE, opened + MINUTE),
            None
        );
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        let delays: Vec<u64> = (0..9).map(|r| retry_delay(r) / MINUTE).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_DELAY);
    }
}
