//! One installed canister: compiled module, wasmi store/instance, heap snapshots and the
//! execution of a single entry point with the IC's atomicity.
//!
//! This module owns *one execution*: it prepares [`Env`], runs an exported function or a
//! table-0 callback with the instruction limit as fuel, and on a trap rolls back the heap
//! (linear memory + mutable globals), stable memory (undo journal), the global timer and
//! certified data, and drops the reply and the performed calls. Scheduling of executions
//! (call contexts, queues, peers) is in [`crate::host`].
//!
//! Compilation is cached process-wide: [`shared_engine`] is one wasmi engine for every host
//! of the process, and [`Canister::new`] on that engine instruments, compiles and links a
//! given wasm once (keyed by its SHA-256), so e.g. a test binary that installs the same wasm
//! in a hundred hosts compiles it once. Instances (stores) are never shared.
//!
//! Table contents are assumed static (true for Rust canisters: the element segments are
//! applied at instantiation and never changed), so they are not part of the snapshot.

use crate::costs;
use crate::ic0::{self, Env, ExecKind, HostTrap, TrapCall};
use crate::instrument;
use crate::types::{OutCall, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use wasmi::{Config, Engine, Global, Instance, Linker, Memory, Module, Store, Table, Val};

/// Linear memory and mutable globals of an instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeapSnapshot {
    /// Linear memory bytes.
    #[serde(with = "serde_bytes")]
    pub memory: Vec<u8>,
    /// Mutable global values, in the order of [`Canister::globals`], as `(type, bits)`.
    pub globals: Vec<(GlobalTy, u64)>,
}

/// Type tag of a saved global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GlobalTy {
    /// i32
    I32,
    /// i64
    I64,
    /// f32
    F32,
    /// f64
    F64,
}

fn val_to_saved(v: &Val) -> Option<(GlobalTy, u64)> {
    Some(match v {
        Val::I32(x) => (GlobalTy::I32, *x as u32 as u64),
        Val::I64(x) => (GlobalTy::I64, *x as u64),
        Val::F32(x) => (GlobalTy::F32, x.to_bits() as u64),
        Val::F64(x) => (GlobalTy::F64, x.to_bits()),
        _ => return None,
    })
}

fn saved_to_val((t, b): (GlobalTy, u64)) -> Val {
    match t {
        GlobalTy::I32 => Val::I32(b as u32 as i32),
        GlobalTy::I64 => Val::I64(b as i64),
        GlobalTy::F32 => Val::F32(wasmi::F32::from_bits(b as u32)),
        GlobalTy::F64 => Val::F64(wasmi::F64::from_bits(b)),
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Entry {
    /// An exported function by name (`canister_update foo`, `canister_init`, ...).
    Export(String),
    /// A callback: function index into table 0 and its env argument.
    Callback(u32, u32),
}

/// Input of one execution.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Kind of execution.
    pub kind: ExecKind,
    /// Entry point.
    pub entry: Entry,
    /// Caller principal bytes.
    pub caller: Vec<u8>,
    /// Argument / reply payload.
    pub arg: Vec<u8>,
    /// Method name of the call context.
    pub method: String,
    /// Reject code + message (reject callbacks).
    pub reject: Option<(u32, String)>,
    /// Whether the call context can still be replied to.
    pub can_reply: bool,
    /// Host time (ns).
    pub time: u64,
    /// Instruction limit.
    pub limit: u64,
    /// Keep the state changes if the execution succeeds (false for queries/inspect).
    pub persist: bool,
    /// Instructions of earlier executions in the same call context.
    pub ctx_instructions: u64,
    /// Fault injection: trap immediately (before any canister code runs).
    pub force_trap: Option<String>,
}

/// Result of one execution.
#[derive(Debug, Clone, Default)]
pub struct ExecOutcome {
    /// Trap message (state rolled back) or `None`.
    pub trap: Option<String>,
    /// Reply or reject produced (only if the execution did not trap).
    pub response: Option<Response>,
    /// Calls performed (only if the execution did not trap).
    pub calls: Vec<OutCall>,
    /// Instructions executed.
    pub instructions: u64,
    /// `accept_message` was called.
    pub accepted: bool,
    /// `debug_print` output.
    pub debug: Vec<String>,
}

/// An installed canister instance.
pub struct Canister {
    engine: Engine,
    /// The original (uninstrumented) wasm.
    pub wasm: Vec<u8>,
    module: Module,
    linker: Linker<Env>,
    store: Store<Env>,
    instance: Instance,
    memory: Option<Memory>,
    table: Option<Table>,
    globals: Vec<Global>,
    /// Names of exported functions.
    pub exports: Vec<String>,
}

/// Creates the wasmi engine configured with the IC's instruction costs.
pub fn engine() -> Engine {
    let mut config = Config::default();
    config
        .consume_fuel(true)
        .operator_cost(costs::operator_costs())
        .fuel_cost(costs::fuel_costs())
        .wasm_tail_call(false)
        .set_max_recursion_depth(100_000);
    Engine::new(&config)
}

/// The process-wide engine shared by every [`crate::Host`] (an `Engine` is a cheap handle;
/// modules compiled on it are cached by [`Canister::new`]).
pub fn shared_engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(engine).clone()
}

