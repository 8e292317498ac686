//! Benchmark-only endpoints (cargo feature `bench-seed`; never in the shipped wasm), for
//! controllers only; tested by `tests/e2e/bench_endpoints.rs`.
//!
//! `bench_seed_drafts` creates many `Draft` vaults in one message through the same domain code
//! as `create_vault` (`vaults::create_vault`: validation, pricing, per-owner limit, audit
//! event, owner index, scheduler entries), so a benchmark can seed 100 000 vaults in minutes
//! instead of hours of single ingress messages. `bench_seed_audit` appends many audit events to
//! one vault through `audit::append` (the path every audit-writing call takes), so a test can
//! bring a vault's log to 65 536+ kept events without 18 hours of rate-limited update calls.
//! `bench_storage_ops` measures the storage
//! structures per operation (`bench_storage`, BENCHMARKS.md "Storage layout 3"). The default
//! build (`scripts/build.sh`) does not compile this module; its endpoint check fails if the
//! wasm exports anything outside the `.did` and `candid/hidden_endpoints.txt`, and
//! `scripts/build.sh --bench-seed` builds the bench wasm into `target/livault-bench/`.

use std::future::Future;

use candid::Principal;

use crate::domain::error::{VaultError, VaultResult};
use crate::domain::payments::ledger::{CallFailure, TransferArgs, TransferError};
use crate::domain::vault_core::audit::{self, AuditAction};
use crate::domain::vaults;
use crate::model::types::{CreateVaultArgs, PlanSelection, Tier};
use crate::runtime::Runtime;

use super::{rt, write};

/// Most drafts one call creates (keeps a call well inside the instruction limit).
pub const MAX_SEED_PER_CALL: u32 = 2_000;
/// Drafts per synthetic owner (the default per-owner limit).
pub const DRAFTS_PER_OWNER: u64 = 20;

/// The synthetic owner of seeded draft number `index`.
pub fn seed_owner(index: u64) -> Principal {
    let mut bytes = b"livault-bench".to_vec();
    bytes.extend_from_slice(&(index / DRAFTS_PER_OWNER).to_be_bytes());
    Principal::from_slice(&bytes)
}

/// A runtime that reports `caller` as the caller and delegates everything else.
struct AsCaller<'a, R: Runtime> {
    inner: &'a R,
    caller: Principal,
}

impl<R: Runtime> Runtime for AsCaller<'_, R> {
    fn now(&self) -> u64 {
        self.inner.now()
    }
    fn caller(&self) -> Principal {
        self.caller
    }
    fn is_controller(&self, p: &Principal) -> bool {
        self.inner.is_controller(p)
    }
    fn cycle_balance(&self) -> u128 {
        self.inner.cycle_balance()
    }
    fn heap_bytes(&self) -> u64 {
        self.inner.heap_bytes()
    }
    fn stable_memory_bytes(&self) -> u64 {
        self.inner.stable_memory_bytes()
    }
    fn random_bytes(&self) -> impl Future<Output = Result<[u8; 32], String>> {
        self.inner.random_bytes()
    }
    fn instruction_counter(&self) -> u64 {
        self.inner.instruction_counter()
    }
    fn call_context_instructions(&self) -> u64 {
        self.inner.call_context_instructions()
    }
    fn canister_id(&self) -> Principal {
        self.inner.canister_id()
    }
    fn ledger_balance(
        &self,
        ledger: Principal,
        account: [u8; 32],
    ) -> impl Future<Output = Result<u64, CallFailure>> {
        self.inner.ledger_balance(ledger, account)
    }
    fn ledger_transfer(
        &self,
        ledger: Principal,
        args: TransferArgs,
    ) -> impl Future<Output = Result<Result<u64, TransferError>, CallFailure>> {
        self.inner.ledger_transfer(ledger, args)
    }
}

/// Controllers, benchmark builds only: creates drafts number `first .. first + count`
/// (Basic plan, one heir slot; owner [`seed_owner`]`(i)`) through `vaults::create_vault`.
/// Returns how many were created; traps (changing nothing) if any creation is refused.
#[ic_cdk::update(hidden = true)]
fn bench_seed_drafts(first: u64, count: u32) -> VaultResult<u32> {
    let rt = rt();
    if !rt.is_controller(&rt.caller()) {
        return Err(VaultError::NotAuthorized);
    }
    if count > MAX_SEED_PER_CALL {
        return Err(VaultError::invalid("count", "too many for one call"));
    }
    write(|s| {
        for i in first..first.saturating_add(u64::from(count)) {
            let as_owner = AsCaller {
                inner: &rt,
                caller: seed_owner(i),
            };
            let args = CreateVaultArgs {
                name: format!("bench {i}"),
                plan: PlanSelection {
                    tier: Tier::Basic,
                    heir_slots: 1,
                    witness_slot: false,
                },
                owner_age: 30,
                idempotency_key: None,
            };
            // A refusal rolls the whole call back (nothing half-seeded).
            if let Err(e) = vaults::create_vault(s, &as_owner, args) {
                ic_cdk::trap(format!("bench_seed_drafts: draft {i}: {e:?}"));
            }
        }
        Ok(count)
    })
}

