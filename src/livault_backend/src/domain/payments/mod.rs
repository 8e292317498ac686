//! Payments verified against the ICP ledger (SPEC §6): payment sessions with one subaccount
//! each, verification by balance, sweep to the treasury, refund of any excess, billing, and
//! the purpose applied (creation, plan upgrade, renewal).
//!
//! This module owns the sessions, the billing entries and the payment journal. Flows that
//! await the ledger ([`verify_session`], [`refund_session`]) take a per-session heap guard
//! before their first `await`, write every transfer intent to the journal before the call
//! and re-read what they need after it; state is reached through [`StateAccess`] so no borrow
//! lives across an `await`. Decisions are recorded in `docs/payments.md`.

pub mod account;
pub mod guard;
pub mod journal;
pub mod ledger;
pub mod types;

use candid::Principal;

use self::account::{account_identifier, icrc1_text, session_subaccount};
use self::guard::SessionGuard;
use self::journal::{Attempt, Intent, JournalEntry, Outcome, TransferKind};
use self::ledger::LEDGER_FEE_E8S;
use self::types::{
    BillingEntry, BillingId, BillingPage, PaymentPurpose, PaymentReceipt, PaymentSession,
    PaymentSessionPage, PaymentSessionStatus, SessionId,
};
use super::access::{self, Need};
use super::admin::require_admin;
use super::audit::{self, AuditAction};
use super::config::Account;
use super::error::{VaultError, VaultResult};
use super::lifecycle::LifecycleEvent;
use super::pricing;
use super::records::VaultRecord;
use super::types::{PageArgs, VaultId, VaultStatus, NANOS_PER_DAY, NANOS_PER_SEC};
use super::validation;
use super::vaults;
use crate::runtime::Runtime;
use crate::storage::{State, StateAccess};

/// Transfer attempts within one call when the outcome comes back unknown (`SysUnknown`).
pub const ATTEMPTS_PER_CALL: u32 = 3;
/// Newest sessions of a vault scanned for an open session to reuse.
const REUSE_SCAN: usize = 50;

/// Whether `purpose` can still be applied to `vault`.
pub fn purpose_applies(vault: &VaultRecord, purpose: &PaymentPurpose) -> bool {
    match purpose {
        PaymentPurpose::Create => vault.status == VaultStatus::Draft,
        PaymentPurpose::Upgrade(plan) => {
            matches!(
                vault.status,
                VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
            ) && pricing::is_upgrade(&vault.plan, plan)
        }
        PaymentPurpose::Renew => vault.status == VaultStatus::GraceMaster,
    }
}

/// `Active → GraceMaster` once `now ≥ expires_at` (SPEC §3); called by the scheduler, and by
/// `init_payment(Renew)` so an owner can renew as soon as validity ends. Returns whether the
/// vault moved. The actor of the audit event is the management canister id (`aaaaa-aa`),
/// standing for "the system".
pub fn expire_validity(state: &mut State, vault_id: VaultId, now: u64) -> VaultResult<bool> {
    let mut vault = state.vaults.get(&vault_id).ok_or(VaultError::NotFound)?;
    let due = vault.expires_at.is_some_and(|at| now >= at);
    if vault.status != VaultStatus::Active || !due {
        return Ok(false);
    }
    vaults::transition(
        state,
        &mut vault,
        LifecycleEvent::ValidityEnded,
        now,
        Principal::management_canister(),
    )?;
    state.vaults.insert(vault_id, vault);
    Ok(true)
}

/// The price of `purpose` for `vault` now (before the minimum charge).
fn price_of(
    state: &State,
    rt: &impl Runtime,
    vault: &VaultRecord,
    purpose: &PaymentPurpose,
) -> VaultResult<u64> {
    let wrong_state = || VaultError::InvalidState {
        current: vault.status,
    };
    match purpose {
        PaymentPurpose::Create => {
            if vault.status != VaultStatus::Draft {
                return Err(wrong_state());
            }
            Ok(vault.price_e8s)
        }
        PaymentPurpose::Upgrade(plan) => {
            Ok(vaults::quote_upgrade(state, rt, vault.id, *plan)?.amount_e8s)
        }
        PaymentPurpose::Renew => {
            if vault.status != VaultStatus::GraceMaster {
                return Err(wrong_state());
            }
            Ok(pricing::quote(&state.config().pricing, &vault.plan, vault.owner_age)?.total_e8s)
        }
    }
}

