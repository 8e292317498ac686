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

use crate::canister::{Canister, GlobalTy, HeapSnapshot};
use crate::host::{ExecRecord, Host, HostConfig};
use crate::ledger::Ledger;
use candid::Principal;
use serde::{Deserialize, Serialize};
use std::path::Path;

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
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T, PersistError> {
    r.map_err(|source| PersistError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl Host {
    /// Saves the host to `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<(), PersistError> {
        if !self.queue.is_empty() || !self.contexts.is_empty() || !self.held.is_empty() {
            return Err(PersistError::NotQuiescent(format!(
                "{} queued, {} open call contexts, {} held calls",
                self.queue.len(),
                self.contexts.len(),
                self.held.len()
            )));
        }
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
