//! Invites and members (SPEC §7): generate, introspect, claim, revoke, regenerate, list,
//! remove.
//!
//! Tokens are secrets (see [`super::tokens`]): ≥128 bits from `raw_rand`, shown once, only
//! their SHA-256 stored. Plan caps count joined members AND open (unexpired) invites. Share
//! indices are unique per vault (1..=255) and never handed out twice. A claim is one atomic
//! write (no `await`), so two principals racing for one token produce exactly one member.
//!
//! Flows that need randomness validate first, `await` the randomness, then re-check every
//! condition in the write step before changing anything.

use candid::Principal;

use super::access::{self, Access, Need};
use super::error::{VaultError, VaultResult};
use super::tokens::{self, INVITE_PREFIX};
use super::validation;
use super::vault_core;
use super::vault_core::audit::{self, AuditAction};
use crate::model::member_types::{
    GenerateInviteArgs, InviteCreated, InviteInfo, InviteStatus, InviteView, MemberView,
};
use crate::model::records::{
    InviteRecord, InviteState, MemberRecord, MemberRole, OpenInvite, VaultRecord,
};
use crate::model::types::{
    Page, PageArgs, VaultId, VaultRole, VaultStatus, VaultView, NANOS_PER_SEC,
};
use crate::runtime::Runtime;
use crate::storage::{LoadedVault, State, StateAccess};

/// Highest share index (shares are numbered 1..=255 per vault).
pub const MAX_SHARE_INDEX: u16 = 255;
/// Invite records a vault may accumulate (generated + regenerated).
pub const MAX_INVITES_PER_VAULT: u64 = 1000;
/// Invited person's display name, in characters.
pub const MAX_MEMBER_NAME_CHARS: usize = 64;
/// Email hint, in characters.
pub const MAX_EMAIL_HINT_CHARS: usize = 128;

/// Invites may be generated, claimed, and members removed, in these states. `Draft` is
/// excluded: an unpaid vault hands out no secrets and collects no members (it may be purged
/// after 7 days); from `GraceMaster` on the membership is frozen.
pub fn membership_open(status: VaultStatus) -> bool {
    matches!(
        status,
        VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
    )
}

/// The API status of an invite at `now`.
pub fn status_of(invite: &InviteRecord, now: u64) -> InviteStatus {
    invite.status_at(now)
}

/// Drops expired entries from the vault's open-invite list.
fn prune_open(vault: &mut VaultRecord, now: u64) {
    vault.membership.open_invites.retain(|o| o.expires_at > now);
}

/// Checks the plan caps for one more `role` invite: joined members plus open invites.
pub fn check_caps(vault: &VaultRecord, role: MemberRole, now: u64) -> VaultResult<()> {
    let open = vault
        .membership
        .open_invites
        .iter()
        .filter(|o| o.role == role && o.expires_at > now)
        .count() as u64;
    match role {
        MemberRole::Heir => {
            let slots = u64::from(vault.plan.heir_slots);
            if u64::from(vault.heir_count) + open >= slots {
                return Err(VaultError::PlanLimit {
                    resource: "heir_slots".into(),
                    limit: slots,
                });
            }
        }
        MemberRole::Witness => {
            if !vault.plan.witness_slot {
                return Err(VaultError::PlanLimit {
                    resource: "witness_slot".into(),
                    limit: 0,
                });
            }
            if vault.witness_joined || open > 0 {
                return Err(VaultError::PlanLimit {
                    resource: "witness_slot".into(),
                    limit: 1,
                });
            }
        }
    }
    Ok(())
}

fn check_invite_count(vault: &VaultRecord) -> VaultResult<()> {
    if vault.membership.invites_issued >= MAX_INVITES_PER_VAULT {
        return Err(VaultError::PlanLimit {
            resource: "invites".into(),
            limit: MAX_INVITES_PER_VAULT,
        });
    }
    Ok(())
}

fn validate_args(args: &GenerateInviteArgs) -> VaultResult<()> {
    validation::text("name", &args.name, MAX_MEMBER_NAME_CHARS)?;
    if let Some(hint) = &args.email_hint {
        validation::text("email_hint", hint, MAX_EMAIL_HINT_CHARS)?;
    }
    Ok(())
}