/// An open, unexpired session of the vault for the same purpose, newest first.
fn reusable_session(
    state: &State,
    vault_id: VaultId,
    purpose: &PaymentPurpose,
    now: u64,
) -> Option<PaymentSession> {
    state
        .payment_sessions_by_vault
        .keys_range((vault_id, 0)..=(vault_id, u64::MAX))
        .rev()
        .take(REUSE_SCAN)
        .filter_map(|(_, id)| state.payment_sessions.get(&id))
        .find(|s| {
            s.status == PaymentSessionStatus::Open && s.purpose == *purpose && now < s.expires_at
        })
}

/// `init_payment` (owner): opens a session for `purpose` with the price frozen in it, or
/// returns the open unexpired session of the same (vault, purpose).
pub fn init_payment(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    purpose: PaymentPurpose,
) -> VaultResult<PaymentSession> {
    let caller = rt.caller();
    let now = rt.now();
    let (vault, _) = access::load(state, vault_id, &caller, Need::Owner)?;
    if purpose == PaymentPurpose::Renew {
        // Validity may have ended since the last scheduler tick.
        expire_validity(state, vault_id, now)?;
    }
    let vault = state.vaults.get(&vault_id).unwrap_or(vault);
    let price = price_of(state, rt, &vault, &purpose)?;
    if let Some(open) = reusable_session(state, vault_id, &purpose, now) {
        return Ok(open);
    }
    // The sweep must leave something for the treasury after the fee.
    let amount = price.max(LEDGER_FEE_E8S + 1);
    let id = state
        .payment_sessions
        .last_key_value()
        .map_or(1, |(k, _)| k + 1);
    let sub = session_subaccount(id);
    let me = rt.canister_id();
    let secs = state.config().durations.payment_session_secs;
    let session = PaymentSession {
        id,
        vault_id,
        owner: vault.owner,
        purpose,
        amount_e8s: amount,
        subaccount: serde_bytes::ByteBuf::from(sub.to_vec()),
        account_identifier: hex::encode(account_identifier(&me, Some(sub))),
        icrc1_account: icrc1_text(&me, Some(sub)),
        created_at: now,
        expires_at: now.saturating_add(secs.saturating_mul(NANOS_PER_SEC)),
        status: PaymentSessionStatus::Open,
        received_e8s: 0,
        billing_id: None,
        closed_at: None,
        refunded_e8s: 0,
        refund_block: None,
    };
    state.payment_sessions.insert(id, session.clone());
    crate::domain::metrics::session_opened(state);
    state.payment_sessions_by_vault.insert((vault_id, id), ());
    crate::domain::scheduler::schedule_session_check(state, id, now, false);
    let mut vault = state.vaults.get(&vault_id).ok_or(VaultError::NotFound)?;
    crate::domain::vaults::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::PaymentSessionOpened,
        format!("session={id} purpose={purpose:?} amount_e8s={amount}"),
    );
    state.vaults.insert(vault_id, vault);
    Ok(session)
}

/// `get_payment_session`: the vault owner or an admin.
pub fn get_payment_session(
    state: &State,
    rt: &impl Runtime,
    session_id: SessionId,
) -> VaultResult<PaymentSession> {
    let caller = rt.caller();
    let session = state
        .payment_sessions
        .get(&session_id)
        .ok_or(VaultError::NotFound)?;
    if session.owner != caller && !state.config().is_admin(&caller) {
        return Err(VaultError::NotAuthorized);
    }
    Ok(session)
}

