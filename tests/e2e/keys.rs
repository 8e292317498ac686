//! Key release by vetKeys (SPEC §16) on the real wasm, with ic-vetkeys as the client: alice
//! encrypts and wraps, bob decrypts after the unlock and not before, carol's key does not open
//! bob's wrap, the witness gets nothing; the full role × status × identity matrix; share
//! indexes never reused; `update_item_meta`; limits, budget, fees, transport-key validation,
//! the public-key cache.

use std::time::Duration;

use candid::Principal;
use ic_vetkeys::{DerivedPublicKey, MasterPublicKey, TransportSecretKey};
use livault_backend::domain::keys::{DeriveVetKeyArgs, EncryptedVetKeyReply};
use livault_backend::model::config::{Durations, VetKdConfig};
use livault_backend::model::keys::{VetKdPublicKey, VetKeyMetrics};
use livault_backend::model::member_types::*;
use livault_backend::model::records::MemberRole;
use livault_tests::client::{self, Envelope};
use livault_tests::*;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

type R<T> = Result<T, VaultError>;

const KEY_1_FEE: u128 = 26_153_846_153;

/// A canister with a daily maintenance timer and `vetkd` settings.
fn env_with(vetkd: VetKdConfig, durations: Durations) -> TestEnv {
    TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: 86_400,
            ..durations
        }),
        vetkd: Some(vetkd),
        ..Default::default()
    })
}

fn env() -> TestEnv {
    env_with(VetKdConfig::default(), Durations::default())
}

fn public_key(env: &mut TestEnv) -> VetKdPublicKey {
    env.query::<_, R<VetKdPublicKey>>(Principal::anonymous(), "get_vetkd_public_key", ())
        .expect("public key cached after install")
}

fn dpk(env: &mut TestEnv) -> DerivedPublicKey {
    DerivedPublicKey::deserialize(&public_key(env).public_key).expect("valid G2 point")
}

fn derive_raw(
    env: &mut TestEnv,
    who: Principal,
    vault_id: VaultId,
    share_index: u8,
    transport_public_key: Vec<u8>,
) -> Result<R<EncryptedVetKeyReply>, local_replica::Reject> {
    env.try_update(
        who,
        "derive_vetkey",
        (DeriveVetKeyArgs {
            vault_id,
            share_index,
            transport_public_key: ByteBuf::from(transport_public_key),
        },),
    )
}

fn derive(
    env: &mut TestEnv,
    who: Principal,
    v: VaultId,
    share: u8,
    tsk: &TransportSecretKey,
) -> R<EncryptedVetKeyReply> {
    derive_raw(env, who, v, share, tsk.public_key()).expect("not rejected by the system")
}

fn metrics(env: &mut TestEnv) -> VetKeyMetrics {
    let admin = env.admin;
    env.query::<_, R<Metrics>>(admin, "get_metrics", ())
        .expect("metrics")
        .vetkeys
}

fn set_rules(env: &mut TestEnv, owner: Principal, v: VaultId, rules: UnlockRules, post: u16) {
    env.update::<_, R<VaultView>>(
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(rules),
            post_unlock_days: Some(post),
            audit_retention_days: None,
        },),
    )
    .expect("update_vault");
}

/// Uploads `payload` with `meta` as `encrypted_meta`; returns the item.
fn upload(
    env: &mut TestEnv,
    owner: Principal,
    v: VaultId,
    payload: &[u8],
    meta: Vec<u8>,
    recipients: Option<Vec<u32>>,
) -> ItemView {
    let up: UploadView = env
        .update::<_, R<UploadView>>(
            owner,
            "begin_upload",
            (BeginUploadArgs {
                vault_id: v,
                kind: ItemKind::File,
                size: payload.len() as u64,
                sha256: ByteBuf::from(Sha256::digest(payload).to_vec()),
                encrypted_meta: ByteBuf::from(meta),
                recipients,
                replaces: None,
                idempotency_key: None,
            },),
        )
        .expect("begin_upload");
    env.update::<_, R<UploadView>>(
        owner,
        "upload_chunk",
        (up.upload_id, 0u32, ByteBuf::from(payload.to_vec())),
    )
    .expect("upload_chunk");
    env.update::<_, R<ItemView>>(owner, "finish_upload", (up.upload_id,))
        .expect("finish_upload")
}

/// Downloads item `item` as `who` (one chunk).
fn download(env: &mut TestEnv, who: Principal, v: VaultId, item: u64) -> Vec<u8> {
    let t: DownloadTicket = env
        .update::<_, R<DownloadTicket>>(who, "request_download", (v, item))
        .expect("request_download");
    env.query::<_, R<ByteBuf>>(who, "get_download_chunk", (t.ticket_id, 0u32))
        .expect("chunk")
        .into_vec()
}

fn item_meta(env: &mut TestEnv, who: Principal, v: VaultId, item: u64) -> Vec<u8> {
    let page: Page<ItemView> = env
        .query::<_, R<Page<ItemView>>>(who, "list_items", (v, PageArgs::default()))
        .expect("list_items");
    page.items
        .into_iter()
        .find(|i| i.item_id == item)
        .expect("item listed")
        .encrypted_meta
        .into_vec()
}

