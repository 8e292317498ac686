//! Saving a quiescent [`Host`] to a directory and loading it back (used by the CLI).
//!
//! Layout of the state directory:
//! * `state.json` — configuration, clock, RNG state, ledger (balances, blocks, dedup),
//!   controllers, mutable globals, global timer, canister version, recent executions;
//! * `canister.wasm` — the installed module;
//! * `heap.bin` — linear memory; `stable.bin` — stable memory.
//!
//! Loading instantiates the module in a fresh store and overwrites memory and mutable
//! globals with the snapshot; `canister_init` is not run again. Table contents are assumed
//! static (true for Rust canisters). Only a quiescent host can be saved (no queued work,
//! open call contexts or held calls).
//!
//! [`Host::snapshot`] / [`Host::restore`] do the same in memory, for tests that replay many
//! schedules from one prepared state (e.g. the payment interleaving explorer): restoring
//! reuses the canister instance (heap and stable memory are overwritten in place), so it
//! costs a copy of the memories, not a compilation or an instantiation.

use crate::canister::{Canister, GlobalTy, HeapSnapshot};
use crate::host::{ExecRecord, Faults, Host, HostConfig, LogRecord, Message, MessageId};
use crate::ledger::Ledger;
use candid::Principal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_SNAPSHOT_ID: AtomicU64 = AtomicU64::new(1);

