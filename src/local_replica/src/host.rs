//! The host: one canister, its peers (ICP ledger model, management canister), the clock,
//! the message scheduler and fault injection.
//!
//! This module owns *scheduling*: call contexts, the task queue (ingress messages,
//! requests, responses, timer), delivery of calls performed by the canister to the
//! canister itself or to a peer, callbacks and cleanups, the "did not reply" rule,
//! timers driven by the controlled clock, install/upgrade atomicity, and the test API.

use crate::canister::{self, Canister, Entry, ExecOutcome, ExecRequest, LoadError};
use crate::costs;
use crate::ic0::{Env, ExecKind, Ic0Fault};
use crate::ledger::{ledger_principal, Ledger};
use crate::types::{OutCall, Reject, RejectCode, Reply, Response};
use candid::Principal;
use icp_ledger_types::AccountId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// 2026-01-01T00:00:00Z in nanoseconds since the epoch.
pub const DEFAULT_START_TIME_NS: u64 = 1_767_225_600_000_000_000;
/// Default canister id (the first id a local dfx replica assigns).
pub const DEFAULT_CANISTER_ID: &str = "bkyz2-fmaaa-aaaaa-qaaaq-cai";

/// Configuration of a [`Host`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostConfig {
    /// Initial clock (ns since the epoch).
    pub start_time_ns: u64,
    /// Clock advance per top-level operation (update, query, install...), in ns.
    pub tick_ns: u64,
    /// Seed of the deterministic randomness (`raw_rand`).
    pub seed: u64,
    /// Cycle balance reported to the canister.
    pub cycles: u128,
    /// Print the canister's `debug_print` output on stderr.
    pub print_debug: bool,
    /// The canister's id.
    pub canister_id: Principal,
    /// Instruction limit of update/callback/timer executions.
    pub update_limit: u64,
    /// Instruction limit of queries.
    pub query_limit: u64,
    /// Instruction limit of install/upgrade executions.
    pub install_limit: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            start_time_ns: DEFAULT_START_TIME_NS,
            tick_ns: 1_000_000,
            seed: 42,
            cycles: 100_000_000_000_000,
            print_debug: false,
            canister_id: Principal::from_text(DEFAULT_CANISTER_ID).expect("valid id"),
            update_limit: costs::UPDATE_LIMIT,
            query_limit: costs::QUERY_LIMIT,
            install_limit: costs::INSTALL_LIMIT,
        }
    }
}

/// Identifier of a submitted ingress message.
pub type MessageId = u64;

/// State of a submitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageStatus {
    /// Waiting in the queue or for calls to complete.
    Pending,
    /// Replied or rejected.
    Done(Response),
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    caller: Principal,
    method: String,
    arg: Vec<u8>,
    status: MessageStatus,
    first_instructions: u64,
    total_instructions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Ingress(MessageId),
    Canister(u64),
    System,
}

#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    origin: Origin,
    caller: Principal,
    method: String,
    replied: bool,
    outstanding: u32,
    instructions: u64,
    root: Option<MessageId>,
}

#[derive(Debug, Clone)]
pub(crate) struct Callback {
    ctx: u64,
    call: OutCall,
    made_at: u64,
    /// Cycles of `call.cycles` the callee kept (the rest is refunded with the response).
    kept: u128,
}

#[derive(Debug, Clone)]
pub(crate) enum Task {
    Ingress(MessageId),
    Request { callback: u64, bypass_hold: bool },
    Response { callback: u64, response: Response },
    Timer,
}

/// One execution, for `status` and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRecord {
    /// Kind of execution.
    pub kind: ExecKind,
    /// Method (or callback description).
    pub method: String,
    /// Instructions executed.
    pub instructions: u64,
    /// Trap message, if it trapped.
    pub trap: Option<String>,
    /// Host time of the execution.
    pub time_ns: u64,
}

/// One line of the canister log (`debug_print` of a replicated execution), as
/// `dfx canister logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Number of the line (from 0, never reused).
    pub idx: u64,
    /// Host time of the execution that printed it.
    pub time_ns: u64,
    /// The line.
    pub content: String,
}

/// Errors of install / upgrade.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The wasm is invalid.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `canister_init` / `pre_upgrade` / `post_upgrade` trapped; nothing changed.
    #[error("{0}")]
    Trapped(String),
    /// No canister installed.
    #[error("no canister is installed")]
    NotInstalled,
    /// A canister is already installed (use reinstall or upgrade).
    #[error("a canister is already installed")]
    AlreadyInstalled,
    /// Upgrade refused while calls are outstanding (the IC requires a stopped canister).
    #[error("the canister has {0} open call contexts; run the host to quiescence first")]
    Busy(usize),
    /// A stable memory image that is not a whole number of 64 KiB pages.
    #[error("a stable memory image of {0} bytes is not a whole number of 64 KiB pages")]
    StableImage(usize),
}

pub use crate::ledger::LedgerCall;

/// A call held by the host ([`Host::hold_calls_to`]), as listed by [`Host::list_held_calls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCall {
    /// Identifier to pass to [`Host::release_held_call`].
    pub id: u64,
    /// The callee.
    pub callee: Principal,
    /// The method called.
    pub method: String,
    /// Method of the call context that made the call (e.g. `verify_payment`,
    /// `canister_global_timer`).
    pub caller_method: String,
    /// The ingress message at the root of that call context (`None` for a timer).
    pub message: Option<MessageId>,
    /// Host time when the call was made.
    pub made_at: u64,
    /// The decoded request when the callee is the ledger.
    pub ledger: Option<LedgerCall>,
}

/// What happens to a held call released by [`Host::release_held_call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldOutcome {
    /// Delivered normally: the callee executes it, the caller gets its response.
    Deliver,
    /// Rejected without reaching the callee (nothing applied), e.g. `SysTransient` or
    /// `CanisterReject`.
    Reject {
        /// The reject code the caller sees.
        code: RejectCode,
        /// The reject message.
        message: String,
    },
    /// The callee executes it (the ledger applies a transfer) but the caller sees a
    /// `SysUnknown` reject.
    AppliedUnknown,
    /// The callee executes it, then the caller's reply (or reject) callback traps before
    /// running any code; its cleanup runs.
    AppliedThenTrap,
    /// A ledger `transfer` delivered after its dedup window passed: the ledger answers
    /// `TxTooOld` without applying it (see [`Host::release_held_call`]).
    TooOld,
}

/// Error of [`Host::release_held_call`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// No held call has this id.
    #[error("no held call {0}")]
    NotHeld(u64),
    /// `TooOld` needs a ledger `transfer` with a `created_at_time`.
    #[error("held call {0} is not a ledger transfer with a created_at_time")]
    NotATimedTransfer(u64),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RejectRule {
    method: String,
    remaining: u32,
    code: u32,
    message: String,
}

