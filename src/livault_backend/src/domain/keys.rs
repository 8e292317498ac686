//! Key release by vetKeys (SPEC §16, docs/keys.md).
//!
//! Every recipient of a vault has a vetKD identity `vault id ‖ share index` (index 0 = the
//! owner). Clients wrap each item's random data key by identity-based encryption to those
//! identities with the public key of [`CONTEXT`]; the canister only decides who may obtain the
//! vetKey of an identity and asks the management canister for it, encrypted under the
//! caller's transport key. There is no cryptography here: the canister never sees a key.
//!
//! Who may derive: the owner, identity 0 of its vault, in any state but `Deleted`; an heir,
//! only its own share index, only while the vault is `Unlockable` and before `access_until`.
//! Nobody else (witness, removed members, strangers, anonymous, admins).
//!
//! Each derivation costs the subnet's vetKD fee in cycles, so it is bounded three ways
//! (configuration [`VetKdConfig`]): per caller, vault and UTC day (owner / heir limits,
//! `RateLimited`); per vault and 30-day window (`PlanLimit { resource: "vetkd_derivations" }`);
//! and for unpaid (`Draft`) vaults a daily cap over all of them together, so throw-away
//! principals with free drafts cannot drain the canister's cycles (`RateLimited`).
//! Counters are written before the management call (a racing second call sees them) and
//! released if the call fails.

use std::cell::RefCell;

use candid::{CandidType, Principal};
use serde::Deserialize;

use super::access::{self, Access};
use super::error::{VaultError, VaultResult};
use super::vault_core;
use super::vault_core::audit::{self, AuditAction};
use crate::model::config::VetKdConfig;
use crate::model::keys::{CallerDay, VetKdFailure, VetKdPublicKey, VetKeyMetrics};
use crate::model::records::{MemberRole, VaultRecord};
use crate::model::types::{VaultId, VaultStatus, NANOS_PER_DAY, NANOS_PER_SEC};
use crate::runtime::Runtime;
use crate::storage::{LoadedVault, State, StateAccess};

/// The vetKD derivation context of LiVault: names the application and the version of the
/// identity scheme. Part of the public key; a new version would be a new key space.
pub const CONTEXT: &[u8] = b"LiVault key release v1";
/// Share index of the owner's identity (heirs and the witness have 1..=255).
pub const OWNER_SHARE_INDEX: u8 = 0;
/// Length of a compressed BLS12-381 G1 point: the transport public key.
pub const TRANSPORT_KEY_BYTES: usize = 48;
/// Length of the per-vault budget window.
pub const WINDOW_NS: u64 = 30 * NANOS_PER_DAY;

/// The vetKD identity (`input`) of `share_index` in `vault_id`: the vault id as 8 bytes
/// big-endian followed by the share index byte.
pub fn identity(vault_id: VaultId, share_index: u8) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[..8].copy_from_slice(&vault_id.to_be_bytes());
    out[8] = share_index;
    out
}

// ------------------------------------------------------------------ API types

// `derive_vetkey` arguments.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct DeriveVetKeyArgs {
    pub vault_id: VaultId,
    // 0 = the owner's identity; an heir's share index (see `list_members`).
    pub share_index: u8,
    // The caller's transport public key: a compressed BLS12-381 G1 point (48 bytes).
    pub transport_public_key: serde_bytes::ByteBuf,
}

// An encrypted vetKey: decrypt and verify it with the transport secret key and the vetKD
// public key (`get_vetkd_public_key`) for `identity`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct EncryptedVetKeyReply {
    pub vault_id: VaultId,
    pub share_index: u8,
    // The vetKD input: `vault_id` (8 bytes big-endian) ‖ `share_index`.
    pub identity: serde_bytes::ByteBuf,
    // The vetKey encrypted under the transport public key (192 bytes).
    pub encrypted_key: serde_bytes::ByteBuf,
    // The master key it was derived with.
    pub key_name: String,
}

// ------------------------------------------------------------------ counters

