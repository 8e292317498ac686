//! The maintenance tick (SPEC §10) over any [`Runtime`]: when to tick, what one tick takes
//! on, its batch messages, failure counting and the guard against overlapping runs. The
//! duties themselves (what a due entry does) are in [`super::scheduler`]; the canister's
//! entry points (`run_maintenance`, the hidden batch method, the timer armed by `init` and
//! `post_upgrade`) are thin wrappers in `api::scheduler`.
//!
//! - [`arm`] (called by `init` and `post_upgrade`; timers are heap state, never persisted)
//!   sets one periodic timer every `timer_interval_secs` (read when armed) that runs one
//!   [`tick`].
//! - One run at a time: a heap flag (released on drop, also when a callback traps or its
//!   future is dropped) makes a tick that finds another run in progress return at once
//!   (`skipped = "busy"`).
//! - A tick takes at most [`TickLimits::entries`] due entries (a range over
//!   `..=(now, MAX, MAX)` of the stable queue) and processes them in a **separate message**:
//!   a self-call ([`Runtime::call_self`]) to the hidden [`BATCH_METHOD`], whose body is
//!   [`run_batch`]: it removes each entry and applies its effect in the same message. The
//!   tick's own message commits before that call, so:
//!   - if the batch message traps, only it rolls back (every entry is still queued); the tick
//!     then processes the same entries one per message, so a trapping entry cannot stop the
//!     others; each entry that fails alone is moved to a retry time (parked after
//!     [`scheduler::MAX_ATTEMPTS`]), never lost;
//!   - an entry processed twice does nothing the second time (it is gone from the queue).
//! - Self-calls were chosen over one timer per entry: one extra message per batch instead of
//!   one per entry on the normal path, and the tick can await the outcome (report, flag).
//! - The periodic tick does nothing while the canister is paused (deadlines keep waiting in
//!   the queue); an admin's `run_maintenance` runs regardless.
//! - A backlog larger than one batch continues in the next tick.
//!
//! Natively, `runtime::testing::MockRuntime` keeps the timers and the self-calls in queues
//! that a test fires and answers (see the tests below).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::{CandidType, Deserialize};

use super::admin::RunStats;
use super::content;
use super::error::{VaultError, VaultResult};
use super::ops;
use super::payments::{self, checks};
use super::scheduler::{self, QueueKey, MAX_ITEMS_PER_TICK};
use super::vaults;
use crate::events::{self, Val};
use crate::model::payments::SessionId;
use crate::model::types::TickReport;
use crate::runtime::Runtime;
use crate::storage::StateAccess;

/// Name of the hidden batch method (also refused at ingress by `inspect_message`).
pub const BATCH_METHOD: &str = "scheduler_run_batch";

/// What one tick takes on; the rest waits for the next tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickLimits {
    /// Due queue entries taken, processed in one batch message (at most
    /// [`MAX_ITEMS_PER_TICK`], which the batch method enforces).
    pub entries: usize,
    /// Payment checks run (each awaits the ledger).
    pub checks: usize,
    /// Records each collector (stale uploads, expired tickets, creation counters) removes.
    pub collected: usize,
}

impl TickLimits {
    /// The limits of every tick on the canister.
    pub const DEFAULT: TickLimits = TickLimits {
        entries: MAX_ITEMS_PER_TICK,
        checks: checks::MAX_CHECKS_PER_TICK,
        collected: MAX_ITEMS_PER_TICK,
    };
}

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

