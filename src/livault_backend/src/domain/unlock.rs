//! Unlock rules (SPEC §4): the time gate, the request, approvals, the quorum, the transition
//! to `Unlockable`, and the limit on failed attempts.
//!
//! [`evaluate_unlock`] is pure: the scheduler calls it (through [`unlock_if_due`]) on ticks for
//! pure time locks, and the member calls use it to decide whether their call completes the
//! rules. Decisions are documented in `docs/unlock.md`.
//!
//! One documented exception to "a rejected call changes nothing": a call refused for
//! conditions or quorum (`UnlockConditionsNotMet`, `QuorumNotMet`, a wrong or blocked recovery
//! code) records an `unlock.attempt_failed` audit event and counts the attempt, as SPEC §4
//! requires. Nothing else changes. The sixth such failure of a principal on a vault within an
//! hour is refused with `RateLimited` before anything is evaluated or recorded.

use candid::Principal;

use super::access::{self, Access, Need};
use super::error::{VaultError, VaultResult};
use super::lifecycle::LifecycleEvent;
use super::tokens::{self, RECOVERY_PREFIX};
use super::vault_core::audit::{self, AuditAction};
use super::vault_core::{self, time_gate};
use crate::model::member_types::{TimeGateView, UnlockRequestView, UnlockStatus};
use crate::model::records::{
    ApprovalRecord, FailedAttempt, MemberRecord, MemberRole, RecoveryState, UnlockRequestRecord,
    VaultRecord,
};
use crate::model::types::{VaultId, VaultStatus, NANOS_PER_DAY, NANOS_PER_SEC};
use crate::runtime::Runtime;
use crate::storage::{LoadedVault, State};

/// Failed unlock attempts a principal may make on one vault per hour.
pub const MAX_FAILED_ATTEMPTS_PER_HOUR: usize = 5;
/// The attempt window.
pub const ATTEMPT_WINDOW_NS: u64 = 3600 * NANOS_PER_SEC;

/// Result of [`evaluate_unlock`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnlockEvaluation {
    pub time_gate: TimeGateView,
    /// Approvals of current heirs.
    pub heir_approvals: u32,
    pub heirs_required: u32,
    /// The current witness approved and counts as an approver.
    pub witness_approved: bool,
    pub witness_required: bool,
    pub quorum_met: bool,
    /// The transition to apply now, if time gate and quorum both hold in a state that allows
    /// unlocking (`Active`: `UnlockRulesMet`; `GraceHeir`: `GraceHeirQuorumMet`).
    pub event: Option<LifecycleEvent>,
}

impl UnlockEvaluation {
    /// Approvals counted towards the quorum and the quorum size.
    pub fn have_need(&self) -> (u32, u32) {
        let have = self.heir_approvals.min(self.heirs_required)
            + u32::from(self.witness_required && self.witness_approved);
        let need = self.heirs_required + u32::from(self.witness_required);
        (have, need)
    }
}

fn days(d: u32) -> u64 {
    u64::from(d).saturating_mul(NANOS_PER_DAY)
}

fn current_member(state: &State, vault_id: VaultId, member_id: u32) -> Option<MemberRecord> {
    state.members.get(vault_id, member_id)
}

/// Pure evaluation of the unlock rules of `vault` at `now`: time gate, approvals of current
/// members, quorum, and the transition that would apply. Writes nothing.
pub fn evaluate_unlock(state: &State, vault: &VaultRecord, now: u64) -> UnlockEvaluation {
    let gate = time_gate(vault, now);
    let mut heir_approvals = 0u32;
    let mut witness_approved = false;
    for a in &vault.membership.approvals {
        if let Some(m) = current_member(state, vault.id, a.member_id) {
            if m.count_as_approver {
                match m.role {
                    MemberRole::Heir => heir_approvals += 1,
                    MemberRole::Witness => witness_approved = true,
                }
            }
        }
    }
    let (heirs_required, witness_required) = match &vault.unlock_rules {
        Some(r) => (u32::from(r.required_heirs), r.required_witness),
        None => (0, false),
    };
    let quorum_met = vault.unlock_rules.is_some()
        && heir_approvals >= heirs_required
        && (!witness_required || witness_approved);
    let event = match vault.status {
        VaultStatus::Active if gate.holds && quorum_met => Some(LifecycleEvent::UnlockRulesMet),
        VaultStatus::GraceHeir if quorum_met => Some(LifecycleEvent::GraceHeirQuorumMet),
        _ => None,
    };
    UnlockEvaluation {
        time_gate: gate,
        heir_approvals,
        heirs_required,
        witness_approved,
        witness_required,
        quorum_met,
        event,
    }
}

