//! Vault endpoints for owners and members.

use crate::domain::access::{self, Need};
use crate::domain::audit;
use crate::domain::error::VaultResult;
use crate::domain::types::{
    AuditEventView, AuditHead, CreateVaultArgs, Page, PageArgs, UpdateVaultArgs, VaultId,
    VaultSummary, VaultView,
};
use crate::domain::vaults;
use crate::runtime::Runtime;

use super::{read, rt, update, write, WhenPaused};

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn create_vault(args: CreateVaultArgs) -> VaultResult<VaultView> {
    update("create_vault", WhenPaused::Refuse, |rt, _| {
        write(|s| vaults::create_vault(s, rt, args))
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_vault(vault_id: VaultId) -> VaultResult<VaultView> {
    read(|s| vaults::get_vault(s, &rt(), vault_id))
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_my_vaults(args: PageArgs) -> VaultResult<Page<VaultSummary>> {
    read(|s| vaults::list_my_vaults(s, &rt(), args))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn update_vault(args: UpdateVaultArgs) -> VaultResult<VaultView> {
    update("update_vault", WhenPaused::Refuse, |rt, _| {
        write(|s| vaults::update_vault(s, rt, args))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn check_in(vault_id: VaultId) -> VaultResult<VaultView> {
    update("check_in", WhenPaused::Allow, |rt, _| {
        write(|s| vaults::check_in(s, rt, vault_id))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn finalize_setup(vault_id: VaultId) -> VaultResult<VaultView> {
    update("finalize_setup", WhenPaused::Refuse, |rt, _| {
        write(|s| vaults::finalize_setup(s, rt, vault_id))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn delete_vault(vault_id: VaultId) -> VaultResult<VaultView> {
    update("delete_vault", WhenPaused::Refuse, |rt, _| {
        write(|s| vaults::delete_vault(s, rt, vault_id))
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_audit_log(vault_id: VaultId, page: PageArgs) -> VaultResult<Page<AuditEventView>> {
    let rt = rt();
    read(|s| {
        let caller = rt.caller();
        let (vault, acc) = access::load(s, vault_id, &caller, Need::OwnerOrMember)?;
        let viewer = if acc == access::Access::Owner {
            audit::Viewer::Owner
        } else {
            audit::Viewer::Member {
                principal: caller,
                owner: vault.owner,
                system: rt.canister_id(),
            }
        };
        audit::page(s, vault_id, viewer, page.start_after, page.limit)
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_audit_head(vault_id: VaultId) -> VaultResult<AuditHead> {
    let rt = rt();
    read(|s| {
        let (vault, _) = access::load(s, vault_id, &rt.caller(), Need::OwnerOrMember)?;
        Ok(AuditHead {
            vault_id,
            next_seq: vault.audit_next_seq,
            head_hash: serde_bytes::ByteBuf::from(vault.into_record().audit_head),
        })
    })
}
