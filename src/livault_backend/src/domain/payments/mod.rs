//! Payments verified against the ICP ledger (SPEC §6): payment sessions with one subaccount
//! each, verification by balance, sweep to the treasury, refund of any excess, billing, and
//! the purpose applied (creation, plan upgrade, renewal).
//!
//! This module owns the rules of the sessions, the billing entries and the payment journal
//! (stored by `storage::repositories::PaymentRepository`, which keeps their indexes). Flows
//! that await the ledger ([`verify_session`], [`refund_session`]) take a per-session heap guard
//! before their first `await`, write every transfer intent to the journal before the call
//! and re-read what they need after it; state is reached through [`StateAccess`] so no borrow
//! lives across an `await`. Decisions are recorded in `docs/payments.md`.

pub mod account;
pub mod checks;
pub mod guard;
pub mod journal;
pub mod ledger;

use candid::Principal;

use self::account::{account_identifier, icrc1_text, session_subaccount};
use self::guard::PaymentGuard;
use self::journal::{Attempt, Intent};
use self::ledger::LEDGER_FEE_E8S;
use super::access::require_admin;
use super::access::{self, Need};
use super::error::{VaultError, VaultResult};
use super::lifecycle::LifecycleEvent;
use super::pricing;
use super::validation;
use super::vault_core;
use super::vault_core::audit::{self, AuditAction};
use crate::events::{self, Val};
use crate::model::config::Account;
use crate::model::payments::{
    BillingEntry, BillingId, BillingPage, JournalEntry, Outcome, PaymentPurpose, PaymentReceipt,
    PaymentSession, PaymentSessionPage, PaymentSessionStatus, SessionId, TransferKind,
};
use crate::model::records::VaultRecord;
use crate::model::types::{PageArgs, VaultId, VaultStatus, NANOS_PER_DAY, NANOS_PER_SEC};
use crate::runtime::Runtime;
use crate::storage::{State, StateAccess};

/// Transfer attempts within one call when the outcome comes back unknown (`SysUnknown`).
pub const ATTEMPTS_PER_CALL: u32 = 3;
/// Newest sessions of a vault scanned for an open session to reuse.
const REUSE_SCAN: usize = 50;
/// Most payment sessions one vault may ever have (every purpose). A draft needs one (its
/// creation session is reused for as long as the draft exists); a paid vault needs one per
/// renewal and one per upgrade price it was quoted.
pub const MAX_SESSIONS_PER_VAULT: u64 = 64;

/// Whether `vault` is still in the validity period `session` was priced for (SPEC §6: a
/// late Renew applies to the same period only; a late Upgrade only if no renewal happened
/// since). Sessions opened before the period was recorded are not checked.
fn same_period(vault: &VaultRecord, session: &PaymentSession) -> bool {
    match session.purpose {
        PaymentPurpose::Create => true,
        PaymentPurpose::Upgrade(_) | PaymentPurpose::Renew => session
            .period_expires_at
            .is_none_or(|p| vault.expires_at == Some(p)),
    }
}

/// The amount a session must ask for a price: the sweep must leave something for the
/// treasury after the fee.
fn session_amount(price: u64) -> u64 {
    price.max(LEDGER_FEE_E8S + 1)
}

/// Whether `session`'s purpose can still be applied to `vault` at `now`, at the session's
/// frozen amount (SPEC §6): Create while the vault is an unpaid draft; Renew while it is in
/// `GraceMaster` in the same period; Upgrade while the vault is paid and not unlocked, the
/// plan is still an upgrade, no renewal happened since, and — once the session expired —
/// the current prorated quote is not higher than the frozen amount.
pub fn purpose_applies(
    state: &State,
    vault: &VaultRecord,
    session: &PaymentSession,
    now: u64,
) -> bool {
    match session.purpose {
        PaymentPurpose::Create => vault.status == VaultStatus::Draft,
        PaymentPurpose::Upgrade(plan) => {
            matches!(
                vault.status,
                VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
            ) && pricing::is_upgrade(&vault.plan, &plan)
                && same_period(vault, session)
                && (now < session.expires_at
                    || pricing::upgrade_quote(state, vault, plan, now)
                        .is_ok_and(|q| session_amount(q.amount_e8s) <= session.amount_e8s))
        }
        PaymentPurpose::Renew => {
            vault.status == VaultStatus::GraceMaster && same_period(vault, session)
        }
    }
}

