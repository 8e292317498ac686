//! Integer-e8s pricing (SPEC §5): plan price with age uplift, upgrade proration.
//!
//! No floating point. Every step uses checked arithmetic; with validated prices
//! (each component ≤ 1 000 000 ICP) no step can overflow, and if a configuration ever made one
//! overflow the caller gets a typed error, never a wrapped number.

use super::error::{VaultError, VaultResult};
use crate::model::config::Pricing;
use crate::model::records::VaultRecord;
use crate::model::types::{AgeBracket, PlanSelection, Quote, UpgradeQuote, NANOS_PER_DAY};
use crate::storage::State;

/// Youngest and oldest accepted owner age.
pub const MIN_AGE: u8 = 18;
/// Oldest accepted owner age.
pub const MAX_AGE: u8 = 120;
/// Age brackets: up to `max_age` inclusive → uplift percent. Above the last bracket: 25 %.
pub const AGE_BRACKETS: [(u8, u8); 5] = [(30, 0), (40, 5), (50, 10), (60, 15), (70, 20)];
/// Uplift above the last bracket.
pub const MAX_UPLIFT_PERCENT: u8 = 25;

fn overflow() -> VaultError {
    VaultError::invalid("pricing", "arithmetic overflow")
}

/// Uplift percent for an owner age; ages outside 18..=120 are refused.
pub fn age_uplift_percent(age: u8) -> VaultResult<u8> {
    if !(MIN_AGE..=MAX_AGE).contains(&age) {
        return Err(VaultError::invalid(
            "owner_age",
            format!("must be {MIN_AGE}..={MAX_AGE}"),
        ));
    }
    Ok(AGE_BRACKETS
        .iter()
        .find(|(max, _)| age <= *max)
        .map(|(_, pct)| *pct)
        .unwrap_or(MAX_UPLIFT_PERCENT))
}

/// The brackets as the API lists them.
pub fn age_brackets() -> Vec<AgeBracket> {
    AGE_BRACKETS
        .iter()
        .map(|&(max_age, uplift_percent)| AgeBracket {
            max_age,
            uplift_percent,
        })
        .collect()
}

/// Checks a plan selection against the tier's limits: 1..=max heirs, at most one witness.
pub fn validate_plan(pricing: &Pricing, plan: &PlanSelection) -> VaultResult<()> {
    let max = pricing.tier(plan.tier).max_heirs;
    if plan.heir_slots == 0 || plan.heir_slots > max {
        return Err(VaultError::invalid(
            "plan.heir_slots",
            format!("must be 1..={max} for this tier"),
        ));
    }
    Ok(())
}

/// Full price of a plan for an owner age:
/// `(storage + heirs·heir_fee + witness·witness_fee) · (100 + uplift) / 100`.
///
/// The division is exact for the default prices; for others it rounds down (the formula's
/// integer reading).
pub fn quote(pricing: &Pricing, plan: &PlanSelection, owner_age: u8) -> VaultResult<Quote> {
    validate_plan(pricing, plan)?;
    let uplift = age_uplift_percent(owner_age)?;
    let storage = pricing.tier(plan.tier).storage_price_e8s;
    let heirs = pricing
        .heir_slot_fee_e8s
        .checked_mul(u64::from(plan.heir_slots))
        .ok_or_else(overflow)?;
    let witness = if plan.witness_slot {
        pricing.witness_fee_e8s
    } else {
        0
    };
    let subtotal = storage
        .checked_add(heirs)
        .and_then(|s| s.checked_add(witness))
        .ok_or_else(overflow)?;
    let total = subtotal
        .checked_mul(100 + u64::from(uplift))
        .ok_or_else(overflow)?
        / 100;
    Ok(Quote {
        plan: *plan,
        storage_e8s: storage,
        heir_slots_e8s: heirs,
        witness_e8s: witness,
        age_uplift_percent: uplift,
        total_e8s: total,
    })
}

/// Whether `to` is an upgrade of `from`: tier not lower, heir slots not fewer, witness not
/// dropped, and at least one of them larger.
pub fn is_upgrade(from: &PlanSelection, to: &PlanSelection) -> bool {
    let not_lower = to.tier.rank() >= from.tier.rank()
        && to.heir_slots >= from.heir_slots
        && (to.witness_slot || !from.witness_slot);
    not_lower && to != from
}

