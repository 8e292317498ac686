//! Admin-facing logic: plans listing, metrics, pause, admin management.

use candid::Principal;

use super::config::{Pricing, MAX_ADMINS};
use super::error::{VaultError, VaultResult};
use super::pricing;
use super::scheduler;
use super::types::{
    AdminVaultSummary, Metrics, Page, PageArgs, PlansInfo, SchedulerMetrics, StatusCount,
    TickReport, VaultStatus,
};
use super::validation;
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

/// Scheduler runs since the last upgrade (kept in the heap by the API layer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub last_run: Option<TickReport>,
    pub runs: u64,
    pub processed_total: u64,
}

/// Most due entries `get_metrics` counts.
pub const DUE_COUNT_CAP: usize = 100_000;

/// `get_metrics` (admins). Counters are maintained on every transition, so this is O(1) in
/// the number of vaults (the due backlog is counted up to [`DUE_COUNT_CAP`]).
pub fn metrics(
    state: &State,
    rt: &impl Runtime,
    rate_limited: u64,
    runs: &RunStats,
) -> VaultResult<Metrics> {
    require_admin(state, &rt.caller())?;
    Ok(collect_metrics(state, rt, rate_limited, runs))
}

/// The metrics, without the caller check (for `/metrics`, which shows aggregates only).
pub fn collect_metrics(
    state: &State,
    rt: &impl Runtime,
    rate_limited: u64,
    runs: &RunStats,
) -> Metrics {
    let header = state.header.get();
    let vaults_by_status = VaultStatus::ALL
        .iter()
        .map(|s| StatusCount {
            status: *s,
            count: header.status_counts.get(s.index()).copied().unwrap_or(0),
        })
        .collect();
    let now = rt.now();
    let c = super::metrics::current(state, now);
    Metrics {
        now,
        vaults_total: header.next_vault_id - 1,
        vaults_by_status,
        cycles_balance: rt.cycle_balance(),
        stable_memory_bytes: rt.stable_memory_bytes(),
        stable_memory_high_water_bytes: state.config().limits.high_water_bytes(),
        stable_memory_headroom_bytes: state
            .config()
            .limits
            .high_water_bytes()
            .saturating_sub(rt.stable_memory_bytes()),
        heap_memory_bytes: rt.heap_bytes(),
        admins: state.config().admins.len() as u32,
        rate_limited_principals: rate_limited,
        scheduler: SchedulerMetrics {
            last_run: runs.last_run.clone(),
            runs: runs.runs,
            processed_total: runs.processed_total,
            queue_len: state.scheduler_queue.len(),
            due_now: scheduler::due_count(state, now, DUE_COUNT_CAP),
            parked: scheduler::parked_count(state, DUE_COUNT_CAP),
            interval_secs: state.config().durations.timer_interval_secs,
            payment_checks_queued: state.payment_checks.len(),
            payment_checks_due: super::payments::checks::due_count(state, now, DUE_COUNT_CAP),
        },
        storage_committed_bytes: c.storage_committed_bytes,
        storage_reserved_bytes: c.storage_reserved_bytes,
        invites_issued_today: c.invites_issued_today,
        invites_claimed_today: c.invites_claimed_today,
        invites_issued_total: c.invites_issued_total,
        invites_claimed_total: c.invites_claimed_total,
        open_payment_sessions: c.open_sessions,
        billing_entries: c.billing_entries,
        billing_treasury_e8s: c.treasury_e8s,
        billing_refunded_e8s: c.refunded_e8s,
        vetkeys: super::keys::metrics(state),
    }
}

