//! Argument decoding on the compiled wasm: malformed and adversarial Candid arguments are
//! refused by the endpoint's decoder with a Candid error — cheaply, and without any other
//! trap. Each test reproduces a finding of the endpoint fuzzer (docs/fuzzing.md).

use candid::Principal;
use livault_tests::fuzz::gen::{nested, recursive_opt, with_deep_extra};
use livault_tests::fuzz::interface::Interface;
use livault_tests::fuzz::runner::classify_reject;
use livault_tests::*;
use local_replica::Reject;

/// Most instructions a refused argument may cost (the generated decoders of ic-cdk had no
/// limit: see the tests).
const REFUSAL_BUDGET: u64 = 10_000_000;

fn caller() -> Principal {
    user("decoding-caller")
}

/// Calls `method` (query or update) with raw argument bytes; it must be rejected without
/// writing a byte of stable memory (the host records every page an execution writes).
fn refused(env: &mut TestEnv, method: &str, query: bool, arg: Vec<u8>) -> Reject {
    // Timers due before the call (e.g. the key fetch after install) run first.
    env.host.run_until_idle();
    env.host.track_stable_writes();
    let len = env.host.stable_memory().map(<[u8]>::len);
    let r = if query {
        env.host.query(caller(), method, arg)
    } else {
        env.host.update(caller(), method, arg)
    };
    let written = env.host.take_stable_dirty_pages().expect("tracking");
    assert!(
        written.is_empty(),
        "{method}: the refused call wrote stable pages {written:?}"
    );
    assert_eq!(env.host.stable_memory().map(<[u8]>::len), len, "{method}");
    match r {
        Ok(reply) => panic!(
            "{method}: the argument was accepted ({} instructions)",
            reply.instructions
        ),
        Err(e) => e,
    }
}

/// A clean refusal of the argument (see `classify_reject`): the argument guard's reject or the
/// decoder's trap with the Candid error.
fn assert_decoder_refusal(method: &str, r: &Reject) {
    let class = classify_reject(r.code, &r.message, method);
    assert!(
        class.starts_with("guard") || class.starts_with("decoder"),
        "{method}: not a clean refusal ({class}): {}",
        r.message
    );
}

fn assert_cheap(method: &str, r: &Reject) {
    assert!(
        r.total_instructions <= REFUSAL_BUDGET,
        "{method}: refusing the argument cost {} instructions",
        r.total_instructions
    );
}

/// 10 000 nested record types (51 752 bytes, within candid's default limits of 10 000 type
/// table entries and a 64 KiB header). Fuzzer: `get_vault`, `quote`, `list_my_vaults`,
/// `get_audit_head`, `quote_upgrade` trapped with `call stack exhausted` after 545 M
/// instructions (candid checks type tables recursively and sets no recursion limit on wasm).
#[test]
fn a_deeply_nested_type_table_is_refused_without_exhausting_the_stack() {
    let mut env = TestEnv::new();
    for method in [
        "get_vault",
        "quote",
        "list_my_vaults",
        "get_audit_head",
        "quote_upgrade",
    ] {
        let r = refused(&mut env, method, true, nested(10_000, 2));
        assert_cheap(method, &r);
        assert_decoder_refusal(method, &r);
    }
}

/// The same for the payments queries (`list_billing` trapped in the fuzz run).
#[test]
fn a_deeply_nested_type_table_is_refused_by_the_payments_queries() {
    let mut env = TestEnv::new();
    for method in [
        "list_billing",
        "get_payment_session",
        "list_payment_sessions",
    ] {
        let r = refused(&mut env, method, true, nested(10_000, 2));
        assert_cheap(method, &r);
        assert_decoder_refusal(method, &r);
    }
}

