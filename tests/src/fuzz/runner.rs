//! The fuzz loop and its oracle (see `docs/fuzzing.md`).
//!
//! Every call is bracketed: no timer may run inside it (a due timer is fired before the call),
//! the stable memory pages it wrote are compared with a shadow copy taken before it, its
//! instructions are summed over every execution of its call tree (inspect included), and its
//! outcome is classified. The oracle fails a call when
//! - it trapped, except a clean decoder refusal or an ingress inspection refusal (defined in
//!   [`classify_reject`]);
//! - it was refused (a typed `Err` or any reject) and stable memory is not byte-identical,
//!   unless the refusal is one SPEC requires to write ([`WRITING_REFUSALS`]);
//! - its instructions exceed the endpoint's bound ([`instruction_bound`]);
//! - its reply does not decode with the `.did` result type;
//! - the canister and the reference Candid decoder disagree on whether the argument is valid.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use candid::types::value::IDLValue;
use candid::Principal;
use local_replica::ic0::{ExecKind, PAGE};
use local_replica::{RejectCode, Reply};

use super::gen::{variant_case, ArgKind, Gen};
use super::interface::{is_hand_decoded, Interface, Method};
use super::rng::Rng;
use super::world::{Role, World};
use crate::user;

/// Refusals SPEC requires to write, as (method, error variant, reason). Every other refusal
/// must leave stable memory byte-identical.
pub const WRITING_REFUSALS: &[(&str, &str, &str)] = &[
    (
        "trigger_unlock",
        "UnlockConditionsNotMet",
        "SPEC §4: a failed unlock attempt is audit-logged (unlock.attempt_failed) and counted",
    ),
    (
        "trigger_unlock",
        "QuorumNotMet",
        "SPEC §4: a failed unlock attempt is audit-logged and counted",
    ),
    (
        "approve_unlock",
        "UnlockConditionsNotMet",
        "SPEC §4: a failed unlock attempt is audit-logged and counted",
    ),
    (
        "approve_unlock_with_recovery",
        "UnlockConditionsNotMet",
        "SPEC §4: a failed unlock attempt is audit-logged and counted",
    ),
    (
        "approve_unlock_with_recovery",
        "TokenInvalid",
        "SPEC §4/§9: a wrong recovery code is a failed unlock attempt (logged, counted)",
    ),
    (
        "approve_unlock_with_recovery",
        "RecoveryBlocked",
        "SPEC §4/§9: a revoked, used or non-bypass code is a failed unlock attempt (logged, counted)",
    ),
];

/// Instruction bound of one call of `method` (every execution of its call tree, inspect
/// included). An ordinary call costs 1-6 M; see docs/fuzzing.md.
pub fn instruction_bound(method: &str) -> u64 {
    match method {
        // A full 1 MiB chunk: 83 M, mostly the incremental SHA-256 (BENCHMARKS.md, content).
        "upload_chunk" => 150_000_000,
        // One maintenance tick: at most 50 due entries.
        "run_maintenance" => 50_000_000,
        _ => 20_000_000,
    }
}

/// Arguments up to this size are "small" (the inspect limit of ordinary updates).
pub const SMALL_ARG: usize = 16 * 1024;

/// What the fuzz run does.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seed of everything random (arguments, callers, clock, order).
    pub seed: u64,
    /// Calls per endpoint of the `.did`.
    pub calls_per_endpoint: u64,
    /// Calls between two returns to the populated snapshot.
    pub epoch_calls: u64,
    /// Print progress to stderr every this many calls (0 = never).
    pub progress_every: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            calls_per_endpoint: 40,
            epoch_calls: 300,
            progress_every: 0,
        }
    }
}