fn share_of(env: &mut TestEnv, owner: Principal, v: VaultId, member_id: u32) -> u8 {
    let page: Page<MemberView> = env
        .query::<_, R<Page<MemberView>>>(owner, "list_members", (v, PageArgs::default()))
        .expect("list_members");
    page.items
        .iter()
        .find(|m| m.member_id == member_id)
        .expect("member listed")
        .share_index
}

fn invite(env: &mut TestEnv, owner: Principal, v: VaultId, role: MemberRole) -> InviteCreated {
    env.update::<_, R<InviteCreated>>(
        owner,
        "generate_invite",
        (GenerateInviteArgs {
            vault_id: v,
            role,
            name: "m".into(),
            relation: Relation::Son,
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
        },),
    )
    .expect("generate_invite")
}

fn claim(env: &mut TestEnv, who: Principal, token: &str) -> MemberView {
    env.update::<_, R<MemberView>>(who, "claim_invite", (token.to_string(),))
        .expect("claim_invite")
}

fn vault_with_plan(env: &mut TestEnv, owner: Principal, heir_slots: u8) -> VaultId {
    env.update::<_, R<VaultView>>(
        owner,
        "create_vault",
        (CreateVaultArgs {
            name: "Family".into(),
            plan: PlanSelection {
                tier: Tier::Standard,
                heir_slots,
                witness_slot: true,
            },
            owner_age: 50,
            idempotency_key: None,
        },),
    )
    .expect("create_vault")
    .id
}

/// alice's vault with heirs bob and carol and witness will, a time lock 10 days ahead and
/// two sealed files: one for bob, one for carol (each also wrapped to alice).
struct Family {
    env: TestEnv,
    alice: Principal,
    bob: Principal,
    carol: Principal,
    will: Principal,
    v: VaultId,
    bob_share: u8,
    carol_share: u8,
    will_share: u8,
    bob_item: u64,
    carol_item: u64,
    bob_plain: Vec<u8>,
    carol_plain: Vec<u8>,
    bob_data_key: Vec<u8>,
}

fn family() -> Family {
    let mut env = env();
    let (alice, bob, carol, will) = (user("alice"), user("bob"), user("carol"), user("will"));
    let v = env.create_vault(alice, "Family").id;
    env.pay_creation(alice, v);
    let now = env.now();
    set_rules(
        &mut env,
        alice,
        v,
        UnlockRules {
            unlock_after: Some(now + 10 * DAY_NS),
            inactivity_days: None,
            request_wait_days: 7,
            required_heirs: 0,
            required_witness: false,
        },
        30,
    );
    let bob_m = env.join(alice, v, MemberRole::Heir, bob);
    let carol_m = env.join(alice, v, MemberRole::Heir, carol);
    let will_m = env.join(alice, v, MemberRole::Witness, will);
    let (bob_share, carol_share, will_share) = (
        share_of(&mut env, alice, v, bob_m),
        share_of(&mut env, alice, v, carol_m),
        share_of(&mut env, alice, v, will_m),
    );
    // alice's client: the canister's public key, then seal and upload.
    let dpk = dpk(&mut env);
    let bob_plain = client::test_bytes("bob's letter", 3000);
    let sealed = client::seal_item(&dpk, v, &[bob_share, 0], &bob_plain, b"letter.txt", "bob");
    let bob_item = upload(
        &mut env,
        alice,
        v,
        &sealed.payload,
        sealed.envelope.encode(),
        Some(vec![bob_m]),
    )
    .item_id;
    let carol_plain = client::test_bytes("carol's file", 1000);
    let carol_sealed = client::seal_item(
        &dpk,
        v,
        &[carol_share, 0],
        &carol_plain,
        b"photo.jpg",
        "carol",
    );
    let carol_item = upload(
        &mut env,
        alice,
        v,
        &carol_sealed.payload,
        carol_sealed.envelope.encode(),
        Some(vec![carol_m]),
    )
    .item_id;
    let r: R<VaultView> = env.update(alice, "finalize_setup", (v,));
    assert_eq!(r.unwrap().status, VaultStatus::Active);
    Family {
        env,
        alice,
        bob,
        carol,
        will,
        v,
        bob_share,
        carol_share,
        will_share,
        bob_item,
        carol_item,
        bob_plain,
        carol_plain,
        bob_data_key: sealed.data_key,
    }
}

/// Unwraps and decrypts `item` as `who` holding `share`'s vetKey.
fn open_item(
    env: &mut TestEnv,
    v: VaultId,
    who: Principal,
    item: u64,
    share: u8,
    vetkey: &ic_vetkeys::VetKey,
) -> R<Vec<u8>> {
    let payload = download(env, who, v, item);
    let meta = item_meta(env, who, v, item);
    let envelope = Envelope::decode(&meta).expect("envelope");
    let key = client::unwrap_key(vetkey, &envelope, share)
        .map_err(|e| VaultError::invalid("unwrap", e))?;
    client::aes_decrypt(&key, &payload).map_err(|e| VaultError::invalid("decrypt", e))
}