/// `list_payment_sessions` (owner): the vault's sessions by ascending id.
pub fn list_payment_sessions(
    state: &State,
    rt: &impl Runtime,
    vault_id: VaultId,
    page: PageArgs,
) -> VaultResult<PaymentSessionPage> {
    access::load(state, vault_id, &rt.caller(), Need::Owner)?;
    let limit = validation::page_limit(page.limit)?;
    let from = page.start_after.map_or(0, |c| c.saturating_add(1));
    let mut ids = state
        .payment_sessions_by_vault
        .keys_range((vault_id, from)..=(vault_id, u64::MAX))
        .map(|(_, id)| id);
    let items: Vec<PaymentSession> = ids
        .by_ref()
        .take(limit)
        .filter_map(|id| state.payment_sessions.get(&id))
        .collect();
    let more = ids.next().is_some();
    Ok(super::types::Page {
        next_cursor: if more {
            items.last().map(|s| s.id)
        } else {
            None
        },
        items,
    })
}

/// `list_billing` (admins): billing entries by ascending id; the cursor is the billing id.
pub fn list_billing(state: &State, rt: &impl Runtime, page: PageArgs) -> VaultResult<BillingPage> {
    require_admin(state, &rt.caller())?;
    let limit = validation::page_limit(page.limit)?;
    let from = page.start_after.map_or(0, |c| c.saturating_add(1));
    let mut it = state.billing.range(from..).map(|e| e.into_pair().1);
    let items: Vec<BillingEntry> = it.by_ref().take(limit).collect();
    let more = it.next().is_some();
    Ok(super::types::Page {
        next_cursor: if more {
            items.last().map(|b| b.id)
        } else {
            None
        },
        items,
    })
}

/// `set_treasury` (admins): where future sweeps go. Pending sweeps keep the destination in
/// their journal intent.
pub fn set_treasury(state: &mut State, rt: &impl Runtime, treasury: Account) -> VaultResult<()> {
    require_admin(state, &rt.caller())?;
    let mut config = state.config().clone();
    config.treasury = treasury;
    config.validate()?;
    state.set_config(config);
    Ok(())
}

/// The 32-byte account identifier of an ICRC-1 account.
fn account_id_of(account: &Account) -> [u8; 32] {
    let sub = account.subaccount.as_ref().and_then(|b| {
        let a: Result<[u8; 32], _> = b.as_slice().try_into();
        a.ok()
    });
    account_identifier(&account.owner, sub)
}

fn session_sub(session: &PaymentSession) -> [u8; 32] {
    session_subaccount(session.id)
}

fn unavailable(reason: impl Into<String>) -> VaultError {
    VaultError::LedgerUnavailable {
        reason: reason.into(),
    }
}

/// Applies the session's purpose to its vault; `Ok(false)` when it no longer applies.
fn apply_purpose(
    state: &mut State,
    session: &PaymentSession,
    now: u64,
    actor: Principal,
) -> VaultResult<bool> {
    let mut vault = state
        .vaults
        .get(&session.vault_id)
        .ok_or(VaultError::NotFound)?;
    if !purpose_applies(&vault, &session.purpose) {
        return Ok(false);
    }
    match session.purpose {
        PaymentPurpose::Create => {
            vaults::confirm_creation_payment(state, session.vault_id, now, actor)?;
        }
        PaymentPurpose::Upgrade(plan) => {
            let from = vault.plan;
            vault.plan = plan;
            vault.updated_at = now;
            audit::append(
                state,
                &mut vault,
                now,
                actor,
                AuditAction::PlanUpgraded,
                format!(
                    "from={:?}/{}/{} to={:?}/{}/{}",
                    from.tier,
                    from.heir_slots,
                    from.witness_slot,
                    plan.tier,
                    plan.heir_slots,
                    plan.witness_slot
                ),
            );
            state.vaults.insert(vault.id, vault);
        }
        PaymentPurpose::Renew => {
            let validity = u64::from(state.config().durations.validity_days);
            vaults::transition(state, &mut vault, LifecycleEvent::Renewed, now, actor)?;
            vault.expires_at = Some(now.saturating_add(validity * NANOS_PER_DAY));
            state.vaults.insert(vault.id, vault);
        }
    }
    Ok(true)
}