/// `Active → GraceMaster` once `now ≥ expires_at` (SPEC §3); called by the scheduler, and by
/// `init_payment(Renew)` so an owner can renew as soon as validity ends. Returns whether the
/// vault moved. The actor of the audit event is the management canister id (`aaaaa-aa`),
/// standing for "the system".
pub fn expire_validity(state: &mut State, vault_id: VaultId, now: u64) -> VaultResult<bool> {
    let mut vault = state.vaults.load(vault_id).ok_or(VaultError::NotFound)?;
    let due = vault.expires_at.is_some_and(|at| now >= at);
    if vault.status != VaultStatus::Active || !due {
        return Ok(false);
    }
    vault_core::transition(
        state,
        &mut vault,
        LifecycleEvent::ValidityEnded,
        now,
        Principal::management_canister(),
    )?;
    state.save_vault(&mut vault);
    Ok(true)
}

/// The price of `purpose` for `vault` at `now` (before the minimum charge).
fn price_of(
    state: &State,
    vault: &VaultRecord,
    purpose: &PaymentPurpose,
    now: u64,
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
            if !matches!(
                vault.status,
                VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
            ) {
                return Err(wrong_state());
            }
            Ok(pricing::upgrade_quote(state, vault, *plan, now)?.amount_e8s)
        }
        PaymentPurpose::Renew => {
            if vault.status != VaultStatus::GraceMaster {
                return Err(wrong_state());
            }
            Ok(pricing::quote(&state.config().pricing, &vault.plan, vault.owner_age)?.total_e8s)
        }
    }
}

/// The newest open session of the vault for the same purpose and amount that still
/// applies — expired or not: paying it is as good as paying a new one, and reusing it keeps
/// a vault's sessions (and the subaccounts to watch) few.
fn reusable_session(
    state: &State,
    vault: &VaultRecord,
    purpose: &PaymentPurpose,
    amount: u64,
    now: u64,
) -> Option<PaymentSession> {
    state
        .payments
        .sessions_of(vault.id, 0)
        .rev()
        .take(REUSE_SCAN)
        .filter_map(|id| state.payments.session(id))
        .find(|s| {
            s.status == PaymentSessionStatus::Open
                && s.purpose == *purpose
                && s.amount_e8s == amount
                && purpose_applies(state, vault, s, now)
        })
}