/// Everything `generate_invite` checks; run before and again after the randomness `await`.
fn precheck_generate(
    state: &State,
    caller: &Principal,
    args: &GenerateInviteArgs,
    now: u64,
) -> VaultResult<LoadedVault> {
    let vault = vault_core::load_owned(state, caller, args.vault_id, membership_open)?;
    check_caps(&vault, args.role, now)?;
    if vault.membership.share_indices_used >= MAX_SHARE_INDEX {
        return Err(VaultError::PlanLimit {
            resource: "share_index".into(),
            limit: u64::from(MAX_SHARE_INDEX),
        });
    }
    check_invite_count(&vault)?;
    Ok(vault)
}

/// Stores a new open invite with the token `random` gives; returns what the owner sees once.
#[allow(clippy::too_many_arguments)]
fn insert_invite(
    state: &mut State,
    vault: &mut LoadedVault,
    template: &InviteRecord,
    share_index: u8,
    random: &[u8; 32],
    now: u64,
    actor: Principal,
    details: String,
    action: AuditAction,
) -> VaultResult<InviteCreated> {
    let token = tokens::format(INVITE_PREFIX, random);
    let token_hash = tokens::hash(&token);
    if state.invites.token_taken(&token_hash) {
        // Only a broken randomness source repeats 256 bits; refuse rather than alias invites.
        return Err(VaultError::Busy);
    }
    let invite_id = vault.membership.invites_issued + 1;
    let expires_at = now.saturating_add(state.config().durations.invite_secs * NANOS_PER_SEC);
    let invite = InviteRecord {
        invite_id,
        share_index,
        token_hash,
        created_at: now,
        expires_at,
        state: InviteState::Open,
        replaced_by: None,
        ..template.clone()
    };
    vault.membership.invites_issued = invite_id;
    prune_open(vault, now);
    vault.membership.open_invites.push(OpenInvite {
        invite_id,
        role: invite.role,
        expires_at,
    });
    vault_core::touch_owner(state, vault, now, actor);
    audit::append(
        state,
        vault,
        now,
        actor,
        action,
        format!(
            "invite={invite_id} role={:?} share_index={share_index}{details}",
            invite.role
        ),
    );
    super::metrics::invite_issued(state, now);
    state.invites.insert_new(&invite);
    state.save_vault(vault);
    Ok(InviteCreated {
        vault_id: vault.id,
        invite_id,
        token,
        role: invite.role,
        share_index,
        expires_at,
    })
}

/// `generate_invite` (owner; `NeedSetup`, `SetupComplete`, `Active`).
pub async fn generate_invite(
    st: &impl StateAccess,
    rt: &impl Runtime,
    args: GenerateInviteArgs,
) -> VaultResult<InviteCreated> {
    let caller = rt.caller();
    validate_args(&args)?;
    st.read(|s| precheck_generate(s, &caller, &args, rt.now()))?;
    let random = rt.random_bytes().await.map_err(|_| VaultError::Busy)?;
    st.write(|s| {
        let now = rt.now();
        // Re-check after the await: another call may have used the slot or changed the vault.
        let mut vault = precheck_generate(s, &caller, &args, now)?;
        let share_index = (vault.membership.share_indices_used + 1) as u8;
        vault.membership.share_indices_used += 1;
        let is_heir = args.role == MemberRole::Heir;
        let template = InviteRecord {
            vault_id: vault.id,
            invite_id: 0,
            role: args.role,
            name: args.name.trim().to_string(),
            relation: args.relation,
            email_hint: args.email_hint.clone(),
            can_trigger_unlock: is_heir || args.can_trigger_unlock,
            count_as_approver: is_heir || args.count_as_approver,
            share_index,
            token_hash: [0; 32],
            created_at: now,
            expires_at: now,
            state: InviteState::Open,
            replaced_by: None,
        };
        insert_invite(
            s,
            &mut vault,
            &template,
            share_index,
            &random,
            now,
            caller,
            String::new(),
            AuditAction::InviteCreated,
        )
    })
}

/// Looks an invite up by its token text (format checked first).
fn find_by_token(state: &State, token: &str) -> VaultResult<InviteRecord> {
    let hash = tokens::parse(INVITE_PREFIX, token)?;
    state
        .invites
        .find_by_token(&hash)
        .ok_or(VaultError::TokenInvalid)
}

