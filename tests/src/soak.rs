//! A simulated year of a busy canister (issue #12 item 3), on the compiled wasm:
//!
//! - a chatty owner: one paid `Active` vault (2 heirs, a letter, audit retention 30 days)
//!   whose owner renames it and changes its settings many times a day (2 audit events per
//!   `update_vault`) and checks in daily;
//! - its 2 heirs fail unlock attempts every day (`approve_unlock` before the time gate: 5
//!   failures, then `RateLimited`; an unknown recovery code; an unknown invite token);
//! - the owner requests a download ticket for the letter every day;
//! - throw-away principals (`principals` of them) run `cycles` create → delete cycles of
//!   unpaid drafts over the year; every second draft opens a payment session that is never
//!   paid, every fourth changes its settings, every tenth is abandoned (erased by the 7-day
//!   draft purge instead of `delete_vault`).
//!
//! Afterwards `settle_days` pass with only the owner's check-ins, then the report: traps (none
//! allowed), the queues and collectors against their baseline (taken after the setup), and
//! the stable memory per category ([`crate::stable_usage`]) before and after.
//!
//! The canister's maintenance timer runs every hour here (24 ticks a day instead of 1 440:
//! a year of ticks stays affordable in the interpreter; every tick's work is bounded the
//! same way, so fewer ticks only make the collectors' job harder).
//!
//! `chatty_seeded_per_day` > 0 appends that many events a day to the chatty vault's log
//! through the benchmark wasm's `bench_seed_audit` (`scripts/build.sh --bench-seed`; the
//! same `audit::append` as every user call), for runs where real calls would be too slow.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use candid::Principal;
use livault_backend::domain::rate_limit::MAX_TRACKED;
use livault_backend::model::config::Durations;
use livault_backend::model::member_types::{MemberView, UnlockStatus};
use livault_backend::model::records::MemberRole;

use crate::stable_usage::{self, Category, StableUsage};
use crate::*;

type R<T> = Result<T, VaultError>;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Simulated days of activity.
    pub days: u64,
    /// Throw-away principals.
    pub principals: u64,
    /// Create → delete cycles over all days.
    pub cycles: u64,
    /// Chatty owner: `update_vault` calls a day (2 audit events each).
    pub chatty_updates_per_day: u64,
    /// Chatty owner: events a day appended by `bench_seed_audit` (benchmark wasm only).
    pub chatty_seeded_per_day: u32,
    /// Quiet days after the activity (drafts purged, sessions expired, tickets collected).
    pub settle_days: u64,
}

impl SoakConfig {
    /// The documented one-year run (`cargo run --release -p livault_tests --bin soak`).
    pub fn year() -> Self {
        SoakConfig {
            days: 365,
            principals: 1_000,
            cycles: 10_000,
            chatty_updates_per_day: 140,
            chatty_seeded_per_day: 0,
            settle_days: 40,
        }
    }

    /// The short run of `scripts/test.sh` (`tests/e2e/soak.rs`).
    pub fn short() -> Self {
        SoakConfig {
            days: 40,
            principals: 50,
            cycles: 400,
            chatty_updates_per_day: 30,
            chatty_seeded_per_day: 0,
            settle_days: 40,
        }
    }
}

/// Queue and collector sizes the soak compares with their baseline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queues {
    /// Scheduler queue entries (deadlines, purges, compactions), parked included.
    pub scheduler: u64,
    /// Parked scheduler entries.
    pub parked: u64,
    /// Payment sessions queued for a balance check.
    pub payment_checks: u64,
    /// Vaults by status `Draft`.
    pub drafts: u64,
    /// Tombstones (`Deleted`).
    pub deleted: u64,
    /// Open uploads (memory `UPLOADS`).
    pub uploads: u64,
    /// Download tickets alive (`TICKET_DIR` entries in use, 16 B each).
    pub ticket_dir_bytes: u64,
    /// Per-day download counters.
    pub download_counters: u64,
    /// Idempotency entries.
    pub idempotency: u64,
    /// Per-day vault creation counters.
    pub creation_counters: u64,
    /// vetKeys records.
    pub vetkeys: u64,
    /// Refund accounts.
    pub refund_accounts: u64,
    /// Principals the rate limiter tracks (heap; a bounded cache, not a queue: checked
    /// against [`MAX_TRACKED`], not the baseline).
    pub rate_limited_principals: u64,
}