#[test]
fn heirs_decrypt_after_the_unlock_and_no_one_else() {
    let mut f = family();
    let (alice, bob, carol, will, v) = (f.alice, f.bob, f.carol, f.will, f.v);
    // The public key is ic-vetkeys' derivation of the host's test key_1 for this canister and
    // LiVault's context.
    let pk = public_key(&mut f.env);
    assert_eq!(
        (pk.key_name.as_str(), pk.context.as_slice()),
        ("key_1", client::CONTEXT)
    );
    let expected =
        MasterPublicKey::deserialize(&local_replica::vetkd::master_public_key("key_1").unwrap())
            .unwrap()
            .derive_canister_key(f.env.canister.as_slice())
            .derive_sub_key(client::CONTEXT);
    assert_eq!(pk.public_key, expected.serialize());
    let dpk = dpk(&mut f.env);
    let (tb, tc, tw, ta) = (
        client::transport_key("bob"),
        client::transport_key("carol"),
        client::transport_key("will"),
        client::transport_key("alice"),
    );

    // Before the unlock: bob's derive is refused, and so is everything but alice's own.
    let before = metrics(&mut f.env);
    assert_eq!(
        derive(&mut f.env, bob, v, f.bob_share, &tb),
        Err(VaultError::InvalidState {
            current: VaultStatus::Active
        })
    );
    assert_eq!(
        derive(&mut f.env, carol, v, f.bob_share, &tc),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(
        derive(&mut f.env, will, v, f.will_share, &tw),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(
        derive(&mut f.env, alice, v, f.bob_share, &ta),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(metrics(&mut f.env).derived_total, before.derived_total);
    // alice reads her own file back with identity 0.
    let a = derive(&mut f.env, alice, v, 0, &ta).expect("owner derives identity 0");
    assert_eq!(a.identity.as_slice(), client::identity(v, 0).as_slice());
    assert_eq!(a.encrypted_key.len(), 192);
    let alice_key = client::open_vetkey(&ta, &dpk, &a.identity, &a.encrypted_key).unwrap();
    assert_eq!(
        open_item(&mut f.env, f.v, alice, f.bob_item, 0, &alice_key).unwrap(),
        f.bob_plain
    );

    // The time lock passes: the daily tick unlocks.
    f.env.advance_days(11);
    assert_eq!(
        f.env.get_vault(alice, v).unwrap().status,
        VaultStatus::Unlockable
    );

    // bob derives his vetKey through the wasm, unwraps and decrypts: the original plaintext.
    let b = derive(&mut f.env, bob, v, f.bob_share, &tb).expect("bob after unlock");
    let bob_key = client::open_vetkey(&tb, &dpk, &b.identity, &b.encrypted_key).expect("verifies");
    // The encrypted key is bound to bob's transport key: carol's secret cannot open it.
    assert!(client::open_vetkey(&tc, &dpk, &b.identity, &b.encrypted_key).is_err());
    let plain = open_item(&mut f.env, f.v, bob, f.bob_item, f.bob_share, &bob_key).unwrap();
    assert_eq!(plain, f.bob_plain);
    let envelope = Envelope::decode(&item_meta(&mut f.env, bob, v, f.bob_item)).unwrap();
    assert_eq!(
        client::unwrap_key(&bob_key, &envelope, f.bob_share).unwrap(),
        f.bob_data_key
    );

    // carol: her own file opens, her vetKey does not open bob's wrap, she cannot derive bob's.
    let c = derive(&mut f.env, carol, v, f.carol_share, &tc).expect("carol after unlock");
    let carol_key = client::open_vetkey(&tc, &dpk, &c.identity, &c.encrypted_key).unwrap();
    assert_eq!(
        open_item(
            &mut f.env,
            f.v,
            carol,
            f.carol_item,
            f.carol_share,
            &carol_key
        )
        .unwrap(),
        f.carol_plain
    );
    let bob_wrap = envelope.wrap_for(f.bob_share).unwrap();
    assert!(ic_vetkeys::IbeCiphertext::deserialize(bob_wrap)
        .unwrap()
        .decrypt(&carol_key)
        .is_err());
    assert_eq!(
        derive(&mut f.env, carol, v, f.bob_share, &tc),
        Err(VaultError::NotAuthorized)
    );
    // The witness gets none, for any identity.
    for share in [0, f.bob_share, f.carol_share, f.will_share] {
        assert_eq!(
            derive(&mut f.env, will, v, share, &tw),
            Err(VaultError::NotAuthorized)
        );
    }

    // Audit: key.derived with the identity index, never key material; metrics and cycles.
    let log = f.env.audit_log(alice, v);
    let derived: Vec<_> = log.iter().filter(|e| e.action == "key.derived").collect();
    assert_eq!(derived.len(), 3);
    assert!(derived
        .iter()
        .any(|e| e.actor == bob && e.details.contains(&format!("share_index={}", f.bob_share))));
    for e in &derived {
        assert!(!e.details.contains(&hex::encode(&b.encrypted_key[..16])));
        assert!(!e.details.contains(&hex::encode(&tb.public_key()[..16])));
    }
    // bob sees his own event, not alice's.
    let bob_log = f.env.audit_log(bob, v);
    assert!(bob_log
        .iter()
        .any(|e| e.action == "key.derived" && e.actor == bob));
    assert!(!bob_log
        .iter()
        .any(|e| e.action == "key.derived" && e.actor == alice));
    let m = metrics(&mut f.env);
    assert_eq!(m.derived_total, before.derived_total + 3);
    assert_eq!(m.cycles_spent, before.cycles_spent + 3 * KEY_1_FEE);
}

#[test]
fn fees_leave_the_canister_balance_and_failed_calls_are_refunded() {
    let mut f = family();
    let ta = client::transport_key("alice");
    let start = f.env.host.cycle_balance();
    derive(&mut f.env, f.alice, f.v, 0, &ta).unwrap();
    assert_eq!(f.env.host.cycle_balance(), start - KEY_1_FEE);
    // A rejected management call keeps nothing; the reservation is released.
    f.env.host.fail_next_calls(
        "vetkd_derive_key",
        1,
        local_replica::RejectCode::SysTransient,
        "subnet busy",
    );
    let r = derive(&mut f.env, f.alice, f.v, 0, &ta);
    assert!(
        matches!(r, Err(VaultError::KeyDerivationUnavailable { .. })),
        "{r:?}"
    );
    assert_eq!(f.env.host.cycle_balance(), start - KEY_1_FEE);
    let m = metrics(&mut f.env);
    assert_eq!(
        (m.derived_total, m.failed_total, m.cycles_spent),
        (1, 1, KEY_1_FEE)
    );
    // A 48-byte transport key that is not a G1 point: the management canister refuses it,
    // the canister answers InvalidInput, nothing is charged or counted.
    let mut bad = ta.public_key();
    bad[30] ^= 0x5a;
    let r = derive_raw(&mut f.env, f.alice, f.v, 0, bad).unwrap();
    assert!(
        matches!(&r, Err(VaultError::InvalidInput { field, .. }) if field == "transport_public_key"),
        "{r:?}"
    );
    let r = derive_raw(&mut f.env, f.alice, f.v, 0, vec![1; 47]).unwrap();
    assert!(
        matches!(&r, Err(VaultError::InvalidInput { field, .. }) if field == "transport_public_key"),
        "{r:?}"
    );
    assert_eq!(f.env.host.cycle_balance(), start - KEY_1_FEE);
    // Released reservations: alice still has exactly 10 - 1 derivations today (after her
    // per-principal update bucket refilled).
    f.env.advance(Duration::from_secs(30));
    for _ in 0..9 {
        derive(&mut f.env, f.alice, f.v, 0, &ta).unwrap();
    }
    assert!(matches!(
        derive(&mut f.env, f.alice, f.v, 0, &ta),
        Err(VaultError::RateLimited { .. })
    ));
    assert_eq!(f.env.host.cycle_balance(), start - 10 * KEY_1_FEE);
}

/// The host's in-memory snapshots (used by the payment interleaving explorer) carry the
/// cycle balance the vetKD fees move.
#[test]
fn a_host_snapshot_restores_the_cycle_balance() {
    let mut f = family();
    let ta = client::transport_key("alice");
    let start = f.env.host.cycle_balance();
    let snap = f.env.host.snapshot().expect("quiescent");
    derive(&mut f.env, f.alice, f.v, 0, &ta).unwrap();
    derive(&mut f.env, f.alice, f.v, 0, &ta).unwrap();
    assert_eq!(f.env.host.cycle_balance(), start - 2 * KEY_1_FEE);
    f.env.host.restore(&snap).unwrap();
    assert_eq!(f.env.host.cycle_balance(), start);
    assert_eq!(metrics(&mut f.env).cycles_spent, 0);
    derive(&mut f.env, f.alice, f.v, 0, &ta).unwrap();
    assert_eq!(f.env.host.cycle_balance(), start - KEY_1_FEE);
}

#[test]
fn limits_per_caller_per_vault_budget_and_unpaid_drafts() {
    let mut env = env_with(
        VetKdConfig {
            key_name: "test_key_1".into(),
            owner_derivations_per_day: 2,
            heir_derivations_per_day: 1,
            vault_derivations_per_window: 3,
            unpaid_derivations_per_day: 2,
        },
        Durations::default(),
    );
    let t = client::transport_key("t");
    let alice = user("alice");
    let v = env.create_vault(alice, "v").id;
    env.pay_creation(alice, v);
    // Per owner and day: 2, then RateLimited until the next UTC day.
    derive(&mut env, alice, v, 0, &t).unwrap();
    derive(&mut env, alice, v, 0, &t).unwrap();
    let log_len = env.audit_log(alice, v).len();
    let r = derive(&mut env, alice, v, 0, &t);
    let Err(VaultError::RateLimited { retry_after_secs }) = r else {
        panic!("{r:?}")
    };
    assert!((1..=86_400).contains(&retry_after_secs));
    assert_eq!(
        env.audit_log(alice, v).len(),
        log_len,
        "a refusal changes nothing"
    );
    env.advance(Duration::from_secs(retry_after_secs));
    // The vault's 30-day budget (3) is reached before the owner's daily limit.
    derive(&mut env, alice, v, 0, &t).unwrap();
    let r = derive(&mut env, alice, v, 0, &t);
    assert_eq!(
        r,
        Err(VaultError::PlanLimit {
            resource: "vetkd_derivations".into(),
            limit: 3
        })
    );
    env.advance_days(30);
    derive(&mut env, alice, v, 0, &t).expect("a new window");
    let m = metrics(&mut env);
    assert_eq!(
        (m.derived_total, m.rate_limited, m.budget_exhausted),
        (4, 1, 1)
    );
    assert_eq!(m.cycles_spent, 4 * 10_000_000_000);

    // Unpaid drafts: 2 derivations per day over all drafts, whoever owns them.
    let drafts: Vec<(Principal, VaultId)> = (0..3)
        .map(|i| {
            let o = user(&format!("drafter{i}"));
            (o, env.create_vault(o, "d").id)
        })
        .collect();
    derive(&mut env, drafts[0].0, drafts[0].1, 0, &t).unwrap();
    derive(&mut env, drafts[1].0, drafts[1].1, 0, &t).unwrap();
    assert!(matches!(
        derive(&mut env, drafts[2].0, drafts[2].1, 0, &t),
        Err(VaultError::RateLimited { .. })
    ));
    // Paid vaults are not affected by the drafts' cap.
    env.advance_days(1);
    derive(&mut env, drafts[2].0, drafts[2].1, 0, &t).expect("next day");
}

#[test]
fn a_racing_second_call_sees_the_first_reservation() {
    let mut env = env_with(
        VetKdConfig {
            owner_derivations_per_day: 1,
            ..Default::default()
        },
        Durations::default(),
    );
    let alice = user("alice");
    let v = env.create_vault(alice, "v").id;
    env.pay_creation(alice, v);
    let t = client::transport_key("t");
    let arg = candid::encode_one(DeriveVetKeyArgs {
        vault_id: v,
        share_index: 0,
        transport_public_key: ByteBuf::from(t.public_key()),
    })
    .unwrap();
    env.host.hold_calls_to(Principal::management_canister());
    let first = env.host.submit_update(alice, "derive_vetkey", arg.clone());
    let second = env.host.submit_update(alice, "derive_vetkey", arg);
    env.host.run_until_idle();
    env.host.release_held();
    env.host.stop_holding(Principal::management_canister());
    let results: Vec<R<EncryptedVetKeyReply>> = [first, second]
        .into_iter()
        .map(|id| candid::decode_one(&env.host.await_reply(id).unwrap().bytes).unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(VaultError::RateLimited { .. }))));
    assert_eq!(metrics(&mut env).derived_total, 1);
}

#[test]
fn the_public_key_is_cached_and_refetched_when_the_key_name_changes() {
    let mut env = env();
    let pk1 = public_key(&mut env);
    assert_eq!(pk1.key_name, "key_1");
    assert!(metrics(&mut env).public_key_cached);
    // An upgrade without a new name keeps the cache (no management call).
    env.upgrade(None).unwrap();
    assert_eq!(public_key(&mut env), pk1);
    // A new key name: the first fetch fails, the query answers a typed error, a retry a
    // minute later succeeds.
    env.host.fail_next_calls(
        "vetkd_public_key",
        1,
        local_replica::RejectCode::SysTransient,
        "busy",
    );
    env.upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
        vetkd: Some(VetKdConfig {
            key_name: "test_key_1".into(),
            ..Default::default()
        }),
        ..Default::default()
    })))
    .unwrap();
    let r: R<VetKdPublicKey> = env.query(Principal::anonymous(), "get_vetkd_public_key", ());
    assert!(
        matches!(r, Err(VaultError::KeyDerivationUnavailable { .. })),
        "{r:?}"
    );
    assert!(!metrics(&mut env).public_key_cached);
    env.advance(Duration::from_secs(61));
    let pk2 = public_key(&mut env);
    assert_eq!(pk2.key_name, "test_key_1");
    assert_ne!(pk2.public_key, pk1.public_key);
    // Derivations use the new key and verify against the new public key.
    let alice = user("alice");
    let v = env.create_vault(alice, "v").id;
    env.pay_creation(alice, v);
    let t = client::transport_key("t");
    let k = derive(&mut env, alice, v, 0, &t).unwrap();
    assert_eq!(k.key_name, "test_key_1");
    let dpk = DerivedPublicKey::deserialize(&pk2.public_key).unwrap();
    client::open_vetkey(&t, &dpk, &k.identity, &k.encrypted_key).expect("verifies");
    // An unknown key name: derivations answer a typed error and nothing is counted.
    env.upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
        vetkd: Some(VetKdConfig {
            key_name: "no_such_key".into(),
            ..Default::default()
        }),
        ..Default::default()
    })))
    .unwrap();
    let before = metrics(&mut env);
    let r = derive(&mut env, alice, v, 0, &t);
    assert!(
        matches!(r, Err(VaultError::KeyDerivationUnavailable { .. })),
        "{r:?}"
    );
    let after = metrics(&mut env);
    assert_eq!(
        (after.derived_total, after.failed_total),
        (before.derived_total, before.failed_total)
    );
    // An invalid key name in upgrade arguments is refused (the upgrade rolls back).
    assert!(env
        .upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
            vetkd: Some(VetKdConfig {
                key_name: "bad name".into(),
                ..Default::default()
            }),
            ..Default::default()
        })))
        .is_err());
}

