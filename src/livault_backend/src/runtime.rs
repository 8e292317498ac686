//! The small runtime interface the domain needs from the Internet Computer.
//!
//! The domain never calls `ic_cdk` directly: it asks a [`Runtime`] for the time, the caller,
//! controller status, randomness and ICP ledger calls. [`IcRuntime`] implements it on the IC;
//! tests use [`testing::MockRuntime`] (with an in-memory ledger and fault injection). Timers
//! join this trait with the scheduler feature.

use std::future::Future;

use candid::Principal;

use crate::domain::keys::VetKdFailure;
use crate::domain::payments::ledger::{
    AccountBalanceArgs, CallFailure, Tokens, TransferArgs, TransferError,
};

/// Everything the domain asks of the environment.
pub trait Runtime {
    /// Current time, ns since the Unix epoch (constant within one message).
    fn now(&self) -> u64;
    /// The principal that sent the current message.
    fn caller(&self) -> Principal;
    /// Whether `p` controls this canister.
    fn is_controller(&self, p: &Principal) -> bool;
    /// This canister's cycle balance.
    fn cycle_balance(&self) -> u128;
    /// Heap memory in bytes.
    fn heap_bytes(&self) -> u64;
    /// The canister's stable memory in bytes (what the IC charges for).
    fn stable_memory_bytes(&self) -> u64;
    /// 32 bytes from the subnet's randomness (`raw_rand`).
    fn random_bytes(&self) -> impl Future<Output = Result<[u8; 32], String>>;
    /// Instructions executed so far in the current message execution
    /// (`ic0.performance_counter(0)`); 0 off-chain.
    fn instruction_counter(&self) -> u64 {
        0
    }
    /// Instructions executed so far in the current call context, across awaits
    /// (`ic0.performance_counter(1)`); 0 off-chain.
    fn call_context_instructions(&self) -> u64 {
        0
    }
    /// This canister's principal (also the actor of audit events the scheduler writes).
    fn canister_id(&self) -> Principal;
    /// `account_balance` of a 32-byte account identifier on the ICP ledger `ledger`.
    fn ledger_balance(
        &self,
        ledger: Principal,
        account: [u8; 32],
    ) -> impl Future<Output = Result<u64, CallFailure>>;
    /// Legacy `transfer` on the ICP ledger `ledger`, from one of this canister's subaccounts.
    /// `Ok(Ok(block))`, `Ok(Err(ledger error))`, or `Err` when no reply could be decoded.
    fn ledger_transfer(
        &self,
        ledger: Principal,
        args: TransferArgs,
    ) -> impl Future<Output = Result<Result<u64, TransferError>, CallFailure>>;
    /// Cycles `vetkd_derive_key` costs with master key `key_name` (`ic0.cost_vetkd_derive_key`);
    /// `Err` for a key name the subnet does not know.
    fn vetkd_fee(&self, key_name: &str) -> Result<u128, String> {
        Err(format!("no vetKD key {key_name:?} in this runtime"))
    }
    /// `vetkd_public_key` of the management canister for this canister and `context`.
    fn vetkd_public_key(
        &self,
        key_name: &str,
        context: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, String>> {
        let reason = format!(
            "no vetKD key {key_name:?} in this runtime ({} B context)",
            context.len()
        );
        async move { Err(reason) }
    }
    /// `vetkd_derive_key` of the management canister with its fee attached: the vetKey of
    /// `input` under `context`, encrypted for `transport_public_key`.
    fn vetkd_derive_key(
        &self,
        key_name: &str,
        context: &[u8],
        input: &[u8],
        transport_public_key: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, VetKdFailure>> {
        let _ = (context, input, transport_public_key);
        let reason = format!("no vetKD key {key_name:?} in this runtime");
        async move { Err(VetKdFailure::Unavailable(reason)) }
    }
}

/// The key id of a bls12_381_g2 vetKD master key.
fn vetkd_key_id(key_name: &str) -> ic_cdk_management_canister::VetKDKeyId {
    ic_cdk_management_canister::VetKDKeyId {
        curve: ic_cdk_management_canister::VetKDCurve::Bls12_381_G2,
        name: key_name.to_string(),
    }
}

/// Maps a failed inter-canister call; only `SysUnknown` (6) leaves the outcome unknown.
fn call_failure(e: ic_cdk::call::CallFailed) -> CallFailure {
    let unknown =
        matches!(&e, ic_cdk::call::CallFailed::CallRejected(r) if r.raw_reject_code() == 6);
    CallFailure {
        unknown,
        reason: e.to_string(),
    }
}

/// The runtime of a deployed canister.
#[derive(Clone, Copy, Debug, Default)]
pub struct IcRuntime;

impl Runtime for IcRuntime {
    fn now(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn caller(&self) -> Principal {
        ic_cdk::api::msg_caller()
    }

    fn is_controller(&self, p: &Principal) -> bool {
        ic_cdk::api::is_controller(p)
    }

    fn cycle_balance(&self) -> u128 {
        ic_cdk::api::canister_cycle_balance()
    }

    fn heap_bytes(&self) -> u64 {
        #[cfg(target_arch = "wasm32")]
        {
            (core::arch::wasm32::memory_size(0) as u64) * 65_536
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            0
        }
    }

    fn stable_memory_bytes(&self) -> u64 {
        ic_cdk::stable::stable_size() * 65_536
    }

    fn instruction_counter(&self) -> u64 {
        ic_cdk::api::performance_counter(ic_cdk::api::PerformanceCounterType::InstructionCounter)
    }

    fn call_context_instructions(&self) -> u64 {
        ic_cdk::api::performance_counter(
            ic_cdk::api::PerformanceCounterType::CallContextInstructionCounter,
        )
    }

    async fn random_bytes(&self) -> Result<[u8; 32], String> {
        let response =
            ic_cdk::call::Call::unbounded_wait(Principal::management_canister(), "raw_rand")
                .await
                .map_err(|e| format!("raw_rand failed: {e}"))?;
        let bytes: serde_bytes::ByteBuf = response
            .candid()
            .map_err(|e| format!("raw_rand reply: {e}"))?;
        let bytes = bytes.into_vec();
        bytes
            .try_into()
            .map_err(|_| "raw_rand returned a value that is not 32 bytes".to_string())
    }

    fn canister_id(&self) -> Principal {
        ic_cdk::api::canister_self()
    }

    async fn ledger_balance(
        &self,
        ledger: Principal,
        account: [u8; 32],
    ) -> Result<u64, CallFailure> {
        let arg = AccountBalanceArgs {
            account: serde_bytes::ByteBuf::from(account.to_vec()),
        };
        let reply = ic_cdk::call::Call::unbounded_wait(ledger, "account_balance")
            .with_arg(arg)
            .await
            .map_err(call_failure)?;
        let tokens: Tokens = reply.candid().map_err(|e| CallFailure {
            unknown: false,
            reason: format!("account_balance reply: {e}"),
        })?;
        Ok(tokens.e8s)
    }

    async fn ledger_transfer(
        &self,
        ledger: Principal,
        args: TransferArgs,
    ) -> Result<Result<u64, TransferError>, CallFailure> {
        let reply = ic_cdk::call::Call::unbounded_wait(ledger, "transfer")
            .with_arg(args)
            .await
            .map_err(call_failure)?;
        // A reply we cannot read may still be a transfer that happened: unknown outcome.
        reply.candid().map_err(|e| CallFailure {
            unknown: true,
            reason: format!("transfer reply: {e}"),
        })
    }

    fn vetkd_fee(&self, key_name: &str) -> Result<u128, String> {
        ic_cdk::api::cost_vetkd_derive_key(key_name, 0).map_err(|e| e.to_string())
    }

    async fn vetkd_public_key(&self, key_name: &str, context: &[u8]) -> Result<Vec<u8>, String> {
        let args = ic_cdk_management_canister::VetKDPublicKeyArgs {
            canister_id: None,
            context: context.to_vec(),
            key_id: vetkd_key_id(key_name),
        };
        ic_cdk_management_canister::vetkd_public_key(&args)
            .await
            .map(|r| r.public_key)
            .map_err(|e| format!("vetkd_public_key: {e}"))
    }

    async fn vetkd_derive_key(
        &self,
        key_name: &str,
        context: &[u8],
        input: &[u8],
        transport_public_key: &[u8],
    ) -> Result<Vec<u8>, VetKdFailure> {
        use ic_cdk_management_canister::SignCallError;
        let args = ic_cdk_management_canister::VetKDDeriveKeyArgs {
            input: input.to_vec(),
            context: context.to_vec(),
            transport_public_key: transport_public_key.to_vec(),
            key_id: vetkd_key_id(key_name),
        };
        match ic_cdk_management_canister::vetkd_derive_key(&args).await {
            Ok(reply) => Ok(reply.encrypted_key),
            Err(SignCallError::CallFailed(ic_cdk::call::CallFailed::CallRejected(r)))
                if crate::domain::keys::is_transport_key_reject(r.reject_message()) =>
            {
                Err(VetKdFailure::InvalidTransportKey(
                    r.reject_message().to_string(),
                ))
            }
            Err(e) => Err(VetKdFailure::Unavailable(format!("vetkd_derive_key: {e}"))),
        }
    }
}

/// A deterministic runtime for native tests.
pub mod testing {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::payments::account::account_identifier;
    use crate::domain::payments::ledger::LEDGER_FEE_E8S;

    /// Dedup key of the mock ledger: (from, to, amount, memo, created_at_time).
    type DedupKey = ([u8; 32], [u8; 32], u64, u64, u64);

    /// One block of the mock ledger.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MockBlock {
        pub from: Option<[u8; 32]>,
        pub to: [u8; 32],
        pub amount: u64,
        pub memo: u64,
        pub created_at_time: Option<u64>,
    }

    /// An in-memory ICP ledger with fault injection, enough for the payment flow: balances
    /// per account identifier, blocks, deduplication on (from, to, amount, memo,
    /// created_at_time), fee burned.
    #[derive(Debug, Default)]
    pub struct MockLedger {
        pub balances: BTreeMap<[u8; 32], u64>,
        pub blocks: Vec<MockBlock>,
        dedup: BTreeMap<DedupKey, u64>,
        /// Fees burned so far.
        pub burned: u64,
        /// The next n `account_balance` calls are rejected.
        pub fail_balance: u32,
        /// Transfers that go through untouched before the two injections below apply.
        pub pass_transfers: u32,
        /// The next n `transfer` calls are rejected without reaching the ledger.
        pub fail_transfer: u32,
        /// The next n `transfer` calls are applied but reported as `SysUnknown`.
        pub unknown_transfer: u32,
        /// The next n `transfer` calls answer `TxTooOld` without applying anything (as when a
        /// retry comes after the ledger's 24 h window).
        pub too_old_transfer: u32,
        /// While set, every ledger call waits (returns `Pending` when polled).
        pub hold: bool,
        /// Calls made so far (both methods).
        pub calls: u32,
    }

    impl MockLedger {
        /// Mints `e8s` to `account`.
        pub fn mint(&mut self, account: [u8; 32], e8s: u64) {
            *self.balances.entry(account).or_default() += e8s;
            self.blocks.push(MockBlock {
                from: None,
                to: account,
                amount: e8s,
                memo: 0,
                created_at_time: None,
            });
        }

        /// Balance of `account`.
        pub fn balance(&self, account: &[u8; 32]) -> u64 {
            self.balances.get(account).copied().unwrap_or(0)
        }

        fn transfer(&mut self, from: [u8; 32], args: &TransferArgs) -> Result<u64, TransferError> {
            if args.fee.e8s != LEDGER_FEE_E8S {
                return Err(TransferError::BadFee {
                    expected_fee: Tokens {
                        e8s: LEDGER_FEE_E8S,
                    },
                });
            }
            let to: [u8; 32] = args.to.as_slice().try_into().expect("32-byte account");
            let key = args
                .created_at_time
                .map(|t| (from, to, args.amount.e8s, args.memo, t.timestamp_nanos));
            if let Some(k) = &key {
                if let Some(b) = self.dedup.get(k) {
                    return Err(TransferError::TxDuplicate { duplicate_of: *b });
                }
            }
            let balance = self.balance(&from);
            let needed = args.amount.e8s + LEDGER_FEE_E8S;
            if balance < needed {
                return Err(TransferError::InsufficientFunds {
                    balance: Tokens { e8s: balance },
                });
            }
            *self.balances.entry(from).or_default() -= needed;
            *self.balances.entry(to).or_default() += args.amount.e8s;
            self.burned += LEDGER_FEE_E8S;
            let index = self.blocks.len() as u64;
            self.blocks.push(MockBlock {
                from: Some(from),
                to,
                amount: args.amount.e8s,
                memo: args.memo,
                created_at_time: args.created_at_time.map(|t| t.timestamp_nanos),
            });
            if let Some(k) = key {
                self.dedup.insert(k, index);
            }
            Ok(index)
        }
    }

    /// Time and caller are set by the test; randomness is a counter; the ledger is a
    /// [`MockLedger`].
    #[derive(Debug)]
    pub struct MockRuntime {
        pub now: Cell<u64>,
        pub caller: Cell<Principal>,
        pub controllers: Vec<Principal>,
        pub seed: Cell<u8>,
        /// This canister's id.
        pub self_id: Principal,
        /// The ledger behind `ledger_balance` / `ledger_transfer`.
        pub ledger: RefCell<MockLedger>,
        /// What `stable_memory_bytes` reports.
        pub stable_bytes: Cell<u64>,
    }

    impl MockRuntime {
        /// A runtime at `now` with `controller` as the only controller and caller.
        pub fn new(now: u64, controller: Principal) -> Self {
            MockRuntime {
                now: Cell::new(now),
                caller: Cell::new(controller),
                controllers: vec![controller],
                seed: Cell::new(0),
                self_id: Principal::from_slice(&[0xCA, 0xFE, 1, 1]),
                ledger: RefCell::new(MockLedger::default()),
                stable_bytes: Cell::new(0),
            }
        }

        /// Sets the caller of the next operations.
        pub fn as_caller(&self, p: Principal) -> &Self {
            self.caller.set(p);
            self
        }

        /// Moves the clock forward.
        pub fn advance(&self, ns: u64) {
            self.now.set(self.now.get() + ns);
        }

        /// Waits while the ledger is held.
        async fn ledger_gate(&self) {
            std::future::poll_fn(|_| {
                if self.ledger.borrow().hold {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            })
            .await
        }
    }

    /// Drives a future whose awaits complete at once (MockRuntime's randomness) to its end.
    pub fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("block_on: the future did not complete"),
        }
    }

    impl Runtime for MockRuntime {
        fn now(&self) -> u64 {
            self.now.get()
        }
        fn caller(&self) -> Principal {
            self.caller.get()
        }
        fn is_controller(&self, p: &Principal) -> bool {
            self.controllers.contains(p)
        }
        fn cycle_balance(&self) -> u128 {
            1_000_000_000_000
        }
        fn heap_bytes(&self) -> u64 {
            0
        }
        fn stable_memory_bytes(&self) -> u64 {
            self.stable_bytes.get()
        }
        async fn random_bytes(&self) -> Result<[u8; 32], String> {
            let s = self.seed.get().wrapping_add(1);
            self.seed.set(s);
            Ok([s; 32])
        }
        fn canister_id(&self) -> Principal {
            self.self_id
        }
        async fn ledger_balance(
            &self,
            _ledger: Principal,
            account: [u8; 32],
        ) -> Result<u64, CallFailure> {
            self.ledger_gate().await;
            let mut l = self.ledger.borrow_mut();
            l.calls += 1;
            if l.fail_balance > 0 {
                l.fail_balance -= 1;
                return Err(CallFailure {
                    unknown: false,
                    reason: "injected reject".into(),
                });
            }
            Ok(l.balance(&account))
        }
        async fn ledger_transfer(
            &self,
            _ledger: Principal,
            args: TransferArgs,
        ) -> Result<Result<u64, TransferError>, CallFailure> {
            self.ledger_gate().await;
            let mut l = self.ledger.borrow_mut();
            l.calls += 1;
            let pass = l.pass_transfers > 0;
            if pass {
                l.pass_transfers -= 1;
            }
            if !pass && l.fail_transfer > 0 {
                l.fail_transfer -= 1;
                return Err(CallFailure {
                    unknown: false,
                    reason: "injected reject".into(),
                });
            }
            if !pass && l.too_old_transfer > 0 {
                l.too_old_transfer -= 1;
                return Ok(Err(TransferError::TxTooOld {
                    allowed_window_nanos: 24 * 3600 * 1_000_000_000,
                }));
            }
            let sub: Option<[u8; 32]> = args
                .from_subaccount
                .as_ref()
                .map(|b| b.as_slice().try_into().expect("32-byte subaccount"));
            let from = account_identifier(&self.self_id, sub);
            let result = l.transfer(from, &args);
            if !pass && l.unknown_transfer > 0 {
                l.unknown_transfer -= 1;
                return Err(CallFailure {
                    unknown: true,
                    reason: "injected unknown outcome".into(),
                });
            }
            Ok(result)
        }
    }
}
