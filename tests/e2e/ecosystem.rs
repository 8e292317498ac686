//! The repository works for a newcomer and for the ICP tools around it (issue #15):
//!
//! * it is self-contained: no file points outside the checkout, the product contract
//!   (`docs/spec.md`, cited as "SPEC §n") has every section the code cites, and the official
//!   interfaces our `.did` files are compared with are kept in `candid/reference/` with their
//!   provenance;
//! * `candid/icp_ledger.did` equals the official ICP ledger interface for its init argument and
//!   every method LiVault uses, and the README's `dfx deploy icp_ledger --argument` text,
//!   encoded as dfx encodes it, decodes as the ledger's init argument;
//! * the init arguments of `dfx.json` and `icp.yaml`, encoded as each tool encodes them, decode
//!   as the canister's `opt LiVaultArgs`;
//! * no document names a package-registry host.
//!
//! None of these tests needs the wasm. The npm side (the vendored file is the one in the pinned
//! package, `icp build`, the TypeScript bindings and their round trip through the wasm) runs in
//! `scripts/test.sh`.

use candid::types::{Type, TypeInner};
use candid::{CandidType, Decode, Deserialize, IDLArgs, Principal, TypeEnv};
use ic_ledger_types::{AccountIdentifier, DEFAULT_SUBACCOUNT};
use livault_backend::model::config::LiVaultArgs;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn load_did(rel: &str) -> (TypeEnv, Type) {
    let p = repo().join(rel);
    let (env, actor) = candid_parser::utils::CandidSource::File(&p)
        .load()
        .unwrap_or_else(|e| panic!("{rel} does not type-check: {e}"));
    (env, actor.unwrap_or_else(|| panic!("{rel} has no service")))
}

/// The init argument types of a service, as dfx takes them from the `.did` it is given
/// (`service : (A, B) -> {...}`; none for `service : {...}`).
fn init_types(actor: &Type) -> Vec<Type> {
    match actor.as_ref() {
        TypeInner::Class(args, _) => args.clone(),
        _ => vec![],
    }
}

/// Encodes Candid text as dfx encodes `--argument` for an install: parsed with candid_parser
/// and annotated with the init types of the canister's `.did` (values beyond the types are
/// dropped, which is how `service : {...}` turns any argument into `DIDL\0\0`).
fn dfx_encode(did: &str, text: &str) -> Vec<u8> {
    let (env, actor) = load_did(did);
    let args = candid_parser::parse_idl_args(text)
        .unwrap_or_else(|e| panic!("the argument is not Candid text: {e}\n{text}"));
    args.to_bytes_with_types(&env, &init_types(&actor))
        .unwrap_or_else(|e| panic!("the argument does not match {did}'s init type: {e}"))
}

/// Encodes Candid text as icp-cli encodes a manifest's `init_args`: without types.
fn icp_encode(text: &str) -> Vec<u8> {
    candid_parser::parse_idl_args(text.trim())
        .unwrap_or_else(|e| panic!("init_args is not Candid text: {e}\n{text}"))
        .to_bytes()
        .expect("encodable")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------- self-contained

/// Every file of the checkout the tests look at: sources, scripts, docs, manifests (build
/// output, installed tools and VCS data excluded).
fn repository_files() -> Vec<PathBuf> {
    const SKIP_DIRS: &[&str] = &[
        "target",
        ".git",
        ".tools",
        "node_modules",
        ".livault-local",
        ".icp",
        "generated",
        "dist",
    ];
    let mut out = Vec::new();
    let mut stack = vec![repo()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) {
                    stack.push(path);
                }
            } else if kind.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    assert!(out.len() > 50, "the walk found too few files: {out:?}");
    out
}

fn text_files() -> Vec<(String, String)> {
    repository_files()
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let rel = p.strip_prefix(repo()).unwrap().display().to_string();
            Some((rel, text))
        })
        .collect()
}

