//! The `ic0` system API as host functions, and the per-execution environment they act on.
//!
//! This module owns [`Env`], the `wasmi` store data of a canister: the message being
//! executed (argument, caller, method, reject info), what the execution produced (reply or
//! reject, performed calls, timer changes), stable memory with its undo journal, and the
//! instruction accounting of the execution. [`link`] defines every `ic0` import used by
//! ic-cdk 0.20 / ic-cdk-timers 1.x / ic-stable-structures 0.7, and a trapping stub for any
//! other import the module has, so instantiation never fails on an unknown import.
//!
//! # Instruction accounting
//!
//! The module's own code decrements an instruction counter global injected by
//! [`crate::instrument`] (the IC's instrumentation rules). System calls charge the IC's
//! fixed overhead plus their per-byte part on the same counter before doing anything
//! ([`charge`]; IC: `charge_for_cpu` / `charge_for_cpu_and_mem` in
//! `rs/embedders/src/wasmtime_embedder/system_api/linker.rs`). The amounts are in
//! [`crate::costs`]; each host function below names its rule.

use crate::costs::{self, overhead};
use crate::instrument;
use crate::types::{OutCall, Response};
use std::collections::{HashSet, VecDeque};
use wasmi::{Caller, Error, ExternType, Global, Linker, Memory, Module, Val};

/// Size of a wasm / stable memory page.
pub const PAGE: u64 = 65_536;
/// Maximum stable memory (pages) this host allows: 64 GiB is plenty for tests; growth is
/// backed by a plain `Vec`.
pub const MAX_STABLE_PAGES: u64 = 64 * 1024 * 1024 * 1024 / PAGE;

/// What kind of execution is running (decides which ic0 calls are allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExecKind {
    /// `canister_init`.
    Init,
    /// `canister_pre_upgrade`.
    PreUpgrade,
    /// `canister_post_upgrade`.
    PostUpgrade,
    /// `canister_update <name>`.
    Update,
    /// `canister_query <name>`.
    Query,
    /// `canister_inspect_message`.
    Inspect,
    /// Reply callback of a call.
    ReplyCallback,
    /// Reject callback of a call.
    RejectCallback,
    /// Cleanup callback of a call whose callback trapped.
    Cleanup,
    /// `canister_global_timer`.
    Timer,
}

impl ExecKind {
    fn can_call(self) -> bool {
        matches!(
            self,
            ExecKind::Update | ExecKind::ReplyCallback | ExecKind::RejectCallback | ExecKind::Timer
        )
    }
}

/// A trap raised by a host function; its message is reported as the IC would.
#[derive(Debug)]
pub struct HostTrap(pub String);

impl std::fmt::Display for HostTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl wasmi::errors::HostError for HostTrap {}

/// Resource limiter of a canister instance: wasm memory is limited to 4 GiB (wasm32). A
/// `memory.grow` costs its flat 300 instructions in the instrumented code, nothing per byte.
#[derive(Debug, Default)]
pub struct MemoryLimiter;

impl wasmi::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        Ok(maximum.is_none_or(|m| desired <= m) && desired <= 4 * 1024 * 1024 * 1024)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        Ok(maximum.is_none_or(|m| desired <= m))
    }
    fn instances(&self) -> usize {
        10_000
    }
    fn tables(&self) -> usize {
        10_000
    }
    fn memories(&self) -> usize {
        10_000
    }
}

/// Fault injection inside the system API: trap when `name` is called the `nth` time.
#[derive(Debug, Clone, Default)]
pub struct Ic0Fault {
    /// ic0 function name (e.g. `msg_reply`, `call_perform`, `stable64_write`).
    pub name: String,
    /// Calls left before the trap (1 = trap on the next call).
    pub remaining: u64,
}