/// An instrumented, compiled and linked module, ready to instantiate.
struct Compiled {
    module: Module,
    linker: Linker<Env>,
    exports: Vec<String>,
}

/// Most modules kept in the compilation cache (a process rarely sees more than a couple of
/// wasms; when full the cache is emptied rather than grown).
const CACHE_CAPACITY: usize = 16;

/// Compilation cache for modules on [`shared_engine`], keyed by the wasm's SHA-256.
fn cache() -> &'static Mutex<HashMap<[u8; 32], Arc<Compiled>>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Arc<Compiled>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Compiled, LoadError> {
    let (bytes, _info) = instrument::instrument(wasm)?;
    let module = Module::new(engine, &bytes).map_err(|e| LoadError::Wasm(e.to_string()))?;
    let mut linker = Linker::new(engine);
    ic0::link(&mut linker, &module).map_err(|e| LoadError::Wasm(e.to_string()))?;
    let exports = instrument::exported_functions(wasm)?;
    Ok(Compiled {
        module,
        linker,
        exports,
    })
}

/// The compiled form of `wasm` on `engine`: from the cache when `engine` is the
/// [`shared_engine`], compiled now otherwise (or on a cache miss).
fn compiled(engine: &Engine, wasm: &[u8]) -> Result<Arc<Compiled>, LoadError> {
    if !Engine::same(engine, &shared_engine()) {
        return compile(engine, wasm).map(Arc::new);
    }
    let key: [u8; 32] = Sha256::digest(wasm).into();
    if let Some(c) = cache().lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    // Compile without holding the lock (another thread may compile the same wasm
    // concurrently; both results are equivalent and the last one stays cached).
    let c = Arc::new(compile(engine, wasm)?);
    let mut map = cache().lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= CACHE_CAPACITY {
        map.clear();
    }
    map.insert(key, c.clone());
    Ok(c)
}

