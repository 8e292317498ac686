//! The vault's core: the only place a vault's status changes, and what goes with every
//! change — the lifecycle table ([`transition`]), owner activity ([`touch_owner`]), the
//! setup conditions ([`refresh_setup`]), the deadlines a status starts (the due queue:
//! [`schedule_for_status`] and friends) and the capacity guard.
//!
//! Features (`vaults`, `invites`, `recovery`, `unlock`, `payments`, `content`, `keys`) call
//! this module and never each other for these; it calls no feature. The repeated shape of
//! an owner operation — load the owned vault, check its status, change it, audit, save — is
//! [`owner_change`].

use candid::Principal;

pub mod audit;
pub mod deadlines;

pub use deadlines::{
    access_until, enqueue, schedule_compaction, schedule_for_status, schedule_new_vault,
    schedule_unlock_check, time_gate, unschedule_vault, QueueKind, PARKED_DUE,
};

use super::access::{self, Need};
use super::error::{VaultError, VaultResult};
use super::lifecycle::{self, LifecycleEvent};
use crate::events::Val;
use crate::model::records::VaultRecord;
use crate::model::types::{VaultId, VaultRole, VaultStatus, VaultView, NANOS_PER_DAY};
use crate::storage::{LoadedVault, State};
use audit::AuditAction;

/// The unit of work of an owner operation: loads `vault_id` for `caller` (owner only;
/// `NotFound` / `NotAuthorized`), refuses a status `allowed` rejects (`InvalidState`), runs
/// `change` (which validates before it writes, audits what it did, and may transition), then
/// saves the vault with its indexes and counts. An `Err` from `change` saves nothing.
pub fn owner_change<R>(
    state: &mut State,
    caller: Principal,
    vault_id: VaultId,
    allowed: impl Fn(VaultStatus) -> bool,
    change: impl FnOnce(&mut State, &mut LoadedVault) -> VaultResult<R>,
) -> VaultResult<R> {
    let mut vault = load_owned(state, &caller, vault_id, allowed)?;
    let out = change(state, &mut vault)?;
    state.save_vault(&mut vault);
    Ok(out)
}

// ------------------------------------------------------------------ status

/// Applies `event` to `vault` (in memory): the lifecycle table, timestamps, the audit
/// event and the deadlines the new status starts. The caller saves `vault`
/// ([`State::save_vault`], which moves the per-status count and, for `Deleted`, drops the
/// owner-index entry, so `live_vault_count` reads no tombstones; issue #12 M2).
pub fn transition(
    state: &mut State,
    vault: &mut VaultRecord,
    event: LifecycleEvent,
    now: u64,
    actor: Principal,
) -> VaultResult<()> {
    let from = vault.status;
    let to = lifecycle::next_status(from, event)?;
    vault.status = to;
    vault.status_changed_at = now;
    vault.updated_at = now;
    if from == VaultStatus::Draft {
        forget_idempotency(state, vault.id);
    }
    audit::append(
        state,
        vault,
        now,
        actor,
        AuditAction::StatusChanged,
        format!("{} -> {} ({event:?})", from.name(), to.name()),
    );
    schedule_for_status(state, vault, now);
    crate::events::emit(
        "vault.status",
        &[
            ("vault", Val::Raw(&vault.id)),
            ("from", Val::Raw(&from.name())),
            ("to", Val::Raw(&to.name())),
            ("cause", Val::Text(&format!("{event:?}"))),
        ],
    );
    Ok(())
}

/// What is still missing before `NeedSetup` can become `SetupComplete`.
pub fn setup_missing(vault: &VaultRecord) -> Vec<String> {
    let mut missing = Vec::new();
    if vault.unlock_rules.is_none() {
        missing.push("unlock_rules".to_string());
    }
    if vault.item_count == 0 {
        missing.push("content".to_string());
    }
    if vault.heir_count == 0 {
        missing.push("heir".to_string());
    }
    missing
}

