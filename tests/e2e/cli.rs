//! The `livault-local` content commands (`upload`, `download`, `sha256`) on the compiled
//! wasm: a file goes up in chunks from disk and comes back identical, through the CLI's
//! state directory, and the typed flows refuse what the canister refuses.

use livault_backend::model::types::ItemKind;
use livault_local::cli::content::{download_bytes, upload_bytes};
use livault_local::cli::identity::principal_of;
use livault_tests::*;
use local_replica::Host;
use std::path::{Path, PathBuf};

type R<T> = Result<T, VaultError>;

/// Runs `livault-local --state DIR --quiet ARGS...`; an error as its full text.
fn cli(dir: &Path, args: &[&str]) -> Result<(), String> {
    let mut argv = vec![
        "--state".to_string(),
        dir.display().to_string(),
        "--quiet".into(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    livault_local::cli::run(argv).map_err(|e| format!("{e:#}"))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("livault-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn upload_and_download_files_through_the_cli() {
    // A paid vault of the CLI identity "alice", saved as a livault-local state directory.
    let mut env = TestEnv::new();
    let alice = principal_of("alice");
    let v = env.create_vault(alice, "Files").id;
    env.pay_creation(alice, v);
    let dir = temp_dir("roundtrip");
    let state = dir.join("state");
    env.host.save(&state).unwrap();
    cli(&state, &["identity", "new", "alice"]).unwrap();
    cli(&state, &["identity", "new", "bob"]).unwrap();

    // 2.5 MiB: three chunks of the canister's 1 MiB chunk size.
    let file = dir.join("photos.tar");
    let bytes = payload(2 * 1024 * 1024 + 512 * 1024);
    std::fs::write(&file, &bytes).unwrap();
    let vs = v.to_string();
    cli(&state, &["sha256", file.to_str().unwrap()]).unwrap();
    cli(
        &state,
        &[
            "upload",
            "--as",
            "alice",
            "--vault",
            &vs,
            file.to_str().unwrap(),
        ],
    )
    .unwrap();

    // `livault-local logs` reads the canister log kept in the state directory.
    cli(&state, &["logs", "--tail", "3"]).unwrap();
    assert!(cli(&state, &["logs", "--tail", "x"]).is_err());

    // The item is committed with the file's size and hash.
    let mut host = Host::load(&state).unwrap();
    // The canister log survived saving and loading, numbered without gaps.
    let logs: Vec<_> = host.canister_logs().cloned().collect();
    assert!(
        logs[0].content.starts_with("event=canister.installed "),
        "{logs:?}"
    );
    assert!(logs
        .iter()
        .any(|l| l.content.starts_with("event=payment.confirmed ")));
    assert!(logs.iter().enumerate().all(|(i, l)| l.idx == i as u64));
    let items: R<Page<ItemView>> = host
        .query_candid(alice, "list_items", (v, PageArgs::default()))
        .unwrap();
    let items = items.unwrap().items;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!((item.size, item.chunk_count), (bytes.len() as u64, 3));
    assert_eq!(item.kind, ItemKind::File);
    use sha2::Digest;
    assert_eq!(item.sha256.to_vec(), sha2::Sha256::digest(&bytes).to_vec());

    // Downloaded back by the owner: identical bytes on disk.
    let out = dir.join("back.bin");
    cli(
        &state,
        &[
            "download",
            "--as",
            "alice",
            "--vault",
            &vs,
            "--item",
            &item.item_id.to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    // A stranger is refused by the canister, and the error names the method and the error.
    let err = cli(
        &state,
        &[
            "upload",
            "--as",
            "bob",
            "--vault",
            &vs,
            file.to_str().unwrap(),
        ],
    )
    .unwrap_err();
    assert!(err.contains("begin_upload: NotAuthorized"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn typed_flows_report_counts_and_refuse_what_the_canister_refuses() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Files").id;
    // Draft: content is refused before the payment.
    let err = upload_bytes(
        &mut env.host,
        owner,
        v,
        ItemKind::Letter,
        b"ciphertext",
        b"meta".to_vec(),
        None,
        "test",
    )
    .unwrap_err();
    assert!(
        format!("{err}").contains("begin_upload: InvalidState"),
        "{err}"
    );
    env.pay_creation(owner, v);
    let data = payload(1024 * 1024 + 1);
    let up = upload_bytes(
        &mut env.host,
        owner,
        v,
        ItemKind::File,
        &data,
        b"meta".to_vec(),
        None,
        "test",
    )
    .unwrap();
    // begin + 2 chunks + finish.
    assert_eq!((up.chunks, up.calls, up.size), (2, 4, data.len() as u64));
    assert!(up.instructions > 0);
    let (back, down) = download_bytes(&mut env.host, owner, v, up.item_id, "test").unwrap();
    assert_eq!(back, data);
    assert_eq!(down.sha256, up.sha256);
    // request_download + 2 chunks.
    assert_eq!((down.chunks, down.calls), (2, 3));
    let err = download_bytes(&mut env.host, user("stranger"), v, up.item_id, "test").unwrap_err();
    assert!(
        format!("{err}").contains("request_download: NotAuthorized"),
        "{err}"
    );
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Vec<u8> {
    let text = text.trim();
    assert!(text.len().is_multiple_of(2), "odd hex: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `livault-local call --candid candid/livault_backend.did ARGS...` with its printed answer
/// returned instead of printed.
fn call_output(dir: &Path, args: &[&str]) -> Result<String, String> {
    let did = concat!(env!("CARGO_MANIFEST_DIR"), "/../candid/livault_backend.did");
    let mut argv = vec!["--candid".to_string(), did.to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut ctx = livault_local::cli::Context::open(dir.to_path_buf(), true).unwrap();
    let out =
        livault_local::cli::canister::call_output(&mut ctx, livault_local::cli::Args::new(argv))
            .map_err(|e| format!("{e:#}"));
    ctx.save().unwrap();
    out
}

/// `call --type raw --output raw` (dfx's flags) passes a client's own Candid bytes to the
/// canister unchanged and returns the reply's bytes: what the TypeScript round trip in
/// scripts/test.sh drives the real wasm with. Text and raw calls see the same state.
#[test]
fn call_takes_and_returns_raw_candid_bytes() {
    let mut env = TestEnv::new();
    let alice = principal_of("alice");
    let v = env.create_vault(alice, "Raw").id;
    let dir = temp_dir("raw");
    let state = dir.join("state");
    env.host.save(&state).unwrap();
    cli(&state, &["identity", "new", "alice"]).unwrap();

    // A query: bytes in, bytes out.
    let arg = to_hex(&candid::encode_args((v,)).unwrap());
    let out = call_output(
        &state,
        &[
            "--as",
            "alice",
            "--type",
            "raw",
            "--output",
            "raw",
            "get_vault",
            &arg,
        ],
    )
    .unwrap();
    let view = candid::decode_one::<R<VaultView>>(&from_hex(&out))
        .unwrap()
        .unwrap();
    assert_eq!((view.id, view.name.as_str()), (v, "Raw"));

    // An update whose argument comes from a file, answered as bytes; the change is visible to
    // a Candid-text call afterwards.
    let args = UpdateVaultArgs {
        vault_id: v,
        name: Some("Raw renamed".into()),
        unlock_rules: None,
        post_unlock_days: None,
        audit_retention_days: None,
    };
    let file = dir.join("arg.hex");
    std::fs::write(&file, to_hex(&candid::encode_one(&args).unwrap()) + "\n").unwrap();
    let out = call_output(
        &state,
        &[
            "--as",
            "alice",
            "--type",
            "raw",
            "--argument-file",
            file.to_str().unwrap(),
            "--output",
            "raw",
            "update_vault",
        ],
    )
    .unwrap();
    let view = candid::decode_one::<R<VaultView>>(&from_hex(&out))
        .unwrap()
        .unwrap();
    assert_eq!(view.name, "Raw renamed");
    let text = call_output(&state, &["--as", "alice", "get_vault", &format!("({v})")]).unwrap();
    assert!(text.contains("name = \"Raw renamed\""), "{text}");

    // Text in, raw out: the bytes are the canister's reply, not a re-encoding of the text.
    let out = call_output(
        &state,
        &[
            "--as",
            "alice",
            "--output",
            "raw",
            "get_vault",
            &format!("({v})"),
        ],
    )
    .unwrap();
    assert!(from_hex(&out).starts_with(b"DIDL"));

    // Refusals: not hex, both inline and file, an unknown format.
    let err = call_output(&state, &["--type", "raw", "get_plans", "zz"]).unwrap_err();
    assert!(err.contains("hex-encoded Candid bytes"), "{err}");
    let err = call_output(
        &state,
        &[
            "--type",
            "raw",
            "--argument-file",
            file.to_str().unwrap(),
            "get_plans",
            "4449444c0000",
        ],
    )
    .unwrap_err();
    assert!(err.contains("not both"), "{err}");
    let err = call_output(&state, &["--output", "json", "get_plans"]).unwrap_err();
    assert!(err.contains("unknown --output 'json'"), "{err}");
}
