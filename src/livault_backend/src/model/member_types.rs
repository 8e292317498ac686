//! API types of invites, members, unlock and the recovery code (SPEC §4, §7, §9).
//!
//! Kept apart from `types.rs` so the member feature's interface reads in one place; the
//! `.did` section `// ---- members and unlock` mirrors this file.

use candid::{CandidType, Principal};
use serde::Deserialize;

pub use super::records::Relation;
use super::records::{InviteRecord, InviteState, MemberRole};
use super::types::{UnlockRules, VaultId, VaultRole, VaultStatus};

// Arguments of `generate_invite`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct GenerateInviteArgs {
    pub vault_id: VaultId,
    pub role: MemberRole,
    // Display name of the invited person, 1..=64 characters.
    pub name: String,
    pub relation: Relation,
    // Optional hint for the owner (e.g. a masked e-mail), 1..=128 characters when set.
    pub email_hint: Option<String>,
    // Witness only: may open an unlock request. Heirs always may (stored as `true`).
    pub can_trigger_unlock: bool,
    // Witness only: the witness' approval counts. Heirs always count (stored as `true`).
    pub count_as_approver: bool,
}

// What `generate_invite` / `regenerate_invite` return: the token is shown only here.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InviteCreated {
    pub vault_id: VaultId,
    pub invite_id: u64,
    // The secret: `lvi1_` followed by 64 lowercase hex digits (256 bits). Only its SHA-256
    // is stored; it cannot be shown again.
    pub token: String,
    pub role: MemberRole,
    pub share_index: u8,
    pub expires_at: u64,
}

// State of an invite as the API shows it (expiry is evaluated at call time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum InviteStatus {
    // Claimable until `expires_at`.
    Open,
    // Not claimed before `expires_at`; may be regenerated.
    Expired,
    // Revoked by the owner; may be regenerated.
    Revoked,
    // Claimed: a member joined with it.
    Claimed,
}

// `get_invite_info`: what an invited person sees before claiming (no login needed).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InviteInfo {
    pub vault_id: VaultId,
    pub vault_name: String,
    // The vault owner who issued the invite.
    pub inviter: Principal,
    pub role: MemberRole,
    // The name the owner gave the invited person.
    pub name: String,
    pub relation: Relation,
    pub expires_at: u64,
    pub status: InviteStatus,
}

// One invite as its owner lists it (the token is never shown again).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InviteView {
    pub invite_id: u64,
    pub role: MemberRole,
    pub name: String,
    pub relation: Relation,
    pub email_hint: Option<String>,
    pub can_trigger_unlock: bool,
    pub count_as_approver: bool,
    pub share_index: u8,
    pub created_at: u64,
    pub expires_at: u64,
    pub status: InviteStatus,
    // The member created by the claim.
    pub member_id: Option<u32>,
    pub claimed_by: Option<Principal>,
    // Set once this (expired or revoked) invite was regenerated as another invite.
    pub replaced_by: Option<u64>,
}

// One member as `list_members` shows it.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct MemberView {
    pub member_id: u32,
    pub role: MemberRole,
    pub name: String,
    pub relation: Relation,
    pub share_index: u8,
    pub joined_at: u64,
    pub can_trigger_unlock: bool,
    pub count_as_approver: bool,
    // When this member approved the unlock (cleared by owner activity).
    pub approved_at: Option<u64>,
    // Owner only (`null` for members viewing the list).
    pub member_principal: Option<Principal>,
    // Owner only.
    pub email_hint: Option<String>,
}

// The open unlock request.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UnlockRequestView {
    pub opened_by: Principal,
    pub member_id: u32,
    pub opened_at: u64,
    // When the request's wait is over (the time gate holds through it from then).
    pub wait_until: u64,
}

// The time gate (SPEC §4): whether it holds and, if not, when it will.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct TimeGateView {
    pub holds: bool,
    // Which condition holds, or what is missing.
    pub reason: String,
    // Earliest moment a condition holds, if one is scheduled (`null` when it holds already,
    // or when nothing is scheduled, e.g. no rules or only a request that is not open).
    pub opens_at: Option<u64>,
    // `unlock_after` of the rules.
    pub unlock_after: Option<u64>,
    // `last_owner_activity + inactivity_days`.
    pub inactivity_deadline: Option<u64>,
    // `opened_at + request_wait_days` of the open request.
    pub request_deadline: Option<u64>,
}

// `get_unlock_status`: progress towards `Unlockable`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UnlockStatus {
    pub vault_id: VaultId,
    pub status: VaultStatus,
    pub rules: Option<UnlockRules>,
    pub time_gate: TimeGateView,
    pub request: Option<UnlockRequestView>,
    pub heir_approvals: u32,
    pub heirs_required: u32,
    pub witness_approved: bool,
    pub witness_required: bool,
    pub quorum_met: bool,
    pub unlocked_at: Option<u64>,
    pub access_until: Option<u64>,
    pub my_role: VaultRole,
    // Whether the caller may call `trigger_unlock` / `approve_unlock` (role-wise).
    pub can_trigger: bool,
    pub can_approve: bool,
    // When the caller approved (members), `null` otherwise.
    pub my_approval_at: Option<u64>,
    // Failed unlock attempts of the caller on this vault in the last hour (limit 5).
    pub my_failed_attempts_last_hour: u32,
}

// `issue_recovery_code`: the code is shown only here.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct RecoveryCodeIssued {
    pub vault_id: VaultId,
    // `lvr1_` followed by 64 lowercase hex digits (256 bits); only its SHA-256 is stored.
    pub code: String,
    pub bypass_quorum: bool,
    pub issued_at: u64,
}

impl InviteRecord {
    /// The invite's status at `now` (an open invite past `expires_at` is expired).
    pub fn status_at(&self, now: u64) -> InviteStatus {
        match self.state {
            InviteState::Claimed { .. } => InviteStatus::Claimed,
            InviteState::Revoked { .. } => InviteStatus::Revoked,
            InviteState::Open if now >= self.expires_at => InviteStatus::Expired,
            InviteState::Open => InviteStatus::Open,
        }
    }
}