/// Store data of a canister instance: the state of the running execution.
#[derive(Default)]
pub struct Env {
    /// Kind of the running execution.
    pub kind: Option<ExecKind>,
    /// The canister's own principal bytes.
    pub self_id: Vec<u8>,
    /// Caller principal bytes of the call context.
    pub caller: Vec<u8>,
    /// Argument (or reply payload in a reply callback).
    pub arg: Vec<u8>,
    /// Method name (for `msg_method_name_*`).
    pub method: String,
    /// Reject code and message (reject callbacks).
    pub reject: Option<(u32, String)>,
    /// Host time in ns, constant within an execution.
    pub time: u64,
    /// Whether the call context may still be replied to.
    pub can_reply: bool,
    /// Reply data accumulated with `msg_reply_data_append`.
    pub reply_buf: Vec<u8>,
    /// Response produced by this execution.
    pub response: Option<Response>,
    /// Call under construction (`call_new` ... `call_perform`).
    pub pending_call: Option<OutCall>,
    /// Calls performed by this execution.
    pub calls: Vec<OutCall>,
    /// Stable memory bytes (persist across executions and upgrades).
    pub stable: Vec<u8>,
    /// Undo journal of this execution: `(offset, old bytes)`.
    pub stable_journal: Vec<(u64, Vec<u8>)>,
    /// Stable memory size (bytes) at the start of the execution.
    pub stable_len_before: usize,
    /// Chunks ([`DIRTY_CHUNK`] bytes) of stable memory written since the host snapshot
    /// `stable_base` was restored (see `Host::restore`), so the next restore of the same
    /// snapshot copies only those.
    pub snapshot_dirty: std::collections::BTreeSet<u64>,
    /// Id of the snapshot the stable memory was last restored from (`None`: unknown base).
    pub stable_base: Option<u64>,
    /// When set, the 64 KiB pages (`offset / PAGE`) any execution wrote to stable memory since
    /// the set was last taken (writes of executions that rolled back included). See
    /// [`crate::Host::track_stable_writes`].
    pub written_pages: Option<std::collections::BTreeSet<u64>>,
    /// Global timer deadline (0 = unset).
    pub global_timer: u64,
    /// Whether `accept_message` was called (inspect_message).
    pub accepted: bool,
    /// Controllers (principal bytes).
    pub controllers: Vec<Vec<u8>>,
    /// Canister version.
    pub version: u64,
    /// The canister's cycle balance (cycles attached to calls leave it; refunds return).
    pub cycles: u128,
    /// Cycles refunded with the response being processed (`msg_cycles_refunded128`).
    pub cycles_refunded: u128,
    /// Certified data.
    pub certified_data: Vec<u8>,
    /// `in_replicated_execution`.
    pub replicated: bool,
    /// Instruction limit of the running execution (the counter's value at its start).
    pub instruction_limit: u64,
    /// The instance's instruction counter global (export [`instrument::COUNTER_EXPORT`]).
    pub counter: Option<Global>,
    /// 4 KiB stable-memory pages written by the running execution (the first write of a
    /// page in an execution costs [`costs::DIRTY_PAGE_OVERHEAD`]).
    pub stable_dirty: HashSet<u64>,
    /// Sizes of the records in the canister log, oldest first (for `debug_print`'s charge).
    pub log_records: VecDeque<u64>,
    /// Instructions of earlier executions of the same call context.
    pub ctx_instructions_before: u64,
    /// The canister's linear memory (export `memory`).
    pub memory: Option<Memory>,
    /// `debug_print` output of this execution.
    pub debug: Vec<String>,
    /// Print `debug_print` output to stderr immediately.
    pub print_debug: bool,
    /// Fault injection: trap on the nth call of an ic0 function.
    pub ic0_fault: Option<Ic0Fault>,
    /// Resource limiter.
    pub limiter: MemoryLimiter,
}

/// Granularity of the stable memory dirty tracking (bytes).
pub const DIRTY_CHUNK: u64 = 4096;

impl Env {
    /// Records `size` bytes written at `offset` of stable memory as dirty.
    pub fn mark_stable_dirty(&mut self, offset: u64, size: u64) {
        if size == 0 || self.stable_base.is_none() {
            return;
        }
        let first = offset / DIRTY_CHUNK;
        let last = (offset + size - 1) / DIRTY_CHUNK;
        self.snapshot_dirty.extend(first..=last);
    }
}

type C<'a> = Caller<'a, Env>;

/// A host trap error with `msg`.
pub fn trap(msg: impl Into<String>) -> Error {
    Error::host(HostTrap(msg.into()))
}

/// The counter global of the running instance.
fn counter(c: &C) -> Result<Global, Error> {
    c.data()
        .counter
        .ok_or_else(|| trap("canister module is not instrumented (no instruction counter)"))
}

fn counter_value(c: &C, g: Global) -> i64 {
    match g.get(c) {
        Val::I64(v) => v,
        _ => 0,
    }
}

/// Charges `cost` instructions to the running execution, as the IC's `charge_direct_fee`
/// does: a counter already below zero, or going below zero, traps with the IC's message.
pub fn charge(c: &mut C, cost: u64) -> Result<(), Error> {
    let g = counter(c)?;
    let before = counter_value(c, g);
    if before < 0 {
        return Err(trap(costs::INSTRUCTION_LIMIT_MESSAGE));
    }
    let after = before.saturating_sub(i64::try_from(cost).unwrap_or(i64::MAX));
    g.set(&mut *c, Val::I64(after))?;
    if after < 0 {
        return Err(trap(costs::INSTRUCTION_LIMIT_MESSAGE));
    }
    Ok(())
}

/// Instructions executed so far by the running execution.
fn used(c: &C) -> Result<u64, Error> {
    let g = counter(c)?;
    let left = counter_value(c, g) as i128;
    Ok((c.data().instruction_limit as i128 - left).max(0) as u64)
}