/// Per-endpoint counters.
#[derive(Clone, Debug, Default)]
pub struct EndpointStats {
    pub calls: u64,
    pub by_role: BTreeMap<Role, u64>,
    pub by_kind: BTreeMap<ArgKind, u64>,
    /// Replies that are not a typed refusal.
    pub ok: u64,
    /// Typed refusals by `VaultError` variant (and HTTP status class for `http_request`).
    pub errs: BTreeMap<String, u64>,
    /// Rejects by class (`decoder`, `inspect:anonymous`, `inspect:size`, ...).
    pub rejects: BTreeMap<String, u64>,
    /// Refusals that wrote (allowed by [`WRITING_REFUSALS`]).
    pub writing_refusals: u64,
    /// Most instructions of one call, and that call's argument size.
    pub max_instructions: u64,
    pub max_instructions_arg_len: usize,
    /// Most instructions of one call whose argument is at most 16 KiB.
    pub max_small: u64,
    /// Most instructions per argument byte of one call whose argument is over 16 KiB.
    pub max_per_byte: f64,
    /// Largest argument sent (bytes).
    pub max_arg_len: usize,
    /// Arguments the reference decoder refused that the canister ignored (methods without
    /// parameters do not read their argument).
    pub ignored_malformed: u64,
}

/// One oracle violation, with what is needed to reproduce it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    /// Index of the call in the run (0-based), its epoch and its index in the epoch.
    pub call: u64,
    pub epoch: u64,
    pub call_in_epoch: u64,
    pub method: String,
    pub role: Role,
    pub caller: Principal,
    pub kind: ArgKind,
    pub what: String,
    pub arg_len: usize,
    /// The argument in hex (first 512 bytes).
    pub arg_hex: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} call {} (epoch {}, call {} of the epoch): {} as {} {} with a {} argument of {} bytes: {}\n    arg: {}",
            self.seed,
            self.call,
            self.epoch,
            self.call_in_epoch,
            self.method,
            self.role.name(),
            self.caller,
            self.kind.name(),
            self.arg_len,
            self.what,
            self.arg_hex
        )
    }
}

/// The result of a run.
pub struct Report {
    pub config: Config,
    pub endpoints: BTreeMap<String, EndpointStats>,
    pub failures: Vec<Failure>,
    pub calls: u64,
    pub epochs: u64,
    pub elapsed: Duration,
    pub setup: Duration,
    /// Full stable-memory comparisons that confirmed the page tracking.
    pub full_checks: u64,
    /// Canister methods of the `.did`, in order.
    pub methods: Vec<String>,
    /// Answers per role: (calls, typed refusals RateLimited).
    pub roles: BTreeMap<Role, (u64, u64)>,
}

/// How a reject is classified.
///
/// - `inspect:anonymous`, `inspect:size`, `inspect:internal`: `canister_inspect_message`
///   refused the ingress message (anonymous caller, argument over the method's limit, the
///   internal batch method) — a trap in inspect, which the IC answers with an HTTP error before
///   any state exists for the message.
/// - `guard` / `guard:limit`: the argument guard of every endpoint (`api::arguments`) refused
///   the argument before anything was decoded: a reject (`CanisterReject`) with
///   `"<method>: argument refused: <reason>"`; `:limit` when the reason is one of the
///   documented limits (size, type table, depth, value count, references), which may refuse
///   valid Candid.
/// - `decoder` / `decoder:limit`: a clean decoder refusal: the method's argument decoder
///   trapped with the Candid error it got — ic-cdk's generated decoder (`Panicked at 'called
///   `Result::unwrap()` on an `Err` value: <candid error>', src/livault_backend/src/api/...`)
///   or one of the two hand-written decoders (`<method>: bad arguments: <reason>`); `:limit`
///   for a decoder limit (candid's skipping quota, or the limits above).
/// - For `guard` and `decoder` (not `:limit`) the reference decoder (candid with the `.did`
///   types, no quota) must refuse the argument too; the caller checks that.
/// - anything else (`trap`, `reject:<code>`) is a failure.
pub fn classify_reject(code: RejectCode, message: &str, method: &str) -> String {
    if code == RejectCode::CanisterError && message.contains("(inspect_message trapped)") {
        return if message.contains("anonymous update calls are not accepted") {
            "inspect:anonymous".into()
        } else if message.contains("byte limit of") {
            "inspect:size".into()
        } else if message.contains("internal method") {
            "inspect:internal".into()
        } else {
            format!("trap:inspect: {}", short(message))
        };
    }
    if code == RejectCode::CanisterReject
        && message.starts_with(&format!("{method}: argument refused: "))
    {
        return if is_limit(message) {
            "guard:limit".into()
        } else {
            "guard".into()
        };
    }
    if code == RejectCode::CanisterError {
        let generated = message.contains(
            "trapped explicitly: Panicked at 'called `Result::unwrap()` on an `Err` value: ",
        ) && message.contains("', src/livault_backend/src/api/");
        let hand = is_hand_decoded(method)
            && message.contains(&format!("trapped explicitly: {method}: bad arguments: "));
        if generated || hand {
            return if is_limit(message) {
                "decoder:limit".into()
            } else {
                "decoder".into()
            };
        }
        return format!("trap: {}", short(message));
    }
    format!("reject:{code:?}: {}", short(message))
}

