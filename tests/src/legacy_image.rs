//! A stable-memory image written by the canister of storage layout 4 with 8 MiB
//! `MemoryManager` buckets (the module of commit `3109b55`, before 1 MiB buckets), and what
//! its public API answered then: the fixture of `tests/e2e/legacy_image.rs`, which upgrades
//! today's module over it (the bucket migration of `storage::memory`) and checks that every
//! answer is the same.
//!
//! Regenerate (only needed if the scenario changes; the image must come from the old
//! module, so build it from that commit first):
//!
//! ```text
//! git worktree add ../old 3109b55 && (cd ../old && scripts/build.sh)
//! LIVAULT_OLD_WASM=../old/target/livault/livault_backend.wasm \
//!     cargo run -p livault_tests --bin legacy_image
//! ```
//!
//! The bin runs [`populate`] on the old module (vaults in several states, members, invites,
//! payment sessions, uploaded and half-uploaded content, a download ticket, a recovery
//! code, audit events, admin actions, a scheduler run), asks the [`probes`] and stores the
//! answers, then upgrades the old module to an empty module (so its `pre_upgrade` writes
//! what it writes before any upgrade) and stores the stable memory. Files, in
//! [`FIXTURE_DIR`]: `stable.img` (sparse: the non-zero runs of the image, see
//! [`encode_image`]) and `probes.txt` (one line per call: caller, method, argument and reply
//! in hex; the first line the time the probes ran).

use std::path::PathBuf;
use std::time::Duration;

use candid::types::value::{IDLField, IDLValue, VariantValue};
use candid::{Encode, IDLArgs, Principal};
use livault_backend::model::member_types::{
    GenerateInviteArgs, InviteCreated, InviteView, RecoveryCodeIssued, Relation, UnlockStatus,
};
use livault_backend::model::records::MemberRole;
use serde_bytes::ByteBuf;
use sha2::Digest;

use crate::*;

type R<T> = Result<T, VaultError>;

/// Where the fixture lives.
pub fn fixture_dir() -> PathBuf {
    fixture_dir_of(FIXTURE_DIR)
}

/// Where a fixture directory (relative to the tests crate) is.
pub fn fixture_dir_of(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The fixture directory, relative to the tests crate.
pub const FIXTURE_DIR: &str = "fixtures/legacy_8mib_buckets";

/// The second fixture: the same scenario on the module of commit `e38b102` (storage layout
/// 7, 1 MiB buckets, raw dense-id directories), the image `tests/e2e/layout_7_image.rs`
/// upgrades over. Regenerate as above, from that commit, with `LIVAULT_FIXTURE=layout_7`.
pub const LAYOUT_7_FIXTURE_DIR: &str = "fixtures/layout_7";

/// A module with no code: upgrading the old module to it runs the old `pre_upgrade` and
/// nothing else, which leaves the stable memory exactly as a new module finds it; and a
/// host canister to load an image into.
pub fn empty_module() -> Vec<u8> {
    wat::parse_str("(module)").expect("empty module")
}

/// The init arguments of the scenario: daily maintenance (so a month passes quickly).
pub fn init_args() -> InitArgs {
    InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: 86_400,
            ..Durations::default()
        }),
        ..Default::default()
    }
}

/// The identities of the scenario.
pub struct Cast {
    pub admin: Principal,
    pub alice: Principal,
    pub bob: Principal,
    pub carol: Principal,
    pub heir1: Principal,
    pub heir2: Principal,
    pub witness: Principal,
}

impl Cast {
    pub fn new() -> Self {
        Cast {
            admin: user("admin"),
            alice: user("legacy-alice"),
            bob: user("legacy-bob"),
            carol: user("legacy-carol"),
            heir1: user("legacy-heir1"),
            heir2: user("legacy-heir2"),
            witness: user("legacy-witness"),
        }
    }
}

impl Default for Cast {
    fn default() -> Self {
        Self::new()
    }
}

/// Deterministic payload bytes.
fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
                ^ seed
        })
        .collect()
}

fn invite(env: &mut TestEnv, owner: Principal, v: VaultId, role: MemberRole) -> InviteCreated {
    let args = GenerateInviteArgs {
        vault_id: v,
        role,
        name: "legacy".into(),
        relation: Relation::Friend,
        email_hint: Some("l***@example.org".into()),
        can_trigger_unlock: true,
        count_as_approver: true,
    };
    env.update::<_, R<InviteCreated>>(owner, "generate_invite", (args,))
        .expect("generate_invite")
}

