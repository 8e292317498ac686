//! Canister configuration records: init and upgrade arguments and the stored configuration,
//! with the SPEC's defaults. Their validation is `domain::config`.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

pub use super::types::Account;
use super::types::{Tier, TierInfo};

/// Mainnet ICP ledger canister id.
pub const MAINNET_LEDGER: &str = "ryjl3-tyaaa-aaaaa-aaaba-cai";
/// 1 ICP in e8s.
pub const E8S_PER_ICP: u64 = 100_000_000;
/// Largest price component an admin may configure (1 000 000 ICP): keeps every price
/// computation far inside `u64`.
pub const MAX_PRICE_COMPONENT_E8S: u64 = 1_000_000 * E8S_PER_ICP;
/// Most admins the canister keeps.
pub const MAX_ADMINS: usize = 32;

// Durations (SPEC defaults in brackets).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Durations {
    // Vault validity after payment [3650 days].
    pub validity_days: u32,
    // Unpaid drafts are purged after [7 days].
    pub draft_ttl_days: u32,
    // `GraceMaster` → `GraceHeir` after [14 days].
    pub grace_master_days: u32,
    // `GraceHeir` → `Deleted` after [14 days].
    pub grace_heir_days: u32,
    // `Expired` → `Deleted` after [30 days].
    pub tombstone_after_days: u32,
    // Default heir access window after unlock [365 days].
    pub default_post_unlock_days: u16,
    // Default audit retention [365 days].
    pub default_audit_retention_days: u16,
    // Default wait after an unlock request [7 days].
    pub default_request_wait_days: u32,
    // Payment session lifetime [1800 s].
    pub payment_session_secs: u64,
    // Invite lifetime [86 400 s].
    pub invite_secs: u64,
    // Idle uploads are collected after [86 400 s].
    pub upload_idle_secs: u64,
    // Download ticket lifetime [3600 s].
    pub download_ticket_secs: u64,
    // Scheduler tick interval [60 s].
    pub timer_interval_secs: u64,
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            validity_days: 3650,
            draft_ttl_days: 7,
            grace_master_days: 14,
            grace_heir_days: 14,
            tombstone_after_days: 30,
            default_post_unlock_days: 365,
            default_audit_retention_days: 365,
            default_request_wait_days: 7,
            payment_session_secs: 1800,
            invite_secs: 86_400,
            upload_idle_secs: 86_400,
            download_ticket_secs: 3600,
            timer_interval_secs: 60,
        }
    }
}

// Prices (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Pricing {
    // One entry per tier, in tier order.
    pub tiers: Vec<TierInfo>,
    pub heir_slot_fee_e8s: u64,
    pub witness_fee_e8s: u64,
}

impl Default for Pricing {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        let tier = |tier, mib: u64, max_heirs, tenths_icp: u64| TierInfo {
            tier,
            storage_bytes: mib * MIB,
            max_heirs,
            storage_price_e8s: tenths_icp * (E8S_PER_ICP / 10),
        };
        Pricing {
            tiers: vec![
                tier(Tier::Basic, 5, 2, 30),
                tier(Tier::Standard, 10, 3, 60),
                tier(Tier::Premium, 50, 5, 270),
                tier(Tier::Deluxe, 100, 8, 550),
                tier(Tier::Titan, 250, 10, 1400),
            ],
            heir_slot_fee_e8s: 2 * (E8S_PER_ICP / 10),
            witness_fee_e8s: E8S_PER_ICP / 10,
        }
    }
}

// Limits on sizes and counts.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Limits {
    // Largest upload chunk [1 MiB]; must stay below the 2 MiB ingress limit.
    pub max_chunk_bytes: u32,
    // Vaults (not deleted) one principal may own [20].
    pub max_vaults_per_owner: u32,
    // Items per vault [1000].
    pub max_items_per_vault: u32,
    // Downloads per user per day [3]; owners are unlimited.
    pub downloads_per_day: u32,
    // Capacity high-water mark of the canister's stable memory, in bytes
    // [[`DEFAULT_STABLE_MEMORY_HIGH_WATER_BYTES`]]: at or past it `create_vault` and
    // `begin_upload` are refused (`PlanLimit { resource = "canister_storage" }`) while
    // existing vaults keep working (check-in, downloads, payments, members).
    #[serde(default)]
    pub stable_memory_high_water_bytes: Option<u64>,
}

