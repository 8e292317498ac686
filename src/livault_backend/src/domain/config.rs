//! Canister configuration: init and upgrade arguments, their validation, and the stored record.
//!
//! Every duration and price from the SPEC is configuration with the SPEC's default. Upgrade
//! arguments change only the fields they name.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use super::error::{VaultError, VaultResult};
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

/// An ICRC-1 account (owner + optional 32-byte subaccount).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Account {
    pub owner: Principal,
    pub subaccount: Option<serde_bytes::ByteBuf>,
}

/// Durations (SPEC defaults in brackets).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Durations {
    /// Vault validity after payment [3650 days].
    pub validity_days: u32,
    /// Unpaid drafts are purged after [7 days].
    pub draft_ttl_days: u32,
    /// `GraceMaster` → `GraceHeir` after [14 days].
    pub grace_master_days: u32,
    /// `GraceHeir` → `Deleted` after [14 days].
    pub grace_heir_days: u32,
    /// `Expired` → `Deleted` after [30 days].
    pub tombstone_after_days: u32,
    /// Default heir access window after unlock [365 days].
    pub default_post_unlock_days: u16,
    /// Default audit retention [365 days].
    pub default_audit_retention_days: u16,
    /// Default wait after an unlock request [7 days].
    pub default_request_wait_days: u32,
    /// Payment session lifetime [1800 s].
    pub payment_session_secs: u64,
    /// Invite lifetime [86 400 s].
    pub invite_secs: u64,
    /// Idle uploads are collected after [86 400 s].
    pub upload_idle_secs: u64,
    /// Download ticket lifetime [3600 s].
    pub download_ticket_secs: u64,
    /// Scheduler tick interval [60 s].
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

/// Prices (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Pricing {
    /// One entry per tier, in tier order.
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

impl Pricing {
    /// The entry of `tier` (validated pricing has every tier exactly once, in order).
    pub fn tier(&self, tier: Tier) -> &TierInfo {
        &self.tiers[tier.rank()]
    }

    /// Checks an admin-supplied price table: every tier once in order, bounded prices, tier
    /// limits growing with the tier.
    pub fn validate(&self) -> VaultResult<()> {
        if self.tiers.len() != Tier::ALL.len() {
            return Err(VaultError::invalid(
                "pricing.tiers",
                "exactly one entry per tier",
            ));
        }
        for (info, tier) in self.tiers.iter().zip(Tier::ALL) {
            if info.tier != tier {
                return Err(VaultError::invalid(
                    "pricing.tiers",
                    "tiers must be in tier order",
                ));
            }
            if info.storage_price_e8s == 0 || info.storage_price_e8s > MAX_PRICE_COMPONENT_E8S {
                return Err(VaultError::invalid(
                    "pricing.tiers.storage_price_e8s",
                    "out of range",
                ));
            }
            if info.max_heirs == 0 || info.max_heirs > 50 {
                return Err(VaultError::invalid(
                    "pricing.tiers.max_heirs",
                    "must be 1..=50",
                ));
            }
            if info.storage_bytes == 0 || info.storage_bytes > 1 << 40 {
                return Err(VaultError::invalid(
                    "pricing.tiers.storage_bytes",
                    "out of range",
                ));
            }
        }
        if self.heir_slot_fee_e8s > MAX_PRICE_COMPONENT_E8S
            || self.witness_fee_e8s > MAX_PRICE_COMPONENT_E8S
        {
            return Err(VaultError::invalid("pricing", "fee out of range"));
        }
        Ok(())
    }
}

