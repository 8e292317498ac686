//! Interleaving explorer for the payment flows (issue #12, item 1).
//!
//! A *setup* is a prepared, quiescent canister (vault, paid payment sessions) saved as an
//! in-memory [`HostSnapshot`]. A *scenario* is a setup plus a multiset of up to three *flows*,
//! each one ingress message: `verify_payment` of a session (possibly the same session twice),
//! the scheduler's session check (`run_maintenance`, the admin's tick), `refund_session`, or
//! `delete_vault`. Renewals and upgrades are setups whose sessions pay for them.
//!
//! The host holds every call to the ledger. A depth-first search enumerates every *path*:
//! at each step, start a flow that has not started yet, or release ONE held ledger call with
//! an outcome ([`Fault`]): delivered; rejected without reaching the ledger; applied but
//! answered `SYS_UNKNOWN`; applied then the canister's callback traps (its cleanup runs);
//! for a transfer, delivered after its 24 h dedup window (`TxTooOld`, the clock jumps). The
//! number of non-`Deliver` outcomes on one path is bounded ([`Bounds::max_faults`]). Every
//! path is replayed from the setup's snapshot.
//!
//! After a path, a *settle* phase does what an operator would: stop holding and let every
//! flow finish, `verify_payment` every session and run the scheduler (again until a round
//! changes nothing), then
//! `refund_session` every session that still holds more than a fee (checking that the owner
//! receives balance − fee). Then the invariants ([`Explorer::check`]):
//!
//! 1. the ledger conserves e8s (minted = Σ balances + fees burned), and for each session the
//!    e8s paid in = swept + refunded + fees + what is left (at most one fee of dust);
//! 2. every e8 swept to the treasury pays for a purpose applied by that session exactly once
//!    (one sweep, one billing entry with `applied = true`, matching amount and block);
//! 3. each purpose (the creation of a vault, an upgrade to a plan, the renewal of a grace
//!    period) is applied at most once, in the billing and in the audit log; an upgrade
//!    session that expired and was opened before a renewal is never applied (SPEC §6);
//! 4. no session is both swept and refunded by `refund_session` (except an excess whose own
//!    refund did not apply); refunds in the ledger match the billing entries and sessions;
//! 5. the audit chain of the vault verifies and its `payment.confirmed` / `payment.refunded`
//!    events match the billing entries and the refunds.
//!
//! A violation is reported with the exact path (flows, releases, outcomes) and can be
//! replayed with [`Explorer::replay`] (the test binary prints the command).

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use candid::Principal;
use livault_backend::domain::payments::account::session_subaccount;
use local_replica::{
    ledger_principal, HeldCall, HeldOutcome, HostSnapshot, LedgerCall, MessageId, MessageStatus,
    RejectCode, Response,
};

use crate::*;

type R<T> = Result<T, VaultError>;

/// One ingress message of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flow {
    /// `verify_payment(session)` by the owner (index into the setup's sessions).
    Verify(usize),
    /// `run_maintenance` by the admin: the scheduler's session check.
    Tick,
    /// `refund_session(session)` by the admin.
    Refund(usize),
    /// `delete_vault` by the owner.
    Delete,
}

/// Outcome of one released ledger call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Delivered normally.
    Deliver,
    /// Rejected without reaching the ledger (`SysTransient`): nothing applied.
    Reject,
    /// Applied by the ledger, answered `SYS_UNKNOWN` (transfers only).
    Unknown,
    /// Applied by the ledger, then the canister's callback traps (its cleanup runs).
    Trap,
    /// A transfer delivered after its 24 h dedup window: `TxTooOld`, nothing applied.
    TooOld,
}

impl Fault {
    /// Every outcome.
    pub const ALL: [Fault; 5] = [
        Fault::Deliver,
        Fault::Reject,
        Fault::Unknown,
        Fault::Trap,
        Fault::TooOld,
    ];

    /// Position in [`Fault::ALL`] (and in [`Outcomes`]).
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Fault::Deliver => "deliver",
            Fault::Reject => "reject",
            Fault::Unknown => "unknown",
            Fault::Trap => "trap",
            Fault::TooOld => "too-old",
        }
    }

    fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    fn host_outcome(self) -> HeldOutcome {
        match self {
            Fault::Deliver => HeldOutcome::Deliver,
            Fault::Reject => HeldOutcome::Reject {
                code: RejectCode::SysTransient,
                message: "injected: ledger unreachable".into(),
            },
            Fault::Unknown => HeldOutcome::AppliedUnknown,
            Fault::Trap => HeldOutcome::AppliedThenTrap,
            Fault::TooOld => HeldOutcome::TooOld,
        }
    }
}

/// One step of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Start flow `i` of the scenario (submit its message and run until it blocks).
    Start(usize),
    /// Release the `index`-th held call (in the order the calls were made) with an outcome.
    Release(usize, Fault),
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Start(i) => write!(f, "s{i}"),
            Choice::Release(k, o) => write!(f, "r{k}:{}", o.name()),
        }
    }
}

/// Parses a path printed by [`Choice`]'s `Display` (space separated).
pub fn parse_path(s: &str) -> Option<Vec<Choice>> {
    s.split_whitespace()
        .map(|t| {
            if let Some(i) = t.strip_prefix('s') {
                return i.parse().ok().map(Choice::Start);
            }
            let (k, o) = t.strip_prefix('r')?.split_once(':')?;
            Some(Choice::Release(k.parse().ok()?, Fault::parse(o)?))
        })
        .collect()
}

/// What the explored paths did with the held ledger calls: releases of each outcome, and
/// paths by the outcomes they contain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Held calls released with each outcome (indexed like [`Fault::ALL`]), over all paths.
    pub releases: [usize; 5],
    /// Paths with no non-`Deliver` release.
    pub fault_free_paths: usize,
    /// Paths with at least one release of each non-`Deliver` outcome (indexed like
    /// [`Fault::ALL`]; `[0]` unused).
    pub paths_with: [usize; 5],
}

