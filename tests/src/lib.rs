//! Shared helpers for the end-to-end tests: the compiled LiVault wasm on the embedded host.
//!
//! The wasm is built by `scripts/build.sh` (which `scripts/test.sh` runs first) and read once
//! per test binary. Set `LIVAULT_WASM` to test another artifact.

pub mod interleave;

/// The vetKeys client of the tests and the demo (docs/keys.md).
pub use livault_local::vetkeys_client as client;

pub mod attack;
pub mod legacy_image;
pub mod soak;
pub mod stable_usage;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use local_replica::{CallError, CallKind, Host, HostConfig, Reject};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub mod model;
pub mod model_run;

pub use livault_backend::domain::error::VaultError;
pub use livault_backend::model::config::{
    Account, Durations, InitArgs, LiVaultArgs, Limits, Pricing, UpgradeArgs,
};
pub use livault_backend::model::payments::*;
pub use livault_backend::model::types::*;
pub use local_replica::AccountId;

/// The ICP ledger fee (e8s).
pub const LEDGER_FEE: u64 = 10_000;

/// Nanoseconds per day.
pub const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// Path of the canister wasm under test.
pub fn wasm_path() -> PathBuf {
    match std::env::var_os("LIVAULT_WASM") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/livault/livault_backend.wasm")
        }
    }
}

/// The canister wasm, read once per test binary.
pub fn wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let path = wasm_path();
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read the canister wasm at {}: {e}.\n\
                 Build it first with `scripts/build.sh` (scripts/test.sh does this), \
                 or point LIVAULT_WASM at a built wasm.",
                path.display()
            )
        })
    })
}

/// The benchmark wasm (`scripts/build.sh --bench-seed`, which `scripts/test.sh` runs): the
/// canister plus the benchmark-only endpoints. Read once per test binary.
pub fn bench_wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/livault-bench/livault_backend.wasm");
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read the benchmark wasm at {}: {e}.\n\
                 Build it first with `scripts/build.sh --bench-seed` (scripts/test.sh does this).",
                path.display()
            )
        })
    })
}

/// A deterministic non-anonymous principal for a test identity (self-authenticating form).
pub fn user(name: &str) -> Principal {
    let hash = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 29];
    bytes[..28].copy_from_slice(&hash[..28]);
    bytes[28] = 0x02;
    Principal::from_slice(&bytes)
}

/// A running LiVault canister with well-known identities.
pub struct TestEnv {
    pub host: Host,
    pub canister: Principal,
    /// Installs and upgrades the canister.
    pub controller: Principal,
    /// Named in the init args as the only admin.
    pub admin: Principal,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// Installs the canister with `admin` as admin and the host's ledger as ledger.
    pub fn new() -> Self {
        let admin = user("admin");
        Self::with_init(InitArgs {
            admins: vec![admin],
            ledger_canister_id: Some(local_replica::ledger_principal()),
            ..Default::default()
        })
    }

    /// [`TestEnv::new`] whose maintenance timer does not fire within a test (a year): ticks
    /// run only through [`TestEnv::run_maintenance`].
    pub fn with_manual_ticks() -> Self {
        Self::with_init(manual_ticks_args())
    }

    /// Installs the canister with these init args.
    pub fn with_init(args: InitArgs) -> Self {
        Self::with_wasm(wasm(), args)
    }

    /// Installs `wasm` (e.g. [`bench_wasm`]) with these init args.
    pub fn with_wasm(wasm: &[u8], args: InitArgs) -> Self {
        let controller = user("controller");
        let admin = args.admins.first().copied().unwrap_or(controller);
        let mut host = Host::new(HostConfig::default());
        let arg = candid::encode_one(Some(LiVaultArgs::Init(args))).expect("encode init args");
        let canister = host
            .install(wasm, arg, controller)
            .unwrap_or_else(|e| panic!("install failed: {e}"));
        TestEnv {
            host,
            canister,
            controller,
            admin,
        }
    }

    /// Update call; a reject (trap, inspect refusal) is returned as `Err`.
    pub fn try_update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> Result<R, Reject> {
        self.try_call(CallKind::Update, who, method, args)
    }

