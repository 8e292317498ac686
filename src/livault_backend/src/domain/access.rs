//! Who may do what with a vault: the caller's role, checked before any state is touched.
//!
//! Every protected resource (vault settings, audit log, content, and later vetKeys key
//! derivation, SPEC §16) asks [`role_of`] and then [`require`] with what it needs.

use candid::Principal;

use super::error::{VaultError, VaultResult};
use crate::model::records::{MemberRole, VaultRecord};
use crate::model::types::{VaultId, VaultRole};
use crate::storage::{LoadedVault, State};

/// The caller's relation to a vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The vault's owner.
    Owner,
    /// A member that joined through an invite.
    Member { member_id: u32, role: MemberRole },
    /// Anyone else (admins included: they never see a vault through owner endpoints).
    Outsider,
}

impl Access {
    /// The API role, if any.
    pub fn role(self) -> Option<VaultRole> {
        match self {
            Access::Owner => Some(VaultRole::Owner),
            Access::Member {
                role: MemberRole::Heir,
                ..
            } => Some(VaultRole::Heir),
            Access::Member {
                role: MemberRole::Witness,
                ..
            } => Some(VaultRole::Witness),
            Access::Outsider => None,
        }
    }
}

/// What an operation needs from the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Only the owner.
    Owner,
    /// The owner or any member.
    OwnerOrMember,
}

/// The caller's access to `vault`.
pub fn role_of(state: &State, vault: &VaultRecord, caller: &Principal) -> Access {
    if vault.owner == *caller {
        return Access::Owner;
    }
    match state.members.member_id_of(*caller, vault.id) {
        Some(member_id) => match state.members.get(vault.id, member_id) {
            Some(m) => Access::Member {
                member_id,
                role: m.role,
            },
            None => Access::Outsider,
        },
        None => Access::Outsider,
    }
}

/// Loads a vault and checks the caller's access: `NotFound` if there is no such vault,
/// `NotAuthorized` if the caller lacks `need`.
pub fn load(
    state: &State,
    vault_id: VaultId,
    caller: &Principal,
    need: Need,
) -> VaultResult<(LoadedVault, Access)> {
    let vault = state.vaults.load(vault_id).ok_or(VaultError::NotFound)?;
    let access = role_of(state, &vault, caller);
    require(access, need)?;
    Ok((vault, access))
}

/// Checks `access` against `need`.
pub fn require(access: Access, need: Need) -> VaultResult<()> {
    let ok = match need {
        Need::Owner => access == Access::Owner,
        Need::OwnerOrMember => access != Access::Outsider,
    };
    if ok {
        Ok(())
    } else {
        Err(VaultError::NotAuthorized)
    }
}

/// Fails with `NotAuthorized` unless `who` is an admin.
pub fn require_admin(state: &State, who: &Principal) -> VaultResult<()> {
    if state.config().is_admin(who) {
        Ok(())
    } else {
        Err(VaultError::NotAuthorized)
    }
}
