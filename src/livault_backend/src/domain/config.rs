//! Canister configuration: init and upgrade arguments, their validation, and the stored record.
//!
//! Every duration and price from the SPEC is configuration with the SPEC's default. Upgrade
//! arguments change only the fields they name.

use candid::Principal;

use super::error::{VaultError, VaultResult};
use crate::model::config::{
    Account, Config, Durations, InitArgs, Limits, Pricing, UpgradeArgs, VetKdConfig,
    DEFAULT_STABLE_MEMORY_HIGH_WATER_BYTES, MAINNET_LEDGER, MAX_ADMINS, MAX_KEY_NAME_CHARS,
    MAX_PRICE_COMPONENT_E8S, MAX_STABLE_MEMORY_BYTES,
};
use crate::model::types::{Tier, TierInfo};

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
                "at most 31 GiB (the memory manager addresses 32 GiB)",
            ));
        }
        Ok(())
    }

    /// The capacity high-water mark in effect.
    pub fn high_water_bytes(&self) -> u64 {
        // A mark stored by an earlier version (up to 500 GiB) is held to today's maximum.
        self.stable_memory_high_water_bytes
            .unwrap_or(DEFAULT_STABLE_MEMORY_HIGH_WATER_BYTES)
            .min(MAX_STABLE_MEMORY_BYTES)
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
    use crate::model::config::E8S_PER_ICP;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    #[test]
    fn the_capacity_mark_stays_below_what_the_memory_manager_addresses() {
        let gib = 1u64 << 30;
        let mut limits = Limits::default();
        assert_eq!(limits.high_water_bytes(), 30 * gib);
        limits.stable_memory_high_water_bytes = Some(31 * gib);
        assert!(limits.validate().is_ok());
        assert_eq!(limits.high_water_bytes(), 31 * gib);
        limits.stable_memory_high_water_bytes = Some(31 * gib + 1);
        let err = limits.validate().unwrap_err();
        assert_eq!(
            err,
            VaultError::invalid(
                "limits.stable_memory_high_water_bytes",
                "at most 31 GiB (the memory manager addresses 32 GiB)"
            )
        );
        // A mark an earlier version stored (it allowed up to 500 GiB) is held to 31 GiB.
        limits.stable_memory_high_water_bytes = Some(200 * gib);
        assert_eq!(limits.high_water_bytes(), 31 * gib);
        // 32 768 buckets of 1 MiB: what `storage::memory` opens new installs with.
        assert!(31 * gib < 32_768 * (1 << 20));
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