/// What the scenario leaves for the probes.
pub struct World {
    /// Every vault id, in creation order.
    pub vaults: Vec<(Principal, VaultId)>,
    /// An open invite's token (for `get_invite_info`).
    pub open_token: String,
    /// Payment session ids.
    pub sessions: Vec<u64>,
    /// The owner's open download ticket (alice, vault 2).
    pub ticket: u64,
}

/// Vaults in several states with members, invites, payments, content, audit events and
/// admin actions (see the module docs). Runs on whatever module `env` holds.
pub fn populate(env: &mut TestEnv, c: &Cast) -> World {
    let mut sessions = Vec::new();
    // Bob: an Active vault with two heirs and a witness, a letter, unlock rules; a month
    // later an unlock request with one approval.
    let v_active = env.create_vault(c.bob, "Family archive").id;
    env.pay_creation(c.bob, v_active);
    let r: R<VaultView> = env.update(
        c.bob,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v_active,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: None,
                inactivity_days: Some(30),
                request_wait_days: 7,
                required_heirs: 2,
                required_witness: false,
            }),
            post_unlock_days: Some(30),
            audit_retention_days: None,
        },),
    );
    r.expect("update_vault");
    let h1 = env.join(c.bob, v_active, MemberRole::Heir, c.heir1);
    env.join(c.bob, v_active, MemberRole::Heir, c.heir2);
    env.join(c.bob, v_active, MemberRole::Witness, c.witness);
    env.upload_letter(c.bob, v_active, &payload(1, 5_000), Some(vec![h1]));
    let r: R<VaultView> = env.update(c.bob, "finalize_setup", (v_active,));
    assert_eq!(r.expect("finalize_setup").status, VaultStatus::Active);
    // Bob: a paid vault, deleted (a tombstone).
    let v_deleted = env.create_vault(c.bob, "Old plans").id;
    env.pay_creation(c.bob, v_deleted);
    env.upload_letter(c.bob, v_deleted, &payload(2, 700), None);
    let r: R<VaultView> = env.update(c.bob, "delete_vault", (v_deleted,));
    r.expect("delete_vault");

    env.advance_days(31);
    let r: R<UnlockStatus> = env.update(c.heir1, "trigger_unlock", (v_active,));
    r.expect("trigger_unlock");
    let r: R<UnlockStatus> = env.update(c.heir1, "approve_unlock", (v_active,));
    r.expect("approve_unlock");

    // Alice: an unpaid Draft with an idempotency key.
    let r: R<VaultView> = env.update(
        c.alice,
        "create_vault",
        (CreateVaultArgs {
            name: "Draft letters".into(),
            plan: PlanSelection {
                tier: Tier::Standard,
                heir_slots: 1,
                witness_slot: false,
            },
            owner_age: 61,
            idempotency_key: Some("legacy-draft-1".into()),
        },),
    );
    let v_draft = r.expect("create_vault").id;
    // Alice: a paid vault in setup: a recovery code, a member, an open and a revoked
    // invite, two letters, a refund account, an open download ticket.
    let v_setup = env.create_vault(c.alice, "House papers").id;
    env.pay_creation(c.alice, v_setup);
    let r: R<RecoveryCodeIssued> = env.update(c.alice, "issue_recovery_code", (v_setup, true));
    r.expect("issue_recovery_code");
    let h = env.join(c.alice, v_setup, MemberRole::Heir, c.heir1);
    let open = invite(env, c.alice, v_setup, MemberRole::Heir);
    let revoked = invite(env, c.alice, v_setup, MemberRole::Witness);
    let r: R<InviteView> = env.update(c.alice, "revoke_invite", (v_setup, revoked.invite_id));
    r.expect("revoke_invite");
    let item = env.upload_letter(c.alice, v_setup, &payload(3, 12_000), Some(vec![h]));
    env.upload_letter(c.alice, v_setup, &payload(4, 300), None);
    let r: R<()> = env.update(
        c.alice,
        "set_refund_account",
        (
            v_setup,
            Some(Account {
                owner: TestEnv::wallet_of(c.alice),
                subaccount: Some(ByteBuf::from(vec![7u8; 32])),
            }),
        ),
    );
    r.expect("set_refund_account");
    let ticket: DownloadTicket = env
        .update::<_, R<DownloadTicket>>(c.alice, "request_download", (v_setup, item))
        .expect("request_download");

    // Carol: a Draft with an open payment session; a paid vault with an upload half done.
    let v_session = env.create_vault(c.carol, "Unpaid").id;
    let s: PaymentSession = env
        .update::<_, R<PaymentSession>>(
            c.carol,
            "init_payment",
            (v_session, PaymentPurpose::Create),
        )
        .expect("init_payment");
    sessions.push(s.id);
    let v_upload = env.create_vault(c.carol, "Photos").id;
    env.pay_creation(c.carol, v_upload);
    // The first of two chunks (chunks are 1 MiB): mostly zero, so the image stays small.
    let mut body = vec![0u8; 1 << 20];
    for (i, b) in payload(5, 256).into_iter().enumerate() {
        body[i * 4_096] = b | 1;
    }
    let up: UploadView = env
        .update::<_, R<UploadView>>(
            c.carol,
            "begin_upload",
            (BeginUploadArgs {
                vault_id: v_upload,
                kind: ItemKind::Letter,
                size: body.len() as u64 + 3_000,
                sha256: ByteBuf::from(vec![1u8; 32]),
                encrypted_meta: ByteBuf::from(b"half done".to_vec()),
                recipients: None,
                replaces: None,
                idempotency_key: None,
            },),
        )
        .expect("begin_upload");
    let r: R<UploadView> = env.update(
        c.carol,
        "upload_chunk",
        (up.upload_id, 0u32, ByteBuf::from(body)),
    );
    r.expect("upload_chunk");

    // Admins: pause and resume, a new treasury, a maintenance run.
    let r: R<()> = env.update(c.admin, "set_paused", (true,));
    r.expect("pause");
    let r: R<()> = env.update(c.admin, "set_paused", (false,));
    r.expect("resume");
    let r: R<()> = env.update(
        c.admin,
        "set_treasury",
        (Account {
            owner: user("legacy-treasury"),
            subaccount: None,
        },),
    );
    r.expect("set_treasury");
    let r: R<TickReport> = env.update(c.admin, "run_maintenance", ());
    r.expect("run_maintenance");
    env.advance(Duration::from_secs(3_600));

    for (owner, v) in [(c.bob, v_active), (c.alice, v_setup), (c.carol, v_upload)] {
        let page: Page<PaymentSession> = env
            .query::<_, R<Page<PaymentSession>>>(
                owner,
                "list_payment_sessions",
                (v, PageArgs::default()),
            )
            .expect("list_payment_sessions");
        sessions.extend(page.items.iter().map(|s| s.id));
    }
    sessions.sort_unstable();
    World {
        vaults: vec![
            (c.bob, v_active),
            (c.bob, v_deleted),
            (c.alice, v_draft),
            (c.alice, v_setup),
            (c.carol, v_session),
            (c.carol, v_upload),
        ],
        open_token: open.token,
        sessions,
        ticket: ticket.ticket_id,
    }
}