/// `init_payment` (owner): opens a session for `purpose` with the price frozen in it, or
/// returns the vault's open session of the same purpose and amount (its expiry renewed if it
/// had passed: same id, same subaccount).
pub fn init_payment(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    purpose: PaymentPurpose,
) -> VaultResult<PaymentSession> {
    let caller = rt.caller();
    let now = rt.now();
    let (mut vault, _) = access::load(state, vault_id, &caller, Need::Owner)?;
    // Validity may have ended since the last scheduler tick: a renewal sees the vault as the
    // scheduler would (`GraceMaster`). Decided on a copy; written only if the call succeeds.
    let validity_ended = purpose == PaymentPurpose::Renew
        && vault.status == VaultStatus::Active
        && vault.expires_at.is_some_and(|at| now >= at);
    if validity_ended {
        vault.status = VaultStatus::GraceMaster;
    }
    let amount = session_amount(price_of(state, &vault, &purpose, now)?);
    let secs = state.config().durations.payment_session_secs;
    let expires_at = now.saturating_add(secs.saturating_mul(NANOS_PER_SEC));
    let reuse = reusable_session(state, &vault, &purpose, amount, now);
    let count = state.payments.sessions_of(vault_id, 0).count() as u64;
    if reuse.is_none() && count >= MAX_SESSIONS_PER_VAULT {
        return Err(VaultError::PlanLimit {
            resource: "payment_sessions_per_vault".into(),
            limit: MAX_SESSIONS_PER_VAULT,
        });
    }
    // Everything checked: write.
    if validity_ended {
        expire_validity(state, vault_id, now)?;
    }
    if let Some(mut open) = reuse {
        if now >= open.expires_at {
            open.expires_at = expires_at;
            checks::schedule_first(state, &mut open, now);
        }
        // Returning the open session is still an owner update: owner activity (SPEC §4).
        let mut vault = state.vaults.load(vault_id).ok_or(VaultError::NotFound)?;
        crate::domain::vault_core::touch_owner(state, &mut vault, now, caller);
        state.save_vault(&mut vault);
        return Ok(open);
    }
    let id = state.payments.next_session_id();
    let sub = session_subaccount(id);
    let me = rt.canister_id();
    let mut session = PaymentSession {
        id,
        vault_id,
        owner: vault.owner,
        purpose,
        amount_e8s: amount,
        subaccount: serde_bytes::ByteBuf::from(sub.to_vec()),
        account_identifier: hex::encode(account_identifier(&me, Some(sub))),
        icrc1_account: icrc1_text(&me, Some(sub)),
        created_at: now,
        expires_at,
        status: PaymentSessionStatus::Open,
        received_e8s: 0,
        billing_id: None,
        closed_at: None,
        refunded_e8s: 0,
        refund_block: None,
        period_expires_at: vault.expires_at,
        next_check_at: None,
    };
    crate::domain::metrics::session_opened(state);
    checks::open(state, &mut session, now);
    let mut vault = state.vaults.load(vault_id).ok_or(VaultError::NotFound)?;
    crate::domain::vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::PaymentSessionOpened,
        format!("session={id} purpose={purpose:?} amount_e8s={amount}"),
    );
    state.save_vault(&mut vault);
    events::emit(
        "payment.session_opened",
        &[
            ("session", Val::Raw(&id)),
            ("vault", Val::Raw(&vault_id)),
            ("purpose", Val::Raw(&purpose_name(&purpose))),
            ("amount_e8s", Val::Raw(&amount)),
        ],
    );
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
        .payments
        .session(session_id)
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
    let mut ids = state.payments.sessions_of(vault_id, from);
    let items: Vec<PaymentSession> = ids
        .by_ref()
        .take(limit)
        .filter_map(|id| state.payments.session(id))
        .collect();
    let more = ids.next().is_some();
    Ok(crate::model::types::Page {
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
    let mut it = state.payments.billing_from(from);
    let items: Vec<BillingEntry> = it.by_ref().take(limit).collect();
    let more = it.next().is_some();
    Ok(crate::model::types::Page {
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

/// Where refunds of `session` go: the account the owner named for the vault
/// (`set_refund_account`), else the owner's default account.
pub fn refund_destination(state: &State, session: &PaymentSession) -> Account {
    state
        .payments
        .refund_account(session.vault_id)
        .unwrap_or(Account {
            owner: session.owner,
            subaccount: None,
        })
}

/// `set_refund_account` (owner, any state but `Deleted`): the ICRC-1 account refunds of the
/// vault's payments go to (an excess, late funds returned by `refund_session`); `None`
/// restores the default (the owner's default account). Refunds already planned keep the
/// destination frozen in their journal intent.
pub fn set_refund_account(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    account: Option<Account>,
) -> VaultResult<()> {
    let (caller, now, me) = (rt.caller(), rt.now(), rt.canister_id());
    let allowed = |s| s != VaultStatus::Deleted;
    vault_core::owner_change(state, caller, vault_id, allowed, |state, vault| {
        if let Some(a) = &account {
            super::config::validate_account("account", a)?;
            if a.owner == me {
                return Err(VaultError::invalid(
                    "account",
                    "refunds cannot go to this canister's own accounts",
                ));
            }
        }
        vault_core::check_draft_audit_room(vault, 1)?;
        let details = match &account {
            Some(a) => format!(
                "refund_account={}",
                icrc1_text(
                    &a.owner,
                    a.subaccount
                        .as_ref()
                        .and_then(|b| b.as_slice().try_into().ok())
                )
            ),
            None => "refund_account=default".to_string(),
        };
        match account {
            Some(a) => state.payments.set_refund_account(vault_id, a),
            None => state.payments.clear_refund_account(vault_id),
        }
        vault_core::touch_owner(state, vault, now, caller);
        audit::append(
            state,
            vault,
            now,
            caller,
            AuditAction::RefundAccountSet,
            details,
        );
        Ok(())
    })
}

/// Applies the session's purpose to its vault (the caller checked that it applies).
fn apply_purpose(
    state: &mut State,
    session: &PaymentSession,
    now: u64,
    actor: Principal,
) -> VaultResult<()> {
    let mut vault = state
        .vaults
        .load(session.vault_id)
        .ok_or(VaultError::NotFound)?;
    match session.purpose {
        PaymentPurpose::Create => {
            vault_core::confirm_creation_payment(state, session.vault_id, now, actor)?;
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
            state.save_vault(&mut vault);
        }
        PaymentPurpose::Renew => {
            let validity = u64::from(state.config().durations.validity_days);
            vault_core::transition(state, &mut vault, LifecycleEvent::Renewed, now, actor)?;
            vault.expires_at = Some(now.saturating_add(validity * NANOS_PER_DAY));
            state.save_vault(&mut vault);
        }
    }
    Ok(())
}

/// What a balance means for an open session. When it pays the session and the purpose
/// still applies, the payment is **confirmed in this one synchronous step**: the purpose is
/// applied, the billing entry recorded (sweep pending), the session completed and the sweep
/// intent written. The funds are on this canister's subaccount, which only this canister
/// debits, so nothing that happens while the sweep awaits the ledger can undo the payment;
/// and a second session of the same vault, confirmed later, finds the purpose gone and keeps
/// its funds (refund-only). Errors change nothing.
fn confirm(
    state: &mut State,
    session_id: SessionId,
    balance: u64,
    now: u64,
    actor: Principal,
) -> VaultResult<()> {
    let session = state
        .payments
        .session(session_id)
        .ok_or(VaultError::NotFound)?;
    if session.status != PaymentSessionStatus::Open {
        return Err(VaultError::SessionClosed);
    }
    // An unpaid draft that was deleted leaves no record: its purpose is gone.
    let vault = state.vaults.get(&session.vault_id);
    let applies = vault
        .as_ref()
        .is_some_and(|v| purpose_applies(state, v, &session, now));
    let current = vault.as_ref().map_or(VaultStatus::Deleted, |v| v.status);
    let gone = || {
        if now >= session.expires_at {
            VaultError::SessionExpired
        } else {
            VaultError::InvalidState { current }
        }
    };
    if balance == 0 {
        return Err(if applies {
            VaultError::NotYetPaid
        } else {
            gone()
        });
    }
    if !applies {
        // Funds arrived for a purpose that no longer applies: they stay on the subaccount
        // and an admin's `refund_session` returns them.
        return Err(gone());
    }
    if balance < session.amount_e8s {
        return Err(VaultError::Underpaid {
            paid: balance,
            required: session.amount_e8s,
        });
    }
    record_confirmation(state, session, balance, now, actor, SweepState::Plan);
    Ok(())
}

/// The sweep of a payment being confirmed.
enum SweepState {
    /// Still to be sent: write its intent.
    Plan,
    /// Already known applied in this block (a sweep planned by the previous flow).
    Done(Option<u64>),
}

/// Confirms a paid session in one step: purpose applied (when it still applies: always for
/// [`SweepState::Plan`], checked by [`confirm`]), billing entry, session completed, sweep
/// intent (or its known block), audit `payment.confirmed`.
fn record_confirmation(
    state: &mut State,
    mut session: PaymentSession,
    balance: u64,
    now: u64,
    actor: Principal,
    sweep: SweepState,
) {
    let applies = state
        .vaults
        .get(&session.vault_id)
        .is_some_and(|v| purpose_applies(state, &v, &session, now));
    // `apply_purpose` fails only when the lifecycle table refuses the move, which
    // `purpose_applies` rules out.
    let applied = applies && apply_purpose(state, &session, now, actor).is_ok();
    let excess = balance.saturating_sub(session.amount_e8s);
    let (refund, dust) = if excess > LEDGER_FEE_E8S {
        (excess - LEDGER_FEE_E8S, 0)
    } else {
        (0, excess)
    };
    let treasury = state.config().treasury.clone();
    let billing_id: BillingId = state.payments.next_billing_id();
    let sweep_amount = session.amount_e8s - LEDGER_FEE_E8S;
    let (sweep_block, sweep_pending) = match sweep {
        SweepState::Plan => (None, true),
        SweepState::Done(block) => (block, false),
    };
    state.payments.insert_billing(&BillingEntry {
        id: billing_id,
        session_id: session.id,
        vault_id: session.vault_id,
        owner: session.owner,
        purpose: session.purpose,
        amount_e8s: session.amount_e8s,
        received_e8s: balance,
        treasury_e8s: sweep_amount,
        sweep_block,
        sweep_pending,
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
    });
    crate::domain::metrics::payment_completed(state, sweep_amount);
    session.status = PaymentSessionStatus::Completed;
    session.received_e8s = balance;
    session.billing_id = Some(billing_id);
    session.closed_at = Some(now);
    state.payments.save_session(&session);
    if sweep_pending {
        journal::write_intent(
            state,
            session.id,
            Intent {
                kind: TransferKind::Sweep,
                from_subaccount: session_sub(&session),
                to: account_id_of(&treasury),
                to_owner: treasury.owner,
                amount_e8s: sweep_amount,
                fee_e8s: LEDGER_FEE_E8S,
                balance_before: balance,
            },
            now,
        );
    }
    if let Some(mut vault) = state.vaults.load(session.vault_id) {
        if actor == vault.owner {
            vault_core::touch_owner(state, &mut vault, now, actor);
        }
        audit::append(
            state,
            &mut vault,
            now,
            actor,
            AuditAction::PaymentConfirmed,
            format!(
                "session={} purpose={:?} amount_e8s={} received_e8s={} billing={} applied={}",
                session.id, session.purpose, session.amount_e8s, balance, billing_id, applied
            ),
        );
        state.save_vault(&mut vault);
    }
    events::emit(
        "payment.confirmed",
        &[
            ("session", Val::Raw(&session.id)),
            ("vault", Val::Raw(&session.vault_id)),
            ("purpose", Val::Raw(&purpose_name(&session.purpose))),
            ("amount_e8s", Val::Raw(&session.amount_e8s)),
            ("received_e8s", Val::Raw(&balance)),
            ("billing", Val::Raw(&billing_id)),
            ("applied", Val::Raw(&applied)),
            ("excess_refund_e8s", Val::Raw(&refund)),
        ],
    );
}

/// The purpose's case name (log lines).
fn purpose_name(purpose: &PaymentPurpose) -> &'static str {
    match purpose {
        PaymentPurpose::Create => "Create",
        PaymentPurpose::Upgrade(_) => "Upgrade",
        PaymentPurpose::Renew => "Renew",
    }
}

/// Logs a settled transfer: where the money went, or why it did not.
fn log_settlement(entry: &JournalEntry) {
    let kind = match entry.kind {
        TransferKind::Sweep => "sweep",
        TransferKind::Refund => "excess_refund",
        TransferKind::LateRefund => "refund",
    };
    match &entry.outcome {
        Outcome::Done { block } => {
            let event = match entry.kind {
                TransferKind::Sweep => "payment.swept",
                TransferKind::Refund => "payment.excess_refunded",
                TransferKind::LateRefund => "payment.refunded",
            };
            let block = block.map_or("unknown".to_string(), |b| b.to_string());
            events::emit(
                event,
                &[
                    ("session", Val::Raw(&entry.session_id)),
                    ("amount_e8s", Val::Raw(&entry.amount_e8s)),
                    ("block", Val::Raw(&block)),
                ],
            );
        }
        Outcome::Failed { reason } => events::emit(
            "payment.transfer_failed",
            &[
                ("kind", Val::Raw(&kind)),
                ("session", Val::Raw(&entry.session_id)),
                ("amount_e8s", Val::Raw(&entry.amount_e8s)),
                ("reason", Val::Text(reason)),
            ],
        ),
        Outcome::Pending => {}
    }
}

/// Records a settled transfer and what follows from it (one synchronous step; nothing in it
/// can fail after a write). When that leaves nothing of the session's trail to do (no
/// transfer pending, sweep and excess refund settled, or the session refunded), its journal
/// is folded away in the same step: the blocks stay in the billing entry and the session,
/// and the session's next transfer still gets a new seq (docs/decisions.md).
fn record_settlement(
    state: &mut State,
    entry: &JournalEntry,
    outcome: Outcome,
    now: u64,
    actor: Principal,
) {
    apply_settlement(state, entry, outcome, now, actor);
    state.payments.fold_settled_journal(entry.session_id);
}

/// [`record_settlement`] before the fold.
fn apply_settlement(
    state: &mut State,
    entry: &JournalEntry,
    outcome: Outcome,
    now: u64,
    actor: Principal,
) {
    let newly = state
        .payments
        .journal_entry(entry.key())
        .is_some_and(|e| e.outcome == Outcome::Pending);
    let Some(entry) = journal::settle(state, entry.key(), outcome, now) else {
        return;
    };
    if newly {
        log_settlement(&entry);
    }
    let Some(mut session) = state.payments.session(entry.session_id) else {
        return;
    };
    let billing = session.billing_id.and_then(|id| state.payments.billing(id));
    match (&entry.kind, &entry.outcome, billing) {
        (TransferKind::Sweep, Outcome::Done { block }, Some(mut b)) => {
            b.sweep_block = *block;
            b.sweep_pending = false;
            state.payments.save_billing(&b);
        }
        (TransferKind::Sweep, Outcome::Done { block }, None)
            if session.status == PaymentSessionStatus::Open =>
        {
            // A sweep planned by the previous version of this flow (which confirmed only
            // after the sweep) is known applied: confirm the payment now.
            record_confirmation(
                state,
                session,
                entry.balance_before,
                now,
                actor,
                SweepState::Done(*block),
            );
        }
        // Not applied: the funds are still on the subaccount; the next call or check sends
        // a new sweep (the purpose stays applied).
        (TransferKind::Sweep, _, _) => {}
        (TransferKind::Refund, outcome, Some(mut b)) => {
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
            state.payments.save_billing(&b);
        }
        (TransferKind::Refund, _, None) => {}
        (TransferKind::LateRefund, Outcome::Done { block }, _) => {
            crate::domain::metrics::refunded(state, entry.amount_e8s);
            session.refunded_e8s = session.refunded_e8s.saturating_add(entry.amount_e8s);
            session.refund_block = *block;
            state.payments.save_session(&session);
            if let Some(mut vault) = state.vaults.load(session.vault_id) {
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
                state.save_vault(&mut vault);
            }
        }
        (TransferKind::LateRefund, _, _) => {
            // Not applied: an open session that was marked refunded opens again.
            if session.status == PaymentSessionStatus::Refunded && session.billing_id.is_none() {
                session.status = PaymentSessionStatus::Open;
                session.closed_at = None;
                state.payments.save_session(&session);
                crate::domain::metrics::session_opened(state);
            }
        }
    }
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

/// What a `TxTooOld` answer means for `entry` given the subaccount's balance now: the dedup
/// key can never apply any more, and only this canister debits its subaccounts, so a lower
/// balance than when the transfer was planned means it was applied. A higher one means
/// funds arrived meanwhile and the outcome is ambiguous: a sweep is then taken as applied
/// (sending it again could take the payer's later funds to the treasury; if it was not
/// applied, its funds stay refundable on the subaccount), a refund as not applied (sending
/// it again pays the same payer, from the funds that are there).
fn too_old_outcome(entry: &JournalEntry, balance: u64) -> Outcome {
    let applied = match entry.kind {
        TransferKind::Sweep => balance != entry.balance_before,
        TransferKind::Refund | TransferKind::LateRefund => balance < entry.balance_before,
    };
    if applied {
        Outcome::Done { block: None }
    } else {
        Outcome::Failed {
            reason: "the transfer left the ledger's dedup window unapplied".into(),
        }
    }
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
                let from = account_identifier(
                    &rt.canister_id(),
                    entry.from_subaccount.as_slice().try_into().ok(),
                );
                let balance = rt
                    .ledger_balance(ledger, from)
                    .await
                    .map_err(|f| unavailable(f.reason))?;
                too_old_outcome(entry, balance)
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
        store.write(|s| record_settlement(s, entry, outcome, now, actor));
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
        .and_then(|id| state.payments.billing(id))
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

/// The next thing a flow must do for a session, decided synchronously from stored state
/// (writing the intent of a follow-up transfer when one is due).
enum Step {
    /// Send (again) this pending transfer.
    Drive(JournalEntry),
    /// Read the subaccount balance of an open session.
    CheckBalance,
    /// Nothing left to do: completed with every transfer settled, or refunded.
    Done(PaymentSessionStatus),
}

/// See [`Step`]. A completed session whose sweep did not apply gets a new sweep intent
/// (fresh dedup key, the same amount); one whose sweep is done and whose excess is still to
/// be returned gets the refund intent.
fn next_step(state: &mut State, session_id: SessionId, now: u64) -> VaultResult<Step> {
    let session = state
        .payments
        .session(session_id)
        .ok_or(VaultError::NotFound)?;
    if let Some(entry) = journal::pending(state, session_id) {
        return Ok(Step::Drive(entry));
    }
    if session.status != PaymentSessionStatus::Completed {
        return Ok(match session.status {
            PaymentSessionStatus::Open => Step::CheckBalance,
            s => Step::Done(s),
        });
    }
    let Some(billing) = session.billing_id.and_then(|id| state.payments.billing(id)) else {
        return Ok(Step::Done(session.status));
    };
    let last_sweep = journal::entries(state, session_id)
        .into_iter()
        .rev()
        .find(|e| e.kind == TransferKind::Sweep);
    if billing.sweep_pending {
        let Some(last) = last_sweep else {
            return Ok(Step::Done(session.status));
        };
        let entry = journal::write_intent(
            state,
            session_id,
            Intent {
                kind: TransferKind::Sweep,
                from_subaccount: session_sub(&session),
                to: last.to.as_slice().try_into().unwrap_or([0; 32]),
                to_owner: last.to_owner,
                amount_e8s: last.amount_e8s,
                fee_e8s: last.fee_e8s,
                balance_before: last.balance_before,
            },
            now,
        );
        return Ok(Step::Drive(entry));
    }
    let refund_written = journal::entries(state, session_id)
        .iter()
        .any(|e| e.kind == TransferKind::Refund);
    if billing.refund_pending && !refund_written {
        let to = refund_destination(state, &session);
        let entry = journal::write_intent(
            state,
            session_id,
            Intent {
                kind: TransferKind::Refund,
                from_subaccount: session_sub(&session),
                to: account_id_of(&to),
                to_owner: to.owner,
                amount_e8s: billing.refund_e8s,
                fee_e8s: LEDGER_FEE_E8S,
                balance_before: billing.received_e8s - billing.amount_e8s,
            },
            now,
        );
        return Ok(Step::Drive(entry));
    }
    Ok(Step::Done(session.status))
}

/// `verify_payment` (owner): checks the caller, then runs [`verify_session`].
pub async fn verify_payment<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    session_id: SessionId,
) -> VaultResult<PaymentReceipt> {
    let caller = rt.caller();
    let session = store
        .read(|s| s.payments.session(session_id))
        .ok_or(VaultError::NotFound)?;
    if session.owner != caller {
        return Err(VaultError::NotAuthorized);
    }
    verify_session(store, rt, session_id, caller).await
}

/// The verification flow, for `verify_payment` and the scheduler (which passes the
/// canister's own principal as `actor`). The caller has checked authorization.
///
/// 1. Take the vault's payment lock (`Busy` if another flow holds it, or the caller has too
///    many flows in flight).
/// 2. A pending transfer of the session (unknown outcome) is sent again with the same dedup
///    key until its outcome is known.
/// 3. An open session: read the subaccount balance; paid and the purpose still applies →
///    [`confirm`] (purpose applied, billing, session completed, sweep intent), then the sweep
///    is sent; once it is known applied, an excess above one fee is refunded.
///
/// A completed session whose transfers still wait for the ledger returns its receipt (the
/// scheduler keeps sending them). Errors: `NotYetPaid`, `Underpaid`, `SessionExpired` (the
/// session expired and its purpose no longer applies: refund-only), `InvalidState` (funds
/// arrived but the purpose no longer applies: refund-only), `SessionClosed`, `Busy`,
/// `LedgerUnavailable`.
pub async fn verify_session<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    session_id: SessionId,
    actor: Principal,
) -> VaultResult<PaymentReceipt> {
    let vault_id = store
        .read(|s| s.payments.session(session_id))
        .ok_or(VaultError::NotFound)?
        .vault_id;
    let caller = (actor != rt.canister_id()).then_some(actor);
    let _guard = PaymentGuard::acquire(vault_id, caller)?;
    let outcome = run_verification(store, rt, session_id, actor).await;
    let now = rt.now();
    let flow = if caller.is_some() {
        checks::Flow::User(&outcome)
    } else {
        checks::Flow::Scheduled(&outcome)
    };
    store.write(|s| checks::after(s, session_id, flow, now));
    outcome
}

/// [`verify_session`] under the vault's lock.
async fn run_verification<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    session_id: SessionId,
    actor: Principal,
) -> VaultResult<PaymentReceipt> {
    let ledger = store.read(|s| s.config().ledger_canister_id);
    let mut progressed = false;
    let completed = |store: &S| -> Option<VaultResult<PaymentReceipt>> {
        store.read(|s| {
            let session = s.payments.session(session_id)?;
            (session.status == PaymentSessionStatus::Completed).then(|| receipt(s, session))
        })
    };
    // Each round confirms, settles or plans one step: confirm + sweep + refund fit.
    for _ in 0..6 {
        let now = rt.now();
        match store.write(|s| next_step(s, session_id, now))? {
            Step::Drive(entry) => match drive(store, rt, ledger, &entry, actor).await? {
                // Known not applied: the next round plans it again (fresh key).
                Drive::Settled | Drive::Failed(_) => progressed = true,
                Drive::StillPending(reason) => {
                    // A confirmed payment whose transfer waits: the receipt says so.
                    return completed(store).unwrap_or(Err(unavailable(reason)));
                }
            },
            Step::CheckBalance => {
                let balance = rt
                    .ledger_balance(
                        ledger,
                        account_identifier(&rt.canister_id(), Some(session_subaccount(session_id))),
                    )
                    .await
                    .map_err(|f| unavailable(f.reason))?;
                let now = rt.now();
                store.write(|s| confirm(s, session_id, balance, now, actor))?;
                progressed = true;
            }
            Step::Done(PaymentSessionStatus::Completed) if progressed => {
                return completed(store).unwrap_or(Err(VaultError::SessionClosed));
            }
            Step::Done(_) => return Err(VaultError::SessionClosed),
        }
    }
    completed(store).unwrap_or(Err(unavailable("payment flow did not settle; retry")))
}

/// `refund_session` (admins): returns the session subaccount's balance (minus the fee) to
/// the vault's refund destination ([`refund_destination`]). Allowed for a completed session
/// whose transfers are settled (late or extra funds) and for an open one whose purpose no
/// longer applies; an open session whose purpose applies is verified instead
/// (`InvalidState`). If the transfer's outcome stays unknown, the session is returned with
/// `refund_block = None` and a later call finishes it.
pub async fn refund_session<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    session_id: SessionId,
) -> VaultResult<PaymentSession> {
    let caller = rt.caller();
    store.read(|s| require_admin(s, &caller))?;
    let vault_id = store
        .read(|s| s.payments.session(session_id))
        .ok_or(VaultError::NotFound)?
        .vault_id;
    let _guard = PaymentGuard::acquire(vault_id, Some(caller))?;
    let outcome = run_refund(store, rt, session_id, caller).await;
    let now = rt.now();
    // A refund whose outcome stays unknown is finished by the scheduler.
    store.write(|s| checks::after(s, session_id, checks::Flow::Refund, now));
    outcome
}

/// [`refund_session`] under the vault's lock.
async fn run_refund<S: StateAccess, R: Runtime>(
    store: &S,
    rt: &R,
    session_id: SessionId,
    caller: Principal,
) -> VaultResult<PaymentSession> {
    let ledger = store.read(|s| s.config().ledger_canister_id);
    // Settle whatever is pending first (a sweep, a refund, an earlier refund_session).
    if let Some(entry) = store.read(|s| journal::pending(s, session_id)) {
        let late = entry.kind == TransferKind::LateRefund;
        match drive(store, rt, ledger, &entry, caller).await? {
            Drive::Settled | Drive::Failed(_) if late => {
                return store
                    .read(|s| s.payments.session(session_id))
                    .ok_or(VaultError::NotFound);
            }
            Drive::Settled | Drive::Failed(_) => {}
            Drive::StillPending(reason) => return Err(unavailable(reason)),
        }
    }
    let now = rt.now();
    store.read(|s| {
        let session = s.payments.session(session_id).ok_or(VaultError::NotFound)?;
        let vault = s.vaults.get(&session.vault_id);
        match (session.status, vault) {
            (PaymentSessionStatus::Open, Some(vault))
                if purpose_applies(s, &vault, &session, now) =>
            {
                Err(VaultError::InvalidState {
                    current: vault.status,
                })
            }
            (PaymentSessionStatus::Completed, _) => {
                let unsettled = session
                    .billing_id
                    .and_then(|id| s.payments.billing(id))
                    .is_some_and(|b| b.sweep_pending || b.refund_pending);
                if unsettled {
                    // The treasury's share (or the excess refund) is still on the
                    // subaccount: verify first.
                    Err(VaultError::Busy)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    })?;
    let balance = rt
        .ledger_balance(
            ledger,
            account_identifier(&rt.canister_id(), Some(session_subaccount(session_id))),
        )
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
        let mut session = s.payments.session(session_id).ok_or(VaultError::NotFound)?;
        if journal::pending(s, session_id).is_some() {
            return Err(VaultError::Busy);
        }
        let to = refund_destination(s, &session);
        if session.status == PaymentSessionStatus::Open {
            session.status = PaymentSessionStatus::Refunded;
            session.closed_at = Some(now);
            s.payments.save_session(&session);
            crate::domain::metrics::session_closed(s);
        }
        Ok(journal::write_intent(
            s,
            session_id,
            Intent {
                kind: TransferKind::LateRefund,
                from_subaccount: session_subaccount(session_id),
                to: account_id_of(&to),
                to_owner: to.owner,
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
            .read(|s| s.payments.session(session_id))
            .ok_or(VaultError::NotFound),
        // Not applied: the session is as it was before the call.
        Drive::Failed(reason) => Err(unavailable(reason)),
    }
}

#[cfg(test)]
mod tests;
