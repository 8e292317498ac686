//! The maintenance scheduler on canister timers (SPEC §10), and `run_maintenance`.
//!
//! - [`arm_timers`] (called by `init` and `post_upgrade`; timers are never persisted) sets one
//!   periodic timer every `timer_interval_secs` that runs one [`tick`].
//! - One run at a time: a heap flag (released on drop, also when a callback traps) makes a
//!   tick that finds another run in progress return at once (`skipped = "busy"`).
//! - A tick takes at most [`scheduler::MAX_ITEMS_PER_TICK`] due entries (a range over
//!   `..=(now, MAX, MAX)` of the stable queue) and processes them in a **separate message**:
//!   a self-call to the hidden `scheduler_run_batch`, which removes each entry and applies
//!   its effect in the same message. The tick's own message commits before that call, so:
//!   - if the batch message traps, only it rolls back (every entry is still queued); the tick
//!     then processes the same entries one per message, so a trapping entry cannot stop the
//!     others; each entry that traps alone is moved to a retry time (parked after
//!     [`scheduler::MAX_ATTEMPTS`]), never lost;
//!   - an entry processed twice does nothing the second time (it is gone from the queue).
//! - Self-calls were chosen over one timer per entry: one extra message per batch instead of
//!   one per entry on the normal path, and the tick can await the outcome (report, flag).
//! - The periodic tick does nothing while the canister is paused (deadlines keep waiting in
//!   the queue); an admin's `run_maintenance` runs regardless.
//! - A backlog larger than one batch continues in the next tick.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::{CandidType, Deserialize};

use crate::domain::admin::{self, RunStats};
use crate::domain::admin_trail;
use crate::domain::content;
use crate::domain::error::{VaultError, VaultResult};
use crate::domain::ops;
use crate::domain::payments::{self, checks, types::SessionId};
use crate::domain::scheduler::{self, QueueKey, MAX_ITEMS_PER_TICK};
use crate::domain::types::TickReport;
use crate::domain::vaults;
use crate::events::{self, Val};
use crate::runtime::Runtime;

use super::{read, rt, update_async, write, GlobalState, WhenPaused};

/// Name of the hidden batch method (also refused at ingress by `inspect_message`).
pub const BATCH_METHOD: &str = "scheduler_run_batch";

thread_local! {
    static RUNNING: Cell<bool> = const { Cell::new(false) };
    /// The last run's report (heap: empty after an upgrade until the next tick).
    static LAST_RUN: RefCell<Option<TickReport>> = const { RefCell::new(None) };
}

/// The last run (since the last upgrade) and the counters since install, for metrics.
pub fn run_stats() -> RunStats {
    let o = ops::snapshot();
    RunStats {
        last_run: LAST_RUN.with(|l| l.borrow().clone()),
        runs: o.scheduler_runs,
        processed_total: o.scheduler_processed,
        failed_total: o.scheduler_failures,
        parked_total: o.scheduler_parked,
    }
}

/// Arms the periodic maintenance timer. Called by `init` and `post_upgrade`.
pub fn arm_timers() {
    let secs = read(|s| s.config().durations.timer_interval_secs);
    ic_cdk_timers::set_timer_interval(Duration::from_secs(secs), || async {
        tick(false).await;
    });
}

/// Holds the "maintenance running" flag; released on drop.
struct RunGuard;

impl RunGuard {
    fn acquire() -> Option<RunGuard> {
        RUNNING.with(|r| {
            if r.get() {
                None
            } else {
                r.set(true);
                Some(RunGuard)
            }
        })
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(false));
    }
}

/// Reply of the batch message.
#[derive(Clone, Debug, Default, CandidType, Deserialize)]
struct BatchReply {
    processed: u32,
    applied: u32,
    instructions: u64,
    max_item_instructions: u64,
}

/// Processes `keys` in a separate message (a self-call); `Err` when that message trapped.
async fn run_batch_message(keys: &[QueueKey]) -> Result<BatchReply, String> {
    let response = ic_cdk::call::Call::unbounded_wait(ic_cdk::api::canister_self(), BATCH_METHOD)
        .with_arg(keys.to_vec())
        .await
        .map_err(|e| e.to_string())?;
    let reply: VaultResult<BatchReply> = response.candid().map_err(|e| e.to_string())?;
    reply.map_err(|e| format!("{e:?}"))
}

/// Runs the scheduler's check of one payment session (SPEC §6): its entry is first moved to
/// a retry time (so a trap after the await loses nothing), then the verification runs with
/// the canister as actor and schedules the next check itself. Returns (applied, processed).
async fn check_session(session_id: SessionId, now: u64) -> (bool, bool) {
    let rt = rt();
    if !write(|s| checks::begin(s, session_id, now)) {
        return (false, false);
    }
    let outcome = payments::verify_session(&GlobalState, &rt, session_id, rt.canister_id()).await;
    (outcome.is_ok(), true)
}

