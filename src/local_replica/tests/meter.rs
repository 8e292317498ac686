//! The host's instruction meter follows the IC's rules, checked on small hand-written
//! modules: one test per instruction class and per system call, each asserting the exact
//! count the IC's rules give.
//!
//! The rules (see `local_replica::instrument` and `local_replica::costs`, which cite the IC
//! sources): a function's first basic block costs 1 plus its operators; new blocks start
//! after `loop`, `if`, `else`, `br`, `br_if`, `br_table`, `end`, `return` and `unreachable`;
//! every operator has the IC's weight; bulk-memory operators add their size; each system
//! call costs its fixed overhead plus its per-byte part.
//!
//! Every test method is `canister_update run`: `body`, then `call $reply` (5) and the
//! reply's overhead (500). With the function's base cost of 1, a method with an empty body
//! costs [`EMPTY`] = 506.

use candid::Principal;
use local_replica::ic0::ExecKind;
use local_replica::{Host, HostConfig, RejectCode};

/// Function base (1) + `call $reply` (5) + `msg_reply` overhead (500).
const EMPTY: u64 = 506;

fn caller() -> Principal {
    Principal::from_slice(&[1; 29])
}

/// A test canister: `imports` (extra ic0 imports), `locals` of `run`, its `body`, and
/// `extra` module fields. Helpers available: `$f7` (returns 7: costs 1 + 1), table 0 with
/// `$f7` at 0 and 1, passive data `$d` (8 bytes), passive elements `$e` (2 functions),
/// global `$g`.
fn module(imports: &str, locals: &str, body: &str, extra: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "ic0" "msg_reply" (func $reply))
  {imports}
  (memory (export "memory") 1)
  (table 4 funcref)
  (elem (i32.const 0) $f7 $f7)
  (elem $e func $f7 $f7)
  (data $d "01234567")
  (global $g (mut i64) (i64.const 0))
  (func $f7 (result i32) (i32.const 7))
  (func (export "canister_update run") {locals}
    {body}
    (call $reply))
  {extra}
)"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("invalid wat: {e}\n{text}"))
}

fn host_for(wasm: &[u8]) -> Host {
    let mut h = Host::new(HostConfig::default());
    h.install(wasm, vec![], Principal::from_slice(&[7; 29]))
        .expect("install");
    h
}

/// Instructions of the last execution of `kind` the host recorded.
fn last(h: &Host, kind: ExecKind) -> u64 {
    h.executions()
        .filter(|r| r.kind == kind)
        .last()
        .expect("an execution of that kind")
        .instructions
}

/// Instructions of `run` with `body` (its reply, reject or trap does not matter).
fn cost_with(imports: &str, locals: &str, body: &str, arg: Vec<u8>) -> u64 {
    let mut h = host_for(&module(imports, locals, body, ""));
    let _ = h.update(caller(), "run", arg);
    last(&h, ExecKind::Update)
}

fn cost(body: &str) -> u64 {
    cost_with("", "", body, vec![])
}

/// Asserts that each `(snippet, cost)` costs exactly `cost` more than the empty method.
fn assert_costs(cases: &[(&str, u64)]) {
    for (body, want) in cases {
        let got = cost(body);
        assert_eq!(
            got,
            EMPTY + want,
            "`{body}`: {got} instead of {EMPTY} + {want}"
        );
    }
}