#[test]
fn share_indexes_are_never_reused_within_a_vault() {
    let mut env = env();
    let alice = user("alice");
    let v = vault_with_plan(&mut env, alice, 3);
    env.pay_creation(alice, v);
    let mut seen = Vec::new();
    // Regenerating an expired or revoked invite keeps its index; everything else is new.
    let a = invite(&mut env, alice, v, MemberRole::Heir);
    env.update::<_, R<InviteView>>(alice, "revoke_invite", (v, a.invite_id))
        .unwrap();
    let a2: InviteCreated = env
        .update::<_, R<InviteCreated>>(alice, "regenerate_invite", (v, a.invite_id))
        .unwrap();
    assert_eq!(a2.share_index, a.share_index);
    seen.push(a.share_index);
    let bob = claim(&mut env, user("bob"), &a2.token);
    assert_eq!(bob.share_index, a.share_index);
    let c = invite(&mut env, alice, v, MemberRole::Heir);
    let carol = claim(&mut env, user("carol"), &c.token);
    seen.push(carol.share_index);
    // Remove bob and invite him again: a new index.
    env.update::<_, R<VaultView>>(alice, "remove_member", (v, bob.member_id))
        .unwrap();
    let again = invite(&mut env, alice, v, MemberRole::Heir);
    let bob2 = claim(&mut env, user("bob"), &again.token);
    seen.push(bob2.share_index);
    // An invite that expires unclaimed still used its index; the witness gets a new one too.
    let lost = invite(&mut env, alice, v, MemberRole::Heir);
    seen.push(lost.share_index);
    env.advance_days(2);
    let w = invite(&mut env, alice, v, MemberRole::Witness);
    seen.push(w.share_index);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "share indexes {seen:?}");
    assert!(!seen.contains(&0), "0 is the owner's identity");
    // bob's old identity is not his any more: after removal and re-invite he may only ask
    // for the new one (here refused for state: not Unlockable), never the old one.
    let t = client::transport_key("bob");
    assert_eq!(
        derive(&mut env, user("bob"), v, bob.share_index, &t),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(
        derive(&mut env, user("bob"), v, bob2.share_index, &t),
        Err(VaultError::InvalidState {
            current: VaultStatus::NeedSetup
        })
    );
}

