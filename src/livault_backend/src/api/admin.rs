//! Admin and controller endpoints. None returns content or encrypted metadata.

use candid::Principal;

use crate::domain::admin;
use crate::domain::error::VaultResult;
use crate::domain::types::Metrics;

use super::{admit_update, rate_limited_principals, read, rt, write, WhenPaused};

#[ic_cdk::query]
fn get_metrics() -> VaultResult<Metrics> {
    read(|s| admin::metrics(s, &rt(), rate_limited_principals()))
}

#[ic_cdk::update]
fn set_paused(paused: bool) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Allow)?;
    write(|s| admin::set_paused(s, &rt, paused))
}

#[ic_cdk::update]
fn set_admins(admins: Vec<Principal>) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Allow)?;
    write(|s| admin::set_admins(s, &rt, admins))
}

#[ic_cdk::query]
fn list_admins() -> VaultResult<Vec<Principal>> {
    let rt = rt();
    read(|s| {
        admin::require_admin(s, &crate::runtime::Runtime::caller(&rt))?;
        Ok(s.config().admins.clone())
    })
}
