//! Invite, member, unlock and recovery-code endpoints (SPEC §4, §7, §9).

use crate::domain::error::VaultResult;
use crate::domain::member_types::{
    GenerateInviteArgs, InviteCreated, InviteInfo, InviteView, MemberView, RecoveryCodeIssued,
    UnlockStatus,
};
use crate::domain::types::{Page, PageArgs, VaultId, VaultView};
use crate::domain::{invites, recovery, unlock};
use crate::runtime::Runtime;

use super::{admit_update, read, rt, write, GlobalState, WhenPaused};

// ---- invites and members

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn generate_invite(args: GenerateInviteArgs) -> VaultResult<InviteCreated> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    invites::generate_invite(&GlobalState, &rt, args).await
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_invite_info(token: String) -> VaultResult<InviteInfo> {
    let rt = rt();
    read(|s| invites::get_invite_info(s, rt.now(), &token))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn claim_invite(token: String) -> VaultResult<MemberView> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| invites::claim_invite(s, &rt, &token))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn revoke_invite(vault_id: VaultId, invite_id: u64) -> VaultResult<InviteView> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| invites::revoke_invite(s, &rt, vault_id, invite_id))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn regenerate_invite(vault_id: VaultId, invite_id: u64) -> VaultResult<InviteCreated> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    invites::regenerate_invite(&GlobalState, &rt, vault_id, invite_id).await
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_invites(vault_id: VaultId, page: PageArgs) -> VaultResult<Page<InviteView>> {
    read(|s| invites::list_invites(s, &rt(), vault_id, page))
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_members(vault_id: VaultId, page: PageArgs) -> VaultResult<Page<MemberView>> {
    read(|s| invites::list_members(s, &rt(), vault_id, page))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn remove_member(vault_id: VaultId, member_id: u32) -> VaultResult<VaultView> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| invites::remove_member(s, &rt, vault_id, member_id))
}

// ---- unlock

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_unlock_status(vault_id: VaultId) -> VaultResult<UnlockStatus> {
    read(|s| unlock::get_unlock_status(s, &rt(), vault_id))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn trigger_unlock(vault_id: VaultId) -> VaultResult<UnlockStatus> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| unlock::trigger_unlock(s, &rt, vault_id))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn approve_unlock(vault_id: VaultId) -> VaultResult<UnlockStatus> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| unlock::approve_unlock(s, &rt, vault_id))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn approve_unlock_with_recovery(vault_id: VaultId, code: String) -> VaultResult<UnlockStatus> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| unlock::approve_unlock_with_recovery(s, &rt, vault_id, &code))
}

// ---- recovery code

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn issue_recovery_code(
    vault_id: VaultId,
    bypass_quorum: bool,
) -> VaultResult<RecoveryCodeIssued> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    recovery::issue_recovery_code(&GlobalState, &rt, vault_id, bypass_quorum).await
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn revoke_recovery_code(vault_id: VaultId) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| recovery::revoke_recovery_code(s, &rt, vault_id))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn use_recovery_code(code: String) -> VaultResult<VaultView> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| recovery::use_recovery_code(s, &rt, &code))
}