/// Default capacity high-water mark: 30 GiB. The memory manager's 32 768 buckets of 1 MiB
/// address 32 GiB (`storage::memory`); past the mark existing vaults keep writing metadata,
/// so the mark leaves 2 GiB of that for them.
pub const DEFAULT_STABLE_MEMORY_HIGH_WATER_BYTES: u64 = 30 << 30;
/// Largest high-water mark an admin may set: 31 GiB (1 GiB below what the memory manager
/// addresses; docs/decisions.md, "Memory-manager buckets of 1 MiB").
pub const MAX_STABLE_MEMORY_BYTES: u64 = 31 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_chunk_bytes: 1024 * 1024,
            max_vaults_per_owner: 20,
            max_items_per_vault: 1000,
            downloads_per_day: 3,
            stable_memory_high_water_bytes: None,
        }
    }
}

// vetKD key release (SPEC §16, docs/keys.md): the master key and the derivation limits.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct VetKdConfig {
    // vetKD master key name (curve bls12_381_g2): `key_1` (mainnet production), `test_key_1`
    // (mainnet test key) or a local test key (`dfx_test_key` on dfx and livault-local) [key_1].
    pub key_name: String,
    // Derivations per owner, vault and UTC day [10].
    pub owner_derivations_per_day: u32,
    // Derivations per heir, vault and UTC day [3] (like downloads).
    pub heir_derivations_per_day: u32,
    // Derivations per vault in each 30-day budget window [60].
    pub vault_derivations_per_window: u32,
    // Derivations per UTC day for all unpaid (`Draft`) vaults together [20]; 0 = none.
    pub unpaid_derivations_per_day: u32,
}

impl Default for VetKdConfig {
    fn default() -> Self {
        VetKdConfig {
            key_name: "key_1".to_string(),
            owner_derivations_per_day: 10,
            heir_derivations_per_day: 3,
            vault_derivations_per_window: 60,
            unpaid_derivations_per_day: 20,
        }
    }
}

/// Longest vetKD key name accepted.
pub const MAX_KEY_NAME_CHARS: usize = 64;

/// The stored configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub admins: Vec<Principal>,
    pub ledger_canister_id: Principal,
    pub treasury: Account,
    pub durations: Durations,
    pub pricing: Pricing,
    pub limits: Limits,
    #[serde(default)]
    pub paused: bool,
    /// vetKD key release (configurations stored before it existed read the defaults).
    #[serde(default)]
    pub vetkd: VetKdConfig,
}

// Install arguments. Every field is optional: missing ones take the SPEC defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    // Admins; when empty, the principal that installs the canister becomes the only admin.
    pub admins: Vec<Principal>,
    // ICP ledger canister id [ryjl3-tyaaa-aaaaa-aaaba-cai].
    pub ledger_canister_id: Option<Principal>,
    // Where payments go [the first admin's default account].
    pub treasury: Option<Account>,
    pub durations: Option<Durations>,
    pub pricing: Option<Pricing>,
    pub limits: Option<Limits>,
    // vetKD key name and derivation limits [VetKdConfig::default].
    pub vetkd: Option<VetKdConfig>,
}

// Upgrade arguments: only the named fields change.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    // Replaces the admin list when set.
    pub admins: Option<Vec<Principal>>,
    pub ledger_canister_id: Option<Principal>,
    pub treasury: Option<Account>,
    pub durations: Option<Durations>,
    pub pricing: Option<Pricing>,
    pub limits: Option<Limits>,
    // Replaces the vetKD settings when set (a new key name refetches the public key).
    pub vetkd: Option<VetKdConfig>,
}

// The canister argument: `(opt LiVaultArgs)` in the `.did`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum LiVaultArgs {
    Init(InitArgs),
    Upgrade(UpgradeArgs),
}