/// Applies the unlock transition: status, `unlocked_at`, `access_until`, audit. The request
/// is closed. The caller persists `vault`.
pub fn apply_unlock(
    state: &mut State,
    vault: &mut VaultRecord,
    event: LifecycleEvent,
    now: u64,
    actor: Principal,
    how: &str,
) -> VaultResult<()> {
    vault_core::transition(state, vault, event, now, actor)?;
    vault.unlocked_at = Some(now);
    vault.access_until = Some(now.saturating_add(days(u32::from(vault.post_unlock_days))));
    vault.membership.unlock_request = None;
    audit::append(
        state,
        vault,
        now,
        actor,
        AuditAction::Unlocked,
        format!(
            "{how}; access_until={}",
            vault.access_until.unwrap_or_default()
        ),
    );
    Ok(())
}

/// For the scheduler: unlocks `vault` (already loaded by the caller) if its rules hold at
/// `now` (e.g. a pure time lock whose date has come), and persists it when it did. Returns
/// the evaluation: `event` is `Some` when it unlocked; otherwise its time gate says when to
/// look again. Running it twice does nothing extra.
pub fn unlock_if_due(
    state: &mut State,
    mut vault: LoadedVault,
    now: u64,
    actor: Principal,
) -> VaultResult<UnlockEvaluation> {
    let eval = evaluate_unlock(state, &vault, now);
    if let Some(event) = eval.event {
        apply_unlock(
            state,
            &mut vault,
            event,
            now,
            actor,
            &format!("scheduler: {}", eval.time_gate.reason),
        )?;
        state.save_vault(&mut vault);
    }
    Ok(eval)
}

fn recent_failures(vault: &VaultRecord, who: &Principal, now: u64) -> Vec<u64> {
    vault
        .membership
        .failed_attempts
        .iter()
        .filter(|f| f.principal == *who && f.at.saturating_add(ATTEMPT_WINDOW_NS) > now)
        .map(|f| f.at)
        .collect()
}

/// `RateLimited` when `who` already failed 5 times on this vault within the last hour.
fn check_attempts(vault: &VaultRecord, who: &Principal, now: u64) -> VaultResult<()> {
    let recent = recent_failures(vault, who, now);
    if recent.len() >= MAX_FAILED_ATTEMPTS_PER_HOUR {
        let oldest = recent.iter().copied().min().unwrap_or(now);
        let wait_ns = oldest.saturating_add(ATTEMPT_WINDOW_NS).saturating_sub(now);
        return Err(VaultError::RateLimited {
            retry_after_secs: wait_ns.div_ceil(NANOS_PER_SEC).max(1),
        });
    }
    Ok(())
}

/// Records a refused attempt (audit + counter), persists the vault and returns `err`.
fn fail<T>(
    state: &mut State,
    mut vault: LoadedVault,
    who: Principal,
    now: u64,
    what: &str,
    err: VaultError,
) -> VaultResult<T> {
    vault
        .membership
        .failed_attempts
        .retain(|f| f.at.saturating_add(ATTEMPT_WINDOW_NS) > now);
    vault.membership.failed_attempts.push(FailedAttempt {
        principal: who,
        at: now,
    });
    audit::append(
        state,
        &mut vault,
        now,
        who,
        AuditAction::UnlockAttemptFailed,
        format!("{what}: {err:?}"),
    );
    state.save_vault(&mut vault);
    Err(err)
}

/// The member calling an unlock endpoint, with the vault in a state that can still unlock.
/// `allowed` says whether this member may make the call (checked before the vault state).
fn load_member_for_unlock(
    state: &State,
    vault_id: VaultId,
    caller: &Principal,
    now: u64,
    allowed: fn(&MemberRecord) -> bool,
) -> VaultResult<(LoadedVault, MemberRecord)> {
    let (vault, acc) = access::load(state, vault_id, caller, Need::OwnerOrMember)?;
    let Access::Member { member_id, .. } = acc else {
        // The owner neither requests nor approves the unlock of their own vault.
        return Err(VaultError::NotAuthorized);
    };
    let member = current_member(state, vault_id, member_id).ok_or(VaultError::NotAuthorized)?;
    if !allowed(&member) {
        return Err(VaultError::NotAuthorized);
    }
    match vault.status {
        VaultStatus::Active | VaultStatus::GraceHeir => {}
        VaultStatus::Unlockable => return Err(VaultError::AlreadyUnlocked),
        current => return Err(VaultError::InvalidState { current }),
    }
    check_attempts(&vault, caller, now)?;
    Ok((vault, member))
}