/// Limits on sizes and counts.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Limits {
    /// Largest upload chunk [1 MiB]; must stay below the 2 MiB ingress limit.
    pub max_chunk_bytes: u32,
    /// Vaults (not deleted) one principal may own [20].
    pub max_vaults_per_owner: u32,
    /// Items per vault [1000].
    pub max_items_per_vault: u32,
    /// Downloads per user per day [3]; owners are unlimited.
    pub downloads_per_day: u32,
    /// Capacity high-water mark of the canister's stable memory, in bytes
    /// [[`DEFAULT_STABLE_MEMORY_HIGH_WATER_BYTES`]]: at or past it `create_vault` and
    /// `begin_upload` are refused (`PlanLimit { resource = "canister_storage" }`) while
    /// existing vaults keep working (check-in, downloads, payments, members).
    #[serde(default)]
    pub stable_memory_high_water_bytes: Option<u64>,
}

/// Default capacity high-water mark: 100 GiB of the IC's 500 GiB stable-memory limit.
pub const DEFAULT_STABLE_MEMORY_HIGH_WATER_BYTES: u64 = 100 << 30;
/// Largest high-water mark an admin may set: the IC's stable-memory limit.
pub const MAX_STABLE_MEMORY_BYTES: u64 = 500 << 30;

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

/// vetKD key release (SPEC §16, docs/keys.md): the master key and the derivation limits.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct VetKdConfig {
    /// vetKD master key name (curve bls12_381_g2): `key_1` (mainnet production), `test_key_1`
    /// (mainnet test key) or a local test key (`dfx_test_key` on dfx and livault-local) [key_1].
    pub key_name: String,
    /// Derivations per owner, vault and UTC day [10].
    pub owner_derivations_per_day: u32,
    /// Derivations per heir, vault and UTC day [3] (like downloads).
    pub heir_derivations_per_day: u32,
    /// Derivations per vault in each 30-day budget window [60].
    pub vault_derivations_per_window: u32,
    /// Derivations per UTC day for all unpaid (`Draft`) vaults together [20]; 0 = none.
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

impl VetKdConfig {
    /// Key name format and bounds on every limit. Whether the key exists is for the
    /// management canister to say (an unknown name is refused at derivation).
    pub fn validate(&self) -> VaultResult<()> {
        let name = &self.key_name;
        if name.is_empty()
            || name.len() > MAX_KEY_NAME_CHARS
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(VaultError::invalid(
                "vetkd.key_name",
                format!("1..={MAX_KEY_NAME_CHARS} characters of A-Z a-z 0-9 _ -"),
            ));
        }
        let range = |field: &str, v: u32, lo: u32, hi: u32| {
            if v < lo || v > hi {
                Err(VaultError::invalid(field, format!("must be {lo}..={hi}")))
            } else {
                Ok(())
            }
        };
        range(
            "vetkd.owner_derivations_per_day",
            self.owner_derivations_per_day,
            1,
            1000,
        )?;
        range(
            "vetkd.heir_derivations_per_day",
            self.heir_derivations_per_day,
            1,
            1000,
        )?;
        range(
            "vetkd.vault_derivations_per_window",
            self.vault_derivations_per_window,
            1,
            100_000,
        )?;
        range(
            "vetkd.unpaid_derivations_per_day",
            self.unpaid_derivations_per_day,
            0,
            100_000,
        )
    }
}

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

/// Install arguments. Every field is optional: missing ones take the SPEC defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    /// Admins; when empty, the principal that installs the canister becomes the only admin.
    pub admins: Vec<Principal>,
    /// ICP ledger canister id [ryjl3-tyaaa-aaaaa-aaaba-cai].
    pub ledger_canister_id: Option<Principal>,
    /// Where payments go [the first admin's default account].
    pub treasury: Option<Account>,
    pub durations: Option<Durations>,
    pub pricing: Option<Pricing>,
    pub limits: Option<Limits>,
    /// vetKD key name and derivation limits [VetKdConfig::default].
    pub vetkd: Option<VetKdConfig>,
}

/// Upgrade arguments: only the named fields change.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    /// Replaces the admin list when set.
    pub admins: Option<Vec<Principal>>,
    pub ledger_canister_id: Option<Principal>,
    pub treasury: Option<Account>,
    pub durations: Option<Durations>,
    pub pricing: Option<Pricing>,
    pub limits: Option<Limits>,
    /// Replaces the vetKD settings when set (a new key name refetches the public key).
    pub vetkd: Option<VetKdConfig>,
}

