//! What the argument guard (`api::arguments`, docs/fuzzing.md) costs ordinary calls
//! (BENCHMARKS.md, "Argument limits"): instructions of one call of each endpoint below with the
//! arguments a client sends, on the wasm named by `LIVAULT_WASM` (default: the shipped build).
//! Run it on the wasm before and after a change and compare the columns.
//!
//!     scripts/build.sh && cargo run -p livault_tests --bin bench_arguments
//!
//! Every call is made 5 times (updates 2 s apart, so the rate limit never answers) and the
//! median of its total instructions (every execution of the call) is printed.

use candid::Principal;
use livault_backend::model::config::Pricing;
use livault_tests::*;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

type R<T> = Result<T, VaultError>;

const RUNS: usize = 5;

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

struct Bench {
    env: TestEnv,
}

impl Bench {
    /// One call; its total instructions. Panics if the call is rejected or answers `Err`
    /// (checked by the `ok` decoder of the caller).
    fn call(&mut self, who: Principal, method: &str, query: bool, arg: &[u8]) -> (u64, Vec<u8>) {
        let r = if query {
            self.env.host.query(who, method, arg.to_vec())
        } else {
            self.env.advance(std::time::Duration::from_secs(2));
            self.env.host.update(who, method, arg.to_vec())
        };
        let r = r.unwrap_or_else(|e| panic!("{method}: {e}"));
        (r.total_instructions, r.bytes)
    }

    fn row(&mut self, name: &str, who: Principal, method: &str, query: bool, arg: &[u8]) {
        let mut v = Vec::new();
        for _ in 0..RUNS {
            let (n, reply) = self.call(who, method, query, arg);
            assert_not_err(method, &reply);
            v.push(n);
        }
        print_row(name, arg.len(), median(v));
    }
}

fn print_row(name: &str, arg_len: usize, instructions: u64) {
    println!("{name:<52} {arg_len:>9} B {instructions:>12}");
}

/// The reply is not a `variant { Err }` (LiVault's results put `Ok` first: tag 0... checked
/// by decoding the error type, which only succeeds for an `Err`).
fn assert_not_err(method: &str, reply: &[u8]) {
    if let Ok(Err(e)) = candid::decode_one::<Result<candid::Reserved, VaultError>>(reply) {
        panic!("{method}: Err({e:?})");
    }
}