thread_local! {
    /// Refusals since the last upgrade: (rate limited, budget exhausted). A refused call
    /// changes no stored state, so these live in the heap.
    static REFUSALS: RefCell<(u64, u64)> = const { RefCell::new((0, 0)) };
}

/// Drops a vault's counters (its tombstone can derive nothing).
pub fn forget_vault(state: &mut State, vault_id: VaultId) {
    state.vetkeys.forget_vault(vault_id);
}

/// The cached public key, if it belongs to `key_name`.
pub fn cached_public_key(state: &State, key_name: &str) -> Option<VetKdPublicKey> {
    state
        .vetkeys
        .public_key()
        .filter(|pk| pk.key_name == key_name && pk.context == CONTEXT)
}

/// `get_vetkd_public_key` (anyone): the cached public key of the configured master key.
pub fn get_public_key(state: &State) -> VaultResult<VetKdPublicKey> {
    let key_name = &state.config().vetkd.key_name;
    cached_public_key(state, key_name).ok_or_else(|| VaultError::KeyDerivationUnavailable {
        reason: format!(
            "the vetKD public key of {key_name:?} is not fetched yet; retry in a minute"
        ),
    })
}

/// Whether the public key of the configured key still has to be fetched.
pub fn public_key_missing(state: &State) -> bool {
    cached_public_key(state, &state.config().vetkd.key_name).is_none()
}

/// Fetches the public key of the configured master key from the management canister and
/// caches it (nothing to do when it is cached). Called from a timer after install and
/// upgrade, and again until it succeeds.
pub async fn refresh_public_key(st: &impl StateAccess, rt: &impl Runtime) -> Result<(), String> {
    let Some(key_name) =
        st.read(|s| public_key_missing(s).then(|| s.config().vetkd.key_name.clone()))
    else {
        return Ok(());
    };
    let public_key = rt.vetkd_public_key(&key_name, CONTEXT).await?;
    st.write(|s| {
        // The configuration cannot change during the call (an upgrade waits for open calls),
        // but keep the cache consistent with it regardless.
        if s.config().vetkd.key_name == key_name {
            s.vetkeys.cache_public_key(VetKdPublicKey {
                key_name,
                context: CONTEXT.to_vec(),
                public_key,
                fetched_at: rt.now(),
            });
        }
    });
    Ok(())
}

/// The vetKeys metrics.
pub fn metrics(state: &State) -> VetKeyMetrics {
    let t = state.vetkeys.totals();
    let (rate_limited, budget_exhausted) = REFUSALS.with(|r| *r.borrow());
    VetKeyMetrics {
        key_name: state.config().vetkd.key_name.clone(),
        public_key_cached: !public_key_missing(state),
        derived_total: t.derived,
        cycles_spent: t.cycles,
        failed_total: t.failed,
        rate_limited,
        budget_exhausted,
    }
}

// ------------------------------------------------------------------ who may derive

/// Who is deriving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deriver {
    Owner,
    Heir,
}

/// SPEC §16: may a caller with `access` to `vault` obtain the vetKey of `share_index` at
/// `now`? `member_share` is the caller's own share index when it is a member.
pub fn check_right(
    vault: &VaultRecord,
    access: Access,
    member_share: Option<u8>,
    share_index: u8,
    now: u64,
) -> VaultResult<Deriver> {
    match access {
        Access::Owner => {
            if share_index != OWNER_SHARE_INDEX {
                return Err(VaultError::NotAuthorized);
            }
            if vault.status == VaultStatus::Deleted {
                return Err(VaultError::InvalidState {
                    current: vault.status,
                });
            }
            Ok(Deriver::Owner)
        }
        Access::Member {
            role: MemberRole::Heir,
            ..
        } => {
            if member_share != Some(share_index) {
                return Err(VaultError::NotAuthorized);
            }
            if vault.status != VaultStatus::Unlockable {
                return Err(VaultError::InvalidState {
                    current: vault.status,
                });
            }
            if vault.access_until.is_some_and(|until| now >= until) {
                // The access window is over; the scheduler marks the vault Expired next.
                return Err(VaultError::InvalidState {
                    current: VaultStatus::Expired,
                });
            }
            Ok(Deriver::Heir)
        }
        Access::Member {
            role: MemberRole::Witness,
            ..
        }
        | Access::Outsider => Err(VaultError::NotAuthorized),
    }
}

