//! Bounds on every text and vector argument, and unlock-rule validation (SPEC §4, §13).

use super::error::{VaultError, VaultResult};
use crate::model::types::{PlanSelection, UnlockRules, NANOS_PER_DAY};

/// Vault name length in characters.
pub const MAX_VAULT_NAME_CHARS: usize = 64;
/// Idempotency key length in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 64;
/// Largest page a list returns.
pub const MAX_PAGE: u32 = 100;
/// Page size when the caller names none.
pub const DEFAULT_PAGE: u32 = 50;
/// Most days of inactivity a rule may name (10 years).
pub const MAX_INACTIVITY_DAYS: u32 = 3650;
/// Most days to wait after an unlock request.
pub const MAX_REQUEST_WAIT_DAYS: u32 = 365;
/// Most days of heir access after unlock.
pub const MAX_POST_UNLOCK_DAYS: u16 = 365;
/// Audit retention bounds in days.
pub const AUDIT_RETENTION_DAYS: std::ops::RangeInclusive<u16> = 30..=3650;
/// Furthest `unlock_after` may lie in the future (100 years).
pub const MAX_UNLOCK_AFTER_AHEAD_NS: u64 = 100 * 366 * NANOS_PER_DAY;

/// A required display text: trimmed non-empty, at most `max` characters, no control characters.
pub fn text(field: &str, value: &str, max: usize) -> VaultResult<()> {
    if value.trim().is_empty() {
        return Err(VaultError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(VaultError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(VaultError::invalid(
            field,
            "control characters are not allowed",
        ));
    }
    Ok(())
}

/// The page size to use: `None` → default, otherwise 1..=100.
pub fn page_limit(limit: Option<u32>) -> VaultResult<usize> {
    match limit {
        None => Ok(DEFAULT_PAGE as usize),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n as usize),
        Some(_) => Err(VaultError::invalid(
            "limit",
            format!("must be 1..={MAX_PAGE}"),
        )),
    }
}

/// Validates unlock rules against the plan the vault bought, at time `now`.
///
/// `unlock_after`, when set, must lie in the future (at most 100 years ahead); quorum
/// requirements must fit the slots bought: a pure time lock (0 approvals) is allowed.
pub fn unlock_rules(rules: &UnlockRules, plan: &PlanSelection, now: u64) -> VaultResult<()> {
    if rules.unlock_after.is_none() && rules.inactivity_days.is_none() {
        return Err(VaultError::invalid(
            "unlock_rules",
            "set unlock_after, inactivity_days or both",
        ));
    }
    if let Some(at) = rules.unlock_after {
        if at <= now {
            return Err(VaultError::invalid(
                "unlock_rules.unlock_after",
                "must be in the future",
            ));
        }
        if at - now > MAX_UNLOCK_AFTER_AHEAD_NS {
            return Err(VaultError::invalid(
                "unlock_rules.unlock_after",
                "at most 100 years ahead",
            ));
        }
    }
    if let Some(days) = rules.inactivity_days {
        if days == 0 || days > MAX_INACTIVITY_DAYS {
            return Err(VaultError::invalid(
                "unlock_rules.inactivity_days",
                format!("must be 1..={MAX_INACTIVITY_DAYS}"),
            ));
        }
    }
    if rules.request_wait_days > MAX_REQUEST_WAIT_DAYS {
        return Err(VaultError::invalid(
            "unlock_rules.request_wait_days",
            format!("must be 0..={MAX_REQUEST_WAIT_DAYS}"),
        ));
    }
    if rules.required_heirs > plan.heir_slots {
        return Err(VaultError::invalid(
            "unlock_rules.required_heirs",
            format!("at most the {} heir slots bought", plan.heir_slots),
        ));
    }
    if rules.required_witness && !plan.witness_slot {
        return Err(VaultError::invalid(
            "unlock_rules.required_witness",
            "the witness slot was not bought",
        ));
    }
    Ok(())
}

/// Post-unlock access days: 1..=365.
pub fn post_unlock_days(days: u16) -> VaultResult<()> {
    if days == 0 || days > MAX_POST_UNLOCK_DAYS {
        return Err(VaultError::invalid(
            "post_unlock_days",
            format!("must be 1..={MAX_POST_UNLOCK_DAYS}"),
        ));
    }
    Ok(())
}

/// Audit retention days: 30..=3650.
pub fn audit_retention_days(days: u16) -> VaultResult<()> {
    if !AUDIT_RETENTION_DAYS.contains(&days) {
        return Err(VaultError::invalid(
            "audit_retention_days",
            "must be 30..=3650",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::types::Tier;

    const NOW: u64 = 1_800_000_000 * 1_000_000_000;

    fn plan() -> PlanSelection {
        PlanSelection {
            tier: Tier::Standard,
            heir_slots: 2,
            witness_slot: false,
        }
    }

    fn rules() -> UnlockRules {
        UnlockRules {
            unlock_after: None,
            inactivity_days: Some(180),
            request_wait_days: 7,
            required_heirs: 1,
            required_witness: false,
        }
    }

    #[test]
    fn text_bounds() {
        assert!(text("name", "My vault", 64).is_ok());
        assert!(text("name", &"é".repeat(64), 64).is_ok());
        assert!(text("name", &"é".repeat(65), 64).is_err());
        assert!(text("name", "", 64).is_err());
        assert!(text("name", "   ", 64).is_err());
        assert!(text("name", "a\nb", 64).is_err());
        assert!(text("name", "a\u{0}b", 64).is_err());
    }

    #[test]
    fn page_bounds() {
        assert_eq!(page_limit(None).unwrap(), 50);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }

    #[test]
    fn valid_rules() {
        assert!(unlock_rules(&rules(), &plan(), NOW).is_ok());
        let date_only = UnlockRules {
            unlock_after: Some(NOW + NANOS_PER_DAY),
            inactivity_days: None,
            required_heirs: 0,
            ..rules()
        };
        assert!(
            unlock_rules(&date_only, &plan(), NOW).is_ok(),
            "pure time lock"
        );
        let both = UnlockRules {
            unlock_after: Some(NOW + 1),
            ..rules()
        };
        assert!(unlock_rules(&both, &plan(), NOW).is_ok());
    }

    #[test]
    fn invalid_rules() {
        let field = |r: &UnlockRules, p: &PlanSelection| match unlock_rules(r, p, NOW) {
            Err(VaultError::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        let none = UnlockRules {
            inactivity_days: None,
            ..rules()
        };
        assert_eq!(field(&none, &plan()), "unlock_rules");
        let past = UnlockRules {
            unlock_after: Some(NOW),
            ..rules()
        };
        assert_eq!(field(&past, &plan()), "unlock_rules.unlock_after");
        let far = UnlockRules {
            unlock_after: Some(NOW + MAX_UNLOCK_AFTER_AHEAD_NS + 1),
            ..rules()
        };
        assert_eq!(field(&far, &plan()), "unlock_rules.unlock_after");
        for days in [0, MAX_INACTIVITY_DAYS + 1] {
            let r = UnlockRules {
                inactivity_days: Some(days),
                ..rules()
            };
            assert_eq!(field(&r, &plan()), "unlock_rules.inactivity_days");
        }
        let wait = UnlockRules {
            request_wait_days: MAX_REQUEST_WAIT_DAYS + 1,
            ..rules()
        };
        assert_eq!(field(&wait, &plan()), "unlock_rules.request_wait_days");
        let quorum = UnlockRules {
            required_heirs: 3,
            ..rules()
        };
        assert_eq!(field(&quorum, &plan()), "unlock_rules.required_heirs");
        let witness = UnlockRules {
            required_witness: true,
            ..rules()
        };
        assert_eq!(field(&witness, &plan()), "unlock_rules.required_witness");
        let with_witness = PlanSelection {
            witness_slot: true,
            ..plan()
        };
        assert!(unlock_rules(&witness, &with_witness, NOW).is_ok());
    }

    #[test]
    fn day_bounds() {
        assert!(post_unlock_days(1).is_ok());
        assert!(post_unlock_days(365).is_ok());
        assert!(post_unlock_days(0).is_err());
        assert!(post_unlock_days(366).is_err());
        assert!(audit_retention_days(30).is_ok());
        assert!(audit_retention_days(3650).is_ok());
        assert!(audit_retention_days(29).is_err());
        assert!(audit_retention_days(3651).is_err());
    }
}
