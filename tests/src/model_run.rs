//! The randomized model run (issue #12, item 7): seeded random sequences of user calls,
//! wallet payments, scheduler ticks (time advances) and canister upgrades, driven against the
//! real wasm on the embedded host and checked after every step against [`crate::model`].
//!
//! - Every answer (the Ok value's fields, or the exact error variant) must agree with the
//!   model; every few steps and after every upgrade, a full comparison: every vault's view
//!   for its owner, members and a stranger, members, invites, items, unlock status, payment
//!   sessions, billing, metrics counters, ledger balances, `list_my_vaults` of everyone, and
//!   each vault's audit log: the hash chain recomputed independently, the head, events
//!   identical across upgrades, the events the model predicts in order, members' filtered
//!   views, and the retention bounds of compaction.
//! - Reproducible: everything follows from the seed (the host is deterministic). A
//!   disagreement panics with the seed, the step number and the last steps.
//!
//! Usage: `tests/e2e/model_run.rs` (short runs, `scripts/test.sh`), and the binary
//! `model_run --seed N --steps N` for long runs (docs/model-run.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use livault_backend::model::member_types::{
    GenerateInviteArgs, InviteCreated, InviteInfo, InviteView, MemberView, Relation, UnlockStatus,
};
use livault_backend::model::records::MemberRole;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::model::*;
use crate::*;

/// Host time added by every ingress message and query (`HostConfig::tick_ns`).
const HOST_TICK: u64 = 1_000_000;

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// `true` with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }

    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize].clone()
    }

    /// An index chosen by weights.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.next_u64() % total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub seed: u64,
    pub steps: u64,
    /// At least this many upgrades (more steps are added until reached).
    pub min_upgrades: u64,
    /// Print every step.
    pub verbose: bool,
    /// Print a progress line every 250 steps.
    pub progress: bool,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub steps: u64,
    pub calls: u64,
    pub queries: u64,
    pub upgrades: u64,
    pub ticks: u64,
    pub full_checks: u64,
    /// `State::check_invariants` runs over the wasm's stable memory (one per full check).
    pub storage_walks: u64,
    pub simulated_ns: u64,
    pub vaults: u64,
    pub by_status: BTreeMap<String, u64>,
    /// Status transitions seen in the model ("From -> To" → count).
    pub transitions: BTreeMap<String, u64>,
    pub ops: BTreeMap<&'static str, u64>,
    pub errors: BTreeMap<String, u64>,
    pub audit_events_checked: u64,
    pub wall: Duration,
    pub validity_days: u32,
    /// Wall time in time advances (scheduler ticks), queries, update calls, upgrades.
    pub wall_advance: Duration,
    pub wall_queries: Duration,
    pub wall_updates: Duration,
    pub wall_upgrades: Duration,
    /// Stable memory size at the end.
    pub stable_bytes: u64,
}

impl RunStats {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "steps {} | update calls {} | queries {} | upgrades {} | scheduler ticks {} | full checks {} (storage walks {}) | simulated {:.1} days | vaults {} (validity {} d) | audit events checked {} | wall {:.1} s\n",
            self.steps,
            self.calls,
            self.queries,
            self.upgrades,
            self.ticks,
            self.full_checks,
            self.storage_walks,
            self.simulated_ns as f64 / DAY as f64,
            self.vaults,
            self.validity_days,
            self.audit_events_checked,
            self.wall.as_secs_f64()
        );
        s += &format!(
            "  wall: advances {:.1} s, queries {:.1} s, updates {:.1} s, upgrades {:.1} s\n",
            self.wall_advance.as_secs_f64(),
            self.wall_queries.as_secs_f64(),
            self.wall_updates.as_secs_f64(),
            self.wall_upgrades.as_secs_f64()
        );
        s += &format!(
            "  stable memory at the end: {:.1} MiB\n",
            self.stable_bytes as f64 / (1024.0 * 1024.0)
        );
        s += &format!("  final statuses: {:?}\n", self.by_status);
        s += &format!("  transitions: {:?}\n", self.transitions);
        s += &format!("  steps by kind: {:?}\n", self.ops);
        s += &format!("  typed errors answered: {:?}\n", self.errors);
        s
    }
}

/// Per-vault audit events seen so far (by sequence number), to check they never change.
#[derive(Default)]
struct AuditTrack {
    seen: BTreeMap<u64, AuditEventView>,
}

/// The runner: the canister on the host, the model, the generator and the trace.
pub struct Runner {
    pub env: TestEnv,
    pub model: Model,
    rng: Rng,
    /// Choices of the checks (which member's view, full or incremental reads): a stream of
    /// its own, so that changing the checks never changes the operations a seed runs.
    check_rng: Rng,
    cfg: RunConfig,
    owners: Vec<Principal>,
    people: Vec<Principal>,
    stranger: Principal,
    trace: Vec<String>,
    step: u64,
    pub stats: RunStats,
    audit: BTreeMap<VaultId, AuditTrack>,
    /// Last time the canister was paused (retention bounds are not checked around pauses).
    last_paused: Option<u64>,
    /// Model events of a vault at its last full check.
    checked_events: BTreeMap<VaultId, usize>,
    /// When each vault's audit log was last read.
    audit_read_at: BTreeMap<VaultId, u64>,
    start: u64,
    paused_since: Option<u64>,
}

type R<T> = Result<T, VaultError>;

/// The durations of a run, chosen by the seed (short validity to reach the grace periods).
pub fn run_durations(rng: &mut Rng) -> Durations {
    Durations {
        validity_days: rng.pick(&[20u32, 30, 45, 90]),
        draft_ttl_days: 7,
        grace_master_days: 14,
        grace_heir_days: 14,
        tombstone_after_days: 30,
        default_post_unlock_days: rng.pick(&[10u16, 30, 365]),
        default_audit_retention_days: rng.pick(&[30u16, 60, 365]),
        default_request_wait_days: 7,
        payment_session_secs: 1800,
        invite_secs: 86_400,
        upload_idle_secs: 86_400,
        download_ticket_secs: 3600,
        timer_interval_secs: 3600,
    }
}

/// Small storage per tier so quotas are reached with small payloads; SPEC prices.
pub fn run_pricing() -> Pricing {
    let mut p = Pricing::default();
    for (i, t) in p.tiers.iter_mut().enumerate() {
        t.storage_bytes = 4096 << i;
    }
    p
}

pub fn run_limits() -> Limits {
    Limits {
        max_chunk_bytes: 1024,
        max_vaults_per_owner: 4,
        max_items_per_vault: 6,
        downloads_per_day: 3,
        stable_memory_high_water_bytes: None,
    }
}

impl Runner {
    pub fn new(cfg: RunConfig) -> Runner {
        let mut rng = Rng::new(cfg.seed);
        let durations = run_durations(&mut rng);
        let admin = user("admin");
        let env = TestEnv::with_init(InitArgs {
            admins: vec![admin],
            ledger_canister_id: Some(local_replica::ledger_principal()),
            treasury: None,
            durations: Some(durations.clone()),
            pricing: Some(run_pricing()),
            limits: Some(run_limits()),
            vetkd: None,
        });
        let model = Model::new(
            Cfg {
                d: durations.clone(),
                pricing: run_pricing(),
                limits: run_limits(),
            },
            env.canister,
            admin,
            env.now(),
        );
        let start = env.now();
        Runner {
            env,
            model,
            rng,
            check_rng: Rng::new(cfg.seed ^ 0x5eed_c0de),
            owners: (0..3).map(|i| user(&format!("model-owner-{i}"))).collect(),
            people: (0..7).map(|i| user(&format!("model-person-{i}"))).collect(),
            stranger: user("model-stranger"),
            trace: Vec::new(),
            step: 0,
            stats: RunStats {
                validity_days: durations.validity_days,
                ..RunStats::default()
            },
            audit: BTreeMap::new(),
            last_paused: None,
            checked_events: BTreeMap::new(),
            audit_read_at: BTreeMap::new(),
            start,
            paused_since: None,
            cfg,
        }
    }

    // ------------------------------------------------------------------ reporting

    fn note(&mut self, s: String) {
        if self.cfg.verbose {
            eprintln!("[{}] {s}", self.step);
        }
        self.trace.push(format!("[{}] {s}", self.step));
        if self.trace.len() > 60 {
            self.trace.remove(0);
        }
    }

    fn fail(&self, msg: &str) -> ! {
        panic!(
            "MODEL RUN DISAGREEMENT (seed {}, step {}): {msg}\n\
             reproduce: cargo run -p livault_tests --bin model_run -- --seed {} --steps {} --verbose\n\
             last steps:\n{}",
            self.cfg.seed,
            self.step,
            self.cfg.seed,
            self.step + 1,
            self.trace.join("\n")
        )
    }

    fn check(&self, r: Check) {
        if let Err(e) = r {
            self.fail(&e);
        }
    }

    fn count_err<T>(&mut self, r: &R<T>) {
        if let Err(e) = r {
            let name = format!("{e:?}");
            let name = name
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_string();
            *self.stats.errors.entry(name).or_default() += 1;
        }
    }

    // ------------------------------------------------------------------ calls

    /// An update call at the next host tick; a system reject (a trap) is a disagreement.
    fn upd<A: ArgumentEncoder, T: CandidType + DeserializeOwned + std::fmt::Debug>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> (u64, R<T>) {
        let t = self.env.now() + HOST_TICK;
        if t >= self.model.next_tick {
            self.fail(&format!(
                "internal: {method} would run the timer (quiet() missed it)"
            ));
        }
        let w = Instant::now();
        let r = self.env.try_update(who, method, args);
        self.stats.wall_updates += w.elapsed();
        let r: R<T> = match r {
            Ok(r) => r,
            Err(reject) => self.fail(&format!("{method} was rejected (trap?): {reject:?}")),
        };
        if self.env.now() != t {
            self.fail(&format!(
                "{method}: host time moved to {} instead of {t} (a timer ran)",
                self.env.now()
            ));
        }
        self.stats.calls += 1;
        self.count_err(&r);
        (t, r)
    }

    fn qry<A: ArgumentEncoder, T: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> (u64, T) {
        let t = self.env.now() + HOST_TICK;
        if t >= self.model.next_tick {
            self.fail(&format!(
                "internal: query {method} passes the timer (quiet() missed it)"
            ));
        }
        let w = Instant::now();
        let r = self.env.try_query(who, method, args);
        self.stats.wall_queries += w.elapsed();
        let r: T = match r {
            Ok(r) => r,
            Err(reject) => self.fail(&format!("query {method} was rejected: {reject:?}")),
        };
        self.stats.queries += 1;
        (t, r)
    }

    /// Makes sure the next `calls` host ticks do not reach the scheduler's next tick: if
    /// they would, time advances to that tick first (so ticks only run inside advances).
    fn quiet(&mut self, calls: u64) {
        let now = self.env.now();
        // A generous margin: ticks are ≥ 30 minutes apart, a step makes far fewer calls.
        if now + (calls + 2).max(5000) * HOST_TICK >= self.model.next_tick {
            let target = self.model.next_tick.max(now);
            self.advance_to(target);
        }
    }

    fn advance_to(&mut self, target: u64) {
        let now = self.env.now();
        if target > now {
            let w = Instant::now();
            self.env.advance(Duration::from_nanos(target - now));
            self.stats.wall_advance += w.elapsed();
        }
        let before = self.model.ticks;
        self.model.advance_to(target);
        self.stats.ticks += self.model.ticks - before;
        if self.model.paused && self.paused_since.is_none() {
            self.paused_since = Some(now);
        }
    }

