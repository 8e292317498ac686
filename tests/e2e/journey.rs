//! The whole SPEC journey on the compiled wasm, across features: payment on the ledger
//! model, invites and claims, an upload addressed to one heir, finalize, inactivity, an
//! unlock request with its wait, approvals, `Unlockable`, heir downloads — with the
//! maintenance timer firing on the host's clock (once a day here). Also: a pure time lock
//! unlocked by a timer tick, a payment confirmed by the scheduler without `verify_payment`,
//! and owner check-in cancelling an open request.

use candid::Principal;
use livault_backend::model::config::Durations;
use livault_backend::model::member_types::*;
use livault_backend::model::records::MemberRole;
use livault_tests::*;
use serde_bytes::ByteBuf;

type R<T> = Result<T, VaultError>;

/// A canister whose maintenance timer fires once a day.
fn env() -> TestEnv {
    TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: 86_400,
            ..Durations::default()
        }),
        ..Default::default()
    })
}

fn set_rules(env: &mut TestEnv, owner: Principal, v: VaultId, rules: UnlockRules) {
    let r: R<VaultView> = env.update(
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(rules),
            post_unlock_days: Some(30),
            audit_retention_days: None,
        },),
    );
    r.expect("update_vault");
}

fn status(env: &mut TestEnv, who: Principal, v: VaultId) -> UnlockStatus {
    env.query::<_, R<UnlockStatus>>(who, "get_unlock_status", (v,))
        .expect("get_unlock_status")
}

/// An `Active` vault with two heirs and a witness, and one letter addressed to heir 1.
struct Journey {
    env: TestEnv,
    owner: Principal,
    heir1: Principal,
    heir2: Principal,
    witness: Principal,
    vault: VaultId,
    item: u64,
    letter: Vec<u8>,
}

fn active_vault(rules: UnlockRules) -> Journey {
    let mut env = env();
    let (owner, heir1, heir2, witness) =
        (user("owner"), user("heir1"), user("heir2"), user("witness"));
    let v = env.create_vault(owner, "Family").id;
    assert_eq!(env.pay_creation(owner, v).status, VaultStatus::NeedSetup);
    set_rules(&mut env, owner, v, rules);
    let h1 = env.join(owner, v, MemberRole::Heir, heir1);
    env.join(owner, v, MemberRole::Heir, heir2);
    env.join(owner, v, MemberRole::Witness, witness);
    assert_eq!(
        env.get_vault(owner, v).unwrap().setup_missing,
        vec!["content".to_string()]
    );
    let letter = b"ciphertext of a letter for heir 1".to_vec();
    let item = env.upload_letter(owner, v, &letter, Some(vec![h1]));
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::SetupComplete
    );
    let r: R<VaultView> = env.update(owner, "finalize_setup", (v,));
    assert_eq!(r.unwrap().status, VaultStatus::Active);
    Journey {
        env,
        owner,
        heir1,
        heir2,
        witness,
        vault: v,
        item,
        letter,
    }
}

fn inactivity_rules() -> UnlockRules {
    UnlockRules {
        unlock_after: None,
        inactivity_days: Some(30),
        request_wait_days: 7,
        required_heirs: 2,
        required_witness: false,
    }
}

#[test]
fn journey_from_payment_to_heir_download() {
    let mut j = active_vault(inactivity_rules());
    let (owner, h1, h2, w, v) = (j.owner, j.heir1, j.heir2, j.witness, j.vault);

    // Before the time gate: approvals are refused with what is missing, heirs see nothing.
    let r: R<UnlockStatus> = j.env.update(h1, "approve_unlock", (v,));
    assert!(
        matches!(
            r,
            Err(VaultError::UnlockConditionsNotMet {
                time_gate_opens_at: Some(_),
                ..
            })
        ),
        "{r:?}"
    );
    let r: R<DownloadTicket> = j.env.update(h1, "request_download", (v, j.item));
    assert_eq!(r, Err(VaultError::NotAuthorized));
    for who in [owner, h1, h2, w] {
        let s = status(&mut j.env, who, v);
        assert!(!s.time_gate.holds);
        assert_eq!((s.heir_approvals, s.heirs_required), (0, 2));
    }

    // 31 days without owner activity: the time gate holds (timers ran meanwhile).
    j.env.advance_days(31);
    assert!(status(&mut j.env, h2, v).time_gate.holds);
    let r: R<UnlockStatus> = j.env.update(h1, "approve_unlock", (v,));
    let s = r.unwrap();
    assert_eq!(
        (s.heir_approvals, s.heirs_required, s.status),
        (1, 2, VaultStatus::Active)
    );
    // The witness's approval does not replace a heir's.
    let r: R<UnlockStatus> = j.env.update(w, "approve_unlock", (v,));
    assert_eq!(r.unwrap().status, VaultStatus::Active);
    // The second heir completes the quorum: Unlockable at once.
    let r: R<UnlockStatus> = j.env.update(h2, "approve_unlock", (v,));
    let s = r.unwrap();
    assert_eq!(s.status, VaultStatus::Unlockable);
    let vault = j.env.get_vault(owner, v).unwrap();
    assert_eq!(vault.status, VaultStatus::Unlockable);
    assert_eq!(
        vault.access_until,
        vault.unlocked_at.map(|t| t + 30 * DAY_NS)
    );

    // Heir 1 downloads the letter addressed to them: identical bytes.
    let t: DownloadTicket = j
        .env
        .update::<_, R<DownloadTicket>>(h1, "request_download", (v, j.item))
        .unwrap();
    let chunk: ByteBuf = j
        .env
        .query::<_, R<ByteBuf>>(h1, "get_download_chunk", (t.ticket_id, 0u32))
        .unwrap();
    assert_eq!(chunk.into_vec(), j.letter);
    // Heir 2 was not addressed; the witness never downloads.
    let items: Page<ItemView> = j
        .env
        .query::<_, R<Page<ItemView>>>(h2, "list_items", (v, PageArgs::default()))
        .unwrap();
    assert!(items.items.is_empty());
    let r: R<DownloadTicket> = j.env.update(h2, "request_download", (v, j.item));
    assert!(r.is_err());
    let r: R<DownloadTicket> = j.env.update(w, "request_download", (v, j.item));
    assert_eq!(r, Err(VaultError::NotAuthorized));

    // The access window ends on a timer tick: Expired, payload purged.
    j.env.advance_days(31);
    let vault = j.env.get_vault(owner, v).unwrap();
    assert_eq!(vault.status, VaultStatus::Expired);
    assert_eq!((vault.item_count, vault.storage_used_bytes), (0, 0));
}