/// One query and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub caller: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    /// Candid reply; empty until asked.
    pub reply: Vec<u8>,
}

fn probe(caller: Principal, method: &str, arg: Vec<u8>) -> Probe {
    Probe {
        caller,
        method: method.into(),
        arg,
        reply: Vec::new(),
    }
}

/// Every query that reads the scenario's data back: per vault as its owner and a member,
/// per session, the admin views and the public ones. Two of them change with the upgrade
/// itself ([`CHANGED_BY_UPGRADE`]).
pub fn probes(c: &Cast, w: &World) -> Vec<Probe> {
    let page = PageArgs {
        start_after: None,
        limit: Some(100),
    };
    let mut out = vec![
        probe(c.admin, "get_plans", Encode!().unwrap()),
        probe(c.admin, "list_vaults", Encode!(&page).unwrap()),
        probe(c.admin, "list_billing", Encode!(&page).unwrap()),
        probe(c.admin, "list_admins", Encode!().unwrap()),
        probe(c.admin, "list_admin_trail", Encode!(&page).unwrap()),
        probe(c.admin, "get_metrics", Encode!().unwrap()),
        probe(c.admin, "get_vetkd_public_key", Encode!().unwrap()),
        probe(c.heir1, "get_invite_info", Encode!(&w.open_token).unwrap()),
        probe(
            c.alice,
            "get_download_chunk",
            Encode!(&w.ticket, &0u32).unwrap(),
        ),
    ];
    for who in [c.alice, c.bob, c.carol, c.heir1, c.heir2, c.witness] {
        out.push(probe(who, "list_my_vaults", Encode!(&page).unwrap()));
    }
    for (owner, v) in &w.vaults {
        for who in [*owner, c.heir1, c.witness] {
            out.push(probe(who, "get_vault", Encode!(v).unwrap()));
            out.push(probe(who, "get_audit_log", Encode!(v, &page).unwrap()));
            out.push(probe(who, "get_audit_head", Encode!(v).unwrap()));
            out.push(probe(who, "get_unlock_status", Encode!(v).unwrap()));
            out.push(probe(who, "list_members", Encode!(v, &page).unwrap()));
            out.push(probe(who, "list_items", Encode!(v, &page).unwrap()));
        }
        out.push(probe(*owner, "list_invites", Encode!(v, &page).unwrap()));
        out.push(probe(
            *owner,
            "list_payment_sessions",
            Encode!(v, &page).unwrap(),
        ));
    }
    for s in &w.sessions {
        out.push(probe(c.admin, "get_payment_session", Encode!(s).unwrap()));
    }
    out
}