/// Whether a refusal names one of the documented argument limits.
fn is_limit(message: &str) -> bool {
    [
        "exceed the limit of",
        "types in the type table",
        "nested deeper than",
        "values than allowed (at most",
        "arguments (at most",
        "func and service references",
        "Skipping cost exceeds the limit",
        "Decoding cost exceeds the limit",
        "type table size exceeded",
        "Type table header exceeds the limit",
    ]
    .iter()
    .any(|l| message.contains(l))
}

fn is_failure_class(class: &str) -> bool {
    !(class.starts_with("decoder") || class.starts_with("guard") || class.starts_with("inspect:"))
}

/// The populated canister under the oracle: [`Fuzzer::call`] makes one bracketed call.
pub struct Fuzzer<'a> {
    pub iface: &'a Interface,
    pub world: World,
    /// Stable memory as it was after the last bracket (kept equal to the canister's between
    /// calls: see [`Fuzzer::sync`]).
    shadow: Vec<u8>,
    snapshot: local_replica::HostSnapshot,
    tick_ns: u64,
    /// Allow the refusals of [`WRITING_REFUSALS`] to write (true; false only to check that the
    /// oracle sees those writes).
    pub exempt_writing_refusals: bool,
    /// Full comparisons of stable memory with the shadow so far.
    pub full_checks: u64,
}

/// What the oracle saw of one call.
#[derive(Clone, Debug)]
pub struct Call {
    /// `None`: replied without a refusal. `Some(v)`: the typed refusal (`VaultError` variant,
    /// `http 4xx`) or the reject class (see [`classify_reject`]).
    pub refused: Option<String>,
    /// Whether it was a reject (not a reply).
    pub rejected: bool,
    /// Instructions of every execution of the call (inspect and callbacks included).
    pub instructions: u64,
    /// Stable memory pages whose bytes the call changed (`u64::MAX`: the length).
    pub changed: Vec<u64>,
    /// A refusal that wrote, allowed by [`WRITING_REFUSALS`].
    pub writing_refusal: bool,
    /// The reference decoder refused the argument of a method without parameters, which does
    /// not read it.
    pub ignored_malformed: bool,
    /// Oracle violations.
    pub problems: Vec<String>,
}