    // ------------------------------------------------------------------ the run

    pub fn run(mut self) -> RunStats {
        let wall = Instant::now();
        let mut next_upgrade = self.rng.range(2, 9);
        let mut next_full = 10;
        let mut step = 0;
        while step < self.cfg.steps || self.stats.upgrades < self.cfg.min_upgrades {
            self.step = step;
            if step == next_upgrade {
                self.upgrade();
                next_upgrade = step + self.rng.range(2, 9);
            } else {
                self.random_step();
            }
            if step >= next_full {
                self.full_check();
                next_full = step + 20;
            }
            if self.cfg.progress && step % 250 == 249 {
                eprintln!(
                    "seed {}: step {} upgrades {} simulated {:.0} days vaults {} ({:.0} s)",
                    self.cfg.seed,
                    step + 1,
                    self.stats.upgrades,
                    (self.env.now() - self.start) as f64 / DAY as f64,
                    self.model.vaults.len(),
                    wall.elapsed().as_secs_f64()
                );
            }
            step += 1;
        }
        self.step = step;
        self.full_check();
        self.stats.steps = step;
        self.stats.simulated_ns = self.env.now() - self.start;
        self.stats.vaults = self.model.vaults.len() as u64;
        for v in self.model.vaults.values() {
            for e in v.events.iter().filter(|e| e.action == "status.changed") {
                let t = e.details_prefix.clone().unwrap_or_default();
                *self.stats.transitions.entry(t).or_default() += 1;
            }
            *self
                .stats
                .by_status
                .entry(status_name(v.status).to_string())
                .or_default() += 1;
        }
        self.stats.wall = wall.elapsed();
        self.stats.stable_bytes = self.env.host.stable_memory().map_or(0, |m| m.len() as u64);
        self.stats
    }

    /// An upgrade to the same wasm: mostly without arguments; sometimes with upgrade
    /// arguments that change the timer interval and the payment-session and invite lifetimes
    /// (SPEC §15: only what they name changes).
    fn upgrade(&mut self) {
        *self.stats.ops.entry("upgrade").or_default() += 1;
        self.quiet(1);
        let args = if self.rng.chance(15) {
            let mut d = self.model.cfg.d.clone();
            d.timer_interval_secs = self.rng.pick(&[1800u64, 3600, 7200]);
            d.payment_session_secs = self.rng.pick(&[600u64, 1800]);
            d.invite_secs = self.rng.pick(&[3600u64, 86_400]);
            Some(d)
        } else {
            None
        };
        self.note(format!("upgrade (same wasm) with durations {args:?}"));
        let arg = args.clone().map(|d| {
            LiVaultArgs::Upgrade(UpgradeArgs {
                durations: Some(d),
                ..UpgradeArgs::default()
            })
        });
        let w = Instant::now();
        if let Err(e) = self.env.upgrade(arg) {
            self.fail(&format!("upgrade failed: {e}"));
        }
        self.stats.wall_upgrades += w.elapsed();
        self.stats.upgrades += 1;
        if let Some(d) = args {
            self.model.cfg.d = d;
        }
        self.model.upgraded(self.env.now());
        self.full_check();
    }

    fn random_step(&mut self) {
        // Think time: most steps happen a few seconds after the previous one.
        if self.rng.chance(60) {
            let d = self.rng.range(1, 30) * SEC;
            let target = self.env.now() + d;
            self.advance_to(target);
        }
        let weights = [
            30, // 0 directed step on a vault
            6,  // 1 create vault
            10, // 2 time advance
            5,  // 3 payments (random)
            4,  // 4 update vault (random)
            3,  // 5 members (random)
            4,  // 6 content (random)
            3,  // 7 unlock (random)
            3,  // 8 downloads
            4,  // 9 queries
            1,  // 10 delete vault
            1,  // 11 pause / resume
            1,  // 12 burst (rate limit)
            1,  // 13 concurrent verifications
            1,  // 14 run_maintenance
            1,  // 15 set_pricing
        ];
        match self.rng.weighted(&weights) {
            0 => self.directed(),
            1 => self.op_create(),
            2 => self.op_advance(),
            3 => self.op_payment_random(),
            4 => self.op_update_random(),
            5 => self.op_members_random(),
            6 => self.op_content_random(),
            7 => self.op_unlock_random(),
            8 => self.op_download_random(),
            9 => self.op_queries(),
            10 => self.op_delete(),
            11 => self.op_pause(),
            12 => self.op_burst(),
            13 => self.op_concurrent_verify(),
            14 => self.op_maintenance(),
            _ => self.op_set_pricing(),
        }
        // While paused, resume after a while so the run keeps moving.
        if self.model.paused && self.rng.chance(20) {
            self.set_paused(false);
        }
    }

    // ------------------------------------------------------------------ choosing

    fn live_vaults(&self) -> Vec<VaultId> {
        self.model
            .vaults
            .values()
            .filter(|v| v.status != VaultStatus::Deleted)
            .map(|v| v.id)
            .collect()
    }

    fn any_vault(&mut self) -> Option<VaultId> {
        let live = self.live_vaults();
        if !live.is_empty() && self.rng.chance(85) {
            return Some(self.rng.pick(&live));
        }
        let all: Vec<VaultId> = self.model.vaults.keys().copied().collect();
        if all.is_empty() || self.rng.chance(5) {
            return Some(9_999);
        }
        Some(self.rng.pick(&all))
    }

    fn owner_of(&self, id: VaultId) -> Principal {
        self.model
            .vaults
            .get(&id)
            .map_or(self.stranger, |v| v.owner)
    }

    /// Mostly the owner; sometimes a member, a stranger or another owner.
    fn caller_for(&mut self, id: VaultId) -> Principal {
        let owner = self.owner_of(id);
        if self.rng.chance(88) {
            return owner;
        }
        let mut pool = vec![self.stranger, self.rng.pick(&self.owners.clone())];
        if let Some(v) = self.model.vaults.get(&id) {
            pool.extend(v.members.values().map(|m| m.principal));
        }
        self.rng.pick(&pool)
    }

    fn members_of(&self, id: VaultId) -> Vec<(u32, Principal, MemberRole)> {
        self.model.vaults.get(&id).map_or(Vec::new(), |v| {
            v.members
                .values()
                .map(|m| (m.id, m.principal, m.role))
                .collect()
        })
    }

    fn random_plan(&mut self) -> PlanSelection {
        let tier = self.rng.pick(&Tier::ALL);
        let max = self.model.cfg.pricing.tiers[tier as usize].max_heirs as u64;
        let heir_slots = if self.rng.chance(5) {
            self.rng.pick(&[0, max + 1]) as u8
        } else {
            self.rng.range(1, max.min(4)) as u8
        };
        PlanSelection {
            tier,
            heir_slots,
            witness_slot: self.rng.chance(60),
        }
    }

    fn random_rules(&mut self, id: VaultId) -> UnlockRules {
        let now = self.env.now();
        let plan = self
            .model
            .vaults
            .get(&id)
            .map(|v| v.plan)
            .unwrap_or(PlanSelection {
                tier: Tier::Basic,
                heir_slots: 1,
                witness_slot: false,
            });
        let unlock_after = if self.rng.chance(55) {
            Some(if self.rng.chance(5) {
                now.saturating_sub(DAY)
            } else {
                now + self.rng.range(HOUR / SEC, 80 * DAY / SEC) * SEC
            })
        } else {
            None
        };
        let inactivity_days = if unlock_after.is_none() || self.rng.chance(40) {
            Some(if self.rng.chance(4) {
                0
            } else {
                self.rng.range(1, 60) as u32
            })
        } else {
            None
        };
        let required_heirs = if self.rng.chance(35) {
            0
        } else {
            self.rng.range(1, u64::from(plan.heir_slots)) as u8
        };
        UnlockRules {
            unlock_after,
            inactivity_days,
            request_wait_days: self.rng.pick(&[0u32, 1, 3, 7, 400]),
            required_heirs: if self.rng.chance(3) {
                plan.heir_slots + 1
            } else {
                required_heirs
            },
            required_witness: plan.witness_slot && self.rng.chance(30) || self.rng.chance(3),
        }
    }

    fn random_name(&mut self) -> String {
        match self.rng.range(0, 19) {
            0 => String::new(),
            1 => "   ".into(),
            2 => "x".repeat(65),
            3 => "bad\nname".into(),
            4 => "  padded  ".into(),
            _ => format!("vault {}", self.rng.range(0, 999)),
        }
    }

    // ------------------------------------------------------------------ operations

    fn op_create(&mut self) {
        *self.stats.ops.entry("create_vault").or_default() += 1;
        let owner = if self.rng.chance(95) {
            self.rng.pick(&self.owners.clone())
        } else {
            self.rng.pick(&self.people.clone())
        };
        let idempotency_key = if self.rng.chance(25) {
            Some(format!("key-{}", self.rng.range(0, 3)))
        } else {
            None
        };
        let args = CreateVaultArgs {
            name: self.random_name(),
            plan: self.random_plan(),
            owner_age: if self.rng.chance(5) {
                self.rng.pick(&[17u8, 121, 0])
            } else {
                self.rng.range(18, 95) as u8
            },
            idempotency_key,
        };
        self.quiet(1);
        self.note(format!("create_vault by {owner} {args:?}"));
        let (t, r) = self.upd::<_, VaultView>(owner, "create_vault", (args.clone(),));
        let c = self.model.create_vault(t, owner, &args, &r);
        self.check(c);
        if let Ok(v) = &r {
            self.audit.entry(v.id).or_default();
        }
    }

    fn op_advance(&mut self) {
        *self.stats.ops.entry("advance").or_default() += 1;
        let now = self.env.now();
        let d = match self.rng.weighted(&[30, 25, 20, 10, 15]) {
            0 => self.rng.range(1, 3600) * SEC,
            1 => self.rng.range(1, 48) * HOUR,
            2 => self.rng.range(2, 20) * DAY,
            3 => self.rng.range(20, 70) * DAY,
            _ => match self.next_deadline() {
                Some(at) if at > now => {
                    let jitter = self.rng.range(0, 2 * self.model.interval() / SEC) * SEC;
                    (at - now) + jitter.saturating_sub(self.model.interval() / 2)
                }
                _ => self.rng.range(1, 10) * DAY,
            },
        };
        let d = d.max(SEC);
        self.note(format!("advance {:.3} days", d as f64 / DAY as f64));
        self.advance_in_pieces(now + d);
    }

    /// Advances to `target` in pieces of at most 14 days, comparing every live vault's view
    /// and reading its new audit events after each (tombstones: when their last read is 14
    /// days old). No event can be compacted before the run sees it: events live at least the
    /// shortest retention (30 days) and every vault's log is read at most 28 days apart.
    fn advance_in_pieces(&mut self, target: u64) {
        loop {
            let now = self.env.now();
            let to = target.min(now + 14 * DAY);
            self.advance_to(to);
            self.check_all_views();
            let ids: Vec<VaultId> = self.model.vaults.keys().copied().collect();
            for id in ids {
                let tombstone = self.model.vaults[&id].status == VaultStatus::Deleted;
                let read_at = self.audit_read_at.get(&id).copied().unwrap_or(0);
                if !tombstone || to >= read_at + 14 * DAY {
                    self.check_audit_with(id, false);
                }
            }
            if to >= target {
                return;
            }
        }
    }

