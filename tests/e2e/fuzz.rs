//! The endpoint fuzzer on the compiled wasm (docs/fuzzing.md): a short seeded run over every
//! endpoint of the `.did`, and checks that its oracle sees what it must see.
//!
//! `FUZZ_SEED` / `FUZZ_CALLS` (calls per endpoint) change the short run; the long run is the
//! `fuzz_endpoints` binary.

use candid::Principal;
use livault_tests::fuzz::interface::Interface;
use livault_tests::fuzz::runner::{run, Config, Fuzzer};
use livault_tests::fuzz::world::Role;
use livault_tests::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {s}"))
        })
        .unwrap_or(default)
}

#[test]
fn every_endpoint_survives_a_short_fuzz_run() {
    let cfg = Config {
        seed: env_u64("FUZZ_SEED", 1),
        calls_per_endpoint: env_u64("FUZZ_CALLS", 40),
        ..Config::default()
    };
    let report = run(&cfg);
    println!("{}", report.render());

    // Every method of the .did was called, as often as asked.
    assert!(
        report.methods.len() >= 40,
        "the .did has {} methods",
        report.methods.len()
    );
    for name in &report.methods {
        let s = &report.endpoints[name];
        assert_eq!(s.calls, cfg.calls_per_endpoint, "{name} was not fuzzed");
        // Some calls got past admission and decoding to the endpoint's own answer.
        let answered = s.ok
            + s.errs
                .iter()
                .filter(|(k, _)| *k != "RateLimited")
                .map(|(_, v)| v)
                .sum::<u64>();
        assert!(answered > 0, "{name}: no call reached the endpoint: {s:?}");
    }
    assert!(
        report.failures.is_empty(),
        "{} oracle violations (reproduce with FUZZ_SEED={} FUZZ_CALLS={}):\n{}",
        report.failures.len(),
        cfg.seed,
        cfg.calls_per_endpoint,
        report
            .failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The rate limiter answered some calls, but it is not what the fuzzer mostly sees.
    let typed: u64 = report
        .endpoints
        .values()
        .flat_map(|s| s.errs.values())
        .sum();
    let ok: u64 = report.endpoints.values().map(|s| s.ok).sum();
    let limited: u64 = report.roles.values().map(|r| r.1).sum();
    assert!(limited > 0, "no call was rate limited");
    assert!(
        limited * 10 < typed + ok,
        "RateLimited is {limited} of {} answers",
        typed + ok
    );
    assert!(
        ok * 50 > report.calls,
        "only {ok} Ok answers in {} calls",
        report.calls
    );
    for role in Role::ALL {
        assert!(
            report.roles.get(&role).is_some_and(|r| r.0 > 0),
            "no call as {}",
            role.name()
        );
    }
}

fn vault_in(fz: &Fuzzer, status: VaultStatus) -> VaultId {
    fz.world
        .vaults
        .iter()
        .find(|(_, s)| *s == status)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("the fuzz world has no {status:?} vault"))
}

/// The stable-memory oracle sees writes: `approve_unlock` before the time gate opens is
/// refused (`UnlockConditionsNotMet`) and, as SPEC §4 requires, records the failed attempt.
/// Allowed by the exemption list; reported without it. A refusal that must not write
/// (a stranger's call) leaves every byte as it was.
#[test]
fn the_oracle_reports_a_refused_call_that_writes() {
    let iface = Interface::load();
    let mut fz = Fuzzer::new(&iface);
    let active = vault_in(&fz, VaultStatus::Active);
    let heir = fz.world.members[0];
    let m = iface.method("approve_unlock").expect("approve_unlock");
    let arg = candid::encode_one(active).unwrap();

    let c = fz.call(m, heir, &arg);
    assert_eq!(
        c.refused.as_deref(),
        Some("UnlockConditionsNotMet"),
        "{c:?}"
    );
    assert!(
        !c.changed.is_empty() && c.writing_refusal && c.problems.is_empty(),
        "{c:?}"
    );

    fz.exempt_writing_refusals = false;
    let c = fz.call(m, heir, &arg);
    assert!(
        c.problems
            .iter()
            .any(|p| p.starts_with("refused (UnlockConditionsNotMet) but stable memory changed")),
        "{c:?}"
    );

    let c = fz.call(m, user("nobody"), &arg);
    assert_eq!(c.refused.as_deref(), Some("NotAuthorized"), "{c:?}");
    assert!(c.changed.is_empty() && c.problems.is_empty(), "{c:?}");
    fz.full_check();
}

/// The trap oracle: a trap in an endpoint is reported; a malformed argument refused by the
/// decoder, an anonymous update refused by inspection, and a method without parameters that
/// ignores garbage are not.
#[test]
fn the_oracle_reports_traps_but_not_clean_refusals() {
    let iface = Interface::load();
    let mut fz = Fuzzer::new(&iface);
    let owner = fz.world.owner;
    let get_vault = iface.method("get_vault").expect("get_vault");
    let v = candid::encode_one(vault_in(&fz, VaultStatus::Active)).unwrap();

    let c = fz.call(get_vault, owner, &v);
    assert!(c.refused.is_none() && c.problems.is_empty(), "{c:?}");

    fz.world.env.host.trap_on_ic0("msg_reply", 1);
    let c = fz.call(get_vault, owner, &v);
    fz.world.env.host.clear_faults();
    assert!(c.rejected, "{c:?}");
    assert!(
        c.problems.iter().any(|p| p.starts_with("rejected: trap")),
        "{c:?}"
    );

    // A text where a nat64 is expected.
    let c = fz.call(get_vault, owner, &candid::encode_one("1").unwrap());
    assert!(c.rejected && c.problems.is_empty(), "{c:?}");
    assert!(
        c.refused
            .as_deref()
            .is_some_and(|r| r.starts_with("decoder")),
        "{c:?}"
    );

    let check_in = iface.method("check_in").expect("check_in");
    let c = fz.call(check_in, Principal::anonymous(), &v);
    assert_eq!(c.refused.as_deref(), Some("inspect:anonymous"), "{c:?}");
    assert!(c.problems.is_empty(), "{c:?}");

    let get_plans = iface.method("get_plans").expect("get_plans");
    let c = fz.call(get_plans, owner, b"garbage");
    assert!(
        c.refused.is_none() && c.ignored_malformed && c.problems.is_empty(),
        "{c:?}"
    );
}