impl<'a> Fuzzer<'a> {
    /// Builds the populated canister and starts watching its stable memory.
    pub fn new(iface: &'a Interface) -> Fuzzer<'a> {
        let mut world = World::build();
        let host = &mut world.env.host;
        host.track_stable_writes();
        let snapshot = host.snapshot().expect("snapshot of the populated canister");
        let shadow = host.stable_memory().expect("installed").to_vec();
        let tick_ns = host.config().tick_ns;
        Fuzzer {
            iface,
            world,
            shadow,
            snapshot,
            tick_ns,
            exempt_writing_refusals: true,
            full_checks: 0,
        }
    }

    /// Checks the whole stable memory against the shadow (the page tracking missed no write)
    /// and returns to the populated snapshot.
    pub fn restore(&mut self) {
        self.full_check();
        let host = &mut self.world.env.host;
        host.restore(&self.snapshot).expect("restore");
        // The restore empties the page record: the shadow takes the whole memory again.
        self.shadow.clear();
        self.shadow
            .extend_from_slice(host.stable_memory().expect("installed"));
    }

    /// The whole stable memory equals the shadow once the pages written since the last
    /// bracket (the harness's own calls after it, e.g. `repair`) are copied in. Panics
    /// otherwise (a harness error: a write the page tracking missed).
    pub fn full_check(&mut self) {
        self.sync();
        let stable = self.world.env.host.stable_memory().expect("installed");
        if stable != self.shadow.as_slice() {
            let at = stable
                .iter()
                .zip(&self.shadow)
                .position(|(a, b)| a != b)
                .unwrap_or(stable.len().min(self.shadow.len()));
            panic!(
                "fuzzer bug: stable memory differs from its shadow at byte {at} (page {}): a \
                 write was not tracked",
                at as u64 / PAGE
            );
        }
        self.full_checks += 1;
    }

    /// Moves the clock forward by `secs` (timers due on the way run, outside any bracket).
    pub fn advance(&mut self, secs: u64) {
        self.world.env.host.advance_time(Duration::from_secs(secs));
    }

    /// One bracketed call of `method` by `caller` with `arg`, judged by the oracle.
    pub fn call(&mut self, method: &Method, caller: Principal, arg: &[u8]) -> Call {
        // No timer inside the bracket: fire now a timer due by the call's time.
        loop {
            let host = &mut self.world.env.host;
            let t = host.global_timer();
            if t != 0 && t <= host.now() + self.tick_ns {
                host.advance_time(Duration::from_nanos(t.saturating_sub(host.now())));
            } else {
                break;
            }
        }
        self.sync();
        let reference = self.iface.decode_args(method, arg);

        let host = &mut self.world.env.host;
        let call_time = host.now() + self.tick_ns;
        let result = if method.query {
            host.query(caller, &method.name, arg.to_vec())
        } else {
            host.update(caller, &method.name, arg.to_vec())
        };
        let (instructions, timer_inside) = call_cost(&self.world, call_time);
        assert!(
            !timer_inside,
            "fuzzer bug: a timer ran inside the bracket of a call of {}",
            method.name
        );
        let changed = self.sync();

        let mut problems: Vec<String> = Vec::new();
        let (refused, rejected, reject_message) = match result {
            Ok(reply) => (
                classify_reply(self.iface, method, &reply, &mut problems),
                false,
                None,
            ),
            Err(reject) => {
                let class = classify_reject(reject.code, &reject.message, &method.name);
                if is_failure_class(&class) {
                    problems.push(format!("rejected: {class}"));
                }
                (Some(class), true, Some(reject.message))
            }
        };

        // Decoder agreement, where the argument reached the method's decoder.
        let mut ignored_malformed = false;
        let inspect = rejected
            && refused
                .as_deref()
                .is_some_and(|c| c.starts_with("inspect:"));
        if !inspect {
            // A refusal for malformed bytes (not for a documented limit).
            let decoder_refused = matches!(refused.as_deref(), Some("decoder" | "guard"));
            match (&reference, decoder_refused) {
                (Ok(_), true) => problems.push(format!(
                    "the canister's decoder refused an argument the .did types accept: {}",
                    short(reject_message.as_deref().unwrap_or(""))
                )),
                (Err(e), false) if !rejected => {
                    if method.args.is_empty() {
                        ignored_malformed = true;
                    } else {
                        problems.push(format!(
                            "the canister accepted an argument the .did types refuse ({})",
                            short(e)
                        ));
                    }
                }
                _ => {}
            }
        }

        // No write by a refused call, except the documented ones.
        let mut writing_refusal = false;
        if let (Some(why), false) = (&refused, changed.is_empty()) {
            let allowed = self.exempt_writing_refusals
                && WRITING_REFUSALS
                    .iter()
                    .any(|(m, v, _)| *m == method.name && v == why);
            if allowed {
                writing_refusal = true;
            } else {
                problems.push(format!(
                    "refused ({why}) but stable memory changed ({} pages{})",
                    changed.len(),
                    if changed.contains(&u64::MAX) {
                        ", length"
                    } else {
                        ""
                    }
                ));
            }
        }

        let bound = instruction_bound(&method.name);
        if instructions > bound {
            problems.push(format!(
                "{instructions} instructions exceed the bound of {bound}"
            ));
        }
        Call {
            refused,
            rejected,
            instructions,
            changed,
            writing_refusal,
            ignored_malformed,
            problems,
        }
    }

    /// Copies the pages written since the last sync into the shadow; returns those whose
    /// bytes changed (`u64::MAX` stands for a change of length).
    fn sync(&mut self) -> Vec<u64> {
        let host = &mut self.world.env.host;
        let pages = host
            .take_stable_dirty_pages()
            .expect("stable writes are tracked");
        let stable = host.stable_memory().expect("installed");
        let shadow = &mut self.shadow;
        let mut changed = Vec::new();
        if stable.len() != shadow.len() {
            changed.push(u64::MAX);
            shadow.resize(stable.len(), 0);
        }
        for p in pages {
            let start = (p * PAGE) as usize;
            let end = (start + PAGE as usize).min(stable.len());
            if start >= end {
                continue;
            }
            if stable[start..end] != shadow[start..end] {
                changed.push(p);
                shadow[start..end].copy_from_slice(&stable[start..end]);
            }
        }
        changed
    }
}

/// Runs the fuzzer. Panics only on harness errors (the populated state cannot be built, the
/// page tracking disagrees with a full comparison, a timer ran inside a bracket); oracle
/// violations are in the report.
pub fn run(cfg: &Config) -> Report {
    let started = Instant::now();
    let iface = Interface::load();
    let mut fz = Fuzzer::new(&iface);
    let setup = started.elapsed();

    let mut rng = Rng::new(cfg.seed);
    let m = iface.methods.len();
    let mut order: Vec<usize> = Vec::with_capacity(m * cfg.calls_per_endpoint as usize);
    for _ in 0..cfg.calls_per_endpoint {
        let mut round: Vec<usize> = (0..m).collect();
        for i in (1..m).rev() {
            round.swap(i, rng.index(i + 1));
        }
        order.extend(round);
    }

    let mut endpoints: BTreeMap<String, EndpointStats> = iface
        .methods
        .iter()
        .map(|m| (m.name.clone(), EndpointStats::default()))
        .collect();
    let mut roles: BTreeMap<Role, (u64, u64)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut epochs = 1;
    let mut burst = rng.percent(50);

    for (i, &mi) in order.iter().enumerate() {
        let i = i as u64;
        if i > 0 && i.is_multiple_of(cfg.epoch_calls) {
            fz.restore();
            epochs += 1;
            burst = rng.percent(50);
        }
        if cfg.progress_every > 0 && i > 0 && i.is_multiple_of(cfg.progress_every) {
            eprintln!(
                "fuzz: {i}/{} calls, {} failures, {:.0?}",
                order.len(),
                failures.len(),
                started.elapsed()
            );
        }
        let method = &iface.methods[mi];
        let mut crng = rng.fork();

        // The clock: calm epochs let time pass between calls (refilling rate limits, firing
        // the maintenance timer between calls); burst epochs send calls back to back.
        if !burst {
            let secs = match crng.below(100) {
                0..=79 => 0,
                80..=97 => 1,
                _ => crng.range(30, 120),
            };
            if secs > 0 {
                fz.advance(secs);
            }
        }
        let (role, caller) = pick_caller(&mut crng, &fz.world);
        let repair_after = crng.percent(75);
        let now = fz.world.env.host.now();
        let mut gen = Gen::new(crng, &iface, &fz.world.dict, now);
        let (arg, kind) = gen.args(method);

        let call = fz.call(method, caller, &arg);

        let stats = endpoints.get_mut(&method.name).expect("endpoint");
        stats.calls += 1;
        *stats.by_role.entry(role).or_default() += 1;
        *stats.by_kind.entry(kind).or_default() += 1;
        stats.max_arg_len = stats.max_arg_len.max(arg.len());
        if call.instructions > stats.max_instructions {
            stats.max_instructions = call.instructions;
            stats.max_instructions_arg_len = arg.len();
        }
        if arg.len() <= SMALL_ARG {
            stats.max_small = stats.max_small.max(call.instructions);
        } else {
            stats.max_per_byte = stats
                .max_per_byte
                .max(call.instructions as f64 / arg.len() as f64);
        }
        let role_stats = roles.entry(role).or_default();
        role_stats.0 += 1;
        match (&call.refused, call.rejected) {
            (None, _) => stats.ok += 1,
            (Some(v), false) => {
                *stats.errs.entry(v.clone()).or_default() += 1;
                if v == "RateLimited" {
                    role_stats.1 += 1;
                }
            }
            (Some(class), true) => {
                let key = if is_failure_class(class) {
                    class.split(':').next().unwrap_or("trap").to_string()
                } else {
                    class.clone()
                };
                *stats.rejects.entry(key).or_default() += 1;
            }
        }
        stats.writing_refusals += u64::from(call.writing_refusal);
        stats.ignored_malformed += u64::from(call.ignored_malformed);

        // Admin switches that would silence the rest of the epoch (everything Paused, the admin
        // no longer admin) are mostly switched back, outside any bracket.
        if call.refused.is_none() && repair_after {
            repair(&mut fz.world, &method.name);
        }

        for what in call.problems {
            failures.push(Failure {
                seed: cfg.seed,
                call: i,
                epoch: i / cfg.epoch_calls,
                call_in_epoch: i % cfg.epoch_calls,
                method: method.name.clone(),
                role,
                caller,
                kind,
                what,
                arg_len: arg.len(),
                arg_hex: hex_prefix(&arg, 512),
            });
        }
    }
    fz.full_check();

    Report {
        config: cfg.clone(),
        endpoints,
        failures,
        calls: order.len() as u64,
        epochs,
        elapsed: started.elapsed(),
        setup,
        full_checks: fz.full_checks,
        methods: iface.methods.iter().map(|m| m.name.clone()).collect(),
        roles,
    }
}

fn classify_reply(
    iface: &Interface,
    m: &Method,
    reply: &Reply,
    problems: &mut Vec<String>,
) -> Option<String> {
    let decoded = match iface.decode_reply(m, &reply.bytes) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!(
                "the reply does not decode with the .did result type: {}",
                short(&e)
            ));
            return None;
        }
    };
    let first = decoded.args.first()?;
    if m.name == "http_request" {
        // record { status_code; headers; body }: 4xx/5xx are the HTTP refusals.
        if let IDLValue::Record(fields) = first {
            for f in fields {
                if let IDLValue::Nat16(code) = f.val {
                    if code >= 400 {
                        return Some(format!("http {code}"));
                    }
                }
            }
        }
        return None;
    }
    match variant_case(first) {
        Some((case, inner)) if case == "Err" => {
            Some(variant_case(inner).map_or_else(|| "?".into(), |(v, _)| v))
        }
        _ => None,
    }
}

