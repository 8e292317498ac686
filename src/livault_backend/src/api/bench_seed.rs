//! Benchmark-only seeding (cargo feature `bench-seed`; never in the shipped wasm).
//!
//! `bench_seed_drafts` creates many `Draft` vaults in one message through the same domain code
//! as `create_vault` (`vaults::create_vault`: validation, pricing, per-owner limit, audit
//! event, owner index, scheduler entries), so a benchmark can seed 100 000 vaults in minutes
//! instead of hours of single ingress messages. Only controllers may call it. The default
//! build (`scripts/build.sh`) does not compile this module; its endpoint check fails if the
//! wasm exports anything outside the `.did` and `candid/hidden_endpoints.txt`, and
//! `scripts/build.sh --bench-seed` builds the bench wasm into `target/livault-bench/`.

use std::future::Future;

use candid::Principal;

use crate::domain::error::{VaultError, VaultResult};
use crate::domain::payments::ledger::{CallFailure, TransferArgs, TransferError};
use crate::domain::types::{CreateVaultArgs, PlanSelection, Tier};
use crate::domain::vaults;
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
