//! Admin-facing logic: plans listing, metrics, pause, admin management.

use candid::Principal;

use super::error::{VaultError, VaultResult};
use super::ops::Ops;
use super::pricing;
use super::scheduler;
use super::validation;
use crate::model::config::{Pricing, MAX_ADMINS};
use crate::model::types::{
    AdminVaultSummary, MemoryUsage, Metrics, Page, PageArgs, PlansInfo, SchedulerMetrics,
    StatusCount, TickReport, VaultStatus,
};
use crate::runtime::Runtime;
use crate::storage::State;

use super::access::require_admin;

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

/// Scheduler runs: the last one (since the last upgrade) and counters since install (heap,
/// carried across upgrades: `domain::ops`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub last_run: Option<TickReport>,
    pub runs: u64,
    pub processed_total: u64,
    pub failed_total: u64,
    pub parked_total: u64,
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
    ops: &Ops,
) -> VaultResult<Metrics> {
    require_admin(state, &rt.caller())?;
    Ok(collect_metrics(state, rt, rate_limited, runs, ops))
}

/// The metrics, without the caller check (for `/metrics`, which shows aggregates only).
pub fn collect_metrics(
    state: &State,
    rt: &impl Runtime,
    rate_limited: u64,
    runs: &RunStats,
    ops: &Ops,
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
        stable_memories: state
            .memory_usage()
            .into_iter()
            .map(|m| MemoryUsage {
                id: m.id,
                name: m.name.to_string(),
                bytes: m.pages * WASM_PAGE,
                allocated_bytes: m.allocated_pages * WASM_PAGE,
            })
            .collect(),
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
            failed_total: runs.failed_total,
            parked_total: runs.parked_total,
            queue_len: state.scheduler_queue.len(),
            due_now: scheduler::due_count(state, now, DUE_COUNT_CAP),
            parked: scheduler::parked_count(state, DUE_COUNT_CAP),
            interval_secs: state.config().durations.timer_interval_secs,
            payment_checks_queued: state.payments.checks_queued(),
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
        ops: ops.view(super::admin_trail::total(state)),
    }
}

/// Bytes per Wasm page.
const WASM_PAGE: u64 = 65_536;

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
    let mut virt = w.gauge_vec(
        "livault_stable_memory_virtual_bytes",
        "Size of each virtual memory of the stable-memory layout.",
    )?;
    for mem in &m.stable_memories {
        virt = virt.value(&[("memory", &mem.name)], mem.bytes as f64)?;
    }
    let mut alloc = w.gauge_vec(
        "livault_stable_memory_allocated_bytes",
        "Stable memory given to each virtual memory (whole 8 MiB buckets).",
    )?;
    for mem in &m.stable_memories {
        alloc = alloc.value(&[("memory", &mem.name)], mem.allocated_bytes as f64)?;
    }
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
        "Maintenance ticks that ran, since install.",
    )?;
    w.encode_counter(
        "livault_scheduler_processed_total",
        s.processed_total as f64,
        "Scheduler entries processed, since install.",
    )?;
    w.encode_counter(
        "livault_scheduler_failures_total",
        s.failed_total as f64,
        "Scheduler entries whose processing trapped, since install.",
    )?;
    w.encode_counter(
        "livault_scheduler_parked_total",
        s.parked_total as f64,
        "Scheduler entries parked after their last failed attempt, since install.",
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
    let o = &m.ops;
    w.gauge_vec(
        "livault_build_info",
        "The running module: crate version and git commit (always 1).",
    )?
    .value(
        &[("version", &o.version), ("git_commit", &o.git_commit)],
        1.0,
    )?;
    w.encode_counter(
        "livault_upgrades_total",
        o.upgrades as f64,
        "Upgrades since install.",
    )?;
    if let Some(t) = o.installed_at {
        w.encode_gauge(
            "livault_installed_timestamp_seconds",
            (t / 1_000_000_000) as f64,
            "When the canister was installed.",
        )?;
    }
    if let Some(t) = o.last_upgraded_at {
        w.encode_gauge(
            "livault_last_upgrade_timestamp_seconds",
            (t / 1_000_000_000) as f64,
            "When the canister was last upgraded.",
        )?;
    }
    let mut calls = w.counter_vec(
        "livault_update_calls_total",
        "Update calls by endpoint and result (ok or error), since install.",
    )?;
    for c in &o.update_calls {
        for (result, n) in [("ok", c.ok), ("error", c.errors)] {
            if n > 0 {
                calls = calls.value(&[("endpoint", &c.endpoint), ("result", result)], n as f64)?;
            }
        }
    }
    let mut errors = w.counter_vec(
        "livault_update_errors_total",
        "Update calls answered Err, by endpoint and error case, since install.",
    )?;
    for e in &o.errors {
        errors = errors.value(
            &[("endpoint", &e.endpoint), ("error", &e.error)],
            e.count as f64,
        )?;
    }
    let mut ledger = w.counter_vec(
        "livault_ledger_calls_total",
        "ICP ledger calls by method and outcome (ok, rejected, unknown, or the ledger's error), since install.",
    )?;
    for l in &o.ledger_calls {
        ledger = ledger.value(
            &[("method", &l.method), ("outcome", &l.outcome)],
            l.count as f64,
        )?;
    }
    w.encode_counter(
        "livault_rate_limit_refusals_total",
        o.rate_limit_refusals as f64,
        "Update calls refused by the per-principal rate limit, since install.",
    )?;
    w.encode_counter(
        "livault_capacity_refusals_total",
        o.capacity_refusals as f64,
        "Calls refused at the capacity high-water mark, since install.",
    )?;
    w.encode_counter(
        "livault_admin_actions_total",
        o.admin_actions_total as f64,
        "Admin actions recorded in the admin trail.",
    )?;
    w.encode_counter(
        "livault_metrics_series_dropped_total",
        o.series_dropped as f64,
        "Counter series a full map turned away (0 unless something is wrong).",
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