#[test]
fn empty_method_costs_entry_call_and_reply() {
    assert_eq!(cost(""), EMPTY);
    // The message's count is what the canister sees through its counter: read it at the
    // very start (entry 1 + i32.const 1 + call 5 + performance_counter 200).
    let imports = r#"
      (import "ic0" "performance_counter" (func $perf (param i32) (result i64)))
      (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))"#;
    let mut h = host_for(&module(
        imports,
        "",
        "(i64.store (i32.const 0) (call $perf (i32.const 0)))
         (call $append (i32.const 0) (i32.const 8))",
        "",
    ));
    let r = h.update(caller(), "run", vec![]).expect("run");
    let seen = u64::from_le_bytes(r.bytes[..8].try_into().unwrap());
    // Calls do not end a block: the whole body is one block, charged on entry: base 1 +
    // [i32.const, i32.const, call, i64.store] 8 + [i32.const, i32.const, call] 7 +
    // [call] 5; the counter is read after performance_counter's own 200.
    let block = 1 + 8 + 7 + 5;
    assert_eq!(seen, block + 200);
    // The message: + msg_reply_data_append 500 + 50 × 8 + msg_reply 500.
    assert_eq!(r.instructions, block + 200 + 500 + 400 + 500);
}

#[test]
fn constants_integer_ops_locals_and_parametric_ops_cost_one() {
    let cases: &[(&str, u64)] = &[
        ("(drop (i32.const 1))", 2),
        ("(drop (i64.const 1))", 2),
        ("(drop (f32.const 1))", 2),
        ("(drop (f64.const 1))", 2),
        ("(drop (i32.add (i32.const 1) (i32.const 2)))", 4),
        ("(drop (i64.mul (i64.const 1) (i64.const 2)))", 4),
        ("(drop (i32.and (i32.const 1) (i32.const 2)))", 4),
        ("(drop (i64.rotl (i64.const 1) (i64.const 2)))", 4),
        ("(drop (i32.shr_u (i32.const 1) (i32.const 2)))", 4),
        ("(drop (i32.lt_u (i32.const 1) (i32.const 2)))", 4),
        ("(drop (i64.ge_s (i64.const 1) (i64.const 2)))", 4),
        ("(drop (i32.eqz (i32.const 1)))", 3),
        ("(drop (i64.popcnt (i64.const 1)))", 3),
        ("(drop (i32.clz (i32.const 1)))", 3),
        ("(drop (i32.extend8_s (i32.const 1)))", 3),
        ("(drop (i64.extend_i32_u (i32.const 1)))", 3),
        ("(drop (i32.wrap_i64 (i64.const 1)))", 3),
        ("(drop (i64.reinterpret_f64 (f64.const 1)))", 3),
        ("(drop (f32.demote_f64 (f64.const 1)))", 3),
        ("(drop (f32.neg (f32.const 1)))", 3),
        ("(drop (f64.abs (f64.const 1)))", 3),
        (
            "(drop (select (i32.const 1) (i32.const 2) (i32.const 0)))",
            5,
        ),
        ("nop", 1),
    ];
    assert_costs(cases);
    // Locals: local.set 1, local.get 1, local.tee 1.
    let with_local = |body: &str| cost_with("", "(local $x i32)", body, vec![]);
    assert_eq!(
        with_local("(local.set $x (i32.const 1))"),
        EMPTY + 2,
        "local.set"
    );
    assert_eq!(
        with_local("(drop (local.tee $x (local.get $x)))"),
        EMPTY + 3,
        "local.get + local.tee + drop"
    );
}

#[test]
fn integer_division_and_remainder_cost_ten() {
    assert_costs(&[
        ("(drop (i32.div_u (i32.const 7) (i32.const 2)))", 13),
        ("(drop (i32.div_s (i32.const 7) (i32.const 2)))", 13),
        ("(drop (i32.rem_u (i32.const 7) (i32.const 2)))", 13),
        ("(drop (i64.rem_s (i64.const 7) (i64.const 2)))", 13),
        ("(drop (i64.div_u (i64.const 7) (i64.const 2)))", 13),
    ]);
}