/// 1 000 nested `opt` types (3 944 bytes): under the 16 KiB inspect limit, so any signed-in
/// principal can send it as an update; decoding runs before the rate limit or any other
/// check. Fuzzer: 58-84 M instructions per call (`finalize_setup`, `set_treasury`,
/// `issue_recovery_code`, `upload_chunk`...), 10 000 nested types in a query: 708-755 M.
#[test]
fn nested_types_under_the_update_size_limit_cost_little_to_refuse() {
    let mut env = TestEnv::new();
    for (method, query) in [
        ("check_in", false),
        ("finalize_setup", false),
        ("claim_invite", false),
        ("upload_chunk", false),
        ("get_download_chunk", true),
        ("get_vault", true),
    ] {
        for shape in 0..3 {
            let r = refused(&mut env, method, query, nested(1_000, shape));
            assert_cheap(method, &r);
            assert_decoder_refusal(method, &r);
        }
        // Deeper still: 10 000 levels (40 kB) for queries; updates over 16 KiB are refused by
        // ingress inspection, so 3 000 levels (12 kB).
        let depth = if query { 10_000 } else { 3_000 };
        let r = refused(&mut env, method, query, nested(depth, 0));
        assert_cheap(method, &r);
        assert_decoder_refusal(method, &r);
    }
}

/// The same for the payments updates.
#[test]
fn nested_types_cost_little_to_refuse_on_the_payments_updates() {
    let mut env = TestEnv::new();
    for method in [
        "verify_payment",
        "init_payment",
        "refund_session",
        "set_treasury",
    ] {
        let r = refused(&mut env, method, false, nested(1_000, 0));
        assert_cheap(method, &r);
        assert_decoder_refusal(method, &r);
    }
}

/// A well-formed query argument of 1.5 MB: `http_request` with 100 000 empty headers.
/// Queries have no inspect limit; fuzzer: 924 M instructions to decode.
#[test]
fn a_huge_query_argument_is_refused_by_its_decoding_cost() {
    let mut env = TestEnv::new();
    let req = HttpRequest {
        method: "GET".into(),
        url: "/health".into(),
        headers: vec![(String::new(), String::new()); 100_000],
        body: serde_bytes::ByteBuf::new(),
    };
    let r = refused(
        &mut env,
        "http_request",
        true,
        candid::encode_one(&req).unwrap(),
    );
    assert_cheap("http_request", &r);
    assert_decoder_refusal("http_request", &r);
    // An ordinary request still works.
    let ok = HttpRequest {
        headers: vec![("accept".into(), "*/*".into()); 20],
        ..req
    };
    let reply = env
        .host
        .query(caller(), "http_request", candid::encode_one(&ok).unwrap())
        .expect("an ordinary request");
    let resp: HttpResponse = candid::decode_one(&reply.bytes).unwrap();
    assert_eq!(resp.status_code, 200);
}

/// Extra arguments beyond the declared ones are skipped within candid's skipping quota (10 000
/// units, about one per byte) and the limits of every argument; over them the refusal says
/// which limit (the hand-written decoders of `upload_chunk` / `get_download_chunk` said only
/// "Fail to decode argument 3 from table0 to reserved").
#[test]
fn extra_arguments_over_a_limit_are_refused_naming_it() {
    let mut env = TestEnv::new();
    let long = "x".repeat(12_000);
    let many = vec![(); 1_001];
    let chunk = || serde_bytes::ByteBuf::from(vec![1u8]);
    for (method, query, arg, limit) in [
        (
            "get_download_chunk",
            true,
            candid::encode_args((1u64, 0u32, &long)).unwrap(),
            "Skipping cost exceeds the limit",
        ),
        (
            "upload_chunk",
            false,
            candid::encode_args((1u64, 0u32, chunk(), &long)).unwrap(),
            "Skipping cost exceeds the limit",
        ),
        (
            "get_vault",
            true,
            candid::encode_args((1u64, &long)).unwrap(),
            "Skipping cost exceeds the limit",
        ),
        (
            "get_download_chunk",
            true,
            candid::encode_args((1u64, 0u32, many.clone())).unwrap(),
            "values than allowed",
        ),
        (
            "upload_chunk",
            false,
            candid::encode_args((1u64, 0u32, chunk(), many.clone())).unwrap(),
            "values than allowed",
        ),
        (
            "get_vault",
            true,
            candid::encode_args((1u64, many.clone())).unwrap(),
            "values than allowed",
        ),
    ] {
        let r = refused(&mut env, method, query, arg);
        assert_decoder_refusal(method, &r);
        assert!(r.message.contains(limit), "{method}: {}", r.message);
    }
    // Within the limits the extra arguments are ignored.
    for extra in [
        candid::encode_args((1u64, vec![(); 100])),
        candid::encode_args((1u64, "x".repeat(9_000))),
    ] {
        let r = env
            .host
            .query(caller(), "get_vault", extra.unwrap())
            .expect("extra arguments within the limits");
        let v: Result<VaultView, VaultError> = candid::decode_one(&r.bytes).unwrap();
        assert_eq!(v, Err(VaultError::NotFound));
    }
}