/// One maintenance tick. See the module docs.
pub async fn tick(manual: bool) -> TickReport {
    let rt = rt();
    let now = rt.now();
    let mut report = TickReport {
        started_at: now,
        manual,
        ..TickReport::default()
    };
    if !manual && read(|s| s.config().paused) {
        report.skipped = Some("paused".into());
        return report;
    }
    let Some(_guard) = RunGuard::acquire() else {
        report.skipped = Some("busy".into());
        return report;
    };
    let keys = read(|s| scheduler::due_batch(s, now, MAX_ITEMS_PER_TICK));
    let sessions = read(|s| checks::due(s, now, checks::MAX_CHECKS_PER_TICK));
    report.taken = (keys.len() + sessions.len()) as u32;
    // Collectors with their own indexes, bounded per tick: stale uploads, expired download
    // tickets and past days' download counters (issue #12 L1: these were never run). Past
    // days' vault creation counters (rate-limit bookkeeping, like the heap rate limiter)
    // are dropped too, without counting in the report: every create leaves one, so
    // counting them would make every tick after a day with a new vault look busy.
    let collected = write(|s| {
        vaults::collect_creation_counters(s, now, MAX_ITEMS_PER_TICK);
        content::collect_stale_uploads(s, now, MAX_ITEMS_PER_TICK)
            + content::collect_expired_tickets(s, now, MAX_ITEMS_PER_TICK)
    });
    report.processed += collected as u32;
    report.applied += collected as u32;
    // Lifecycle deadlines first, in batch messages; payment checks (ledger calls) after, so
    // no backlog of them can delay a vault's deadline.
    if !keys.is_empty() {
        let add = |report: &mut TickReport, r: BatchReply| {
            report.processed += r.processed;
            report.applied += r.applied;
            report.instructions += r.instructions;
            report.max_item_instructions =
                report.max_item_instructions.max(r.max_item_instructions);
        };
        match run_batch_message(&keys).await {
            Ok(r) => add(&mut report, r),
            Err(e) => {
                // One entry trapped and rolled the batch back: isolate it.
                ops::with(|o| o.scheduler_batch_traps += 1);
                events::emit(
                    "scheduler.batch_trapped",
                    &[("entries", Val::Raw(&keys.len())), ("error", Val::Text(&e))],
                );
                for key in &keys {
                    match run_batch_message(std::slice::from_ref(key)).await {
                        Ok(r) => add(&mut report, r),
                        Err(e) => {
                            report.failed += 1;
                            let at = rt.now();
                            let parked = write(|s| scheduler::record_failure(s, *key, at));
                            ops::with(|o| {
                                o.scheduler_failures += 1;
                                o.scheduler_parked += u64::from(parked);
                            });
                            let (due, kind, id) = *key;
                            events::emit(
                                "scheduler.entry_failed",
                                &[
                                    ("kind", Val::Raw(&kind)),
                                    ("id", Val::Raw(&id)),
                                    ("due", Val::Raw(&due)),
                                    ("parked", Val::Raw(&parked)),
                                    ("error", Val::Text(&e)),
                                ],
                            );
                        }
                    }
                }
            }
        }
    }
    for session_id in sessions {
        let (applied, processed) = check_session(session_id, now).await;
        report.processed += u32::from(processed);
        report.applied += u32::from(applied);
    }
    report.more_due = read(|s| scheduler::has_due(s, now) || !checks::due(s, now, 1).is_empty());
    report.instructions += rt.call_context_instructions();
    ops::with(|o| {
        o.scheduler_runs += 1;
        o.scheduler_processed += u64::from(report.processed);
    });
    LAST_RUN.with(|l| *l.borrow_mut() = Some(report.clone()));
    // An idle periodic tick (every minute by default) leaves no line.
    if manual || report.taken > 0 || report.processed > 0 || report.failed > 0 {
        events::emit(
            "scheduler.tick",
            &[
                ("manual", Val::Raw(&manual)),
                ("taken", Val::Raw(&report.taken)),
                ("processed", Val::Raw(&report.processed)),
                ("applied", Val::Raw(&report.applied)),
                ("failed", Val::Raw(&report.failed)),
                ("more_due", Val::Raw(&report.more_due)),
                ("instructions", Val::Raw(&report.instructions)),
            ],
        );
    }
    report
}

/// Internal: processes due queue entries in this message. Only the canister itself may call
/// it (from [`tick`]); it is not part of the `.did`. The guard bounds what another canister's
/// argument costs to decode before the caller check.
#[ic_cdk::update(guard = "crate::api::arguments::within_limits", hidden = true)]
fn scheduler_run_batch(keys: Vec<QueueKey>) -> VaultResult<BatchReply> {
    let rt = rt();
    if rt.caller() != rt.canister_id() {
        return Err(VaultError::NotAuthorized);
    }
    if keys.len() > MAX_ITEMS_PER_TICK {
        return Err(VaultError::invalid("keys", "more than one batch"));
    }
    let now = rt.now();
    let system = rt.canister_id();
    let mut last = rt.instruction_counter();
    let mut max_item = 0u64;
    let result = write(|s| {
        scheduler::process_batch(s, &keys, now, system, || {
            let c = rt.instruction_counter();
            max_item = max_item.max(c - last);
            last = c;
        })
    });
    let end = rt.instruction_counter();
    max_item = max_item.max(end - last);
    Ok(BatchReply {
        processed: result.processed,
        applied: result.applied,
        instructions: end,
        max_item_instructions: max_item,
    })
}

/// Admins: runs one maintenance tick now and returns its report (also while paused).
#[ic_cdk::update]
async fn run_maintenance() -> VaultResult<TickReport> {
    update_async(
        "run_maintenance",
        WhenPaused::Allow,
        |rt, caller| async move {
            read(|s| admin::require_admin(s, &caller))?;
            let report = tick(true).await;
            write(|s| {
                let outcome = format!(
                    "taken={} processed={} applied={} failed={} skipped={}",
                    report.taken,
                    report.processed,
                    report.applied,
                    report.failed,
                    report.skipped.as_deref().unwrap_or("no")
                );
                admin_trail::record(
                    s,
                    rt.now(),
                    caller,
                    "run_maintenance",
                    String::new(),
                    outcome,
                )
            });
            Ok(report)
        },
    )
    .await
    .inspect_err(|e| super::admin::log_refusal("run_maintenance", e))
}