#[test]
fn update_item_meta_rewraps_without_reupload() {
    let mut f = family();
    let (alice, bob, carol, v) = (f.alice, f.bob, f.carol, f.v);
    let dpk = dpk(&mut f.env);
    let before: Page<ItemView> = f
        .env
        .query::<_, R<Page<ItemView>>>(alice, "list_items", (v, PageArgs::default()))
        .unwrap();
    let old = before
        .items
        .iter()
        .find(|i| i.item_id == f.bob_item)
        .unwrap()
        .clone();
    let carol_member = {
        let page: Page<MemberView> = f
            .env
            .query::<_, R<Page<MemberView>>>(alice, "list_members", (v, PageArgs::default()))
            .unwrap();
        page.items
            .iter()
            .find(|m| m.share_index == f.carol_share)
            .unwrap()
            .member_id
    };
    // alice re-wraps bob's file for carol too (she unwraps her own wrap first).
    let ta = client::transport_key("alice");
    let a = derive(&mut f.env, alice, v, 0, &ta).unwrap();
    let alice_key = client::open_vetkey(&ta, &dpk, &a.identity, &a.encrypted_key).unwrap();
    let mut env_meta = Envelope::decode(&old.encrypted_meta).unwrap();
    let data_key = client::unwrap_key(&alice_key, &env_meta, 0).unwrap();
    env_meta.wraps.push((
        f.carol_share,
        client::wrap_key(&dpk, v, f.carol_share, &data_key, "rewrap"),
    ));
    let bob_item = f.bob_item;
    let args = |meta: Vec<u8>, recipients: Option<Vec<u32>>| UpdateItemMetaArgs {
        vault_id: v,
        item_id: bob_item,
        encrypted_meta: ByteBuf::from(meta),
        recipients,
    };
    let new_meta = env_meta.encode();
    let log_len = f.env.audit_log(alice, v).len();
    // Refusals change nothing.
    let r: R<ItemView> = f
        .env
        .update(bob, "update_item_meta", (args(new_meta.clone(), None),));
    assert_eq!(r, Err(VaultError::NotAuthorized));
    let r: R<ItemView> = f
        .env
        .update(alice, "update_item_meta", (args(vec![0; 4097], None),));
    assert!(
        matches!(r, Err(VaultError::InvalidInput { ref field, .. }) if field == "encrypted_meta")
    );
    let r: R<ItemView> = f.env.update(
        alice,
        "update_item_meta",
        (args(new_meta.clone(), Some(vec![999])),),
    );
    assert!(matches!(r, Err(VaultError::InvalidInput { ref field, .. }) if field == "recipients"));
    let r: R<ItemView> = f.env.update(
        alice,
        "update_item_meta",
        (UpdateItemMetaArgs {
            item_id: 424_242,
            ..args(new_meta.clone(), None)
        },),
    );
    assert_eq!(r, Err(VaultError::NotFound));
    assert_eq!(
        f.env.audit_log(alice, v).len(),
        log_len,
        "refusals append nothing"
    );
    // The update: new meta and recipients, same payload, hash and version.
    let bob_member = old.recipients.clone().unwrap()[0];
    let r: R<ItemView> = f.env.update(
        alice,
        "update_item_meta",
        (args(new_meta.clone(), Some(vec![bob_member, carol_member])),),
    );
    let item = r.unwrap();
    assert_eq!(item.encrypted_meta.as_slice(), new_meta.as_slice());
    assert_eq!(item.recipients, Some(vec![bob_member, carol_member]));
    assert_eq!(
        (item.sha256.clone(), item.version, item.size),
        (old.sha256.clone(), old.version, old.size)
    );
    assert!(f
        .env
        .audit_log(alice, v)
        .iter()
        .any(|e| e.action == "content.item_meta_updated"));
    // After the unlock carol opens bob's file with her own vetKey.
    f.env.advance_days(11);
    let tc = client::transport_key("carol");
    let c = derive(&mut f.env, carol, v, f.carol_share, &tc).unwrap();
    let carol_key = client::open_vetkey(&tc, &dpk, &c.identity, &c.encrypted_key).unwrap();
    let plain = open_item(
        &mut f.env,
        f.v,
        carol,
        f.bob_item,
        f.carol_share,
        &carol_key,
    )
    .unwrap();
    assert_eq!(plain, f.bob_plain);
    // Content is frozen from Unlockable on.
    let r: R<ItemView> = f
        .env
        .update(alice, "update_item_meta", (args(new_meta, None),));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Unlockable
        })
    );
}