impl Outcomes {
    /// Counts one complete path.
    pub fn add_path(&mut self, path: &[Choice]) {
        let mut seen = [false; 5];
        for c in path {
            if let Choice::Release(_, f) = c {
                self.releases[f.index()] += 1;
                seen[f.index()] = true;
            }
        }
        if seen[1..].iter().all(|s| !s) {
            self.fault_free_paths += 1;
        }
        for (n, s) in seen.iter().enumerate().skip(1) {
            self.paths_with[n] += usize::from(*s);
        }
    }

    /// Adds another count.
    pub fn merge(&mut self, o: &Outcomes) {
        for n in 0..5 {
            self.releases[n] += o.releases[n];
            self.paths_with[n] += o.paths_with[n];
        }
        self.fault_free_paths += o.fault_free_paths;
    }
}

impl fmt::Display for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let releases: Vec<String> = Fault::ALL
            .iter()
            .map(|o| format!("{} {}", o.name(), self.releases[o.index()]))
            .collect();
        let paths: Vec<String> = Fault::ALL[1..]
            .iter()
            .map(|o| format!("{} {}", o.name(), self.paths_with[o.index()]))
            .collect();
        write!(
            f,
            "released calls: {}; paths: {} fault-free, with {}",
            releases.join(", "),
            self.fault_free_paths,
            paths.join(", ")
        )
    }
}

/// Limits of an exploration.
#[derive(Clone, Debug)]
pub struct Bounds {
    /// Largest number of flows in a scenario (1..=3).
    pub max_flows: usize,
    /// Setups whose scenarios go up to `max_flows`; the others stop at two flows. `None`:
    /// every setup.
    pub three_flow_setups: Option<Vec<String>>,
    /// Most non-`Deliver` outcomes on one path, by the scenario's number of flows
    /// (`max_faults[n]` for `n` flows).
    pub max_faults: [usize; 4],
    /// Outcomes tried besides `Deliver`.
    pub faults: Vec<Fault>,
    /// Whether `account_balance` calls get faults too (`Reject`, `Trap`), or only transfers.
    pub balance_faults: bool,
    /// Only these setups (by name); all when empty.
    pub setups: Vec<String>,
    /// A path longer than this is reported as a violation (a flow that never settles).
    pub max_steps: usize,
    /// Stop a scenario at its first violating path (the rest of its paths are skipped).
    pub stop_scenario_at_first_violation: bool,
}

impl Bounds {
    /// The bounded run of `scripts/test.sh`: every interleaving of one or two flows with at
    /// most one fault (on a transfer) per path, in every setup; every fault-free interleaving
    /// of three flows in `upgrade-two` (two sessions of one purpose: issue #12 H2).
    pub fn bounded() -> Bounds {
        Bounds {
            max_flows: 3,
            three_flow_setups: Some(vec!["upgrade-two".to_string()]),
            max_faults: [0, 1, 1, 0],
            faults: vec![Fault::Reject, Fault::Unknown, Fault::Trap, Fault::TooOld],
            balance_faults: false,
            setups: vec![],
            max_steps: 40,
            stop_scenario_at_first_violation: true,
        }
    }

    /// The long run: up to three flows in every setup, two faults per path (one with three
    /// flows), on balance calls too, every path of every scenario.
    pub fn exhaustive() -> Bounds {
        Bounds {
            three_flow_setups: None,
            max_faults: [0, 2, 2, 1],
            balance_faults: true,
            stop_scenario_at_first_violation: false,
            ..Bounds::bounded()
        }
    }

    /// One line describing the bounds.
    pub fn describe(&self) -> String {
        format!(
            "up to {} flows{}; at most {}/{}/{} faults per path with 1/2/3 flows, outcomes {:?} \
             on transfers{}; {}",
            self.max_flows,
            match &self.three_flow_setups {
                Some(only) if self.max_flows > 2 => format!(" (3 only in {})", only.join(", ")),
                _ => String::new(),
            },
            self.max_faults[1],
            self.max_faults[2],
            self.max_faults[3],
            self.faults,
            if self.balance_faults {
                " and (reject, trap) on balance calls"
            } else {
                " only"
            },
            if self.stop_scenario_at_first_violation {
                "a scenario stops at its first violating path"
            } else {
                "every path of every scenario"
            }
        )
    }
}

/// A prepared canister: vault, paid sessions, the flows that may run on it.
pub struct Setup {
    /// Short name (used on the command line and in reports).
    pub name: &'static str,
    /// What it prepares.
    pub about: &'static str,
    snap: HostSnapshot,
    owner: Principal,
    admin: Principal,
    canister: Principal,
    vault: VaultId,
    sessions: Vec<PaymentSession>,
    labels: Vec<&'static str>,
    /// Flows with their largest multiplicity in one scenario.
    pool: Vec<(Flow, usize)>,
    /// Where sweeps go (the admin's default account: no treasury in the init args).
    treasury: AccountId,
}

/// One violating path.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// The setup.
    pub setup: String,
    /// The scenario's flows.
    pub flows: Vec<Flow>,
    /// The path.
    pub path: Vec<Choice>,
    /// What happened, step by step (flows, released calls, replies, settle).
    pub trace: Vec<String>,
    /// The invariants that failed.
    pub violations: Vec<String>,
}

impl Counterexample {
    /// The path as the replay argument: `setup;flows;path`.
    pub fn replay_key(&self) -> String {
        let flows: Vec<String> = self.flows.iter().map(flow_code).collect();
        let path: Vec<String> = self.path.iter().map(|c| c.to_string()).collect();
        format!("{};{};{}", self.setup, flows.join(","), path.join(" "))
    }
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "COUNTEREXAMPLE in setup `{}`", self.setup)?;
        writeln!(f, "  replay: {}", self.replay_key())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "  violated:")?;
        for v in &self.violations {
            writeln!(f, "    - {v}")?;
        }
        Ok(())
    }
}

fn flow_code(f: &Flow) -> String {
    match f {
        Flow::Verify(i) => format!("v{i}"),
        Flow::Tick => "t".into(),
        Flow::Refund(i) => format!("f{i}"),
        Flow::Delete => "d".into(),
    }
}

