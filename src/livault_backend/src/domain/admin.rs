//! Admin-facing logic: plans listing, metrics, pause, admin management.

use candid::Principal;

use super::config::MAX_ADMINS;
use super::error::{VaultError, VaultResult};
use super::pricing;
use super::types::{Metrics, PlansInfo, StatusCount, VaultStatus};
use crate::runtime::Runtime;
use crate::storage::State;

/// `get_plans`: the current tiers, fees and age brackets.
pub fn plans(state: &State) -> PlansInfo {
    let config = state.config();
    PlansInfo {
        tiers: config.pricing.tiers.clone(),
        heir_slot_fee_e8s: config.pricing.heir_slot_fee_e8s,
        witness_fee_e8s: config.pricing.witness_fee_e8s,
        max_witnesses: 1,
        validity_days: config.durations.validity_days,
        age_uplift: pricing::age_brackets(),
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

/// `get_metrics` (admins). Counters are maintained on every transition, so this is O(1) in
/// the number of vaults.
pub fn metrics(state: &State, rt: &impl Runtime, rate_limited: u64) -> VaultResult<Metrics> {
    require_admin(state, &rt.caller())?;
    let header = state.header.get();
    let vaults_by_status = VaultStatus::ALL
        .iter()
        .map(|s| StatusCount {
            status: *s,
            count: header.status_counts.get(s.index()).copied().unwrap_or(0),
        })
        .collect();
    Ok(Metrics {
        now: rt.now(),
        vaults_total: header.next_vault_id - 1,
        vaults_by_status,
        cycles_balance: rt.cycle_balance(),
        stable_memory_bytes: state.stable_pages() * 65_536,
        heap_memory_bytes: rt.heap_bytes(),
        admins: state.config().admins.len() as u32,
        rate_limited_principals: rate_limited,
    })
}

/// `set_paused` (admins): pause or resume writes.
pub fn set_paused(state: &mut State, rt: &impl Runtime, paused: bool) -> VaultResult<()> {
    require_admin(state, &rt.caller())?;
    let mut config = state.config().clone();
    config.paused = paused;
    state.set_config(config);
    Ok(())
}

/// `set_admins` (controllers only): replaces the admin list.
pub fn set_admins(state: &mut State, rt: &impl Runtime, admins: Vec<Principal>) -> VaultResult<()> {
    if !rt.is_controller(&rt.caller()) {
        return Err(VaultError::NotAuthorized);
    }
    if admins.len() > MAX_ADMINS {
        return Err(VaultError::invalid(
            "admins",
            format!("at most {MAX_ADMINS}"),
        ));
    }
    let mut config = state.config().clone();
    config.admins = admins;
    config.validate()?;
    state.set_config(config);
    Ok(())
}