// ------------------------------------------------------------------ the matrix

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Owner,
    Heir,
    OtherHeir,
    Witness,
    Removed,
    Stranger,
    Anonymous,
    Admin,
}

const ROLES: [Role; 8] = [
    Role::Owner,
    Role::Heir,
    Role::OtherHeir,
    Role::Witness,
    Role::Removed,
    Role::Stranger,
    Role::Anonymous,
    Role::Admin,
];

/// Share indexes as the matrix vault hands them out: bob 1, carol 2, rita 3 (removed),
/// will 4 (witness); 200 is never handed out.
const SHARES: [u8; 6] = [0, 1, 2, 3, 4, 200];

fn own_share(role: Role) -> Option<u8> {
    match role {
        Role::Owner => Some(0),
        Role::Heir => Some(1),
        Role::OtherHeir => Some(2),
        Role::Removed => Some(3),
        Role::Witness => Some(4),
        _ => None,
    }
}

fn principal_of(env: &TestEnv, role: Role) -> Principal {
    match role {
        Role::Owner => user("m-alice"),
        Role::Heir => user("m-bob"),
        Role::OtherHeir => user("m-carol"),
        Role::Witness => user("m-will"),
        Role::Removed => user("m-rita"),
        Role::Stranger => user("m-sam"),
        Role::Anonymous => Principal::anonymous(),
        Role::Admin => env.admin,
    }
}

