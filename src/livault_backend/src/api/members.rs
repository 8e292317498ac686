//! Invite, member, unlock and recovery-code endpoints (SPEC §4, §7, §9).

use crate::domain::error::VaultResult;
use crate::domain::member_types::{
    GenerateInviteArgs, InviteCreated, InviteInfo, InviteView, MemberView, RecoveryCodeIssued,
    UnlockStatus,
};
use crate::domain::types::{Page, PageArgs, VaultId, VaultView};
use crate::domain::{invites, recovery, unlock};
use crate::runtime::Runtime;

use super::{read, rt, update, update_async, write, GlobalState, WhenPaused};

/// The reply type of `get_unlock_status`.
pub type GetUnlockStatusReply = VaultResult<UnlockStatus>;

// ---- invites and members

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn generate_invite(args: GenerateInviteArgs) -> VaultResult<InviteCreated> {
    update_async("generate_invite", WhenPaused::Refuse, |rt, _| async move {
        invites::generate_invite(&GlobalState, &rt, args).await
    })
    .await
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_invite_info(token: String) -> VaultResult<InviteInfo> {
    let rt = rt();
    read(|s| invites::get_invite_info(s, rt.now(), &token))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn claim_invite(token: String) -> VaultResult<MemberView> {
    update("claim_invite", WhenPaused::Refuse, |rt, _| {
        write(|s| invites::claim_invite(s, rt, &token))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn revoke_invite(vault_id: VaultId, invite_id: u64) -> VaultResult<InviteView> {
    update("revoke_invite", WhenPaused::Refuse, |rt, _| {
        write(|s| invites::revoke_invite(s, rt, vault_id, invite_id))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn regenerate_invite(vault_id: VaultId, invite_id: u64) -> VaultResult<InviteCreated> {
    let endpoint = "regenerate_invite";
    update_async(endpoint, WhenPaused::Refuse, |rt, _| async move {
        invites::regenerate_invite(&GlobalState, &rt, vault_id, invite_id).await
    })
    .await
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
    update("remove_member", WhenPaused::Refuse, |rt, _| {
        write(|s| invites::remove_member(s, rt, vault_id, member_id))
    })
}

// ---- unlock

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_unlock_status(vault_id: VaultId) -> VaultResult<UnlockStatus> {
    read(|s| unlock::get_unlock_status(s, &rt(), vault_id))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn trigger_unlock(vault_id: VaultId) -> VaultResult<UnlockStatus> {
    update("trigger_unlock", WhenPaused::Refuse, |rt, _| {
        write(|s| unlock::trigger_unlock(s, rt, vault_id))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn approve_unlock(vault_id: VaultId) -> VaultResult<UnlockStatus> {
    update("approve_unlock", WhenPaused::Refuse, |rt, _| {
        write(|s| unlock::approve_unlock(s, rt, vault_id))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn approve_unlock_with_recovery(vault_id: VaultId, code: String) -> VaultResult<UnlockStatus> {
    update(
        "approve_unlock_with_recovery",
        WhenPaused::Refuse,
        |rt, _| write(|s| unlock::approve_unlock_with_recovery(s, rt, vault_id, &code)),
    )
}

// ---- recovery code

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn issue_recovery_code(
    vault_id: VaultId,
    bypass_quorum: bool,
) -> VaultResult<RecoveryCodeIssued> {
    update_async(
        "issue_recovery_code",
        WhenPaused::Refuse,
        |rt, _| async move {
            recovery::issue_recovery_code(&GlobalState, &rt, vault_id, bypass_quorum).await
        },
    )
    .await
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn revoke_recovery_code(vault_id: VaultId) -> VaultResult<()> {
    update("revoke_recovery_code", WhenPaused::Refuse, |rt, _| {
        write(|s| recovery::revoke_recovery_code(s, rt, vault_id))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn use_recovery_code(code: String) -> VaultResult<VaultView> {
    update("use_recovery_code", WhenPaused::Refuse, |rt, _| {
        write(|s| recovery::use_recovery_code(s, rt, &code))
    })
}