/// The canister argument: `(opt LiVaultArgs)` in the `.did`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum LiVaultArgs {
    Init(InitArgs),
    Upgrade(UpgradeArgs),
}

fn validate_admins(admins: &[Principal]) -> VaultResult<()> {
    if admins.len() > MAX_ADMINS {
        return Err(VaultError::invalid(
            "admins",
            format!("at most {MAX_ADMINS}"),
        ));
    }
    if admins.contains(&Principal::anonymous()) {
        return Err(VaultError::invalid(
            "admins",
            "the anonymous principal cannot be an admin",
        ));
    }
    Ok(())
}

pub(crate) fn validate_account(field: &str, account: &Account) -> VaultResult<()> {
    if let Some(sub) = &account.subaccount {
        if sub.len() != 32 {
            return Err(VaultError::invalid(field, "subaccount must be 32 bytes"));
        }
    }
    if account.owner == Principal::anonymous() {
        return Err(VaultError::invalid(field, "owner cannot be anonymous"));
    }
    Ok(())
}

impl Durations {
    /// Bounds on every duration.
    pub fn validate(&self) -> VaultResult<()> {
        let days = |field: &str, v: u32, lo: u32, hi: u32| {
            if v < lo || v > hi {
                Err(VaultError::invalid(
                    field,
                    format!("must be {lo}..={hi} days"),
                ))
            } else {
                Ok(())
            }
        };
        days("durations.validity_days", self.validity_days, 1, 36_500)?;
        days("durations.draft_ttl_days", self.draft_ttl_days, 1, 365)?;
        days(
            "durations.grace_master_days",
            self.grace_master_days,
            1,
            365,
        )?;
        days("durations.grace_heir_days", self.grace_heir_days, 1, 365)?;
        days(
            "durations.tombstone_after_days",
            self.tombstone_after_days,
            1,
            3650,
        )?;
        days(
            "durations.default_request_wait_days",
            self.default_request_wait_days,
            0,
            365,
        )?;
        if !(1..=365).contains(&self.default_post_unlock_days) {
            return Err(VaultError::invalid(
                "durations.default_post_unlock_days",
                "must be 1..=365",
            ));
        }
        if !(30..=3650).contains(&self.default_audit_retention_days) {
            return Err(VaultError::invalid(
                "durations.default_audit_retention_days",
                "must be 30..=3650",
            ));
        }
        let secs = |field: &str, v: u64| {
            if v == 0 || v > 365 * 86_400 {
                Err(VaultError::invalid(field, "must be 1 s ..= 365 days"))
            } else {
                Ok(())
            }
        };
        secs("durations.payment_session_secs", self.payment_session_secs)?;
        secs("durations.invite_secs", self.invite_secs)?;
        secs("durations.upload_idle_secs", self.upload_idle_secs)?;
        secs("durations.download_ticket_secs", self.download_ticket_secs)?;
        secs("durations.timer_interval_secs", self.timer_interval_secs)?;
        Ok(())
    }
}

impl Limits {
    /// Bounds on every limit.
    pub fn validate(&self) -> VaultResult<()> {
        if self.max_chunk_bytes < 1024 || self.max_chunk_bytes > 1_900_000 {
            return Err(VaultError::invalid(
                "limits.max_chunk_bytes",
                "must be 1 KiB..=1 900 000 bytes (below the 2 MiB ingress limit)",
            ));
        }
        if self.max_vaults_per_owner == 0 || self.max_vaults_per_owner > 1000 {
            return Err(VaultError::invalid(
                "limits.max_vaults_per_owner",
                "must be 1..=1000",
            ));
        }
        if self.max_items_per_vault == 0 || self.max_items_per_vault > 10_000 {
            return Err(VaultError::invalid(
                "limits.max_items_per_vault",
                "must be 1..=10000",
            ));
        }
        if self.downloads_per_day == 0 || self.downloads_per_day > 1000 {
            return Err(VaultError::invalid(
                "limits.downloads_per_day",
                "must be 1..=1000",
            ));
        }
        if self
            .stable_memory_high_water_bytes
            .is_some_and(|b| b > MAX_STABLE_MEMORY_BYTES)
        {
            return Err(VaultError::invalid(
                "limits.stable_memory_high_water_bytes",
                "at most 500 GiB (the IC's stable-memory limit)",
            ));
        }
        Ok(())
    }