#[test]
fn float_operators_have_the_ic_weights() {
    assert_costs(&[
        // add/sub/mul/rounding: 2
        ("(drop (f32.add (f32.const 1) (f32.const 2)))", 5),
        ("(drop (f64.mul (f64.const 1) (f64.const 2)))", 5),
        ("(drop (f64.floor (f64.const 1)))", 4),
        // div: 3 (f32) / 5 (f64)
        ("(drop (f32.div (f32.const 1) (f32.const 2)))", 6),
        ("(drop (f64.div (f64.const 1) (f64.const 2)))", 8),
        // min/max: 18
        ("(drop (f64.min (f64.const 1) (f64.const 2)))", 21),
        ("(drop (f32.max (f32.const 1) (f32.const 2)))", 21),
        // copysign: 2 (f32) / 3 (f64)
        ("(drop (f32.copysign (f32.const 1) (f32.const 2)))", 5),
        ("(drop (f64.copysign (f64.const 1) (f64.const 2)))", 6),
        // sqrt: 5 (f32) / 8 (f64)
        ("(drop (f32.sqrt (f32.const 1)))", 7),
        ("(drop (f64.sqrt (f64.const 1)))", 10),
        // comparisons: 3
        ("(drop (f64.lt (f64.const 1) (f64.const 2)))", 6),
        ("(drop (f32.eq (f32.const 1) (f32.const 2)))", 6),
        // int -> float: signed 3, unsigned 16
        ("(drop (f64.convert_i32_s (i32.const 1)))", 5),
        ("(drop (f32.convert_i64_u (i64.const 1)))", 18),
        // float -> int: 20 (trapping and saturating)
        ("(drop (i32.trunc_f64_s (f64.const 1)))", 22),
        ("(drop (i64.trunc_sat_f32_u (f32.const 1)))", 22),
    ]);
}

#[test]
fn memory_and_global_access() {
    assert_costs(&[
        // loads and stores: 1 (32-bit memory)
        ("(i32.store (i32.const 0) (i32.load (i32.const 4)))", 4),
        ("(i64.store8 (i32.const 0) (i64.load16_u (i32.const 4)))", 4),
        ("(drop (f64.load (i32.const 0)))", 3),
        // global.get / global.set: 2
        ("(global.set $g (global.get $g))", 4),
        // memory.size: 20
        ("(drop (memory.size))", 21),
    ]);
}

#[test]
fn memory_grow_is_a_flat_300() {
    // i32.const 1 + memory.grow 300 + drop 1, whatever the number of pages.
    assert_eq!(cost("(drop (memory.grow (i32.const 1)))"), EMPTY + 302);
    assert_eq!(cost("(drop (memory.grow (i32.const 100)))"), EMPTY + 302);
}

#[test]
fn calls_cost_five_and_ten_plus_the_callee() {
    // call 5 + callee (base 1 + i32.const 1) + drop 1
    assert_eq!(cost("(drop (call $f7))"), EMPTY + 8);
    // i32.const 1 + call_indirect 10 + callee 2 + drop 1
    assert_eq!(
        cost("(drop (call_indirect (result i32) (i32.const 1)))"),
        EMPTY + 14
    );
    // `return` costs 1 and ends a block: callee = base 1 + i32.const 1 + return 1.
    let wasm = module(
        "",
        "",
        "(drop (call $ret))",
        "(func $ret (result i32) (return (i32.const 5)) (drop (i32.const 9)) (i32.const 1))",
    );
    let mut h = host_for(&wasm);
    h.update(caller(), "run", vec![]).expect("run");
    assert_eq!(last(&h, ExecKind::Update), EMPTY + 5 + 3 + 1);
}

#[test]
fn branches_cost_two_and_blocks_are_charged_when_entered() {
    // if 2: i32.const 1 + if 2 (+ then: nop 1 when taken).
    assert_eq!(cost("(if (i32.const 1) (then (nop)))"), EMPTY + 4);
    assert_eq!(cost("(if (i32.const 0) (then (nop)))"), EMPTY + 3);
    // if/else: only the arm that runs is charged.
    let both = "(if (i32.const {c}) (then (nop)) (else (nop) (nop)))";
    assert_eq!(cost(&both.replace("{c}", "1")), EMPTY + 3 + 1);
    assert_eq!(cost(&both.replace("{c}", "0")), EMPTY + 3 + 2);
    // br 2 (the dead code after it is never charged), block 0.
    assert_eq!(cost("(block (br 0) (drop (i32.const 1)))"), EMPTY + 2);
    // br_if 2: taken or not.
    assert_eq!(
        cost("(block (br_if 0 (i32.const 1)) (nop))"),
        EMPTY + 3,
        "taken"
    );
    assert_eq!(
        cost("(block (br_if 0 (i32.const 0)) (nop))"),
        EMPTY + 4,
        "not taken"
    );
    // br_table 2.
    assert_eq!(
        cost("(block (block (br_table 0 1 (i32.const 1))))"),
        EMPTY + 3
    );
}