    /// A deadline from the model (lifecycle, unlock, invite, session or upload expiry).
    fn next_deadline(&mut self) -> Option<u64> {
        let now = self.env.now();
        let d = self.model.cfg.d.clone();
        let mut c = Vec::new();
        for v in self.model.vaults.values() {
            match v.status {
                VaultStatus::Draft => c.push(v.created_at + u64::from(d.draft_ttl_days) * DAY),
                VaultStatus::Active => {
                    c.extend(v.expires_at);
                    let g = self.model.time_gate(v, now);
                    c.extend(g.opens_at);
                }
                VaultStatus::GraceMaster => {
                    c.push(v.status_changed_at + u64::from(d.grace_master_days) * DAY)
                }
                VaultStatus::GraceHeir => {
                    c.push(v.status_changed_at + u64::from(d.grace_heir_days) * DAY)
                }
                VaultStatus::Unlockable => c.extend(v.access_until),
                VaultStatus::Expired => {
                    c.push(v.status_changed_at + u64::from(d.tombstone_after_days) * DAY)
                }
                _ => {}
            }
            c.extend(v.invites.values().map(|i| i.expires_at));
        }
        c.extend(self.model.sessions.values().map(|s| s.expires_at));
        c.extend(
            self.model
                .uploads
                .values()
                .map(|u| u.last_activity + d.upload_idle_secs * SEC),
        );
        let future: Vec<u64> = c.into_iter().filter(|t| *t > now).collect();
        if future.is_empty() {
            None
        } else {
            Some(self.rng.pick(&future))
        }
    }

    /// Steps that move one vault forward along its lifecycle.
    fn directed(&mut self) {
        let live = self.live_vaults();
        if live.is_empty() {
            return self.op_create();
        }
        // Vaults further along their lifecycle are picked more often.
        let weights: Vec<u64> = live
            .iter()
            .map(|id| match self.model.vaults[id].status {
                VaultStatus::Draft | VaultStatus::NeedSetup => 3,
                VaultStatus::Expired => 1,
                _ => 4,
            })
            .collect();
        let id = live[self.rng.weighted(&weights)];
        let status = self.model.vaults[&id].status;
        *self.stats.ops.entry("directed").or_default() += 1;
        match status {
            VaultStatus::Draft => self.pay_flow(id, PaymentPurpose::Create),
            VaultStatus::NeedSetup => {
                let missing = Model::setup_missing(&self.model.vaults[&id]);
                match missing.first().map(String::as_str) {
                    Some("unlock_rules") => self.op_update_rules(id),
                    Some("content") => self.upload_flow(id),
                    _ => self.invite_and_claim(id, MemberRole::Heir),
                }
            }
            VaultStatus::SetupComplete => match self.rng.range(0, 9) {
                0 => self.invite_and_claim(id, MemberRole::Witness),
                1 => self.upload_flow(id),
                _ => self.op_finalize(id),
            },
            VaultStatus::Active => match self.rng.range(0, 11) {
                0..=2 => self.op_unlock(id, true),
                3..=4 => self.op_unlock(id, false),
                5 => self.op_check_in(id),
                6 => self.upload_flow(id),
                7 => {
                    let plan = self.bigger_plan(id);
                    self.pay_flow(id, PaymentPurpose::Upgrade(plan))
                }
                8 => self.invite_and_claim(id, MemberRole::Heir),
                9 => self.op_download(id),
                _ => self.op_update_rules(id),
            },
            VaultStatus::GraceMaster => {
                if self.rng.chance(50) {
                    self.pay_flow(id, PaymentPurpose::Renew)
                } else {
                    self.op_check_in(id)
                }
            }
            VaultStatus::GraceHeir => {
                let trigger = self.rng.chance(50);
                self.op_unlock(id, trigger)
            }
            VaultStatus::Unlockable => self.op_download(id),
            VaultStatus::Expired | VaultStatus::Deleted => self.op_queries(),
        }
    }

    fn bigger_plan(&mut self, id: VaultId) -> PlanSelection {
        let p = self.model.vaults[&id].plan;
        let mut to = p;
        match self.rng.range(0, 3) {
            0 => {
                to.tier = Tier::ALL[(p.tier as usize + 1).min(4)];
            }
            1 => to.heir_slots = p.heir_slots + 1,
            2 => to.witness_slot = true,
            _ => {}
        }
        to
    }

    // ---- payments

    fn init_payment(
        &mut self,
        id: VaultId,
        who: Principal,
        purpose: PaymentPurpose,
    ) -> Option<PaymentSession> {
        self.quiet(1);
        self.note(format!("init_payment({id}, {purpose:?}) by {who}"));
        let (t, r) = self.upd::<_, PaymentSession>(who, "init_payment", (id, purpose));
        let c = self.model.init_payment(t, who, id, purpose, &r);
        self.check(c);
        r.ok()
    }

    /// A wallet of the owner pays into the session: a legacy transfer to the hex account
    /// identifier (NNS dapp, Plug, exchanges) or an ICRC-1 transfer to the textual ICRC-1
    /// account (Oisy), which must name the same subaccount.
    fn wallet_pays(&mut self, sid: u64, kind: Pay) {
        let s = self.model.sessions[&sid].clone();
        let amount = self.model.wallet_amount(sid, kind);
        let wallet = TestEnv::wallet_of(s.owner);
        let icrc1 = self.rng.chance(30);
        self.note(format!(
            "wallet pays {amount} e8s ({kind:?}) to session {sid} ({})",
            if icrc1 {
                "ICRC-1 account"
            } else {
                "account identifier"
            }
        ));
        self.env
            .host
            .fund(AccountId::new(&wallet, None), amount + LEDGER_FEE);
        if icrc1 {
            let text = s.icrc1.clone();
            let Some((owner, sub)) = icrc1_account(&text) else {
                self.fail(&format!(
                    "session {sid}: unreadable ICRC-1 account {text:?}"
                ));
            };
            if owner != self.env.canister || AccountId::new(&owner, Some(sub)) != s.account {
                self.fail(&format!(
                    "session {sid}: ICRC-1 account {text:?} is not the session's subaccount"
                ));
            }
            let now = self.env.now();
            let res = self.env.host.ledger_mut().icrc1_transfer(
                &wallet,
                &local_replica::ledger::Icrc1TransferArg {
                    from_subaccount: None,
                    to: local_replica::ledger::Account {
                        owner,
                        subaccount: Some(serde_bytes::ByteBuf::from(sub.to_vec())),
                    },
                    amount: candid::Nat::from(amount),
                    fee: None,
                    memo: None,
                    created_at_time: None,
                },
                now,
            );
            if !matches!(res, Ok(Ok(_))) {
                self.fail(&format!("ICRC-1 wallet transfer failed: {res:?}"));
            }
        } else if let Err(e) = self.env.host.ledger_transfer_as(&wallet, s.account, amount) {
            self.fail(&format!("wallet transfer failed: {e:?}"));
        }
        self.model.paid_into(s.account, amount);
    }

    fn verify(&mut self, sid: u64, who: Principal) {
        self.quiet(1);
        self.note(format!("verify_payment({sid}) by {who}"));
        let (t, r) = self.upd::<_, PaymentReceipt>(who, "verify_payment", (sid,));
        let c = self.model.verify_payment(t, who, sid, &r);
        self.check(c);
        self.check_balances();
    }

    /// init_payment, a wallet payment (mostly exact), usually verify (else the scheduler
    /// picks the payment up on its next tick).
    fn pay_flow(&mut self, id: VaultId, purpose: PaymentPurpose) {
        *self.stats.ops.entry("pay_flow").or_default() += 1;
        let owner = self.owner_of(id);
        let Some(s) = self.init_payment(id, owner, purpose) else {
            return;
        };
        if s.status != PaymentSessionStatus::Open {
            return;
        }
        let kind = match self.rng.weighted(&[70, 10, 8, 6, 6]) {
            0 => Pay::Exact,
            1 => Pay::Under,
            2 => Pay::OverRefund,
            3 => Pay::OverDust,
            _ => Pay::TopUp,
        };
        if self.rng.chance(10) {
            // Pay late: past the session's expiry.
            let target = self.env.now() + self.model.cfg.d.payment_session_secs * SEC + HOUR;
            self.advance_to(target);
        }
        self.wallet_pays(s.id, kind);
        if self.rng.chance(80) {
            self.verify(s.id, owner);
            if kind == Pay::Under && self.rng.chance(60) {
                self.wallet_pays(s.id, Pay::TopUp);
                self.verify(s.id, owner);
            }
        }
    }

    fn open_sessions(&self) -> Vec<u64> {
        self.model.sessions.keys().copied().collect()
    }

    fn op_payment_random(&mut self) {
        *self.stats.ops.entry("payment").or_default() += 1;
        let sessions = self.open_sessions();
        match self.rng.range(0, 5) {
            0 | 1 => {
                let Some(id) = self.any_vault() else { return };
                let purpose = match self.rng.range(0, 2) {
                    0 => PaymentPurpose::Create,
                    1 => PaymentPurpose::Renew,
                    _ => PaymentPurpose::Upgrade(self.random_plan()),
                };
                let who = self.caller_for(id);
                self.init_payment(id, who, purpose);
            }
            2 if !sessions.is_empty() => {
                let sid = self.rng.pick(&sessions);
                let kind = self
                    .rng
                    .pick(&[Pay::Exact, Pay::Under, Pay::OverRefund, Pay::TopUp]);
                self.wallet_pays(sid, kind);
            }
            3 if !sessions.is_empty() => {
                let sid = if self.rng.chance(95) {
                    self.rng.pick(&sessions)
                } else {
                    777_777
                };
                let owner = self
                    .model
                    .sessions
                    .get(&sid)
                    .map_or(self.stranger, |s| s.owner);
                let who = if self.rng.chance(90) {
                    owner
                } else {
                    self.stranger
                };
                self.verify(sid, who);
            }
            4 if !sessions.is_empty() => {
                let sid = self.rng.pick(&sessions);
                let who = if self.rng.chance(90) {
                    self.model.admin
                } else {
                    self.model.sessions[&sid].owner
                };
                self.quiet(1);
                self.note(format!("refund_session({sid}) by {who}"));
                let (t, r) = self.upd::<_, PaymentSession>(who, "refund_session", (sid,));
                let c = self.model.refund_session(t, who, sid, &r);
                self.check(c);
                self.check_balances();
            }
            _ => {
                let Some(id) = self.any_vault() else { return };
                self.pay_flow(id, PaymentPurpose::Create)
            }
        }
    }