fn parse_flow(s: &str) -> Option<Flow> {
    Some(match s {
        "t" => Flow::Tick,
        "d" => Flow::Delete,
        _ => {
            let (k, i) = s.split_at(1);
            let i = i.parse().ok()?;
            match k {
                "v" => Flow::Verify(i),
                "f" => Flow::Refund(i),
                _ => return None,
            }
        }
    })
}

/// Numbers of one scenario's exploration ([`Explorer::explore_scenario`]).
#[derive(Clone, Debug, Default)]
pub struct ScenarioStats {
    /// Paths (complete interleavings) explored.
    pub paths: usize,
    /// Paths that violated an invariant.
    pub violating_paths: usize,
    /// Outcomes of the released ledger calls.
    pub outcomes: Outcomes,
    /// The shortest violating path.
    pub counterexample: Option<Counterexample>,
}

/// Numbers of one setup's exploration.
#[derive(Clone, Debug, Default)]
pub struct SetupReport {
    /// Setup name.
    pub name: String,
    /// Scenarios (flow multisets) explored.
    pub scenarios: usize,
    /// Paths (complete interleavings) explored.
    pub paths: usize,
    /// Paths that violated an invariant.
    pub violating_paths: usize,
    /// Outcomes of the released ledger calls.
    pub outcomes: Outcomes,
    /// Wall time.
    pub elapsed: Duration,
}

/// Numbers of a whole exploration.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Per setup.
    pub setups: Vec<SetupReport>,
    /// The shortest violating path of each violating scenario.
    pub counterexamples: Vec<Counterexample>,
    /// Snapshot restores done.
    pub restores: usize,
    /// Time spent restoring snapshots.
    pub restore_time: Duration,
    /// Time to prepare the setups.
    pub setup_time: Duration,
    /// Time spent in the settle phase and the invariant checks (all threads).
    pub settle_time: Duration,
    /// Wall time of the exploration (setups excluded).
    pub elapsed: Duration,
}

impl Report {
    /// Paths explored in total.
    pub fn paths(&self) -> usize {
        self.setups.iter().map(|s| s.paths).sum()
    }

    /// Violating paths in total.
    pub fn violating_paths(&self) -> usize {
        self.setups.iter().map(|s| s.violating_paths).sum()
    }

    /// Outcomes of the released ledger calls, over every setup.
    pub fn outcomes(&self) -> Outcomes {
        let mut o = Outcomes::default();
        for s in &self.setups {
            o.merge(&s.outcomes);
        }
        o
    }

    /// The counterexamples: the full trace of the shortest one of each class (setup, kind
    /// of the first violation, kinds of flows), then one line per violating scenario.
    pub fn counterexamples_text(&self) -> String {
        let mut sorted: Vec<&Counterexample> = self.counterexamples.iter().collect();
        sorted.sort_by_key(|c| (c.setup.clone(), c.path.len(), c.flows.len()));
        let mut out = String::new();
        let mut classes = BTreeSet::new();
        for c in &sorted {
            let mut kinds: Vec<&str> = c
                .flows
                .iter()
                .map(|f| match f {
                    Flow::Verify(_) => "verify",
                    Flow::Tick => "tick",
                    Flow::Refund(_) => "refund",
                    Flow::Delete => "delete",
                })
                .collect();
            kinds.sort();
            kinds.dedup();
            let class = (c.setup.clone(), first_words(&c.violations[0]), kinds);
            if classes.insert(class) {
                out.push_str(&c.to_string());
                out.push('\n');
            }
        }
        if !sorted.is_empty() {
            out.push_str(&format!(
                "violating scenarios ({}), shortest path each:\n",
                sorted.len()
            ));
        }
        for c in &sorted {
            let v = &c.violations[0];
            let cut: String = v.chars().take(110).collect();
            out.push_str(&format!("  {}  => {cut}\n", c.replay_key()));
        }
        out
    }

    /// Human-readable summary (one line per setup, totals, timings).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut busy = Duration::ZERO;
        for s in &self.setups {
            busy += s.elapsed;
            out.push_str(&format!(
                "  setup {:<20} {:>4} scenarios {:>7} interleavings {:>6} violating  {:>7.1} s\n",
                s.name,
                s.scenarios,
                s.paths,
                s.violating_paths,
                s.elapsed.as_secs_f64()
            ));
        }
        let paths = self.paths().max(1) as f64;
        out.push_str(&format!(
            "  total: {} interleavings explored, {} violating, {} violating scenarios\n",
            self.paths(),
            self.violating_paths(),
            self.counterexamples.len()
        ));
        out.push_str(&format!("  outcomes: {}\n", self.outcomes()));
        out.push_str(&format!(
            "  timing: setups prepared in {:.1} s; exploring took {:.1} s wall, {:.1} s of \
             worker time = {:.1} ms per interleaving (settle phase and checks {:.1} ms of it); \
             snapshot restore {:.2} ms ({} restores)\n",
            self.setup_time.as_secs_f64(),
            self.elapsed.as_secs_f64(),
            busy.as_secs_f64(),
            busy.as_secs_f64() * 1000.0 / paths,
            self.settle_time.as_secs_f64() * 1000.0 / paths,
            self.restore_time.as_secs_f64() * 1000.0 / self.restores.max(1) as f64,
            self.restores
        ));
        out
    }
}

mod invariants;
mod setups;

pub use invariants::{violations, Observed, ObservedSession};
pub use setups::*;

// ------------------------------------------------------------------ scenarios

/// Every multiset of 1..=`max` flows of `pool` (each flow at most its multiplicity), in a
/// fixed order.
pub fn scenarios(pool: &[(Flow, usize)], max: usize) -> Vec<Vec<Flow>> {
    fn rec(
        pool: &[(Flow, usize)],
        at: usize,
        cur: &mut Vec<Flow>,
        max: usize,
        out: &mut Vec<Vec<Flow>>,
    ) {
        if at == pool.len() {
            if !cur.is_empty() {
                out.push(cur.clone());
            }
            return;
        }
        let (flow, mult) = pool[at];
        for n in 0..=mult {
            if cur.len() + n > max {
                break;
            }
            for _ in 0..n {
                cur.push(flow);
            }
            rec(pool, at + 1, cur, max, out);
            for _ in 0..n {
                cur.pop();
            }
        }
    }
    let mut out = Vec::new();
    rec(pool, 0, &mut Vec::new(), max, &mut out);
    out.sort_by_key(|s| s.len());
    out
}