impl Queues {
    /// `(name, value)` pairs, in report order.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("scheduler queue", self.scheduler),
            ("parked entries", self.parked),
            ("payment checks", self.payment_checks),
            ("drafts", self.drafts),
            ("tombstones", self.deleted),
            ("open uploads", self.uploads),
            ("ticket directory bytes", self.ticket_dir_bytes),
            ("download counters", self.download_counters),
            ("idempotency entries", self.idempotency),
            ("creation counters", self.creation_counters),
            ("vetKeys records", self.vetkeys),
            ("refund accounts", self.refund_accounts),
        ]
    }
}

/// What the soak saw.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    /// The configuration run.
    pub days: u64,
    /// Update calls made (all principals).
    pub updates: u64,
    /// Calls answered with an error (expected: rate limits, failed attempts, ...), by case.
    pub refusals: BTreeMap<String, u64>,
    /// Executions that trapped (must be none).
    pub traps: Vec<String>,
    /// Audit events the chatty vault ever had (its next seq).
    pub chatty_events: u64,
    /// Of them, appended by `bench_seed_audit`.
    pub chatty_seeded: u64,
    /// Events the chatty vault keeps at the end.
    pub chatty_kept: u64,
    /// Failed unlock attempts of the heirs.
    pub failed_attempts: u64,
    /// Download tickets issued.
    pub tickets: u64,
    /// Drafts created and erased (deleted or purged).
    pub cycles: u64,
    /// Payment sessions opened and abandoned.
    pub abandoned_sessions: u64,
    /// Ledger calls after the setup (nobody pays or verifies: all the scheduler's checks).
    pub ledger_calls: u64,
    /// Drafts left to the TTL purge.
    pub abandoned_drafts: u64,
    /// Queues after the setup.
    pub baseline: Queues,
    /// Queues after the quiet days.
    pub after: Queues,
    /// Stable memory after the setup.
    pub usage_before: StableUsage,
    /// Stable memory at the end.
    pub usage_after: StableUsage,
    /// Stable memory at its largest (checked daily).
    pub peak_used: u64,
    /// Largest scheduler tick seen (instructions).
    pub max_tick_instructions: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl SoakReport {
    /// Growth of `c` over the run (negative: freed).
    pub fn growth(&self, c: Category) -> i64 {
        stable_usage::diff(&self.usage_before, &self.usage_after)[&c]
    }

    /// Queues that did not come back to their baseline: `(name, baseline, after)`.
    pub fn queues_off_baseline(&self) -> Vec<(&'static str, u64, u64)> {
        self.baseline
            .fields()
            .into_iter()
            .zip(self.after.fields())
            .filter(|((_, b), (_, a))| a > b)
            .map(|((n, b), (_, a))| (n, b, a))
            .collect()
    }

    /// The stable-memory bound of each category for this run: `(category, growth, bound, why)`.
    /// What may legitimately stay after the year: financial records (a payment session per
    /// abandoned session, kept for refunds), the 16-byte directory entry of every vault id
    /// ever used, the chatty vault's log within its retention window; everything else must
    /// come back to within one B-tree node / slab block (4 KiB).
    pub fn bounds(&self) -> Vec<(Category, i64, i64, String)> {
        const SLACK: i64 = 4 * 1024;
        // Measured (docs/security.md, attack_costs): a Create session with its index entry
        // and journal ≤ 1 600 B; a vault id's directory entry 16 B; an audit event ≤ 256 B
        // (slab block) plus its 16 B index entry.
        let sessions = self.abandoned_sessions as i64;
        let ids = self.cycles as i64;
        let kept_window = self.chatty_kept as i64;
        Category::ALL
            .iter()
            .map(|c| {
                let (bound, why) = match c {
                    Category::Payments => (
                        sessions * 1_600 + SLACK,
                        format!("{sessions} kept sessions × 1 600 B"),
                    ),
                    Category::Vaults => (ids * 16 + SLACK, format!("{ids} used ids × 16 B")),
                    Category::Audit => (
                        kept_window * (256 + 16) + 2 * 128 * 1024,
                        format!(
                            "{kept_window} events kept (30-day retention) × 272 B + 2 index pages of 128 KiB"
                        ),
                    ),
                    Category::Operations => (
                        2_047 * 4_096 + 4 * 65_536,
                        "admin trail ring (2 047 × 4 KiB) + counter snapshot (4 pages)".to_string(),
                    ),
                    _ => (SLACK, "back to baseline (one node)".to_string()),
                };
                (*c, self.growth(*c), bound, why)
            })
            .collect()
    }

    /// Every property the soak asserts, as messages (empty: all hold).
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.traps {
            out.push(format!("trap: {t}"));
        }
        for (name, b, a) in self.queues_off_baseline() {
            out.push(format!(
                "{name}: {a} after the quiet days, {b} at the baseline"
            ));
        }
        // No polling of sessions that saw no funds: 3 checks each (+2 min, +10 min, expiry).
        if self.ledger_calls > 3 * self.abandoned_sessions {
            out.push(format!(
                "{} ledger calls for {} abandoned sessions (> 3 each)",
                self.ledger_calls, self.abandoned_sessions
            ));
        }
        if self.after.rate_limited_principals > MAX_TRACKED as u64 {
            out.push(format!(
                "the rate limiter tracks {} principals > {MAX_TRACKED}",
                self.after.rate_limited_principals
            ));
        }
        for (c, growth, bound, why) in self.bounds() {
            if growth > bound {
                out.push(format!(
                    "{}: grew {growth} B > bound {bound} B ({why})",
                    c.label()
                ));
            }
        }
        out
    }

    /// Markdown for BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        use crate::attack::{bytes, thousands};
        let mut s = String::new();
        s.push_str(&format!(
            "{} simulated days (+ quiet days), {} update calls, wall time {:.0?}\n\n",
            self.days,
            thousands(self.updates),
            self.elapsed
        ));
        s.push_str(&format!(
            "- chatty owner: {} audit events on one vault ({} of them seeded by `bench_seed_audit`), {} kept at the end (30-day retention)\n",
            thousands(self.chatty_events),
            thousands(self.chatty_seeded),
            thousands(self.chatty_kept)
        ));
        s.push_str(&format!(
            "- heirs: {} failed unlock attempts; owner: {} download tickets\n",
            thousands(self.failed_attempts),
            thousands(self.tickets)
        ));
        s.push_str(&format!(
            "- {} create → delete cycles ({} drafts left to the purge), {} payment sessions abandoned; the scheduler made {} ledger calls for them (≤ 3 each)\n",
            thousands(self.cycles),
            thousands(self.abandoned_drafts),
            thousands(self.abandoned_sessions),
            thousands(self.ledger_calls)
        ));
        s.push_str(&format!(
            "- traps: {}; largest timer execution (a tick's synchronous part): {} instructions\n",
            self.traps.len(),
            thousands(self.max_tick_instructions)
        ));
        let refusals: Vec<String> = self
            .refusals
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect();
        s.push_str(&format!(
            "- refusals (expected): {}\n\n",
            refusals.join(", ")
        ));
        s.push_str("| queue / collector | baseline | after |\n|---|---:|---:|\n");
        for ((n, b), (_, a)) in self.baseline.fields().into_iter().zip(self.after.fields()) {
            s.push_str(&format!("| {n} | {} | {} |\n", thousands(b), thousands(a)));
        }
        s.push_str(&format!(
            "| rate-limiter buckets (heap cache, pruned of full buckets past {}) | {} | {} |\n",
            thousands(MAX_TRACKED as u64),
            thousands(self.baseline.rate_limited_principals),
            thousands(self.after.rate_limited_principals)
        ));
        s.push_str(
            "\n| stable memory (live bytes) | before | after | growth | bound |\n|---|---:|---:|---:|---|\n",
        );
        for (c, growth, bound, why) in self.bounds() {
            s.push_str(&format!(
                "| {} | {} | {} | {} | ≤ {} ({why}) |\n",
                c.label(),
                bytes(self.usage_before.of(c) as i64),
                bytes(self.usage_after.of(c) as i64),
                bytes(growth),
                bytes(bound)
            ));
        }
        s.push_str(&format!(
            "| total | {} | {} | {} | peak {} |\n",
            bytes(self.usage_before.used() as i64),
            bytes(self.usage_after.used() as i64),
            bytes(self.usage_after.used() as i64 - self.usage_before.used() as i64),
            bytes(self.peak_used as i64)
        ));
        s.push_str(&format!(
            "\nPhysical stable memory: {} before, {} after (grows in whole memory-manager buckets).\n",
            bytes(self.usage_before.physical as i64),
            bytes(self.usage_after.physical as i64)
        ));
        s
    }
}