    /// A typed call of the host's typed call API: a reject is `Err`, a Candid failure (the
    /// arguments do not encode, the reply does not decode) a panic.
    fn try_call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        kind: CallKind,
        who: Principal,
        method: &str,
        args: A,
    ) -> Result<R, Reject> {
        match self.host.call_typed(kind, who, method, args) {
            Ok(typed) => Ok(typed.value),
            Err(CallError::Reject(r)) => Err(r),
            Err(e) => panic!("{e}"),
        }
    }

    /// Update call that must not be rejected by the system.
    pub fn update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> R {
        self.try_update(who, method, args)
            .unwrap_or_else(|r| panic!("{method} was rejected: {r:?}"))
    }

    /// Query call; a reject is returned as `Err`.
    pub fn try_query<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> Result<R, Reject> {
        self.try_call(CallKind::Query, who, method, args)
    }

    /// Query call that must not be rejected by the system.
    pub fn query<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> R {
        self.try_query(who, method, args)
            .unwrap_or_else(|r| panic!("{method} was rejected: {r:?}"))
    }

    /// Upgrades to the same wasm with `args`.
    pub fn upgrade(&mut self, args: Option<LiVaultArgs>) -> Result<(), String> {
        let arg = candid::encode_one(args).expect("encode upgrade args");
        self.host.upgrade(wasm(), arg).map_err(|e| e.to_string())
    }

    /// Moves the clock forward (timers due on the way run).
    pub fn advance(&mut self, d: Duration) {
        self.host.advance_time(d);
    }

    /// `run_maintenance` as the admin: the tick's report and the instructions the host
    /// counted for the message.
    pub fn run_maintenance(&mut self) -> (TickReport, u64) {
        let arg = candid::encode_args(()).expect("encode");
        let reply = self
            .host
            .update(self.admin, "run_maintenance", arg)
            .unwrap_or_else(|e| panic!("run_maintenance was rejected: {e:?}"));
        let r: Result<TickReport, VaultError> =
            candid::decode_one(&reply.bytes).expect("decode run_maintenance");
        (r.expect("run_maintenance"), reply.instructions)
    }

    /// Moves the clock forward by whole days.
    pub fn advance_days(&mut self, days: u64) {
        self.advance(Duration::from_nanos(days * DAY_NS));
    }

    /// Current host time (ns).
    pub fn now(&self) -> u64 {
        self.host.now()
    }

    // ------------------------------------------------------------ LiVault shortcuts

    /// `create_vault` with a default Standard plan.
    pub fn create_vault(&mut self, owner: Principal, name: &str) -> VaultView {
        self.update::<_, Result<VaultView, VaultError>>(
            owner,
            "create_vault",
            (CreateVaultArgs {
                name: name.to_string(),
                plan: PlanSelection {
                    tier: Tier::Standard,
                    heir_slots: 2,
                    witness_slot: true,
                },
                owner_age: 45,
                idempotency_key: None,
            },),
        )
        .expect("create_vault")
    }

    /// `get_vault` as `who`.
    pub fn get_vault(&mut self, who: Principal, id: VaultId) -> Result<VaultView, VaultError> {
        self.query(who, "get_vault", (id,))
    }

    /// The wallet principal that pays for `owner` in tests: `user("wallet-" + owner text)`.
    pub fn wallet_of(owner: Principal) -> Principal {
        user(&format!("wallet-{}", owner.to_text()))
    }

    /// Pays the creation of `vault_id` as a wallet would: funds the owner's wallet on the
    /// host ledger, `init_payment(vault_id, Create)`, transfers the session amount to the
    /// session's hex account identifier, `verify_payment`. Returns the vault (now
    /// `NeedSetup`). Panics with a clear message on any failure.
    pub fn pay_creation(&mut self, owner: Principal, vault_id: VaultId) -> VaultView {
        let session: PaymentSession = self
            .update::<_, Result<PaymentSession, VaultError>>(
                owner,
                "init_payment",
                (vault_id, PaymentPurpose::Create),
            )
            .unwrap_or_else(|e| panic!("pay_creation: init_payment({vault_id}) failed: {e:?}"));
        let wallet = Self::wallet_of(owner);
        self.host.fund(
            AccountId::new(&wallet, None),
            session.amount_e8s + LEDGER_FEE,
        );
        let to = AccountId::from_hex(&session.account_identifier).unwrap_or_else(|e| {
            panic!(
                "pay_creation: bad account identifier {:?}: {e}",
                session.account_identifier
            )
        });
        self.host
            .ledger_transfer_as(&wallet, to, session.amount_e8s)
            .unwrap_or_else(|e| panic!("pay_creation: wallet transfer failed: {e:?}"));
        let receipt: PaymentReceipt = self
            .update::<_, Result<PaymentReceipt, VaultError>>(owner, "verify_payment", (session.id,))
            .unwrap_or_else(|e| {
                panic!(
                    "pay_creation: verify_payment(session {}) failed: {e:?}",
                    session.id
                )
            });
        assert_eq!(
            receipt.vault_status,
            VaultStatus::NeedSetup,
            "pay_creation: vault {vault_id} did not reach NeedSetup"
        );
        self.get_vault(owner, vault_id)
            .unwrap_or_else(|e| panic!("pay_creation: get_vault({vault_id}) failed: {e:?}"))
    }

    /// Uploads `payload` as a one-chunk `Letter` into `vault_id` (`begin_upload`,
    /// `upload_chunk`, `finish_upload`) addressed to `recipients` (`None` = every heir).
    /// Returns the item id. Panics with a clear message on any failure.
    pub fn upload_letter(
        &mut self,
        owner: Principal,
        vault_id: VaultId,
        payload: &[u8],
        recipients: Option<Vec<u32>>,
    ) -> u64 {
        self.upload_letter_with_meta(
            owner,
            vault_id,
            payload,
            b"encrypted title".to_vec(),
            recipients,
        )
    }

    /// [`TestEnv::upload_letter`] with `encrypted_meta` (e.g. a vetKeys envelope).
    pub fn upload_letter_with_meta(
        &mut self,
        owner: Principal,
        vault_id: VaultId,
        payload: &[u8],
        encrypted_meta: Vec<u8>,
        recipients: Option<Vec<u32>>,
    ) -> u64 {
        let args = BeginUploadArgs {
            vault_id,
            kind: ItemKind::Letter,
            size: payload.len() as u64,
            sha256: serde_bytes::ByteBuf::from(Sha256::digest(payload).to_vec()),
            encrypted_meta: serde_bytes::ByteBuf::from(encrypted_meta),
            recipients,
            replaces: None,
            idempotency_key: None,
        };
        let up: UploadView = self
            .update::<_, Result<UploadView, VaultError>>(owner, "begin_upload", (args,))
            .unwrap_or_else(|e| panic!("upload_letter: begin_upload failed: {e:?}"));
        self.update::<_, Result<UploadView, VaultError>>(
            owner,
            "upload_chunk",
            (
                up.upload_id,
                0u32,
                serde_bytes::ByteBuf::from(payload.to_vec()),
            ),
        )
        .unwrap_or_else(|e| panic!("upload_letter: upload_chunk failed: {e:?}"));
        let item: ItemView = self
            .update::<_, Result<ItemView, VaultError>>(owner, "finish_upload", (up.upload_id,))
            .unwrap_or_else(|e| panic!("upload_letter: finish_upload failed: {e:?}"));
        item.item_id
    }

    /// Makes `who` a member of `vault_id` with `role` (the owner generates an invite, `who`
    /// claims it; may trigger unlock, counts as approver). Returns the member id. Panics with
    /// a clear message on any refusal.
    pub fn join(
        &mut self,
        owner: Principal,
        vault_id: VaultId,
        role: livault_backend::model::records::MemberRole,
        who: Principal,
    ) -> u32 {
        use livault_backend::model::member_types::{
            GenerateInviteArgs, InviteCreated, MemberView, Relation,
        };
        let args = GenerateInviteArgs {
            vault_id,
            role,
            name: "m".into(),
            relation: Relation::Daughter,
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
        };
        let inv: InviteCreated = self
            .update::<_, Result<InviteCreated, VaultError>>(owner, "generate_invite", (args,))
            .unwrap_or_else(|e| panic!("join: generate_invite failed: {e:?}"));
        let m: MemberView = self
            .update::<_, Result<MemberView, VaultError>>(who, "claim_invite", (inv.token,))
            .unwrap_or_else(|e| panic!("join: claim_invite failed: {e:?}"));
        m.member_id
    }

    /// The whole audit log of `vault_id` as `who` sees it, oldest first (every page of
    /// `get_audit_log`). Panics with a clear message if the call is refused.
    pub fn audit_log(&mut self, who: Principal, vault_id: VaultId) -> Vec<AuditEventView> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page: Page<AuditEventView> = self
                .query::<_, Result<Page<AuditEventView>, VaultError>>(
                    who,
                    "get_audit_log",
                    (
                        vault_id,
                        PageArgs {
                            start_after: cursor,
                            limit: Some(100),
                        },
                    ),
                )
                .unwrap_or_else(|e| panic!("audit_log: get_audit_log failed: {e:?}"));
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }
}

pub mod fuzz;

/// Init arguments whose maintenance timer does not fire within a test (a year): ticks run
/// only by hand ([`TestEnv::with_manual_ticks`]; with another module, `TestEnv::with_wasm`).
pub fn manual_ticks_args() -> InitArgs {
    InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: 365 * 86_400,
            ..Durations::default()
        }),
        ..Default::default()
    }
}