/// Moves `NeedSetup ↔ SetupComplete` to match the setup conditions (SPEC §3). Called after
/// every change that can affect them, usually after other writes: it cannot fail (both moves
/// are in the lifecycle table for the status they start from; a refusal would be a
/// programming error and traps, rolling the whole message back — issue #12 L5).
pub fn refresh_setup(state: &mut State, vault: &mut VaultRecord, now: u64, actor: Principal) {
    let complete = setup_missing(vault).is_empty();
    let event = match (vault.status, complete) {
        (VaultStatus::NeedSetup, true) => LifecycleEvent::SetupConditionsMet,
        (VaultStatus::SetupComplete, false) => LifecycleEvent::SetupConditionsLost,
        _ => return,
    };
    transition(state, vault, event, now, actor)
        .expect("BUG: the lifecycle table refuses a setup transition");
}

/// Drops the idempotency entries of a vault that leaves `Draft` (paid or erased): a create
/// retry only matters while the draft exists.
pub fn forget_idempotency(state: &mut State, vault_id: VaultId) {
    state.idempotency.release_vault(vault_id);
}

/// Applies a confirmed creation payment: `Draft → NeedSetup`, `paid_at`, `expires_at`.
/// Used by the payment flow.
pub fn confirm_creation_payment(
    state: &mut State,
    vault_id: VaultId,
    now: u64,
    actor: Principal,
) -> VaultResult<VaultRecord> {
    let mut vault = state.vaults.load(vault_id).ok_or(VaultError::NotFound)?;
    let validity = u64::from(state.config().durations.validity_days);
    transition(state, &mut vault, LifecycleEvent::CreationPaid, now, actor)?;
    vault.paid_at = Some(now);
    vault.expires_at = Some(now.saturating_add(validity * NANOS_PER_DAY));
    refresh_setup(state, &mut vault, now, actor);
    state.save_vault(&mut vault);
    Ok(vault.into_record())
}

// ------------------------------------------------------------------ owner activity

/// Records owner activity (any authenticated owner update counts, SPEC §4): refreshes
/// `last_owner_activity`, and cancels an open unlock request and clears collected approvals
/// (audit-logged). The caller persists `vault`.
pub fn touch_owner(state: &mut State, vault: &mut VaultRecord, now: u64, actor: Principal) {
    vault.last_owner_activity = now;
    vault.updated_at = now;
    on_owner_activity(state, vault, now, actor);
}

/// Owner activity: cancels an open request and clears collected approvals (audit-logged when
/// there was anything to clear). The caller persists `vault`.
pub fn on_owner_activity(state: &mut State, vault: &mut VaultRecord, now: u64, actor: Principal) {
    let m = &mut vault.membership;
    if m.unlock_request.is_none() && m.approvals.is_empty() {
        return;
    }
    let had_request = m.unlock_request.take().is_some();
    let cleared = m.approvals.len();
    m.approvals.clear();
    audit::append(
        state,
        vault,
        now,
        actor,
        AuditAction::UnlockRequestCancelled,
        format!("owner activity; request_open={had_request} approvals_cleared={cleared}"),
    );
}

// ------------------------------------------------------------------ loading and views

/// Most audit events an unpaid `Draft` keeps from its owner's settings (`update_vault`,
/// `set_refund_account`; issue #12 item 2). An owner write that would append more answers
/// `PlanLimit { resource = "draft_audit_events" }`. Payment sessions (at most one per price,
/// `init_payment` reuses it) and vetKD derivations (a canister-wide daily cap for drafts)
/// still log: they are bounded elsewhere, and a capped draft must still be payable. A paid
/// vault's log is bounded by its retention (compaction).
pub const MAX_DRAFT_AUDIT_EVENTS: u64 = 64;

