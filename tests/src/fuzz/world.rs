//! The populated canister the fuzzer calls: vaults in several statuses, paid through the host
//! ledger, members joined through invites, items, an open upload, an open payment session,
//! download tickets — and the dictionary of ids, tokens and principals that exist in it.

use candid::Principal;
use livault_backend::model::member_types::{
    GenerateInviteArgs, InviteCreated, RecoveryCodeIssued, Relation, UnlockStatus,
};
use livault_backend::model::records::MemberRole;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::*;

type R<T> = Result<T, VaultError>;

/// Who calls: the fuzzer sends every argument as one of these roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The owner of every populated vault.
    Owner,
    /// Heirs and the witness of the populated vaults.
    Member,
    /// A signed-in principal that owns nothing and belongs nowhere (a fresh one per call).
    Stranger,
    /// The anonymous principal.
    Anonymous,
    /// The canister's admin (exempt from the rate limit).
    Admin,
}

impl Role {
    /// Every role, in report order.
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Member,
        Role::Stranger,
        Role::Anonymous,
        Role::Admin,
    ];

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
            Role::Stranger => "stranger",
            Role::Anonymous => "anonymous",
            Role::Admin => "admin",
        }
    }
}

/// Values that exist in the populated canister, for the generator to pick from.
#[derive(Clone, Debug, Default)]
pub struct Dictionary {
    /// Vault, invite, item, upload, payment session, billing and download ticket ids.
    pub ids: Vec<u64>,
    /// Member ids.
    pub member_ids: Vec<u32>,
    /// Invite tokens (open, claimed, revoked) and recovery codes (active, used).
    pub texts: Vec<String>,
    /// Principals of the world (owner, members, admin, controller, canister, ledger...).
    pub principals: Vec<Principal>,
    /// SHA-256 digests of uploaded payloads and session subaccounts.
    pub blobs: Vec<Vec<u8>>,
    /// Interesting timestamps (ns): now, deadlines, expiries.
    pub times: Vec<u64>,
}

/// The populated canister and what exists in it.
pub struct World {
    pub env: TestEnv,
    pub owner: Principal,
    /// A second owner (one Draft vault), for cross-owner calls.
    pub owner2: Principal,
    /// heir A, heir B, the witness.
    pub members: Vec<Principal>,
    pub dict: Dictionary,
    /// Vault ids by the status they were left in by the setup.
    pub vaults: Vec<(VaultId, VaultStatus)>,
}

fn rules(unlock_after: Option<u64>, inactivity_days: Option<u32>, heirs: u8) -> UnlockRules {
    UnlockRules {
        unlock_after,
        inactivity_days,
        request_wait_days: 7,
        required_heirs: heirs,
        required_witness: false,
    }
}

fn set_rules(env: &mut TestEnv, owner: Principal, v: VaultId, r: UnlockRules) {
    let out: R<VaultView> = env.update(
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(r),
            post_unlock_days: None,
            audit_retention_days: None,
        },),
    );
    out.unwrap_or_else(|e| panic!("world: update_vault({v}) failed: {e:?}"));
}

fn invite(env: &mut TestEnv, owner: Principal, v: VaultId, role: MemberRole) -> InviteCreated {
    let r: R<InviteCreated> = env.update(
        owner,
        "generate_invite",
        (GenerateInviteArgs {
            vault_id: v,
            role,
            name: "invited".into(),
            relation: Relation::Friend,
            email_hint: Some("a***@example.org".into()),
            can_trigger_unlock: true,
            count_as_approver: true,
        },),
    );
    r.unwrap_or_else(|e| panic!("world: generate_invite({v}) failed: {e:?}"))
}

/// Waits out the owner's rate limit (20 updates burst, 1 per second); timers run meanwhile.
fn refill(env: &mut TestEnv) {
    env.advance(std::time::Duration::from_secs(21));
}