/// Prologue of every ic0 function: fault injection, then charge `cost` instructions.
fn enter(c: &mut C, name: &str, cost: u64) -> Result<(), Error> {
    if let Some(f) = c.data_mut().ic0_fault.as_mut() {
        if f.name == name {
            f.remaining = f.remaining.saturating_sub(1);
            if f.remaining == 0 {
                c.data_mut().ic0_fault = None;
                return Err(trap(format!("injected fault: trap at ic0.{name}")));
            }
        }
    }
    charge(c, cost)
}

/// The per-byte part of `debug_print`'s charge, and the canister log's new fill.
///
/// IC (`debug_print` in `system_api/linker.rs`, `logging_charge_bytes`): 2 per byte kept in
/// the log (at most its capacity) plus 50 per byte that fits in the log's remaining space;
/// the message itself is not charged again because application subnets rate-limit debug
/// prints (not printed). The log keeps the newest records within [`costs::LOG_CAPACITY`].
fn log_charge(env: &mut Env, len: u64) -> u64 {
    let held: u64 = env.log_records.iter().sum();
    let remaining = costs::LOG_CAPACITY.saturating_sub(held);
    let charge =
        2 * len.min(costs::LOG_CAPACITY) + costs::TRANSMISSION_PER_BYTE * len.min(remaining);
    let kept = len.min(costs::LOG_CAPACITY);
    let mut held = held + kept;
    env.log_records.push_back(kept);
    while held > costs::LOG_CAPACITY {
        held -= env.log_records.pop_front().unwrap_or(0);
    }
    charge
}

fn kind(c: &C) -> ExecKind {
    c.data().kind.unwrap_or(ExecKind::Update)
}

fn memory(c: &C) -> Result<Memory, Error> {
    c.data()
        .memory
        .ok_or_else(|| trap("canister module has no exported memory"))
}

fn range(ptr: u64, len: u64, total: usize, what: &str) -> Result<std::ops::Range<usize>, Error> {
    let end = ptr
        .checked_add(len)
        .filter(|e| *e <= total as u64)
        .ok_or_else(|| {
            trap(format!(
                "{what}: out of bounds access ({ptr}+{len} > {total})"
            ))
        })?;
    Ok(ptr as usize..end as usize)
}

fn read_heap(c: &C, ptr: u64, len: u64, what: &str) -> Result<Vec<u8>, Error> {
    let mem = memory(c)?;
    let data = mem.data(c);
    let r = range(ptr, len, data.len(), what)?;
    Ok(data[r].to_vec())
}

/// Copies `src[offset..offset+size]` into the heap at `dst`.
fn copy_out(
    c: &mut C,
    select: impl Fn(&Env) -> &[u8],
    dst: u64,
    offset: u64,
    size: u64,
    what: &str,
) -> Result<(), Error> {
    let mem = memory(c)?;
    let (data, env) = mem.data_and_store_mut(&mut *c);
    let src = select(env);
    let sr = range(offset, size, src.len(), what)?;
    let dr = range(dst, size, data.len(), what)?;
    data[dr].copy_from_slice(&src[sr]);
    Ok(())
}

fn write_u128(c: &mut C, dst: u64, v: u128, what: &str) -> Result<(), Error> {
    let mem = memory(c)?;
    let data = mem.data_mut(&mut *c);
    let r = range(dst, 16, data.len(), what)?;
    data[r].copy_from_slice(&v.to_le_bytes());
    Ok(())
}

fn not_allowed(name: &str, k: ExecKind) -> Error {
    trap(format!("\"ic0_{name}\" cannot be executed in {k:?} mode"))
}

fn stable_write(c: &mut C, offset: u64, src: u64, size: u64) -> Result<(), Error> {
    let r = range(offset, size, c.data().stable.len(), "stable memory")?;
    if size > 0 {
        // IC (wasm-native stable memory, `system_api_replacements.rs`, `stable64_write`):
        // after the bounds check, each 4 KiB page first written by this execution costs
        // the subnet's dirty-page overhead.
        let first = offset / costs::OS_PAGE;
        let last = (offset + size - 1) / costs::OS_PAGE;
        let env = c.data_mut();
        let fresh = (first..=last)
            .filter(|p| env.stable_dirty.insert(*p))
            .count() as u64;
        charge(c, fresh.saturating_mul(costs::DIRTY_PAGE_OVERHEAD))?;
    }
    let bytes = read_heap(c, src, size, "stable_write")?;
    let env = c.data_mut();
    let old = env.stable[r.clone()].to_vec();
    env.stable_journal.push((offset, old));
    env.stable[r].copy_from_slice(&bytes);
    if let (Some(dirty), true) = (env.written_pages.as_mut(), size > 0) {
        dirty.extend(offset / PAGE..=(offset + size - 1) / PAGE);
    }
    Ok(())
}

fn stable_read(c: &mut C, dst: u64, offset: u64, size: u64) -> Result<(), Error> {
    copy_out(c, |e| &e.stable, dst, offset, size, "stable memory")
}

