//! Admin and controller endpoints. None returns content or encrypted metadata.

use candid::Principal;

use crate::domain::admin;
use crate::domain::config::Pricing;
use crate::domain::error::VaultResult;
use crate::domain::types::{AdminVaultSummary, Metrics, Page, PageArgs};

use super::{admit_update, rate_limited_principals, read, rt, scheduler, write, WhenPaused};

#[ic_cdk::query]
fn get_metrics() -> VaultResult<Metrics> {
    let stats = scheduler::run_stats();
    read(|s| admin::metrics(s, &rt(), rate_limited_principals(), &stats))
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_vaults(args: PageArgs) -> VaultResult<Page<AdminVaultSummary>> {
    read(|s| admin::list_vaults(s, &rt(), args))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_pricing(pricing: Pricing) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Allow)?;
    write(|s| admin::set_pricing(s, &rt, pricing))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_paused(paused: bool) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Allow)?;
    write(|s| admin::set_paused(s, &rt, paused))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
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
