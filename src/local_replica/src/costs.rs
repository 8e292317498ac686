//! Instruction accounting: the IC's per-operator costs, system-API overheads and limits.
//!
//! # How instructions are counted
//!
//! The IC instruments every canister module: it injects a counter decremented at the start
//! of each basic block by the summed cost of the block's operators
//! (`rs/embedders/src/wasm_utils/instrumentation.rs`, `instruction_to_cost`), plus dynamic
//! costs (1 per byte for `memory.copy`/`memory.fill`/`memory.init`) and the system-API
//! overheads of `rs/embedders/src/wasmtime_embedder/system_api_complexity.rs`.
//!
//! This host uses `wasmi`'s fuel metering, which does the same thing inside the
//! interpreter: fuel for a basic block is charged up front as the sum of the configured
//! per-operator costs. [`operator_costs`] fills wasmi's table with the IC's numbers and
//! [`fuel_costs`] charges 1 per byte copied/filled. Host functions charge the IC's
//! overheads ([`overhead`]) plus their per-byte parts through the store's fuel.
//!
//! Known deviations (all small):
//! * wasmi stores costs as `u8`, so operators the IC prices above 255 (`memory.grow`,
//!   `table.grow`, `data.drop`, `elem.drop`: 300) are charged 255; `memory.grow` is
//!   corrected to 300 by the host.
//! * wasmi charges `memory.grow` per byte grown; the host refunds that (the IC charges
//!   grows a flat cost), see `ic0::Env`.
//! * wasmi charges a block's fuel when the block is entered, so
//!   `ic0.performance_counter` may include the rest of the current block (a few units).
//! * wasmi gives each of its fuel blocks a base cost of 1 (hard-coded). Function entry is
//!   compensated (calls are priced 4/9 instead of 5/10), but each loop iteration and each
//!   entered `if`/`else` arm is counted one instruction more than on the IC. Measured on
//!   a tight loop of 11 IC instructions per iteration: 12 per iteration (+9%); on real
//!   canister code, whose basic blocks are longer, the overcount is smaller. The error is
//!   an *over*estimate, so limits are hit no later than on the IC.

use wasmi::{CustomFuelCosts, OperatorCost};

/// Instruction limit of one update, callback, timer or heartbeat execution.
pub const UPDATE_LIMIT: u64 = 40_000_000_000;
/// Instruction limit of one query execution (also inspect_message).
pub const QUERY_LIMIT: u64 = 5_000_000_000;
/// Instruction limit of install / upgrade (`canister_init`, `pre_upgrade`, `post_upgrade`).
pub const INSTALL_LIMIT: u64 = 300_000_000_000;

/// The IC's cost of `memory.grow` (wasmi's table tops out at 255; the host adds the rest).
pub const MEMORY_GROW_COST: u64 = 300;

/// Trap message of the IC when the instruction limit is exceeded.
pub const INSTRUCTION_LIMIT_MESSAGE: &str =
    "Canister exceeded the instruction limit for single message execution.";

/// Fixed system-API overheads in instructions (IC `system_api_complexity::overhead`).
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
    pub const STABLE_GROW: u64 = 500;
    pub const STABLE_READ: u64 = 20;
    pub const STABLE_SIZE: u64 = 20;
    pub const STABLE_WRITE: u64 = 20;
    pub const TIME: u64 = 500;
    pub const TRAP: u64 = 500;
    pub const COST_CALL: u64 = 500;
}

/// wasmi's dynamic costs: 1 instruction per byte of `memory.copy`/`fill`/`init`; lazy
/// translation and validation of functions are free (the IC compiles ahead of time).
pub fn fuel_costs() -> CustomFuelCosts {
    CustomFuelCosts {
        bytes_copied_per_fuel: 1,
        fuel_per_bytes_translated: 0,
        fuel_per_bytes_validated: 0,
    }
}

