//! Instruction accounting: the IC's system-API costs and limits.
//!
//! # How instructions are counted
//!
//! As on the IC, in two parts:
//!
//! * the canister's own code: the module is instrumented like the IC instruments it
//!   (`rs/embedders/src/wasm_utils/instrumentation.rs`): a counter decremented at the start of
//!   each basic block by the summed IC cost of its operators, bulk-memory operators charged a
//!   static 100 plus their size. See [`crate::instrument`] (the rules and the operator table,
//!   [`crate::instrument::instruction_cost`]).
//! * system calls: a fixed overhead ([`overhead`], IC
//!   `rs/embedders/src/wasmtime_embedder/system_api_complexity.rs`) plus a per-byte part (IC
//!   `rs/embedders/src/wasmtime_embedder/system_api/linker.rs`: `charge_for_cpu_and_mem`),
//!   charged by the host functions in [`crate::ic0`] on the same counter:
//!   - copies between the message and the heap (`msg_arg_data_copy`, `msg_caller_copy`,
//!     `msg_method_name_copy`, `msg_reject_msg_copy`, `canister_self_copy`), `trap`,
//!     `is_controller`, `certified_data_set`, `cost_vetkd_derive_key`: 1 per byte;
//!   - data leaving the canister (`msg_reply_data_append`, `msg_reject`,
//!     `call_data_append`): [`TRANSMISSION_PER_BYTE`] per byte;
//!   - `call_new`: 1 per byte of callee and method name;
//!   - `debug_print`: 2 per byte kept in the canister log plus [`TRANSMISSION_PER_BYTE`] per
//!     byte that fits its remaining space ([`LOG_CAPACITY`]);
//!   - stable memory as the IC runs it (wasm-native stable memory,
//!     `rs/embedders/src/wasm_utils/system_api_replacements.rs`): `stable64_read`/`write`
//!     20 + 1 per byte, plus [`DIRTY_PAGE_OVERHEAD`] per 4 KiB page a write dirties first in
//!     the execution; `stable64_grow` 100; `stable64_size` nothing (the replacement functions
//!     are not metered; only the canister's `call` to them, 5, is).
//!
//! `memory.grow` costs its flat 300 in the instrumented code, nothing per byte.
//!
//! Not modelled: deterministic time slicing (an execution that runs out of instructions
//! fails instead of being resumed in a later round), and the scheduler's per-message
//! overheads that the IC bills but does not show to the canister's performance counter.

/// Instruction limit of one update, callback, timer or heartbeat execution.
pub const UPDATE_LIMIT: u64 = 40_000_000_000;
/// Instruction limit of one query execution (also inspect_message).
pub const QUERY_LIMIT: u64 = 5_000_000_000;
/// Instruction limit of install / upgrade (`canister_init`, `pre_upgrade`, `post_upgrade`).
pub const INSTALL_LIMIT: u64 = 300_000_000_000;

/// Trap message of the IC when the instruction limit is exceeded.
pub const INSTRUCTION_LIMIT_MESSAGE: &str =
    "Canister exceeded the instruction limit for single message execution.";

/// Instructions per byte of data leaving the canister (reply, reject, call payload) and of
/// log space (IC `BYTE_TRANSMISSION_COST_FACTOR`, `system_api/linker.rs`).
pub const TRANSMISSION_PER_BYTE: u64 = 50;

/// Instructions per stable-memory page first dirtied in an execution on an application
/// subnet (IC `DEFAULT_DIRTY_PAGE_OVERHEAD`, `rs/config/src/subnet_config.rs`).
pub const DIRTY_PAGE_OVERHEAD: u64 = 1_000;

/// Size of the pages [`DIRTY_PAGE_OVERHEAD`] counts (the IC's OS page, `ic_sys::PAGE_SIZE`).
pub const OS_PAGE: u64 = 4096;

/// Capacity of the canister log in bytes, for `debug_print`'s charge (IC default log memory
/// limit).
pub const LOG_CAPACITY: u64 = 4096;

/// Fixed system-API overheads in instructions (IC `system_api_complexity.rs`, `overhead`; the
/// stable-memory entries are those of wasm-native stable memory, `overhead_native`, and of
/// its unmetered replacement functions).
pub mod overhead {
    #![allow(missing_docs)]
    pub const ACCEPT_MESSAGE: u64 = 500;
    pub const CALL_CYCLES_ADD128: u64 = 500;
    pub const CALL_DATA_APPEND: u64 = 500;
    pub const CALL_NEW: u64 = 1_500;
    pub const CALL_ON_CLEANUP: u64 = 500;
    pub const CALL_PERFORM: u64 = 5_000;
    pub const CALL_WITH_BEST_EFFORT_RESPONSE: u64 = 500;
    pub const CANISTER_CYCLE_BALANCE128: u64 = 500;
    pub const CANISTER_SELF_COPY: u64 = 500;
    pub const CANISTER_SELF_SIZE: u64 = 500;
    pub const CANISTER_STATUS: u64 = 500;
    pub const CANISTER_VERSION: u64 = 500;
    pub const CERTIFIED_DATA_SET: u64 = 500;
    pub const DATA_CERTIFICATE_PRESENT: u64 = 500;
    pub const DEBUG_PRINT: u64 = 100;
    pub const GLOBAL_TIMER_SET: u64 = 500;
    pub const IS_CONTROLLER: u64 = 1_000;
    pub const IN_REPLICATED_EXECUTION: u64 = 500;
    pub const MSG_ARG_DATA_COPY: u64 = 500;
    pub const MSG_ARG_DATA_SIZE: u64 = 500;
    pub const MSG_CALLER_COPY: u64 = 500;
    pub const MSG_CALLER_SIZE: u64 = 500;
    pub const MSG_CYCLES: u64 = 500;
    pub const MSG_DEADLINE: u64 = 500;
    pub const MSG_METHOD_NAME_COPY: u64 = 500;
    pub const MSG_METHOD_NAME_SIZE: u64 = 500;
    pub const MSG_REJECT_CODE: u64 = 500;
    pub const MSG_REJECT_MSG_COPY: u64 = 500;
    pub const MSG_REJECT_MSG_SIZE: u64 = 500;
    pub const MSG_REJECT: u64 = 500;
    pub const MSG_REPLY_DATA_APPEND: u64 = 500;
    pub const MSG_REPLY: u64 = 500;
    pub const PERFORMANCE_COUNTER: u64 = 200;
    pub const STABLE_GROW: u64 = 100;
    pub const STABLE_READ: u64 = 20;
    pub const STABLE_SIZE: u64 = 0;
    pub const STABLE_WRITE: u64 = 20;
    pub const TIME: u64 = 500;
    pub const TRAP: u64 = 500;
    pub const COST_CALL: u64 = 500;
    pub const COST_VETKD: u64 = 500;
}