/// Code skipped by a taken branch is never charged: on the IC a `br_if` ends its basic block
/// and the code after it is a block of its own, charged only when it runs. (The host's earlier
/// meter, wasmi fuel, charged a whole wasm block up front, including what a taken `br_if`
/// skipped: this body cost it ~100 more per iteration. That was the main source of its
/// over-count on branchy code such as Candid decoding; see BENCHMARKS.md, "Endpoint costs".)
#[test]
fn code_after_a_taken_branch_is_not_charged() {
    let nops = "(nop) ".repeat(100);
    // i32.const 1 + br_if 2; the 100 nops never run.
    assert_eq!(
        cost(&format!("(block (br_if 0 (i32.const 1)) {nops})")),
        EMPTY + 3
    );
    // Not taken: + 100 nops.
    assert_eq!(
        cost(&format!("(block (br_if 0 (i32.const 0)) {nops})")),
        EMPTY + 3 + 100
    );
    // An early `return` likewise: the rest of the function is not charged.
    assert_eq!(
        cost(&format!("(block (return (call $reply))) {nops}")),
        1 + 5 + 500 + 1
    );
}

#[test]
fn loop_iterations_cost_their_blocks_exactly() {
    // Per iteration: [local.get, i32.const, i32.ge_u, br_if] = 5 and
    // [local.get, i32.const, i32.add, local.set, br] = 6; the exit check once more (5).
    let body = "(block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))";
    for n in [0u64, 1, 10, 1000] {
        let got = cost_with(
            "",
            "(local $i i32)",
            &body.replace("{n}", &n.to_string()),
            vec![],
        );
        assert_eq!(got, EMPTY + 11 * n + 5, "n = {n}");
    }
}

#[test]
fn unreachable_costs_one_and_a_trapped_message_reports_its_count() {
    // Entry 1 + unreachable 1; nothing after it runs.
    assert_eq!(cost("unreachable"), 2);
}

#[test]
fn bulk_memory_costs_100_plus_its_size() {
    for n in [0u64, 1, 7, 1000] {
        assert_eq!(
            cost(&format!(
                "(memory.copy (i32.const 0) (i32.const 100) (i32.const {n}))"
            )),
            EMPTY + 3 + 100 + n,
            "memory.copy {n}"
        );
        assert_eq!(
            cost(&format!(
                "(memory.fill (i32.const 0) (i32.const 255) (i32.const {n}))"
            )),
            EMPTY + 3 + 100 + n,
            "memory.fill {n}"
        );
    }
    assert_eq!(
        cost("(memory.init $d (i32.const 0) (i32.const 2) (i32.const 5))"),
        EMPTY + 3 + 100 + 5,
        "memory.init"
    );
    assert_eq!(cost("(data.drop $d)"), EMPTY + 300, "data.drop");
    // Many small copies: the static part dominates (the IC's 100 per operator).
    let loop_body = "(block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const 100)))
        (memory.copy (i32.const 0) (i32.const 8) (i32.const 4))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))";
    assert_eq!(
        cost_with("", "(local $i i32)", loop_body, vec![]),
        EMPTY + 100 * (5 + 3 + 100 + 4 + 6) + 5
    );
}