/// Errors saving or loading host state.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// state.json is not valid.
    #[error("invalid state file {path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The error.
        source: serde_json::Error,
    },
    /// The host still has work in flight.
    #[error("cannot save: the host is not quiescent ({0})")]
    NotQuiescent(String),
    /// The saved canister could not be restored.
    #[error("cannot restore the canister: {0}")]
    Restore(String),
}

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct CanisterFile {
    globals: Vec<(GlobalTy, u64)>,
    global_timer: u64,
    version: u64,
    certified_data: Vec<u8>,
    /// Cycle balance (absent in files written before cycles were accounted: the config's).
    #[serde(default)]
    cycles: Option<u128>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    config: HostConfig,
    now: u64,
    rng_state: u64,
    next_id: u64,
    ledger: Ledger,
    controllers: Vec<Principal>,
    canister: Option<CanisterFile>,
    records: Vec<ExecRecord>,
    /// The canister log (absent in files written before it was kept).
    #[serde(default)]
    logs: Vec<LogRecord>,
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T, PersistError> {
    r.map_err(|source| PersistError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// An in-memory copy of a quiescent [`Host`] ([`Host::snapshot`], [`Host::restore`]).
#[derive(Clone)]
pub struct HostSnapshot {
    config: HostConfig,
    now: u64,
    rng_state: u64,
    next_id: u64,
    ledger: Ledger,
    controllers: Vec<Principal>,
    faults: Faults,
    messages: BTreeMap<MessageId, Message>,
    records: VecDeque<ExecRecord>,
    logs: VecDeque<LogRecord>,
    next_log_idx: u64,
    canister: Option<CanisterSnapshot>,
}

#[derive(Clone)]
struct CanisterSnapshot {
    /// Unique per snapshot (see `Env::stable_base`).
    id: u64,
    wasm: Arc<Vec<u8>>,
    heap: Arc<HeapSnapshot>,
    stable: Arc<Vec<u8>>,
    global_timer: u64,
    version: u64,
    certified_data: Vec<u8>,
    cycles: u128,
}

impl HostSnapshot {
    /// Host clock of the snapshot.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Bytes of heap and stable memory held by the snapshot.
    pub fn memory_bytes(&self) -> usize {
        self.heap_bytes() + self.canister.as_ref().map_or(0, |c| c.stable.len())
    }

    /// Bytes of heap (linear memory) held by the snapshot.
    pub fn heap_bytes(&self) -> usize {
        self.canister.as_ref().map_or(0, |c| c.heap.memory.len())
    }
}

impl Host {
    fn check_quiescent(&self) -> Result<(), PersistError> {
        if !self.queue.is_empty() || !self.contexts.is_empty() || !self.held.is_empty() {
            return Err(PersistError::NotQuiescent(format!(
                "{} queued, {} open call contexts, {} held calls",
                self.queue.len(),
                self.contexts.len(),
                self.held.len()
            )));
        }
        Ok(())
    }

    /// An in-memory copy of this host: clock, RNG, ledger, controllers, fault settings,
    /// messages and their answers, the canister log, the canister's heap, mutable globals,
    /// stable memory, global timer, version, certified data and cycle balance. Only a
    /// quiescent host can be copied (no queued work, open call contexts or held calls).
    pub fn snapshot(&self) -> Result<HostSnapshot, PersistError> {
        self.check_quiescent()?;
        Ok(HostSnapshot {
            config: self.config.clone(),
            now: self.now,
            rng_state: self.rng_state,
            next_id: self.next_id,
            ledger: self.ledger.clone(),
            controllers: self.controllers.clone(),
            faults: self.faults.clone(),
            messages: self.messages.clone(),
            records: self.records.clone(),
            logs: self.logs.clone(),
            next_log_idx: self.next_log_idx,
            canister: self.canister.as_ref().map(|c| {
                let env = c.env();
                CanisterSnapshot {
                    id: NEXT_SNAPSHOT_ID.fetch_add(1, Ordering::Relaxed),
                    wasm: Arc::new(c.wasm.clone()),
                    heap: Arc::new(c.snapshot()),
                    stable: Arc::new(env.stable.clone()),
                    global_timer: env.global_timer,
                    version: env.version,
                    certified_data: env.certified_data.clone(),
                    cycles: env.cycles,
                }
            }),
        })
    }

    /// Puts this host back in the state of `snap` (taken from this host or another one):
    /// whatever is in flight now (queued work, open call contexts, held calls, released
    /// calls' outcomes) is dropped; fault settings are those of the snapshot. The canister
    /// instance is reused when it runs the same wasm (memories overwritten in place),
    /// otherwise a new instance is made from the compilation cache. Restoring the same
    /// snapshot again copies only the stable memory written since the previous restore
    /// (4 KiB chunks tracked by the host, valid while the instance's stable memory derives
    /// from that snapshot: `Env::stable_base`); the heap is copied whole. Stable-write
    /// tracking ([`Host::track_stable_writes`]) stays on when the instance is reused, its
    /// record emptied; a new instance starts without it (as after an upgrade).
    pub fn restore(&mut self, snap: &HostSnapshot) -> Result<(), PersistError> {
        self.config = snap.config.clone();
        self.now = snap.now;
        self.rng_state = snap.rng_state;
        self.next_id = snap.next_id;
        self.ledger.clone_from(&snap.ledger);
        self.controllers.clone_from(&snap.controllers);
        self.faults = snap.faults.clone();
        self.messages.clone_from(&snap.messages);
        self.records.clone_from(&snap.records);
        self.logs.clone_from(&snap.logs);
        self.next_log_idx = snap.next_log_idx;
        self.queue.clear();
        self.held.clear();
        self.contexts.clear();
        self.callbacks.clear();
        self.timer_task_queued = false;
        self.pending_unknown.clear();
        self.expired.clear();
        self.forced.clear();
        self.trap_callback_of.clear();
        let Some(cs) = &snap.canister else {
            self.canister = None;
            return Ok(());
        };
        let same = self
            .canister
            .as_ref()
            .is_some_and(|c| c.wasm.len() == cs.wasm.len() && c.wasm == *cs.wasm);
        if !same {
            let env = self.base_env(Vec::new(), cs.version);
            let c = Canister::new(&self.engine, &cs.wasm, env)
                .map_err(|e| PersistError::Restore(e.to_string()))?;
            self.canister = Some(c);
        }
        let print_debug = self.config.print_debug;
        let controllers: Vec<Vec<u8>> = self
            .controllers
            .iter()
            .map(|p| p.as_slice().to_vec())
            .collect();
        let c = self
            .canister
            .as_mut()
            .ok_or_else(|| PersistError::Restore("no canister instance".into()))?;
        c.restore(&cs.heap)
            .map_err(|e| PersistError::Restore(e.to_string()))?;
        let env = c.env_mut();
        let len = cs.stable.len();
        if env.stable_base == Some(cs.id) && env.stable.len() >= len {
            // Restored from this snapshot before: copy back only what was written since
            // (stable memory only grows; pages grown since are dropped).
            env.stable.truncate(len);
            let chunk = crate::ic0::DIRTY_CHUNK as usize;
            for c in std::mem::take(&mut env.snapshot_dirty) {
                let start = (c as usize).saturating_mul(chunk);
                if start >= len {
                    break;
                }
                let end = (start + chunk).min(len);
                env.stable[start..end].copy_from_slice(&cs.stable[start..end]);
            }
        } else {
            env.stable.clear();
            env.stable.extend_from_slice(&cs.stable);
        }
        env.snapshot_dirty.clear();
        env.stable_base = Some(cs.id);
        // Stable-write tracking (`Host::track_stable_writes`) stays on, emptied: every page
        // may have changed, a caller comparing pages re-reads the whole memory.
        if let Some(written) = env.written_pages.as_mut() {
            written.clear();
        }
        env.global_timer = cs.global_timer;
        env.version = cs.version;
        env.certified_data.clone_from(&cs.certified_data);
        env.cycles = cs.cycles;
        env.cycles_refunded = 0;
        env.ic0_fault = None;
        env.print_debug = print_debug;
        env.controllers = controllers;
        Ok(())
    }

    /// Saves the host to `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<(), PersistError> {
        self.check_quiescent()?;
        io(dir, std::fs::create_dir_all(dir))?;
        let canister = self.canister.as_ref().map(|c| {
            let snap = c.snapshot();
            (
                CanisterFile {
                    globals: snap.globals.clone(),
                    global_timer: c.env().global_timer,
                    version: c.env().version,
                    certified_data: c.env().certified_data.clone(),
                    cycles: Some(c.env().cycles),
                },
                snap.memory,
                c.env().stable.clone(),
                c.wasm.clone(),
            )
        });
        let state = StateFile {
            format: FORMAT_VERSION,
            config: self.config.clone(),
            now: self.now,
            rng_state: self.rng_state,
            next_id: self.next_id,
            ledger: self.ledger.clone(),
            controllers: self.controllers.clone(),
            canister: canister.as_ref().map(|c| CanisterFile {
                globals: c.0.globals.clone(),
                global_timer: c.0.global_timer,
                version: c.0.version,
                certified_data: c.0.certified_data.clone(),
                cycles: c.0.cycles,
            }),
            records: self.records.iter().cloned().collect(),
            logs: self.logs.iter().cloned().collect(),
        };
        if let Some((_, heap, stable, wasm)) = &canister {
            write_atomic(&dir.join("heap.bin"), heap)?;
            write_atomic(&dir.join("stable.bin"), stable)?;
            write_atomic(&dir.join("canister.wasm"), wasm)?;
        }
        let json = serde_json::to_vec_pretty(&state).map_err(|source| PersistError::Json {
            path: "state.json".into(),
            source,
        })?;
        write_atomic(&dir.join("state.json"), &json)
    }

    /// Whether `dir` holds a saved host.
    pub fn exists(dir: &Path) -> bool {
        dir.join("state.json").is_file()
    }

    /// Loads a host saved with [`Host::save`].
    pub fn load(dir: &Path) -> Result<Host, PersistError> {
        let path = dir.join("state.json");
        let bytes = io(&path, std::fs::read(&path))?;
        let state: StateFile =
            serde_json::from_slice(&bytes).map_err(|source| PersistError::Json {
                path: path.display().to_string(),
                source,
            })?;
        if state.format != FORMAT_VERSION {
            return Err(PersistError::Restore(format!(
                "unsupported state format {}",
                state.format
            )));
        }
        let mut host = Host::new(state.config);
        host.now = state.now;
        host.rng_state = state.rng_state;
        host.next_id = state.next_id;
        host.ledger = state.ledger;
        host.controllers = state.controllers;
        host.records = state.records.into_iter().collect();
        host.next_log_idx = state.logs.last().map_or(0, |l| l.idx + 1);
        host.logs = state.logs.into_iter().collect();
        if let Some(cf) = state.canister {
            let read = |name: &str| {
                let p = dir.join(name);
                io(&p, std::fs::read(&p))
            };
            let wasm = read("canister.wasm")?;
            let heap = read("heap.bin")?;
            let stable = read("stable.bin")?;
            let mut env = host.base_env(stable, cf.version);
            env.global_timer = cf.global_timer;
            env.certified_data = cf.certified_data;
            if let Some(cycles) = cf.cycles {
                env.cycles = cycles;
            }
            let mut c = Canister::new(&host.engine, &wasm, env)
                .map_err(|e| PersistError::Restore(e.to_string()))?;
            c.restore(&HeapSnapshot {
                memory: heap,
                globals: cf.globals,
            })
            .map_err(|e| PersistError::Restore(e.to_string()))?;
            host.canister = Some(c);
        }
        Ok(host)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let tmp = path.with_extension("tmp");
    io(&tmp, std::fs::write(&tmp, bytes))?;
    io(path, std::fs::rename(&tmp, path))
}