    /// Two verifications submitted together (SPEC §6: serialized per vault).
    fn op_concurrent_verify(&mut self) {
        *self.stats.ops.entry("concurrent_verify").or_default() += 1;
        // Prefer a Draft with two paid Create sessions: the race SPEC §6 rules out.
        let drafts: Vec<VaultId> = self
            .model
            .vaults
            .values()
            .filter(|v| v.status == VaultStatus::Draft)
            .map(|v| v.id)
            .collect();
        let id = if !drafts.is_empty() && self.rng.chance(80) {
            self.rng.pick(&drafts)
        } else {
            match self.any_vault() {
                Some(id) if self.model.vaults.contains_key(&id) => id,
                _ => return,
            }
        };
        let owner = self.owner_of(id);
        let purpose = match self.model.vaults[&id].status {
            VaultStatus::Draft => PaymentPurpose::Create,
            VaultStatus::GraceMaster => PaymentPurpose::Renew,
            _ => PaymentPurpose::Upgrade(self.bigger_plan(id)),
        };
        let Some(s1) = self.init_payment(id, owner, purpose) else {
            return;
        };
        let s2 = if self.rng.chance(75) {
            // A second session of the same purpose: after the first one expired.
            let target = self.env.now() + self.model.cfg.d.payment_session_secs * SEC + SEC;
            self.advance_to(target);
            match self.init_payment(id, owner, purpose) {
                Some(s) => s,
                None => return,
            }
        } else {
            s1.clone()
        };
        for sid in [s1.id, s2.id] {
            if self.model.sessions[&sid].status == PaymentSessionStatus::Open
                && self.model.balance(&self.model.sessions[&sid].account) == 0
            {
                self.wallet_pays(sid, Pay::Exact);
            }
        }
        self.quiet(2);
        self.note(format!(
            "verify_payment({}) and verify_payment({}) submitted together by {owner}",
            s1.id, s2.id
        ));
        let m1 = self.env.host.submit_update(
            owner,
            "verify_payment",
            candid::encode_args((s1.id,)).expect("encode"),
        );
        let m2 = self.env.host.submit_update(
            owner,
            "verify_payment",
            candid::encode_args((s2.id,)).expect("encode"),
        );
        let decode = |this: &Runner,
                      r: Result<local_replica::Reply, local_replica::Reject>|
         -> R<PaymentReceipt> {
            match r {
                Ok(reply) => candid::decode_one(&reply.bytes).expect("decode receipt"),
                Err(reject) => this.fail(&format!("verify_payment rejected: {reject:?}")),
            }
        };
        let r1 = self.env.host.await_reply(m1);
        let r1 = decode(self, r1);
        let r2 = self.env.host.await_reply(m2);
        let r2 = decode(self, r2);
        self.stats.calls += 2;
        self.count_err(&r1);
        self.count_err(&r2);
        let t = self.env.now();
        self.note(format!(
            "  answers: {:?} / {:?}",
            r1.as_ref().map(|_| "Ok"),
            r2.as_ref().map(|_| "Ok")
        ));
        let c = self
            .model
            .verify_concurrently(t, owner, (s1.id, s2.id), (&r1, &r2));
        self.check(c);
        self.check_balances();
    }

    /// Ledger balances of every account the model knows.
    fn check_balances(&mut self) {
        let accounts: Vec<(AccountId, u64)> =
            self.model.ledger.iter().map(|(a, b)| (*a, *b)).collect();
        for (a, expected) in accounts {
            let got = self.env.host.ledger().balance(&a);
            if got != expected {
                let who = if a == self.model.treasury {
                    "the treasury".to_string()
                } else if let Some(s) = self.model.sessions.values().find(|s| s.account == a) {
                    format!("session {}'s subaccount", s.id)
                } else {
                    "an owner's default account".to_string()
                };
                self.fail(&format!(
                    "ledger balance of {who}: canister/ledger {got}, model {expected}"
                ));
            }
        }
    }

    // ---- vault settings

    fn op_update_rules(&mut self, id: VaultId) {
        let rules = self.random_rules(id);
        let args = UpdateVaultArgs {
            vault_id: id,
            name: None,
            unlock_rules: Some(rules),
            post_unlock_days: if self.rng.chance(40) {
                Some(self.rng.pick(&[1u16, 5, 20, 365]))
            } else {
                None
            },
            audit_retention_days: None,
        };
        let who = self.owner_of(id);
        self.update_vault(who, args);
    }

    fn update_vault(&mut self, who: Principal, args: UpdateVaultArgs) {
        *self.stats.ops.entry("update_vault").or_default() += 1;
        self.quiet(1);
        self.note(format!("update_vault by {who} {args:?}"));
        let (t, r) = self.upd::<_, VaultView>(who, "update_vault", (args.clone(),));
        let c = self.model.update_vault(t, who, &args, &r);
        self.check(c);
    }

    fn op_update_random(&mut self) {
        let Some(id) = self.any_vault() else { return };
        let who = self.caller_for(id);
        let name = if self.rng.chance(40) {
            Some(self.random_name())
        } else {
            None
        };
        let unlock_rules = if self.rng.chance(40) {
            Some(self.random_rules(id))
        } else {
            None
        };
        let post_unlock_days = if self.rng.chance(20) {
            Some(self.rng.pick(&[0u16, 1, 7, 365, 366]))
        } else {
            None
        };
        let audit_retention_days = if self.rng.chance(20) {
            Some(self.rng.pick(&[29u16, 30, 90, 3650, 3651]))
        } else {
            None
        };
        self.update_vault(
            who,
            UpdateVaultArgs {
                vault_id: id,
                name,
                unlock_rules,
                post_unlock_days,
                audit_retention_days,
            },
        );
    }

    fn op_check_in(&mut self, id: VaultId) {
        *self.stats.ops.entry("check_in").or_default() += 1;
        let who = self.caller_for(id);
        self.quiet(1);
        self.note(format!("check_in({id}) by {who}"));
        let (t, r) = self.upd::<_, VaultView>(who, "check_in", (id,));
        let c = self.model.check_in(t, who, id, &r);
        self.check(c);
    }

    fn op_finalize(&mut self, id: VaultId) {
        *self.stats.ops.entry("finalize_setup").or_default() += 1;
        let who = self.caller_for(id);
        self.quiet(1);
        self.note(format!("finalize_setup({id}) by {who}"));
        let (t, r) = self.upd::<_, VaultView>(who, "finalize_setup", (id,));
        let c = self.model.finalize_setup(t, who, id, &r);
        self.check(c);
    }

    fn op_delete(&mut self) {
        *self.stats.ops.entry("delete_vault").or_default() += 1;
        let Some(id) = self.any_vault() else { return };
        let who = self.caller_for(id);
        self.quiet(1);
        self.note(format!("delete_vault({id}) by {who}"));
        let (t, r) = self.upd::<_, VaultView>(who, "delete_vault", (id,));
        let c = self.model.delete_vault(t, who, id, &r);
        self.check(c);
    }

    // ---- members

    fn invite(&mut self, id: VaultId, who: Principal, role: MemberRole) -> Option<InviteCreated> {
        *self.stats.ops.entry("generate_invite").or_default() += 1;
        let args = GenerateInviteArgs {
            vault_id: id,
            role,
            name: match self.rng.range(0, 29) {
                0 => String::new(),
                1 => "n".repeat(65),
                _ => format!("person {}", self.rng.range(0, 99)),
            },
            relation: self.rng.pick(&[
                Relation::Spouse,
                Relation::Daughter,
                Relation::Son,
                Relation::Friend,
                Relation::Lawyer,
            ]),
            email_hint: if self.rng.chance(30) {
                Some(if self.rng.chance(5) {
                    String::new()
                } else {
                    "a***@example.org".into()
                })
            } else {
                None
            },
            can_trigger_unlock: self.rng.chance(60),
            count_as_approver: self.rng.chance(70),
        };
        self.quiet(1);
        self.note(format!("generate_invite by {who} {args:?}"));
        let (t, r) = self.upd::<_, InviteCreated>(who, "generate_invite", (args.clone(),));
        let c = self.model.generate_invite(t, who, &args, &r);
        self.check(c);
        r.ok()
    }

    fn claim(&mut self, token: &str, who: Principal) {
        *self.stats.ops.entry("claim_invite").or_default() += 1;
        self.quiet(1);
        self.note(format!(
            "claim_invite({}…) by {who}",
            &token[..token.len().min(12)]
        ));
        let (t, r) = self.upd::<_, MemberView>(who, "claim_invite", (token.to_string(),));
        let c = self.model.claim_invite(t, who, token, &r);
        self.check(c);
    }

    /// A person not yet in the vault (mostly), for claims.
    fn claimer_for(&mut self, id: VaultId) -> Principal {
        let v = &self.model.vaults[&id];
        let outside: Vec<Principal> = self
            .people
            .iter()
            .copied()
            .filter(|p| v.member_by_principal(p).is_none())
            .collect();
        if outside.is_empty() || self.rng.chance(8) {
            let mut pool = self.people.clone();
            pool.push(v.owner);
            return self.rng.pick(&pool);
        }
        self.rng.pick(&outside)
    }

    fn invite_and_claim(&mut self, id: VaultId, role: MemberRole) {
        let owner = self.owner_of(id);
        let Some(inv) = self.invite(id, owner, role) else {
            return;
        };
        if self.rng.chance(85) {
            if self.rng.chance(10) {
                let target = self.env.now() + self.model.cfg.d.invite_secs * SEC + SEC;
                self.advance_to(target);
            }
            let who = self.claimer_for(id);
            self.claim(&inv.token, who);
        }
    }

    fn op_members_random(&mut self) {
        let Some(id) = self.any_vault() else { return };
        let Some(v) = self.model.vaults.get(&id) else {
            return;
        };
        let invites: Vec<(u64, String)> = v
            .invites
            .values()
            .map(|i| (i.id, i.token.clone()))
            .collect();
        let members = self.members_of(id);
        let who = self.caller_for(id);
        match self.rng.range(0, 5) {
            0 => {
                let role = if self.rng.chance(70) {
                    MemberRole::Heir
                } else {
                    MemberRole::Witness
                };
                self.invite(id, who, role);
            }
            1 if !invites.is_empty() => {
                let (_, token) = self.rng.pick(&invites);
                let claimer = if self.rng.chance(20) {
                    self.rng.pick(&self.people.clone())
                } else {
                    self.claimer_for(id)
                };
                let token = if self.rng.chance(5) {
                    format!("lvi1_{}", "0".repeat(64))
                } else {
                    token
                };
                self.claim(&token, claimer);
            }
            2 if !invites.is_empty() => {
                *self.stats.ops.entry("revoke_invite").or_default() += 1;
                let (iid, _) = self.rng.pick(&invites);
                self.quiet(1);
                self.note(format!("revoke_invite({id}, {iid}) by {who}"));
                let (t, r) = self.upd::<_, InviteView>(who, "revoke_invite", (id, iid));
                let c = self.model.revoke_invite(t, who, id, iid, &r);
                self.check(c);
            }
            3 if !invites.is_empty() => {
                *self.stats.ops.entry("regenerate_invite").or_default() += 1;
                let (iid, _) = self.rng.pick(&invites);
                self.quiet(1);
                self.note(format!("regenerate_invite({id}, {iid}) by {who}"));
                let (t, r) = self.upd::<_, InviteCreated>(who, "regenerate_invite", (id, iid));
                let c = self.model.regenerate_invite(t, who, id, iid, &r);
                self.check(c);
            }
            4 if !members.is_empty() => {
                *self.stats.ops.entry("remove_member").or_default() += 1;
                let (mid, _, _) = self.rng.pick(&members);
                self.quiet(1);
                self.note(format!("remove_member({id}, {mid}) by {who}"));
                let (t, r) = self.upd::<_, VaultView>(who, "remove_member", (id, mid));
                let c = self.model.remove_member(t, who, id, mid, &r);
                self.check(c);
            }
            _ => {
                let role = if self.rng.chance(70) {
                    MemberRole::Heir
                } else {
                    MemberRole::Witness
                };
                self.invite_and_claim(id, role)
            }
        }
    }