#[test]
fn table_operators() {
    assert_costs(&[
        (
            "(table.copy (i32.const 2) (i32.const 0) (i32.const 2))",
            3 + 100 + 2,
        ),
        (
            "(table.fill (i32.const 0) (ref.null func) (i32.const 3))",
            3 + 100 + 3,
        ),
        (
            "(table.init $e (i32.const 1) (i32.const 0) (i32.const 2))",
            3 + 100 + 2,
        ),
        ("(elem.drop $e)", 300),
        ("(drop (table.get (i32.const 0)))", 1 + 5 + 1),
        ("(table.set (i32.const 3) (ref.null func))", 1 + 1 + 5),
        ("(drop (table.size))", 101),
        (
            "(drop (table.grow (ref.null func) (i32.const 1)))",
            1 + 1 + 300 + 1,
        ),
        ("(drop (ref.func $f7))", 131),
        ("(drop (ref.is_null (ref.null func)))", 1 + 5 + 1),
    ]);
}

#[test]
fn the_limit_traps_at_the_next_check() {
    let body = "(block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const 1000000)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))";
    let wasm = module("", "(local $i i32)", body, "");
    let mut h = Host::new(HostConfig {
        update_limit: 100_000,
        ..HostConfig::default()
    });
    h.install(&wasm, vec![], Principal::from_slice(&[7; 29]))
        .expect("install");
    let e = h.update(caller(), "run", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterError);
    assert!(
        e.message
            .contains("Canister exceeded the instruction limit for single message execution"),
        "{}",
        e.message
    );
    // An execution that ran out is charged its whole limit.
    assert_eq!(last(&h, ExecKind::Update), 100_000);
}

// ------------------------------------------------------------------- system calls

/// One system call: its import, a body calling it once, the body's cost without the call's
/// own charge (arguments, `call` 5, `drop`), and the IC's charge for the call.
struct Sys {
    import: &'static str,
    body: &'static str,
    wasm_ops: u64,
    charge: u64,
}

fn check_sys(cases: &[Sys], arg: Vec<u8>) {
    for s in cases {
        let got = cost_with(s.import, "", s.body, arg.clone());
        assert_eq!(
            got,
            EMPTY + s.wasm_ops + s.charge,
            "`{}`: {got} instead of {EMPTY} + {} + {}",
            s.body,
            s.wasm_ops,
            s.charge
        );
    }
}

#[test]
fn message_system_calls() {
    let arg = vec![9u8; 10];
    check_sys(
        &[
            Sys {
                import: r#"(import "ic0" "msg_arg_data_size" (func $s (result i32)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "msg_arg_data_copy" (func $s (param i32 i32 i32)))"#,
                body: "(call $s (i32.const 0) (i32.const 0) (i32.const 10))",
                wasm_ops: 8,
                charge: 500 + 10,
            },
            Sys {
                import: r#"(import "ic0" "msg_caller_size" (func $s (result i32)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "msg_caller_copy" (func $s (param i32 i32 i32)))"#,
                body: "(call $s (i32.const 0) (i32.const 0) (i32.const 29))",
                wasm_ops: 8,
                charge: 500 + 29,
            },
            Sys {
                import: r#"(import "ic0" "msg_method_name_size" (func $s (result i32)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "msg_method_name_copy" (func $s (param i32 i32 i32)))"#,
                body: "(call $s (i32.const 0) (i32.const 0) (i32.const 3))",
                wasm_ops: 8,
                charge: 500 + 3,
            },
            Sys {
                // 50 per byte leaving the canister.
                import: r#"(import "ic0" "msg_reply_data_append" (func $s (param i32 i32)))"#,
                body: "(call $s (i32.const 0) (i32.const 100))",
                wasm_ops: 7,
                charge: 500 + 50 * 100,
            },
            Sys {
                import: r#"(import "ic0" "msg_deadline" (func $s (result i64)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "msg_reject_code" (func $s (result i32)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "msg_cycles_available128" (func $s (param i32)))"#,
                body: "(call $s (i32.const 0))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "msg_cycles_refunded128" (func $s (param i32)))"#,
                body: "(call $s (i32.const 0))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "msg_cycles_accept128" (func $s (param i64 i64 i32)))"#,
                body: "(call $s (i64.const 0) (i64.const 0) (i32.const 0))",
                wasm_ops: 8,
                charge: 500,
            },
        ],
        arg,
    );
}