/// Fault injection settings (see the `Host` methods that set them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    reject_rules: Vec<RejectRule>,
    unknown_rules: Vec<(String, u32)>,
    trap_callbacks: u32,
    held_callees: BTreeSet<Principal>,
}

/// Status of the canister (for the CLI's `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterStatus {
    /// Canister id.
    pub id: Principal,
    /// Stable memory size in bytes.
    pub stable_memory_bytes: u64,
    /// Heap (linear memory) size in bytes.
    pub heap_bytes: u64,
    /// Global timer deadline (0 = none).
    pub global_timer_ns: u64,
    /// Cycle balance.
    pub cycles: u128,
    /// Canister version.
    pub version: u64,
    /// SHA-256 of the installed wasm (hex).
    pub module_hash: String,
    /// Controllers.
    pub controllers: Vec<Principal>,
}

/// The embedded IC host. See the crate docs for an example.
pub struct Host {
    pub(crate) config: HostConfig,
    pub(crate) engine: wasmi::Engine,
    pub(crate) now: u64,
    pub(crate) canister: Option<Canister>,
    pub(crate) controllers: Vec<Principal>,
    pub(crate) ledger: Ledger,
    pub(crate) rng_state: u64,
    pub(crate) faults: Faults,
    pub(crate) queue: VecDeque<Task>,
    pub(crate) held: Vec<u64>,
    pub(crate) contexts: BTreeMap<u64, CallContext>,
    pub(crate) callbacks: BTreeMap<u64, Callback>,
    pub(crate) messages: BTreeMap<MessageId, Message>,
    pub(crate) next_id: u64,
    pub(crate) records: VecDeque<ExecRecord>,
    pub(crate) logs: VecDeque<LogRecord>,
    pub(crate) next_log_idx: u64,
    pub(crate) timer_task_queued: bool,
    pub(crate) pending_unknown: BTreeSet<u64>,
    pub(crate) expired: BTreeMap<u64, Callback>,
    /// Outcomes chosen for held calls released one by one ([`Host::release_held_call`]).
    pub(crate) forced: BTreeMap<u64, HeldOutcome>,
    /// Callbacks whose response execution must trap (outcome `AppliedThenTrap`).
    pub(crate) trap_callback_of: BTreeSet<u64>,
    /// Calls the canister made to the management canister, per method.
    pub(crate) management_calls: BTreeMap<String, u64>,
}

const MAX_RECORDS: usize = 1_000;
/// Lines of the canister log kept (the oldest go first, like the IC's bounded log).
const MAX_LOG_RECORDS: usize = 10_000;

fn mgmt() -> Principal {
    Principal::management_canister()
}

impl Host {
    /// A host with no canister installed.
    pub fn new(config: HostConfig) -> Self {
        Host {
            now: config.start_time_ns,
            rng_state: config.seed,
            config,
            engine: canister::shared_engine(),
            canister: None,
            controllers: vec![],
            ledger: Ledger::new(),
            faults: Faults::default(),
            queue: VecDeque::new(),
            held: vec![],
            contexts: BTreeMap::new(),
            callbacks: BTreeMap::new(),
            messages: BTreeMap::new(),
            next_id: 1,
            records: VecDeque::new(),
            logs: VecDeque::new(),
            next_log_idx: 0,
            timer_task_queued: false,
            pending_unknown: BTreeSet::new(),
            expired: BTreeMap::new(),
            forced: BTreeMap::new(),
            trap_callback_of: BTreeSet::new(),
            management_calls: BTreeMap::new(),
        }
    }

    /// How many calls to the management canister's `method` (`raw_rand`, `vetkd_derive_key`,
    /// `vetkd_public_key`, ...) reached it, like [`Ledger::call_count`] for the ledger.
    pub fn management_call_count(&self, method: &str) -> u64 {
        self.management_calls.get(method).copied().unwrap_or(0)
    }

    /// The configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The canister id (whether installed or not).
    pub fn canister_id(&self) -> Principal {
        self.config.canister_id
    }

    /// Whether a canister is installed.
    pub fn is_installed(&self) -> bool {
        self.canister.is_some()
    }

    /// Host clock (ns since the epoch).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Sets the clock (must not go backwards); fires due timers.
    pub fn set_time(&mut self, ns: u64) {
        if ns > self.now {
            self.advance_time(Duration::from_nanos(ns - self.now));
        }
    }

    /// The ledger model.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger model, mutable (funding, direct transfers).
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// Mints `e8s` to `account` at the current time.
    pub fn fund(&mut self, account: AccountId, e8s: u64) -> u64 {
        let now = self.now;
        self.ledger.mint(account, e8s, now)
    }

    /// A wallet transfer by `from` (default subaccount, fee 10_000) at the current time.
    pub fn ledger_transfer_as(
        &mut self,
        from: &Principal,
        to: AccountId,
        amount: u64,
    ) -> crate::ledger::TransferResult {
        let now = self.now;
        self.ledger.transfer_as(from, to, amount, now)
    }

    /// The last executions (most recent last).
    pub fn executions(&self) -> impl Iterator<Item = &ExecRecord> {
        self.records.iter()
    }

    /// Debug output and trap messages are not stored per execution; this returns the
    /// canister status.
    pub fn status(&self) -> Option<CanisterStatus> {
        let c = self.canister.as_ref()?;
        let env = c.env();
        use sha2::Digest;
        Some(CanisterStatus {
            id: self.config.canister_id,
            stable_memory_bytes: env.stable.len() as u64,
            heap_bytes: c.heap_size() as u64,
            global_timer_ns: env.global_timer,
            cycles: env.cycles,
            version: env.version,
            module_hash: hex::encode(sha2::Sha256::digest(&c.wasm)),
            controllers: self.controllers.clone(),
        })
    }

    /// The canister's cycle balance: `HostConfig::cycles` at install, less the cycles its
    /// calls attached and the callees kept (e.g. vetKD fees).
    pub fn cycle_balance(&self) -> u128 {
        self.canister
            .as_ref()
            .map_or(self.config.cycles, |c| c.env().cycles)
    }

    /// Stable memory bytes.
    pub fn stable_memory(&self) -> Option<&[u8]> {
        self.canister.as_ref().map(|c| &c.env().stable[..])
    }