/// Item `item` of vault `v` as `who` downloads it (ticket, then every chunk).
pub fn download(env: &mut TestEnv, who: Principal, v: VaultId, item: u64) -> Vec<u8> {
    let t: DownloadTicket = env
        .update::<_, R<DownloadTicket>>(who, "request_download", (v, item))
        .expect("request_download");
    let mut body = Vec::new();
    for i in 0..t.chunk_count {
        let chunk: ByteBuf = env
            .query::<_, R<ByteBuf>>(who, "get_download_chunk", (t.ticket_id, i))
            .expect("get_download_chunk");
        body.extend_from_slice(&chunk);
    }
    body
}

/// A fixture read back: the image, the time its probes ran and their answers.
pub struct Fixture {
    pub image: Vec<u8>,
    pub time: u64,
    pub probes: Vec<Probe>,
}

impl Fixture {
    /// Reads `stable.img` and `probes.txt` from `dir`.
    pub fn load(dir: &std::path::Path) -> Fixture {
        let image = decode_image(&std::fs::read(dir.join("stable.img")).expect("stable.img"));
        let (time, probes) =
            decode_probes(&std::fs::read_to_string(dir.join("probes.txt")).expect("probes.txt"));
        Fixture {
            image,
            time,
            probes,
        }
    }

    /// Downloads every committed item the recorded `list_items` answers name, as the
    /// member who listed it, and checks its size and SHA-256; the number downloaded.
    pub fn download_every_item(&self, env: &mut TestEnv) -> usize {
        let mut downloaded = 0;
        for p in self.probes.iter().filter(|p| p.method == "list_items") {
            let Ok(Ok(page)) = candid::decode_one::<R<Page<ItemView>>>(&p.reply) else {
                continue;
            };
            for item in page.items {
                let body = download(env, p.caller, item.vault_id, item.item_id);
                assert_eq!(body.len() as u64, item.size);
                assert_eq!(
                    sha2::Sha256::digest(&body).as_slice(),
                    item.sha256.as_slice()
                );
                downloaded += 1;
            }
        }
        downloaded
    }

    /// Asks every probe not in [`CHANGED_BY_UPGRADE`] again on `env`, at the same time;
    /// one line per answer that does not cover the recorded one.
    pub fn differing_answers(&self, env: &mut TestEnv) -> Vec<String> {
        let mut failures = Vec::new();
        for p in self
            .probes
            .iter()
            .filter(|p| !CHANGED_BY_UPGRADE.contains(&p.method.as_str()))
        {
            let reply = env
                .host
                .query(p.caller, &p.method, p.arg.clone())
                .unwrap_or_else(|e| panic!("{} was rejected: {e:?}", p.method));
            if let Err(e) = covers(&p.reply, &reply.bytes) {
                failures.push(format!("{} as {}: {e}", p.method, p.caller));
            }
        }
        failures
    }
}

