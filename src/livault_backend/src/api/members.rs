//! Invite, member, unlock and recovery-code endpoints (SPEC §4, §7, §9).

use crate::domain::{invites, recovery, unlock};
use crate::model::member_types::{
    GenerateInviteArgs, InviteCreated, InviteInfo, InviteView, MemberView, RecoveryCodeIssued,
    UnlockStatus,
};
use crate::model::types::{Page, PageArgs, VaultId, VaultView};
use crate::runtime::Runtime;

use super::errors::public;
use super::{read, rt, update, update_async, write, GlobalState, WhenPaused};
use crate::model::errors::{MembersError, ReadError, UnlockError};

/// The reply type of `get_unlock_status`.
pub type GetUnlockStatusReply = Result<UnlockStatus, ReadError>;

// ---- invites and members

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn generate_invite(args: GenerateInviteArgs) -> Result<InviteCreated, MembersError> {
    public("generate_invite", {
        update_async("generate_invite", WhenPaused::Refuse, |rt, _| async move {
            invites::generate_invite(&GlobalState, &rt, args).await
        })
        .await
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_invite_info(token: String) -> Result<InviteInfo, MembersError> {
    public("get_invite_info", {
        let rt = rt();
        read(|s| invites::get_invite_info(s, rt.now(), &token))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn claim_invite(token: String) -> Result<MemberView, MembersError> {
    public("claim_invite", {
        update("claim_invite", WhenPaused::Refuse, |rt, _| {
            write(|s| invites::claim_invite(s, rt, &token))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn revoke_invite(vault_id: VaultId, invite_id: u64) -> Result<InviteView, MembersError> {
    public("revoke_invite", {
        update("revoke_invite", WhenPaused::Refuse, |rt, _| {
            write(|s| invites::revoke_invite(s, rt, vault_id, invite_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn regenerate_invite(
    vault_id: VaultId,
    invite_id: u64,
) -> Result<InviteCreated, MembersError> {
    public("regenerate_invite", {
        let endpoint = "regenerate_invite";
        update_async(endpoint, WhenPaused::Refuse, |rt, _| async move {
            invites::regenerate_invite(&GlobalState, &rt, vault_id, invite_id).await
        })
        .await
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_invites(vault_id: VaultId, page: PageArgs) -> Result<Page<InviteView>, ReadError> {
    public("list_invites", {
        read(|s| invites::list_invites(s, &rt(), vault_id, page))
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_members(vault_id: VaultId, page: PageArgs) -> Result<Page<MemberView>, ReadError> {
    public("list_members", {
        read(|s| invites::list_members(s, &rt(), vault_id, page))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn remove_member(vault_id: VaultId, member_id: u32) -> Result<VaultView, MembersError> {
    public("remove_member", {
        update("remove_member", WhenPaused::Refuse, |rt, _| {
            write(|s| invites::remove_member(s, rt, vault_id, member_id))
        })
    })
}

// ---- unlock

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_unlock_status(vault_id: VaultId) -> Result<UnlockStatus, ReadError> {
    public("get_unlock_status", {
        read(|s| unlock::get_unlock_status(s, &rt(), vault_id))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn trigger_unlock(vault_id: VaultId) -> Result<UnlockStatus, UnlockError> {
    public("trigger_unlock", {
        update("trigger_unlock", WhenPaused::Refuse, |rt, _| {
            write(|s| unlock::trigger_unlock(s, rt, vault_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn approve_unlock(vault_id: VaultId) -> Result<UnlockStatus, UnlockError> {
    public("approve_unlock", {
        update("approve_unlock", WhenPaused::Refuse, |rt, _| {
            write(|s| unlock::approve_unlock(s, rt, vault_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn approve_unlock_with_recovery(
    vault_id: VaultId,
    code: String,
) -> Result<UnlockStatus, UnlockError> {
    public("approve_unlock_with_recovery", {
        update(
            "approve_unlock_with_recovery",
            WhenPaused::Refuse,
            |rt, _| write(|s| unlock::approve_unlock_with_recovery(s, rt, vault_id, &code)),
        )
    })
}

// ---- recovery code

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn issue_recovery_code(
    vault_id: VaultId,
    bypass_quorum: bool,
) -> Result<RecoveryCodeIssued, MembersError> {
    public("issue_recovery_code", {
        update_async(
            "issue_recovery_code",
            WhenPaused::Refuse,
            |rt, _| async move {
                recovery::issue_recovery_code(&GlobalState, &rt, vault_id, bypass_quorum).await
            },
        )
        .await
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn revoke_recovery_code(vault_id: VaultId) -> Result<(), MembersError> {
    public("revoke_recovery_code", {
        update("revoke_recovery_code", WhenPaused::Refuse, |rt, _| {
            write(|s| recovery::revoke_recovery_code(s, rt, vault_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn use_recovery_code(code: String) -> Result<VaultView, MembersError> {
    public("use_recovery_code", {
        update("use_recovery_code", WhenPaused::Refuse, |rt, _| {
            write(|s| recovery::use_recovery_code(s, rt, &code))
        })
    })
}