    /// Replaces the installed canister's stable memory with `image` (a whole number of
    /// 64 KiB pages), like loading a canister snapshot's stable memory on the IC: e.g. to
    /// upgrade a module over a memory image written elsewhere. The heap stays as it is, so
    /// a module that caches anything of stable memory in its heap should be upgraded (or
    /// hold nothing) before it runs again. Refused while calls are open; stops neither
    /// write tracking (its record is emptied: every page may have changed).
    pub fn set_stable_memory(&mut self, image: Vec<u8>) -> Result<(), HostError> {
        if !self.contexts.is_empty() {
            return Err(HostError::Busy(self.contexts.len()));
        }
        if !image.len().is_multiple_of(65_536) {
            return Err(HostError::StableImage(image.len()));
        }
        let env = self
            .canister
            .as_mut()
            .ok_or(HostError::NotInstalled)?
            .env_mut();
        env.stable = image;
        if let Some(dirty) = env.written_pages.as_mut() {
            dirty.clear();
        }
        // No longer derived from a `HostSnapshot` base: its next restore copies everything.
        env.stable_base = None;
        env.snapshot_dirty.clear();
        Ok(())
    }

    /// The canister's global timer deadline (ns; 0 = none). Cheaper than [`Host::status`].
    pub fn global_timer(&self) -> u64 {
        self.canister.as_ref().map_or(0, |c| c.env().global_timer)
    }

    /// Starts recording which 64 KiB pages of stable memory executions write (see
    /// [`Host::take_stable_dirty_pages`]); restarts with an empty record if already on. Lets a
    /// test check that a call left stable memory byte-identical by comparing only the pages
    /// written instead of the whole memory. Growth is not recorded (compare the length).
    /// The record belongs to the instance: an upgrade or reinstall stops it.
    pub fn track_stable_writes(&mut self) {
        if let Some(c) = self.canister.as_mut() {
            c.env_mut().written_pages = Some(BTreeSet::new());
        }
    }