/// SPEC §16, written out: what `derive_vetkey` answers. `Ok(None)` = rejected at ingress.
fn expected(role: Role, status: VaultStatus, share: u8) -> Result<Option<()>, VaultError> {
    use VaultStatus::*;
    // Heirs join after Draft and are purged with the tombstone.
    let members_exist = !matches!(status, Draft | Deleted);
    match role {
        Role::Anonymous => Ok(None),
        Role::Owner if share != 0 => Err(VaultError::NotAuthorized),
        Role::Owner if status == Deleted => Err(VaultError::InvalidState { current: status }),
        Role::Owner => Ok(Some(())),
        Role::Heir | Role::OtherHeir if members_exist && own_share(role) == Some(share) => {
            if status == Unlockable {
                Ok(Some(()))
            } else {
                Err(VaultError::InvalidState { current: status })
            }
        }
        _ => Err(VaultError::NotAuthorized),
    }
}

/// Every role × every identity on the vault in its current status: allowed exactly per
/// SPEC §16; allowed keys verify; refusals change nothing.
fn check_matrix(env: &mut TestEnv, v: VaultId, status: VaultStatus, table: &mut Vec<String>) {
    let owner = principal_of(env, Role::Owner);
    assert_eq!(env.get_vault(owner, v).unwrap().status, status);
    // Let the per-principal token buckets refill between rounds.
    env.advance(Duration::from_secs(30));
    let dpk = dpk(env);
    for role in ROLES {
        let who = principal_of(env, role);
        let t = client::transport_key(&format!("{role:?}"));
        let mut row = Vec::new();
        for share in SHARES {
            let want = expected(role, status, share);
            let before = (metrics(env).derived_total, env.host.cycle_balance());
            let got = derive_raw(env, who, v, share, t.public_key());
            match (&want, got) {
                (Ok(None), Err(reject)) => {
                    assert!(reject.message.contains("anonymous"), "{reject:?}");
                    row.push("rej");
                }
                (Ok(Some(())), Ok(Ok(k))) => {
                    assert_eq!(k.identity.as_slice(), client::identity(v, share).as_slice());
                    client::open_vetkey(&t, &dpk, &k.identity, &k.encrypted_key)
                        .expect("the derived key verifies");
                    assert_eq!(metrics(env).derived_total, before.0 + 1);
                    row.push("KEY");
                }
                (Err(e), Ok(Err(got))) => {
                    assert_eq!(&got, e, "{role:?} in {status:?} for share {share}");
                    assert_eq!(
                        (metrics(env).derived_total, env.host.cycle_balance()),
                        before,
                        "a refusal changes nothing"
                    );
                    row.push(match got {
                        VaultError::NotAuthorized => "no",
                        _ => "state",
                    });
                }
                (want, got) => {
                    panic!("{role:?} in {status:?} for share {share}: want {want:?}, got {got:?}")
                }
            }
        }
        table.push(format!("{status:?} {role:?}: {}", row.join(" ")));
    }
}