/// The metrics in the Prometheus text exposition format (`/metrics`, which anyone may read),
/// written with `ic-metrics-encoder`. Aggregates only: no principal, vault id or user data;
/// and no business figures: the cycle balance and the billing sums (revenue, refunds) are in
/// the admins' `get_metrics` only (issue #12 L6).
pub fn prometheus_text(m: &Metrics) -> std::io::Result<String> {
    let mut w = ic_metrics_encoder::MetricsEncoder::new(Vec::new(), (m.now / 1_000_000) as i64);
    let mut by_status = w.gauge_vec("livault_vaults", "Vaults per lifecycle status.")?;
    for c in &m.vaults_by_status {
        by_status = by_status.value(&[("status", c.status.name())], c.count as f64)?;
    }
    w.encode_counter(
        "livault_vaults_created_total",
        m.vaults_total as f64,
        "Vaults ever created (tombstones included).",
    )?;
    w.encode_gauge(
        "livault_stable_memory_bytes",
        m.stable_memory_bytes as f64,
        "The canister's stable memory, in bytes.",
    )?;
    w.encode_gauge(
        "livault_stable_memory_headroom_bytes",
        m.stable_memory_headroom_bytes as f64,
        "Bytes left below the capacity high-water mark (new vaults and uploads stop at 0).",
    )?;
    w.encode_gauge(
        "livault_heap_memory_bytes",
        m.heap_memory_bytes as f64,
        "Wasm heap size, in bytes.",
    )?;
    w.encode_gauge(
        "livault_rate_limited_principals",
        m.rate_limited_principals as f64,
        "Principals with a partly used rate-limit bucket.",
    )?;
    let s = &m.scheduler;
    w.encode_gauge(
        "livault_scheduler_queue_entries",
        s.queue_len as f64,
        "Entries in the scheduler queue.",
    )?;
    w.encode_gauge(
        "livault_scheduler_due_entries",
        s.due_now as f64,
        "Scheduler entries due now (backlog).",
    )?;
    w.encode_gauge(
        "livault_scheduler_parked_entries",
        s.parked as f64,
        "Scheduler entries parked after repeated failures.",
    )?;
    w.encode_counter(
        "livault_scheduler_runs_total",
        s.runs as f64,
        "Maintenance ticks since the last upgrade.",
    )?;
    w.encode_counter(
        "livault_scheduler_processed_total",
        s.processed_total as f64,
        "Scheduler entries processed since the last upgrade.",
    )?;
    w.encode_gauge(
        "livault_storage_committed_bytes",
        m.storage_committed_bytes as f64,
        "Content bytes of committed items, all vaults.",
    )?;
    w.encode_gauge(
        "livault_storage_reserved_bytes",
        m.storage_reserved_bytes as f64,
        "Bytes reserved by open uploads, all vaults.",
    )?;
    w.encode_gauge(
        "livault_invites_issued_today",
        m.invites_issued_today as f64,
        "Invites issued during the current UTC day.",
    )?;
    w.encode_gauge(
        "livault_invites_claimed_today",
        m.invites_claimed_today as f64,
        "Invites claimed during the current UTC day.",
    )?;
    w.encode_counter(
        "livault_invites_issued_total",
        m.invites_issued_total as f64,
        "Invites ever issued (generated or regenerated).",
    )?;
    w.encode_counter(
        "livault_invites_claimed_total",
        m.invites_claimed_total as f64,
        "Invites ever claimed.",
    )?;
    w.encode_gauge(
        "livault_payment_sessions_open",
        m.open_payment_sessions as f64,
        "Payment sessions still open.",
    )?;
    w.encode_counter(
        "livault_billing_entries_total",
        m.billing_entries as f64,
        "Confirmed payments (billing entries).",
    )?;
    w.encode_gauge(
        "livault_payment_checks_queued",
        s.payment_checks_queued as f64,
        "Payment sessions the scheduler will check again.",
    )?;
    w.encode_gauge(
        "livault_payment_checks_due",
        s.payment_checks_due as f64,
        "Payment checks due now (backlog).",
    )?;
    w.encode_counter(
        "livault_vetkeys_derived_total",
        m.vetkeys.derived_total as f64,
        "vetKeys handed out (key.derived).",
    )?;
    w.encode_counter(
        "livault_vetkeys_failed_total",
        m.vetkeys.failed_total as f64,
        "vetKD derivations the management canister did not complete.",
    )?;
    if let Some(last) = &s.last_run {
        w.encode_gauge(
            "livault_scheduler_last_run_timestamp_seconds",
            (last.started_at / 1_000_000_000) as f64,
            "Start of the last maintenance tick.",
        )?;
        w.encode_gauge(
            "livault_scheduler_last_run_processed",
            f64::from(last.processed),
            "Entries processed by the last tick.",
        )?;
        w.encode_gauge(
            "livault_scheduler_last_run_failed",
            f64::from(last.failed),
            "Entries whose processing trapped in the last tick.",
        )?;
        w.encode_gauge(
            "livault_scheduler_last_run_instructions",
            last.instructions as f64,
            "Instructions of the last tick.",
        )?;
    }
    String::from_utf8(w.into_inner()).map_err(std::io::Error::other)
}

/// `list_vaults` (admins): every vault (tombstones included) by ascending id. The cursor is
/// the last id of the previous page: ids only grow, so pages stay stable while vaults arrive.
/// Summaries carry status, plan, dates and storage numbers; never the name, content or
/// encrypted metadata.
pub fn list_vaults(
    state: &State,
    rt: &impl Runtime,
    args: PageArgs,
) -> VaultResult<Page<AdminVaultSummary>> {
    require_admin(state, &rt.caller())?;
    let limit = validation::page_limit(args.limit)?;
    let from = args.start_after.map_or(0, |c| c.saturating_add(1));
    let pricing = &state.config().pricing;
    let mut items = Vec::with_capacity(limit);
    let mut iter = state.vaults.range_from(from);
    for (_, v) in iter.by_ref().take(limit) {
        items.push(AdminVaultSummary {
            id: v.id,
            owner: v.owner,
            status: v.status,
            plan: v.plan,
            price_e8s: v.price_e8s,
            created_at: v.created_at,
            status_changed_at: v.status_changed_at,
            paid_at: v.paid_at,
            expires_at: v.expires_at,
            deleted_at: v.deleted_at,
            storage_limit_bytes: if v.status == VaultStatus::Deleted {
                0
            } else {
                pricing.tier(v.plan.tier).storage_bytes
            },
            storage_used_bytes: v.storage_committed_bytes + v.storage_reserved_bytes,
            item_count: v.item_count,
            heir_count: v.heir_count,
        });
    }
    let more = iter.next().is_some();
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(last.id),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// `set_pricing` (admins): replaces the price table after validation. New quotes use it;
/// prices already frozen in vaults (and quotes frozen in payment sessions) do not change.
pub fn set_pricing(state: &mut State, rt: &impl Runtime, pricing: Pricing) -> VaultResult<()> {
    require_admin(state, &rt.caller())?;
    let mut config = state.config().clone();
    config.pricing = pricing;
    config.validate()?;
    state.set_config(config);
    Ok(())
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