#[test]
fn msg_reject_charges_50_per_byte_and_trap_1_per_byte() {
    // No reply: the method ends with msg_reject / trap (entry 1 + 2 consts + call 5).
    let reject = r#"(import "ic0" "msg_reject" (func $s (param i32 i32)))"#;
    let mut h = host_for(&module(
        reject,
        "",
        "(call $s (i32.const 0) (i32.const 4)) (return)",
        "",
    ));
    let e = h.update(caller(), "run", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterReject);
    // ... + return 1
    assert_eq!(last(&h, ExecKind::Update), 1 + 2 + 5 + 500 + 50 * 4 + 1);

    let trap = r#"(import "ic0" "trap" (func $s (param i32 i32)))"#;
    let mut h = host_for(&module(
        trap,
        "",
        "(call $s (i32.const 0) (i32.const 4))",
        "",
    ));
    let e = h.update(caller(), "run", vec![]).unwrap_err();
    assert_eq!(e.code, RejectCode::CanisterError);
    // The whole block is charged on entry (base 1, 2 consts, the two calls), then trap's
    // 500 + 1 per byte; msg_reply never runs.
    assert_eq!(last(&h, ExecKind::Update), 1 + 2 + 5 + 5 + 500 + 4);
}

#[test]
fn canister_and_environment_system_calls() {
    check_sys(
        &[
            Sys {
                import: r#"(import "ic0" "canister_self_size" (func $s (result i32)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "canister_self_copy" (func $s (param i32 i32 i32)))"#,
                body: "(call $s (i32.const 0) (i32.const 0) (i32.const 2))",
                wasm_ops: 8,
                charge: 500 + 2,
            },
            Sys {
                import: r#"(import "ic0" "canister_cycle_balance128" (func $s (param i32)))"#,
                body: "(call $s (i32.const 0))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "canister_liquid_cycle_balance128" (func $s (param i32)))"#,
                body: "(call $s (i32.const 0))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "canister_status" (func $s (result i32)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "canister_version" (func $s (result i64)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "time" (func $s (result i64)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "global_timer_set" (func $s (param i64) (result i64)))"#,
                body: "(drop (call $s (i64.const 0)))",
                wasm_ops: 7,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "performance_counter" (func $s (param i32) (result i64)))"#,
                body: "(drop (call $s (i32.const 0)))",
                wasm_ops: 7,
                charge: 200,
            },
            Sys {
                import: r#"(import "ic0" "is_controller" (func $s (param i32 i32) (result i32)))"#,
                body: "(drop (call $s (i32.const 0) (i32.const 29)))",
                wasm_ops: 8,
                charge: 1000 + 29,
            },
            Sys {
                import: r#"(import "ic0" "in_replicated_execution" (func $s (result i32)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "certified_data_set" (func $s (param i32 i32)))"#,
                body: "(call $s (i32.const 0) (i32.const 32))",
                wasm_ops: 7,
                charge: 500 + 32,
            },
            Sys {
                import: r#"(import "ic0" "data_certificate_present" (func $s (result i32)))"#,
                body: "(drop (call $s))",
                wasm_ops: 6,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "cost_call" (func $s (param i64 i64 i32)))"#,
                body: "(call $s (i64.const 5) (i64.const 100) (i32.const 0))",
                wasm_ops: 8,
                charge: 500,
            },
            Sys {
                import: r#"(import "ic0" "cost_vetkd_derive_key" (func $s (param i32 i32 i32 i32) (result i32)))"#,
                body: "(drop (call $s (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 64)))",
                wasm_ops: 10,
                charge: 500 + 5,
            },
        ],
        vec![],
    );
}

