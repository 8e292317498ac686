//! The recovery code (SPEC §9): issue, revoke, use for an ownership transfer.
//!
//! While no member has joined, the owner may issue a code (shown once, SHA-256 stored). A new
//! principal presenting it becomes the owner (lost-device recovery). The first member's
//! arrival revokes it (see `invites::claim_invite`) unless it was issued with
//! `bypass_quorum`: then a member may present it to `approve_unlock_with_recovery`
//! (`unlock.rs`), which satisfies the quorum but never the time gate. Any use after that, and
//! any ownership transfer once a member has joined, is `RecoveryBlocked`.

use candid::Principal;

use super::access::{self, Need};
use super::error::{VaultError, VaultResult};
use super::lifecycle;
use super::tokens::{self, RECOVERY_PREFIX};
use super::vault_core;
use super::vault_core::audit::{self, AuditAction};
use crate::model::member_types::RecoveryCodeIssued;
use crate::model::records::{RecoveryCodeRecord, RecoveryState, VaultRecord};
use crate::model::types::{VaultId, VaultRole, VaultStatus, VaultView};
use crate::runtime::Runtime;
use crate::storage::{LoadedVault, State, StateAccess};

fn has_members(vault: &VaultRecord) -> bool {
    vault.heir_count > 0 || vault.witness_joined
}

fn precheck_issue(
    state: &State,
    caller: &Principal,
    vault_id: VaultId,
) -> VaultResult<LoadedVault> {
    let (vault, _) = access::load(state, vault_id, caller, Need::Owner)?;
    // Not on an unpaid draft (issue #12 M2: throw-away principals could keep records and
    // randomness calls coming for free); the owner of a draft can simply create another.
    if !matches!(
        vault.status,
        VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
    ) {
        return Err(VaultError::InvalidState {
            current: vault.status,
        });
    }
    if has_members(&vault) {
        return Err(VaultError::RecoveryBlocked);
    }
    Ok(vault)
}

/// SPEC §9: the first member's arrival revokes a recovery code issued without
/// `bypass_quorum` (audit-logged). Called by `claim_invite`; the caller persists `vault`.
pub(crate) fn on_member_joined(
    state: &mut State,
    vault: &mut VaultRecord,
    now: u64,
    actor: Principal,
) {
    let Some(hash) = vault.membership.recovery_code_hash else {
        return;
    };
    let bypass = state
        .recovery_codes
        .get(&hash)
        .is_some_and(|code| code.bypass_quorum);
    if !bypass && revoke_active(state, vault, now, Revocation::MemberJoined) {
        audit::append(
            state,
            vault,
            now,
            actor,
            AuditAction::RecoveryRevoked,
            "reason=member joined".into(),
        );
    }
}

/// Revokes the vault's active code (if any) for `reason`. The caller persists `vault`.
///
/// A code revoked because a member joined is kept (marked revoked) so presenting it later
/// answers `RecoveryBlocked` (SPEC §9). A code replaced by a new one or revoked by the owner
/// is forgotten: presenting it answers `TokenInvalid`. So a vault keeps at most its active
/// code and the one a member's arrival revoked, however often codes are issued (issue #12
/// M2).
fn revoke_active(state: &mut State, vault: &mut VaultRecord, now: u64, reason: Revocation) -> bool {
    let Some(hash) = vault.membership.recovery_code_hash.take() else {
        return false;
    };
    match reason {
        Revocation::MemberJoined => {
            if let Some(mut rec) = state.recovery_codes.get(&hash) {
                rec.state = RecoveryState::Revoked {
                    at: now,
                    reason: "member joined".to_string(),
                };
                state.recovery_codes.save(hash, &rec);
            }
        }
        Revocation::Replaced | Revocation::Owner => {
            state.recovery_codes.remove(&hash);
        }
    }
    true
}

/// Why an active recovery code stops being valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Revocation {
    MemberJoined,
    Replaced,
    Owner,
}