/// Instructions of every execution recorded at `call_time` (the call's time: the host's clock
/// moves on before every top-level operation), and whether a timer ran then.
fn call_cost(world: &World, call_time: u64) -> (u64, bool) {
    let mut total = 0u64;
    let mut timer = false;
    for r in world
        .env
        .host
        .executions()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        if r.time_ns != call_time {
            if r.time_ns < call_time {
                break;
            }
            continue;
        }
        total = total.saturating_add(r.instructions);
        timer |= r.kind == ExecKind::Timer;
    }
    (total, timer)
}

/// Undoes a successful `set_paused` / `set_admins` (harness calls between two brackets).
fn repair(world: &mut World, method: &str) {
    let env = &mut world.env;
    let (who, arg) = match method {
        "set_paused" => (env.admin, candid::encode_one(false)),
        "set_admins" => (env.controller, candid::encode_one(vec![env.admin])),
        _ => return,
    };
    let arg = arg.expect("encode");
    // A refusal (e.g. the controller is rate limited) leaves the switch as the fuzz set it.
    let _ = env.host.update(who, method, arg);
}

fn pick_caller(rng: &mut Rng, world: &World) -> (Role, Principal) {
    let role = match rng.below(100) {
        0..=29 => Role::Owner,
        30..=54 => Role::Member,
        55..=69 => Role::Stranger,
        70..=79 => Role::Anonymous,
        _ => Role::Admin,
    };
    let who = match role {
        Role::Owner => {
            if rng.percent(90) {
                world.owner
            } else {
                world.owner2
            }
        }
        Role::Member => *rng.pick(&world.members),
        Role::Stranger => user(&format!("fuzz-stranger-{}", rng.below(1_000_000))),
        Role::Anonymous => Principal::anonymous(),
        Role::Admin => {
            if rng.percent(80) {
                world.env.admin
            } else {
                world.env.controller
            }
        }
    };
    (role, who)
}