/// A host canister holding the fixture's image, upgraded to today's module at the probes'
/// time (minus the upgrade's own tick, so the probes run at the same times as when
/// recorded).
pub fn upgraded(f: &Fixture) -> TestEnv {
    upgraded_with_image(f).0
}

/// [`upgraded`], after which every committed item of the image downloads with its
/// recorded size and SHA-256 ([`Fixture::download_every_item`]; at least three).
pub fn upgraded_and_downloaded(f: &Fixture) -> TestEnv {
    let mut env = upgraded(f);
    let downloaded = f.download_every_item(&mut env);
    assert!(downloaded >= 3, "{downloaded} items downloaded");
    env
}

/// [`upgraded`], and the stable memory as `post_upgrade` left it, before the clock moves
/// to the probes' time and the timers the upgrade armed run (the owner index's re-key).
pub fn upgraded_with_image(f: &Fixture) -> (TestEnv, Vec<u8>) {
    let controller = user("controller");
    let mut host = local_replica::Host::new(local_replica::HostConfig {
        start_time_ns: f.time - 1_000_000_000,
        // The host's `raw_rand` is deterministic: with the seed the image was written with,
        // it would hand out the same 32 bytes again and a new invite token would collide
        // with a stored one (`generate_invite` refuses that with `Busy`). The IC's
        // randomness never repeats; a fresh seed models that.
        seed: 7,
        ..local_replica::HostConfig::default()
    });
    let canister = host
        .install(&empty_module(), Vec::new(), controller)
        .expect("install the empty module");
    host.set_stable_memory(f.image.clone())
        .expect("load the image");
    let arg = candid::encode_one(None::<LiVaultArgs>).unwrap();
    host.upgrade_held(wasm(), arg)
        .expect("upgrade over the image");
    let image = host.stable_memory().expect("installed").to_vec();
    host.run_until_idle();
    assert!(host.now() <= f.time);
    host.set_time(f.time);
    let env = TestEnv {
        host,
        canister,
        controller,
        admin: user("admin"),
    };
    (env, image)
}

/// Layout 8 on directory memory `n`: what was a raw directory of 16-byte entries (`before`)
/// is the same entries behind a `StableVec` header (trailing absent entries dropped, the
/// rest zero), in the same memory (`after`, the same size).
pub fn assert_directory_converted(n: u8, before: &[u8], after: &[u8]) {
    assert!(!before.is_empty(), "the image has directory {n}");
    let entries = before
        .chunks_exact(16)
        .rposition(|e| e != [0u8; 16])
        .map_or(0, |i| i + 1);
    assert_eq!(&after[..4], b"SVC\x01", "directory {n}: a StableVec");
    assert_eq!(
        u64::from_le_bytes(after[4..12].try_into().unwrap()),
        entries as u64,
        "directory {n}: its length"
    );
    assert_eq!(
        after[64..64 + 16 * entries],
        before[..16 * entries],
        "directory {n}: the same entries"
    );
    assert!(after[64 + 16 * entries..].iter().all(|b| *b == 0));
    assert_eq!(
        after.len(),
        before.len(),
        "directory {n}: converted in place"
    );
}

/// Probes whose answer an upgrade changes: the admin trail gains its entry, the metrics
/// count the upgrade and the memory. Compared field by field by the test.
pub const CHANGED_BY_UPGRADE: [&str; 2] = ["list_admin_trail", "get_metrics"];

/// Asks every probe on `host` (replies filled in); a rejected call is a failure.
pub fn ask(host: &mut local_replica::Host, probes: &mut [Probe]) {
    for p in probes {
        let reply = host
            .query(p.caller, &p.method, p.arg.clone())
            .unwrap_or_else(|e| panic!("{} as {} was rejected: {e:?}", p.method, p.caller));
        p.reply = reply.bytes;
    }
}

// ---------------------------------------------------------------- fixture files

const IMAGE_MAGIC: &[u8; 8] = b"LVIMG\x00\x00\x01";
/// Zero bytes that end a run.
const GAP: usize = 32;