/// After a sweep is known applied: billing entry, purpose, session completed, refund intent
/// for the excess. One synchronous step, so it happens entirely or not at all.
fn complete_after_sweep(
    state: &mut State,
    sweep: &JournalEntry,
    block: Option<u64>,
    now: u64,
    actor: Principal,
) -> VaultResult<()> {
    let mut session = state
        .payment_sessions
        .get(&sweep.session_id)
        .ok_or(VaultError::NotFound)?;
    if session.status != PaymentSessionStatus::Open {
        return Ok(());
    }
    let received = sweep.balance_before;
    let excess = received.saturating_sub(session.amount_e8s);
    let (refund, dust) = if excess > LEDGER_FEE_E8S {
        (excess - LEDGER_FEE_E8S, 0)
    } else {
        (0, excess)
    };
    let applied = apply_purpose(state, &session, now, actor)?;
    let billing_id: BillingId = state.billing.last_key_value().map_or(1, |(k, _)| k + 1);
    let entry = BillingEntry {
        id: billing_id,
        session_id: session.id,
        vault_id: session.vault_id,
        owner: session.owner,
        purpose: session.purpose,
        amount_e8s: session.amount_e8s,
        received_e8s: received,
        treasury_e8s: sweep.amount_e8s,
        sweep_block: block,
        refund_e8s: refund,
        refund_block: None,
        refund_pending: refund > 0,
        dust_e8s: dust,
        fees_e8s: if refund > 0 {
            2 * LEDGER_FEE_E8S
        } else {
            LEDGER_FEE_E8S
        },
        applied,
        recorded_at: now,
    };
    state.billing.insert(billing_id, entry);
    crate::domain::metrics::payment_completed(state, sweep.amount_e8s);
    session.status = PaymentSessionStatus::Completed;
    session.received_e8s = received;
    session.billing_id = Some(billing_id);
    session.closed_at = Some(now);
    state.payment_sessions.insert(session.id, session.clone());
    if refund > 0 {
        journal::write_intent(
            state,
            session.id,
            Intent {
                kind: TransferKind::Refund,
                from_subaccount: session_sub(&session),
                to: account_identifier(&session.owner, None),
                to_owner: session.owner,
                amount_e8s: refund,
                fee_e8s: LEDGER_FEE_E8S,
                balance_before: received - session.amount_e8s,
            },
            now,
        );
    }
    if let Some(mut vault) = state.vaults.get(&session.vault_id) {
        if actor == vault.owner {
            crate::domain::vaults::touch_owner(state, &mut vault, now, actor);
        }
        audit::append(
            state,
            &mut vault,
            now,
            actor,
            AuditAction::PaymentConfirmed,
            format!(
                "session={} purpose={:?} amount_e8s={} received_e8s={} sweep_block={:?} billing={} applied={}",
                session.id, session.purpose, session.amount_e8s, received, block, billing_id, applied
            ),
        );
        state.vaults.insert(vault.id, vault);
    }
    Ok(())
}

/// Records a settled transfer and what follows from it.
fn record_settlement(
    state: &mut State,
    entry: &JournalEntry,
    outcome: Outcome,
    now: u64,
    actor: Principal,
) -> VaultResult<()> {
    let Some(entry) = journal::settle(state, entry.key(), outcome, now) else {
        return Ok(());
    };
    let mut session = state
        .payment_sessions
        .get(&entry.session_id)
        .ok_or(VaultError::NotFound)?;
    match (&entry.kind, &entry.outcome) {
        (TransferKind::Sweep, Outcome::Done { block }) => {
            complete_after_sweep(state, &entry, *block, now, actor)?;
        }
        (TransferKind::Sweep, _) => {}
        (TransferKind::Refund, outcome) => {
            if let Some(mut b) = session.billing_id.and_then(|id| state.billing.get(&id)) {
                b.refund_pending = false;
                match outcome {
                    Outcome::Done { block } => {
                        b.refund_block = *block;
                        crate::domain::metrics::refunded(state, entry.amount_e8s);
                    }
                    _ => {
                        // Not applied: the excess stays on the subaccount for refund_session.
                        b.refund_e8s = 0;
                        b.fees_e8s = LEDGER_FEE_E8S;
                    }
                }
                state.billing.insert(b.id, b);
            }
        }
        (TransferKind::LateRefund, Outcome::Done { block }) => {
            crate::domain::metrics::refunded(state, entry.amount_e8s);
            session.refunded_e8s = session.refunded_e8s.saturating_add(entry.amount_e8s);
            session.refund_block = *block;
            state.payment_sessions.insert(session.id, session.clone());
            if let Some(mut vault) = state.vaults.get(&session.vault_id) {
                audit::append(
                    state,
                    &mut vault,
                    now,
                    actor,
                    AuditAction::PaymentRefunded,
                    format!(
                        "session={} refunded_e8s={} block={block:?}",
                        session.id, entry.amount_e8s
                    ),
                );
                state.vaults.insert(vault.id, vault);
            }
        }
        (TransferKind::LateRefund, _) => {
            // Not applied: an open session that was marked refunded opens again.
            if session.status == PaymentSessionStatus::Refunded && session.billing_id.is_none() {
                session.status = PaymentSessionStatus::Open;
                session.closed_at = None;
                state.payment_sessions.insert(session.id, session);
                crate::domain::metrics::session_opened(state);
            }
        }
    }
    Ok(())
}

