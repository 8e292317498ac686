//! Vault endpoints for owners and members.

use crate::domain::access::{self, Need};
use crate::domain::vault_core::audit;
use crate::domain::vaults;
use crate::model::types::{
    AuditEventView, AuditHead, CreateVaultArgs, Page, PageArgs, UpdateVaultArgs, VaultId,
    VaultSummary, VaultView,
};
use crate::runtime::Runtime;

use super::errors::public;
use super::{read, rt, update, write, WhenPaused};
use crate::model::errors::{ReadError, VaultsError};

/// The reply type of `get_vault`.
pub type GetVaultReply = Result<VaultView, ReadError>;
/// The reply type of `list_my_vaults`.
pub type ListMyVaultsReply = Result<Page<VaultSummary>, ReadError>;
/// The reply type of `update_vault`.
pub type UpdateVaultReply = Result<VaultView, VaultsError>;

/// Keys the owner index from the subnet's randomness (in a timer, until it succeeds) unless
/// that was done already (`domain::vaults::strengthen_owner_index`).
pub fn arm_owner_index_rekey() {
    if !read(|s| s.vaults.owner_salt_is_random()) {
        super::run_until_ok(|| async {
            vaults::strengthen_owner_index(&super::GlobalState, &rt())
                .await
                .map(|_| ())
        });
    }
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn create_vault(args: CreateVaultArgs) -> Result<VaultView, VaultsError> {
    public("create_vault", {
        update("create_vault", WhenPaused::Refuse, |rt, _| {
            write(|s| vaults::create_vault(s, rt, args))
        })
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_vault(vault_id: VaultId) -> Result<VaultView, ReadError> {
    public("get_vault", {
        read(|s| vaults::get_vault(s, &rt(), vault_id))
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_my_vaults(args: PageArgs) -> Result<Page<VaultSummary>, ReadError> {
    public("list_my_vaults", {
        read(|s| vaults::list_my_vaults(s, &rt(), args))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn update_vault(args: UpdateVaultArgs) -> Result<VaultView, VaultsError> {
    public("update_vault", {
        update("update_vault", WhenPaused::Refuse, |rt, _| {
            write(|s| vaults::update_vault(s, rt, args))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn check_in(vault_id: VaultId) -> Result<VaultView, VaultsError> {
    public("check_in", {
        update("check_in", WhenPaused::Allow, |rt, _| {
            write(|s| vaults::check_in(s, rt, vault_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn finalize_setup(vault_id: VaultId) -> Result<VaultView, VaultsError> {
    public("finalize_setup", {
        update("finalize_setup", WhenPaused::Refuse, |rt, _| {
            write(|s| vaults::finalize_setup(s, rt, vault_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn delete_vault(vault_id: VaultId) -> Result<VaultView, VaultsError> {
    public("delete_vault", {
        update("delete_vault", WhenPaused::Refuse, |rt, _| {
            write(|s| vaults::delete_vault(s, rt, vault_id))
        })
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_audit_log(vault_id: VaultId, page: PageArgs) -> Result<Page<AuditEventView>, ReadError> {
    public("get_audit_log", {
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
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_audit_head(vault_id: VaultId) -> Result<AuditHead, ReadError> {
    public("get_audit_head", {
        let rt = rt();
        read(|s| {
            let (vault, _) = access::load(s, vault_id, &rt.caller(), Need::OwnerOrMember)?;
            Ok(AuditHead {
                vault_id,
                next_seq: vault.audit_next_seq,
                head_hash: serde_bytes::ByteBuf::from(vault.into_record().audit_head),
            })
        })
    })
}