/// `get_invite_info` (anyone, anonymous included): what the invite is for.
pub fn get_invite_info(state: &State, now: u64, token: &str) -> VaultResult<InviteInfo> {
    let invite = find_by_token(state, token)?;
    let vault = state
        .vaults
        .get(&invite.vault_id)
        .ok_or(VaultError::TokenInvalid)?;
    Ok(InviteInfo {
        vault_id: vault.id,
        vault_name: vault.name.clone(),
        inviter: vault.owner,
        role: invite.role,
        name: invite.name.clone(),
        relation: invite.relation,
        expires_at: invite.expires_at,
        status: status_of(&invite, now),
    })
}

/// `claim_invite`: the caller joins the vault. One atomic write; a repeat by the same
/// principal returns the same member.
pub fn claim_invite(state: &mut State, rt: &impl Runtime, token: &str) -> VaultResult<MemberView> {
    let caller = rt.caller();
    let now = rt.now();
    if caller == Principal::anonymous() {
        return Err(VaultError::NotAuthorized);
    }
    let mut invite = find_by_token(state, token)?;
    let mut vault = state
        .vaults
        .load(invite.vault_id)
        .ok_or(VaultError::TokenInvalid)?;
    match &invite.state {
        InviteState::Claimed { by, member_id, .. } => {
            if *by == caller {
                let m = state
                    .members
                    .get(vault.id, *member_id)
                    // The member was removed since: the invite is spent.
                    .ok_or(VaultError::TokenAlreadyClaimed)?;
                return Ok(member_view(&vault, &m, true));
            }
            return Err(VaultError::TokenAlreadyClaimed);
        }
        InviteState::Revoked { .. } => return Err(VaultError::TokenRevoked),
        InviteState::Open => {}
    }
    if now >= invite.expires_at {
        return Err(VaultError::TokenExpired);
    }
    if caller == vault.owner {
        return Err(VaultError::NotAuthorized);
    }
    if state.members.is_member(caller, vault.id) {
        return Err(VaultError::invalid(
            "token",
            "the caller is already a member of this vault",
        ));
    }
    if !membership_open(vault.status) {
        return Err(VaultError::InvalidState {
            current: vault.status,
        });
    }
    // The invite was counted when generated; the cap still holds unless slots were lost.
    match invite.role {
        MemberRole::Heir if vault.heir_count >= u32::from(vault.plan.heir_slots) => {
            return Err(VaultError::PlanLimit {
                resource: "heir_slots".into(),
                limit: u64::from(vault.plan.heir_slots),
            })
        }
        MemberRole::Witness if vault.witness_joined || !vault.plan.witness_slot => {
            return Err(VaultError::PlanLimit {
                resource: "witness_slot".into(),
                limit: u64::from(vault.plan.witness_slot),
            })
        }
        _ => {}
    }

    // All checks passed: write.
    let member_id = vault.membership.members_issued + 1;
    vault.membership.members_issued = member_id;
    let member = MemberRecord {
        vault_id: vault.id,
        member_id,
        principal: caller,
        role: invite.role,
        name: invite.name.clone(),
        share_index: invite.share_index,
        joined_at: now,
        relation: invite.relation,
        email_hint: invite.email_hint.clone(),
        can_trigger_unlock: invite.can_trigger_unlock,
        count_as_approver: invite.count_as_approver,
        invite_id: invite.invite_id,
    };
    match invite.role {
        MemberRole::Heir => vault.heir_count += 1,
        MemberRole::Witness => vault.witness_joined = true,
    }
    invite.state = InviteState::Claimed {
        by: caller,
        member_id,
        at: now,
    };
    let invite_id = invite.invite_id;
    vault
        .membership
        .open_invites
        .retain(|o| o.invite_id != invite_id && o.expires_at > now);
    vault.updated_at = now;
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::MemberJoined,
        format!(
            "member={member_id} role={:?} invite={invite_id} share_index={}",
            member.role, member.share_index
        ),
    );
    super::recovery::on_member_joined(state, &mut vault, now, caller);
    vault_core::refresh_setup(state, &mut vault, now, caller);
    super::metrics::invite_claimed(state, now);
    state.members.insert(&member);
    state.invites.save(&invite);
    state.save_vault(&mut vault);
    Ok(member_view(&vault, &member, true))
}

fn load_invite(state: &State, vault_id: VaultId, invite_id: u64) -> VaultResult<InviteRecord> {
    state
        .invites
        .get(vault_id, invite_id)
        .ok_or(VaultError::NotFound)
}