/// How driving a pending transfer ended in this call.
#[derive(Debug, PartialEq, Eq)]
enum Drive {
    /// Known now (applied or not).
    Settled,
    /// Known not applied, with the reason.
    Failed(String),
    /// Still unknown; retried with the same key next time.
    StillPending(String),
}

/// Sends a pending transfer (same arguments as every earlier attempt) until its outcome is
/// known or the attempts of this call are used up.
async fn drive<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    ledger: Principal,
    entry: &JournalEntry,
    actor: Principal,
) -> VaultResult<Drive> {
    let mut last = String::new();
    for _ in 0..ATTEMPTS_PER_CALL {
        store.write(|s| journal::note_attempt(s, entry.key()));
        let result = rt.ledger_transfer(ledger, entry.transfer_args()).await;
        let outcome = match journal::classify(result) {
            Attempt::Done(block) => Outcome::Done { block: Some(block) },
            Attempt::Failed(reason) => Outcome::Failed { reason },
            Attempt::TooOld => {
                // The key can never be applied any more: the balance tells whether an
                // earlier attempt was (only this canister debits its subaccounts).
                let from = account_identifier(
                    &rt.canister_id(),
                    entry.from_subaccount.as_slice().try_into().ok(),
                );
                let balance = rt
                    .ledger_balance(ledger, from)
                    .await
                    .map_err(|f| unavailable(f.reason))?;
                if balance < entry.balance_before {
                    Outcome::Done { block: None }
                } else {
                    Outcome::Failed {
                        reason: "the transfer left the ledger's dedup window unapplied".into(),
                    }
                }
            }
            Attempt::Unknown { retry_now, reason } => {
                last = reason;
                if retry_now {
                    continue;
                }
                return Ok(Drive::StillPending(last));
            }
        };
        let failed = match &outcome {
            Outcome::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        let now = rt.now();
        store.write(|s| record_settlement(s, entry, outcome, now, actor))?;
        return Ok(match failed {
            Some(reason) => Drive::Failed(reason),
            None => Drive::Settled,
        });
    }
    Ok(Drive::StillPending(last))
}

/// The receipt of a completed session.
fn receipt(state: &State, session: PaymentSession) -> VaultResult<PaymentReceipt> {
    let billing = session
        .billing_id
        .and_then(|id| state.billing.get(&id))
        .ok_or(VaultError::NotFound)?;
    let vault_status = state
        .vaults
        .get(&session.vault_id)
        .map(|v| v.status)
        .ok_or(VaultError::NotFound)?;
    Ok(PaymentReceipt {
        session,
        billing,
        vault_status,
    })
}

/// Decides what a balance means for an open session; writes the sweep intent when paid.
fn plan_sweep(state: &mut State, session_id: SessionId, balance: u64, now: u64) -> VaultResult<()> {
    let session = state
        .payment_sessions
        .get(&session_id)
        .ok_or(VaultError::NotFound)?;
    if session.status != PaymentSessionStatus::Open {
        return Err(VaultError::SessionClosed);
    }
    let vault = state
        .vaults
        .get(&session.vault_id)
        .ok_or(VaultError::NotFound)?;
    let applies = purpose_applies(&vault, &session.purpose);
    if balance == 0 {
        return Err(if applies {
            VaultError::NotYetPaid
        } else if now >= session.expires_at {
            VaultError::SessionExpired
        } else {
            VaultError::InvalidState {
                current: vault.status,
            }
        });
    }
    if !applies {
        // Funds arrived for a purpose that no longer applies: an admin refunds them.
        return Err(VaultError::InvalidState {
            current: vault.status,
        });
    }
    if balance < session.amount_e8s {
        return Err(VaultError::Underpaid {
            paid: balance,
            required: session.amount_e8s,
        });
    }
    let treasury = state.config().treasury.clone();
    journal::write_intent(
        state,
        session_id,
        Intent {
            kind: TransferKind::Sweep,
            from_subaccount: session_sub(&session),
            to: account_id_of(&treasury),
            to_owner: treasury.owner,
            amount_e8s: session.amount_e8s - LEDGER_FEE_E8S,
            fee_e8s: LEDGER_FEE_E8S,
            balance_before: balance,
        },
        now,
    );
    Ok(())
}

/// `verify_payment` (owner): checks the caller, then runs [`verify_session`].
pub async fn verify_payment<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    session_id: SessionId,
) -> VaultResult<PaymentReceipt> {
    let caller = rt.caller();
    let session = store
        .read(|s| s.payment_sessions.get(&session_id))
        .ok_or(VaultError::NotFound)?;
    if session.owner != caller {
        return Err(VaultError::NotAuthorized);
    }
    verify_session(store, rt, session_id, caller).await
}