/// A sparse image: magic, total length (u64 LE), then runs of non-zero data as offset (u64
/// LE), length (u32 LE) and bytes; runs are separated by at least 32 zero bytes.
pub fn encode_image(stable: &[u8]) -> Vec<u8> {
    let mut out = IMAGE_MAGIC.to_vec();
    out.extend_from_slice(&(stable.len() as u64).to_le_bytes());
    let mut i = 0;
    while i < stable.len() {
        if stable[i] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        let mut zeros = 0;
        while i < stable.len() && zeros < GAP {
            if stable[i] == 0 {
                zeros += 1;
            } else {
                zeros = 0;
                end = i + 1;
            }
            i += 1;
        }
        out.extend_from_slice(&(start as u64).to_le_bytes());
        out.extend_from_slice(&((end - start) as u32).to_le_bytes());
        out.extend_from_slice(&stable[start..end]);
        i = end;
    }
    out
}

/// Inverse of [`encode_image`].
pub fn decode_image(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(&bytes[..8], IMAGE_MAGIC, "not a stable memory image");
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let mut out = vec![0u8; len];
    let mut i = 16;
    while i < bytes.len() {
        let at = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap()) as usize;
        let n = u32::from_le_bytes(bytes[i + 8..i + 12].try_into().unwrap()) as usize;
        out[at..at + n].copy_from_slice(&bytes[i + 12..i + 12 + n]);
        i += 12 + n;
    }
    out
}

/// `probes.txt`: `time <ns>`, then `<caller> <method> <arg hex> <reply hex>` per probe.
pub fn encode_probes(time: u64, probes: &[Probe]) -> String {
    let mut s = format!("time {time}\n");
    for p in probes {
        s.push_str(&format!(
            "{} {} {} {}\n",
            p.caller.to_text(),
            p.method,
            hex::encode(&p.arg),
            hex::encode(&p.reply)
        ));
    }
    s
}

/// Inverse of [`encode_probes`].
pub fn decode_probes(text: &str) -> (u64, Vec<Probe>) {
    let mut lines = text.lines();
    let time = lines
        .next()
        .and_then(|l| l.strip_prefix("time "))
        .expect("time line")
        .parse()
        .expect("time");
    let probes = lines
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 4, "probe line: {l}");
            Probe {
                caller: Principal::from_text(f[0]).expect("caller"),
                method: f[1].into(),
                arg: hex::decode(f[2]).expect("arg"),
                reply: hex::decode(f[3]).expect("reply"),
            }
        })
        .collect();
    (time, probes)
}

// ---------------------------------------------------------------- comparison

/// Whether the reply `new` says everything `old` said: the same values, where records may
/// have gained fields (a later module may add some; none may go or change).
pub fn covers(old: &[u8], new: &[u8]) -> Result<(), String> {
    let old = IDLArgs::from_bytes(old).map_err(|e| format!("old reply: {e}"))?;
    let new = IDLArgs::from_bytes(new).map_err(|e| format!("new reply: {e}"))?;
    if old.args.len() != new.args.len() {
        return Err(format!("{} vs {} values", old.args.len(), new.args.len()));
    }
    for (i, (o, n)) in old.args.iter().zip(&new.args).enumerate() {
        value_covers(o, n).map_err(|e| format!("value {i}: {e}"))?;
    }
    Ok(())
}

fn value_covers(old: &IDLValue, new: &IDLValue) -> Result<(), String> {
    match (old, new) {
        (IDLValue::Record(o), IDLValue::Record(n)) => {
            for IDLField { id, val } in o {
                let got = n
                    .iter()
                    .find(|f| f.id.get_id() == id.get_id())
                    .ok_or_else(|| format!("field {id} is gone"))?;
                value_covers(val, &got.val).map_err(|e| format!(".{id}{e}"))?;
            }
            Ok(())
        }
        (IDLValue::Variant(VariantValue(o, _)), IDLValue::Variant(VariantValue(n, _))) => {
            if o.id.get_id() != n.id.get_id() {
                return Err(format!(": variant {} became {}", o.id, n.id));
            }
            value_covers(&o.val, &n.val).map_err(|e| format!("::{}{e}", o.id))
        }
        (IDLValue::Vec(o), IDLValue::Vec(n)) => {
            if o.len() != n.len() {
                return Err(format!(": {} items became {}", o.len(), n.len()));
            }
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                value_covers(a, b).map_err(|e| format!("[{i}]{e}"))?;
            }
            Ok(())
        }
        (IDLValue::Opt(o), IDLValue::Opt(n)) => value_covers(o, n),
        (o, n) if o == n => Ok(()),
        (o, n) => Err(format!(": {o} became {n}")),
    }
}