// ------------------------------------------------------------------ the explorer

/// Runs paths of one setup on a host restored from its snapshot.
pub struct Explorer<'a> {
    setup: &'a Setup,
    env: TestEnv,
    bounds: Bounds,
    flows: Vec<Flow>,
    messages: Vec<Option<MessageId>>,
    faults_used: usize,
    steps: usize,
    trace: Vec<String>,
    /// Restores done and their time.
    pub restores: usize,
    /// Time spent in restores.
    pub restore_time: Duration,
    /// Time spent settling and checking invariants.
    pub settle_time: Duration,
}

impl<'a> Explorer<'a> {
    /// An explorer for `setup` (its own host, restored from the snapshot before each path).
    pub fn new(setup: &'a Setup, bounds: Bounds) -> Explorer<'a> {
        let host = local_replica::Host::new(local_replica::HostConfig::default());
        Explorer::on_host(setup, bounds, host)
    }

    /// An explorer for `setup` on an existing host (e.g. the previous explorer's, see
    /// [`Explorer::into_host`]), restored from the setup's snapshot.
    pub fn on_host(
        setup: &'a Setup,
        bounds: Bounds,
        mut host: local_replica::Host,
    ) -> Explorer<'a> {
        host.restore(&setup.snap).expect("restore the setup");
        let env = TestEnv {
            host,
            canister: setup.canister,
            controller: user("controller"),
            admin: setup.admin,
        };
        Explorer {
            setup,
            env,
            bounds,
            flows: vec![],
            messages: vec![],
            faults_used: 0,
            steps: 0,
            trace: vec![],
            restores: 0,
            restore_time: Duration::ZERO,
            settle_time: Duration::ZERO,
        }
    }

    /// Gives the host back (to explore another setup on it without a new instance).
    pub fn into_host(self) -> local_replica::Host {
        self.env.host
    }