#[test]
fn derivation_matrix_every_role_status_and_identity() {
    let mut env = env_with(
        VetKdConfig::default(),
        Durations {
            validity_days: 3,
            grace_master_days: 1,
            grace_heir_days: 5,
            tombstone_after_days: 1,
            ..Durations::default()
        },
    );
    let mut table = Vec::new();
    let alice = principal_of(&env, Role::Owner);
    let v = vault_with_plan(&mut env, alice, 3);
    check_matrix(&mut env, v, VaultStatus::Draft, &mut table);

    env.pay_creation(alice, v);
    let member = |env: &mut TestEnv, role: Role, mrole: MemberRole| {
        let who = principal_of(env, role);
        let m = env.join(alice, v, mrole, who);
        assert_eq!(Some(share_of(env, alice, v, m)), own_share(role));
        m
    };
    member(&mut env, Role::Heir, MemberRole::Heir);
    member(&mut env, Role::OtherHeir, MemberRole::Heir);
    let rita = member(&mut env, Role::Removed, MemberRole::Heir);
    member(&mut env, Role::Witness, MemberRole::Witness);
    env.update::<_, R<VaultView>>(alice, "remove_member", (v, rita))
        .unwrap();
    let now = env.now();
    set_rules(
        &mut env,
        alice,
        v,
        UnlockRules {
            unlock_after: Some(now + 1000 * DAY_NS),
            inactivity_days: None,
            request_wait_days: 7,
            required_heirs: 1,
            required_witness: false,
        },
        2,
    );
    // Rules and heirs but no content yet.
    check_matrix(&mut env, v, VaultStatus::NeedSetup, &mut table);
    env.upload_letter(alice, v, b"sealed letter", None);
    check_matrix(&mut env, v, VaultStatus::SetupComplete, &mut table);
    env.update::<_, R<VaultView>>(alice, "finalize_setup", (v,))
        .unwrap();
    check_matrix(&mut env, v, VaultStatus::Active, &mut table);
    env.advance_days(4);
    check_matrix(&mut env, v, VaultStatus::GraceMaster, &mut table);
    env.advance_days(1);
    check_matrix(&mut env, v, VaultStatus::GraceHeir, &mut table);
    let bob = principal_of(&env, Role::Heir);
    let s: R<UnlockStatus> = env.update(bob, "approve_unlock", (v,));
    assert_eq!(s.unwrap().status, VaultStatus::Unlockable);
    check_matrix(&mut env, v, VaultStatus::Unlockable, &mut table);
    env.advance_days(3);
    check_matrix(&mut env, v, VaultStatus::Expired, &mut table);
    env.advance_days(2);
    check_matrix(&mut env, v, VaultStatus::Deleted, &mut table);
    println!("identities {SHARES:?}\n{}", table.join("\n"));
    assert_eq!(table.len(), ROLES.len() * VaultStatus::ALL.len());
}

#[test]
fn heirs_lose_the_key_at_access_until_before_the_scheduler_runs() {
    let mut f = family();
    f.env.advance_days(11);
    let vault = f.env.get_vault(f.alice, f.v).unwrap();
    assert_eq!(vault.status, VaultStatus::Unlockable);
    let until = vault.access_until.unwrap();
    // One second before the end: allowed. At access_until, before any tick: refused.
    f.env.host.set_time(until - 1_000_000_000);
    let tb = client::transport_key("bob");
    derive(&mut f.env, f.bob, f.v, f.bob_share, &tb).unwrap();
    let at = f.env.now().max(until);
    // Stop at `until` exactly without letting the daily timer run past it first.
    if f.env.now() < at {
        f.env.host.set_time(at);
    }
    let status = f.env.get_vault(f.alice, f.v).unwrap().status;
    let r = derive(&mut f.env, f.bob, f.v, f.bob_share, &tb);
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Expired
        }),
        "vault status {status:?}"
    );
}