struct Soak {
    env: TestEnv,
    cfg: SoakConfig,
    owner: Principal,
    vault: VaultId,
    item: u64,
    heirs: Vec<Principal>,
    report: SoakReport,
    scanned_until: u64,
}

fn case(e: &VaultError) -> String {
    format!("{e:?}")
        .split([' ', '(', '{'])
        .next()
        .unwrap_or("")
        .to_string()
}

impl Soak {
    fn usage(&self) -> StableUsage {
        StableUsage::read(self.env.host.stable_memory().unwrap_or_default())
    }

    /// An update one second after the previous one (inside every principal's rate limit).
    fn call<
        A: candid::utils::ArgumentEncoder,
        T: candid::CandidType + serde::de::DeserializeOwned,
    >(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> R<T> {
        self.env.advance(Duration::from_secs(1));
        self.report.updates += 1;
        let r: R<T> = match self.env.try_update(who, method, args) {
            Ok(r) => r,
            Err(reject) => {
                self.report
                    .traps
                    .push(format!("{method} rejected: {reject:?}"));
                return Err(VaultError::NotFound);
            }
        };
        if let Err(e) = &r {
            *self
                .report
                .refusals
                .entry(format!("{method}: {}", case(e)))
                .or_default() += 1;
        }
        self.scan();
        r
    }

    /// Records the traps and the largest tick since the last scan (the host keeps the last
    /// 1 000 executions; scanned after every call and every hour of simulated time).
    fn scan(&mut self) {
        let from = self.scanned_until;
        let mut last = from;
        for e in self.env.host.executions() {
            if e.time_ns <= from && from != 0 {
                continue;
            }
            last = last.max(e.time_ns);
            if let Some(t) = &e.trap {
                self.report
                    .traps
                    .push(format!("{} ({:?}): {t}", e.method, e.kind));
            }
            if e.kind == local_replica::ic0::ExecKind::Timer {
                self.report.max_tick_instructions =
                    self.report.max_tick_instructions.max(e.instructions);
            }
        }
        self.scanned_until = last;
    }

    /// Advances to the next midnight, an hour at a time.
    fn advance_to_next_day(&mut self) {
        let next = (self.env.now() / DAY_NS + 1) * DAY_NS;
        while self.env.now() < next {
            let step = (next - self.env.now()).min(3_600 * 1_000_000_000);
            self.env.advance(Duration::from_nanos(step));
            self.scan();
        }
    }

    fn ledger_calls(&self) -> u64 {
        [
            "account_balance",
            "transfer",
            "icrc1_transfer",
            "icrc1_balance_of",
        ]
        .iter()
        .map(|m| self.env.host.ledger().call_count(m))
        .sum()
    }

    fn queues(&mut self) -> Queues {
        let admin = self.env.admin;
        let m: R<Metrics> = self.env.query(admin, "get_metrics", ());
        let m = m.expect("get_metrics");
        let u = self.usage();
        let count = |s: VaultStatus| {
            m.vaults_by_status
                .iter()
                .find(|c| c.status == s)
                .map_or(0, |c| c.count)
        };
        Queues {
            scheduler: m.scheduler.queue_len,
            parked: m.scheduler.parked,
            payment_checks: m.scheduler.payment_checks_queued,
            drafts: count(VaultStatus::Draft),
            deleted: count(VaultStatus::Deleted),
            uploads: u.entries(11),
            ticket_dir_bytes: u.memories.get(&29).map_or(0, |m| m.used),
            download_counters: u.entries(38),
            idempotency: u.entries(18),
            creation_counters: u.entries(35),
            vetkeys: u.entries(22),
            refund_accounts: u.entries(31),
            rate_limited_principals: m.rate_limited_principals,
        }
    }

    fn setup(cfg: SoakConfig) -> Soak {
        let init = InitArgs {
            admins: vec![user("admin")],
            ledger_canister_id: Some(local_replica::ledger_principal()),
            durations: Some(Durations {
                timer_interval_secs: 3_600,
                ..Durations::default()
            }),
            ..Default::default()
        };
        let env = if cfg.chatty_seeded_per_day > 0 {
            TestEnv::with_wasm(bench_wasm(), init)
        } else {
            TestEnv::with_init(init)
        };
        let mut s = Soak {
            env,
            cfg,
            owner: user("chatty-owner"),
            vault: 0,
            item: 0,
            heirs: (0..2).map(|i| user(&format!("soak-heir-{i}"))).collect(),
            report: SoakReport::default(),
            scanned_until: 0,
        };
        let owner = s.owner;
        let v = s.env.create_vault(owner, "Chatty").id;
        s.env.pay_creation(owner, v);
        let r: R<VaultView> = s.call(
            owner,
            "update_vault",
            (UpdateVaultArgs {
                vault_id: v,
                name: None,
                unlock_rules: Some(UnlockRules {
                    unlock_after: None,
                    inactivity_days: Some(180),
                    request_wait_days: 7,
                    required_heirs: 2,
                    required_witness: false,
                }),
                post_unlock_days: Some(30),
                audit_retention_days: Some(30),
            },),
        );
        r.expect("rules");
        let mut members = Vec::new();
        for h in s.heirs.clone() {
            s.env.advance(Duration::from_secs(1));
            members.push(s.env.join(owner, v, MemberRole::Heir, h));
        }
        s.env.advance(Duration::from_secs(1));
        s.item = s
            .env
            .upload_letter(owner, v, b"ciphertext of a letter", Some(members));
        let r: R<VaultView> = s.call(owner, "finalize_setup", (v,));
        assert_eq!(r.expect("finalize_setup").status, VaultStatus::Active);
        s.vault = v;
        s.advance_to_next_day();
        s.report.baseline = s.queues();
        s.report.usage_before = s.usage();
        s.report.ledger_calls = s.ledger_calls();
        s
    }

    fn chatty_day(&mut self, day: u64) {
        let (owner, v) = (self.owner, self.vault);
        let r: R<VaultView> = self.call(owner, "check_in", (v,));
        r.expect("check_in");
        for i in 0..self.cfg.chatty_updates_per_day {
            let r: R<VaultView> = self.call(
                owner,
                "update_vault",
                (UpdateVaultArgs {
                    vault_id: v,
                    name: Some(format!("Chatty {day}.{i}")),
                    unlock_rules: None,
                    post_unlock_days: Some(30 + (i % 2) as u16),
                    audit_retention_days: None,
                },),
            );
            r.expect("the chatty owner's update_vault");
        }
        if self.cfg.chatty_seeded_per_day > 0 {
            let controller = self.env.controller;
            let r: R<u64> = self.call(
                controller,
                "bench_seed_audit",
                (v, self.cfg.chatty_seeded_per_day),
            );
            r.expect("bench_seed_audit");
            self.report.chatty_seeded += u64::from(self.cfg.chatty_seeded_per_day);
        }
        // The daily ticket.
        let r: R<DownloadTicket> = self.call(owner, "request_download", (v, self.item));
        r.expect("request_download");
        self.report.tickets += 1;
    }

    fn heirs_day(&mut self, day: u64) {
        let v = self.vault;
        for h in self.heirs.clone() {
            for _ in 0..6 {
                let r: R<UnlockStatus> = self.call(h, "approve_unlock", (v,));
                match r {
                    Err(VaultError::UnlockConditionsNotMet { .. }) => {
                        self.report.failed_attempts += 1
                    }
                    Err(VaultError::RateLimited { .. }) => {}
                    other => panic!("an heir's early approve_unlock: {other:?}"),
                }
            }
            let code = format!("lvr1_{:064x}", day);
            let r: R<VaultView> = self.call(h, "use_recovery_code", (code,));
            assert!(r.is_err(), "an unknown recovery code: {r:?}");
            let token = format!("lvi1_{:064x}", day);
            let r: R<MemberView> = self.call(h, "claim_invite", (token,));
            assert!(r.is_err(), "an unknown invite token: {r:?}");
        }
    }

    fn churn_day(&mut self, day: u64, next_cycle: &mut u64) {
        let per_day = self.cfg.cycles / self.cfg.days;
        let extra = u64::from(day < self.cfg.cycles % self.cfg.days);
        for _ in 0..per_day + extra {
            let c = *next_cycle;
            *next_cycle += 1;
            let p = user(&format!("throwaway-{}", c % self.cfg.principals));
            let r: R<VaultView> = self.call(
                p,
                "create_vault",
                (CreateVaultArgs {
                    name: format!("draft {c}"),
                    plan: PlanSelection {
                        tier: Tier::Basic,
                        heir_slots: 1,
                        witness_slot: false,
                    },
                    owner_age: 30,
                    idempotency_key: Some(format!("key {c}")),
                },),
            );
            let d = r.expect("a throw-away principal's draft").id;
            if c.is_multiple_of(2) {
                let r: R<PaymentSession> =
                    self.call(p, "init_payment", (d, PaymentPurpose::Create));
                r.expect("init_payment");
                self.report.abandoned_sessions += 1;
            }
            if c % 4 == 1 {
                let r: R<VaultView> = self.call(
                    p,
                    "update_vault",
                    (UpdateVaultArgs {
                        vault_id: d,
                        name: Some(format!("renamed {c}")),
                        unlock_rules: None,
                        post_unlock_days: None,
                        audit_retention_days: Some(30),
                    },),
                );
                r.expect("update_vault on a draft");
            }
            if c % 10 == 9 {
                self.report.abandoned_drafts += 1;
            } else {
                let r: R<VaultView> = self.call(p, "delete_vault", (d,));
                r.expect("delete_vault");
            }
            self.report.cycles += 1;
        }
    }
}

/// Runs the soak; `progress` is told each finished day (day, report so far).
pub fn run(cfg: SoakConfig, mut progress: impl FnMut(u64, &SoakReport)) -> SoakReport {
    let started = Instant::now();
    let mut s = Soak::setup(cfg.clone());
    let mut next_cycle = 0;
    for day in 0..cfg.days {
        s.chatty_day(day);
        s.heirs_day(day);
        s.churn_day(day, &mut next_cycle);
        s.advance_to_next_day();
        s.report.peak_used = s.report.peak_used.max(s.usage().used());
        s.report.days = day + 1;
        progress(day, &s.report);
    }
    let owner = s.owner;
    let v = s.vault;
    for _ in 0..cfg.settle_days {
        let r: R<VaultView> = s.call(owner, "check_in", (v,));
        r.expect("check_in");
        s.advance_to_next_day();
        s.report.peak_used = s.report.peak_used.max(s.usage().used());
    }
    let head: R<AuditHead> = s.env.query(owner, "get_audit_head", (v,));
    let head = head.expect("get_audit_head");
    s.report.chatty_events = head.next_seq;
    s.report.chatty_kept = s.env.audit_log(owner, v).len() as u64;
    s.report.after = s.queues();
    s.report.ledger_calls = s.ledger_calls() - s.report.ledger_calls;
    s.report.usage_after = s.usage();
    s.report.elapsed = started.elapsed();
    s.report
}