/// The first line of a (Candid) error message, at most 300 characters.
fn short(msg: &str) -> String {
    let line = msg.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(300).collect();
    if out.len() < msg.len() {
        out.push_str(" [...]");
    }
    out
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    let mut s: String = bytes.iter().take(n).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > n {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

impl Report {
    /// The per-endpoint table and totals, as printed by the test and the binary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        out.push_str(&format!(
            "fuzz: seed {} | {} calls per endpoint | {} endpoints | {} calls in {} epochs of {} | setup {:.1?} | total {:.1?} | {} full stable checks\n",
            c.seed,
            c.calls_per_endpoint,
            self.endpoints.len(),
            self.calls,
            self.epochs,
            c.epoch_calls,
            self.setup,
            self.elapsed,
            self.full_checks
        ));
        out.push_str(&format!(
            "{:<29} {:>6} {:>6} {:>9} {:>9} {:>7} {:>9} {:>6}  answers\n",
            "endpoint", "calls", "ok", "max instr", "at arg", "/byte", "bound", "writes"
        ));
        for (name, s) in &self.endpoints {
            let errs: Vec<String> = s.errs.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let rejects: Vec<String> = s.rejects.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!(
                "{:<29} {:>6} {:>6} {:>9} {:>9} {:>7.1} {:>9} {:>6}  Err: {} | rejects: {}{}\n",
                name,
                s.calls,
                s.ok,
                fmt_m(s.max_instructions),
                fmt_arg(s.max_instructions_arg_len),
                s.max_per_byte,
                fmt_m(instruction_bound(name)),
                s.writing_refusals,
                if errs.is_empty() {
                    "-".into()
                } else {
                    errs.join(", ")
                },
                if rejects.is_empty() {
                    "-".into()
                } else {
                    rejects.join(", ")
                },
                if s.ignored_malformed > 0 {
                    format!(
                        " | malformed argument ignored (no parameters) {}",
                        s.ignored_malformed
                    )
                } else {
                    String::new()
                }
            ));
        }
        let mut kinds: BTreeMap<ArgKind, u64> = BTreeMap::new();
        for s in self.endpoints.values() {
            for (k, v) in &s.by_kind {
                *kinds.entry(*k).or_default() += v;
            }
        }
        out.push_str("arguments: ");
        out.push_str(
            &ArgKind::ALL
                .iter()
                .map(|k| format!("{} {}", k.name(), kinds.get(k).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push_str("\ncallers (calls / RateLimited): ");
        out.push_str(
            &Role::ALL
                .iter()
                .map(|r| {
                    let (n, rl) = self.roles.get(r).copied().unwrap_or((0, 0));
                    format!("{} {n} / {rl}", r.name())
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push_str(&format!("\nfailures: {}\n", self.failures.len()));
        for f in self.failures.iter().take(50) {
            out.push_str(&format!("  {f}\n"));
        }
        if self.failures.len() > 50 {
            out.push_str(&format!("  ... and {} more\n", self.failures.len() - 50));
        }
        out
    }
}

fn fmt_m(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{:.0}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

fn fmt_arg(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1}MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1024 {
        format!("{}KiB", n / 1024)
    } else {
        format!("{n}B")
    }
}