/// A fresh clone has nothing beside it: no file reads, links or names a sibling folder such as
/// the steering repository's `shared/`.
#[test]
fn no_file_points_outside_the_repository() {
    let parent_shared = ["..", "shared"].join("/");
    let shared_reference = ["shared", "reference"].join("/");
    let shared_spec = ["shared", "SPEC.md"].join("/");
    let mut offenders = Vec::new();
    for (rel, text) in text_files() {
        for (n, line) in text.lines().enumerate() {
            if [&parent_shared, &shared_reference, &shared_spec]
                .iter()
                .any(|needle| line.contains(needle.as_str()))
            {
                offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "files point outside the repository:\n{}",
        offenders.join("\n")
    );
}

/// Section numbers `n` of `## n. Title` headings.
fn spec_sections() -> BTreeSet<u32> {
    read("docs/spec.md")
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once(". ").and_then(|(n, _)| n.parse().ok()))
        .collect()
}

/// "SPEC §n" everywhere means section n of docs/spec.md, and that section exists.
#[test]
fn every_spec_reference_names_a_section_of_docs_spec_md() {
    let sections = spec_sections();
    assert_eq!(
        sections,
        (1..=16).collect::<BTreeSet<u32>>(),
        "docs/spec.md keeps the contract's section numbers 1..=16"
    );
    let mut cited = 0;
    let mut dangling = Vec::new();
    for (rel, text) in text_files() {
        for (i, _) in text.match_indices("SPEC §") {
            let digits: String = text[i + "SPEC §".len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            match digits.parse::<u32>() {
                Ok(n) if sections.contains(&n) => cited += 1,
                Ok(_) => dangling.push(format!("{rel}: SPEC §{digits}")),
                Err(_) => {} // "SPEC §n" in prose about the convention
            }
        }
    }
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");
    assert!(
        cited >= 20,
        "only {cited} SPEC references found: the walk is broken"
    );
    let readme = read("README.md");
    assert!(
        readme.contains("(docs/spec.md)"),
        "the README links the product contract docs/spec.md"
    );
}

/// One line of `candid/reference/provenance.txt`.
struct Provenance {
    file: String,
    package: String,
    version: String,
    path: String,
    sha256: String,
}

fn provenance() -> Vec<Provenance> {
    read("candid/reference/provenance.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 5, "provenance line needs 5 fields: {l}");
            Provenance {
                file: f[0].into(),
                package: f[1].into(),
                version: f[2].into(),
                path: f[3].into(),
                sha256: f[4].into(),
            }
        })
        .collect()
}

/// Every file in candid/reference/ is listed with its source package, version and path, and is
/// byte for byte what was recorded (scripts/check-reference.sh compares the recorded hash with
/// the file inside the pinned package).
#[test]
fn vendored_interfaces_match_their_recorded_provenance() {
    let entries = provenance();
    let listed: BTreeSet<String> = entries.iter().map(|p| p.file.clone()).collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo().join("candid/reference"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != "provenance.txt")
        .collect();
    assert_eq!(
        listed, present,
        "candid/reference/ and its provenance list differ"
    );
    for p in &entries {
        assert!(
            p.package.starts_with('@') && p.package.contains('/'),
            "{}",
            p.package
        );
        assert!(
            p.version.split('.').all(|x| x.parse::<u32>().is_ok()),
            "an exact version: {}",
            p.version
        );
        assert!(
            !p.path.starts_with('/') && !p.path.contains(".."),
            "{}",
            p.path
        );
        let bytes = std::fs::read(repo().join("candid/reference").join(&p.file)).unwrap();
        assert_eq!(
            sha256_hex(&bytes),
            p.sha256,
            "candid/reference/{} was changed after it was taken from {}@{}",
            p.file,
            p.package,
            p.version
        );
    }
}

// ---------------------------------------------------------------- the ICP ledger interface

/// `candid/icp_ledger.did` (what dfx installs the local ledger with, and the contract of the
/// host's ledger model) equals the official ICP ledger interface kept in
/// `candid/reference/icp_ledger.did`: the same init argument type, and for every method it
/// declares the official method's type (same name, mode, argument and result types, field
/// names included). The official file has many more methods; LiVault declares only those it
/// and its QA tooling use.
#[test]
fn ledger_did_matches_the_official_interface() {
    let (mut env, ours) = load_did("candid/icp_ledger.did");
    let (official_env, official) = load_did("candid/reference/icp_ledger.did");
    let official = env.merge_type(official_env, official);

    let our_methods: Vec<(String, Type)> = env.as_service(&ours).unwrap().to_vec();
    assert!(
        our_methods.len() >= 7,
        "account_balance, transfer and the ICRC-1 methods at least"
    );
    let official_methods = env.as_service(&official).unwrap().to_vec();
    let mut subset = Vec::new();
    for (name, _) in &our_methods {
        let m = official_methods
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("the official ledger has no method {name}"));
        subset.push(m.clone());
    }
    let official_subset: Type =
        TypeInner::Class(init_types(&official), TypeInner::Service(subset).into()).into();
    assert!(
        !init_types(&ours).is_empty(),
        "candid/icp_ledger.did declares the ledger's init argument (dfx encodes --argument with it)"
    );
    candid::types::subtype::equal(&mut Default::default(), &env, &ours, &official_subset)
        .unwrap_or_else(|e| {
            panic!("candid/icp_ledger.did differs from the official interface: {e}")
        });
}

