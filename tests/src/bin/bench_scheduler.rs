//! Scheduler benchmark on the compiled wasm (instruction counts from the embedded host).
//!
//!     scripts/build.sh && cargo run -p livault_tests --bin bench_scheduler [N...]
//!     scripts/build.sh --bench-seed && cargo run -p livault_tests --bin bench_scheduler -- --bulk [N...]
//!
//! For each N (default: 1000 and 100000) it installs a fresh canister, seeds N vaults through
//! the public `create_vault` (20 per owner principal: per-owner limit and rate-limit burst),
//! or with `--bulk` through the benchmark-only `bench_seed_drafts` of the `bench-seed` wasm
//! (`target/livault-bench/`, same domain code, 1 000 drafts per call, 20 per owner),
//! arranged so that the same 50 drafts are due and the other N − 50 are not:
//! 50 drafts, one day later the rest, then the clock moves to 7 days + 1 h after the first
//! 50. It then measures with `run_maintenance` an empty tick (before the deadline) and the
//! tick that purges the 50 due drafts, and an empty tick of the periodic timer (its
//! `canister_global_timer`, timer executor and callback messages) on a separate canister.
//!
//! With `LIVAULT_UPGRADE_WASM=<module>` the canister (seeded and ticked by `LIVAULT_WASM`) is
//! then upgraded to that module first, and that `post_upgrade` is printed as "migration":
//! a layout migration measured at N vaults (the usual upgrade then runs on that module),
//! with the messages the upgrade's timers ran right after it (e.g. the owner index's
//! re-key from the subnet's randomness on the first upgrade to layout 8).

use std::time::{Duration, Instant};

use candid::Principal;
use livault_backend::model::config::Durations;
use livault_tests::*;

const DUE: usize = 50;

type R<T> = Result<T, VaultError>;

fn env(interval_secs: u64) -> TestEnv {
    TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: interval_secs,
            ..Durations::default()
        }),
        ..Default::default()
    })
}

/// Drafts per `bench_seed_drafts` call.
const BULK_CALL: usize = 1_000;

fn seed(env: &mut TestEnv, bulk: bool, from: usize, to: usize) {
    if bulk {
        let mut i = from;
        while i < to {
            let count = BULK_CALL.min(to - i);
            let controller = env.controller;
            let r: R<u32> = env.update(controller, "bench_seed_drafts", (i as u64, count as u32));
            assert_eq!(r.expect("bench_seed_drafts") as usize, count);
            i += count;
            if (i - from).is_multiple_of(10_000) {
                eprintln!("    seeded {i}");
            }
        }
        return;
    }
    for i in from..to {
        let owner = user(&format!("bench-owner-{}", i / 20));
        let r: R<VaultView> = env.update(
            owner,
            "create_vault",
            (CreateVaultArgs {
                name: format!("v{i}"),
                plan: PlanSelection {
                    tier: Tier::Basic,
                    heir_slots: 1,
                    witness_slot: false,
                },
                owner_age: 30,
                idempotency_key: None,
            },),
        );
        r.expect("create_vault");
        if (i + 1) % 10_000 == 0 {
            eprintln!("    seeded {}", i + 1);
        }
    }
}

/// (host instructions of the whole call tree, the report).
fn maintenance(env: &mut TestEnv) -> (u64, TickReport) {
    let admin = env.admin;
    let reply = env
        .host
        .update(admin, "run_maintenance", candid::encode_args(()).unwrap())
        .expect("run_maintenance");
    let report: R<TickReport> = candid::decode_one(&reply.bytes).unwrap();
    (reply.total_instructions, report.unwrap())
}

struct Row {
    n: usize,
    seed_secs: f64,
    empty_total: u64,
    empty_tick: u64,
    empty_again_tick: u64,
    due_total: u64,
    due_report: TickReport,
    post_upgrade: u64,
    /// `post_upgrade` of the migration, the largest message after it (instructions,
    /// method) and all messages after it.
    migration: Option<(u64, (u64, String), u64)>,
    stable_bytes: u64,
    heap_bytes: u64,
}