    fn label(&self, s: usize) -> &'static str {
        self.setup.labels[s]
    }

    fn flow_name(&self, f: Flow) -> String {
        match f {
            Flow::Verify(s) => format!("verify_payment({})", self.label(s)),
            Flow::Tick => "run_maintenance (scheduler's session check)".into(),
            Flow::Refund(s) => format!("refund_session({})", self.label(s)),
            Flow::Delete => "delete_vault".into(),
        }
    }

    fn flows_text(&self, flows: &[Flow]) -> String {
        let names: Vec<String> = flows
            .iter()
            .enumerate()
            .map(|(i, f)| format!("#{i} {}", self.flow_name(*f)))
            .collect();
        names.join(", ")
    }

    fn session_account(&self, s: usize) -> AccountId {
        AccountId::new(
            &self.setup.canister,
            Some(session_subaccount(self.setup.sessions[s].id)),
        )
    }

    fn owner_account(&self) -> AccountId {
        AccountId::new(&self.setup.owner, None)
    }

    fn account_name(&self, a: &AccountId) -> String {
        for s in 0..self.setup.sessions.len() {
            if *a == self.session_account(s) {
                return self.label(s).to_string();
            }
        }
        if *a == self.setup.treasury {
            return "treasury".into();
        }
        if *a == self.owner_account() {
            return "owner".into();
        }
        format!("{a}")
    }

    fn describe_call(&self, h: &HeldCall) -> String {
        let who = match h.message {
            Some(m) => match self.messages.iter().position(|x| *x == Some(m)) {
                Some(i) => format!("#{i}"),
                None => format!("message {m}"),
            },
            None => format!("timer ({})", h.caller_method),
        };
        match &h.ledger {
            Some(LedgerCall::AccountBalance { account }) => {
                format!("{who} account_balance({})", self.account_name(account))
            }
            Some(LedgerCall::Transfer {
                memo,
                amount,
                from_subaccount,
                to,
                ..
            }) => {
                let from = AccountId::new(&self.setup.canister, *from_subaccount);
                format!(
                    "{who} transfer {amount} e8s {} -> {} (memo {memo:#x})",
                    self.account_name(&from),
                    self.account_name(to)
                )
            }
            None => format!("{who} {}", h.method),
        }
    }

    fn reset(&mut self, flows: &[Flow]) {
        let t = Instant::now();
        self.env
            .host
            .restore(&self.setup.snap)
            .expect("restore the setup");
        self.restore_time += t.elapsed();
        self.restores += 1;
        self.env.host.hold_calls_to(ledger_principal());
        self.flows = flows.to_vec();
        self.messages = vec![None; flows.len()];
        self.faults_used = 0;
        self.steps = 0;
        self.trace.clear();
        self.trace
            .push(format!("flows: {}", self.flows_text(flows)));
    }

    fn reply_text(&self, m: MessageId) -> Option<String> {
        match self.env.host.message_status(m)? {
            MessageStatus::Pending => None,
            MessageStatus::Done(Response::Reply(b)) => Some(decode_reply(b)),
            MessageStatus::Done(Response::Reject(code, msg)) => {
                Some(format!("rejected ({code}): {msg}"))
            }
        }
    }

    /// Messages answered since the last call: appended to the trace.
    fn note_replies(&mut self, answered: &mut BTreeSet<usize>) {
        for i in 0..self.messages.len() {
            if answered.contains(&i) {
                continue;
            }
            if let Some(m) = self.messages[i] {
                if let Some(r) = self.reply_text(m) {
                    self.trace.push(format!("     #{i} answered: {r}"));
                    answered.insert(i);
                }
            }
        }
    }

    fn choices(&self) -> Vec<Choice> {
        let mut out = Vec::new();
        for i in 0..self.flows.len() {
            if self.messages[i].is_some() {
                continue;
            }
            // Identical flows not started yet are interchangeable: start the first only.
            let twin = (0..i).any(|j| self.messages[j].is_none() && self.flows[j] == self.flows[i]);
            if !twin {
                out.push(Choice::Start(i));
            }
        }
        for (k, h) in self.env.host.list_held_calls().iter().enumerate() {
            out.push(Choice::Release(k, Fault::Deliver));
            let budget = self.bounds.max_faults[self.flows.len().min(3)];
            if self.faults_used >= budget {
                continue;
            }
            let transfer = matches!(h.ledger, Some(LedgerCall::Transfer { .. }));
            let timed = matches!(
                h.ledger,
                Some(LedgerCall::Transfer {
                    created_at_time: Some(_),
                    ..
                })
            );
            for f in &self.bounds.faults {
                let ok = match f {
                    Fault::Deliver => false,
                    Fault::Reject | Fault::Trap => transfer || self.bounds.balance_faults,
                    Fault::Unknown => transfer,
                    Fault::TooOld => timed,
                };
                if ok {
                    out.push(Choice::Release(k, *f));
                }
            }
        }
        out
    }

    fn apply(&mut self, c: Choice, answered: &mut BTreeSet<usize>) {
        self.steps += 1;
        let step = self.steps;
        match c {
            Choice::Start(i) => {
                let flow = self.flows[i];
                let (who, method, arg) = match flow {
                    Flow::Verify(s) => (
                        self.setup.owner,
                        "verify_payment",
                        candid::encode_one(self.setup.sessions[s].id),
                    ),
                    Flow::Tick => (self.setup.admin, "run_maintenance", candid::encode_args(())),
                    Flow::Refund(s) => (
                        self.setup.admin,
                        "refund_session",
                        candid::encode_one(self.setup.sessions[s].id),
                    ),
                    Flow::Delete => (
                        self.setup.owner,
                        "delete_vault",
                        candid::encode_one(self.setup.vault),
                    ),
                };
                let m = self
                    .env
                    .host
                    .submit_update(who, method, arg.expect("encode"));
                self.messages[i] = Some(m);
                self.trace
                    .push(format!("{step:>3}. start #{i} {}", self.flow_name(flow)));
            }
            Choice::Release(k, o) => {
                let held = self.env.host.list_held_calls();
                let h = &held[k];
                let text = self.describe_call(h);
                if o != Fault::Deliver {
                    self.faults_used += 1;
                }
                self.env
                    .host
                    .release_held_call(h.id, o.host_outcome())
                    .expect("release a held call");
                self.trace
                    .push(format!("{step:>3}. release [{text}] -> {}", o.name()));
            }
        }
        self.env.host.run_until_idle();
        self.note_replies(answered);
    }

    /// Replays `path` of scenario `flows` from the snapshot (the host is then at the end
    /// of the path, before the settle phase).
    fn replay_prefix(&mut self, flows: &[Flow], path: &[Choice]) -> BTreeSet<usize> {
        self.reset(flows);
        let mut answered = BTreeSet::new();
        for c in path {
            self.apply(*c, &mut answered);
        }
        answered
    }

    /// Explores every path of the scenario `flows`; returns (paths, violating paths, the
    /// shortest counterexample).
    pub fn explore_scenario(&mut self, flows: &[Flow]) -> ScenarioStats {
        let mut stats = ScenarioStats::default();
        let answered = self.replay_prefix(flows, &[]);
        let mut path = Vec::new();
        self.dfs(flows, &mut path, answered, &mut stats);
        stats
    }

    /// The host is at the end of `path`; explores every continuation.
    fn dfs(
        &mut self,
        flows: &[Flow],
        path: &mut Vec<Choice>,
        mut answered: BTreeSet<usize>,
        stats: &mut ScenarioStats,
    ) {
        let choices = self.choices();
        if choices.is_empty() || path.len() >= self.bounds.max_steps {
            let mut violations = Vec::new();
            if !choices.is_empty() {
                violations.push(format!(
                    "the path did not settle within {} steps",
                    self.bounds.max_steps
                ));
            }
            let t = Instant::now();
            self.settle(&mut answered);
            violations.extend(self.check());
            self.settle_time += t.elapsed();
            stats.paths += 1;
            stats.outcomes.add_path(path);
            if !violations.is_empty() {
                stats.violating_paths += 1;
                let shorter = stats
                    .counterexample
                    .as_ref()
                    .is_none_or(|c| c.path.len() > path.len());
                if shorter {
                    stats.counterexample = Some(Counterexample {
                        setup: self.setup.name.to_string(),
                        flows: flows.to_vec(),
                        path: path.clone(),
                        trace: self.trace.clone(),
                        violations,
                    });
                }
            }
            return;
        }
        for (n, c) in choices.into_iter().enumerate() {
            // The first child continues on the live host; the others replay the prefix.
            let mut ans = if n == 0 {
                answered.clone()
            } else {
                self.replay_prefix(flows, path)
            };
            self.apply(c, &mut ans);
            path.push(c);
            self.dfs(flows, path, ans, stats);
            path.pop();
            if self.bounds.stop_scenario_at_first_violation && stats.counterexample.is_some() {
                return;
            }
        }
    }

    /// Replays one path (from a counterexample's `replay_key`) and returns its trace and
    /// violations.
    pub fn replay(&mut self, flows: &[Flow], path: &[Choice]) -> Counterexample {
        let mut answered = self.replay_prefix(flows, path);
        let mut violations = Vec::new();
        if !self.choices().is_empty() {
            violations.push("the path leaves flows or held calls behind".to_string());
        }
        self.settle(&mut answered);
        violations.extend(self.check());
        Counterexample {
            setup: self.setup.name.to_string(),
            flows: flows.to_vec(),
            path: path.to_vec(),
            trace: self.trace.clone(),
            violations,
        }
    }

    /// The path without interleaving or faults: each flow in turn, its held calls delivered
    /// in order until it is done; then settle and check.
    pub fn happy_path(&mut self, flows: &[Flow]) -> Counterexample {
        let mut answered = self.replay_prefix(flows, &[]);
        let mut path = Vec::new();
        for i in 0..flows.len() {
            let mut next = Choice::Start(i);
            loop {
                self.apply(next, &mut answered);
                path.push(next);
                if self.env.host.held_calls() == 0 || path.len() >= self.bounds.max_steps {
                    break;
                }
                next = Choice::Release(0, Fault::Deliver);
            }
        }
        self.settle(&mut answered);
        let violations = self.check();
        Counterexample {
            setup: self.setup.name.to_string(),
            flows: flows.to_vec(),
            path,
            trace: self.trace.clone(),
            violations,
        }
    }

    // -------------------------------------------------------------- settle

    fn settle(&mut self, answered: &mut BTreeSet<usize>) {
        self.trace.push("settle:".into());
        let host = &mut self.env.host;
        host.stop_holding(ledger_principal());
        host.release_held();
        host.run_until_idle();
        self.note_replies(answered);
        let owner = self.setup.owner;
        let admin = self.setup.admin;
        // Rounds until one changes nothing on the ledger and confirms nothing (usually one).
        for _round in 0..3 {
            let blocks = self.env.host.ledger().blocks().len();
            let mut confirmed = false;
            for s in 0..self.setup.sessions.len() {
                let id = self.setup.sessions[s].id;
                let r = self
                    .env
                    .try_update::<_, R<PaymentReceipt>>(owner, "verify_payment", (id,));
                confirmed |= matches!(r, Ok(Ok(_)));
                self.trace.push(format!(
                    "     verify_payment({}) -> {}",
                    self.label(s),
                    short_result(&r)
                ));
            }
            let r = self
                .env
                .try_update::<_, R<TickReport>>(admin, "run_maintenance", ());
            confirmed |= matches!(&r, Ok(Ok(t)) if t.applied > 0);
            self.trace
                .push(format!("     run_maintenance -> {}", short_result(&r)));
            if !confirmed && self.env.host.ledger().blocks().len() == blocks {
                break;
            }
        }
    }

    /// Refunds every session still holding more than a fee; the owner must receive
    /// balance − fee. Returns violations.
    fn refund_leftovers(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        for s in 0..self.setup.sessions.len() {
            let acc = self.session_account(s);
            let balance = self.env.host.ledger().balance(&acc);
            if balance <= LEDGER_FEE {
                continue;
            }
            let owner_before = self.env.host.ledger().balance(&self.owner_account());
            let id = self.setup.sessions[s].id;
            let admin = self.setup.admin;
            let mut r = self
                .env
                .try_update::<_, R<PaymentSession>>(admin, "refund_session", (id,));
            // An unknown outcome is finished by calling again (same dedup key).
            for _ in 0..2 {
                if matches!(&r, Ok(Ok(p)) if p.refund_block.is_none()) {
                    r = self
                        .env
                        .try_update::<_, R<PaymentSession>>(admin, "refund_session", (id,));
                }
            }
            self.trace.push(format!(
                "     refund_session({}) holding {balance} e8s -> {}",
                self.label(s),
                short_result(&r)
            ));
            let gained = self
                .env
                .host
                .ledger()
                .balance(&self.owner_account())
                .saturating_sub(owner_before);
            match r {
                Ok(Ok(_)) if gained == balance - LEDGER_FEE => {}
                Ok(Ok(_)) => v.push(format!(
                    "refund_session({}) succeeded but the owner received {gained} e8s, not \
                     balance − fee = {}",
                    self.label(s),
                    balance - LEDGER_FEE
                )),
                other => v.push(format!(
                    "session {} holds {balance} e8s after settling and refund_session refuses \
                     to return them: {}",
                    self.label(s),
                    short_result(&other)
                )),
            }
        }
        v
    }

    // -------------------------------------------------------------- invariants

    /// What the invariants are checked on: the ledger, `list_billing`,
    /// `list_payment_sessions` and the vault's audit log.
    pub fn observe(&mut self) -> Observed {
        let admin = self.setup.admin;
        let owner = self.setup.owner;
        let ledger = self.env.host.ledger();
        let (minted, supply, burned) = (
            ledger.total_minted(),
            ledger.total_supply(),
            ledger.fees_burned(),
        );
        let blocks = ledger.blocks().to_vec();
        let accounts: Vec<AccountId> = (0..self.setup.sessions.len())
            .map(|s| self.session_account(s))
            .collect();
        let left: Vec<u64> = accounts.iter().map(|a| ledger.balance(a)).collect();
        let bills: Vec<BillingEntry> = self
            .env
            .query::<_, R<BillingPage>>(
                admin,
                "list_billing",
                (PageArgs {
                    start_after: None,
                    limit: Some(100),
                },),
            )
            .expect("list_billing")
            .items;
        // An unpaid draft is erased by `delete_vault` (issue #12 M3): its sessions remain
        // (refund-only) but the vault, its session list and its audit log are gone.
        let listed: R<PaymentSessionPage> = self.env.query(
            owner,
            "list_payment_sessions",
            (
                self.setup.vault,
                PageArgs {
                    start_after: None,
                    limit: Some(100),
                },
            ),
        );
        let erased = listed == Err(VaultError::NotFound);
        let listed = match listed {
            Ok(page) => page.items,
            Err(VaultError::NotFound) => self
                .setup
                .sessions
                .iter()
                .map(|s| {
                    let r: R<PaymentSession> =
                        self.env.query(admin, "get_payment_session", (s.id,));
                    r.expect("get_payment_session of an erased draft's session")
                })
                .collect(),
            Err(e) => panic!("list_payment_sessions: {e:?}"),
        };
        let sessions = self
            .setup
            .sessions
            .iter()
            .enumerate()
            .map(|(i, s)| ObservedSession {
                label: self.label(i).to_string(),
                session: listed
                    .iter()
                    .find(|x| x.id == s.id)
                    .cloned()
                    .expect("the session is listed"),
                account: accounts[i],
                left: left[i],
            })
            .collect();
        let events = if erased {
            Vec::new()
        } else {
            self.env.audit_log(owner, self.setup.vault)
        };
        Observed {
            minted,
            supply,
            burned,
            blocks,
            treasury: self.setup.treasury,
            owner: self.owner_account(),
            vault: self.setup.vault,
            vault_erased: erased,
            bills,
            sessions,
            events,
        }
    }

    /// The invariants (module docs), after the settle phase: refunds what is left on the
    /// sessions, observes, and returns the violations.
    pub fn check(&mut self) -> Vec<String> {
        let mut v = self.refund_leftovers();
        let observed = self.observe();
        let found = violations(&observed);
        // For money swept for nothing: what an operator can do about it.
        for s in &observed.sessions {
            if found.iter().any(|x| {
                x.starts_with(&format!("session {}: ", s.label)) && x.contains("applied = false")
            }) {
                let admin = self.setup.admin;
                let r = self.env.try_update::<_, R<PaymentSession>>(
                    admin,
                    "refund_session",
                    (s.session.id,),
                );
                self.trace.push(format!(
                    "     refund_session({}) holding {} e8s -> {}",
                    s.label,
                    s.left,
                    short_result(&r)
                ));
            }
        }
        v.extend(found);
        v
    }
}