/// Whole days left until `expires_at`, rounded up (a started day counts), at most
/// `validity_days`.
pub fn remaining_days(now: u64, expires_at: u64, validity_days: u32) -> u64 {
    let left = expires_at.saturating_sub(now);
    left.div_ceil(NANOS_PER_DAY).min(u64::from(validity_days))
}

/// Prorated upgrade price: `(new − old) · remaining_days / validity_days`, rounded up to the
/// e8s. `new_price < old_price` is refused (upgrades never go down).
pub fn prorate(
    old_price: u64,
    new_price: u64,
    remaining_days: u64,
    validity_days: u32,
) -> VaultResult<u64> {
    if validity_days == 0 {
        return Err(VaultError::invalid("validity_days", "must be positive"));
    }
    let diff = new_price
        .checked_sub(old_price)
        .ok_or_else(|| VaultError::invalid("plan", "an upgrade cannot cost less"))?;
    let num = u128::from(diff)
        .checked_mul(u128::from(remaining_days))
        .ok_or_else(overflow)?;
    let amount = num.div_ceil(u128::from(validity_days));
    u64::try_from(amount).map_err(|_| overflow())
}

/// What moving `vault` to `to` costs at `now`: `InvalidInput` when `to` is not an upgrade.
/// The current plan is priced at today's prices too, so a price change is not billed.
pub fn upgrade_quote(
    state: &State,
    vault: &VaultRecord,
    to: PlanSelection,
    now: u64,
) -> VaultResult<UpgradeQuote> {
    if !is_upgrade(&vault.plan, &to) {
        return Err(VaultError::invalid(
            "plan",
            "an upgrade needs a higher tier or more slots, and never fewer",
        ));
    }
    let config = state.config();
    let new = quote(&config.pricing, &to, vault.owner_age)?;
    let old = quote(&config.pricing, &vault.plan, vault.owner_age)?;
    let validity = config.durations.validity_days;
    let remaining = remaining_days(now, vault.expires_at.unwrap_or(0), validity);
    let amount = prorate(old.total_e8s, new.total_e8s, remaining, validity)?;
    Ok(UpgradeQuote {
        vault_id: vault.id,
        from: vault.plan,
        to,
        old_price_e8s: old.total_e8s,
        new_price_e8s: new.total_e8s,
        remaining_days: remaining,
        amount_e8s: amount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::E8S_PER_ICP;
    use crate::model::types::Tier;

    const ICP: u64 = E8S_PER_ICP;

    #[test]
    fn every_tier_age_and_witness_choice() {
        let pricing = Pricing::default();
        let storage = [3 * ICP, 6 * ICP, 27 * ICP, 55 * ICP, 140 * ICP];
        let max_heirs = [2u8, 3, 5, 8, 10];
        // (age, uplift) covering both ends of every bracket.
        let ages = [
            (18, 0),
            (30, 0),
            (31, 5),
            (40, 5),
            (41, 10),
            (50, 10),
            (51, 15),
            (60, 15),
            (61, 20),
            (70, 20),
            (71, 25),
            (120, 25),
        ];
        for (i, tier) in Tier::ALL.into_iter().enumerate() {
            for heirs in 1..=max_heirs[i] {
                for witness in [false, true] {
                    for (age, uplift) in ages {
                        let plan = PlanSelection {
                            tier,
                            heir_slots: heirs,
                            witness_slot: witness,
                        };
                        let q = quote(&pricing, &plan, age).unwrap();
                        let base = storage[i]
                            + u64::from(heirs) * (ICP / 5)
                            + if witness { ICP / 10 } else { 0 };
                        assert_eq!(q.age_uplift_percent, uplift, "age {age}");
                        assert_eq!(q.total_e8s, base * (100 + uplift as u64) / 100);
                        assert_eq!(q.storage_e8s, storage[i]);
                    }
                }
            }
        }
    }

    #[test]
    fn worked_example() {
        // Premium, 3 heirs, witness, age 45: (27 + 0.6 + 0.1) · 1.10 = 30.47 ICP.
        let plan = PlanSelection {
            tier: Tier::Premium,
            heir_slots: 3,
            witness_slot: true,
        };
        let q = quote(&Pricing::default(), &plan, 45).unwrap();
        assert_eq!(q.total_e8s, 3_047_000_000);
    }

    #[test]
    fn ages_and_slots_out_of_range_are_refused() {
        let pricing = Pricing::default();
        let plan = PlanSelection {
            tier: Tier::Basic,
            heir_slots: 1,
            witness_slot: false,
        };
        assert!(quote(&pricing, &plan, 17).is_err());
        assert!(quote(&pricing, &plan, 121).is_err());
        assert!(quote(
            &pricing,
            &PlanSelection {
                heir_slots: 0,
                ..plan
            },
            40
        )
        .is_err());
        assert!(quote(
            &pricing,
            &PlanSelection {
                heir_slots: 3,
                ..plan
            },
            40
        )
        .is_err());
        let titan = PlanSelection {
            tier: Tier::Titan,
            heir_slots: 11,
            witness_slot: false,
        };
        assert!(quote(&pricing, &titan, 40).is_err());
    }

    #[test]
    fn proration_rounds_up_to_the_e8s() {
        // 1 e8s difference over 1 of 3650 days: 1/3650 e8s rounds up to 1.
        assert_eq!(prorate(100, 101, 1, 3650).unwrap(), 1);
        // Exact division stays exact.
        assert_eq!(prorate(0, 3650, 1825, 3650).unwrap(), 1825);
        // 3 ICP more with 1000 days left: 300_000_000 · 1000 / 3650 = 82_191_780.82 → 82_191_781.
        assert_eq!(prorate(0, 3 * ICP, 1000, 3650).unwrap(), 82_191_781);
        // Nothing left: free; all left: the full difference.
        assert_eq!(prorate(5, 10, 0, 3650).unwrap(), 0);
        assert_eq!(prorate(5, 10, 3650, 3650).unwrap(), 5);
        assert!(prorate(10, 5, 100, 3650).is_err());
        assert!(prorate(0, 10, 100, 0).is_err());
    }

    #[test]
    fn proration_cannot_overflow() {
        // u64::MAX · 3650 does not fit in u64: computed in u128, result fits.
        assert_eq!(prorate(0, u64::MAX, 3650, 3650).unwrap(), u64::MAX);
        // A result that would not fit in u64 is an error, not a wrapped value.
        assert!(prorate(0, u64::MAX, 3651, 3650).is_err());
    }

    #[test]
    fn quote_with_extreme_prices_reports_overflow() {
        let mut pricing = Pricing::default();
        pricing.tiers[0].storage_price_e8s = u64::MAX / 2;
        let plan = PlanSelection {
            tier: Tier::Basic,
            heir_slots: 1,
            witness_slot: false,
        };
        assert!(quote(&pricing, &plan, 20).is_err());
    }

    #[test]
    fn remaining_days_rounds_up_and_caps() {
        let now = 1_000 * NANOS_PER_DAY;
        assert_eq!(remaining_days(now, now, 3650), 0);
        assert_eq!(remaining_days(now, now + 1, 3650), 1);
        assert_eq!(remaining_days(now, now + NANOS_PER_DAY, 3650), 1);
        assert_eq!(remaining_days(now, now + NANOS_PER_DAY + 1, 3650), 2);
        assert_eq!(remaining_days(now, now - 5, 3650), 0);
        assert_eq!(remaining_days(0, u64::MAX, 3650), 3650);
    }

    #[test]
    fn upgrade_direction() {
        let base = PlanSelection {
            tier: Tier::Standard,
            heir_slots: 2,
            witness_slot: false,
        };
        assert!(is_upgrade(
            &base,
            &PlanSelection {
                tier: Tier::Premium,
                ..base
            }
        ));
        assert!(is_upgrade(
            &base,
            &PlanSelection {
                heir_slots: 3,
                ..base
            }
        ));
        assert!(is_upgrade(
            &base,
            &PlanSelection {
                witness_slot: true,
                ..base
            }
        ));
        assert!(!is_upgrade(&base, &base));
        assert!(!is_upgrade(
            &base,
            &PlanSelection {
                tier: Tier::Basic,
                heir_slots: 3,
                ..base
            }
        ));
        assert!(!is_upgrade(
            &base,
            &PlanSelection {
                heir_slots: 1,
                tier: Tier::Titan,
                ..base
            }
        ));
        let with_witness = PlanSelection {
            witness_slot: true,
            ..base
        };
        assert!(!is_upgrade(
            &with_witness,
            &PlanSelection {
                tier: Tier::Titan,
                witness_slot: false,
                ..base
            }
        ));
    }
}