/// The verification flow, for `verify_payment` and the scheduler (which passes its own
/// actor). The caller has checked authorization.
///
/// 1. Take the session guard (`Busy` if another flow holds it or too many are in flight).
/// 2. A pending transfer of the session (unknown outcome) is sent again with the same
///    dedup key until its outcome is known.
/// 3. An open session with nothing pending: read the subaccount balance; paid → write the
///    sweep intent (treasury, `amount − fee`) and send it. The sweep known applied →
///    billing entry, purpose applied, session completed and, for an excess above one fee,
///    a refund intent sent to the owner's default account.
///
/// Errors: `NotYetPaid`, `Underpaid`, `SessionExpired` (nothing arrived and the purpose no
/// longer applies), `InvalidState` (funds arrived but the purpose no longer applies: an admin
/// refunds them), `SessionClosed`, `Busy`, `LedgerUnavailable`.
pub async fn verify_session<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    session_id: SessionId,
    actor: Principal,
) -> VaultResult<PaymentReceipt> {
    let _guard = SessionGuard::acquire(session_id)?;
    let ledger = store.read(|s| s.config().ledger_canister_id);
    let mut progressed = false;
    // Each round settles one transfer or plans one; three rounds cover sweep + refund.
    for _ in 0..4 {
        let session = store
            .read(|s| s.payment_sessions.get(&session_id))
            .ok_or(VaultError::NotFound)?;
        if let Some(entry) = store.read(|s| journal::pending(s, session_id)) {
            match drive(store, rt, ledger, &entry, actor).await? {
                Drive::Settled => {
                    progressed = true;
                    continue;
                }
                Drive::Failed(reason) | Drive::StillPending(reason) => {
                    let session = store
                        .read(|s| s.payment_sessions.get(&session_id))
                        .ok_or(VaultError::NotFound)?;
                    if session.status == PaymentSessionStatus::Completed {
                        // Paid and applied; only the refund of the excess waits.
                        return store.read(|s| receipt(s, session));
                    }
                    return Err(unavailable(reason));
                }
            }
        }
        match session.status {
            PaymentSessionStatus::Completed if progressed => {
                return store.read(|s| receipt(s, session));
            }
            PaymentSessionStatus::Completed | PaymentSessionStatus::Refunded => {
                return Err(VaultError::SessionClosed);
            }
            PaymentSessionStatus::Open => {}
        }
        let sub = session_sub(&session);
        let balance = rt
            .ledger_balance(ledger, account_identifier(&rt.canister_id(), Some(sub)))
            .await
            .map_err(|f| unavailable(f.reason))?;
        let now = rt.now();
        store.write(|s| plan_sweep(s, session_id, balance, now))?;
    }
    Err(unavailable("payment flow did not settle; retry"))
}

