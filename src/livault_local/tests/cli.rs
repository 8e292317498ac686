//! The CLI's commands, run in-process against a temporary state directory: state must
//! persist between invocations.

use livault_local::cli;
use local_replica::Host;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lr-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(state: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec![
        "--quiet".to_string(),
        "--state".into(),
        state.display().to_string(),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    cli::run(v)
}

#[test]
fn state_persists_between_invocations() {
    let dir = tmp("persist");
    let state = dir.join("state");
    let wasm = dir.join("c.wasm");
    std::fs::write(
        &wasm,
        wat::parse_str(include_str!("../../local_replica/tests/semantics.wat")).unwrap(),
    )
    .unwrap();
    let wasm = wasm.display().to_string();

    run(&state, &["identity", "new", "alice"]).unwrap();
    run(&state, &["install", "--wasm", &wasm]).unwrap();
    // A second plain install is refused.
    assert!(run(&state, &["install", "--wasm", &wasm]).is_err());
    run(&state, &["call", "--as", "alice", "inc"]).unwrap();
    run(&state, &["call", "inc"]).unwrap();
    run(&state, &["ledger", "fund", "alice", "100000000"]).unwrap();
    let bob = cli::ledger::account_of("default").to_hex();
    run(
        &state,
        &[
            "ledger", "transfer", "--as", "alice", "--to", &bob, "--amount", "1000",
        ],
    )
    .unwrap();
    run(&state, &["time", "advance", "3d"]).unwrap();
    // Errors are reported, not panics.
    assert!(run(&state, &["call", "--as", "nobody", "inc"]).is_err());
    assert!(run(&state, &["ledger", "balance", "zz"]).is_err());
    assert!(run(&state, &["time", "advance", "3x"]).is_err());
    assert!(run(&state, &["frobnicate"]).is_err());
    run(&state, &["status"]).unwrap();

    let mut host = Host::load(&state).unwrap();
    let r = host
        .query(candid::Principal::anonymous(), "get", vec![])
        .unwrap();
    assert_eq!(u64::from_le_bytes(r.bytes[..8].try_into().unwrap()), 2);
    assert_eq!(
        host.ledger().balance(&cli::ledger::account_of("default")),
        1000
    );
    assert!(host.now() >= local_replica::host::DEFAULT_START_TIME_NS + 3 * 86_400 * 1_000_000_000);
    let _ = std::fs::remove_dir_all(&dir);
}