/// The official ICP ledger's init types, mirrored as the ledger canister declares them in
/// Rust: `candid::decode_one::<LedgerCanisterPayload>` is what its `init` runs.
#[derive(CandidType, Deserialize, Debug)]
#[allow(clippy::large_enum_variant)] // the ledger's own shape, decoded once
enum LedgerCanisterPayload {
    Init(LedgerInitArgs),
    Upgrade(Option<LedgerUpgradeArgs>),
}

#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct Tokens {
    e8s: u64,
}

#[derive(CandidType, Deserialize, Debug)]
struct IcrcAccount {
    owner: Principal,
    subaccount: Option<serde_bytes::ByteBuf>,
}

#[derive(CandidType, Deserialize, Debug)]
struct Duration {
    secs: u64,
    nanos: u32,
}

#[derive(CandidType, Deserialize, Debug)]
struct ArchiveOptions {
    trigger_threshold: u64,
    num_blocks_to_archive: u64,
    node_max_memory_size_bytes: Option<u64>,
    max_message_size_bytes: Option<u64>,
    controller_id: Principal,
    more_controller_ids: Option<Vec<Principal>>,
    cycles_for_archive_creation: Option<u64>,
    max_transactions_per_response: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug)]
struct FeatureFlags {
    icrc2: bool,
}

#[derive(CandidType, Deserialize, Debug)]
struct LedgerInitArgs {
    minting_account: String,
    icrc1_minting_account: Option<IcrcAccount>,
    initial_values: Vec<(String, Tokens)>,
    max_message_size_bytes: Option<u64>,
    transaction_window: Option<Duration>,
    archive_options: Option<ArchiveOptions>,
    send_whitelist: Vec<Principal>,
    transfer_fee: Option<Tokens>,
    token_symbol: Option<String>,
    token_name: Option<String>,
    feature_flags: Option<FeatureFlags>,
}

#[derive(CandidType, Deserialize, Debug)]
struct LedgerUpgradeArgs {
    icrc1_minting_account: Option<IcrcAccount>,
    feature_flags: Option<FeatureFlags>,
}

/// The README's `dfx deploy icp_ledger ... --argument "..."` text, with the shell's quoting
/// undone and `$MINTER` / `$ME` replaced by the given account identifiers.
fn readme_ledger_argument(minter: &str, me: &str) -> String {
    let readme = read("README.md");
    let start = readme
        .find("dfx deploy icp_ledger")
        .expect("the README deploys icp_ledger with dfx");
    let rest = &readme[start..];
    let open = rest.find("--argument \"").expect("--argument \"...\"") + "--argument \"".len();
    let body = &rest[open..];
    // The argument ends at the first unescaped double quote.
    let mut text = String::new();
    let mut chars = body.chars();
    loop {
        match chars.next().expect("an unterminated --argument") {
            '\\' => text.push(chars.next().unwrap()),
            '"' => break,
            c => text.push(c),
        }
    }
    assert!(text.contains("$MINTER") && text.contains("$ME"), "{text}");
    text.replace("$MINTER", minter).replace("$ME", me)
}