/// Most audit events one `bench_seed_audit` call appends (~60 000 instructions each: a few
/// hundred million per call, far inside the instruction limit).
pub const MAX_AUDIT_SEED_PER_CALL: u32 = 10_000;

/// Controllers, benchmark builds only: appends `count` events (`vault.settings_changed` by the
/// vault's owner, details `bench_seed_audit`, at the current time) to the log of vault
/// `vault_id` through `audit::append`, exactly as an owner's `update_vault` would, and stores
/// the vault's new chain head. Returns the vault's next audit seq.
#[ic_cdk::update(hidden = true)]
fn bench_seed_audit(vault_id: u64, count: u32) -> VaultResult<u64> {
    let rt = rt();
    if !rt.is_controller(&rt.caller()) {
        return Err(VaultError::NotAuthorized);
    }
    if count > MAX_AUDIT_SEED_PER_CALL {
        return Err(VaultError::invalid("count", "too many for one call"));
    }
    let now = rt.now();
    write(|s| {
        let mut vault = s.vaults.load(vault_id).ok_or(VaultError::NotFound)?;
        for _ in 0..count {
            let owner = vault.owner;
            audit::append(
                s,
                &mut vault,
                now,
                owner,
                AuditAction::SettingsChanged,
                "bench_seed_audit".into(),
            );
        }
        let next = vault.audit_next_seq;
        s.save_vault(&mut vault);
        Ok(next)
    })
}

/// Operations averaged per measurement in [`bench_storage_ops`].
const OPS: u64 = 20;