/// `revoke_invite` (owner): irreversible. Revoking an already revoked invite returns it
/// unchanged; a claimed invite cannot be revoked (use `remove_member`).
pub fn revoke_invite(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    invite_id: u64,
) -> VaultResult<InviteView> {
    let caller = rt.caller();
    let now = rt.now();
    let mut vault = vault_core::load_owned(state, &caller, vault_id, membership_open)?;
    let mut invite = load_invite(state, vault_id, invite_id)?;
    match invite.state {
        InviteState::Revoked { .. } => {
            // Already revoked: nothing to write but the owner's activity (SPEC §4 "any
            // authenticated owner update").
            vault_core::touch_owner(state, &mut vault, now, caller);
            state.save_vault(&mut vault);
            return Ok(invite_view(&invite, now));
        }
        InviteState::Claimed { .. } => {
            return Err(VaultError::invalid(
                "invite_id",
                "the invite was claimed; remove the member instead",
            ))
        }
        InviteState::Open => {}
    }
    if invite.replaced_by.is_some() {
        return Err(VaultError::invalid(
            "invite_id",
            "the invite was already regenerated",
        ));
    }
    invite.state = InviteState::Revoked { at: now };
    vault
        .membership
        .open_invites
        .retain(|o| o.invite_id != invite_id && o.expires_at > now);
    vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::InviteRevoked,
        format!("invite={invite_id}"),
    );
    state.invites.save(&invite);
    state.save_vault(&mut vault);
    Ok(invite_view(&invite, now))
}

fn precheck_regenerate(
    state: &State,
    caller: &Principal,
    vault_id: VaultId,
    invite_id: u64,
    now: u64,
) -> VaultResult<(LoadedVault, InviteRecord)> {
    let vault = vault_core::load_owned(state, caller, vault_id, membership_open)?;
    let old = load_invite(state, vault_id, invite_id)?;
    if old.replaced_by.is_some() {
        return Err(VaultError::invalid(
            "invite_id",
            "the invite was already regenerated",
        ));
    }
    match status_of(&old, now) {
        InviteStatus::Expired | InviteStatus::Revoked => {}
        _ => {
            return Err(VaultError::invalid(
                "invite_id",
                "only an expired or revoked invite can be regenerated",
            ))
        }
    }
    check_caps(&vault, old.role, now)?;
    check_invite_count(&vault)?;
    Ok((vault, old))
}

/// `regenerate_invite` (owner): a new token and id for an expired or revoked invite, with the
/// same metadata and share index. The old invite points to the new one.
pub async fn regenerate_invite(
    st: &impl StateAccess,
    rt: &impl Runtime,
    vault_id: VaultId,
    invite_id: u64,
) -> VaultResult<InviteCreated> {
    let caller = rt.caller();
    st.read(|s| precheck_regenerate(s, &caller, vault_id, invite_id, rt.now()))?;
    let random = rt.random_bytes().await.map_err(|_| VaultError::Busy)?;
    st.write(|s| {
        let now = rt.now();
        let (mut vault, mut old) = precheck_regenerate(s, &caller, vault_id, invite_id, now)?;
        let created = insert_invite(
            s,
            &mut vault,
            &old,
            old.share_index,
            &random,
            now,
            caller,
            format!(" replaces={invite_id}"),
            AuditAction::InviteRegenerated,
        )?;
        old.replaced_by = Some(created.invite_id);
        s.invites.save(&old);
        Ok(created)
    })
}

/// The owner's view of an invite.
pub fn invite_view(invite: &InviteRecord, now: u64) -> InviteView {
    let (member_id, claimed_by) = match invite.state {
        InviteState::Claimed { by, member_id, .. } => (Some(member_id), Some(by)),
        _ => (None, None),
    };
    InviteView {
        invite_id: invite.invite_id,
        role: invite.role,
        name: invite.name.clone(),
        relation: invite.relation,
        email_hint: invite.email_hint.clone(),
        can_trigger_unlock: invite.can_trigger_unlock,
        count_as_approver: invite.count_as_approver,
        share_index: invite.share_index,
        created_at: invite.created_at,
        expires_at: invite.expires_at,
        status: status_of(invite, now),
        member_id,
        claimed_by,
        replaced_by: invite.replaced_by,
    }
}

