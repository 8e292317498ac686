//! Admin and controller endpoints. None returns content or encrypted metadata.
//!
//! Every admin action that changes something is recorded in the admin trail in the message
//! that applies it (`domain::admin_trail`); a refused one is logged (`admin_trail::log_refusal`).

use candid::Principal;

use crate::domain::admin_trail::{self, AdminTrailEntry};
use crate::domain::{access, admin};
use crate::domain::{maintenance, ops};
use crate::model::config::Pricing;
use crate::model::types::{AdminVaultSummary, Metrics, Page, PageArgs};
use crate::runtime::Runtime;

use super::errors::public;
use super::{rate_limited_principals, read, rt, update, write, WhenPaused};
use crate::model::errors::{AdminError, ReadError};

#[ic_cdk::query]
fn get_metrics() -> Result<Metrics, ReadError> {
    public("get_metrics", {
        let stats = maintenance::run_stats();
        let ops = ops::snapshot();
        read(|s| admin::metrics(s, &rt(), rate_limited_principals(), &stats, &ops))
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_vaults(args: PageArgs) -> Result<Page<AdminVaultSummary>, ReadError> {
    public("list_vaults", {
        read(|s| admin::list_vaults(s, &rt(), args))
    })
}

/// Admins: the admin trail, oldest kept entry first (see `domain::admin_trail`).
#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_admin_trail(args: PageArgs) -> Result<Page<AdminTrailEntry>, ReadError> {
    public("list_admin_trail", {
        read(|s| admin_trail::list(s, &rt(), args))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_pricing(pricing: Pricing) -> Result<(), AdminError> {
    public("set_pricing", {
        update("set_pricing", WhenPaused::Allow, |rt, caller| {
            write(|s| {
                admin::set_pricing(s, rt, pricing.clone())?;
                let args = admin_trail::candid_text(&pricing);
                admin_trail::record(s, rt.now(), caller, "set_pricing", args, String::new());
                Ok(())
            })
        })
        .inspect_err(|e| admin_trail::log_refusal(rt().caller(), "set_pricing", e))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_paused(paused: bool) -> Result<(), AdminError> {
    public("set_paused", {
        update("set_paused", WhenPaused::Allow, |rt, caller| {
            write(|s| {
                let before = s.config().paused;
                admin::set_paused(s, rt, paused)?;
                let args = admin_trail::candid_text(&paused);
                let outcome = format!("was_paused={before}");
                admin_trail::record(s, rt.now(), caller, "set_paused", args, outcome);
                Ok(())
            })
        })
        .inspect_err(|e| admin_trail::log_refusal(rt().caller(), "set_paused", e))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_admins(admins: Vec<Principal>) -> Result<(), AdminError> {
    public("set_admins", {
        update("set_admins", WhenPaused::Allow, |rt, caller| {
            write(|s| {
                admin::set_admins(s, rt, admins.clone())?;
                let args = admin_trail::candid_text(&admins);
                admin_trail::record(s, rt.now(), caller, "set_admins", args, String::new());
                Ok(())
            })
        })
        .inspect_err(|e| admin_trail::log_refusal(rt().caller(), "set_admins", e))
    })
}

#[ic_cdk::query]
fn list_admins() -> Result<Vec<Principal>, ReadError> {
    public("list_admins", {
        let rt = rt();
        read(|s| {
            access::require_admin(s, &rt.caller())?;
            Ok(s.config().admins.clone())
        })
    })
}