/// Controllers, benchmark builds only: instructions per operation of the B-tree structures
/// of storage layout 2 and their layout-3 replacements, each holding `n` records (a copy of
/// vault 1 and its first audit event; seed vaults first). Every structure is built here over
/// its own heap `VectorMemory`, so the canister's state is never touched and both sides pay
/// the same memory cost; rows prefixed `stable` measure the canister's own layout-3 tables
/// on stable memory (a read, and a rewrite of the same record). Returns `(metric, value)`.
#[ic_cdk::update(hidden = true)]
fn bench_storage_ops(n: u64) -> VaultResult<Vec<(String, u64)>> {
    use crate::model::records::{AuditEvent, VaultRecord};
    use crate::storage::audit_log::AuditLog;
    use crate::storage::due_queue::DueQueue;
    use crate::storage::slab::{DenseTable, Slab};
    use ic_stable_structures::{StableBTreeMap, VectorMemory};
    use std::hint::black_box;
    use std::rc::Rc;

    let rt = rt();
    if !rt.is_controller(&rt.caller()) {
        return Err(VaultError::NotAuthorized);
    }
    // 20 000 keeps building the layout-2 trees inside one message's instruction limit.
    if !(OPS..=20_000).contains(&n) {
        return Err(VaultError::invalid("n", "between 20 and 20000"));
    }
    let (vault, event) = write(|s| (s.vaults.get(&1), s.audit.first(1)));
    let (Some(vault), Some(event)) = (vault, event) else {
        return Err(VaultError::invalid("n", "seed at least one vault first"));
    };
    let counter = || ic_cdk::api::performance_counter(0);
    let mut out: Vec<(String, u64)> = vec![("records".into(), n)];
    // Mean instructions of `op(0..ops)`.
    let mut measure_n = |name: &str, ops: u64, mut op: Box<dyn FnMut(u64) + '_>| {
        let start = counter();
        for i in 0..ops {
            op(i);
        }
        out.push((name.into(), (counter() - start) / ops));
    };
    // Keys spread over the whole map.
    let spread = move |i: u64| (i * 7_919) % n;

    // Vault table: B-tree vs dense table.
    let mut tree: StableBTreeMap<u64, VaultRecord, _> =
        StableBTreeMap::init(VectorMemory::default());
    let slab = Rc::new(Slab::init(VectorMemory::default()));
    let mut dense: DenseTable<VaultRecord, _> = DenseTable::init(VectorMemory::default(), slab);
    for id in 0..n {
        tree.insert(id, vault.clone());
        dense.insert(id, vault.clone());
    }
    measure_n(
        "btree vault get",
        OPS,
        Box::new(|i| {
            black_box(tree.get(&spread(i)));
        }),
    );
    measure_n(
        "dense vault get",
        OPS,
        Box::new(|i| {
            black_box(dense.get(&spread(i)));
        }),
    );
    let v = vault.clone();
    measure_n(
        "btree vault insert (overwrite)",
        OPS,
        Box::new(move |i| {
            black_box(tree.insert(spread(i), v.clone()));
        }),
    );
    let v = vault.clone();
    measure_n(
        "dense vault insert (overwrite)",
        OPS,
        Box::new(move |i| {
            dense.insert(spread(i), v.clone());
        }),
    );

    // Scheduler queue (two entries per vault): B-tree vs slots + heap index; the due entries
    // are the front ones.
    let mut qtree: StableBTreeMap<(u64, u8, u64), u32, _> =
        StableBTreeMap::init(VectorMemory::default());
    let mut queue = DueQueue::init(VectorMemory::default());
    for id in 0..n {
        for (due, kind) in [(id, 1u8), (n + id, 7)] {
            qtree.insert((due, kind, id), 0);
            queue.insert((due, kind, id), 0);
        }
    }
    measure_n(
        "btree queue remove (front)",
        OPS,
        Box::new(|i| {
            black_box(qtree.remove(&(i, 1, i)));
        }),
    );
    measure_n(
        "dense queue remove (front)",
        OPS,
        Box::new(|i| {
            black_box(queue.remove(&(i, 1, i)));
        }),
    );
    measure_n(
        "btree queue insert",
        OPS,
        Box::new(|i| {
            black_box(qtree.insert((3 * n + i, 1, i), 0));
        }),
    );
    measure_n(
        "dense queue insert",
        OPS,
        Box::new(|i| {
            black_box(queue.insert((3 * n + i, 1, i), 0));
        }),
    );

    // Audit log (one event per vault, the next one appended): B-tree vs per-vault index.
    let mut atree: StableBTreeMap<(u64, u64), AuditEvent, _> =
        StableBTreeMap::init(VectorMemory::default());
    let mut log = AuditLog::init(
        VectorMemory::default(),
        Rc::new(Slab::init(VectorMemory::default())),
    );
    let at = |seq: u64| AuditEvent {
        seq,
        ..event.clone()
    };
    for id in 0..n {
        atree.insert((id, 0), at(0));
        log.append(id, &at(0));
    }
    measure_n(
        "btree audit append",
        OPS,
        Box::new(|i| {
            black_box(atree.insert((spread(i), 1), at(1)));
        }),
    );
    measure_n(
        "dense audit append",
        OPS,
        Box::new(|i| {
            log.append(spread(i), &at(1));
        }),
    );
    // One vault whose log holds n events: appends (every index move or page start
    // included), reads, and compaction batches (up to 100, as the scheduler's).
    let big = n;
    measure_n(
        "dense audit append, 1 vault (mean of n)",
        n,
        Box::new(|seq| log.append(big, &at(seq))),
    );
    measure_n(
        "dense audit get, 1 vault of n",
        OPS,
        Box::new(|i| {
            black_box(log.get(big, spread(i)));
        }),
    );
    // A compaction run drops min(100, n / 40): at most half the log goes over the 20 runs.
    let k = 100.min(n / (2 * OPS));
    measure_n(
        "dense audit compaction run, 1 vault of n",
        OPS,
        Box::new(|i| {
            black_box(log.drop_before(big, k * (i + 1)));
        }),
    );

    // The canister's own tables on stable memory.
    let ids: Vec<u64> = write(|s| {
        s.vaults
            .range_from(1)
            .take(OPS as usize)
            .map(|(id, _)| id)
            .collect()
    });
    let count = ids.len() as u64;
    let start = counter();
    let records: Vec<crate::storage::LoadedVault> =
        write(|s| ids.iter().filter_map(|id| s.vaults.load(*id)).collect());
    out.push(("stable dense vault get".into(), (counter() - start) / count));
    let start = counter();
    write(|s| {
        for mut r in records {
            s.save_vault(&mut r);
        }
    });
    out.push((
        "stable dense vault insert (same record)".into(),
        (counter() - start) / count,
    ));
    Ok(out)
}

fn read_view(rt: &impl Runtime, vault_id: u64) -> VaultResult<crate::model::types::VaultView> {
    super::read(|s| vaults::get_vault(s, rt, vault_id))
}

// A one-case error type: the smallest `Err` a reply variant can carry (the floor the
// per-endpoint error types are compared against in [`bench_reply_parts`]).
#[derive(candid::CandidType)]
enum TinyError {
    NotFound,
}