    // ---- unlock

    fn op_unlock(&mut self, id: VaultId, trigger: bool) {
        let members = self.members_of(id);
        let who = if members.is_empty() || self.rng.chance(8) {
            self.caller_for(id)
        } else {
            self.rng.pick(&members).1
        };
        self.unlock_call(id, who, trigger);
    }

    fn unlock_call(&mut self, id: VaultId, who: Principal, trigger: bool) {
        let method = if trigger {
            "trigger_unlock"
        } else {
            "approve_unlock"
        };
        *self.stats.ops.entry(method).or_default() += 1;
        self.quiet(1);
        self.note(format!("{method}({id}) by {who}"));
        let (t, r) = self.upd::<_, UnlockStatus>(who, method, (id,));
        let c = if trigger {
            self.model.trigger_unlock(t, who, id, &r)
        } else {
            self.model.approve_unlock(t, who, id, &r)
        };
        self.check(c);
    }

    fn op_unlock_random(&mut self) {
        let Some(id) = self.any_vault() else { return };
        let trigger = self.rng.chance(50);
        let members = self.members_of(id);
        let who = if !members.is_empty() && self.rng.chance(80) {
            self.rng.pick(&members).1
        } else {
            self.caller_for(id)
        };
        self.unlock_call(id, who, trigger);
    }

    // ---- content

    fn payload(&mut self) -> Vec<u8> {
        let len = match self.rng.range(0, 9) {
            0 => self.rng.range(1, 10),
            1..=5 => self.rng.range(10, 1024),
            6..=8 => self.rng.range(1025, 2500),
            _ => self.rng.range(2500, 5000),
        };
        (0..len).map(|_| self.rng.next_u64() as u8).collect()
    }

    /// update_item_meta: new metadata and recipients for an item (sometimes another caller,
    /// an unknown item, metadata too long, recipients that are not heirs or repeat).
    fn update_item_meta(&mut self, id: VaultId) {
        *self.stats.ops.entry("update_item_meta").or_default() += 1;
        let who = self.caller_for(id);
        let heirs: Vec<u32> = self
            .members_of(id)
            .into_iter()
            .filter(|(_, _, r)| *r == MemberRole::Heir)
            .map(|(m, _, _)| m)
            .collect();
        let recipients = if !heirs.is_empty() && self.rng.chance(50) {
            let mut r = vec![self.rng.pick(&heirs)];
            if self.rng.chance(10) {
                r.push(r[0]);
            }
            Some(r)
        } else if self.rng.chance(5) {
            Some(if self.rng.chance(50) {
                vec![4242]
            } else {
                Vec::new()
            })
        } else {
            None
        };
        let items: Vec<u64> = self
            .model
            .vaults
            .get(&id)
            .map_or(Vec::new(), |v| v.items.keys().copied().collect());
        let item = if items.is_empty() || self.rng.chance(5) {
            123_456
        } else {
            self.rng.pick(&items)
        };
        let len = if self.rng.chance(5) {
            4097
        } else {
            self.rng.range(0, 200) as usize
        };
        let meta: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
        let args = UpdateItemMetaArgs {
            vault_id: id,
            item_id: item,
            encrypted_meta: serde_bytes::ByteBuf::from(meta),
            recipients,
        };
        self.quiet(1);
        self.note(format!(
            "update_item_meta({id}, {item}) by {who}: {} meta bytes, recipients {:?}",
            len, args.recipients
        ));
        let (t, r) = self.upd::<_, ItemView>(who, "update_item_meta", (args.clone(),));
        let c = self.model.update_item_meta(t, who, &args, &r);
        self.check(c);
    }

    /// begin_upload, every chunk, finish_upload; with occasional faults (a wrong checksum,
    /// a chunk out of order, a repeated chunk, an upload left open to be collected).
    fn upload_flow(&mut self, id: VaultId) {
        *self.stats.ops.entry("upload").or_default() += 1;
        let who = self.caller_for(id);
        let payload = self.payload();
        let heirs: Vec<u32> = self
            .members_of(id)
            .into_iter()
            .filter(|(_, _, r)| *r == MemberRole::Heir)
            .map(|(m, _, _)| m)
            .collect();
        let recipients = if !heirs.is_empty() && self.rng.chance(40) {
            let mut r = vec![self.rng.pick(&heirs)];
            if self.rng.chance(5) {
                r.push(r[0]);
            }
            Some(r)
        } else if self.rng.chance(3) {
            Some(vec![4242])
        } else {
            None
        };
        let items: Vec<u64> = self
            .model
            .vaults
            .get(&id)
            .map_or(Vec::new(), |v| v.items.keys().copied().collect());
        let replaces = if !items.is_empty() && self.rng.chance(25) {
            Some(self.rng.pick(&items))
        } else {
            None
        };
        let mut declared = sha(&payload);
        if self.rng.chance(6) {
            declared[0] ^= 1;
        }
        let args = BeginUploadArgs {
            vault_id: id,
            kind: self
                .rng
                .pick(&[ItemKind::File, ItemKind::Letter, ItemKind::Password]),
            size: if self.rng.chance(3) {
                0
            } else {
                payload.len() as u64
            },
            sha256: serde_bytes::ByteBuf::from(declared),
            encrypted_meta: serde_bytes::ByteBuf::from(vec![7u8; self.rng.range(0, 64) as usize]),
            recipients,
            replaces,
            idempotency_key: if self.rng.chance(15) {
                Some(format!("up-{}", self.rng.range(0, 2)))
            } else {
                None
            },
        };
        self.quiet(1);
        self.note(format!(
            "begin_upload by {who} vault {id} size {} kind {:?} replaces {:?} recipients {:?} idem {:?}",
            args.size, args.kind, args.replaces, args.recipients, args.idempotency_key
        ));
        let (t, r) = self.upd::<_, UploadView>(who, "begin_upload", (args.clone(),));
        let c = self.model.begin_upload(t, who, &args, &r);
        self.check(c);
        let Ok(up) = r else { return };
        if up.received_bytes > 0 || !self.model.uploads.contains_key(&up.upload_id) {
            return;
        }
        let chunks: Vec<Vec<u8>> = payload.chunks(1024).map(|c| c.to_vec()).collect();
        let leave_open = self.rng.chance(8);
        for (i, chunk) in chunks.iter().enumerate() {
            if leave_open && i + 1 == chunks.len() {
                self.note(format!("upload {} left open", up.upload_id));
                return;
            }
            if self.rng.chance(4) {
                let wrong = (i as u32) + 1;
                self.chunk(who, up.upload_id, wrong, chunk.clone());
            }
            self.chunk(who, up.upload_id, i as u32, chunk.clone());
            if self.rng.chance(4) {
                self.chunk(who, up.upload_id, i as u32, chunk.clone());
            }
        }
        self.finish(who, up.upload_id);
        if self.model.uploads.contains_key(&up.upload_id) && self.rng.chance(60) {
            self.abort(who, up.upload_id);
        }
    }

    fn chunk(&mut self, who: Principal, uid: u64, index: u32, bytes: Vec<u8>) {
        self.quiet(1);
        self.note(format!(
            "upload_chunk({uid}, {index}, {} bytes)",
            bytes.len()
        ));
        let (t, r) = self.upd::<_, UploadView>(
            who,
            "upload_chunk",
            (uid, index, serde_bytes::ByteBuf::from(bytes.clone())),
        );
        let c = self.model.upload_chunk(t, who, uid, index, &bytes, &r);
        self.check(c);
    }

    fn finish(&mut self, who: Principal, uid: u64) {
        self.quiet(1);
        self.note(format!("finish_upload({uid}) by {who}"));
        let (t, r) = self.upd::<_, ItemView>(who, "finish_upload", (uid,));
        let c = self.model.finish_upload(t, who, uid, &r);
        self.check(c);
    }

    fn abort(&mut self, who: Principal, uid: u64) {
        self.quiet(1);
        self.note(format!("abort_upload({uid}) by {who}"));
        let (t, r) = self.upd::<_, ()>(who, "abort_upload", (uid,));
        let c = self.model.abort_upload(t, who, uid, &r);
        self.check(c);
    }

    fn op_content_random(&mut self) {
        *self.stats.ops.entry("content").or_default() += 1;
        let uploads: Vec<(u64, Principal, usize)> = self
            .model
            .uploads
            .values()
            .map(|u| (u.id, u.owner, u.received.len()))
            .collect();
        match self.rng.range(0, 5) {
            0 | 1 => {
                let Some(id) = self.any_vault() else { return };
                self.upload_flow(id)
            }
            4 => {
                let Some(id) = self.any_vault() else { return };
                self.update_item_meta(id)
            }
            2 if !uploads.is_empty() => {
                let (uid, owner, _) = self.rng.pick(&uploads);
                let who = if self.rng.chance(90) {
                    owner
                } else {
                    self.stranger
                };
                if self.rng.chance(50) {
                    self.abort(who, uid);
                } else {
                    // Continue: the next chunk (its bytes are the model's remaining payload
                    // is unknown, so send filler of the right length) then finish.
                    let u = self.model.uploads[&uid].clone();
                    let left = u.size as usize - u.received.len();
                    let n = left.min(u.chunk_bytes as usize).max(1);
                    let bytes: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                    self.chunk(who, uid, u.next_index, bytes);
                    self.finish(who, uid);
                }
            }
            _ => {
                let Some(id) = self.any_vault() else { return };
                let items: Vec<u64> = self
                    .model
                    .vaults
                    .get(&id)
                    .map_or(Vec::new(), |v| v.items.keys().copied().collect());
                let item = if items.is_empty() || self.rng.chance(5) {
                    123_456
                } else {
                    self.rng.pick(&items)
                };
                let who = self.caller_for(id);
                *self.stats.ops.entry("delete_item").or_default() += 1;
                self.quiet(1);
                self.note(format!("delete_item({id}, {item}) by {who}"));
                let (t, r) = self.upd::<_, ()>(who, "delete_item", (id, item));
                let c = self.model.delete_item(t, who, id, item, &r);
                self.check(c);
            }
        }
    }

    // ---- downloads

    fn op_download(&mut self, id: VaultId) {
        let Some(v) = self.model.vaults.get(&id) else {
            return;
        };
        let items: Vec<u64> = v.items.keys().copied().collect();
        let mut pool: Vec<Principal> = v.members.values().map(|m| m.principal).collect();
        pool.push(v.owner);
        if self.rng.chance(10) {
            pool.push(self.stranger);
        }
        let who = self.rng.pick(&pool);
        let item = if items.is_empty() || self.rng.chance(5) {
            424_242
        } else {
            self.rng.pick(&items)
        };
        self.download(id, item, who);
    }

    fn download(&mut self, id: VaultId, item: u64, who: Principal) {
        *self.stats.ops.entry("download").or_default() += 1;
        self.quiet(4);
        self.note(format!("request_download({id}, {item}) by {who}"));
        let (t, r) = self.upd::<_, DownloadTicket>(who, "request_download", (id, item));
        let c = self.model.request_download(t, who, id, item, &r);
        self.check(c);
        if let Ok(ticket) = r {
            self.read_ticket(ticket.ticket_id, who, ticket.chunk_count + 1);
        }
    }