/// Number of modules in the process-wide compilation cache (for tests and diagnostics).
pub fn cached_modules() -> usize {
    cache().lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Error creating a canister instance.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The wasm could not be parsed / rewritten.
    #[error(transparent)]
    Instrument(#[from] instrument::InstrumentError),
    /// wasmi rejected the module or its instantiation failed.
    #[error("wasm module rejected: {0}")]
    Wasm(String),
}

impl Canister {
    /// Compiles `wasm` and instantiates it with `env` as store data (stable memory etc.).
    /// The module's start function (if any) runs; `canister_init` does not. On the
    /// [`shared_engine`] the compiled module comes from the process-wide cache.
    pub fn new(engine: &Engine, wasm: &[u8], env: Env) -> Result<Self, LoadError> {
        let compiled = compiled(engine, wasm)?;
        let (store, instance, memory, table, globals) =
            Self::instantiate(engine, &compiled.module, &compiled.linker, env)?;
        Ok(Canister {
            engine: engine.clone(),
            wasm: wasm.to_vec(),
            module: compiled.module.clone(),
            linker: compiled.linker.clone(),
            store,
            instance,
            memory,
            table,
            globals,
            exports: compiled.exports.clone(),
        })
    }

    #[allow(clippy::type_complexity)]
    fn instantiate(
        engine: &Engine,
        module: &Module,
        linker: &Linker<Env>,
        env: Env,
    ) -> Result<
        (
            Store<Env>,
            Instance,
            Option<Memory>,
            Option<Table>,
            Vec<Global>,
        ),
        LoadError,
    > {
        let mut store = Store::new(engine, env);
        store.limiter(|env| &mut env.limiter);
        store
            .set_fuel(costs::INSTALL_LIMIT)
            .map_err(|e| LoadError::Wasm(e.to_string()))?;
        let instance = linker
            .instantiate_and_start(&mut store, module)
            .map_err(|e| LoadError::Wasm(e.to_string()))?;
        let memory = instance.get_memory(&store, "memory");
        let table = instance.get_table(&store, instrument::TABLE_EXPORT);
        let mut globals: Vec<(u32, Global)> = instance
            .exports(&store)
            .filter_map(|e| {
                let idx: u32 = e
                    .name()
                    .strip_prefix(instrument::GLOBAL_EXPORT_PREFIX)?
                    .parse()
                    .ok()?;
                Some((idx, e.into_global()?))
            })
            .collect();
        globals.sort_by_key(|(i, _)| *i);
        store.data_mut().memory = memory;
        Ok((
            store,
            instance,
            memory,
            table,
            globals.into_iter().map(|(_, g)| g).collect(),
        ))
    }

    /// Whether the module exports function `name`.
    pub fn has_export(&self, name: &str) -> bool {
        self.exports.iter().any(|e| e == name)
    }

    /// The store data (stable memory, timer, ...).
    pub fn env(&self) -> &Env {
        self.store.data()
    }

    /// Mutable store data.
    pub fn env_mut(&mut self) -> &mut Env {
        self.store.data_mut()
    }

    /// Takes the store data out (leaving a default), e.g. to move stable memory to a new
    /// instance on upgrade.
    pub fn take_env(&mut self) -> Env {
        let mut env = std::mem::take(self.store.data_mut());
        env.memory = None;
        env
    }

    /// Puts store data back (after [`Canister::take_env`]).
    pub fn put_env(&mut self, mut env: Env) {
        env.memory = self.memory;
        *self.store.data_mut() = env;
    }

    /// Heap size in bytes.
    pub fn heap_size(&self) -> usize {
        self.memory.map(|m| m.data_size(&self.store)).unwrap_or(0)
    }

    /// Takes a snapshot of linear memory and mutable globals.
    pub fn snapshot(&self) -> HeapSnapshot {
        HeapSnapshot {
            memory: self
                .memory
                .map(|m| m.data(&self.store).to_vec())
                .unwrap_or_default(),
            globals: self
                .globals
                .iter()
                .filter_map(|g| val_to_saved(&g.get(&self.store)))
                .collect(),
        }
    }

    /// Restores a snapshot; re-instantiates when the memory must shrink (wasm memories
    /// cannot shrink). Does not run the start function's effects into the heap: the memory
    /// is overwritten entirely.
    pub fn restore(&mut self, snap: &HeapSnapshot) -> Result<(), LoadError> {
        let cur = self.heap_size();
        if cur > snap.memory.len() {
            let env = self.take_env();
            let (store, instance, memory, table, globals) =
                Self::instantiate(&self.engine, &self.module, &self.linker, env)?;
            self.store = store;
            self.instance = instance;
            self.memory = memory;
            self.table = table;
            self.globals = globals;
        }
        if let Some(mem) = self.memory {
            let cur = mem.data_size(&self.store);
            if cur < snap.memory.len() {
                let pages = (snap.memory.len() - cur) as u64 / ic0::PAGE;
                mem.grow(&mut self.store, pages)
                    .map_err(|e| LoadError::Wasm(format!("cannot restore heap: {e}")))?;
            }
            mem.data_mut(&mut self.store)
                .copy_from_slice(&snap.memory[..]);
        }
        if snap.globals.len() != self.globals.len() {
            return Err(LoadError::Wasm(format!(
                "snapshot has {} mutable globals, module has {}",
                snap.globals.len(),
                self.globals.len()
            )));
        }
        for (g, v) in self.globals.iter().zip(snap.globals.iter()) {
            g.set(&mut self.store, saved_to_val(*v))
                .map_err(|e| LoadError::Wasm(format!("cannot restore global: {e}")))?;
        }
        Ok(())
    }

    /// Runs one execution with the IC's atomicity (see the module docs).
    pub fn execute(&mut self, req: ExecRequest) -> ExecOutcome {
        let heap_before = self.snapshot();
        {
            let env = self.store.data_mut();
            env.kind = Some(req.kind);
            env.caller = req.caller.clone();
            env.arg = req.arg.clone();
            env.method = req.method.clone();
            env.reject = req.reject.clone();
            env.time = req.time;
            env.can_reply = req.can_reply;
            env.reply_buf.clear();
            env.response = None;
            env.pending_call = None;
            env.calls.clear();
            env.stable_journal.clear();
            env.stable_len_before = env.stable.len();
            env.accepted = false;
            env.replicated = !matches!(req.kind, ExecKind::Query | ExecKind::Inspect);
            env.fuel_start = req.limit;
            env.grow_settled = (0, 0);
            env.limiter = ic0::GrowTracker {
                executing: true,
                ..Default::default()
            };
            env.ctx_instructions_before = req.ctx_instructions;
            env.debug.clear();
        }
        let timer_before = self.store.data().global_timer;
        let cycles_before = self.store.data().cycles;
        let certified_before = self.store.data().certified_data.clone();
        let _ = self.store.set_fuel(req.limit);

        let result: Result<(), String> = if let Some(msg) = &req.force_trap {
            Err(msg.clone())
        } else {
            self.call_entry(&req.entry)
        };
        let instructions = ic0::instructions_used(&mut self.store);
        self.store.data_mut().limiter.executing = false;

        let env = self.store.data_mut();
        let mut out = ExecOutcome {
            instructions,
            accepted: env.accepted,
            debug: std::mem::take(&mut env.debug),
            ..Default::default()
        };
        let rollback = result.is_err() || !req.persist;
        if let Err(msg) = result {
            out.trap = Some(msg);
        } else {
            out.response = env.response.take();
            out.calls = std::mem::take(&mut env.calls);
        }
        if rollback {
            let env = self.store.data_mut();
            let journal = std::mem::take(&mut env.stable_journal);
            for (off, old) in journal.into_iter().rev() {
                let off = off as usize;
                if off + old.len() <= env.stable.len() {
                    env.stable[off..off + old.len()].copy_from_slice(&old);
                }
            }
            let len = env.stable_len_before;
            env.stable.truncate(len);
            env.global_timer = timer_before;
            env.cycles = cycles_before;
            env.certified_data = certified_before;
            if let Err(e) = self.restore(&heap_before) {
                // Cannot happen for a module that instantiated before; keep going loudly.
                eprintln!("local_replica: heap restore failed: {e}");
            }
        }
        let env = self.store.data_mut();
        env.kind = None;
        env.stable_journal.clear();
        env.pending_call = None;
        out
    }

    fn call_entry(&mut self, entry: &Entry) -> Result<(), String> {
        let self_id = candid::Principal::from_slice(&self.store.data().self_id);
        let func = match entry {
            Entry::Export(name) => self
                .instance
                .get_func(&self.store, name)
                .ok_or_else(|| format!("Canister {self_id} has no export '{name}'"))?,
            Entry::Callback(idx, _) => {
                let table = self
                    .table
                    .ok_or_else(|| format!("Canister {self_id}: module has no table 0"))?;
                match table.get(&self.store, *idx as u64) {
                    Some(wasmi::Ref::Func(f)) => *f
                        .val()
                        .ok_or_else(|| format!("Canister {self_id}: callback {idx} is null"))?,
                    _ => return Err(format!("Canister {self_id}: invalid callback index {idx}")),
                }
            }
        };
        let params: Vec<Val> = match entry {
            Entry::Export(_) => vec![],
            Entry::Callback(_, env) => vec![Val::I32(*env as i32)],
        };
        func.call(&mut self.store, &params, &mut [])
            .map_err(|e| describe_trap(&self_id, e))
    }
}

/// Turns a wasmi error into the IC's trap message.
pub fn describe_trap(id: &candid::Principal, e: wasmi::Error) -> String {
    if let Some(t) = e.downcast_ref::<TrapCall>() {
        return format!("Canister {id} trapped explicitly: {}", t.0);
    }
    if let Some(t) = e.downcast_ref::<HostTrap>() {
        if t.0 == costs::INSTRUCTION_LIMIT_MESSAGE {
            return format!("Canister {id}: {}", t.0);
        }
        return format!("Canister {id} trapped: {}", t.0);
    }
    match e.as_trap_code() {
        Some(wasmi::TrapCode::OutOfFuel) => {
            format!("Canister {id}: {}", costs::INSTRUCTION_LIMIT_MESSAGE)
        }
        Some(code) => format!("Canister {id} trapped: {code}"),
        None => format!("Canister {id} trapped: {e}"),
    }
}
