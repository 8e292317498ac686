//! The small runtime interface the domain needs from the Internet Computer.
//!
//! The domain never calls `ic_cdk` directly: it asks a [`Runtime`] for the time, the caller,
//! controller status and randomness. [`IcRuntime`] implements it on the IC; tests use
//! [`testing::MockRuntime`]. Ledger calls and timers join this trait with the payments and
//! scheduler features.

use std::future::Future;

use candid::Principal;

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
    /// This canister's principal: the actor of audit events the scheduler writes.
    fn canister_self(&self) -> Principal {
        Principal::management_canister()
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

    fn instruction_counter(&self) -> u64 {
        ic_cdk::api::performance_counter(ic_cdk::api::PerformanceCounterType::InstructionCounter)
    }

    fn call_context_instructions(&self) -> u64 {
        ic_cdk::api::performance_counter(
            ic_cdk::api::PerformanceCounterType::CallContextInstructionCounter,
        )
    }

    fn canister_self(&self) -> Principal {
        ic_cdk::api::canister_self()
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
}

/// A deterministic runtime for native tests.
pub mod testing {
    use std::cell::Cell;

    use super::*;

    /// Time and caller are set by the test; randomness is a counter.
    #[derive(Debug)]
    pub struct MockRuntime {
        pub now: Cell<u64>,
        pub caller: Cell<Principal>,
        pub controllers: Vec<Principal>,
        pub seed: Cell<u8>,
    }

    impl MockRuntime {
        /// A runtime at `now` with `controller` as the only controller and caller.
        pub fn new(now: u64, controller: Principal) -> Self {
            MockRuntime {
                now: Cell::new(now),
                caller: Cell::new(controller),
                controllers: vec![controller],
                seed: Cell::new(0),
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
        async fn random_bytes(&self) -> Result<[u8; 32], String> {
            let s = self.seed.get().wrapping_add(1);
            self.seed.set(s);
            Ok([s; 32])
        }
    }
}