#[test]
fn debug_print_charges_the_canister_log() {
    let print = r#"(import "ic0" "debug_print" (func $s (param i32 i32)))"#;
    // 100 + 2 per byte kept + 50 per byte that fits the log's free space.
    assert_eq!(
        cost_with(print, "", "(call $s (i32.const 0) (i32.const 10))", vec![]),
        EMPTY + 7 + 100 + 2 * 10 + 50 * 10
    );
    // 5000 bytes: the log keeps 4096 and had 4096 free; the next print finds it full.
    let body = "(call $s (i32.const 0) (i32.const 5000)) (call $s (i32.const 0) (i32.const 10))";
    assert_eq!(
        cost_with(print, "", body, vec![]),
        EMPTY + 14 + (100 + 2 * 4096 + 50 * 4096) + (100 + 2 * 10)
    );
}

#[test]
fn stable_memory_system_calls() {
    let imports = r#"
      (import "ic0" "stable64_size" (func $size (result i64)))
      (import "ic0" "stable64_grow" (func $grow (param i64) (result i64)))
      (import "ic0" "stable64_read" (func $read (param i64 i64 i64)))
      (import "ic0" "stable64_write" (func $write (param i64 i64 i64)))
      (import "ic0" "stable_size" (func $size32 (result i32)))
      (import "ic0" "stable_grow" (func $grow32 (param i32) (result i32)))
      (import "ic0" "stable_read" (func $read32 (param i32 i32 i32)))
      (import "ic0" "stable_write" (func $write32 (param i32 i32 i32)))"#;
    let grow = "(drop (call $grow (i64.const 2)))"; // 1 + 5 + 100 + 1
    let g = 7 + 100;
    // size: nothing beyond the call (the IC's replacement function is not metered).
    assert_eq!(
        cost_with(imports, "", "(drop (call $size))", vec![]),
        EMPTY + 6
    );
    assert_eq!(
        cost_with(imports, "", "(drop (call $size32))", vec![]),
        EMPTY + 6
    );
    assert_eq!(cost_with(imports, "", grow, vec![]), EMPTY + g);
    assert_eq!(
        cost_with(imports, "", "(drop (call $grow32 (i32.const 1)))", vec![]),
        EMPTY + 7 + 100
    );
    // read: 20 + 1 per byte.
    let read = format!("{grow} (call $read (i64.const 0) (i64.const 10) (i64.const 300))");
    assert_eq!(
        cost_with(imports, "", &read, vec![]),
        EMPTY + g + 8 + 20 + 300
    );
    let read32 = format!("{grow} (call $read32 (i32.const 0) (i32.const 10) (i32.const 300))");
    assert_eq!(
        cost_with(imports, "", &read32, vec![]),
        EMPTY + g + 8 + 20 + 300
    );
    // write: 20 + 1 per byte + 1000 per 4 KiB page first written in this execution.
    let write = format!(
        "{grow}
         (call $write (i64.const 0) (i64.const 0) (i64.const 100))
         (call $write (i64.const 4000) (i64.const 0) (i64.const 200))
         (call $write (i64.const 8192) (i64.const 0) (i64.const 0))"
    );
    assert_eq!(
        cost_with(imports, "", &write, vec![]),
        EMPTY + g + (8 + 20 + 100 + 1000) + (8 + 20 + 200 + 1000) + (8 + 20),
        "page 0 once, page 1 once, an empty write dirties nothing"
    );
    let write32 = format!("{grow} (call $write32 (i32.const 4096) (i32.const 0) (i32.const 4097))");
    assert_eq!(
        cost_with(imports, "", &write32, vec![]),
        EMPTY + g + 8 + 20 + 4097 + 2 * 1000
    );
    // Dirty pages are counted per execution: a second message pays them again.
    let mut h = host_for(&module(imports, "", &write, ""));
    h.update(caller(), "run", vec![]).expect("run");
    let first = last(&h, ExecKind::Update);
    h.update(caller(), "run", vec![]).expect("run");
    assert_eq!(last(&h, ExecKind::Update), first);
}