/// The caller's right on `vault_id` (vault loaded, access and member share looked up).
fn right(
    state: &State,
    caller: &Principal,
    vault_id: VaultId,
    share_index: u8,
    now: u64,
) -> VaultResult<(LoadedVault, Deriver)> {
    let vault = state.vaults.load(vault_id).ok_or(VaultError::NotFound)?;
    let acc = access::role_of(state, &vault, caller);
    let member_share = match acc {
        Access::Member { member_id, .. } => state
            .members
            .get(vault_id, member_id)
            .map(|m| m.share_index),
        _ => None,
    };
    let who = check_right(&vault, acc, member_share, share_index, now)?;
    Ok((vault, who))
}

// ------------------------------------------------------------------ limits

/// Seconds from `now` to the next UTC midnight (at least 1).
fn secs_to_next_day(now: u64) -> u64 {
    let next = (now / NANOS_PER_DAY + 1) * NANOS_PER_DAY;
    (next - now).div_ceil(NANOS_PER_SEC).max(1)
}

/// What a reservation counted, to release it if the call fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub who: Deriver,
    pub key_name: String,
    pub fee: u128,
    pub day: u64,
    pub window_start: u64,
    pub unpaid: bool,
}

/// Checks the limits for one more derivation by `caller` on `vault` and counts it. Nothing
/// is written when a limit refuses.
fn reserve(
    state: &mut State,
    cfg: &VetKdConfig,
    caller: Principal,
    vault: &VaultRecord,
    who: Deriver,
    fee: u128,
    now: u64,
) -> VaultResult<Reservation> {
    let day = now / NANOS_PER_DAY;
    let mut u = state.vetkeys.usage(vault.id);
    u.callers.retain(|c| c.day == day);
    let per_day = match who {
        Deriver::Owner => cfg.owner_derivations_per_day,
        Deriver::Heir => cfg.heir_derivations_per_day,
    };
    let mine = u
        .callers
        .iter()
        .find(|c| c.principal == caller)
        .map_or(0, |c| c.count);
    if mine >= per_day {
        REFUSALS.with(|r| r.borrow_mut().0 += 1);
        return Err(VaultError::RateLimited {
            retry_after_secs: secs_to_next_day(now),
        });
    }
    if now >= u.window_start.saturating_add(WINDOW_NS) {
        u.window_start = now;
        u.window_count = 0;
    }
    if u.window_count >= cfg.vault_derivations_per_window {
        REFUSALS.with(|r| r.borrow_mut().1 += 1);
        return Err(VaultError::PlanLimit {
            resource: "vetkd_derivations".into(),
            limit: u64::from(cfg.vault_derivations_per_window),
        });
    }
    let unpaid = vault.status == VaultStatus::Draft;
    let mut t = state.vetkeys.totals();
    if unpaid {
        if t.unpaid_day != day {
            t.unpaid_day = day;
            t.unpaid_count = 0;
        }
        if t.unpaid_count >= cfg.unpaid_derivations_per_day {
            REFUSALS.with(|r| r.borrow_mut().0 += 1);
            return Err(VaultError::RateLimited {
                retry_after_secs: secs_to_next_day(now),
            });
        }
        t.unpaid_count += 1;
        state.vetkeys.set_totals(t);
    }
    match u.callers.iter_mut().find(|c| c.principal == caller) {
        Some(c) => c.count += 1,
        None => u.callers.push(CallerDay {
            principal: caller,
            day,
            count: 1,
        }),
    }
    u.window_count += 1;
    let window_start = u.window_start;
    state.vetkeys.set_usage(vault.id, u);
    Ok(Reservation {
        who,
        key_name: cfg.key_name.clone(),
        fee,
        day,
        window_start,
        unpaid,
    })
}