/// wasmi's per-operator cost table filled with the IC's `instruction_to_cost` (wasm32).
#[allow(clippy::field_reassign_with_default)]
pub fn operator_costs() -> OperatorCost {
    let mut c = OperatorCost::default();
    // Everything not listed below costs 1 (wasmi's default for non-control operators, and
    // the IC's cost of consts, integer arithmetic/comparisons, loads/stores, locals, ...).
    // Block structure: free.
    c.block = 0;
    c.loop_ = 0;
    c.else_ = 0;
    c.end = 0;
    // return, drop, unreachable, nop: 1 on the IC (wasmi's default is 0).
    c.return_ = 1;
    c.drop = 1;
    c.unreachable = 1;
    c.nop = 1;
    // Branches.
    c.if_ = 2;
    c.br = 2;
    c.br_if = 2;
    c.br_table = 2;
    // Calls.
    // wasmi starts every function body with a fuel block of base cost 1 (see module docs):
    // calls are priced one less so that call + entry = the IC's 5 / 10.
    c.call = 4;
    c.call_indirect = 9;
    c.return_call = 3;
    c.return_call_indirect = 60;
    // Globals.
    c.global_get = 2;
    c.global_set = 2;
    // Integer division / remainder.
    c.i32_div_s = 10;
    c.i32_div_u = 10;
    c.i32_rem_s = 10;
    c.i32_rem_u = 10;
    c.i64_div_s = 10;
    c.i64_div_u = 10;
    c.i64_rem_s = 10;
    c.i64_rem_u = 10;
    // Floats.
    for f in [
        &mut c.f32_add,
        &mut c.f32_sub,
        &mut c.f32_mul,
        &mut c.f32_ceil,
        &mut c.f32_floor,
        &mut c.f32_trunc,
        &mut c.f32_nearest,
        &mut c.f64_add,
        &mut c.f64_sub,
        &mut c.f64_mul,
        &mut c.f64_ceil,
        &mut c.f64_floor,
        &mut c.f64_trunc,
        &mut c.f64_nearest,
        &mut c.f32_copysign,
    ] {
        *f = 2;
    }
    c.f32_div = 3;
    c.f64_div = 5;
    c.f32_min = 18;
    c.f32_max = 18;
    c.f64_min = 18;
    c.f64_max = 18;
    c.f64_copysign = 3;
    c.f32_sqrt = 5;
    c.f64_sqrt = 8;
    for f in [
        &mut c.f32_eq,
        &mut c.f32_ne,
        &mut c.f32_lt,
        &mut c.f32_gt,
        &mut c.f32_le,
        &mut c.f32_ge,
        &mut c.f64_eq,
        &mut c.f64_ne,
        &mut c.f64_lt,
        &mut c.f64_gt,
        &mut c.f64_le,
        &mut c.f64_ge,
        &mut c.f32_convert_i32_s,
        &mut c.f64_convert_i64_s,
        &mut c.f32_convert_i64_s,
        &mut c.f64_convert_i32_s,
    ] {
        *f = 3;
    }
    for f in [
        &mut c.f64_convert_i32_u,
        &mut c.f32_convert_i64_u,
        &mut c.f32_convert_i32_u,
        &mut c.f64_convert_i64_u,
    ] {
        *f = 16;
    }
    for f in [
        &mut c.i64_trunc_sat_f32_s,
        &mut c.i64_trunc_sat_f32_u,
        &mut c.i64_trunc_sat_f64_s,
        &mut c.i64_trunc_sat_f64_u,
        &mut c.i32_trunc_sat_f32_s,
        &mut c.i32_trunc_sat_f32_u,
        &mut c.i32_trunc_sat_f64_s,
        &mut c.i32_trunc_sat_f64_u,
        &mut c.i32_trunc_f32_s,
        &mut c.i32_trunc_f32_u,
        &mut c.i32_trunc_f64_s,
        &mut c.i32_trunc_f64_u,
        &mut c.i64_trunc_f32_s,
        &mut c.i64_trunc_f32_u,
        &mut c.i64_trunc_f64_s,
        &mut c.i64_trunc_f64_u,
    ] {
        *f = 20;
    }
    // Tables and references.
    c.table_get = 5;
    c.table_set = 5;
    c.table_size = 100;
    c.table_grow = 255;
    c.ref_null = 1;
    c.ref_is_null = 5;
    c.ref_func = 130;
    // Memory.
    c.memory_size = 20;
    c.memory_grow = 255; // + 45 added by the host (IC: 300)
    c.memory_fill = 100;
    c.memory_copy = 100;
    c.memory_init = 100;
    c.table_fill = 100;
    c.table_copy = 100;
    c.table_init = 100;
    c.data_drop = 255;
    c.elem_drop = 255;
    c
}