fn decode_reply(b: &[u8]) -> String {
    if let Ok(r) = candid::decode_one::<R<PaymentReceipt>>(b) {
        return short_result(&Ok::<_, ()>(r));
    }
    if let Ok(r) = candid::decode_one::<R<PaymentSession>>(b) {
        return short_result(&Ok::<_, ()>(r));
    }
    if let Ok(r) = candid::decode_one::<R<TickReport>>(b) {
        return short_result(&Ok::<_, ()>(r));
    }
    if let Ok(r) = candid::decode_one::<R<VaultView>>(b) {
        return short_result(&Ok::<_, ()>(r));
    }
    format!("{} bytes", b.len())
}

/// A one-line description of a call's result.
fn short_result<T: Brief, E: fmt::Debug>(r: &Result<R<T>, E>) -> String {
    match r {
        Ok(Ok(x)) => format!("Ok({})", x.brief()),
        Ok(Err(e)) => format!("Err({e:?})"),
        Err(e) => format!("rejected: {e:?}"),
    }
}

trait Brief {
    fn brief(&self) -> String;
}

impl Brief for PaymentReceipt {
    fn brief(&self) -> String {
        format!(
            "receipt: session {} {:?}, billing {} applied={} swept {} block {:?}, vault {:?}",
            self.session.id,
            self.session.status,
            self.billing.id,
            self.billing.applied,
            self.billing.treasury_e8s,
            self.billing.sweep_block,
            self.vault_status
        )
    }
}