/// Gives back what [`reserve`] counted (the call did not derive anything).
fn release(state: &mut State, caller: Principal, vault_id: VaultId, r: &Reservation) {
    // A vault purged or erased during the call has no counters left to give back to: none
    // are written for it.
    state.vetkeys.update_existing_usage(vault_id, |u| {
        if let Some(c) = u
            .callers
            .iter_mut()
            .find(|c| c.principal == caller && c.day == r.day)
        {
            c.count = c.count.saturating_sub(1);
        }
        if u.window_start == r.window_start {
            u.window_count = u.window_count.saturating_sub(1);
        }
    });
    let mut t = state.vetkeys.totals();
    if r.unpaid && t.unpaid_day == r.day {
        t.unpaid_count = t.unpaid_count.saturating_sub(1);
    }
    t.failed += 1;
    state.vetkeys.set_totals(t);
}

// ------------------------------------------------------------------ derive

/// `derive_vetkey`: the vetKey of identity `vault_id ‖ share_index`, encrypted under the
/// caller's transport public key, if SPEC §16 lets the caller have it (see the module docs).
///
/// Everything is checked and the derivation counted before the management call; after it,
/// the right is checked again (the vault may have changed meanwhile): a caller who lost it
/// gets the error, not the key. A failed call is released and changes nothing.
pub async fn derive_vetkey(
    st: &impl StateAccess,
    rt: &impl Runtime,
    args: DeriveVetKeyArgs,
) -> VaultResult<EncryptedVetKeyReply> {
    let caller = rt.caller();
    if args.transport_public_key.len() != TRANSPORT_KEY_BYTES {
        return Err(VaultError::invalid(
            "transport_public_key",
            format!("must be a compressed BLS12-381 G1 point ({TRANSPORT_KEY_BYTES} bytes)"),
        ));
    }
    let key_name = st.read(|s| {
        right(s, &caller, args.vault_id, args.share_index, rt.now())
            .map(|_| s.config().vetkd.key_name.clone())
    })?;
    let fee = rt
        .vetkd_fee(&key_name)
        .map_err(|e| VaultError::KeyDerivationUnavailable {
            reason: format!("vetKD key {key_name:?}: {e}"),
        })?;
    let reservation = st.write(|s| {
        let now = rt.now();
        let (vault, who) = right(s, &caller, args.vault_id, args.share_index, now)?;
        let cfg = s.config().vetkd.clone();
        reserve(s, &cfg, caller, &vault, who, fee, now)
    })?;
    let input = identity(args.vault_id, args.share_index);
    let result = rt
        .vetkd_derive_key(
            &reservation.key_name,
            CONTEXT,
            &input,
            &args.transport_public_key,
        )
        .await;
    st.write(|s| {
        let now = rt.now();
        let encrypted_key = match result {
            Ok(k) => k,
            Err(failure) => {
                release(s, caller, args.vault_id, &reservation);
                return Err(match failure {
                    VetKdFailure::InvalidTransportKey(reason) => {
                        VaultError::invalid("transport_public_key", reason)
                    }
                    VetKdFailure::Unavailable(reason) => {
                        VaultError::KeyDerivationUnavailable { reason }
                    }
                });
            }
        };
        // The fee is spent: count it even if the right was lost during the call.
        let mut t = s.vetkeys.totals();
        t.derived += 1;
        t.cycles = t.cycles.saturating_add(reservation.fee);
        s.vetkeys.set_totals(t);
        let (mut vault, who) = right(s, &caller, args.vault_id, args.share_index, now)?;
        if who == Deriver::Owner {
            vault_core::touch_owner(s, &mut vault, now, caller);
        }
        audit::append(
            s,
            &mut vault,
            now,
            caller,
            AuditAction::KeyDerived,
            format!(
                "share_index={} role={who:?} key={}",
                args.share_index, reservation.key_name
            ),
        );
        s.save_vault(&mut vault);
        Ok(EncryptedVetKeyReply {
            vault_id: args.vault_id,
            share_index: args.share_index,
            identity: serde_bytes::ByteBuf::from(input.to_vec()),
            encrypted_key: serde_bytes::ByteBuf::from(encrypted_key),
            key_name: reservation.key_name,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::types::{PlanSelection, Tier};

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    fn vault(status: VaultStatus, access_until: Option<u64>) -> VaultRecord {
        VaultRecord {
            id: 7,
            owner: p(1),
            name: "v".into(),
            status,
            plan: PlanSelection {
                tier: Tier::Basic,
                heir_slots: 2,
                witness_slot: true,
            },
            owner_age: 40,
            price_e8s: 1,
            unlock_rules: None,
            post_unlock_days: 30,
            audit_retention_days: 365,
            created_at: 0,
            updated_at: 0,
            status_changed_at: 0,
            paid_at: None,
            expires_at: None,
            activated_at: None,
            unlocked_at: None,
            access_until,
            deleted_at: None,
            last_owner_activity: 0,
            storage_committed_bytes: 0,
            storage_reserved_bytes: 0,
            item_count: 0,
            heir_count: 0,
            witness_joined: false,
            audit_next_seq: 0,
            audit_head: vec![0; 32],
            membership: Default::default(),
        }
    }

    #[test]
    fn identity_is_vault_id_big_endian_then_share_index() {
        assert_eq!(identity(0x0102, 3), [0, 0, 0, 0, 0, 0, 1, 2, 3]);
        assert_ne!(identity(1, 2), identity(2, 1));
    }

    const HEIR: Access = Access::Member {
        member_id: 4,
        role: MemberRole::Heir,
    };
    const WITNESS: Access = Access::Member {
        member_id: 5,
        role: MemberRole::Witness,
    };

    #[test]
    fn rights_follow_spec_16_for_every_status() {
        for status in VaultStatus::ALL {
            let v = vault(status, Some(1_000));
            let owner = check_right(&v, Access::Owner, None, 0, 10);
            if status == VaultStatus::Deleted {
                assert_eq!(owner, Err(VaultError::InvalidState { current: status }));
            } else {
                assert_eq!(owner, Ok(Deriver::Owner));
            }
            assert_eq!(
                check_right(&v, Access::Owner, None, 2, 10),
                Err(VaultError::NotAuthorized)
            );
            let heir = check_right(&v, HEIR, Some(2), 2, 10);
            if status == VaultStatus::Unlockable {
                assert_eq!(heir, Ok(Deriver::Heir));
            } else {
                assert_eq!(heir, Err(VaultError::InvalidState { current: status }));
            }
            for other in [0u8, 1, 3, 255] {
                assert_eq!(
                    check_right(&v, HEIR, Some(2), other, 10),
                    Err(VaultError::NotAuthorized)
                );
            }
            for share in [0u8, 1, 2] {
                assert_eq!(
                    check_right(&v, WITNESS, Some(1), share, 10),
                    Err(VaultError::NotAuthorized)
                );
                assert_eq!(
                    check_right(&v, Access::Outsider, None, share, 10),
                    Err(VaultError::NotAuthorized)
                );
            }
        }
    }

    #[test]
    fn heirs_lose_the_right_at_access_until_even_before_the_scheduler_runs() {
        let v = vault(VaultStatus::Unlockable, Some(1_000));
        assert_eq!(check_right(&v, HEIR, Some(2), 2, 999), Ok(Deriver::Heir));
        assert_eq!(
            check_right(&v, HEIR, Some(2), 2, 1_000),
            Err(VaultError::InvalidState {
                current: VaultStatus::Expired
            })
        );
        // The owner keeps identity 0.
        assert_eq!(
            check_right(&v, Access::Owner, None, 0, 5_000),
            Ok(Deriver::Owner)
        );
    }

    #[test]
    fn seconds_to_the_next_utc_day() {
        assert_eq!(secs_to_next_day(NANOS_PER_DAY - NANOS_PER_SEC), 1);
        assert_eq!(secs_to_next_day(NANOS_PER_DAY), 86_400);
        assert_eq!(secs_to_next_day(NANOS_PER_DAY + 1), 86_400);
    }
}