/// `list_invites` (owner), by ascending invite id; the cursor is the last invite id.
pub fn list_invites(
    state: &State,
    rt: &impl Runtime,
    vault_id: VaultId,
    args: PageArgs,
) -> VaultResult<Page<InviteView>> {
    access::load(state, vault_id, &rt.caller(), Need::Owner)?;
    let limit = validation::page_limit(args.limit)?;
    let from = args.start_after.map_or(1, |c| c.saturating_add(1));
    let now = rt.now();
    let mut iter = state.invites.of_vault(vault_id, from);
    let items: Vec<InviteView> = iter
        .by_ref()
        .take(limit)
        .map(|i| invite_view(&i, now))
        .collect();
    let more = iter.next().is_some();
    let next_cursor = match items.last() {
        Some(last) if more => Some(last.invite_id),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// A member as `list_members` shows it; `full` (the owner) adds principal and email hint.
pub fn member_view(vault: &VaultRecord, m: &MemberRecord, full: bool) -> MemberView {
    MemberView {
        member_id: m.member_id,
        role: m.role,
        name: m.name.clone(),
        relation: m.relation,
        share_index: m.share_index,
        joined_at: m.joined_at,
        can_trigger_unlock: m.can_trigger_unlock,
        count_as_approver: m.count_as_approver,
        approved_at: vault
            .membership
            .approvals
            .iter()
            .find(|a| a.member_id == m.member_id)
            .map(|a| a.at),
        member_principal: full.then_some(m.principal),
        email_hint: if full { m.email_hint.clone() } else { None },
    }
}

/// `list_members` (owner and members), by ascending member id. Members see names, roles,
/// relations and approvals of the others, but not their principals or email hints.
pub fn list_members(
    state: &State,
    rt: &impl Runtime,
    vault_id: VaultId,
    args: PageArgs,
) -> VaultResult<Page<MemberView>> {
    let (vault, acc) = access::load(state, vault_id, &rt.caller(), Need::OwnerOrMember)?;
    let limit = validation::page_limit(args.limit)?;
    let from = args.start_after.map_or(0, |c| {
        u32::try_from(c.saturating_add(1)).unwrap_or(u32::MAX)
    });
    let full = acc == Access::Owner;
    let mut iter = state.members.of_vault(vault_id, from);
    let items: Vec<MemberView> = iter
        .by_ref()
        .take(limit)
        .map(|m| member_view(&vault, &m, full))
        .collect();
    let more = iter.next().is_some();
    let next_cursor = match items.last() {
        Some(last) if more => Some(u64::from(last.member_id)),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// `remove_member` (owner; `NeedSetup`..`Active`): frees the slot, drops the member's
/// approval and index entry; the setup status follows.
pub fn remove_member(
    state: &mut State,
    rt: &impl Runtime,
    vault_id: VaultId,
    member_id: u32,
) -> VaultResult<VaultView> {
    let caller = rt.caller();
    let now = rt.now();
    let mut vault = vault_core::load_owned(state, &caller, vault_id, membership_open)?;
    let member = state
        .members
        .get(vault_id, member_id)
        .ok_or(VaultError::NotFound)?;
    match member.role {
        MemberRole::Heir => vault.heir_count = vault.heir_count.saturating_sub(1),
        MemberRole::Witness => vault.witness_joined = false,
    }
    vault
        .membership
        .approvals
        .retain(|a| a.member_id != member_id);
    vault_core::touch_owner(state, &mut vault, now, caller);
    audit::append(
        state,
        &mut vault,
        now,
        caller,
        AuditAction::MemberRemoved,
        format!("member={member_id} role={:?}", member.role),
    );
    vault_core::refresh_setup(state, &mut vault, now, caller);
    state.members.remove(vault_id, member_id);
    state.save_vault(&mut vault);
    Ok(vault_core::view(state, &vault, VaultRole::Owner))
}

/// Removes a vault's invites, token index entries and recovery codes (tombstoning).
pub fn purge_vault(state: &mut State, vault: &mut VaultRecord) {
    // A vault that never issued an invite has none: skip the scan (a B-tree descent that
    // costs ~65 000 instructions on a 1 000-entry map), e.g. for every unpaid draft purged.
    if vault.membership.invites_issued != 0 {
        state.invites.remove_vault(vault.id);
    }
    if let Some(hash) = vault.membership.recovery_code_hash.take() {
        state.recovery_codes.remove(&hash);
    }
    vault.membership.open_invites.clear();
    vault.membership.approvals.clear();
    vault.membership.unlock_request = None;
    vault.membership.failed_attempts.clear();
}