/// `issue_recovery_code` (owner, while no member has joined). A new code replaces (revokes)
/// the previous one.
pub async fn issue_recovery_code(
    st: &impl StateAccess,
    rt: &impl Runtime,
    vault_id: VaultId,
    bypass_quorum: bool,
) -> VaultResult<RecoveryCodeIssued> {
    let caller = rt.caller();
    st.read(|s| precheck_issue(s, &caller, vault_id))?;
    let random = rt.random_bytes().await.map_err(|_| VaultError::Busy)?;
    st.write(|s| {
        let now = rt.now();
        let mut vault = precheck_issue(s, &caller, vault_id)?;
        let code = tokens::format(RECOVERY_PREFIX, &random);
        let hash = tokens::hash(&code);
        if s.recovery_codes.contains(&hash) {
            return Err(VaultError::Busy);
        }
        let replaced = revoke_active(s, &mut vault, now, Revocation::Replaced);
        vault.membership.recovery_code_hash = Some(hash);
        vault_core::touch_owner(s, &mut vault, now, caller);
        audit::append(
            s,
            &mut vault,
            now,
            caller,
            AuditAction::RecoveryIssued,
            format!("bypass_quorum={bypass_quorum} replaced_previous={replaced}"),
        );
        s.recovery_codes.insert_new(
            hash,
            &RecoveryCodeRecord {
                vault_id,
                bypass_quorum,
                issued_at: now,
                state: RecoveryState::Active,
            },
        );
        s.save_vault(&mut vault);
        Ok(RecoveryCodeIssued {
            vault_id,
            code,
            bypass_quorum,
            issued_at: now,
        })
    })
}

/// `revoke_recovery_code` (owner): `NotFound` when no code is active.
pub fn revoke_recovery_code(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
) -> VaultResult<()> {
    let (caller, now) = (rt.caller(), rt.now());
    let allowed = |s| !lifecycle::is_terminal(s);
    vault_core::owner_change(state, caller, vault_id, allowed, |state, vault| {
        if vault.membership.recovery_code_hash.is_none() {
            return Err(VaultError::NotFound);
        }
        revoke_active(state, vault, now, Revocation::Owner);
        vault_core::touch_owner(state, vault, now, caller);
        let reason = "reason=owner".to_string();
        audit::append(
            state,
            vault,
            now,
            caller,
            AuditAction::RecoveryRevoked,
            reason,
        );
        Ok(())
    })
}

/// `use_recovery_code`: the caller becomes the owner of the code's vault (before any member
/// joined). The code is used up.
pub fn use_recovery_code(
    state: &mut State,
    rt: &impl Runtime,
    code: &str,
) -> VaultResult<VaultView> {
    let caller = rt.caller();
    let now = rt.now();
    if caller == Principal::anonymous() {
        return Err(VaultError::NotAuthorized);
    }
    let hash = tokens::parse(RECOVERY_PREFIX, code)?;
    let record = state
        .recovery_codes
        .get(&hash)
        .ok_or(VaultError::TokenInvalid)?;
    if record.state != RecoveryState::Active {
        return Err(VaultError::RecoveryBlocked);
    }
    let mut vault = state
        .vaults
        .load(record.vault_id)
        .ok_or(VaultError::TokenInvalid)?;
    if has_members(&vault) {
        return Err(VaultError::RecoveryBlocked);
    }
    if lifecycle::is_terminal(vault.status) || vault.status == VaultStatus::Unlockable {
        return Err(VaultError::InvalidState {
            current: vault.status,
        });
    }
    if caller == vault.owner {
        return Err(VaultError::invalid(
            "code",
            "the caller already owns this vault",
        ));
    }
    let max = u64::from(state.config().limits.max_vaults_per_owner);
    if vault_core::live_vault_count(state, caller) >= max {
        return Err(VaultError::PlanLimit {
            resource: "vaults_per_owner".into(),
            limit: max,
        });
    }
    let old_owner = vault.owner;
    vault.membership.recovery_code_hash = None;
    vault.owner = caller;
    vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::RecoveryOwnershipTransferred,
        format!("from={old_owner} to={caller}"),
    );
    // Used up: forgotten (presenting it again answers TokenInvalid).
    state.recovery_codes.remove(&hash);
    // `save_vault` moves the owner-index entry (the owner changed since the load).
    state.save_vault(&mut vault);
    Ok(vault_core::view(state, &vault, VaultRole::Owner))
}