    /// Reads chunks `0..n` of a ticket (the last index past the end) and compares each.
    fn read_ticket(&mut self, tid: u64, who: Principal, n: u32) {
        for index in 0..n {
            self.quiet(1);
            let (t, r) =
                self.qry::<_, R<serde_bytes::ByteBuf>>(who, "get_download_chunk", (tid, index));
            let expected = self.model.download_chunk(t, who, tid, index);
            let ok = match (&r, &expected) {
                (Ok(a), Ok(b)) => a.as_slice() == b.as_slice(),
                (Err(a), Err(b)) => same_error(a, b),
                _ => false,
            };
            if !ok {
                self.fail(&format!(
                    "get_download_chunk({tid}, {index}) by {who}: canister {:?}, model {:?}",
                    r.map(|b| b.len()),
                    expected.map(|b| b.len())
                ));
            }
        }
    }

    fn op_download_random(&mut self) {
        if self.rng.chance(30) && !self.model.tickets.is_empty() {
            // An old ticket, maybe by someone else.
            let tickets: Vec<(u64, Principal)> = self
                .model
                .tickets
                .values()
                .map(|t| (t.id, t.holder))
                .collect();
            let (tid, holder) = self.rng.pick(&tickets);
            let who = if self.rng.chance(85) {
                holder
            } else {
                self.stranger
            };
            self.note(format!("read old ticket {tid} as {who}"));
            self.read_ticket(tid, who, 2);
            return;
        }
        let Some(id) = self.any_vault() else { return };
        self.op_download(id);
    }

    // ---- admin, bursts

    fn set_paused(&mut self, paused: bool) {
        *self.stats.ops.entry("set_paused").or_default() += 1;
        let admin = self.model.admin;
        self.quiet(1);
        self.note(format!("set_paused({paused})"));
        let (t, r) = self.upd::<_, ()>(admin, "set_paused", (paused,));
        let c = self.model.set_paused(t, admin, paused, &r);
        self.check(c);
        if paused {
            self.last_paused = Some(t);
        } else if self.paused_since.is_some() {
            self.last_paused = Some(t);
            self.paused_since = None;
        }
    }

    fn op_pause(&mut self) {
        if self.model.paused {
            self.set_paused(false);
        } else if self.rng.chance(50) {
            self.set_paused(true);
        } else {
            // A non-admin tries.
            let who = self.rng.pick(&self.owners.clone());
            self.quiet(1);
            self.note(format!("set_paused(true) by {who}"));
            let (t, r) = self.upd::<_, ()>(who, "set_paused", (true,));
            let c = self.model.set_paused(t, who, true, &r);
            self.check(c);
        }
    }

    /// A chatty client: many check-ins in a row (the rate limit answers, SPEC §13).
    fn op_burst(&mut self) {
        *self.stats.ops.entry("burst").or_default() += 1;
        let Some(id) = self.any_vault() else { return };
        let who = self.caller_for(id);
        let n = self.rng.range(5, 30);
        self.quiet(n);
        self.note(format!("burst: {n} check_in({id}) by {who}"));
        for _ in 0..n {
            let (t, r) = self.upd::<_, VaultView>(who, "check_in", (id,));
            let c = self.model.check_in(t, who, id, &r);
            self.check(c);
        }
    }

    /// An admin (or someone else) changes the prices: all price components scaled.
    fn op_set_pricing(&mut self) {
        *self.stats.ops.entry("set_pricing").or_default() += 1;
        let pct = self.rng.pick(&[50u64, 100, 150, 200]);
        let mut p = run_pricing();
        for t in p.tiers.iter_mut() {
            t.storage_price_e8s = t.storage_price_e8s * pct / 100;
        }
        p.heir_slot_fee_e8s = p.heir_slot_fee_e8s * pct / 100;
        p.witness_fee_e8s = p.witness_fee_e8s * pct / 100;
        let who = if self.rng.chance(90) {
            self.model.admin
        } else {
            self.rng.pick(&self.owners.clone())
        };
        self.quiet(1);
        self.note(format!("set_pricing({pct}% of the SPEC prices) by {who}"));
        let (t, r) = self.upd::<_, ()>(who, "set_pricing", (p.clone(),));
        let c = self.model.set_pricing(t, who, &p, &r);
        self.check(c);
    }

    fn op_maintenance(&mut self) {
        *self.stats.ops.entry("run_maintenance").or_default() += 1;
        let admin = self.model.admin;
        self.quiet(2);
        self.note("run_maintenance".into());
        let (t, r) = self.upd::<_, TickReport>(admin, "run_maintenance", ());
        match &r {
            Ok(rep) if rep.skipped.is_none() => {}
            other => self.fail(&format!("run_maintenance: {other:?}")),
        }
        if self.env.now() != t {
            self.fail("run_maintenance moved the clock");
        }
        self.model.tick(t, true);
        // The manual tick re-polls sessions one interval after it, like the periodic one.
        self.check_all_views();
    }

    // ------------------------------------------------------------------ queries

    fn op_queries(&mut self) {
        *self.stats.ops.entry("queries").or_default() += 1;
        let Some(id) = self.any_vault() else { return };
        self.quiet(40);
        match self.rng.range(0, 3) {
            0 => self.check_vault(id),
            1 => self.check_audit(id),
            2 => self.check_my_vaults(),
            _ => self.check_sessions(),
        }
    }

    /// Every vault's view for its owner (cheap; after time advances).
    fn check_all_views(&mut self) {
        // Tombstones cannot change: the full checks compare them.
        let ids: Vec<VaultId> = self
            .model
            .vaults
            .values()
            .filter(|v| v.status != VaultStatus::Deleted)
            .map(|v| v.id)
            .collect();
        self.quiet(ids.len() as u64 + 1);
        for id in ids {
            let owner = self.owner_of(id);
            let (_, r) = self.qry::<_, R<VaultView>>(owner, "get_vault", (id,));
            let v = &self.model.vaults[&id];
            let c = match &r {
                Ok(got) => {
                    self.model
                        .check_vault_view("get_vault (owner)", got, v, VaultRole::Owner)
                }
                Err(e) => Err(format!("get_vault({id}) by its owner: {e:?}")),
            };
            self.check(c);
        }
    }

    /// Everything about one vault, as every party sees it.
    fn check_vault(&mut self, id: VaultId) {
        let Some(v) = self.model.vaults.get(&id).cloned() else {
            self.quiet(1);
            let (_, r) = self.qry::<_, R<VaultView>>(self.stranger, "get_vault", (id,));
            return self.check(expect_err(
                "get_vault (unknown id)",
                &r,
                &VaultError::NotFound,
            ));
        };
        self.quiet(60);
        let mut viewers: Vec<(Principal, Option<VaultRole>)> =
            vec![(v.owner, Some(VaultRole::Owner))];
        for m in v.members.values() {
            viewers.push((
                m.principal,
                Some(match m.role {
                    MemberRole::Heir => VaultRole::Heir,
                    MemberRole::Witness => VaultRole::Witness,
                }),
            ));
        }
        viewers.push((self.stranger, None));
        let lists_for = if v.members.is_empty() {
            None
        } else {
            let ms: Vec<Principal> = v.members.values().map(|m| m.principal).collect();
            Some(self.check_rng.pick(&ms))
        };
        for (who, role) in viewers {
            let (now, r) = self.qry::<_, R<VaultView>>(who, "get_vault", (id,));
            let c = match role {
                Some(role) => match &r {
                    Ok(got) => self.model.check_vault_view("get_vault", got, &v, role),
                    Err(e) => Err(format!("get_vault({id}) by {role:?}: {e:?}")),
                },
                None => expect_err("get_vault (stranger)", &r, &VaultError::NotAuthorized),
            };
            self.check(c);
            if role.is_none() {
                continue;
            }
            let (_, r) = self.qry::<_, R<UnlockStatus>>(who, "get_unlock_status", (id,));
            let c = match &r {
                Ok(got) => self.model.check_unlock_status(
                    "get_unlock_status",
                    got,
                    &v,
                    &who,
                    now + HOST_TICK,
                ),
                Err(e) => Err(format!("get_unlock_status({id}) by {who}: {e:?}")),
            };
            self.check(c);
            // Lists: the owner, one member, and heirs of an unlocked vault (their items).
            let heir_reads = role == Some(VaultRole::Heir) && v.status == VaultStatus::Unlockable;
            if role != Some(VaultRole::Owner) && lists_for != Some(who) && !heir_reads {
                continue;
            }
            let (_, r) = self.qry::<_, R<Page<MemberView>>>(
                who,
                "list_members",
                (
                    id,
                    PageArgs {
                        start_after: None,
                        limit: Some(100),
                    },
                ),
            );
            let full = role == Some(VaultRole::Owner);
            let expected: Vec<MemberView> = v
                .members
                .values()
                .map(|m| Model::member_view(&v, m, full))
                .collect();
            match &r {
                Ok(p) if p.items == expected && p.next_cursor.is_none() => {}
                other => self.fail(&format!(
                    "list_members({id}) by {role:?}:\n  canister {other:?}\n  model    {expected:?}"
                )),
            }
            let (_, r) = self.qry::<_, R<Page<ItemView>>>(
                who,
                "list_items",
                (
                    id,
                    PageArgs {
                        start_after: None,
                        limit: Some(100),
                    },
                ),
            );
            let expected = self.model.readable_items(&v, &who);
            let c = match (&r, &expected) {
                (Ok(p), Ok(e)) if p.items == *e && p.next_cursor.is_none() => Ok(()),
                (Err(a), Err(b)) if same_error(a, b) => Ok(()),
                _ => Err(format!(
                    "list_items({id}) by {who}:\n  canister {r:?}\n  model    {expected:?}"
                )),
            };
            self.check(c);
        }
        // Invites (owner) and what their tokens say to anyone.
        let (now, r) = self.qry::<_, R<Page<InviteView>>>(
            v.owner,
            "list_invites",
            (
                id,
                PageArgs {
                    start_after: None,
                    limit: Some(100),
                },
            ),
        );
        let expected: Vec<InviteView> = v
            .invites
            .values()
            .map(|i| Model::invite_view(i, now))
            .collect();
        match &r {
            Ok(p) if p.items == expected && p.next_cursor.is_none() => {}
            other => self.fail(&format!(
                "list_invites({id}):\n  canister {other:?}\n  model    {expected:?}"
            )),
        }
        let tokens: Vec<(MInvite, String)> = v
            .invites
            .values()
            .map(|i| (i.clone(), i.token.clone()))
            .collect();
        for (inv, token) in tokens.into_iter().rev().take(3) {
            let (now, r) =
                self.qry::<_, R<InviteInfo>>(Principal::anonymous(), "get_invite_info", (token,));
            let expected = Model::invite_info(&v, &inv, now);
            match &r {
                Ok(info) if *info == expected => {}
                other => self.fail(&format!(
                    "get_invite_info:\n  canister {other:?}\n  model    {expected:?}"
                )),
            }
        }
        if v.status == VaultStatus::Deleted {
            // A tombstone's tokens are gone.
            for token in v.dead_tokens.iter().rev().take(3).cloned() {
                let (_, r) = self.qry::<_, R<InviteInfo>>(
                    Principal::anonymous(),
                    "get_invite_info",
                    (token,),
                );
                self.check(expect_err(
                    "get_invite_info (tombstone)",
                    &r,
                    &VaultError::TokenInvalid,
                ));
            }
        }
    }