/// A valid argument with an extra value of the recursive type `t = opt t` nested 3 000 deep
/// (3 kB, under every size limit): every endpoint trapped with `call stack exhausted` (candid
/// skips extra values recursively, with no depth limit on wasm). Fuzzer: `with_deep_extra`.
#[test]
fn a_deeply_nested_extra_value_is_refused_without_exhausting_the_stack() {
    let mut env = TestEnv::new();
    for (method, query, arg) in [
        ("get_vault", true, candid::encode_one(1u64).unwrap()),
        ("check_in", false, candid::encode_one(1u64).unwrap()),
        (
            "list_my_vaults",
            true,
            candid::encode_one(PageArgs::default()).unwrap(),
        ),
        (
            "get_download_chunk",
            true,
            candid::encode_args((1u64, 0u32)).unwrap(),
        ),
    ] {
        let deep = with_deep_extra(&arg, 3_000).expect("a simple type table");
        let r = refused(&mut env, method, query, deep);
        assert_cheap(method, &r);
        assert_decoder_refusal(method, &r);
        // Not deep: the extra value is skipped and the call answers.
        let shallow = with_deep_extra(&arg, 10).unwrap();
        let ok = if query {
            env.host.query(caller(), method, shallow)
        } else {
            env.host.update(caller(), method, shallow)
        };
        assert!(ok.is_ok(), "{method}: {ok:?}");
    }
}

/// The same on the payments endpoints.
#[test]
fn a_deeply_nested_extra_value_is_refused_by_the_payments_endpoints() {
    let mut env = TestEnv::new();
    for (method, query) in [("get_payment_session", true), ("verify_payment", false)] {
        let deep = with_deep_extra(&candid::encode_one(1u64).unwrap(), 3_000).unwrap();
        let r = refused(&mut env, method, query, deep);
        assert_cheap(method, &r);
        assert_decoder_refusal(method, &r);
    }
}

/// Every method of the `.did` that takes arguments (read from the file, so a new endpoint is
/// covered without editing this test) refuses deep nesting, a recursive value and, for
/// queries (no ingress inspection), an oversized argument: cheaply, cleanly, writing nothing.
#[test]
fn every_endpoint_with_parameters_refuses_adversarial_arguments_cheaply() {
    let iface = Interface::load();
    let mut env = TestEnv::new();
    let mut checked = 0;
    for m in iface.methods.iter().filter(|m| !m.args.is_empty()) {
        let mut args = vec![
            ("nested opt", nested(1_000, 0)),
            ("nested vec", nested(1_000, 1)),
            ("nested record", nested(1_000, 2)),
            ("recursive opt", recursive_opt(10_000)),
        ];
        if m.query {
            args.push(("10 000 nested records", nested(10_000, 2)));
            args.push((
                "17 KiB text",
                candid::encode_one("x".repeat(17 * 1024)).unwrap(),
            ));
        }
        for (what, arg) in args {
            let r = refused(&mut env, &m.name, m.query, arg);
            assert!(
                r.total_instructions <= REFUSAL_BUDGET,
                "{} ({what}): {} instructions",
                m.name,
                r.total_instructions
            );
            let class = classify_reject(r.code, &r.message, &m.name);
            assert!(
                class.starts_with("guard") || class.starts_with("decoder"),
                "{} ({what}): not a clean refusal ({class}): {}",
                m.name,
                r.message
            );
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} methods with parameters");
}