/// Refuses an owner write that would append `adding` events to an unpaid draft's log past
/// [`MAX_DRAFT_AUDIT_EVENTS`]; anything else passes.
pub fn check_draft_audit_room(vault: &VaultRecord, adding: u64) -> VaultResult<()> {
    if vault.status == VaultStatus::Draft
        && adding > 0
        && vault.audit_next_seq.saturating_add(adding) > MAX_DRAFT_AUDIT_EVENTS
    {
        return Err(VaultError::PlanLimit {
            resource: "draft_audit_events".into(),
            limit: MAX_DRAFT_AUDIT_EVENTS,
        });
    }
    Ok(())
}

/// Vaults of `owner` that are not deleted. The owner index holds only live vaults (deletion
/// removes the entry); the status filter covers entries of vaults deleted before that.
pub fn live_vault_count(state: &State, owner: Principal) -> u64 {
    state
        .vaults
        .owned_by(owner, 0)
        .filter(|id| {
            state
                .vaults
                .get(id)
                .is_some_and(|v| v.status != VaultStatus::Deleted)
        })
        .count() as u64
}

/// Loads a vault for an owner operation that is allowed only in `allowed` states
/// (`NotAuthorized` / `NotFound` from [`access::load`], `InvalidState` otherwise).
pub fn load_owned(
    state: &State,
    caller: &Principal,
    vault_id: VaultId,
    allowed: impl Fn(VaultStatus) -> bool,
) -> VaultResult<LoadedVault> {
    let (vault, _) = access::load(state, vault_id, caller, Need::Owner)?;
    if !allowed(vault.status) {
        return Err(VaultError::InvalidState {
            current: vault.status,
        });
    }
    Ok(vault)
}

/// The API view of a vault for a viewer with `role`.
pub fn view(state: &State, vault: &VaultRecord, role: VaultRole) -> VaultView {
    let storage_limit_bytes = if vault.status == VaultStatus::Deleted {
        0
    } else {
        state.config().pricing.tier(vault.plan.tier).storage_bytes
    };
    VaultView {
        id: vault.id,
        owner: vault.owner,
        name: vault.name.clone(),
        status: vault.status,
        plan: vault.plan,
        owner_age: vault.owner_age,
        price_e8s: vault.price_e8s,
        unlock_rules: vault.unlock_rules.clone(),
        post_unlock_days: vault.post_unlock_days,
        audit_retention_days: vault.audit_retention_days,
        created_at: vault.created_at,
        updated_at: vault.updated_at,
        status_changed_at: vault.status_changed_at,
        paid_at: vault.paid_at,
        expires_at: vault.expires_at,
        activated_at: vault.activated_at,
        unlocked_at: vault.unlocked_at,
        access_until: vault.access_until,
        deleted_at: vault.deleted_at,
        last_owner_activity: vault.last_owner_activity,
        storage_limit_bytes,
        storage_used_bytes: vault.storage_committed_bytes + vault.storage_reserved_bytes,
        item_count: vault.item_count,
        heir_count: vault.heir_count,
        witness_joined: vault.witness_joined,
        setup_missing: if vault.status == VaultStatus::NeedSetup {
            setup_missing(vault)
        } else {
            Vec::new()
        },
        refund_account: if role == VaultRole::Owner {
            state.payments.refund_account(vault.id)
        } else {
            None
        },
        my_role: role,
    }
}

/// Refuses new data past the capacity high-water mark (`limits.stable_memory_high_water_bytes`):
/// `create_vault` and `begin_upload` (with the bytes it would add) call it; everything an
/// existing vault does keeps working. `stable_bytes`: the canister's stable memory now
/// (`Runtime::stable_memory_bytes`).
pub fn check_capacity(state: &State, stable_bytes: u64, adding: u64) -> VaultResult<()> {
    let mark = state.config().limits.high_water_bytes();
    if stable_bytes.saturating_add(adding) >= mark {
        return Err(VaultError::PlanLimit {
            resource: "canister_storage".into(),
            limit: mark,
        });
    }
    Ok(())
}