impl Brief for PaymentSession {
    fn brief(&self) -> String {
        format!(
            "session {} {:?} refunded {} block {:?}",
            self.id, self.status, self.refunded_e8s, self.refund_block
        )
    }
}

impl Brief for TickReport {
    fn brief(&self) -> String {
        format!(
            "tick taken {} processed {} applied {}{}",
            self.taken,
            self.processed,
            self.applied,
            self.skipped
                .as_ref()
                .map(|s| format!(" skipped {s}"))
                .unwrap_or_default()
        )
    }
}

impl Brief for VaultView {
    fn brief(&self) -> String {
        format!("vault {} {:?}", self.id, self.status)
    }
}

// ------------------------------------------------------------------ driver

/// Wall time of the host operations an interleaving is made of, on the `upgrade-two` setup
/// (average of `n` runs each, in ms): restore, and each kind of call the settle phase makes.
pub fn measure_host_costs(n: usize) -> Vec<(String, f64)> {
    let setup = setup_upgrade_two();
    let mut ex = Explorer::new(&setup, Bounds::bounded());
    let (owner, admin, s0) = (setup.owner, setup.admin, setup.sessions[0].id);
    let mut out = Vec::new();
    let mut time = |name: &str, ex: &mut Explorer, f: &mut dyn FnMut(&mut Explorer)| {
        let t = Instant::now();
        for _ in 0..n {
            f(ex);
        }
        out.push((
            name.to_string(),
            t.elapsed().as_secs_f64() * 1000.0 / n as f64,
        ));
    };
    time("restore", &mut ex, &mut |ex| ex.reset(&[]));
    time("verify_payment of an unknown session", &mut ex, &mut |ex| {
        let t = ex.env.now() + 1_000_000_000;
        ex.env.host.set_time(t);
        let r: R<PaymentReceipt> = ex.env.update(owner, "verify_payment", (999u64,));
        assert!(r.is_err());
    });
    ex.reset(&[]);
    ex.env.host.stop_holding(ledger_principal());
    time(
        "verify_payment that sweeps and applies (restore included)",
        &mut ex,
        &mut |ex| {
            ex.reset(&[]);
            ex.env.host.stop_holding(ledger_principal());
            let r: R<PaymentReceipt> = ex.env.update(owner, "verify_payment", (s0,));
            assert!(r.is_ok());
        },
    );
    time("verify_payment of a closed session", &mut ex, &mut |ex| {
        // One token of the owner's rate limit per second.
        let t = ex.env.now() + 1_000_000_000;
        ex.env.host.set_time(t);
        let r: R<PaymentReceipt> = ex.env.update(owner, "verify_payment", (s0,));
        assert_eq!(r.unwrap_err(), VaultError::SessionClosed);
    });
    time("run_maintenance with nothing due", &mut ex, &mut |ex| {
        let r: R<TickReport> = ex.env.update(admin, "run_maintenance", ());
        assert!(r.is_ok());
    });
    let q = ex
        .env
        .host
        .query(
            admin,
            "list_billing",
            candid::encode_one(PageArgs::default()).unwrap(),
        )
        .unwrap();
    let u = ex
        .env
        .host
        .update(admin, "run_maintenance", candid::encode_args(()).unwrap())
        .unwrap();
    println!(
        "instructions: list_billing {}, run_maintenance {} ({} with its callbacks)",
        q.instructions, u.instructions, u.total_instructions
    );
    let _: R<PaymentReceipt> = ex.env.update(owner, "verify_payment", (s0,));
    for e in ex
        .env
        .host
        .executions()
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .take(4)
    {
        println!(
            "  execution {:?} {}: {} instructions",
            e.kind, e.method, e.instructions
        );
    }
    time("query list_billing", &mut ex, &mut |ex| {
        let r: R<BillingPage> = ex.env.query(admin, "list_billing", (PageArgs::default(),));
        assert!(r.is_ok());
    });
    time("query get_payment_session", &mut ex, &mut |ex| {
        let r: R<PaymentSession> = ex.env.query(admin, "get_payment_session", (s0,));
        assert!(r.is_ok());
    });
    time("audit log (all pages)", &mut ex, &mut |ex| {
        assert!(!ex.env.audit_log(owner, setup.vault).is_empty());
    });
    out
}

