//! The small runtime interface the domain needs from the Internet Computer.
//!
//! The domain never calls `ic_cdk` directly: it asks a [`Runtime`] for
//! - the message's context: the time, the caller, whether a principal is a controller, this
//!   canister's id;
//! - resources: the cycle balance, heap and stable memory sizes, the instruction counters of
//!   the message and of the call context;
//! - calls: the subnet's randomness, the ICP ledger (`account_balance`, `transfer`), vetKD
//!   (fee, public key, key derivation) and calls to this canister itself (a separate message,
//!   so that a trap there rolls back only that message);
//! - timers: a periodic job, each run in its own message.
//!
//! [`IcRuntime`] implements it with `ic_cdk` and `ic_cdk_timers`; native tests use
//! [`testing::MockRuntime`]: a clock the test sets, an in-memory ledger with fault injection,
//! a counter for randomness, and queues of armed timers and pending self-calls that the test
//! fires and answers itself (see `domain::maintenance`'s tests).

use std::future::Future;
use std::time::Duration;

use candid::Principal;

use crate::domain::payments::ledger::{
    AccountBalanceArgs, CallFailure, Tokens, TransferArgs, TransferError,
};
use crate::model::keys::VetKdFailure;

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
    /// Runs `job` every `interval` (first one interval from now), each run in its own
    /// message, until the canister is upgraded or reinstalled: timers are heap state, so
    /// `init` and `post_upgrade` arm them. On the IC a run that traps does not stop the next
    /// ones (ic-cdk-timers starts each run in a self-call).
    ///
    /// Runtimes without timers (a wrapper that serves one call) keep this default, which
    /// traps: arming a timer there is a programming error.
    fn set_timer_interval<F, Fut>(&self, interval: Duration, job: F)
    where
        F: FnMut() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let _ = job;
        panic!("this runtime has no timers (asked for one every {interval:?})");
    }
    /// Calls `method` of this canister with the Candid-encoded `arg`, as a separate message
    /// (it commits or rolls back on its own; the caller's changes before the await are
    /// committed). `Ok(reply bytes)`, or `Err` when that message trapped or the call was
    /// refused (e.g. while the canister is stopping).
    fn call_self(
        &self,
        method: &str,
        arg: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, String>> {
        let reason = format!(
            "no self-calls in this runtime ({method}, {} B argument)",
            arg.len()
        );
        async move { Err(reason) }
    }
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

/// Counts an ICP ledger call's outcome (`domain::ops`) and logs the ones that are not `ok`.
fn ledger_outcome(method: &str, outcome: &str, detail: &str) {
    crate::domain::ops::with(|o| o.record_ledger(method, outcome));
    if outcome != "ok" {
        use crate::events::Val;
        crate::events::emit(
            "ledger.call",
            &[
                ("method", Val::Raw(&method)),
                ("outcome", Val::Raw(&outcome)),
                ("detail", Val::Text(detail)),
            ],
        );
    }
}

/// The outcome label of a failed call.
fn failure_label(f: &CallFailure) -> &'static str {
    if f.unknown {
        "unknown"
    } else {
        "rejected"
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

    fn set_timer_interval<F, Fut>(&self, interval: Duration, job: F)
    where
        F: FnMut() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        ic_cdk_timers::set_timer_interval(interval, job);
    }

    async fn call_self(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        let response = ic_cdk::call::Call::unbounded_wait(ic_cdk::api::canister_self(), method)
            .with_raw_args(&arg)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.into_bytes())
    }

    async fn ledger_balance(
        &self,
        ledger: Principal,
        account: [u8; 32],
    ) -> Result<u64, CallFailure> {
        let arg = AccountBalanceArgs {
            account: serde_bytes::ByteBuf::from(account.to_vec()),
        };
        let result: Result<u64, CallFailure> = async {
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
        .await;
        match &result {
            Ok(_) => ledger_outcome("account_balance", "ok", ""),
            Err(f) => ledger_outcome("account_balance", failure_label(f), &f.reason),
        }
        result
    }

    async fn ledger_transfer(
        &self,
        ledger: Principal,
        args: TransferArgs,
    ) -> Result<Result<u64, TransferError>, CallFailure> {
        let result: Result<Result<u64, TransferError>, CallFailure> = async {
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
        .await;
        match &result {
            Ok(Ok(_)) => ledger_outcome("transfer", "ok", ""),
            Ok(Err(e)) => ledger_outcome("transfer", e.name(), &format!("{e:?}")),
            Err(f) => ledger_outcome("transfer", failure_label(f), &f.reason),
        }
        result
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
                if VetKdFailure::is_transport_key_reject(r.reject_message()) =>
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
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

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

    /// A run of a timer's job, started by [`MockRuntime::fire_due_timers`]: the test polls it
    /// (see [`MockRuntime::run_jobs`]).
    pub type Job = Pin<Box<dyn Future<Output = ()>>>;

    /// A timer armed through [`Runtime::set_timer_interval`].
    struct MockTimer {
        /// Next run (ns).
        at: u64,
        interval: u64,
        job: Box<dyn FnMut() -> Job>,
    }

    impl std::fmt::Debug for MockTimer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MockTimer")
                .field("at", &self.at)
                .field("interval", &self.interval)
                .finish_non_exhaustive()
        }
    }

    /// The reply slot of a self-call: `None` until the test answers.
    type ReplySlot = Rc<RefCell<Option<Result<Vec<u8>, String>>>>;

    /// A call of the canister to itself ([`Runtime::call_self`]) that the test has not
    /// answered yet: the caller's future waits until [`PendingSelfCall::answer`].
    #[derive(Debug)]
    pub struct PendingSelfCall {
        pub method: String,
        pub arg: Vec<u8>,
        slot: ReplySlot,
    }

    impl PendingSelfCall {
        /// Delivers the reply (`Err`: the message trapped or was refused).
        pub fn answer(self, reply: Result<Vec<u8>, String>) {
            *self.slot.borrow_mut() = Some(reply);
        }
    }

    /// Time and caller are set by the test; randomness is a counter; the ledger is a
    /// [`MockLedger`]; timers and self-calls wait in queues the test drives.
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
        /// What the instruction counters report; every `instruction_counter` read first adds
        /// `instructions_per_read` (a fake meter: 0 by default).
        pub instructions: Cell<u64>,
        pub instructions_per_read: Cell<u64>,
        /// Armed timers (cleared by [`MockRuntime::clear_timers`], as by an upgrade).
        timers: RefCell<Vec<MockTimer>>,
        /// Self-calls not answered yet, oldest first.
        self_calls: RefCell<Vec<PendingSelfCall>>,
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
                instructions: Cell::new(0),
                instructions_per_read: Cell::new(0),
                timers: RefCell::new(Vec::new()),
                self_calls: RefCell::new(Vec::new()),
            }
        }

        /// The armed timers as (next run, interval) in ns, soonest first.
        pub fn timers(&self) -> Vec<(u64, u64)> {
            let mut t: Vec<(u64, u64)> = self
                .timers
                .borrow()
                .iter()
                .map(|t| (t.at, t.interval))
                .collect();
            t.sort_unstable();
            t
        }

        /// Drops every timer (an upgrade does: timers are heap state).
        pub fn clear_timers(&self) {
            self.timers.borrow_mut().clear();
        }

        /// Starts the job of every timer due at the current time, soonest first; like
        /// ic-cdk-timers, each timer is first re-armed one interval after the time it was
        /// due. Returns the started runs for the test to poll.
        pub fn fire_due_timers(&self) -> Vec<Job> {
            let now = self.now.get();
            let mut timers = std::mem::take(&mut *self.timers.borrow_mut());
            timers.sort_by_key(|t| t.at);
            let mut started = Vec::new();
            for t in timers.iter_mut().filter(|t| t.at <= now) {
                t.at = t.at.saturating_add(t.interval);
                started.push((t.job)());
            }
            // Timers armed by the jobs' creation (none today) are kept too.
            self.timers.borrow_mut().extend(timers);
            started
        }

        /// Takes the self-calls made and not answered yet, oldest first.
        pub fn take_self_calls(&self) -> Vec<PendingSelfCall> {
            std::mem::take(&mut *self.self_calls.borrow_mut())
        }

        /// Self-calls waiting for an answer.
        pub fn pending_self_calls(&self) -> usize {
            self.self_calls.borrow().len()
        }

        /// Polls `jobs` and answers every self-call they make with `answer(method, arg)`, in
        /// the order they were made, until all jobs have finished. Panics if they stall
        /// (waiting for something else than a self-call, e.g. a held ledger).
        pub fn run_jobs(
            &self,
            mut jobs: Vec<Job>,
            mut answer: impl FnMut(&str, &[u8]) -> Result<Vec<u8>, String>,
        ) {
            loop {
                jobs.retain_mut(|job| poll_once(job.as_mut()).is_pending());
                if jobs.is_empty() {
                    return;
                }
                let calls = self.take_self_calls();
                assert!(
                    !calls.is_empty(),
                    "run_jobs: {} job(s) wait for something else than a self-call",
                    jobs.len()
                );
                for call in calls {
                    let reply = answer(&call.method, &call.arg);
                    call.answer(reply);
                }
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

    /// Polls `fut` once (a no-op waker: the tests' futures are polled again by hand).
    pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(Waker::noop()))
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
        fn instruction_counter(&self) -> u64 {
            let c = self
                .instructions
                .get()
                .saturating_add(self.instructions_per_read.get());
            self.instructions.set(c);
            c
        }
        fn call_context_instructions(&self) -> u64 {
            self.instructions.get()
        }
        fn set_timer_interval<F, Fut>(&self, interval: Duration, mut job: F)
        where
            F: FnMut() -> Fut + 'static,
            Fut: Future<Output = ()> + 'static,
        {
            let interval = u64::try_from(interval.as_nanos()).expect("interval fits in u64 ns");
            self.timers.borrow_mut().push(MockTimer {
                at: self.now.get().saturating_add(interval),
                interval,
                job: Box::new(move || Box::pin(job()) as Job),
            });
        }
        async fn call_self(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
            let slot = ReplySlot::default();
            self.self_calls.borrow_mut().push(PendingSelfCall {
                method: method.to_string(),
                arg,
                slot: slot.clone(),
            });
            std::future::poll_fn(|_| match slot.borrow_mut().take() {
                Some(reply) => Poll::Ready(reply),
                None => Poll::Pending,
            })
            .await
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

    /// A shared runtime is the runtime it points to (tests hand `Rc<MockRuntime>` to timer
    /// jobs, which must be `'static`).
    impl<T: Runtime> Runtime for Rc<T> {
        fn now(&self) -> u64 {
            (**self).now()
        }
        fn caller(&self) -> Principal {
            (**self).caller()
        }
        fn is_controller(&self, p: &Principal) -> bool {
            (**self).is_controller(p)
        }
        fn cycle_balance(&self) -> u128 {
            (**self).cycle_balance()
        }
        fn heap_bytes(&self) -> u64 {
            (**self).heap_bytes()
        }
        fn stable_memory_bytes(&self) -> u64 {
            (**self).stable_memory_bytes()
        }
        fn random_bytes(&self) -> impl Future<Output = Result<[u8; 32], String>> {
            (**self).random_bytes()
        }
        fn instruction_counter(&self) -> u64 {
            (**self).instruction_counter()
        }
        fn call_context_instructions(&self) -> u64 {
            (**self).call_context_instructions()
        }
        fn canister_id(&self) -> Principal {
            (**self).canister_id()
        }
        fn set_timer_interval<F, Fut>(&self, interval: Duration, job: F)
        where
            F: FnMut() -> Fut + 'static,
            Fut: Future<Output = ()> + 'static,
        {
            (**self).set_timer_interval(interval, job)
        }
        fn call_self(
            &self,
            method: &str,
            arg: Vec<u8>,
        ) -> impl Future<Output = Result<Vec<u8>, String>> {
            (**self).call_self(method, arg)
        }
        fn ledger_balance(
            &self,
            ledger: Principal,
            account: [u8; 32],
        ) -> impl Future<Output = Result<u64, CallFailure>> {
            (**self).ledger_balance(ledger, account)
        }
        fn ledger_transfer(
            &self,
            ledger: Principal,
            args: TransferArgs,
        ) -> impl Future<Output = Result<Result<u64, TransferError>, CallFailure>> {
            (**self).ledger_transfer(ledger, args)
        }
        fn vetkd_fee(&self, key_name: &str) -> Result<u128, String> {
            (**self).vetkd_fee(key_name)
        }
        fn vetkd_public_key(
            &self,
            key_name: &str,
            context: &[u8],
        ) -> impl Future<Output = Result<Vec<u8>, String>> {
            (**self).vetkd_public_key(key_name, context)
        }
        fn vetkd_derive_key(
            &self,
            key_name: &str,
            context: &[u8],
            input: &[u8],
            transport_public_key: &[u8],
        ) -> impl Future<Output = Result<Vec<u8>, VetKdFailure>> {
            (**self).vetkd_derive_key(key_name, context, input, transport_public_key)
        }
    }
}