    /// The capacity high-water mark in effect.
    pub fn high_water_bytes(&self) -> u64 {
        self.stable_memory_high_water_bytes
            .unwrap_or(DEFAULT_STABLE_MEMORY_HIGH_WATER_BYTES)
    }
}

impl Config {
    /// Builds the configuration from install arguments; `installer` becomes the admin when
    /// none is named.
    pub fn from_init(args: InitArgs, installer: Principal) -> VaultResult<Config> {
        let admins = if args.admins.is_empty() && installer != Principal::anonymous() {
            vec![installer]
        } else {
            args.admins
        };
        validate_admins(&admins)?;
        let treasury = match args.treasury {
            Some(t) => t,
            None => Account {
                owner: *admins.first().ok_or_else(|| {
                    VaultError::invalid("treasury", "needed when no admin is named")
                })?,
                subaccount: None,
            },
        };
        let ledger_canister_id = match args.ledger_canister_id {
            Some(id) => id,
            None => Principal::from_text(MAINNET_LEDGER)
                .map_err(|_| VaultError::invalid("ledger_canister_id", "bad default"))?,
        };
        let config = Config {
            admins,
            ledger_canister_id,
            treasury,
            durations: args.durations.unwrap_or_default(),
            pricing: args.pricing.unwrap_or_default(),
            limits: args.limits.unwrap_or_default(),
            paused: false,
            vetkd: args.vetkd.unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Applies upgrade arguments: returns the new configuration, or an error and no change.
    pub fn apply_upgrade(&self, args: UpgradeArgs) -> VaultResult<Config> {
        let mut next = self.clone();
        if let Some(admins) = args.admins {
            next.admins = admins;
        }
        if let Some(id) = args.ledger_canister_id {
            next.ledger_canister_id = id;
        }
        if let Some(t) = args.treasury {
            next.treasury = t;
        }
        if let Some(d) = args.durations {
            next.durations = d;
        }
        if let Some(p) = args.pricing {
            next.pricing = p;
        }
        if let Some(l) = args.limits {
            next.limits = l;
        }
        if let Some(v) = args.vetkd {
            next.vetkd = v;
        }
        next.validate()?;
        Ok(next)
    }

    /// Checks every part.
    pub fn validate(&self) -> VaultResult<()> {
        validate_admins(&self.admins)?;
        validate_account("treasury", &self.treasury)?;
        self.durations.validate()?;
        self.pricing.validate()?;
        self.limits.validate()?;
        self.vetkd.validate()?;
        // The largest item a tier allows must fit a blob's chunk index (issue #12 L6: 1 KiB
        // chunks and a 250 MiB tier overflowed it).
        let chunk = u64::from(self.limits.max_chunk_bytes);
        let max_chunks = crate::storage::chunk_index::MAX_CHUNKS;
        if let Some(t) = self
            .pricing
            .tiers
            .iter()
            .find(|t| t.storage_bytes.div_ceil(chunk) > max_chunks)
        {
            return Err(VaultError::invalid(
                "limits.max_chunk_bytes",
                format!(
                    "{chunk}-byte chunks need more than {max_chunks} chunks for the {:?} tier's {} bytes",
                    t.tier, t.storage_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Whether `p` is an admin.
    pub fn is_admin(&self, p: &Principal) -> bool {
        self.admins.contains(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::from_init(InitArgs::default(), p(1)).unwrap();
        assert_eq!(c.admins, vec![p(1)]);
        assert_eq!(c.treasury.owner, p(1));
        assert_eq!(c.ledger_canister_id.to_text(), MAINNET_LEDGER);
        assert_eq!(c.durations.validity_days, 3650);
        assert_eq!(c.durations.draft_ttl_days, 7);
        assert_eq!(c.durations.payment_session_secs, 30 * 60);
        assert_eq!(
            c.pricing.tier(Tier::Titan).storage_price_e8s,
            140 * E8S_PER_ICP
        );
        assert_eq!(c.pricing.tier(Tier::Basic).storage_bytes, 5 * 1024 * 1024);
        assert_eq!(c.pricing.heir_slot_fee_e8s, 20_000_000);
        assert_eq!(c.pricing.witness_fee_e8s, 10_000_000);
        assert_eq!(c.vetkd.key_name, "key_1");
    }

    #[test]
    fn vetkd_settings_are_validated_and_upgradable() {
        let c = Config::from_init(InitArgs::default(), p(1)).unwrap();
        for bad in ["", "key 1", "k\u{e9}y", &"k".repeat(65)] {
            let v = VetKdConfig {
                key_name: bad.to_string(),
                ..Default::default()
            };
            assert!(
                c.apply_upgrade(UpgradeArgs {
                    vetkd: Some(v),
                    ..Default::default()
                })
                .is_err(),
                "{bad:?}"
            );
        }
        let zero_heir = VetKdConfig {
            heir_derivations_per_day: 0,
            ..Default::default()
        };
        assert!(c
            .apply_upgrade(UpgradeArgs {
                vetkd: Some(zero_heir),
                ..Default::default()
            })
            .is_err());
        let next = c
            .apply_upgrade(UpgradeArgs {
                vetkd: Some(VetKdConfig {
                    key_name: "test_key_1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(next.vetkd.key_name, "test_key_1");
        assert_eq!(next.pricing, c.pricing);
    }

    #[test]
    fn anonymous_installer_needs_explicit_treasury() {
        let err = Config::from_init(InitArgs::default(), Principal::anonymous()).unwrap_err();
        assert!(matches!(err, VaultError::InvalidInput { ref field, .. } if field == "treasury"));
    }

    #[test]
    fn upgrade_changes_only_named_fields() {
        let c = Config::from_init(InitArgs::default(), p(1)).unwrap();
        let next = c
            .apply_upgrade(UpgradeArgs {
                admins: Some(vec![p(2), p(3)]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(next.admins, vec![p(2), p(3)]);
        assert_eq!(next.pricing, c.pricing);
        assert_eq!(next.treasury, c.treasury);
        assert_eq!(next.durations, c.durations);
    }

    #[test]
    fn invalid_config_is_refused() {
        let c = Config::from_init(InitArgs::default(), p(1)).unwrap();
        let mut bad_pricing = Pricing::default();
        bad_pricing.tiers.swap(0, 1);
        assert!(c
            .apply_upgrade(UpgradeArgs {
                pricing: Some(bad_pricing),
                ..Default::default()
            })
            .is_err());
        let bad_durations = Durations {
            validity_days: 0,
            ..Default::default()
        };
        assert!(c
            .apply_upgrade(UpgradeArgs {
                durations: Some(bad_durations),
                ..Default::default()
            })
            .is_err());
        let bad_limits = Limits {
            max_chunk_bytes: 3 * 1024 * 1024,
            ..Default::default()
        };
        assert!(c
            .apply_upgrade(UpgradeArgs {
                limits: Some(bad_limits),
                ..Default::default()
            })
            .is_err());
        assert!(c
            .apply_upgrade(UpgradeArgs {
                admins: Some(vec![Principal::anonymous()]),
                ..Default::default()
            })
            .is_err());
        let bad_treasury = Account {
            owner: p(4),
            subaccount: Some(serde_bytes::ByteBuf::from(vec![0; 31])),
        };
        assert!(c
            .apply_upgrade(UpgradeArgs {
                treasury: Some(bad_treasury),
                ..Default::default()
            })
            .is_err());
    }
}
