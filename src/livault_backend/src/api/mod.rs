//! Canister entry points: each checks the caller, decodes, delegates to the domain and maps
//! the result. No business rule lives here.

pub mod admin;
pub mod arguments;
#[cfg(feature = "bench-seed")]
pub mod bench_seed;
pub mod content;
pub mod errors;
pub mod http;
pub mod keys;
pub mod lifecycle;
pub mod members;
pub mod payments;
pub mod plans;
pub mod scheduler;
pub mod vaults;

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::DefaultMemoryImpl;

use crate::domain::error::{VaultError, VaultResult};
use crate::domain::ops;
use crate::domain::rate_limit::RateLimiter;
use crate::events::{self, Val};
use crate::runtime::{IcRuntime, Runtime};
use crate::storage::{State, StateAccess};

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::open(DefaultMemoryImpl::default()));
    static LIMITER: RefCell<RateLimiter> = RefCell::new(RateLimiter::default());
}

/// Runs `f` with read access to the state.
pub fn read<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(&s.borrow()))
}

/// Runs `f` with write access to the state.
pub fn write<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// The canister's global state, for async flows (see [`StateAccess`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalState;

impl StateAccess for GlobalState {
    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        read(f)
    }
    fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        write(f)
    }
}

/// Principals the rate limiter tracks now (for metrics).
pub fn rate_limited_principals() -> u64 {
    LIMITER.with(|l| l.borrow().tracked() as u64)
}

/// Whether writes may run while the canister is paused.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WhenPaused {
    /// Refused with `Paused`.
    Refuse,
    /// Allowed (check-in, downloads, admin operations).
    Allow,
}

/// Admission of an update call: not anonymous, not paused (unless allowed), within the
/// caller's rate limit (admins are exempt; refusals are counted). Returns the caller.
pub fn admit_update(rt: &impl Runtime, when_paused: WhenPaused) -> VaultResult<Principal> {
    let caller = rt.caller();
    if caller == Principal::anonymous() {
        return Err(VaultError::NotAuthorized);
    }
    let (paused, is_admin) = read(|s| (s.config().paused, s.config().is_admin(&caller)));
    if paused && when_paused == WhenPaused::Refuse {
        return Err(VaultError::Paused);
    }
    if !is_admin {
        LIMITER
            .with(|l| l.borrow_mut().take(caller, rt.now()))
            .inspect_err(|_| ops::with(|o| o.rate_limit_refusals += 1))?;
    }
    Ok(caller)
}

/// An update endpoint: admission ([`admit_update`]), then `f` with the runtime and the
/// caller; the answer is counted ([`finish`]). Every update entry point goes through this
/// or [`update_async`].
pub fn update<T>(
    endpoint: &'static str,
    when_paused: WhenPaused,
    f: impl FnOnce(&IcRuntime, Principal) -> VaultResult<T>,
) -> VaultResult<T> {
    let rt = rt();
    let result = admit_update(&rt, when_paused).and_then(|caller| f(&rt, caller));
    finish(endpoint, result)
}

/// [`update`] for endpoints that await (ledger, randomness, vetKD). The answer is counted
/// in the message that replies.
pub async fn update_async<T, F>(
    endpoint: &'static str,
    when_paused: WhenPaused,
    f: impl FnOnce(IcRuntime, Principal) -> F,
) -> VaultResult<T>
where
    F: std::future::Future<Output = VaultResult<T>>,
{
    let rt = rt();
    let result = match admit_update(&rt, when_paused) {
        Ok(caller) => f(rt, caller).await,
        Err(e) => Err(e),
    };
    finish(endpoint, result)
}

/// Counts an update endpoint's answer by endpoint and error case (`domain::ops`: heap
/// counters, so a refused call still changes no stable memory) and logs a refusal at the
/// capacity high-water mark.
pub fn finish<T>(endpoint: &'static str, result: VaultResult<T>) -> VaultResult<T> {
    let error = result.as_ref().err();
    ops::with(|o| o.record_call(endpoint, error));
    if let Some(VaultError::PlanLimit { resource, limit }) = error {
        if resource == "canister_storage" {
            let used = rt().stable_memory_bytes();
            events::emit(
                "capacity.refused",
                &[
                    ("endpoint", Val::Raw(&endpoint)),
                    ("stable_memory_bytes", Val::Raw(&used)),
                    ("high_water_bytes", Val::Raw(limit)),
                ],
            );
        }
    }
    result
}

/// The runtime used by every entry point.
pub fn rt() -> IcRuntime {
    IcRuntime
}

/// First retry delay of a job run by [`run_until_ok`].
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(60);
/// Longest retry delay of a job run by [`run_until_ok`].
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Runs `job` in a timer now (its own message) and, while it fails, again after a delay
/// doubling from 1 minute up to 1 hour: the setup work `init` and `post_upgrade` arm
/// (timers are heap state) that needs a call (the vetKD public key, the subnet's
/// randomness for the owner index).
pub fn run_until_ok<F, Fut>(job: F)
where
    F: Fn() -> Fut + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    schedule_until_ok(
        std::time::Duration::ZERO,
        RETRY_FIRST,
        std::rc::Rc::new(job),
    );
}

fn schedule_until_ok<F, Fut>(
    delay: std::time::Duration,
    next: std::time::Duration,
    job: std::rc::Rc<F>,
) where
    F: Fn() -> Fut + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    ic_cdk_timers::set_timer(delay, async move {
        if job().await.is_err() {
            schedule_until_ok(next, (next * 2).min(RETRY_MAX), job);
        }
    });
}