fn run(n: usize, bulk: bool) -> Row {
    assert!(n > DUE);
    let mut env = env(365 * 86_400);
    let start = Instant::now();
    seed(&mut env, bulk, 0, DUE);
    env.advance_days(1);
    seed(&mut env, bulk, DUE, n);
    let seed_secs = start.elapsed().as_secs_f64();
    let (empty_total, empty) = maintenance(&mut env);
    assert_eq!(empty.taken, 0);
    // Steady state: the previous empty tick recorded the earliest due time.
    let (_, empty_again) = maintenance(&mut env);
    assert_eq!(empty_again.taken, 0);
    env.advance(Duration::from_secs(6 * 86_400 + 3600));
    let (due_total, due_report) = maintenance(&mut env);
    assert_eq!(due_report.processed as usize, DUE, "{due_report:?}");
    assert_eq!(due_report.applied as usize, DUE);
    assert!(!due_report.more_due);
    let last_post_upgrade = |env: &TestEnv| {
        env.host
            .executions()
            .filter(|e| e.kind == local_replica::ic0::ExecKind::PostUpgrade)
            .last()
            .expect("post_upgrade ran")
            .instructions
    };
    let upgrade_to = std::env::var_os("LIVAULT_UPGRADE_WASM")
        .map(|p| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.to_string_lossy())));
    let no_args = candid::encode_one(None::<LiVaultArgs>).expect("encode upgrade args");
    let migration = upgrade_to.as_ref().map(|w| {
        let before = env.host.executions().count();
        env.host
            .upgrade(w, no_args.clone())
            .expect("upgrade to LIVAULT_UPGRADE_WASM");
        // The messages the upgrade's timers ran right after it (the owner index's re-key
        // among them): the largest one and all of them.
        let after: Vec<(u64, String)> = env
            .host
            .executions()
            .skip(before)
            .filter(|e| e.kind != local_replica::ic0::ExecKind::PostUpgrade)
            .filter(|e| e.kind != local_replica::ic0::ExecKind::PreUpgrade)
            .map(|e| (e.instructions, e.method.clone()))
            .collect();
        let largest = after.iter().max().cloned().unwrap_or_default();
        let total = after.iter().map(|e| e.0).sum();
        (last_post_upgrade(&env), largest, total)
    });
    // An upgrade at this size: `post_upgrade` rebuilds the queue's heap index from its slots.
    match &upgrade_to {
        Some(w) => env.host.upgrade(w, no_args).expect("upgrade"),
        None => env.upgrade(None).expect("upgrade"),
    }
    let post_upgrade = last_post_upgrade(&env);
    let status = env.host.status().expect("installed");
    let (stable_bytes, heap_bytes) = (status.stable_memory_bytes, status.heap_bytes);
    Row {
        n,
        seed_secs,
        empty_total,
        empty_tick: empty.instructions,
        empty_again_tick: empty_again.instructions,
        due_total,
        due_report,
        post_upgrade,
        migration,
        stable_bytes,
        heap_bytes,
    }
}

/// Instructions of one empty periodic tick (all messages the timer causes).
fn timer_tick() -> u64 {
    let mut env = env(60);
    env.create_vault(user("someone"), "x");
    env.advance(Duration::from_secs(61));
    let mark = env.now();
    env.advance(Duration::from_secs(60));
    let total: u64 = env
        .host
        .executions()
        .filter(|e| e.time_ns > mark)
        .map(|e| e.instructions)
        .sum();
    let admin = env.admin;
    let m: R<Metrics> = env.query(admin, "get_metrics", ());
    let last = m.unwrap().scheduler.last_run.unwrap();
    assert_eq!((last.manual, last.taken), (false, 0));
    total
}

fn main() {
    let mut bulk = false;
    let mut sizes: Vec<usize> = Vec::new();
    for a in std::env::args().skip(1) {
        if a == "--bulk" {
            bulk = true;
        } else {
            sizes.push(a.parse().expect("vault count"));
        }
    }
    if bulk && std::env::var_os("LIVAULT_WASM").is_none() {
        // The bench-seed wasm (scripts/build.sh --bench-seed).
        std::env::set_var(
            "LIVAULT_WASM",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/livault-bench/livault_backend.wasm"
            ),
        );
    }
    let sizes = if sizes.is_empty() {
        vec![1_000, 100_000]
    } else {
        sizes
    };
    let _ = Principal::anonymous();
    let timer = timer_tick();
    println!("empty periodic tick (timer, all messages): {timer} instructions");
    let mut rows = Vec::new();
    for n in sizes {
        eprintln!("==> {n} vaults");
        let row = run(n, bulk);
        println!(
            "N={:>7}: seeded ({}) in {:.1}s | empty run_maintenance: tick {} / message {}, next empty tick {} | \
             {} due: tick {} instr ({} per item, max item {}), message total {} | \
             post_upgrade {} instr | stable memory {} bytes ({} per vault), heap {} bytes",
            row.n,
            if bulk {
                "bench_seed_drafts"
            } else {
                "create_vault"
            },
            row.seed_secs,
            row.empty_tick,
            row.empty_total,
            row.empty_again_tick,
            DUE,
            row.due_report.instructions,
            row.due_report.instructions / DUE as u64,
            row.due_report.max_item_instructions,
            row.due_total,
            row.post_upgrade,
            row.stable_bytes,
            row.stable_bytes / row.n as u64,
            row.heap_bytes,
        );
        if let Some((m, (largest, method), total)) = &row.migration {
            println!(
                "N={:>7}: migration post_upgrade (to LIVAULT_UPGRADE_WASM) {m} instr; the \
                 messages its timers ran right after: largest {largest} instr ({method}), \
                 all {total} instr",
                row.n
            );
        }
        rows.push(row);
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if rows.len() > 1 {
            println!(
                "ratio N={} / N={}: due tick {:.3}x, message total {:.3}x",
                last.n,
                first.n,
                last.due_report.instructions as f64 / first.due_report.instructions as f64,
                last.due_total as f64 / first.due_total as f64,
            );
        }
    }
}