fn not_met(gate: &TimeGateView) -> VaultError {
    VaultError::UnlockConditionsNotMet {
        reason: gate.reason.clone(),
        time_gate_opens_at: gate.opens_at,
    }
}

/// `trigger_unlock`: a heir, or the witness with `can_trigger_unlock`, opens an unlock
/// request; with a request already open it is an attempt to complete the unlock. Unlocks
/// when time gate and quorum hold. With a request already open and the rules not met, the
/// call is refused (`UnlockConditionsNotMet` / `QuorumNotMet`) and counted as a failed attempt.
pub fn trigger_unlock(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
) -> VaultResult<UnlockStatus> {
    let caller = rt.caller();
    let now = rt.now();
    let (mut vault, member) =
        load_member_for_unlock(state, vault_id, &caller, now, |m| m.can_trigger_unlock)?;
    let opened = vault.membership.unlock_request.is_none();
    if opened {
        vault.membership.unlock_request = Some(UnlockRequestRecord {
            opened_by: caller,
            member_id: member.member_id,
            opened_at: now,
        });
    }
    let eval = evaluate_unlock(state, &vault, now);
    if !opened && eval.event.is_none() {
        let err = if !eval.time_gate.holds {
            not_met(&eval.time_gate)
        } else {
            let (have, need) = eval.have_need();
            VaultError::QuorumNotMet { have, need }
        };
        return fail(state, vault, caller, now, "trigger_unlock", err);
    }
    if opened {
        let wait = vault
            .unlock_rules
            .as_ref()
            .map_or(0, |r| r.request_wait_days);
        audit::append(
            state,
            &mut vault,
            now,
            caller,
            AuditAction::UnlockRequested,
            format!("member={} wait_days={wait}", member.member_id),
        );
        // The request's wait may open the time gate before the other deadlines.
        crate::domain::vault_core::schedule_unlock_check(state, &vault, now);
    }
    if let Some(event) = eval.event {
        apply_unlock(
            state,
            &mut vault,
            event,
            now,
            caller,
            &format!("trigger_unlock: {}", eval.time_gate.reason),
        )?;
    }
    vault.updated_at = now;
    state.save_vault(&mut vault);
    Ok(status_for(state, &vault, &caller, now))
}

/// `approve_unlock`: heirs, and the witness if `count_as_approver`, approve while the time
/// gate holds (idempotent). Unlocks when the quorum completes. Before the time gate holds the
/// call is refused with `UnlockConditionsNotMet` and counted as a failed attempt.
pub fn approve_unlock(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
) -> VaultResult<UnlockStatus> {
    let caller = rt.caller();
    let now = rt.now();
    let (mut vault, member) =
        load_member_for_unlock(state, vault_id, &caller, now, |m| m.count_as_approver)?;
    let gate = time_gate(&vault, now);
    if !gate.holds {
        return fail(state, vault, caller, now, "approve_unlock", not_met(&gate));
    }
    let already = vault
        .membership
        .approvals
        .iter()
        .any(|a| a.member_id == member.member_id);
    if !already {
        vault.membership.approvals.push(ApprovalRecord {
            member_id: member.member_id,
            at: now,
        });
        audit::append(
            state,
            &mut vault,
            now,
            caller,
            AuditAction::UnlockApproved,
            format!("member={} role={:?}", member.member_id, member.role),
        );
    }
    let eval = evaluate_unlock(state, &vault, now);
    if let Some(event) = eval.event {
        apply_unlock(
            state,
            &mut vault,
            event,
            now,
            caller,
            &format!("approve_unlock: {}", eval.time_gate.reason),
        )?;
    }
    if !already || eval.event.is_some() {
        vault.updated_at = now;
        state.save_vault(&mut vault);
    }
    Ok(status_for(state, &vault, &caller, now))
}