fn stable_grow(c: &mut C, new_pages: u64) -> u64 {
    let env = c.data_mut();
    let old = env.stable.len() as u64 / PAGE;
    match old.checked_add(new_pages) {
        Some(n) if n <= MAX_STABLE_PAGES => {
            env.stable.resize((n * PAGE) as usize, 0);
            old
        }
        _ => u64::MAX,
    }
}

fn reply_allowed(c: &C, name: &str) -> Result<(), Error> {
    let k = kind(c);
    if !matches!(
        k,
        ExecKind::Update | ExecKind::Query | ExecKind::ReplyCallback | ExecKind::RejectCallback
    ) {
        return Err(not_allowed(name, k));
    }
    if !c.data().can_reply || c.data().response.is_some() {
        return Err(trap(format!(
            "ic0.{name}: the call context was already replied or rejected"
        )));
    }
    Ok(())
}

/// Names of the ic0 functions implemented by [`link`].
pub const IMPLEMENTED: &[&str] = &[
    "msg_arg_data_size",
    "msg_arg_data_copy",
    "msg_caller_size",
    "msg_caller_copy",
    "msg_reject_code",
    "msg_reject_msg_size",
    "msg_reject_msg_copy",
    "msg_reply_data_append",
    "msg_reply",
    "msg_reject",
    "msg_method_name_size",
    "msg_method_name_copy",
    "msg_deadline",
    "msg_cycles_available128",
    "msg_cycles_refunded128",
    "msg_cycles_accept128",
    "accept_message",
    "canister_self_size",
    "canister_self_copy",
    "canister_cycle_balance128",
    "canister_liquid_cycle_balance128",
    "canister_status",
    "canister_version",
    "cost_call",
    "cost_vetkd_derive_key",
    "time",
    "global_timer_set",
    "performance_counter",
    "is_controller",
    "in_replicated_execution",
    "certified_data_set",
    "data_certificate_present",
    "stable64_size",
    "stable64_grow",
    "stable64_read",
    "stable64_write",
    "stable_size",
    "stable_grow",
    "stable_read",
    "stable_write",
    "call_new",
    "call_data_append",
    "call_on_cleanup",
    "call_with_best_effort_response",
    "call_cycles_add128",
    "call_perform",
    "debug_print",
    "trap",
];

/// Cost of an inter-canister call reported by `ic0.cost_call` (cycles; approximates a
/// 13-node subnet: 260K base + 1K per byte).
pub fn cost_call(method_len: u64, payload_len: u64) -> u128 {
    260_000 + 1_000 * (method_len as u128 + payload_len as u128)
}