fn main() {
    let wasm = wasm_path();
    println!("wasm: {}", wasm.display());
    let mut b = Bench {
        env: TestEnv::new(),
    };
    let owner = user("bench-args-owner");
    let admin = b.env.admin;
    let v = b.env.create_vault(owner, "Bench").id;
    b.env.pay_creation(owner, v);
    let item = b.env.upload_letter(owner, v, b"a letter", None);
    println!("{:<52} {:>11} {:>12}", "call", "argument", "instructions");

    b.row(
        "get_vault (query)",
        owner,
        "get_vault",
        true,
        &candid::encode_one(v).unwrap(),
    );
    b.row(
        "list_my_vaults (query, page of 50)",
        owner,
        "list_my_vaults",
        true,
        &candid::encode_one(PageArgs {
            start_after: None,
            limit: Some(50),
        })
        .unwrap(),
    );
    b.row(
        "get_audit_log (query)",
        owner,
        "get_audit_log",
        true,
        &candid::encode_args((v, PageArgs::default())).unwrap(),
    );
    b.row(
        "check_in",
        owner,
        "check_in",
        false,
        &candid::encode_one(v).unwrap(),
    );
    b.row(
        "update_vault (name, retention)",
        owner,
        "update_vault",
        false,
        &candid::encode_one(UpdateVaultArgs {
            vault_id: v,
            name: Some("Family letters".into()),
            unlock_rules: None,
            post_unlock_days: None,
            audit_retention_days: Some(365),
        })
        .unwrap(),
    );
    // create_vault: a new owner per call (the same arguments).
    let mut v_create = Vec::new();
    for i in 0..RUNS {
        let arg = candid::encode_one(CreateVaultArgs {
            name: "New vault".into(),
            plan: PlanSelection {
                tier: Tier::Basic,
                heir_slots: 2,
                witness_slot: true,
            },
            owner_age: 60,
            idempotency_key: Some("4f1c2a9e-create".into()),
        })
        .unwrap();
        let (n, reply) = b.call(
            user(&format!("bench-args-new-{i}")),
            "create_vault",
            false,
            &arg,
        );
        assert_not_err("create_vault", &reply);
        v_create.push((n, arg.len()));
    }
    print_row(
        "create_vault",
        v_create[0].1,
        median(v_create.iter().map(|x| x.0).collect()),
    );
    // begin_upload with 4 KiB of metadata; upload_chunk of a full 1 MiB chunk.
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut begins = Vec::new();
    let mut chunks = Vec::new();
    let mut arg_lens = (0, 0);
    for _ in 0..RUNS {
        let arg = candid::encode_one(BeginUploadArgs {
            vault_id: v,
            kind: ItemKind::File,
            size: payload.len() as u64,
            sha256: ByteBuf::from(Sha256::digest(&payload).to_vec()),
            encrypted_meta: ByteBuf::from(vec![5u8; 4096]),
            recipients: None,
            replaces: None,
            idempotency_key: None,
        })
        .unwrap();
        let (n, reply) = b.call(owner, "begin_upload", false, &arg);
        let up: R<UploadView> = candid::decode_one(&reply).unwrap();
        let up = up.expect("begin_upload");
        begins.push(n);
        let chunk =
            candid::encode_args((up.upload_id, 0u32, ByteBuf::from(payload.clone()))).unwrap();
        let (n, reply) = b.call(owner, "upload_chunk", false, &chunk);
        assert_not_err("upload_chunk", &reply);
        chunks.push(n);
        arg_lens = (arg.len(), chunk.len());
        let abort = candid::encode_one(up.upload_id).unwrap();
        let (_, reply) = b.call(owner, "abort_upload", false, &abort);
        assert_not_err("abort_upload", &reply);
    }
    print_row("begin_upload (4 KiB metadata)", arg_lens.0, median(begins));
    print_row("upload_chunk (1 MiB chunk)", arg_lens.1, median(chunks));
    // Downloads: the 20-byte encoding every agent sends (read directly) and another valid
    // encoding (an extra `null` argument: the generic decoder).
    let (_, reply) = b.call(
        owner,
        "request_download",
        false,
        &candid::encode_args((v, item)).unwrap(),
    );
    let ticket: R<DownloadTicket> = candid::decode_one(&reply).unwrap();
    let ticket = ticket.expect("request_download").ticket_id;
    b.row(
        "get_download_chunk (query, 20-byte argument)",
        owner,
        "get_download_chunk",
        true,
        &candid::encode_args((ticket, 0u32)).unwrap(),
    );
    b.row(
        "get_download_chunk (query, generic decoder)",
        owner,
        "get_download_chunk",
        true,
        &candid::encode_args((ticket, 0u32, ())).unwrap(),
    );
    b.row(
        "set_pricing (admin, the default pricing)",
        admin,
        "set_pricing",
        false,
        &candid::encode_one(Pricing::default()).unwrap(),
    );
    // A gateway request: 20 headers is typical; 0 and 100 show the cost per header.
    for n in [0, 20, 100] {
        b.row(
            &format!("http_request (GET /health, {n} headers)"),
            owner,
            "http_request",
            true,
            &candid::encode_one(HttpRequest {
                method: "GET".into(),
                url: "/health".into(),
                headers: (0..n)
                    .map(|i| (format!("x-header-{i}"), "some value of a header".into()))
                    .collect(),
                body: ByteBuf::new(),
            })
            .unwrap(),
        );
    }
    // The guard alone: the same requests with one byte after the arguments are walked to
    // the end and refused (with the guard; without it the decoder refuses them).
    println!("refusals (the argument + 1 trailing byte):");
    for n in [0, 20, 100] {
        let mut arg = candid::encode_one(HttpRequest {
            method: "GET".into(),
            url: "/health".into(),
            headers: (0..n)
                .map(|i| (format!("x-header-{i}"), "some value of a header".into()))
                .collect(),
            body: ByteBuf::new(),
        })
        .unwrap();
        arg.push(0);
        let r = b
            .env
            .host
            .query(owner, "http_request", arg.clone())
            .expect_err("a trailing byte is refused");
        print_row(
            &format!("http_request ({n} headers) refused"),
            arg.len(),
            r.total_instructions,
        );
    }
}