    fn check_my_vaults(&mut self) {
        let mut who_all = self.owners.clone();
        who_all.extend(self.people.clone());
        who_all.push(self.stranger);
        self.quiet(who_all.len() as u64 + 1);
        for who in who_all {
            let (_, r) = self.qry::<_, R<Page<VaultSummary>>>(
                who,
                "list_my_vaults",
                (PageArgs {
                    start_after: None,
                    limit: Some(100),
                },),
            );
            let expected: Vec<VaultSummary> = self
                .model
                .vaults
                .values()
                .filter(|v| v.status != VaultStatus::Deleted)
                .filter_map(|v| {
                    let role = if v.owner == who {
                        VaultRole::Owner
                    } else {
                        match v.member_by_principal(&who)?.role {
                            MemberRole::Heir => VaultRole::Heir,
                            MemberRole::Witness => VaultRole::Witness,
                        }
                    };
                    Some(VaultSummary {
                        id: v.id,
                        name: v.name.clone(),
                        status: v.status,
                        role,
                        owner: v.owner,
                        expires_at: v.expires_at,
                    })
                })
                .collect();
            match &r {
                Ok(p) if p.items == expected && p.next_cursor.is_none() => {}
                other => self.fail(&format!(
                    "list_my_vaults of {who}:\n  canister {other:?}\n  model    {expected:?}"
                )),
            }
        }
    }

    fn check_sessions(&mut self) {
        let sessions: Vec<MSession> = self.model.sessions.values().cloned().collect();
        self.quiet(sessions.len() as u64 + self.model.vaults.len() as u64 + 4);
        for s in &sessions {
            let (_, r) = self.qry::<_, R<PaymentSession>>(s.owner, "get_payment_session", (s.id,));
            let c = match &r {
                Ok(got) => self
                    .model
                    .session_view_matches("get_payment_session", got, s),
                Err(e) => Err(format!("get_payment_session({}): {e:?}", s.id)),
            };
            self.check(c);
        }
        let ids: Vec<(VaultId, Principal)> = self
            .model
            .vaults
            .values()
            .map(|v| (v.id, v.owner))
            .collect();
        for (id, owner) in ids {
            let (_, r) = self.qry::<_, R<Page<PaymentSession>>>(
                owner,
                "list_payment_sessions",
                (
                    id,
                    PageArgs {
                        start_after: None,
                        limit: Some(100),
                    },
                ),
            );
            let expected: Vec<u64> = sessions
                .iter()
                .filter(|s| s.vault == id)
                .map(|s| s.id)
                .collect();
            match &r {
                Ok(p) if p.items.iter().map(|s| s.id).collect::<Vec<_>>() == expected => {}
                other => self.fail(&format!(
                    "list_payment_sessions({id}): canister {other:?}, model ids {expected:?}"
                )),
            }
        }
        let admin = self.model.admin;
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let (_, r) = self.qry::<_, R<Page<BillingEntry>>>(
                admin,
                "list_billing",
                (PageArgs {
                    start_after: cursor,
                    limit: Some(100),
                },),
            );
            match r {
                Ok(p) => {
                    all.extend(p.items);
                    match p.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                Err(e) => self.fail(&format!("list_billing: {e:?}")),
            }
        }
        if all.len() != self.model.billing.len() {
            self.fail(&format!(
                "list_billing: canister {} entries, model {}",
                all.len(),
                self.model.billing.len()
            ));
        }
        for (a, b) in all.iter().zip(self.model.billing.clone()) {
            self.check(Model::billing_matches(a, &b));
        }
        self.check_balances();
    }