/// `approve_unlock_with_recovery`: a member presents the owner's recovery code issued with
/// `bypass_quorum`; it satisfies the quorum (never the time gate) and unlocks at once. The
/// code is used up. A wrong, revoked, used or non-bypass code, or a closed time gate, is a
/// failed attempt.
pub fn approve_unlock_with_recovery(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    code: &str,
) -> VaultResult<UnlockStatus> {
    let caller = rt.caller();
    let now = rt.now();
    let (mut vault, member) = load_member_for_unlock(state, vault_id, &caller, now, |_| true)?;
    const WHAT: &str = "approve_unlock_with_recovery";
    let hash = match tokens::parse(RECOVERY_PREFIX, code) {
        Ok(h) => h,
        Err(e) => return fail(state, vault, caller, now, WHAT, e),
    };
    let record = match state.recovery_codes.get(&hash) {
        Some(r) if r.vault_id == vault_id => r,
        _ => return fail(state, vault, caller, now, WHAT, VaultError::TokenInvalid),
    };
    if record.state != RecoveryState::Active || !record.bypass_quorum {
        return fail(state, vault, caller, now, WHAT, VaultError::RecoveryBlocked);
    }
    let gate = time_gate(&vault, now);
    if !gate.holds {
        return fail(state, vault, caller, now, WHAT, not_met(&gate));
    }
    let event = match vault.status {
        VaultStatus::GraceHeir => LifecycleEvent::GraceHeirQuorumMet,
        _ => LifecycleEvent::UnlockRulesMet,
    };
    let mut record = record;
    record.state = RecoveryState::Used {
        at: now,
        by: caller,
    };
    vault.membership.recovery_code_hash = None;
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::RecoveryQuorumBypassed,
        format!("member={}", member.member_id),
    );
    apply_unlock(
        state,
        &mut vault,
        event,
        now,
        caller,
        &format!("recovery code bypassed the quorum; {}", gate.reason),
    )?;
    state.recovery_codes.save(hash, &record);
    state.save_vault(&mut vault);
    Ok(status_for(state, &vault, &caller, now))
}

/// The unlock status of `vault` as `viewer` sees it.
pub fn status_for(
    state: &State,
    vault: &VaultRecord,
    viewer: &Principal,
    now: u64,
) -> UnlockStatus {
    let eval = evaluate_unlock(state, vault, now);
    let acc = access::role_of(state, vault, viewer);
    let member = match acc {
        Access::Member { member_id, .. } => current_member(state, vault.id, member_id),
        _ => None,
    };
    let wait_days = vault
        .unlock_rules
        .as_ref()
        .map_or(0, |r| r.request_wait_days);
    UnlockStatus {
        vault_id: vault.id,
        status: vault.status,
        rules: vault.unlock_rules.clone(),
        request: vault
            .membership
            .unlock_request
            .as_ref()
            .map(|r| UnlockRequestView {
                opened_by: r.opened_by,
                member_id: r.member_id,
                opened_at: r.opened_at,
                wait_until: r.opened_at.saturating_add(days(wait_days)),
            }),
        heir_approvals: eval.heir_approvals,
        heirs_required: eval.heirs_required,
        witness_approved: eval.witness_approved,
        witness_required: eval.witness_required,
        quorum_met: eval.quorum_met,
        time_gate: eval.time_gate,
        unlocked_at: vault.unlocked_at,
        access_until: vault.access_until,
        my_role: acc.role().unwrap_or(crate::model::types::VaultRole::Owner),
        can_trigger: member.as_ref().is_some_and(|m| m.can_trigger_unlock),
        can_approve: member.as_ref().is_some_and(|m| m.count_as_approver),
        my_approval_at: member.as_ref().and_then(|m| {
            vault
                .membership
                .approvals
                .iter()
                .find(|a| a.member_id == m.member_id)
                .map(|a| a.at)
        }),
        my_failed_attempts_last_hour: recent_failures(vault, viewer, now).len() as u32,
    }
}

/// `get_unlock_status` (owner and members).
pub fn get_unlock_status(
    state: &State,
    rt: &impl Runtime,
    vault_id: VaultId,
) -> VaultResult<UnlockStatus> {
    let caller = rt.caller();
    let (vault, _) = access::load(state, vault_id, &caller, Need::OwnerOrMember)?;
    Ok(status_for(state, &vault, &caller, rt.now()))
}