#[test]
fn pure_time_lock_unlocks_on_a_timer_tick() {
    let now = env().now();
    let mut j = active_vault(UnlockRules {
        unlock_after: Some(now + 10 * DAY_NS),
        inactivity_days: None,
        request_wait_days: 7,
        required_heirs: 0,
        required_witness: false,
    });
    let (owner, v) = (j.owner, j.vault);
    j.env.advance_days(9);
    assert_eq!(
        j.env.get_vault(owner, v).unwrap().status,
        VaultStatus::Active
    );
    // Nobody calls anything: the maintenance timer unlocks at the date.
    j.env.advance_days(2);
    let vault = j.env.get_vault(owner, v).unwrap();
    assert_eq!(vault.status, VaultStatus::Unlockable);
    let log = j.env.audit_log(owner, v);
    let unlocked = log
        .iter()
        .find(|e| e.action == "unlock.completed")
        .expect("unlock audited");
    assert_eq!(unlocked.actor, j.env.canister, "the scheduler unlocked it");
}

#[test]
fn owner_check_in_cancels_an_open_request_and_clears_approvals() {
    let mut j = active_vault(UnlockRules {
        required_heirs: 2,
        ..inactivity_rules()
    });
    let (owner, h1, v) = (j.owner, j.heir1, j.vault);
    j.env.advance_days(31);
    let r: R<UnlockStatus> = j.env.update(h1, "trigger_unlock", (v,));
    assert!(r.unwrap().request.is_some());
    let r: R<UnlockStatus> = j.env.update(h1, "approve_unlock", (v,));
    assert_eq!(r.unwrap().heir_approvals, 1);
    let r: R<VaultView> = j.env.update(owner, "check_in", (v,));
    r.unwrap();
    let s = status(&mut j.env, h1, v);
    assert!(s.request.is_none());
    assert_eq!(s.heir_approvals, 0);
    assert!(
        !s.time_gate.holds,
        "check-in restarted the inactivity clock"
    );
}

#[test]
fn the_scheduler_confirms_a_payment_nobody_verified() {
    let mut env = env();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    let session: PaymentSession = env
        .update::<_, R<PaymentSession>>(owner, "init_payment", (v, PaymentPurpose::Create))
        .unwrap();
    let wallet = TestEnv::wallet_of(owner);
    env.host.fund(
        local_replica::AccountId::new(&wallet, None),
        session.amount_e8s + 10_000,
    );
    let to = local_replica::AccountId::from_hex(&session.account_identifier).unwrap();
    env.host
        .ledger_transfer_as(&wallet, to, session.amount_e8s)
        .expect("wallet transfer");
    assert_eq!(env.get_vault(owner, v).unwrap().status, VaultStatus::Draft);
    // The next maintenance tick checks the open session's balance.
    env.advance_days(1);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::NeedSetup
    );
    let s: PaymentSession = env
        .query::<_, R<PaymentSession>>(owner, "get_payment_session", (session.id,))
        .unwrap();
    assert_eq!(s.status, PaymentSessionStatus::Completed);
}

/// Every authenticated owner update is activity (SPEC §4): an upload cancels an open request.
#[test]
fn owner_upload_counts_as_activity_and_cancels_an_open_request() {
    let mut j = active_vault(inactivity_rules());
    let (owner, h1, v) = (j.owner, j.heir1, j.vault);
    j.env.advance_days(31);
    let r: R<UnlockStatus> = j.env.update(h1, "trigger_unlock", (v,));
    assert!(r.unwrap().request.is_some());
    let r: R<UnlockStatus> = j.env.update(h1, "approve_unlock", (v,));
    assert_eq!(r.unwrap().heir_approvals, 1);
    j.env.upload_letter(owner, v, b"another letter", None);
    let s = status(&mut j.env, h1, v);
    assert!(s.request.is_none());
    assert_eq!(s.heir_approvals, 0);
    assert!(!s.time_gate.holds);
}