/// Defines all ic0 host functions in `linker`, plus trapping stubs for any other function
/// import of `module`.
pub fn link(linker: &mut Linker<Env>, module: &Module) -> Result<(), Error> {
    macro_rules! wrap {
        ($name:literal, $f:expr) => {
            linker.func_wrap("ic0", $name, $f)?;
        };
    }

    wrap!("msg_arg_data_size", |mut c: C| -> Result<u32, Error> {
        enter(&mut c, "msg_arg_data_size", overhead::MSG_ARG_DATA_SIZE)?;
        arg_allowed(&c, "msg_arg_data_size")?;
        Ok(c.data().arg.len() as u32)
    });
    wrap!("msg_arg_data_copy", |mut c: C,
                                dst: u32,
                                off: u32,
                                size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "msg_arg_data_copy",
            overhead::MSG_ARG_DATA_COPY + size as u64,
        )?;
        arg_allowed(&c, "msg_arg_data_copy")?;
        copy_out(
            &mut c,
            |e| &e.arg,
            dst as u64,
            off as u64,
            size as u64,
            "msg_arg_data_copy",
        )
    });
    wrap!("msg_caller_size", |mut c: C| -> Result<u32, Error> {
        enter(&mut c, "msg_caller_size", overhead::MSG_CALLER_SIZE)?;
        Ok(c.data().caller.len() as u32)
    });
    wrap!("msg_caller_copy", |mut c: C,
                              dst: u32,
                              off: u32,
                              size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "msg_caller_copy",
            overhead::MSG_CALLER_COPY + size as u64,
        )?;
        copy_out(
            &mut c,
            |e| &e.caller,
            dst as u64,
            off as u64,
            size as u64,
            "msg_caller_copy",
        )
    });
    wrap!("msg_reject_code", |mut c: C| -> Result<u32, Error> {
        enter(&mut c, "msg_reject_code", overhead::MSG_REJECT_CODE)?;
        Ok(c.data().reject.as_ref().map(|r| r.0).unwrap_or(0))
    });
    wrap!("msg_reject_msg_size", |mut c: C| -> Result<u32, Error> {
        enter(&mut c, "msg_reject_msg_size", overhead::MSG_REJECT_MSG_SIZE)?;
        match &c.data().reject {
            Some((_, m)) => Ok(m.len() as u32),
            None => Err(not_allowed("msg_reject_msg_size", kind(&c))),
        }
    });
    wrap!("msg_reject_msg_copy", |mut c: C,
                                  dst: u32,
                                  off: u32,
                                  size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "msg_reject_msg_copy",
            overhead::MSG_REJECT_MSG_COPY + size as u64,
        )?;
        if c.data().reject.is_none() {
            return Err(not_allowed("msg_reject_msg_copy", kind(&c)));
        }
        copy_out(
            &mut c,
            |e| e.reject.as_ref().map(|r| r.1.as_bytes()).unwrap_or(&[]),
            dst as u64,
            off as u64,
            size as u64,
            "msg_reject_msg_copy",
        )
    });
    wrap!("msg_reply_data_append", |mut c: C,
                                    src: u32,
                                    size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "msg_reply_data_append",
            overhead::MSG_REPLY_DATA_APPEND + costs::TRANSMISSION_PER_BYTE * size as u64,
        )?;
        reply_allowed(&c, "msg_reply_data_append")?;
        let bytes = read_heap(&c, src as u64, size as u64, "msg_reply_data_append")?;
        let env = c.data_mut();
        if env.reply_buf.len() + bytes.len() > 2 * 1024 * 1024 {
            return Err(trap(
                "ic0.msg_reply_data_append: application payload size cannot be larger than 2 MiB",
            ));
        }
        env.reply_buf.extend_from_slice(&bytes);
        Ok(())
    });
    wrap!("msg_reply", |mut c: C| -> Result<(), Error> {
        enter(&mut c, "msg_reply", overhead::MSG_REPLY)?;
        reply_allowed(&c, "msg_reply")?;
        let env = c.data_mut();
        let data = std::mem::take(&mut env.reply_buf);
        env.response = Some(Response::Reply(data));
        Ok(())
    });
    wrap!("msg_reject", |mut c: C,
                         src: u32,
                         size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "msg_reject",
            overhead::MSG_REJECT + costs::TRANSMISSION_PER_BYTE * size as u64,
        )?;
        reply_allowed(&c, "msg_reject")?;
        let bytes = read_heap(&c, src as u64, size as u64, "msg_reject")?;
        let msg = String::from_utf8_lossy(&bytes).into_owned();
        c.data_mut().response = Some(Response::Reject(4, msg));
        Ok(())
    });
    wrap!("msg_method_name_size", |mut c: C| -> Result<u32, Error> {
        enter(
            &mut c,
            "msg_method_name_size",
            overhead::MSG_METHOD_NAME_SIZE,
        )?;
        Ok(c.data().method.len() as u32)
    });
    wrap!("msg_method_name_copy", |mut c: C,
                                   dst: u32,
                                   off: u32,
                                   size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "msg_method_name_copy",
            overhead::MSG_METHOD_NAME_COPY + size as u64,
        )?;
        copy_out(
            &mut c,
            |e| e.method.as_bytes(),
            dst as u64,
            off as u64,
            size as u64,
            "msg_method_name_copy",
        )
    });
    wrap!("msg_deadline", |mut c: C| -> Result<u64, Error> {
        enter(&mut c, "msg_deadline", overhead::MSG_DEADLINE)?;
        Ok(0)
    });
    wrap!("msg_cycles_available128", |mut c: C,
                                      dst: u32|
     -> Result<(), Error> {
        enter(&mut c, "msg_cycles_available128", overhead::MSG_CYCLES)?;
        write_u128(&mut c, dst as u64, 0, "msg_cycles_available128")
    });
    wrap!("msg_cycles_refunded128", |mut c: C,
                                     dst: u32|
     -> Result<(), Error> {
        enter(&mut c, "msg_cycles_refunded128", overhead::MSG_CYCLES)?;
        let v = c.data().cycles_refunded;
        write_u128(&mut c, dst as u64, v, "msg_cycles_refunded128")
    });
    wrap!("msg_cycles_accept128", |mut c: C,
                                   _hi: u64,
                                   _lo: u64,
                                   dst: u32|
     -> Result<(), Error> {
        enter(&mut c, "msg_cycles_accept128", overhead::MSG_CYCLES)?;
        write_u128(&mut c, dst as u64, 0, "msg_cycles_accept128")
    });
    wrap!("accept_message", |mut c: C| -> Result<(), Error> {
        enter(&mut c, "accept_message", overhead::ACCEPT_MESSAGE)?;
        let k = kind(&c);
        if k != ExecKind::Inspect {
            return Err(not_allowed("accept_message", k));
        }
        if c.data().accepted {
            return Err(trap("ic0.accept_message: message already accepted"));
        }
        c.data_mut().accepted = true;
        Ok(())
    });
    wrap!("canister_self_size", |mut c: C| -> Result<u32, Error> {
        enter(&mut c, "canister_self_size", overhead::CANISTER_SELF_SIZE)?;
        Ok(c.data().self_id.len() as u32)
    });
    wrap!("canister_self_copy", |mut c: C,
                                 dst: u32,
                                 off: u32,
                                 size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "canister_self_copy",
            overhead::CANISTER_SELF_COPY + size as u64,
        )?;
        copy_out(
            &mut c,
            |e| &e.self_id,
            dst as u64,
            off as u64,
            size as u64,
            "canister_self_copy",
        )
    });
    wrap!("canister_cycle_balance128", |mut c: C,
                                        dst: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "canister_cycle_balance128",
            overhead::CANISTER_CYCLE_BALANCE128,
        )?;
        let v = c.data().cycles;
        write_u128(&mut c, dst as u64, v, "canister_cycle_balance128")
    });
    wrap!("canister_liquid_cycle_balance128", |mut c: C,
                                               dst: u32|
     -> Result<
        (),
        Error,
    > {
        enter(
            &mut c,
            "canister_liquid_cycle_balance128",
            overhead::CANISTER_CYCLE_BALANCE128,
        )?;
        let v = c.data().cycles;
        write_u128(&mut c, dst as u64, v, "canister_liquid_cycle_balance128")
    });
    wrap!("canister_status", |mut c: C| -> Result<u32, Error> {
        enter(&mut c, "canister_status", overhead::CANISTER_STATUS)?;
        Ok(1)
    });
    wrap!("canister_version", |mut c: C| -> Result<u64, Error> {
        enter(&mut c, "canister_version", overhead::CANISTER_VERSION)?;
        Ok(c.data().version)
    });
    wrap!("cost_call", |mut c: C,
                        name_len: u64,
                        payload_len: u64,
                        dst: u32|
     -> Result<(), Error> {
        enter(&mut c, "cost_call", overhead::COST_CALL)?;
        write_u128(
            &mut c,
            dst as u64,
            cost_call(name_len, payload_len),
            "cost_call",
        )
    });
    wrap!("cost_vetkd_derive_key", |mut c: C,
                                    src: u32,
                                    size: u32,
                                    curve: u32,
                                    dst: u32|
     -> Result<u32, Error> {
        enter(
            &mut c,
            "cost_vetkd_derive_key",
            overhead::COST_VETKD + size as u64,
        )?;
        let name = read_heap(&c, src as u64, size as u64, "cost_vetkd_derive_key")?;
        if curve != 0 {
            return Ok(1);
        }
        let fee = std::str::from_utf8(&name).ok().and_then(crate::vetkd::fee);
        match fee {
            Some(fee) => {
                write_u128(&mut c, dst as u64, fee, "cost_vetkd_derive_key")?;
                Ok(0)
            }
            None => Ok(2),
        }
    });
    wrap!("time", |mut c: C| -> Result<u64, Error> {
        enter(&mut c, "time", overhead::TIME)?;
        Ok(c.data().time)
    });
    wrap!("global_timer_set", |mut c: C,
                               t: u64|
     -> Result<u64, Error> {
        enter(&mut c, "global_timer_set", overhead::GLOBAL_TIMER_SET)?;
        let k = kind(&c);
        if matches!(k, ExecKind::Query | ExecKind::Inspect) {
            return Err(not_allowed("global_timer_set", k));
        }
        let env = c.data_mut();
        Ok(std::mem::replace(&mut env.global_timer, t))
    });
    wrap!("performance_counter", |mut c: C,
                                  ty: u32|
     -> Result<u64, Error> {
        enter(&mut c, "performance_counter", overhead::PERFORMANCE_COUNTER)?;
        let now = used(&c)?;
        match ty {
            0 => Ok(now),
            1 => Ok(c.data().ctx_instructions_before + now),
            _ => Err(trap(format!(
                "ic0.performance_counter: unknown counter type {ty}"
            ))),
        }
    });
    wrap!("is_controller", |mut c: C,
                            src: u32,
                            size: u32|
     -> Result<u32, Error> {
        enter(
            &mut c,
            "is_controller",
            overhead::IS_CONTROLLER + size as u64,
        )?;
        let p = read_heap(&c, src as u64, size as u64, "is_controller")?;
        if p.len() > 29 {
            return Err(trap("ic0.is_controller: invalid principal"));
        }
        Ok(c.data().controllers.contains(&p) as u32)
    });
    wrap!(
        "in_replicated_execution",
        |mut c: C| -> Result<u32, Error> {
            enter(
                &mut c,
                "in_replicated_execution",
                overhead::IN_REPLICATED_EXECUTION,
            )?;
            Ok(c.data().replicated as u32)
        }
    );
    wrap!("certified_data_set", |mut c: C,
                                 src: u32,
                                 size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "certified_data_set",
            overhead::CERTIFIED_DATA_SET + size as u64,
        )?;
        if size > 32 {
            return Err(trap("ic0.certified_data_set: data larger than 32 bytes"));
        }
        let d = read_heap(&c, src as u64, size as u64, "certified_data_set")?;
        c.data_mut().certified_data = d;
        Ok(())
    });
    wrap!(
        "data_certificate_present",
        |mut c: C| -> Result<u32, Error> {
            enter(
                &mut c,
                "data_certificate_present",
                overhead::DATA_CERTIFICATE_PRESENT,
            )?;
            Ok(0)
        }
    );
    // Stable memory, 64-bit.
    wrap!("stable64_size", |mut c: C| -> Result<u64, Error> {
        enter(&mut c, "stable64_size", overhead::STABLE_SIZE)?;
        Ok(c.data().stable.len() as u64 / PAGE)
    });
    wrap!("stable64_grow", |mut c: C, n: u64| -> Result<u64, Error> {
        enter(&mut c, "stable64_grow", overhead::STABLE_GROW)?;
        Ok(stable_grow(&mut c, n))
    });
    wrap!("stable64_read", |mut c: C,
                            dst: u64,
                            off: u64,
                            size: u64|
     -> Result<(), Error> {
        enter(
            &mut c,
            "stable64_read",
            overhead::STABLE_READ.saturating_add(size),
        )?;
        stable_read(&mut c, dst, off, size)
    });
    wrap!("stable64_write", |mut c: C,
                             off: u64,
                             src: u64,
                             size: u64|
     -> Result<(), Error> {
        enter(
            &mut c,
            "stable64_write",
            overhead::STABLE_WRITE.saturating_add(size),
        )?;
        stable_write(&mut c, off, src, size)
    });
    // Stable memory, 32-bit (limited to 4 GiB).
    wrap!("stable_size", |mut c: C| -> Result<u32, Error> {
        enter(&mut c, "stable_size", overhead::STABLE_SIZE)?;
        let pages = c.data().stable.len() as u64 / PAGE;
        if pages > 65_536 {
            return Err(trap("ic0.stable_size: stable memory larger than 4 GiB"));
        }
        Ok(pages as u32)
    });
    wrap!("stable_grow", |mut c: C, n: u32| -> Result<i32, Error> {
        enter(&mut c, "stable_grow", overhead::STABLE_GROW)?;
        let pages = c.data().stable.len() as u64 / PAGE;
        if pages + n as u64 > 65_536 {
            return Ok(-1);
        }
        Ok(stable_grow(&mut c, n as u64) as i32)
    });
    wrap!("stable_read", |mut c: C,
                          dst: u32,
                          off: u32,
                          size: u32|
     -> Result<(), Error> {
        enter(&mut c, "stable_read", overhead::STABLE_READ + size as u64)?;
        stable_read(&mut c, dst as u64, off as u64, size as u64)
    });
    wrap!("stable_write", |mut c: C,
                           off: u32,
                           src: u32,
                           size: u32|
     -> Result<(), Error> {
        enter(&mut c, "stable_write", overhead::STABLE_WRITE + size as u64)?;
        stable_write(&mut c, off as u64, src as u64, size as u64)
    });
    // Inter-canister calls.
    wrap!("call_new", |mut c: C,
                       callee_src: u32,
                       callee_size: u32,
                       name_src: u32,
                       name_size: u32,
                       reply_fun: u32,
                       reply_env: u32,
                       reject_fun: u32,
                       reject_env: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "call_new",
            overhead::CALL_NEW + callee_size as u64 + name_size as u64,
        )?;
        let k = kind(&c);
        if !k.can_call() {
            return Err(not_allowed("call_new", k));
        }
        let callee = read_heap(&c, callee_src as u64, callee_size as u64, "call_new")?;
        let name = read_heap(&c, name_src as u64, name_size as u64, "call_new")?;
        let method = String::from_utf8(name)
            .map_err(|_| trap("ic0.call_new: method name is not valid UTF-8"))?;
        c.data_mut().pending_call = Some(OutCall {
            callee,
            method,
            arg: Vec::new(),
            reply: (reply_fun, reply_env),
            reject: (reject_fun, reject_env),
            cleanup: None,
            cycles: 0,
            timeout_seconds: None,
        });
        Ok(())
    });
    wrap!("call_data_append", |mut c: C,
                               src: u32,
                               size: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "call_data_append",
            overhead::CALL_DATA_APPEND + costs::TRANSMISSION_PER_BYTE * size as u64,
        )?;
        let bytes = read_heap(&c, src as u64, size as u64, "call_data_append")?;
        match c.data_mut().pending_call.as_mut() {
            Some(call) => {
                call.arg.extend_from_slice(&bytes);
                Ok(())
            }
            None => Err(trap("ic0.call_data_append called without call_new")),
        }
    });
    wrap!("call_on_cleanup", |mut c: C,
                              fun: u32,
                              env: u32|
     -> Result<(), Error> {
        enter(&mut c, "call_on_cleanup", overhead::CALL_ON_CLEANUP)?;
        match c.data_mut().pending_call.as_mut() {
            Some(call) if call.cleanup.is_none() => {
                call.cleanup = Some((fun, env));
                Ok(())
            }
            Some(_) => Err(trap("ic0.call_on_cleanup called twice")),
            None => Err(trap("ic0.call_on_cleanup called without call_new")),
        }
    });
    wrap!("call_with_best_effort_response", |mut c: C,
                                             timeout: u32|
     -> Result<(), Error> {
        enter(
            &mut c,
            "call_with_best_effort_response",
            overhead::CALL_WITH_BEST_EFFORT_RESPONSE,
        )?;
        match c.data_mut().pending_call.as_mut() {
            Some(call) if call.timeout_seconds.is_none() => {
                call.timeout_seconds = Some(timeout.clamp(1, 300));
                Ok(())
            }
            Some(_) => Err(trap("ic0.call_with_best_effort_response called twice")),
            None => Err(trap(
                "ic0.call_with_best_effort_response called without call_new",
            )),
        }
    });
    wrap!("call_cycles_add128", |mut c: C,
                                 hi: u64,
                                 lo: u64|
     -> Result<(), Error> {
        enter(&mut c, "call_cycles_add128", overhead::CALL_CYCLES_ADD128)?;
        let amount = ((hi as u128) << 64) | lo as u128;
        let env = c.data_mut();
        match env.pending_call.as_mut() {
            Some(call) => {
                // The cycles leave the balance now (refunded when the response arrives).
                if amount > env.cycles {
                    return Err(trap(format!(
                        "ic0.call_cycles_add128: the canister cannot afford {amount} cycles \
                         (balance {})",
                        env.cycles
                    )));
                }
                env.cycles -= amount;
                call.cycles += amount;
                Ok(())
            }
            None => Err(trap("ic0.call_cycles_add128 called without call_new")),
        }
    });
    wrap!("call_perform", |mut c: C| -> Result<u32, Error> {
        enter(&mut c, "call_perform", overhead::CALL_PERFORM)?;
        let env = c.data_mut();
        match env.pending_call.take() {
            Some(call) => {
                env.calls.push(call);
                Ok(0)
            }
            None => Err(trap("ic0.call_perform called without call_new")),
        }
    });
    wrap!("debug_print", |mut c: C,
                          src: u32,
                          size: u32|
     -> Result<(), Error> {
        let cost = overhead::DEBUG_PRINT + log_charge(c.data_mut(), size as u64);
        enter(&mut c, "debug_print", cost)?;
        let bytes = read_heap(&c, src as u64, size as u64, "debug_print")?;
        let s = String::from_utf8_lossy(&bytes).into_owned();
        let env = c.data_mut();
        if env.print_debug {
            eprintln!("[canister] {s}");
        }
        env.debug.push(s);
        Ok(())
    });
    wrap!("trap", |mut c: C,
                   src: u32,
                   size: u32|
     -> Result<(), Error> {
        enter(&mut c, "trap", overhead::TRAP + size as u64)?;
        let bytes = read_heap(&c, src as u64, size.min(16 * 1024) as u64, "trap")?;
        Err(Error::host(TrapCall(
            String::from_utf8_lossy(&bytes).into_owned(),
        )))
    });

    // Called by the instrumented code when the counter went below zero (IC:
    // `out_of_instructions`, which fails the execution outside deterministic time slicing).
    linker.func_wrap(
        instrument::METER_MODULE,
        instrument::OUT_OF_INSTRUCTIONS,
        |_: C| -> Result<(), Error> { Err(trap(costs::INSTRUCTION_LIMIT_MESSAGE)) },
    )?;

    // Stubs for every other function import.
    for import in module.imports() {
        if let ExternType::Func(ty) = import.ty() {
            let (m, n) = (import.module().to_string(), import.name().to_string());
            if (m == "ic0" && IMPLEMENTED.contains(&n.as_str()))
                || (m == instrument::METER_MODULE && n == instrument::OUT_OF_INSTRUCTIONS)
            {
                continue;
            }
            let msg = format!("{m}.{n} is not supported by the local replica");
            linker.func_new(&m, &n, ty.clone(), move |_, _: &[Val], _: &mut [Val]| {
                Err(trap(msg.clone()))
            })?;
        }
    }
    Ok(())
}

/// An explicit `ic0.trap` call (reported as "trapped explicitly").
#[derive(Debug)]
pub struct TrapCall(pub String);
impl std::fmt::Display for TrapCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl wasmi::errors::HostError for TrapCall {}

fn arg_allowed(c: &C, name: &str) -> Result<(), Error> {
    let k = kind(c);
    match k {
        ExecKind::RejectCallback | ExecKind::Cleanup | ExecKind::Timer | ExecKind::PreUpgrade => {
            Err(not_allowed(name, k))
        }
        _ => Ok(()),
    }
}

/// Instructions used by the store's current execution (for the host after a call): the
/// limit minus what is left on the counter, at most the limit (an execution that ran out
/// is charged its whole limit, as on the IC).
pub fn instructions_used(store: &wasmi::Store<Env>) -> u64 {
    let env = store.data();
    let Some(g) = env.counter else { return 0 };
    let left = match g.get(store) {
        Val::I64(v) => v as i128,
        _ => 0,
    };
    let limit = env.instruction_limit as i128;
    (limit - left).clamp(0, limit) as u64
}