    /// The pages (index = byte offset / 65 536, ascending) written since tracking started or
    /// since the last call, including writes of executions that trapped or were queries (their
    /// bytes were rolled back, so the pages may be unchanged); resets the record. `None` when
    /// not tracking.
    pub fn take_stable_dirty_pages(&mut self) -> Option<Vec<u64>> {
        let env = self.canister.as_mut()?.env_mut();
        let dirty = env.written_pages.as_mut()?;
        Some(std::mem::take(dirty).into_iter().collect())
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn tick(&mut self) {
        self.now += self.config.tick_ns;
    }

    pub(crate) fn base_env(&self, stable: Vec<u8>, version: u64) -> Env {
        Env {
            self_id: self.config.canister_id.as_slice().to_vec(),
            stable,
            controllers: self
                .controllers
                .iter()
                .map(|p| p.as_slice().to_vec())
                .collect(),
            version,
            cycles: self.config.cycles,
            print_debug: self.config.print_debug,
            ..Default::default()
        }
    }

    /// The canister log: `debug_print` lines of replicated executions (updates, callbacks,
    /// timers, install and upgrade hooks; those that trapped too), oldest first. Like on the
    /// IC, queries and `inspect_message` leave no line.
    pub fn canister_logs(&self) -> impl Iterator<Item = &LogRecord> {
        self.logs.iter()
    }

    fn record(&mut self, kind: ExecKind, method: &str, out: &ExecOutcome) {
        if !matches!(kind, ExecKind::Query | ExecKind::Inspect) {
            for line in &out.debug {
                if self.logs.len() >= MAX_LOG_RECORDS {
                    self.logs.pop_front();
                }
                self.logs.push_back(LogRecord {
                    idx: self.next_log_idx,
                    time_ns: self.now,
                    content: line.clone(),
                });
                self.next_log_idx += 1;
            }
        }
        if self.records.len() >= MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(ExecRecord {
            kind,
            method: method.to_string(),
            instructions: out.instructions,
            trap: out.trap.clone(),
            time_ns: self.now,
        });
    }

    fn lifecycle_request(
        &self,
        kind: ExecKind,
        name: &str,
        caller: Principal,
        arg: Vec<u8>,
    ) -> ExecRequest {
        ExecRequest {
            kind,
            entry: Entry::Export(name.to_string()),
            caller: caller.as_slice().to_vec(),
            arg,
            method: name.to_string(),
            reject: None,
            can_reply: false,
            time: self.now,
            limit: self.config.install_limit,
            persist: true,
            ctx_instructions: 0,
            force_trap: None,
        }
    }

    /// Installs `wasm` and runs `canister_init` with `arg` as `controller`. Atomic: if
    /// init traps nothing is installed. Returns the canister id.
    pub fn install(
        &mut self,
        wasm: &[u8],
        arg: Vec<u8>,
        controller: Principal,
    ) -> Result<Principal, HostError> {
        if self.canister.is_some() {
            return Err(HostError::AlreadyInstalled);
        }
        self.install_inner(wasm, arg, controller, 0)
    }

    /// Reinstalls: discards heap and stable memory, installs `wasm` and runs init.
    /// Atomic: on a trap the previous canister stays.
    pub fn reinstall(
        &mut self,
        wasm: &[u8],
        arg: Vec<u8>,
        controller: Principal,
    ) -> Result<Principal, HostError> {
        if !self.contexts.is_empty() {
            return Err(HostError::Busy(self.contexts.len()));
        }
        let old = self.canister.take();
        let old_controllers = self.controllers.clone();
        let version = old.as_ref().map(|c| c.env().version + 1).unwrap_or(0);
        match self.install_inner(wasm, arg, controller, version) {
            Ok(id) => Ok(id),
            Err(e) => {
                self.canister = old;
                self.controllers = old_controllers;
                Err(e)
            }
        }
    }

    fn install_inner(
        &mut self,
        wasm: &[u8],
        arg: Vec<u8>,
        controller: Principal,
        version: u64,
    ) -> Result<Principal, HostError> {
        self.tick();
        self.controllers = vec![controller];
        let env = self.base_env(Vec::new(), version);
        let mut c = Canister::new(&self.engine, wasm, env)?;
        if c.has_export("canister_init") {
            let req = self.lifecycle_request(ExecKind::Init, "canister_init", controller, arg);
            let out = c.execute(req);
            self.record(ExecKind::Init, "canister_init", &out);
            if let Some(t) = out.trap {
                return Err(HostError::Trapped(t));
            }
        }
        self.canister = Some(c);
        self.run_until_idle();
        Ok(self.config.canister_id)
    }

    /// Upgrades to `wasm`: `canister_pre_upgrade` on the old instance, a fresh instance of
    /// the new module over the same stable memory, `canister_post_upgrade` with `arg`.
    /// Atomic: on any trap the old instance and stable memory stay. The global timer is
    /// reset to 0 (as on the IC).
    pub fn upgrade(&mut self, wasm: &[u8], arg: Vec<u8>) -> Result<(), HostError> {
        self.upgrade_held(wasm, arg)?;
        self.run_until_idle();
        Ok(())
    }

    /// [`Self::upgrade`], but what `post_upgrade` left queued (a timer due at once) waits
    /// for the next call, clock move or [`Self::run_until_idle`]: a test can read the
    /// stable memory exactly as `post_upgrade` wrote it.
    pub fn upgrade_held(&mut self, wasm: &[u8], arg: Vec<u8>) -> Result<(), HostError> {
        if !self.contexts.is_empty() {
            return Err(HostError::Busy(self.contexts.len()));
        }
        self.tick();
        let controller = self
            .controllers
            .first()
            .copied()
            .unwrap_or(self.config.canister_id);
        let old = self.canister.as_mut().ok_or(HostError::NotInstalled)?;
        let heap_before = old.snapshot();
        let stable_before = old.env().stable.clone();
        let timer_before = old.env().global_timer;
        if old.has_export("canister_pre_upgrade") {
            let req = self.lifecycle_request(
                ExecKind::PreUpgrade,
                "canister_pre_upgrade",
                controller,
                vec![],
            );
            let old = self.canister.as_mut().ok_or(HostError::NotInstalled)?;
            let out = old.execute(req);
            self.record(ExecKind::PreUpgrade, "canister_pre_upgrade", &out);
            if let Some(t) = out.trap {
                return Err(HostError::Trapped(t));
            }
        }
        let old = self.canister.as_mut().ok_or(HostError::NotInstalled)?;
        let version = old.env().version + 1;
        let stable = old.env().stable.clone();
        let cycles = old.env().cycles;
        let restore_old = |host: &mut Host| {
            if let Some(old) = host.canister.as_mut() {
                let _ = old.restore(&heap_before);
                old.env_mut().stable = stable_before.clone();
                old.env_mut().global_timer = timer_before;
            }
        };
        let mut env = self.base_env(stable, version);
        env.cycles = cycles;
        let mut new = match Canister::new(&self.engine, wasm, env) {
            Ok(c) => c,
            Err(e) => {
                restore_old(self);
                return Err(e.into());
            }
        };
        if new.has_export("canister_post_upgrade") {
            let req = self.lifecycle_request(
                ExecKind::PostUpgrade,
                "canister_post_upgrade",
                controller,
                arg,
            );
            let out = new.execute(req);
            self.record(ExecKind::PostUpgrade, "canister_post_upgrade", &out);
            if let Some(t) = out.trap {
                restore_old(self);
                return Err(HostError::Trapped(t));
            }
        }
        self.canister = Some(new);
        Ok(())
    }

    // ---------------------------------------------------------------- messages

    /// Submits an ingress update without running it (see [`Host::step`],
    /// [`Host::run_until_idle`], [`Host::await_reply`]). `canister_inspect_message`, if
    /// exported, runs now; a message it does not accept is rejected at once.
    pub fn submit_update(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> MessageId {
        self.tick();
        let id = self.fresh_id();
        let mut msg = Message {
            caller,
            method: method.to_string(),
            arg,
            status: MessageStatus::Pending,
            first_instructions: 0,
            total_instructions: 0,
        };
        if let Err(r) = self.inspect(&msg) {
            msg.status = MessageStatus::Done(Response::Reject(r.code as u32, r.message));
            self.messages.insert(id, msg);
            return id;
        }
        self.messages.insert(id, msg);
        self.queue.push_back(Task::Ingress(id));
        id
    }

    fn inspect(&mut self, msg: &Message) -> Result<(), Reject> {
        let id = self.config.canister_id;
        let Some(c) = self.canister.as_mut() else {
            return Err(Reject::new(
                RejectCode::DestinationInvalid,
                format!("Canister {id} is empty (no module installed)"),
            ));
        };
        if !c.has_export("canister_inspect_message") {
            return Ok(());
        }
        let req = ExecRequest {
            kind: ExecKind::Inspect,
            entry: Entry::Export("canister_inspect_message".into()),
            caller: msg.caller.as_slice().to_vec(),
            arg: msg.arg.clone(),
            method: msg.method.clone(),
            reject: None,
            can_reply: false,
            time: self.now,
            limit: self.config.query_limit,
            persist: false,
            ctx_instructions: 0,
            force_trap: None,
        };
        let out = c.execute(req);
        self.record(ExecKind::Inspect, &msg.method, &out);
        if let Some(t) = out.trap {
            return Err(Reject::new(
                RejectCode::CanisterError,
                format!("Canister {id} rejected the message (inspect_message trapped): {t}"),
            ));
        }
        if !out.accepted {
            return Err(Reject::new(
                RejectCode::CanisterReject,
                format!("Canister {id} rejected the message (inspect_message did not accept it)"),
            ));
        }
        Ok(())
    }

    /// Status of a submitted message.
    pub fn message_status(&self, id: MessageId) -> Option<&MessageStatus> {
        self.messages.get(&id).map(|m| &m.status)
    }

    fn message_result(&self, id: MessageId) -> Option<Result<Reply, Reject>> {
        let m = self.messages.get(&id)?;
        match &m.status {
            MessageStatus::Pending => None,
            MessageStatus::Done(Response::Reply(b)) => Some(Ok(Reply {
                bytes: b.clone(),
                instructions: m.first_instructions,
                total_instructions: m.total_instructions,
            })),
            MessageStatus::Done(Response::Reject(code, msg)) => Some(Err(Reject {
                code: RejectCode::from_u32(*code),
                message: msg.clone(),
                total_instructions: m.total_instructions,
            })),
        }
    }

    /// Runs until `id` is answered (and then until idle). Errs with `SysTransient` if the
    /// host becomes idle without an answer (e.g. blocked on held calls).
    pub fn await_reply(&mut self, id: MessageId) -> Result<Reply, Reject> {
        loop {
            if let Some(r) = self.message_result(id) {
                self.run_until_idle();
                return self.message_result(id).unwrap_or(r);
            }
            if !self.step() {
                return Err(Reject::new(
                    RejectCode::SysTransient,
                    format!("message {id} is blocked (held calls or unknown message id)"),
                ));
            }
        }
    }

    /// Update call: submit + run to quiescence. `Ok(reply)` or `Err(reject)`.
    pub fn update(
        &mut self,
        caller: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Reply, Reject> {
        let id = self.submit_update(caller, method, arg);
        let result = self.await_reply(id);
        // Nobody else knows the id: keep no record (and no copy of the argument) once the
        // message is answered, so long runs of calls do not accumulate them.
        if matches!(self.messages.get(&id), Some(m) if m.status != MessageStatus::Pending) {
            self.messages.remove(&id);
        }
        result
    }

    /// Query call: runs `canister_query <method>`; never persists anything.
    pub fn query(
        &mut self,
        caller: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Reply, Reject> {
        self.tick();
        let id = self.config.canister_id;
        let Some(c) = self.canister.as_mut() else {
            return Err(Reject::new(
                RejectCode::DestinationInvalid,
                format!("Canister {id} is empty (no module installed)"),
            ));
        };
        let export = format!("canister_query {method}");
        let export = if c.has_export(&export) {
            export
        } else if c.has_export(&format!("canister_composite_query {method}")) {
            format!("canister_composite_query {method}")
        } else {
            return Err(Reject::new(
                RejectCode::DestinationInvalid,
                format!("Canister {id} has no query method '{method}'"),
            ));
        };
        let req = ExecRequest {
            kind: ExecKind::Query,
            entry: Entry::Export(export),
            caller: caller.as_slice().to_vec(),
            arg,
            method: method.to_string(),
            reject: None,
            can_reply: true,
            time: self.now,
            limit: self.config.query_limit,
            persist: false,
            ctx_instructions: 0,
            force_trap: None,
        };
        let out = c.execute(req);
        self.record(ExecKind::Query, method, &out);
        let n = out.instructions;
        let reject = |code, message| Reject {
            code,
            message,
            total_instructions: n,
        };
        if let Some(t) = out.trap {
            return Err(reject(RejectCode::CanisterError, t));
        }
        match out.response {
            Some(Response::Reply(bytes)) => Ok(Reply {
                bytes,
                instructions: n,
                total_instructions: n,
            }),
            Some(Response::Reject(code, m)) => Err(reject(RejectCode::from_u32(code), m)),
            None => Err(reject(
                RejectCode::CanisterError,
                format!("Canister {id} did not produce a response"),
            )),
        }
    }

    // ---------------------------------------------------------------- scheduler

    /// Processes everything runnable (queued tasks and due timers) until idle. Held calls
    /// stay held.
    pub fn run_until_idle(&mut self) {
        let mut timer_runs = 0u32;
        loop {
            if self.queue.is_empty() {
                if timer_runs >= 10_000 || !self.enqueue_timer_if_due() {
                    return;
                }
                timer_runs += 1;
            }
            self.step();
        }
    }

    /// Processes one task (or queues a due timer). Returns false when nothing was runnable.
    pub fn step(&mut self) -> bool {
        let task = match self.queue.pop_front() {
            Some(t) => t,
            None => {
                if !self.enqueue_timer_if_due() {
                    return false;
                }
                match self.queue.pop_front() {
                    Some(t) => t,
                    None => return false,
                }
            }
        };
        match task {
            Task::Ingress(id) => self.run_ingress(id),
            Task::Request {
                callback,
                bypass_hold,
            } => self.run_request(callback, bypass_hold),
            Task::Response { callback, response } => self.run_response(callback, response),
            Task::Timer => self.run_timer(),
        }
        true
    }

    /// Number of tasks waiting in the queue (not counting held calls).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn enqueue_timer_if_due(&mut self) -> bool {
        if self.timer_task_queued {
            return false;
        }
        let Some(c) = self.canister.as_mut() else {
            return false;
        };
        let t = c.env().global_timer;
        if t == 0 || t > self.now || !c.has_export("canister_global_timer") {
            return false;
        }
        // The IC resets the timer before running canister_global_timer.
        c.env_mut().global_timer = 0;
        self.timer_task_queued = true;
        self.queue.push_back(Task::Timer);
        true
    }

    /// Advances the clock by `d`, firing the global timer at each deadline passed, and
    /// runs until idle.
    pub fn advance_time(&mut self, d: Duration) {
        let target = self.now.saturating_add(d.as_nanos() as u64);
        self.run_until_idle();
        loop {
            let t = self
                .canister
                .as_ref()
                .map(|c| c.env().global_timer)
                .unwrap_or(0);
            if t != 0 && t <= target && t > self.now {
                self.now = t;
                self.expire_best_effort();
                self.run_until_idle();
            } else {
                break;
            }
        }
        self.now = self.now.max(target);
        self.expire_best_effort();
        self.run_until_idle();
    }

    fn new_context(
        &mut self,
        origin: Origin,
        caller: Principal,
        method: &str,
        root: Option<MessageId>,
    ) -> u64 {
        let id = self.fresh_id();
        self.contexts.insert(
            id,
            CallContext {
                origin,
                caller,
                method: method.to_string(),
                replied: false,
                outstanding: 0,
                instructions: 0,
                root,
            },
        );
        id
    }

    fn exec_in_context(
        &mut self,
        ctx_id: u64,
        kind: ExecKind,
        entry: Entry,
        arg: Vec<u8>,
        reject: Option<(u32, String)>,
        force_trap: Option<String>,
    ) -> Option<ExecOutcome> {
        let ctx = self.contexts.get(&ctx_id)?.clone();
        let persist = kind != ExecKind::Query;
        let limit = if kind == ExecKind::Query {
            self.config.query_limit
        } else {
            self.config.update_limit
        };
        let req = ExecRequest {
            kind,
            entry,
            caller: ctx.caller.as_slice().to_vec(),
            arg,
            method: ctx.method.clone(),
            reject,
            can_reply: !ctx.replied && kind != ExecKind::Cleanup && kind != ExecKind::Timer,
            time: self.now,
            limit,
            persist,
            ctx_instructions: ctx.instructions,
            force_trap,
        };
        let c = self.canister.as_mut()?;
        let out = c.execute(req);
        let label = match kind {
            ExecKind::ReplyCallback => format!("{} (reply callback)", ctx.method),
            ExecKind::RejectCallback => format!("{} (reject callback)", ctx.method),
            ExecKind::Cleanup => format!("{} (cleanup)", ctx.method),
            _ => ctx.method.clone(),
        };
        self.record(kind, &label, &out);
        if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
            ctx.instructions += out.instructions;
            if let Some(root) = ctx.root {
                if let Some(m) = self.messages.get_mut(&root) {
                    m.total_instructions += out.instructions;
                }
            }
        }
        Some(out)
    }

    /// Applies an execution's effects to its call context (calls, response, no-reply rule).
    fn finish_execution(&mut self, ctx_id: u64, out: ExecOutcome) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        let mut to_deliver = None;
        let mut new_callbacks = vec![];
        if out.trap.is_none() {
            for call in out.calls {
                ctx.outstanding += 1;
                new_callbacks.push(call);
            }
            if let Some(r) = out.response {
                ctx.replied = true;
                to_deliver = Some((ctx.origin, r));
            }
        }
        if !ctx.replied && ctx.outstanding == 0 {
            ctx.replied = true;
            let msg = match &out.trap {
                Some(t) => t.clone(),
                None => format!(
                    "Canister {} did not produce a response",
                    self.config.canister_id
                ),
            };
            to_deliver = Some((
                ctx.origin,
                Response::Reject(RejectCode::CanisterError as u32, msg),
            ));
        }
        let done = ctx.replied && ctx.outstanding == 0;
        for call in new_callbacks {
            let cb = self.fresh_id();
            self.callbacks.insert(
                cb,
                Callback {
                    ctx: ctx_id,
                    call,
                    made_at: self.now,
                    kept: 0,
                },
            );
            self.queue.push_back(Task::Request {
                callback: cb,
                bypass_hold: false,
            });
        }
        if let Some((origin, r)) = to_deliver {
            self.deliver(origin, r);
        }
        if done {
            self.contexts.remove(&ctx_id);
        }
    }

    fn deliver(&mut self, origin: Origin, r: Response) {
        match origin {
            Origin::Ingress(id) => {
                if let Some(m) = self.messages.get_mut(&id) {
                    m.status = MessageStatus::Done(r);
                }
            }
            Origin::Canister(cb) => self.queue.push_back(Task::Response {
                callback: cb,
                response: r,
            }),
            Origin::System => {}
        }
    }

    fn run_ingress(&mut self, id: MessageId) {
        let Some(m) = self.messages.get(&id).cloned() else {
            return;
        };
        let cid = self.config.canister_id;
        let export = format!("canister_update {}", m.method);
        let exists = self.canister.as_ref().map(|c| c.has_export(&export));
        match exists {
            None => {
                self.deliver(
                    Origin::Ingress(id),
                    Response::Reject(3, format!("Canister {cid} is empty (no module installed)")),
                );
                return;
            }
            Some(false) => {
                self.deliver(
                    Origin::Ingress(id),
                    Response::Reject(
                        3,
                        format!("Canister {cid} has no update method '{}'", m.method),
                    ),
                );
                return;
            }
            Some(true) => {}
        }
        let ctx = self.new_context(Origin::Ingress(id), m.caller, &m.method, Some(id));
        if let Some(out) = self.exec_in_context(
            ctx,
            ExecKind::Update,
            Entry::Export(export),
            m.arg.clone(),
            None,
            None,
        ) {
            if let Some(msg) = self.messages.get_mut(&id) {
                msg.first_instructions = out.instructions;
            }
            self.finish_execution(ctx, out);
        }
    }

    fn run_timer(&mut self) {
        self.timer_task_queued = false;
        let cid = self.config.canister_id;
        let ctx = self.new_context(Origin::System, cid, "canister_global_timer", None);
        if let Some(out) = self.exec_in_context(
            ctx,
            ExecKind::Timer,
            Entry::Export("canister_global_timer".into()),
            vec![],
            None,
            None,
        ) {
            self.finish_execution(ctx, out);
        }
    }

    fn peer_fault(&mut self, method: &str) -> Option<Response> {
        if let Some(rule) = self
            .faults
            .reject_rules
            .iter_mut()
            .find(|r| r.remaining > 0 && (r.method == method || r.method == "*"))
        {
            rule.remaining -= 1;
            return Some(Response::Reject(rule.code, rule.message.clone()));
        }
        None
    }

    fn unknown_fault(&mut self, method: &str) -> bool {
        if let Some(rule) = self
            .faults
            .unknown_rules
            .iter_mut()
            .find(|r| r.1 > 0 && (r.0 == method || r.0 == "*"))
        {
            rule.1 -= 1;
            return true;
        }
        false
    }

    fn run_request(&mut self, cb_id: u64, bypass_hold: bool) {
        if let Some(cb) = self.expired.remove(&cb_id) {
            // A best-effort call whose caller already got SYS_UNKNOWN: the callee still
            // executes it; its response is dropped.
            self.deliver_dropped(&cb);
            return;
        }
        let Some(cb) = self.callbacks.get(&cb_id).cloned() else {
            return;
        };
        let cid = self.config.canister_id;
        let callee = match Principal::try_from_slice(&cb.call.callee) {
            Ok(p) => p,
            Err(_) => {
                self.respond(
                    cb_id,
                    Response::Reject(3, "invalid callee principal".into()),
                );
                return;
            }
        };
        if !bypass_hold && self.faults.held_callees.contains(&callee) {
            self.held.push(cb_id);
            return;
        }
        // An outcome chosen when the call was released overrides the fault rules.
        let unknown = match self.forced.remove(&cb_id) {
            Some(HeldOutcome::Reject { code, message }) => {
                self.respond(cb_id, Response::Reject(code as u32, message));
                return;
            }
            Some(HeldOutcome::AppliedUnknown) => true,
            Some(HeldOutcome::AppliedThenTrap) => {
                self.trap_callback_of.insert(cb_id);
                false
            }
            Some(HeldOutcome::Deliver | HeldOutcome::TooOld) => false,
            None => {
                if let Some(r) = self.peer_fault(&cb.call.method) {
                    self.respond(cb_id, r);
                    return;
                }
                self.unknown_fault(&cb.call.method)
            }
        };
        let response = if callee == cid {
            // Self-call: a new call context in the canister.
            self.self_call(cb_id, &cb);
            if unknown {
                // The callee runs, but the caller sees an unknown outcome.
                self.pending_unknown.insert(cb_id);
            }
            return;
        } else if callee == ledger_principal() {
            let now = self.now;
            match self
                .ledger
                .handle_call(&cid, &cb.call.method, &cb.call.arg, now)
            {
                Ok(bytes) => Response::Reply(bytes),
                Err((code, msg)) => Response::Reject(code, msg),
            }
        } else if callee == mgmt() {
            let (response, kept) = self.management(&cb.call.method, &cb.call.arg, cb.call.cycles);
            if let Some(c) = self.callbacks.get_mut(&cb_id) {
                c.kept = kept;
            }
            response
        } else {
            Response::Reject(3, format!("Canister {callee} not found"))
        };
        let response = if unknown {
            unknown_response()
        } else {
            response
        };
        self.respond(cb_id, response);
    }

    fn deliver_dropped(&mut self, cb: &Callback) {
        let cid = self.config.canister_id;
        let Ok(callee) = Principal::try_from_slice(&cb.call.callee) else {
            return;
        };
        if callee == ledger_principal() {
            let now = self.now;
            let _ = self
                .ledger
                .handle_call(&cid, &cb.call.method, &cb.call.arg, now);
        } else if callee == mgmt() {
            let _ = self.management(&cb.call.method, &cb.call.arg, cb.call.cycles);
        }
    }

    /// Held best-effort calls whose timeout passed: the caller gets `SysUnknown`; the
    /// request itself stays held and is executed (response dropped) when released.
    fn expire_best_effort(&mut self) {
        let now = self.now;
        for cb_id in self.held.clone() {
            let Some(cb) = self.callbacks.get(&cb_id) else {
                continue;
            };
            let Some(t) = cb.call.timeout_seconds else {
                continue;
            };
            if now >= cb.made_at + t as u64 * 1_000_000_000 && !self.expired.contains_key(&cb_id) {
                self.expired.insert(cb_id, cb.clone());
                self.queue.push_back(Task::Response {
                    callback: cb_id,
                    response: Response::Reject(
                        RejectCode::SysUnknown as u32,
                        "Timeout expired: deadline of the best-effort call passed".into(),
                    ),
                });
            }
        }
    }

    fn self_call(&mut self, cb_id: u64, cb: &Callback) {
        let root = self.contexts.get(&cb.ctx).and_then(|c| c.root);
        let cid = self.config.canister_id;
        let (export, kind) = {
            let Some(c) = self.canister.as_ref() else {
                self.respond(
                    cb_id,
                    Response::Reject(3, format!("Canister {cid} is empty")),
                );
                return;
            };
            let u = format!("canister_update {}", cb.call.method);
            let q = format!("canister_query {}", cb.call.method);
            if c.has_export(&u) {
                (u, ExecKind::Update)
            } else if c.has_export(&q) {
                (q, ExecKind::Query)
            } else {
                self.respond(
                    cb_id,
                    Response::Reject(
                        3,
                        format!("Canister {cid} has no update method '{}'", cb.call.method),
                    ),
                );
                return;
            }
        };
        let ctx = self.new_context(Origin::Canister(cb_id), cid, &cb.call.method, root);
        if let Some(out) = self.exec_in_context(
            ctx,
            kind,
            Entry::Export(export),
            cb.call.arg.clone(),
            None,
            None,
        ) {
            self.finish_execution(ctx, out);
        }
    }

    /// A call to the management canister with `cycles` attached: the response and the
    /// cycles kept (the vetKD fee; everything else is refunded).
    fn management(&mut self, method: &str, arg: &[u8], cycles: u128) -> (Response, u128) {
        *self.management_calls.entry(method.to_string()).or_default() += 1;
        let caller = self.config.canister_id;
        let reject = |e: crate::vetkd::VetKdError| Response::Reject(4, e.to_string());
        match method {
            "vetkd_public_key" => {
                let r = crate::vetkd::handle_public_key(&caller, arg);
                return (r.map_or_else(reject, Response::Reply), 0);
            }
            "vetkd_derive_key" => {
                let fee = match crate::vetkd::derive_key_name(arg) {
                    Ok(name) => match crate::vetkd::fee(&name) {
                        Some(fee) => fee,
                        None => return (reject(crate::vetkd::VetKdError::UnknownKey(name)), 0),
                    },
                    Err(e) => return (reject(e), 0),
                };
                if cycles < fee {
                    let msg = format!(
                        "vetkd_derive_key request sent with {cycles} cycles, but {fee} cycles \
                         are required."
                    );
                    return (Response::Reject(4, msg), 0);
                }
                let mut seed = [0u8; 64];
                for chunk in seed.chunks_exact_mut(8) {
                    chunk.copy_from_slice(&self.next_rand().to_le_bytes());
                }
                return match crate::vetkd::handle_derive_key(&caller, arg, &seed) {
                    Ok(bytes) => (Response::Reply(bytes), fee),
                    Err(e) => (reject(e), 0),
                };
            }
            _ => {}
        }
        let response = match method {
            "raw_rand" => {
                let mut bytes = Vec::with_capacity(32);
                for _ in 0..4 {
                    bytes.extend_from_slice(&self.next_rand().to_le_bytes());
                }
                match candid::encode_one(serde_bytes::ByteBuf::from(bytes)) {
                    Ok(b) => Response::Reply(b),
                    Err(e) => Response::Reject(5, e.to_string()),
                }
            }
            _ => Response::Reject(
                3,
                format!(
                    "management canister method '{method}' is not supported by the local replica"
                ),
            ),
        };
        (response, 0)
    }

    fn next_rand(&mut self) -> u64 {
        // splitmix64
        self.rng_state = self.rng_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn respond(&mut self, cb_id: u64, r: Response) {
        self.queue.push_back(Task::Response {
            callback: cb_id,
            response: r,
        });
    }

    fn run_response(&mut self, cb_id: u64, response: Response) {
        let response = if self.pending_unknown.remove(&cb_id) {
            unknown_response()
        } else {
            response
        };
        let Some(cb) = self.callbacks.remove(&cb_id) else {
            return;
        };
        let ctx_id = cb.ctx;
        match self.contexts.get_mut(&ctx_id) {
            Some(ctx) => ctx.outstanding = ctx.outstanding.saturating_sub(1),
            None => return,
        }
        // Unused attached cycles return to the balance with the response.
        let refund = cb.call.cycles.saturating_sub(cb.kept);
        if let Some(c) = self.canister.as_mut() {
            let env = c.env_mut();
            env.cycles = env.cycles.saturating_add(refund);
            env.cycles_refunded = refund;
        }
        let force_trap = if self.trap_callback_of.remove(&cb_id) {
            Some(format!(
                "Canister {} trapped: injected fault in the callback of a released call",
                self.config.canister_id
            ))
        } else if self.faults.trap_callbacks > 0 {
            self.faults.trap_callbacks -= 1;
            Some(format!(
                "Canister {} trapped: injected fault in callback",
                self.config.canister_id
            ))
        } else {
            None
        };
        let (kind, entry, arg, reject) = match response {
            Response::Reply(bytes) => (
                ExecKind::ReplyCallback,
                Entry::Callback(cb.call.reply.0, cb.call.reply.1),
                bytes,
                None,
            ),
            Response::Reject(code, msg) => (
                ExecKind::RejectCallback,
                Entry::Callback(cb.call.reject.0, cb.call.reject.1),
                vec![],
                Some((code, msg)),
            ),
        };
        let out = self.exec_in_context(ctx_id, kind, entry, arg, reject, force_trap);
        if let Some(c) = self.canister.as_mut() {
            c.env_mut().cycles_refunded = 0;
        }
        let Some(out) = out else {
            return;
        };
        if out.trap.is_some() {
            if let Some((fun, env)) = cb.call.cleanup {
                if let Some(cleanup) = self.exec_in_context(
                    ctx_id,
                    ExecKind::Cleanup,
                    Entry::Callback(fun, env),
                    vec![],
                    None,
                    None,
                ) {
                    // The cleanup's own effects persist unless it traps; it cannot reply or call.
                    let _ = cleanup;
                }
            }
        }
        self.finish_execution(ctx_id, out);
    }

    // ---------------------------------------------------------------- faults

    /// The next `n` calls from the canister to `method` (of any callee; `"*"` = any method)
    /// are rejected with `code`/`message` without reaching the callee.
    pub fn fail_next_calls(&mut self, method: &str, n: u32, code: RejectCode, message: &str) {
        self.faults.reject_rules.push(RejectRule {
            method: method.to_string(),
            remaining: n,
            code: code as u32,
            message: message.to_string(),
        });
    }

    /// The next `n` calls to `method` reach the callee (the ledger applies the transfer)
    /// but the canister sees a `SysUnknown` (6) reject, as with a timed-out best-effort
    /// call.
    pub fn unknown_outcome_next_calls(&mut self, method: &str, n: u32) {
        self.faults.unknown_rules.push((method.to_string(), n));
    }

    /// The next `n` reply/reject callback executions trap before running any code (their
    /// cleanup callbacks run). Use it for "a trap after a successful ledger transfer but
    /// before it is recorded".
    pub fn trap_next_callbacks(&mut self, n: u32) {
        self.faults.trap_callbacks += n;
    }

    /// The canister traps on the `nth` call (1 = next) of the ic0 function `name`, in any
    /// execution (e.g. `"msg_reply"`, `"stable64_write"`, `"call_perform"`).
    pub fn trap_on_ic0(&mut self, name: &str, nth: u64) {
        if let Some(c) = self.canister.as_mut() {
            c.env_mut().ic0_fault = Some(Ic0Fault {
                name: name.to_string(),
                remaining: nth.max(1),
            });
        }
    }

    /// Calls from the canister to `callee` are held (not delivered) until
    /// [`Host::release_held`]; other messages run meanwhile. A held best-effort call
    /// (`call_with_best_effort_response`) whose timeout passes during
    /// [`Host::advance_time`] is answered with `SysUnknown` (6); when released, the callee
    /// still executes it (e.g. the ledger applies the transfer) and the response is dropped.
    pub fn hold_calls_to(&mut self, callee: Principal) {
        self.faults.held_callees.insert(callee);
    }

    /// Stops holding calls to `callee` (already held calls stay held until released).
    pub fn stop_holding(&mut self, callee: Principal) {
        self.faults.held_callees.remove(&callee);
    }

    /// Number of held calls.
    pub fn held_calls(&self) -> usize {
        self.held.len()
    }

    /// The held calls, in the order they were made, with enough information to name them:
    /// callee, method, the call context that made them (method and root ingress message)
    /// and, for the ledger, the decoded request ([`LedgerCall`]).
    pub fn list_held_calls(&self) -> Vec<HeldCall> {
        self.held
            .iter()
            .filter_map(|id| {
                let cb = self.callbacks.get(id)?;
                let callee = Principal::try_from_slice(&cb.call.callee).ok()?;
                let ctx = self.contexts.get(&cb.ctx);
                let ledger = (callee == ledger_principal())
                    .then(|| crate::ledger::describe_call(&cb.call.method, &cb.call.arg))
                    .flatten();
                Some(HeldCall {
                    id: *id,
                    callee,
                    method: cb.call.method.clone(),
                    caller_method: ctx.map(|c| c.method.clone()).unwrap_or_default(),
                    message: ctx.and_then(|c| c.root),
                    made_at: cb.made_at,
                    ledger,
                })
            })
            .collect()
    }

    /// Releases ONE held call (`id` from [`Host::list_held_calls`]) with a chosen outcome
    /// (see [`HeldOutcome`]); the other held calls stay held. The outcome overrides the
    /// fault rules ([`Host::fail_next_calls`], [`Host::unknown_outcome_next_calls`]). Like
    /// [`Host::release_held`], it queues the delivery without running it.
    ///
    /// `TooOld` applies only to a ledger `transfer` with a `created_at_time`: the clock jumps
    /// to one second past `created_at_time` + the ledger's 24 h window + the permitted drift
    /// (without running the timers in between: a due timer fires once at the next step), so
    /// the ledger answers `TxTooOld` without applying it.
    pub fn release_held_call(&mut self, id: u64, outcome: HeldOutcome) -> Result<(), ReleaseError> {
        let pos = self
            .held
            .iter()
            .position(|h| *h == id)
            .ok_or(ReleaseError::NotHeld(id))?;
        if outcome == HeldOutcome::TooOld {
            let created = self
                .list_held_calls()
                .into_iter()
                .find(|h| h.id == id)
                .and_then(|h| match h.ledger {
                    Some(LedgerCall::Transfer {
                        created_at_time, ..
                    }) => created_at_time,
                    _ => None,
                })
                .ok_or(ReleaseError::NotATimedTransfer(id))?;
            let at = created
                .saturating_add(crate::ledger::TX_WINDOW_NS)
                .saturating_add(crate::ledger::PERMITTED_DRIFT_NS)
                .saturating_add(1_000_000_000);
            self.now = self.now.max(at);
        }
        self.held.remove(pos);
        // Other held best-effort calls may have timed out meanwhile (as in `advance_time`).
        self.expire_best_effort();
        self.forced.insert(id, outcome);
        self.queue.push_back(Task::Request {
            callback: id,
            bypass_hold: true,
        });
        Ok(())
    }

    /// Queues all held calls for delivery (in the order they were made). Does not run them:
    /// call [`Host::run_until_idle`] or [`Host::await_reply`].
    pub fn release_held(&mut self) {
        for cb in std::mem::take(&mut self.held) {
            self.queue.push_back(Task::Request {
                callback: cb,
                bypass_hold: true,
            });
        }
    }

    /// Clears all fault injection settings (held calls are released).
    pub fn clear_faults(&mut self) {
        self.faults = Faults::default();
        if let Some(c) = self.canister.as_mut() {
            c.env_mut().ic0_fault = None;
        }
        self.release_held();
    }

    /// Open call contexts (0 when quiescent).
    pub fn open_call_contexts(&self) -> usize {
        self.contexts.len()
    }
}

fn unknown_response() -> Response {
    Response::Reject(
        RejectCode::SysUnknown as u32,
        "Timeout expired: the outcome of the call is unknown".to_string(),
    )
}