/// Step 1 of the README's dfx recipe: dfx encodes `--argument` with the init type of the
/// `.did` named in dfx.json for `icp_ledger`; the bytes must decode as the official ledger's
/// init argument (dynamically against the official interface, and into the ledger's own
/// Rust types) with the values the README wrote.
#[test]
fn readme_dfx_ledger_argument_decodes_as_the_ledger_init() {
    let dfx_json = read("dfx.json");
    assert!(
        dfx_json.contains("\"candid\": \"candid/icp_ledger.did\""),
        "dfx.json's icp_ledger uses candid/icp_ledger.did"
    );
    let minter = AccountIdentifier::new(
        &Principal::from_text("aaaaa-aa").unwrap(),
        &DEFAULT_SUBACCOUNT,
    )
    .to_hex();
    let me = AccountIdentifier::new(&Principal::from_slice(&[7; 29]), &DEFAULT_SUBACCOUNT).to_hex();
    let text = readme_ledger_argument(&minter, &me);
    let bytes = dfx_encode("candid/icp_ledger.did", &text);
    assert_ne!(
        bytes, b"DIDL\0\0",
        "the argument was dropped: the .did has no init type"
    );

    let (env, official) = load_did("candid/reference/icp_ledger.did");
    IDLArgs::from_bytes_with_types(&bytes, &env, &init_types(&official)).unwrap_or_else(|e| {
        panic!("the official ledger interface cannot decode the argument: {e}")
    });

    let payload = Decode!(&bytes, LedgerCanisterPayload)
        .unwrap_or_else(|e| panic!("the ledger's init cannot decode the argument: {e}"));
    let LedgerCanisterPayload::Init(init) = payload else {
        panic!("expected Init, got {payload:?}")
    };
    assert_eq!(init.minting_account, minter);
    assert_eq!(init.initial_values.len(), 1);
    assert_eq!(init.initial_values[0].0, me);
    // The QA script pays 7.15 ICP (and fees) from this account.
    assert!(init.initial_values[0].1.e8s >= 800_000_000, "{init:?}");
    assert_eq!(init.transfer_fee, Some(Tokens { e8s: 10_000 }));
    assert!(init.send_whitelist.is_empty());
}

// ---------------------------------------------------------------- LiVault's own init argument

/// The YAML double-quoted value of the first `KEY:` line of icp.yaml.
fn icp_yaml_value(key: &str) -> String {
    let yaml = read("icp.yaml");
    let prefix = format!("{key}:");
    let line = yaml
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("icp.yaml gives livault_backend {key}"));
    let value = line[prefix.len()..].trim();
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{key} is one double-quoted YAML string"));
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// dfx.json's `init_arg` (encoded by dfx with the .did's init type) and icp.yaml's
/// `init_args` (encoded by icp-cli without types) both decode as the canister's own
/// `opt LiVaultArgs`: Init, no explicit admins (the installer becomes admin), the mainnet ICP
/// ledger id (which dfx's step 1 and icp-cli's local network both use).
#[test]
fn dfx_and_icp_init_arguments_decode_as_livault_args() {
    let dfx_json = read("dfx.json");
    let start = dfx_json
        .find("\"init_arg\": \"")
        .expect("dfx.json init_arg")
        + 13;
    let mut dfx_text = String::new();
    let mut chars = dfx_json[start..].chars();
    loop {
        match chars.next().unwrap() {
            '\\' => dfx_text.push(chars.next().unwrap()),
            '"' => break,
            c => dfx_text.push(c),
        }
    }
    let ledger = Principal::from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").unwrap();
    for (tool, bytes) in [
        (
            "dfx.json",
            dfx_encode("candid/livault_backend.did", &dfx_text),
        ),
        ("icp.yaml", icp_encode(&icp_yaml_value("init_args"))),
    ] {
        let args = Decode!(&bytes, Option<LiVaultArgs>).unwrap_or_else(|e| {
            panic!("{tool}: the canister cannot decode its init argument: {e}")
        });
        match args {
            Some(LiVaultArgs::Init(init)) => {
                assert!(init.admins.is_empty(), "{tool}: {init:?}");
                assert_eq!(init.ledger_canister_id, Some(ledger), "{tool}");
            }
            other => panic!("{tool}: expected Some(Init), got {other:?}"),
        }
    }
    // `icp deploy` of an installed canister upgrades it with upgrade_args: None keeps the
    // configuration (an Init record would make post_upgrade trap).
    let upgrade = icp_encode(&icp_yaml_value("upgrade_args"));
    assert_eq!(Decode!(&upgrade, Option<LiVaultArgs>).unwrap(), None);
}

// ---------------------------------------------------------------- wording

/// Docs, scripts and sources name "the Rust and npm package registries", never their hosts.
#[test]
fn no_file_names_a_package_registry_host() {
    let hosts = [
        ["crates", "io"].join("."),
        ["npm", "js.org"].concat(),
        ["npm", "js.com"].concat(),
        ["pypi", "org"].join("."),
        ["yarnpkg", "com"].join("."),
    ];
    let mut offenders = Vec::new();
    for (rel, text) in text_files() {
        if rel == "Cargo.lock" {
            continue; // cargo writes its registry's source URL there
        }
        for (n, line) in text.lines().enumerate() {
            if hosts
                .iter()
                .any(|h| line.to_lowercase().contains(h.as_str()))
            {
                offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "registry hosts named:\n{}",
        offenders.join("\n")
    );
}