/// `refund_session` (admins): returns the session subaccount's balance (minus the fee) to
/// the owner's default account. Allowed for a completed session (late or extra funds) and
/// for an open one whose purpose no longer applies; an open session whose purpose applies
/// is verified instead (`InvalidState`). If the transfer's outcome stays unknown, the session
/// is returned with `refund_block = None` and a later call finishes it.
pub async fn refund_session<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    session_id: SessionId,
) -> VaultResult<PaymentSession> {
    let caller = rt.caller();
    store.read(|s| require_admin(s, &caller))?;
    store
        .read(|s| s.payment_sessions.get(&session_id))
        .ok_or(VaultError::NotFound)?;
    let _guard = SessionGuard::acquire(session_id)?;
    let ledger = store.read(|s| s.config().ledger_canister_id);
    // Settle whatever is pending first (a sweep, a refund, an earlier refund_session).
    if let Some(entry) = store.read(|s| journal::pending(s, session_id)) {
        let late = entry.kind == TransferKind::LateRefund;
        match drive(store, rt, ledger, &entry, caller).await? {
            Drive::Settled | Drive::Failed(_) if late => {
                return store
                    .read(|s| s.payment_sessions.get(&session_id))
                    .ok_or(VaultError::NotFound);
            }
            Drive::Settled | Drive::Failed(_) => {}
            Drive::StillPending(reason) => return Err(unavailable(reason)),
        }
    }
    let session = store
        .read(|s| s.payment_sessions.get(&session_id))
        .ok_or(VaultError::NotFound)?;
    if session.status == PaymentSessionStatus::Open {
        let vault = store
            .read(|s| s.vaults.get(&session.vault_id))
            .ok_or(VaultError::NotFound)?;
        if purpose_applies(&vault, &session.purpose) {
            return Err(VaultError::InvalidState {
                current: vault.status,
            });
        }
    }
    let sub = session_sub(&session);
    let balance = rt
        .ledger_balance(ledger, account_identifier(&rt.canister_id(), Some(sub)))
        .await
        .map_err(|f| unavailable(f.reason))?;
    if balance <= LEDGER_FEE_E8S {
        return Err(VaultError::invalid(
            "session_id",
            format!("the session holds {balance} e8s, not more than the ledger fee"),
        ));
    }
    let now = rt.now();
    let entry = store.write(|s| {
        let mut session = s
            .payment_sessions
            .get(&session_id)
            .ok_or(VaultError::NotFound)?;
        if journal::pending(s, session_id).is_some() {
            return Err(VaultError::Busy);
        }
        if session.status == PaymentSessionStatus::Open {
            session.status = PaymentSessionStatus::Refunded;
            session.closed_at = Some(now);
            s.payment_sessions.insert(session_id, session.clone());
            crate::domain::metrics::session_closed(s);
        }
        Ok(journal::write_intent(
            s,
            session_id,
            Intent {
                kind: TransferKind::LateRefund,
                from_subaccount: sub,
                to: account_identifier(&session.owner, None),
                to_owner: session.owner,
                amount_e8s: balance - LEDGER_FEE_E8S,
                fee_e8s: LEDGER_FEE_E8S,
                balance_before: balance,
            },
            now,
        ))
    })?;
    match drive(store, rt, ledger, &entry, caller).await? {
        // Still pending: the session shows `refund_block = null`; calling again settles it
        // with the same dedup key.
        Drive::Settled | Drive::StillPending(_) => store
            .read(|s| s.payment_sessions.get(&session_id))
            .ok_or(VaultError::NotFound),
        // Not applied: the session is as it was before the call.
        Drive::Failed(reason) => Err(unavailable(reason)),
    }
}

#[cfg(test)]
mod tests;