/// Explores every scenario of every selected setup within `bounds`, on `threads` worker
/// threads (each with its own host restored from the setups' snapshots). `progress` gets a
/// line per setup and per scenario.
pub fn explore(bounds: &Bounds, threads: usize, progress: &(dyn Fn(&str) + Sync)) -> Report {
    let mut report = Report::default();
    let t = Instant::now();
    let setups: Vec<Setup> = all_setups()
        .into_iter()
        .filter(|s| bounds.setups.is_empty() || bounds.setups.iter().any(|n| n == s.name))
        .collect();
    report.setup_time = t.elapsed();
    for setup in &setups {
        progress(&format!(
            "setup {}: {} (snapshot: {:.1} MiB heap, {:.1} MiB stable memory)",
            setup.name,
            setup.about,
            setup.snap.heap_bytes() as f64 / 1048576.0,
            (setup.snap.memory_bytes() - setup.snap.heap_bytes()) as f64 / 1048576.0
        ));
    }
    // Work items: (setup, scenario), setup by setup (a worker switches its host to another
    // setup rarely), biggest scenarios first within a setup.
    let mut work: Vec<(usize, Vec<Flow>)> = Vec::new();
    for (i, setup) in setups.iter().enumerate() {
        let deep = bounds
            .three_flow_setups
            .as_ref()
            .is_none_or(|only| only.iter().any(|n| n == setup.name));
        let max = if deep {
            bounds.max_flows
        } else {
            bounds.max_flows.min(2)
        };
        for flows in scenarios(&setup.pool, max) {
            work.push((i, flows));
        }
    }
    work.sort_by_key(|(i, f)| (*i, std::cmp::Reverse(f.len())));
    let queue = std::sync::Mutex::new(work.into_iter());
    type Done = (usize, ScenarioStats, Duration);
    let results: std::sync::Mutex<Vec<Done>> = std::sync::Mutex::new(Vec::new());
    let timings = std::sync::Mutex::new((0usize, Duration::ZERO, Duration::ZERO));
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                // One host per worker, moved from setup to setup.
                let mut current: Option<(usize, Explorer)> = None;
                let (mut restores, mut restore_time, mut settle_time) =
                    (0usize, Duration::ZERO, Duration::ZERO);
                loop {
                    let item = queue.lock().expect("queue").next();
                    let Some((i, flows)) = item else { break };
                    if current.as_ref().is_none_or(|(j, _)| *j != i) {
                        let host = match current.take() {
                            Some((_, ex)) => {
                                restores += ex.restores;
                                restore_time += ex.restore_time;
                                settle_time += ex.settle_time;
                                ex.into_host()
                            }
                            None => local_replica::Host::new(local_replica::HostConfig::default()),
                        };
                        current = Some((i, Explorer::on_host(&setups[i], bounds.clone(), host)));
                    }
                    let Some((_, ex)) = current.as_mut() else {
                        break;
                    };
                    let ts = Instant::now();
                    let stats = ex.explore_scenario(&flows);
                    let (paths, bad) = (stats.paths, stats.violating_paths);
                    let took = ts.elapsed();
                    progress(&format!(
                        "  {:<20} [{}] {:>6} interleavings{} ({:.1} s)",
                        setups[i].name,
                        ex.flows_text(&flows),
                        paths,
                        if bad > 0 {
                            format!(", {bad} VIOLATING")
                        } else {
                            String::new()
                        },
                        took.as_secs_f64()
                    ));
                    results.lock().expect("results").push((i, stats, took));
                }
                if let Some((_, ex)) = current {
                    restores += ex.restores;
                    restore_time += ex.restore_time;
                    settle_time += ex.settle_time;
                }
                let mut t = timings.lock().expect("timings");
                t.0 += restores;
                t.1 += restore_time;
                t.2 += settle_time;
            });
        }
    });
    report.elapsed = t.elapsed();
    let (restores, restore_time, settle_time) = *timings.lock().expect("timings");
    report.restores = restores;
    report.restore_time = restore_time;
    report.settle_time = settle_time;
    let results = results.into_inner().expect("results");
    for (i, setup) in setups.iter().enumerate() {
        let mut sr = SetupReport {
            name: setup.name.to_string(),
            ..Default::default()
        };
        for (_, stats, took) in results.iter().filter(|r| r.0 == i) {
            sr.scenarios += 1;
            sr.paths += stats.paths;
            sr.violating_paths += stats.violating_paths;
            sr.outcomes.merge(&stats.outcomes);
            sr.elapsed += *took;
            report
                .counterexamples
                .extend(stats.counterexample.iter().cloned());
        }
        report.setups.push(sr);
    }
    report
}

/// The kind of a violation: its text after the session name, without numbers.
fn first_words(s: &str) -> String {
    let s = s.split_once(": ").map_or(s, |(_, rest)| rest);
    s.chars().filter(|c| !c.is_ascii_digit()).take(60).collect()
}

/// Replays a counterexample key (`setup;flows;path`, as printed).
pub fn replay_key(key: &str) -> Counterexample {
    let mut parts = key.splitn(3, ';');
    let (name, flows, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let setup = all_setups()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no setup named {name:?}"));
    let flows: Vec<Flow> = flows
        .split(',')
        .map(|f| parse_flow(f).unwrap_or_else(|| panic!("bad flow {f:?}")))
        .collect();
    let path = parse_path(path).unwrap_or_else(|| panic!("bad path {path:?}"));
    let mut ex = Explorer::new(&setup, Bounds::exhaustive());
    ex.replay(&flows, &path)
}