/// Controllers, benchmark builds only: where the instructions of the metadata queries go
/// (BENCHMARKS.md "Endpoint costs"). For `get_vault`, `list_my_vaults` and
/// `get_unlock_status` of vault `vault_id` as seen by `viewer`, and for the `VaultView` reply
/// `update_vault` and `check_in` share, it measures with the performance counter: the argument
/// guard (`arguments::check`), decoding the argument, the domain call, encoding the reply as
/// the endpoint's reply type (`encode_one`, first time in the message and again), and encoding
/// the same value with a one-case error type instead. Reads only; returns `(metric, value)`.
#[ic_cdk::update(hidden = true)]
fn bench_reply_parts(vault_id: u64, viewer: Principal) -> VaultResult<Vec<(String, u64)>> {
    use crate::domain::unlock;
    use crate::model::types::PageArgs;
    use std::hint::black_box;

    let rt = rt();
    if !rt.is_controller(&rt.caller()) {
        return Err(VaultError::NotAuthorized);
    }
    let as_viewer = AsCaller {
        inner: &rt,
        caller: viewer,
    };
    let counter = || ic_cdk::api::performance_counter(0);
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut measure = |name: String, f: &mut dyn FnMut()| {
        let start = counter();
        f();
        out.push((name, counter() - start));
    };

    /// Guard, decode, domain, encode (twice) and encode with [`TinyError`] of one endpoint.
    macro_rules! parts {
        ($method:literal, $arg:expr, $argty:ty, $call:expr, $reply:ty) => {{
            let arg = candid::encode_one($arg).expect("encode bench argument");
            measure(format!("{} guard", $method), &mut || {
                black_box(super::arguments::check($method, &arg)).expect("within limits");
            });
            measure(format!("{} decode", $method), &mut || {
                black_box(candid::decode_one::<$argty>(&arg).expect("decode"));
            });
            let mut result = None;
            measure(format!("{} domain", $method), &mut || {
                result = Some(super::read(|s| $call(s)));
            });
            let result: $reply = super::errors::public($method, result.expect("ran"));
            for n in ["encode", "encode again"] {
                measure(format!("{} {n}", $method), &mut || {
                    black_box(candid::encode_one(&result).expect("encode"));
                });
            }
            // The encoding's parts: the type description (`ty()`, its doc tables included),
            // the type table built from it, and the value bytes.
            let mut ty = None;
            measure(format!("{} encode: type", $method), &mut || {
                candid::types::internal::env_clear();
                ty = Some(<$reply as candid::CandidType>::ty());
            });
            let ty = ty.expect("ran");
            measure(format!("{} encode: type table", $method), &mut || {
                let mut table = candid::ser::TypeSerialize::new();
                table.push_type(&ty).expect("type table");
                table.serialize().expect("type table");
                black_box(table.get_result().len());
            });
            measure(format!("{} encode: value", $method), &mut || {
                let mut values = candid::ser::ValueSerializer::new();
                candid::CandidType::idl_serialize(&result, &mut values).expect("value");
                black_box(values.get_result().len());
            });
            let tiny = result.as_ref().map_err(|_| TinyError::NotFound);
            measure(format!("{} encode tiny error", $method), &mut || {
                black_box(candid::encode_one(&tiny).expect("encode"));
            });
        }};
    }
    parts!(
        "get_vault",
        vault_id,
        u64,
        |s| vaults::get_vault(s, &as_viewer, vault_id),
        crate::api::vaults::GetVaultReply
    );
    parts!(
        "list_my_vaults",
        PageArgs::default(),
        PageArgs,
        |s| vaults::list_my_vaults(s, &as_viewer, PageArgs::default()),
        crate::api::vaults::ListMyVaultsReply
    );
    parts!(
        "get_unlock_status",
        vault_id,
        u64,
        |s| unlock::get_unlock_status(s, &as_viewer, vault_id),
        crate::api::members::GetUnlockStatusReply
    );
    // The reply of update_vault, check_in and create_vault (a `VaultView`): encoding only.
    let view: crate::api::vaults::UpdateVaultReply =
        super::errors::public("update_vault", read_view(&as_viewer, vault_id));
    for n in ["encode", "encode again"] {
        measure(format!("update_vault {n}"), &mut || {
            black_box(candid::encode_one(&view).expect("encode"));
        });
    }
    let tiny = view.as_ref().map_err(|_| TinyError::NotFound);
    measure("update_vault encode tiny error".into(), &mut || {
        black_box(candid::encode_one(&tiny).expect("encode"));
    });
    Ok(out)
}