impl World {
    /// Builds the populated canister (deterministic: same wasm, same world).
    pub fn build() -> World {
        let mut env = TestEnv::new();
        let owner = user("fuzz-owner");
        let owner2 = user("fuzz-owner-2");
        let heir_a = user("fuzz-heir-a");
        let heir_b = user("fuzz-heir-b");
        let witness = user("fuzz-witness");
        let mut dict = Dictionary::default();
        let mut vaults = Vec::new();
        let mut ids = Vec::new();

        // U: will be Unlockable (time lock a few minutes ahead, one heir approval).
        let u = env.create_vault(owner, "Unlocks soon").id;
        env.pay_creation(owner, u);
        let unlock_at = env.now() + 900 * 1_000_000_000;
        set_rules(&mut env, owner, u, rules(Some(unlock_at), None, 1));
        let u_heir = env.join(owner, u, MemberRole::Heir, heir_a);
        let u_item = env.upload_letter(owner, u, b"letter for heir A", Some(vec![u_heir]));
        let r: R<VaultView> = env.update(owner, "finalize_setup", (u,));
        assert_eq!(r.expect("finalize U").status, VaultStatus::Active);
        dict.times.push(unlock_at);
        ids.extend([u, u_item]);

        refill(&mut env);
        // A: Active with two heirs and the witness, two items, an unlock request open.
        let a = env.create_vault(owner, "Family").id;
        env.pay_creation(owner, a);
        let mut r_a = rules(None, Some(30), 2);
        r_a.required_witness = true;
        set_rules(&mut env, owner, a, r_a);
        let a_h1 = env.join(owner, a, MemberRole::Heir, heir_a);
        let a_h2 = env.join(owner, a, MemberRole::Heir, heir_b);
        let a_w = env.join(owner, a, MemberRole::Witness, witness);
        refill(&mut env);
        let a_item1 = env.upload_letter(owner, a, b"for heir A", Some(vec![a_h1]));
        let a_item2 = env.upload_letter(owner, a, b"for everyone", None);
        let r: R<VaultView> = env.update(owner, "finalize_setup", (a,));
        assert_eq!(r.expect("finalize A").status, VaultStatus::Active);
        let r: R<UnlockStatus> = env.update(heir_b, "trigger_unlock", (a,));
        r.expect("trigger_unlock A opens a request");
        dict.member_ids.extend([u_heir, a_h1, a_h2, a_w]);
        ids.extend([a, a_item1, a_item2]);

        refill(&mut env);
        // S: SetupComplete (rules, one heir, one item; not finalized).
        let s = env.create_vault(owner, "Almost").id;
        env.pay_creation(owner, s);
        set_rules(&mut env, owner, s, rules(None, Some(90), 1));
        let s_h = env.join(owner, s, MemberRole::Heir, heir_b);
        let s_item = env.upload_letter(owner, s, b"ready", None);
        dict.member_ids.push(s_h);
        ids.extend([s, s_item]);

        refill(&mut env);
        // N: NeedSetup with rules, an open and a revoked invite, a recovery code (bypass),
        // an item and two open uploads (one with its first chunk in).
        let n = env.create_vault(owner, "In setup").id;
        env.pay_creation(owner, n);
        let n_unlock = env.now() + 400 * DAY_NS;
        set_rules(&mut env, owner, n, rules(Some(n_unlock), None, 1));
        let open = invite(&mut env, owner, n, MemberRole::Heir);
        let revoked = invite(&mut env, owner, n, MemberRole::Witness);
        let r: R<livault_backend::model::member_types::InviteView> =
            env.update(owner, "revoke_invite", (n, revoked.invite_id));
        r.expect("revoke_invite");
        let code: R<RecoveryCodeIssued> = env.update(owner, "issue_recovery_code", (n, true));
        let code = code.expect("issue_recovery_code").code;
        refill(&mut env);
        let n_item = env.upload_letter(owner, n, b"first item", None);
        let payload = vec![7u8; 3000];
        let up1 = Self::begin(&mut env, owner, n, &payload);
        // A 1 MiB + 10 byte upload with its first (full) chunk in.
        let big: Vec<u8> = (0..(1 << 20) + 10).map(|i| (i % 251) as u8).collect();
        let up2 = Self::begin(&mut env, owner, n, &big);
        let r: R<UploadView> = env.update(
            owner,
            "upload_chunk",
            (up2, 0u32, ByteBuf::from(big[..1 << 20].to_vec())),
        );
        assert_eq!(r.expect("first chunk").next_index, 1);
        dict.texts
            .extend([open.token.clone(), revoked.token.clone(), code]);
        dict.blobs.push(Sha256::digest(&payload).to_vec());
        ids.extend([n, open.invite_id, revoked.invite_id, n_item, up1, up2]);

        refill(&mut env);
        // D: Draft with an open, underpaid payment session.
        let d = env.create_vault(owner, "Unpaid").id;
        let session: R<PaymentSession> =
            env.update(owner, "init_payment", (d, PaymentPurpose::Create));
        let session = session.expect("init_payment D");
        let to = AccountId::from_hex(&session.account_identifier).expect("hex account");
        let wallet = TestEnv::wallet_of(owner);
        env.host
            .fund(AccountId::new(&wallet, None), session.amount_e8s);
        env.host
            .ledger_transfer_as(&wallet, to, session.amount_e8s / 2)
            .expect("partial payment");
        dict.blobs.push(session.subaccount.to_vec());
        dict.texts.push(session.account_identifier.clone());
        dict.texts.push(session.icrc1_account.clone());
        dict.times.push(session.expires_at);
        ids.extend([d, session.id]);

        refill(&mut env);
        // X: deleted (tombstone; a deleted Draft is erased, a paid vault leaves one).
        let x = env.create_vault(owner, "Gone").id;
        env.pay_creation(owner, x);
        let r: R<VaultView> = env.update(owner, "delete_vault", (x,));
        assert_eq!(r.expect("delete X").status, VaultStatus::Deleted);
        ids.push(x);

        refill(&mut env);
        // O: a Draft of another owner, created with an idempotency key.
        let o: R<VaultView> = env.update(
            owner2,
            "create_vault",
            (CreateVaultArgs {
                name: "Other owner".into(),
                plan: PlanSelection {
                    tier: Tier::Basic,
                    heir_slots: 1,
                    witness_slot: false,
                },
                owner_age: 70,
                idempotency_key: Some("fuzz-key".into()),
            },),
        );
        let o = o.expect("create O").id;
        dict.texts.push("fuzz-key".into());
        ids.push(o);

        // The time lock of U opens; heir A's approval unlocks it; download tickets.
        let wait = unlock_at.saturating_sub(env.now()) + 60 * 1_000_000_000;
        env.advance(std::time::Duration::from_nanos(wait));
        let r: R<UnlockStatus> = env.update(heir_a, "approve_unlock", (u,));
        assert_eq!(r.expect("approve U").status, VaultStatus::Unlockable);
        let t1: R<DownloadTicket> = env.update(heir_a, "request_download", (u, u_item));
        let t2: R<DownloadTicket> = env.update(owner, "request_download", (a, a_item1));
        let (t1, t2) = (t1.expect("ticket heir A"), t2.expect("ticket owner"));
        dict.times.push(t1.expires_at);
        ids.extend([t1.ticket_id, t2.ticket_id]);

        for (v, _) in [
            (u, ()),
            (a, ()),
            (s, ()),
            (n, ()),
            (d, ()),
            (x, ()),
            (o, ()),
        ] {
            let st = env
                .get_vault(if v == o { owner2 } else { owner }, v)
                .expect("get_vault")
                .status;
            vaults.push((v, st));
        }
        ids.sort_unstable();
        ids.dedup();
        dict.ids = ids;
        dict.member_ids.sort_unstable();
        dict.member_ids.dedup();
        dict.times.push(env.now());
        dict.principals = vec![
            owner,
            owner2,
            heir_a,
            heir_b,
            witness,
            env.admin,
            env.controller,
            env.canister,
            local_replica::ledger_principal(),
            Principal::anonymous(),
            Principal::management_canister(),
        ];
        World {
            env,
            owner,
            owner2,
            members: vec![heir_a, heir_b, witness],
            dict,
            vaults,
        }
    }

    fn begin(env: &mut TestEnv, owner: Principal, v: VaultId, payload: &[u8]) -> u64 {
        let r: R<UploadView> = env.update(
            owner,
            "begin_upload",
            (BeginUploadArgs {
                vault_id: v,
                kind: ItemKind::File,
                size: payload.len() as u64,
                sha256: ByteBuf::from(Sha256::digest(payload).to_vec()),
                encrypted_meta: ByteBuf::from(vec![1u8; 64]),
                recipients: None,
                replaces: None,
                idempotency_key: None,
            },),
        );
        r.unwrap_or_else(|e| panic!("world: begin_upload({v}) failed: {e:?}"))
            .upload_id
    }
}