/// Arms the periodic maintenance timer: every `timer_interval_secs` (as configured now) the
/// runtime starts one [`tick`] in its own message. Called by `init` and `post_upgrade`.
pub fn arm<S, R>(st: S, rt: R)
where
    S: StateAccess + Clone + 'static,
    R: Runtime + Clone + 'static,
{
    let secs = st.read(|s| s.config().durations.timer_interval_secs);
    let runtime = rt.clone();
    rt.set_timer_interval(Duration::from_secs(secs), move || {
        let (st, rt) = (st.clone(), runtime.clone());
        async move {
            tick(&st, &rt, false).await;
        }
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

// Reply of the batch message.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct BatchReply {
    // Entries found in the queue and removed.
    pub processed: u32,
    // Of those, entries whose duty applied.
    pub applied: u32,
    // Instructions of the batch message up to its reply.
    pub instructions: u64,
    // Most instructions one entry took.
    pub max_item_instructions: u64,
}

/// The Candid argument of the batch method.
pub fn encode_batch_arg(keys: &[QueueKey]) -> Vec<u8> {
    candid::encode_one(keys).expect("a vector of integer tuples always encodes")
}

/// Processes `keys` in a separate message (a self-call to [`BATCH_METHOD`]); `Err` when that
/// message trapped, was refused or its reply could not be read.
async fn run_batch_message(rt: &impl Runtime, keys: &[QueueKey]) -> Result<BatchReply, String> {
    let bytes = rt.call_self(BATCH_METHOD, encode_batch_arg(keys)).await?;
    let reply: VaultResult<BatchReply> = candid::decode_one(&bytes).map_err(|e| e.to_string())?;
    reply.map_err(|e| format!("{e:?}"))
}

/// The body of the batch message: processes `keys` (due entries a tick took) in this
/// message and measures it. The entry point checks that the canister itself is the caller.
pub fn run_batch(
    st: &impl StateAccess,
    rt: &impl Runtime,
    keys: &[QueueKey],
) -> VaultResult<BatchReply> {
    if keys.len() > MAX_ITEMS_PER_TICK {
        return Err(VaultError::invalid("keys", "more than one batch"));
    }
    let now = rt.now();
    let system = rt.canister_id();
    // One counter read at the start and one before each entry (the end-to-end trap test
    // counts on this order).
    let mut last = rt.instruction_counter();
    let mut max_item = 0u64;
    let result = st.write(|s| {
        scheduler::process_batch(s, keys, now, system, || {
            let c = rt.instruction_counter();
            max_item = max_item.max(c.saturating_sub(last));
            last = c;
        })
    });
    let end = rt.instruction_counter();
    max_item = max_item.max(end.saturating_sub(last));
    Ok(BatchReply {
        processed: result.processed,
        applied: result.applied,
        instructions: end,
        max_item_instructions: max_item,
    })
}

/// Runs the scheduler's check of one payment session (SPEC §6): its entry is first moved to
/// a retry time (so a trap after the await loses nothing), then the verification runs with
/// the canister as actor and schedules the next check itself. Returns (applied, processed).
async fn check_session(
    st: &impl StateAccess,
    rt: &impl Runtime,
    session_id: SessionId,
    now: u64,
) -> (bool, bool) {
    if !st.write(|s| checks::begin(s, session_id, now)) {
        return (false, false);
    }
    let outcome = payments::verify_session(st, rt, session_id, rt.canister_id()).await;
    (outcome.is_ok(), true)
}

/// One maintenance tick with the canister's limits. See the module docs.
pub async fn tick(st: &impl StateAccess, rt: &impl Runtime, manual: bool) -> TickReport {
    tick_with(st, rt, manual, TickLimits::DEFAULT).await
}

/// Adds a batch message's reply to the report.
fn add_batch(report: &mut TickReport, r: BatchReply) {
    report.processed += r.processed;
    report.applied += r.applied;
    report.instructions += r.instructions;
    report.max_item_instructions = report.max_item_instructions.max(r.max_item_instructions);
}

/// One maintenance tick within `limits`. See the module docs.
pub async fn tick_with(
    st: &impl StateAccess,
    rt: &impl Runtime,
    manual: bool,
    limits: TickLimits,
) -> TickReport {
    let now = rt.now();
    let mut report = TickReport {
        started_at: now,
        manual,
        ..TickReport::default()
    };
    if !manual && st.read(|s| s.config().paused) {
        report.skipped = Some("paused".into());
        return report;
    }
    let Some(_guard) = RunGuard::acquire() else {
        report.skipped = Some("busy".into());
        return report;
    };
    let keys = st.read(|s| scheduler::due_batch(s, now, limits.entries));
    let sessions = st.read(|s| checks::due(s, now, limits.checks));
    report.taken = (keys.len() + sessions.len()) as u32;
    // Collectors with their own indexes, bounded per tick: stale uploads, expired download
    // tickets and past days' download counters (issue #12 L1: these were never run). Past
    // days' vault creation counters (rate-limit bookkeeping, like the heap rate limiter)
    // are dropped too, without counting in the report: every create leaves one, so
    // counting them would make every tick after a day with a new vault look busy.
    let collected = st.write(|s| {
        vaults::collect_creation_counters(s, now, limits.collected);
        content::collect_stale_uploads(s, now, limits.collected)
            + content::collect_expired_tickets(s, now, limits.collected)
    });
    report.processed += collected as u32;
    report.applied += collected as u32;
    // Lifecycle deadlines first, in batch messages; payment checks (ledger calls) after, so
    // no backlog of them can delay a vault's deadline.
    if !keys.is_empty() {
        match run_batch_message(rt, &keys).await {
            Ok(r) => add_batch(&mut report, r),
            Err(e) => {
                // One entry trapped and rolled the batch back: isolate it.
                ops::with(|o| o.scheduler_batch_traps += 1);
                events::emit(
                    "scheduler.batch_trapped",
                    &[("entries", Val::Raw(&keys.len())), ("error", Val::Text(&e))],
                );
                for key in &keys {
                    match run_batch_message(rt, std::slice::from_ref(key)).await {
                        Ok(r) => add_batch(&mut report, r),
                        Err(e) => {
                            report.failed += 1;
                            record_entry_failure(st, *key, rt.now(), &e);
                        }
                    }
                }
            }
        }
    }
    for session_id in sessions {
        let (applied, processed) = check_session(st, rt, session_id, now).await;
        report.processed += u32::from(processed);
        report.applied += u32::from(applied);
    }
    report.more_due = st.read(|s| scheduler::has_due(s, now) || !checks::due(s, now, 1).is_empty());
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

/// An entry failed in its own message: moved to a retry time (or parked), counted, logged.
fn record_entry_failure(st: &impl StateAccess, key: QueueKey, at: u64, error: &str) {
    let parked = st.write(|s| scheduler::record_failure(s, key, at));
    ops::with(|o| {
        o.scheduler_failures += 1;
        o.scheduler_parked += u64::from(parked);
    });
    let (due, kind, id) = key;
    events::emit(
        "scheduler.entry_failed",
        &[
            ("kind", Val::Raw(&kind)),
            ("id", Val::Raw(&id)),
            ("due", Val::Raw(&due)),
            ("parked", Val::Raw(&parked)),
            ("error", Val::Text(error)),
        ],
    );
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeSet;
    use std::rc::Rc;

    use candid::Principal;
    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;
    use crate::domain::scheduler::{MAX_ATTEMPTS, RETRY_DELAY_NS};
    use crate::domain::vault_core::{QueueKind, PARKED_DUE};
    use crate::model::config::{Config, InitArgs};
    use crate::model::types::{
        CreateVaultArgs, PlanSelection, Tier, VaultId, NANOS_PER_DAY, NANOS_PER_SEC,
    };
    use crate::runtime::testing::{poll_once, Job, MockRuntime};
    use crate::storage::State;

    const T0: u64 = 1_767_225_600_000_000_000;
    const MINUTE: u64 = 60 * NANOS_PER_SEC;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    /// The state as timer jobs hold it: shared and `'static`.
    #[derive(Clone)]
    struct Store(Rc<RefCell<State>>);

    impl StateAccess for Store {
        fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
            f(&self.0.borrow())
        }
        fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
            f(&mut self.0.borrow_mut())
        }
    }

    /// One canister, natively: its stable memory, the state over it, the runtime (clock,
    /// timers, self-calls), and what its batch method does when the tick calls it.
    struct Canister {
        memory: DefaultMemoryImpl,
        st: Store,
        rt: Rc<MockRuntime>,
        /// Vaults whose entries make a batch message trap (it then changes nothing).
        trapping: RefCell<BTreeSet<VaultId>>,
        /// While set, self-calls are refused (a stopping canister accepts no new calls).
        stopping: Cell<bool>,
        /// Keys of every batch message that ran to its reply, in order.
        committed: RefCell<Vec<Vec<QueueKey>>>,
        /// Batch messages called (committed, trapped or refused).
        calls: Cell<u32>,
    }

    impl Canister {
        /// `init`: default configuration, then the maintenance timer is armed.
        fn install() -> Canister {
            let memory = DefaultMemoryImpl::default();
            let mut state = State::open(memory.clone());
            state.stamp_layout();
            state.set_config(Config::from_init(InitArgs::default(), p(1)).unwrap());
            let c = Canister {
                memory,
                st: Store(Rc::new(RefCell::new(state))),
                rt: Rc::new(MockRuntime::new(T0, p(2))),
                trapping: RefCell::default(),
                stopping: Cell::new(false),
                committed: RefCell::default(),
                calls: Cell::new(0),
            };
            arm(c.st.clone(), c.rt.clone());
            c
        }

        /// The hidden batch method as the canister would run it.
        fn batch_method(&self, method: &str, arg: &[u8]) -> Result<Vec<u8>, String> {
            assert_eq!(method, BATCH_METHOD);
            self.calls.set(self.calls.get() + 1);
            if self.stopping.get() {
                return Err("canister is stopping".into());
            }
            let keys: Vec<QueueKey> = candid::decode_one(arg).map_err(|e| e.to_string())?;
            if keys.iter().any(|k| self.trapping.borrow().contains(&k.2)) {
                // A trap rolls the whole message back: as if it never ran.
                return Err("canister trapped: injected".into());
            }
            let reply = run_batch(&self.st, &self.rt, &keys);
            if reply.is_ok() {
                self.committed.borrow_mut().push(keys);
            }
            Ok(candid::encode_one(reply).unwrap())
        }

        /// Drives `jobs` to their end, answering their self-calls with the batch method.
        fn run(&self, jobs: Vec<Job>) {
            self.rt.run_jobs(jobs, |m, a| self.batch_method(m, a));
        }

        /// Moves the clock by `ns` and runs the timers due then; returns how many ran.
        fn advance_and_fire(&self, ns: u64) -> usize {
            self.rt.advance(ns);
            let jobs = self.rt.fire_due_timers();
            let n = jobs.len();
            self.run(jobs);
            n
        }

        /// A tick within `limits` driven to its end (`run_maintenance` when `manual`).
        fn tick(&self, manual: bool, limits: TickLimits) -> TickReport {
            let out = Rc::new(RefCell::new(None));
            let (st, rt, o) = (self.st.clone(), self.rt.clone(), out.clone());
            self.run(vec![Box::pin(async move {
                *o.borrow_mut() = Some(tick_with(&st, &rt, manual, limits).await);
            })]);
            out.take().expect("the tick finished")
        }

        fn run_maintenance(&self) -> TickReport {
            self.tick(true, TickLimits::DEFAULT)
        }

        /// An upgrade of a stopped canister: `pre_upgrade` saves the counters, the heap is
        /// gone (timers, in-flight runs), `post_upgrade` opens the state on the same stable
        /// memory, migrates, applies `timer_interval_secs` and arms the timer again.
        fn upgrade(&self, timer_interval_secs: u64) {
            assert_eq!(
                self.rt.pending_self_calls(),
                0,
                "a stopped canister has no calls"
            );
            let snapshot = ops::encode_snapshot(&ops::snapshot());
            self.st.write(|s| s.write_ops_snapshot(&snapshot));
            self.rt.clear_timers();
            let mut state = State::open(self.memory.clone());
            state.migrate().expect("same layout");
            let mut config = state.config().clone();
            config.durations.timer_interval_secs = timer_interval_secs;
            state.set_config(config);
            *self.st.0.borrow_mut() = state;
            self.stopping.set(false);
            arm(self.st.clone(), self.rt.clone());
        }

        /// A draft created at `at` by a principal of its own.
        fn draft_at(&self, at: u64, owner: u8) -> VaultId {
            self.rt.now.set(at);
            self.rt.as_caller(Principal::from_slice(&[owner, 7, 7]));
            let args = CreateVaultArgs {
                name: "Family".into(),
                plan: PlanSelection {
                    tier: Tier::Standard,
                    heir_slots: 2,
                    witness_slot: false,
                },
                owner_age: 40,
                idempotency_key: None,
            };
            self.st
                .write(|s| vaults::create_vault(s, &*self.rt, args))
                .unwrap()
                .id
        }

        fn exists(&self, id: VaultId) -> bool {
            self.st.read(|s| s.vaults.get(&id).is_some())
        }

        /// Vault ids of the committed batches, batch by batch.
        fn committed_ids(&self) -> Vec<Vec<VaultId>> {
            self.committed
                .borrow()
                .iter()
                .map(|b| b.iter().map(|k| k.2).collect())
                .collect()
        }
    }

    /// The draft purge of a draft created at `at` is due then.
    fn purge_due(at: u64) -> u64 {
        at + 7 * NANOS_PER_DAY
    }

    #[test]
    fn an_empty_tick_arms_the_next_timer() {
        let c = Canister::install();
        assert_eq!(
            c.rt.timers(),
            vec![(T0 + MINUTE, MINUTE)],
            "init arms one timer"
        );
        events::take_native();
        let runs = run_stats().runs;
        assert_eq!(c.advance_and_fire(MINUTE - 1), 0, "not before its interval");
        assert_eq!(run_stats().runs, runs);
        assert_eq!(c.advance_and_fire(1), 1);
        let stats = run_stats();
        assert_eq!(stats.runs, runs + 1);
        let last = stats.last_run.expect("the tick reported");
        assert_eq!(
            (
                last.manual,
                last.skipped,
                last.taken,
                last.processed,
                last.more_due
            ),
            (false, None, 0, 0, false)
        );
        assert_eq!(last.started_at, T0 + MINUTE);
        assert_eq!(c.calls.get(), 0, "an empty tick sends no batch message");
        assert_eq!(c.rt.timers(), vec![(T0 + 2 * MINUTE, MINUTE)], "re-armed");
        assert!(
            events::take_native().is_empty(),
            "an idle periodic tick leaves no log line"
        );
        assert_eq!(c.advance_and_fire(MINUTE), 1);
        assert_eq!(run_stats().runs, runs + 2);
        assert_eq!(c.rt.timers(), vec![(T0 + 3 * MINUTE, MINUTE)]);
    }

    #[test]
    fn due_entries_run_in_queue_order_across_batches_under_a_small_budget() {
        let c = Canister::install();
        // Created out of id order: the queue orders by due time, not by id.
        let offsets = [5u64, 1, 7, 3, 2, 6, 4];
        let ids: Vec<VaultId> = offsets
            .iter()
            .enumerate()
            .map(|(i, o)| c.draft_at(T0 + o * NANOS_PER_SEC, i as u8))
            .collect();
        let mut by_due: Vec<(u64, VaultId)> = offsets.iter().copied().zip(ids.clone()).collect();
        by_due.sort_unstable();
        let expected: Vec<VaultId> = by_due.iter().map(|(_, id)| *id).collect();

        c.rt.now.set(purge_due(T0 + 7 * NANOS_PER_SEC));
        c.rt.instructions_per_read.set(1_000);
        let small = TickLimits {
            entries: 3,
            ..TickLimits::DEFAULT
        };
        let reports: Vec<TickReport> = (0..4).map(|_| c.tick(true, small)).collect();
        let shape: Vec<(u32, u32, u32, bool)> = reports
            .iter()
            .map(|r| (r.taken, r.processed, r.applied, r.more_due))
            .collect();
        assert_eq!(
            shape,
            vec![
                (3, 3, 3, true),
                (3, 3, 3, true),
                (1, 1, 1, false),
                (0, 0, 0, false)
            ]
        );
        assert_eq!(
            c.committed_ids(),
            vec![
                expected[0..3].to_vec(),
                expected[3..6].to_vec(),
                expected[6..].to_vec()
            ],
            "oldest first, each entry once"
        );
        assert!(ids.iter().all(|id| !c.exists(*id)), "every draft erased");
        // The report carries the batch message's meter: one step between counter reads.
        assert_eq!(reports[0].max_item_instructions, 1_000);
        assert!(reports[0].instructions > reports[0].max_item_instructions);
    }

    #[test]
    fn a_backlog_larger_than_a_batch_continues_on_the_next_timer_ticks() {
        let c = Canister::install();
        let ids: Vec<VaultId> = (0..60u8).map(|i| c.draft_at(T0, i)).collect();
        c.rt.now.set(purge_due(T0) - MINUTE + 1);
        c.rt.clear_timers();
        arm(c.st.clone(), c.rt.clone());
        let mut taken = Vec::new();
        for _ in 0..3 {
            assert_eq!(c.advance_and_fire(MINUTE), 1);
            let r = run_stats().last_run.unwrap();
            taken.push((r.taken, r.processed, r.more_due));
        }
        assert_eq!(taken, vec![(50, 50, true), (10, 10, false), (0, 0, false)]);
        let all: Vec<VaultId> = c.committed_ids().concat();
        assert_eq!(all, ids, "same due time: id order, no repeats");
    }

    #[test]
    fn a_failing_batch_is_counted_and_retried_without_losing_entries() {
        let c = Canister::install();
        let ids: Vec<VaultId> = (0..5u8).map(|i| c.draft_at(T0, i)).collect();
        let bad = ids[2];
        c.trapping.borrow_mut().insert(bad);
        let now = purge_due(T0);
        c.rt.now.set(now);
        let before = ops::snapshot();
        events::take_native();

        let r = c.run_maintenance();
        assert_eq!((r.taken, r.processed, r.failed), (5, 4, 1));
        assert_eq!(
            c.calls.get(),
            1 + 5,
            "the batch, then one message per entry"
        );
        let after = ops::snapshot();
        assert_eq!(
            after.scheduler_batch_traps,
            before.scheduler_batch_traps + 1
        );
        assert_eq!(after.scheduler_failures, before.scheduler_failures + 1);
        assert_eq!(run_stats().failed_total, after.scheduler_failures);
        for id in &ids {
            assert_eq!(c.exists(*id), *id == bad, "vault {id}");
        }
        // The failed entry waits for its retry time with one attempt counted.
        let purge = QueueKind::DraftPurge.code();
        let entry = |c: &Canister| {
            c.st.read(|s| scheduler::entries_of(s, bad))
                .into_iter()
                .find(|((_, k, _), _)| *k == purge)
        };
        assert_eq!(entry(&c), Some(((now + RETRY_DELAY_NS, purge, bad), 1)));
        let lines = events::take_native();
        assert!(lines
            .iter()
            .any(|l| l.starts_with("event=scheduler.batch_trapped")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("event=scheduler.entry_failed")
                && l.contains(&format!(" id={bad} "))
                && l.contains(" parked=false ")));

        // Not before the retry time; then again (and again), until it is parked.
        assert_eq!(c.run_maintenance().taken, 0);
        let mut at = now;
        for attempt in 1..MAX_ATTEMPTS {
            at += RETRY_DELAY_NS * u64::from(attempt);
            c.rt.now.set(at);
            let r = c.run_maintenance();
            assert_eq!((r.taken, r.failed), (1, 1), "attempt {}", attempt + 1);
        }
        assert_eq!(entry(&c), Some(((PARKED_DUE, purge, bad), MAX_ATTEMPTS)));
        assert_eq!(
            ops::snapshot().scheduler_parked,
            before.scheduler_parked + 1
        );
        assert_eq!(c.run_maintenance().taken, 0, "a parked entry is never due");
        assert!(c.exists(bad), "kept, untouched");
    }

    #[test]
    fn a_failed_entry_runs_once_the_fault_is_gone() {
        let c = Canister::install();
        let ids: Vec<VaultId> = (0..3u8).map(|i| c.draft_at(T0, i)).collect();
        c.trapping.borrow_mut().insert(ids[0]);
        let now = purge_due(T0);
        c.rt.now.set(now);
        assert_eq!(c.run_maintenance().failed, 1);
        c.trapping.borrow_mut().clear();
        c.rt.now.set(now + RETRY_DELAY_NS);
        let r = c.run_maintenance();
        assert_eq!((r.taken, r.processed, r.failed), (1, 1, 0));
        assert!(ids.iter().all(|id| !c.exists(*id)));
        let all: Vec<VaultId> = c.committed_ids().concat();
        assert_eq!(
            all,
            vec![ids[1], ids[2], ids[0]],
            "each entry committed once"
        );
    }

    #[test]
    fn overlapping_ticks_are_refused() {
        let c = Canister::install();
        let ids: Vec<VaultId> = (0..3u8).map(|i| c.draft_at(T0, i)).collect();
        c.rt.now.set(purge_due(T0) - MINUTE);
        c.rt.clear_timers();
        arm(c.st.clone(), c.rt.clone());
        c.rt.advance(MINUTE);
        // The periodic tick stops at its batch message...
        let mut jobs = c.rt.fire_due_timers();
        assert_eq!(jobs.len(), 1);
        assert!(poll_once(jobs[0].as_mut()).is_pending());
        assert_eq!(c.rt.pending_self_calls(), 1);
        // ...meanwhile an admin's tick is refused at once, taking nothing.
        let mut manual = Box::pin(tick(&c.st, &c.rt, true));
        let std::task::Poll::Ready(r) = poll_once(manual.as_mut()) else {
            panic!("a refused tick does not wait");
        };
        assert_eq!((r.skipped.as_deref(), r.taken), (Some("busy"), 0));
        assert_eq!(c.rt.pending_self_calls(), 1, "no second batch message");
        // The first tick completes; then the next one runs.
        c.run(jobs);
        assert!(ids.iter().all(|id| !c.exists(*id)));
        assert_eq!(run_stats().last_run.unwrap().processed, 3);
        let r = c.run_maintenance();
        assert_eq!(r.skipped, None);
    }

    #[test]
    fn the_periodic_tick_waits_while_paused_a_manual_one_does_not() {
        let c = Canister::install();
        let id = c.draft_at(T0, 1);
        c.st.write(|s| {
            let mut config = s.config().clone();
            config.paused = true;
            s.set_config(config);
        });
        c.rt.now.set(purge_due(T0));
        let r = c.tick(false, TickLimits::DEFAULT);
        assert_eq!((r.skipped.as_deref(), r.taken), (Some("paused"), 0));
        assert!(c.exists(id));
        let r = c.run_maintenance();
        assert_eq!((r.skipped, r.processed), (None, 1));
        assert!(!c.exists(id));
    }

    #[test]
    fn an_upgrade_mid_backlog_keeps_the_queue_and_rearms_the_timer() {
        let c = Canister::install();
        let ids: Vec<VaultId> = (0..60u8).map(|i| c.draft_at(T0, i)).collect();
        c.rt.now.set(purge_due(T0) - MINUTE);
        c.rt.clear_timers();
        arm(c.st.clone(), c.rt.clone());
        // The first tick commits one batch of 50.
        assert_eq!(c.advance_and_fire(MINUTE), 1);
        assert_eq!(run_stats().last_run.unwrap().processed, 50);
        // The next one is waiting for its batch message when the canister is stopped for an
        // upgrade: the stopping canister refuses the self-calls, the tick counts the entries
        // as failed and moves them to a retry time.
        c.rt.advance(MINUTE);
        let mut jobs = c.rt.fire_due_timers();
        assert!(poll_once(jobs[0].as_mut()).is_pending());
        c.stopping.set(true);
        c.run(jobs);
        let r = run_stats().last_run.unwrap();
        assert_eq!((r.taken, r.processed, r.failed), (10, 0, 10));
        let stopped_at = c.rt.now.get();

        c.upgrade(120);
        assert_eq!(
            c.rt.timers(),
            vec![(stopped_at + 2 * MINUTE, 2 * MINUTE)],
            "post_upgrade arms the timer with the new interval"
        );
        let rest = &ids[50..];
        assert!(rest.iter().all(|id| c.exists(*id)), "nothing lost");
        let purge = QueueKind::DraftPurge.code();
        for id in rest {
            let purges: Vec<(QueueKey, u32)> =
                c.st.read(|s| scheduler::entries_of(s, *id))
                    .into_iter()
                    .filter(|((_, k, _), _)| *k == purge)
                    .collect();
            assert_eq!(
                purges,
                vec![((stopped_at + RETRY_DELAY_NS, purge, *id), 1)],
                "vault {id}: one purge, waiting for its retry"
            );
        }
        // Ticks after the upgrade: nothing before the retry time, then the rest, once.
        assert_eq!(c.advance_and_fire(2 * MINUTE), 1);
        assert_eq!(run_stats().last_run.unwrap().taken, 0);
        c.rt.now.set(stopped_at + RETRY_DELAY_NS - 1);
        assert_eq!(c.advance_and_fire(2 * MINUTE), 1);
        assert_eq!(run_stats().last_run.unwrap().processed, 10);
        assert!(ids.iter().all(|id| !c.exists(*id)));
        assert_eq!(c.committed_ids().concat(), ids, "each entry committed once");
    }

    #[test]
    fn the_batch_method_takes_at_most_one_batch_and_skips_gone_entries() {
        let c = Canister::install();
        let id = c.draft_at(T0, 1);
        let now = purge_due(T0);
        c.rt.now.set(now);
        let key = (now, QueueKind::DraftPurge.code(), id);
        let too_many = vec![key; MAX_ITEMS_PER_TICK + 1];
        assert!(matches!(
            run_batch(&c.st, &c.rt, &too_many),
            Err(VaultError::InvalidInput { .. })
        ));
        assert!(c.exists(id), "refused without changes");
        let r = run_batch(&c.st, &c.rt, &[key, key]).unwrap();
        assert_eq!((r.processed, r.applied), (1, 1), "the second copy is gone");
        assert!(!c.exists(id));
    }
}