/// The ledger principal of the host and its `icrc1_fee` method, in the data segment.
const CALL_DATA: &str = r#"
  (data (i32.const 100) "\00\00\00\00\00\00\00\02\01\01")
  (data (i32.const 120) "icrc1_fee")
  (data (i32.const 140) "DIDL\00\00")
  (func $on_reply (param i32)
    (call $reply))
  (func $on_reject (param i32)
    (drop (call $code))
    (drop (call $msg_size))
    (call $msg_copy (i32.const 0) (i32.const 0) (i32.const 4))
    (call $reply))
  (elem (i32.const 2) $on_reply $on_reject)"#;

const CALL_IMPORTS: &str = r#"
  (import "ic0" "call_new" (func $new (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "ic0" "call_data_append" (func $append (param i32 i32)))
  (import "ic0" "call_on_cleanup" (func $cleanup (param i32 i32)))
  (import "ic0" "call_with_best_effort_response" (func $best_effort (param i32)))
  (import "ic0" "call_cycles_add128" (func $cycles (param i64 i64)))
  (import "ic0" "call_perform" (func $perform (result i32)))
  (import "ic0" "msg_reject_code" (func $code (result i32)))
  (import "ic0" "msg_reject_msg_size" (func $msg_size (result i32)))
  (import "ic0" "msg_reject_msg_copy" (func $msg_copy (param i32 i32 i32)))"#;

#[test]
fn inter_canister_call_system_calls() {
    // The update does not reply (its callback does), so it ends with `return`.
    let body = "
      (call $new (i32.const 100) (i32.const 10) (i32.const 120) (i32.const 9)
                 (i32.const 2) (i32.const 0) (i32.const 3) (i32.const 0))
      (call $append (i32.const 140) (i32.const 6))
      (call $cleanup (i32.const 2) (i32.const 0))
      (call $best_effort (i32.const 10))
      (call $cycles (i64.const 0) (i64.const 0))
      (drop (call $perform))
      (return)";
    let wasm = module(CALL_IMPORTS, "", body, CALL_DATA);
    let expected_update = 1
        + (8 + 5 + 1500 + 10 + 9)
        + (2 + 5 + 500 + 50 * 6)
        + (2 + 5 + 500)
        + (1 + 5 + 500)
        + (2 + 5 + 500)
        + (5 + 5000 + 1)
        + 1;
    let mut h = host_for(&wasm);
    h.update(caller(), "run", vec![])
        .expect("reply callback replies");
    assert_eq!(last(&h, ExecKind::Update), expected_update);
    // Reply callback: base 1 + call 5 + msg_reply 500.
    assert_eq!(last(&h, ExecKind::ReplyCallback), 506);

    // Reject callback: msg_reject_code 500, msg_reject_msg_size 500, msg_reject_msg_copy
    // 500 + 4 bytes, each with its call (5) and drop / arguments.
    let mut h = host_for(&wasm);
    h.fail_next_calls("icrc1_fee", 1, RejectCode::SysTransient, "queue full");
    h.update(caller(), "run", vec![])
        .expect("reject callback replies");
    assert_eq!(last(&h, ExecKind::Update), expected_update);
    assert_eq!(
        last(&h, ExecKind::RejectCallback),
        1 + (6 + 500) + (6 + 500) + (8 + 500 + 4) + 505
    );
}

#[test]
fn accept_message_in_inspect_message() {
    let wasm = wat::parse_str(
        r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "accept_message" (func $accept))
  (memory (export "memory") 1)
  (func (export "canister_inspect_message") (call $accept))
  (func (export "canister_update run") (call $reply)))"#,
    )
    .expect("wat");
    let mut h = host_for(&wasm);
    h.update(caller(), "run", vec![]).expect("run");
    // base 1 + call 5 + accept_message 500.
    assert_eq!(last(&h, ExecKind::Inspect), 506);
    assert_eq!(last(&h, ExecKind::Update), EMPTY);
}