    fn check_metrics(&mut self) {
        let admin = self.model.admin;
        self.quiet(3 + self.model.vaults.len() as u64 / 100);
        let (_, r) = self.qry::<_, R<Metrics>>(admin, "get_metrics", ());
        let m = match r {
            Ok(m) => m,
            Err(e) => self.fail(&format!("get_metrics: {e:?}")),
        };
        let mut by_status = BTreeMap::new();
        for v in self.model.vaults.values() {
            *by_status.entry(v.status).or_insert(0u64) += 1;
        }
        let got: BTreeMap<VaultStatus, u64> = m
            .vaults_by_status
            .iter()
            .filter(|c| c.count > 0)
            .map(|c| (c.status, c.count))
            .collect();
        let committed: u64 = self.model.vaults.values().map(|v| v.committed()).sum();
        let reserved: u64 = self.model.uploads.values().map(|u| u.size).sum();
        let open = self
            .model
            .sessions
            .values()
            .filter(|s| s.status == PaymentSessionStatus::Open)
            .count() as u64;
        let treasury: u64 = self.model.billing.iter().map(|b| b.treasury).sum();
        let refunded: u64 = self.model.billing.iter().map(|b| b.refund).sum::<u64>()
            + self
                .model
                .sessions
                .values()
                .map(|s| s.refunded)
                .sum::<u64>();
        let got_tuple = (
            m.vaults_total,
            got,
            m.storage_committed_bytes,
            m.storage_reserved_bytes,
            m.open_payment_sessions,
            m.billing_entries,
            m.billing_treasury_e8s,
            m.billing_refunded_e8s,
            m.invites_issued_total,
            m.invites_claimed_total,
        );
        let expected = (
            // Erased drafts still count: ids come from a counter (docs/decisions.md).
            (self.model.vaults.len() + self.model.erased.len()) as u64,
            by_status,
            committed,
            reserved,
            open,
            self.model.billing.len() as u64,
            treasury,
            refunded,
            self.model.invites_issued,
            self.model.invites_claimed,
        );
        // list_vaults (admins): every vault, tombstones included (erased drafts not), never
        // its name.
        let mut listed = Vec::new();
        let mut cursor = None;
        loop {
            let (_, r) = self.qry::<_, R<Page<AdminVaultSummary>>>(
                admin,
                "list_vaults",
                (PageArgs {
                    start_after: cursor,
                    limit: Some(100),
                },),
            );
            match r {
                Ok(p) => {
                    listed.extend(p.items);
                    match p.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                Err(e) => self.fail(&format!("list_vaults: {e:?}")),
            }
        }
        let expected_list: Vec<AdminVaultSummary> = self
            .model
            .vaults
            .values()
            .map(|v| {
                let view = self.model.vault_view(v, VaultRole::Owner);
                AdminVaultSummary {
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
                    storage_limit_bytes: view.storage_limit_bytes,
                    storage_used_bytes: view.storage_used_bytes,
                    item_count: view.item_count,
                    heir_count: view.heir_count,
                }
            })
            .collect();
        if listed != expected_list {
            self.fail(&format!(
                "list_vaults:\n  canister {listed:?}\n  model    {expected_list:?}"
            ));
        }
        if got_tuple != expected {
            self.fail(&format!(
                "get_metrics (total, by status, committed, reserved, open sessions, billing entries, treasury, refunded, invites issued, claimed):\n  canister {got_tuple:?}\n  model    {expected:?}"
            ));
        }
    }

    // ------------------------------------------------------------------ audit

    /// The audit log of `id` as `who` sees it, after sequence `after` (all of it for `None`).
    fn fetch_audit(
        &mut self,
        who: Principal,
        id: VaultId,
        after: Option<u64>,
    ) -> R<Vec<AuditEventView>> {
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let (_, r) = self.qry::<_, R<Page<AuditEventView>>>(
                who,
                "get_audit_log",
                (
                    id,
                    PageArgs {
                        start_after: cursor,
                        limit: Some(100),
                    },
                ),
            );
            let page = r?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// The audit log of a vault: the chain recomputed here, the head, events unchanged since
    /// they were first seen, the model's events in order, and — on a full read (the first
    /// one, and one in five) — the whole log again, a member's view and the compaction and
    /// retention bounds. Between full reads only the events after the last one seen are
    /// fetched: the head hash then commits to every earlier event.
    fn check_audit(&mut self, id: VaultId) {
        self.check_audit_with(id, true)
    }

    /// [`Runner::check_audit`]; `may_full = false` only reads the events after the last one
    /// seen (unless none was seen yet).
    fn check_audit_with(&mut self, id: VaultId, may_full: bool) {
        let Some(v) = self.model.vaults.get(&id).cloned() else {
            return;
        };
        let last_seen = self
            .audit
            .get(&id)
            .and_then(|t| t.seen.keys().next_back().copied());
        let full = last_seen.is_none() || (may_full && self.check_rng.chance(20));
        let expected_new = if full {
            v.events.len() as u64
        } else {
            (v.events.len() as u64).saturating_sub(last_seen.unwrap_or(0))
        };
        self.quiet(expected_new / 100 + 20 + 3 * v.members.len() as u64);
        let after = if full { None } else { last_seen };
        let log = match self.fetch_audit(v.owner, id, after) {
            Ok(l) => l,
            Err(e) => self.fail(&format!("get_audit_log({id}) by its owner: {e:?}")),
        };
        let (now, r) = self.qry::<_, R<AuditHead>>(v.owner, "get_audit_head", (id,));
        let head = match r {
            Ok(h) => h,
            Err(e) => self.fail(&format!("get_audit_head({id}): {e:?}")),
        };
        self.audit_read_at.insert(id, now);
        if full && log.is_empty() {
            self.fail(&format!("vault {id}: empty audit log"));
        }
        // Consecutive sequence numbers ending at the head.
        if let Some(first) = log.first().map(|e| e.seq) {
            for (i, e) in log.iter().enumerate() {
                if e.seq != first + i as u64 {
                    self.fail(&format!(
                        "vault {id}: audit seq {} at position {i} (first {first})",
                        e.seq
                    ));
                }
            }
        }
        let end = log.last().map(|e| e.seq + 1).or(last_seen.map(|s| s + 1));
        if end != Some(head.next_seq) {
            self.fail(&format!(
                "vault {id}: the log ends before seq {end:?}, the head says next_seq {}",
                head.next_seq
            ));
        }
        // The chain, recomputed independently, and events unchanged since first seen.
        let track = self.audit.entry(id).or_default();
        let mut prev: Option<Vec<u8>> = match log.first() {
            Some(e) if e.seq == 0 => Some(vec![0u8; 32]),
            Some(e) => track.seen.get(&(e.seq - 1)).map(|p| p.hash.to_vec()),
            None => None,
        };
        let mut problem = None;
        for e in &log {
            if let Some(p) = &prev {
                if chain_hash(p, e) != e.hash.as_slice() {
                    problem = Some(format!(
                        "vault {id}: audit event {} does not chain (hash mismatch)",
                        e.seq
                    ));
                }
            }
            prev = Some(e.hash.to_vec());
            match track.seen.get(&e.seq) {
                Some(old) if old != e => {
                    problem = Some(format!(
                        "vault {id}: audit event changed\n  before {old:?}\n  now    {e:?}"
                    ))
                }
                Some(_) => {}
                None => {
                    track.seen.insert(e.seq, e.clone());
                }
            }
        }
        let head_event = track.seen.get(&(head.next_seq - 1)).cloned();
        if let Some(p) = problem {
            self.fail(&p);
        }
        match head_event {
            Some(e) if e.hash == head.head_hash => {}
            other => self.fail(&format!(
                "vault {id}: head hash {:?} is not the hash of the last event {other:?}",
                head.head_hash
            )),
        }
        self.stats.audit_events_checked += log.len() as u64;
        // Every event since the vault's creation has been seen (advances are cut into pieces
        // shorter than the shortest retention, with an audit read after each), so the events
        // seen, compaction events aside, are exactly the model's, in order.
        let seen: Vec<AuditEventView> = self.audit[&id].seen.values().cloned().collect();
        let gapless = seen.first().map(|e| e.seq) == Some(0)
            && seen.len() as u64 == head.next_seq
            && seen.last().map(|e| e.seq + 1) == Some(head.next_seq);
        if !gapless {
            self.fail(&format!(
                "internal: vault {id}: events were compacted before the run saw them (seen {:?}, next_seq {})",
                seen.iter().map(|e| e.seq).collect::<Vec<_>>(),
                head.next_seq
            ));
        }
        let known: Vec<&AuditEventView> = seen
            .iter()
            .filter(|e| e.action != "audit.compacted")
            .collect();
        let model = &v.events;
        let n = known.len().max(model.len());
        for i in 0..n {
            let (e, m) = (known.get(i), model.get(i));
            let same = match (e, m) {
                (Some(e), Some(m)) => {
                    e.action == m.action
                        && e.actor == m.actor
                        && e.at == m.at
                        && m.details_prefix
                            .as_ref()
                            .is_none_or(|p| e.details.starts_with(p.as_str()))
                }
                _ => false,
            };
            if !same {
                let from = i.saturating_sub(3);
                self.fail(&format!(
                    "vault {id}: audit event #{i} (compaction aside) is {:?}; the model expects {:?}\n  canister from #{from}: {:?}\n  model from #{from}:    {:?}",
                    e.map(|e| (e.seq, e.action.as_str(), e.actor.to_text(), e.at, e.details.as_str())),
                    m.map(|m| (m.action, m.actor.to_text(), m.at, m.details_prefix.clone())),
                    known[from.min(known.len())..].iter().take(8).map(|e| (e.seq, e.action.as_str(), e.at)).collect::<Vec<_>>(),
                    model[from.min(model.len())..].iter().take(8).map(|e| (e.action, e.at)).collect::<Vec<_>>()
                ));
            }
        }
        // Compaction: only events older than the retention were removed.
        for c in seen.iter().filter(|e| e.action == "audit.compacted") {
            let Some((a, b, days)) = parse_compaction(&c.details) else {
                self.fail(&format!(
                    "vault {id}: unreadable compaction details {:?}",
                    c.details
                ));
            };
            let removed: Vec<&AuditEventView> =
                seen.iter().filter(|e| (a..=b).contains(&e.seq)).collect();
            for e in &removed {
                if e.at + u64::from(days) * DAY > c.at {
                    self.fail(&format!(
                        "vault {id}: compaction at {} removed event {} of {} (younger than {days} days)",
                        c.at, e.seq, e.at
                    ));
                }
            }
            // A tombstone's compactions are not logged (docs/decisions.md, "One queue entry
            // per (kind, vault)"): its log shrinks to its newest event and stays (F1).
            let deleted_seq = seen
                .iter()
                .filter(|e| {
                    e.action == "vault.deleted"
                        || (e.action == "status.changed" && e.details.contains("-> Deleted"))
                })
                .map(|e| e.seq)
                .min();
            if deleted_seq.is_some_and(|d| c.seq > d) {
                self.fail(&format!(
                    "F1: vault {id}: a compaction of the tombstone at {} was logged ({})",
                    c.at, c.details
                ));
            }
            if e_count_mismatch(&c.details, a, b) {
                self.fail(&format!(
                    "vault {id}: compaction details inconsistent: {}",
                    c.details
                ));
            }
        }
        if !full {
            return;
        }
        // Retention is enforced: nothing but the newest event is much older than it (unless
        // the scheduler was paused in that window).
        let retention = u64::from(v.audit_retention_days) * DAY;
        let slack = 2 * DAY + 2 * self.model.interval();
        let paused_recently = self.model.paused
            || self
                .last_paused
                .is_some_and(|p| p + retention + slack > now);
        if !paused_recently {
            // An event may be compacted once it is past the retention and no longer the
            // newest: after a late event on a tombstone (whose chain had ended at one event)
            // the older one goes at the next ticks.
            for (e, next) in log.iter().zip(log.iter().skip(1)) {
                if (e.at + retention).max(v.retention_set_at).max(next.at) + slack < now {
                    self.fail(&format!(
                        "vault {id}: event {} ({}) is {:.1} days old, retention {} days",
                        e.seq,
                        e.action,
                        (now - e.at) as f64 / DAY as f64,
                        v.audit_retention_days
                    ));
                }
            }
        }
        // Members see status changes, rule changes, member and unlock events (not others'
        // failed attempts) and their own actions.
        let members: Vec<Principal> = v.members.values().map(|m| m.principal).collect();
        if !members.is_empty() {
            let p = self.check_rng.pick(&members);
            let got = match self.fetch_audit(p, id, None) {
                Ok(l) => l,
                Err(e) => self.fail(&format!("get_audit_log({id}) by a member: {e:?}")),
            };
            // Another member's principal reads as the anonymous one (docs/decisions.md,
            // "Members' view of the audit log"): the owner, the viewer and the system show.
            let owner = v.owner;
            let me = self.model.canister;
            let expected: Vec<AuditEventView> = log
                .iter()
                .filter(|e| e.actor == p || member_visible(&e.action))
                .map(|e| {
                    let mut e = e.clone();
                    let shown = e.actor == p
                        || e.actor == owner
                        || e.actor == me
                        || e.actor == Principal::management_canister();
                    if !shown {
                        e.actor = Principal::anonymous();
                    }
                    e
                })
                .collect();
            if got != expected {
                self.fail(&format!(
                    "vault {id}: member {p}'s audit view differs\n  canister {:?}\n  model    {:?}",
                    got.iter()
                        .map(|e| (e.seq, e.action.as_str()))
                        .collect::<Vec<_>>(),
                    expected
                        .iter()
                        .map(|e| (e.seq, e.action.as_str()))
                        .collect::<Vec<_>>()
                ));
            }
        }
        let (_, r) = self.qry::<_, R<AuditHead>>(self.stranger, "get_audit_head", (id,));
        self.check(expect_err(
            "get_audit_head (stranger)",
            &r,
            &VaultError::NotAuthorized,
        ));
    }

    /// A tombstone already checked in full: its view and its audit head are unchanged.
    fn light_check(&mut self, id: VaultId) {
        self.quiet(3);
        let owner = self.owner_of(id);
        let (_, r) = self.qry::<_, R<VaultView>>(owner, "get_vault", (id,));
        let v = &self.model.vaults[&id];
        let c = match &r {
            Ok(got) => {
                self.model
                    .check_vault_view("get_vault (tombstone)", got, v, VaultRole::Owner)
            }
            Err(e) => Err(format!("get_vault({id}) (tombstone): {e:?}")),
        };
        self.check(c);
        let (_, r) = self.qry::<_, R<AuditHead>>(owner, "get_audit_head", (id,));
        let last = self
            .audit
            .get(&id)
            .and_then(|t| t.seen.values().next_back().cloned());
        match (&r, last) {
            (Ok(h), Some(e)) if h.next_seq > e.seq + 1 => {
                // New events on a tombstone (only compaction may add some): check in full.
                self.check_audit(id);
            }
            (Ok(h), Some(e)) if h.next_seq == e.seq + 1 && h.head_hash == e.hash => {}
            other => self.fail(&format!("get_audit_head({id}) (tombstone): {other:?}")),
        }
    }

    /// Everything, for every vault.
    pub fn full_check(&mut self) {
        self.stats.full_checks += 1;
        let ids: Vec<VaultId> = self.model.vaults.keys().copied().collect();
        for id in ids {
            let v = &self.model.vaults[&id];
            let settled = v.status == VaultStatus::Deleted
                && self.checked_events.get(&id) == Some(&v.events.len())
                && !self.check_rng.chance(10);
            if settled {
                self.light_check(id);
                continue;
            }
            let n = v.events.len();
            self.check_vault(id);
            self.check_audit(id);
            self.checked_events.insert(id, n);
        }
        self.check_my_vaults();
        self.check_sessions();
        self.check_metrics();
        self.check_storage();
    }

    /// The canister's own storage walk (`State::check_invariants`: slab tiling, status counts,
    /// every repository's indexes, audit hash chains, payment trails, page tiling) run natively
    /// over a copy of the wasm's stable memory as it is now.
    fn check_storage(&mut self) {
        let image = self
            .env
            .host
            .stable_memory()
            .expect("the canister is installed")
            .to_vec();
        let memory = std::rc::Rc::new(std::cell::RefCell::new(image));
        let state = livault_backend::storage::State::open(memory);
        if let Err(e) = state.check_invariants() {
            self.fail(&format!("storage walk over the wasm's stable memory: {e}"));
        }
        self.stats.storage_walks += 1;
    }
}

/// Whether members see an event of this kind (docs/decisions.md, docs/unlock.md).
fn member_visible(action: &str) -> bool {
    action.starts_with("status.")
        || action == "vault.unlock_rules_changed"
        || action.starts_with("member.")
        || (action.starts_with("unlock.") && action != "unlock.attempt_failed")
}

/// `sha256(prev ‖ seq ‖ at ‖ actor ‖ action ‖ details)`: integers big-endian, the actor
/// prefixed by its length (1 byte), action and details by theirs (8 bytes).
pub fn chain_hash(prev: &[u8], e: &AuditEventView) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(e.seq.to_be_bytes());
    h.update(e.at.to_be_bytes());
    let actor = e.actor.as_slice();
    h.update([actor.len() as u8]);
    h.update(actor);
    h.update((e.action.len() as u64).to_be_bytes());
    h.update(e.action.as_bytes());
    h.update((e.details.len() as u64).to_be_bytes());
    h.update(e.details.as_bytes());
    h.finalize().to_vec()
}

/// The owner and subaccount of an ICRC-1 textual account `<principal>-<checksum>.<hex>`
/// (the subaccount's hex without leading zeros; the checksum is checked by the payment tests).
fn icrc1_account(text: &str) -> Option<(Principal, [u8; 32])> {
    let (left, hex) = text.split_once('.')?;
    let (owner, _checksum) = left.rsplit_once('-')?;
    let owner = Principal::from_text(owner).ok()?;
    if hex.is_empty() || hex.len() > 64 || hex.starts_with('0') {
        return None;
    }
    let padded = format!("{hex:0>64}");
    let mut sub = [0u8; 32];
    for (i, b) in sub.iter_mut().enumerate() {
        *b = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16).ok()?;
    }
    Some((owner, sub))
}

/// `removed N events (seq A..=B) older than D days` → (A, B, D).
fn parse_compaction(details: &str) -> Option<(u64, u64, u16)> {
    let seq = details.split("(seq ").nth(1)?;
    let (a, rest) = seq.split_once("..=")?;
    let (b, rest) = rest.split_once(')')?;
    let days = rest.split("older than ").nth(1)?.split(' ').next()?;
    Some((a.parse().ok()?, b.parse().ok()?, days.parse().ok()?))
}

fn e_count_mismatch(details: &str, a: u64, b: u64) -> bool {
    let n: Option<u64> = details
        .strip_prefix("removed ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok());
    n != Some(b - a + 1)
}

/// Runs one seed and returns its statistics (panics on a disagreement).
pub fn run(cfg: RunConfig) -> RunStats {
    Runner::new(cfg).run()
}
