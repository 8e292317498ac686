//! Payments: the sessions with their by-vault index, the scheduler's payment checks, the
//! payment journal, the billing entries and the vaults' refund accounts.
//!
//! The repository keeps what goes together: a session opened here gets its by-vault index
//! entry and its first check; a check moved here moves the session's `next_check_at` with
//! it. The rules (what a session may do, when it is checked, what a transfer means) are the
//! domain's (`domain::payments`); this module only stores.
//!
//! Persisted format (unchanged from the plain maps it replaced): `PAYMENT_SESSIONS`
//! `session id → session`; `PAYMENT_SESSIONS_BY_VAULT` `(vault, session id) → ()`;
//! `PAYMENT_CHECKS` a due queue keyed `(due, CHECK_KIND, session id)` with the consecutive
//! retries as value; `PAYMENT_JOURNAL` `(session id, seq) → entry`; `BILLING`
//! `billing id → entry`; `REFUND_ACCOUNTS` `vault → account`. Only this module builds those
//! keys.

use std::collections::{BTreeMap, BTreeSet};

use ic_stable_structures::memory_manager::MemoryManager;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap};

use crate::model::config::Account;
use crate::model::payments::{
    BillingEntry, BillingId, JournalEntry, Outcome, PaymentSession, PaymentSessionStatus, SessionId,
};
use crate::model::types::VaultId;
use crate::storage::due_queue::DueQueue;
use crate::storage::memory as ids;
use crate::storage::state::Mem;

/// Kind code of a payment check in its queue (the code the lifecycle queue used for them).
pub const CHECK_KIND: u8 = 9;

/// Fails the walk with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// The payment records and their indexes.
pub struct PaymentRepository {
    /// `session id → session`.
    sessions: StableBTreeMap<SessionId, PaymentSession, Mem>,
    /// `(vault, session id) → ()`: every session, by vault.
    by_vault: StableBTreeMap<(VaultId, SessionId), (), Mem>,
    /// `(due, CHECK_KIND, session id) → consecutive retries`: at most one per session, the
    /// one its `next_check_at` names.
    checks: DueQueue<Mem>,
    /// `(session id, seq) → transfer intent and outcome`.
    journal: StableBTreeMap<(SessionId, u32), JournalEntry, Mem>,
    /// `billing id → confirmed payment`.
    billing: StableBTreeMap<BillingId, BillingEntry, Mem>,
    /// `vault → account` refunds of the vault's payments go to (default: the owner's).
    refund_accounts: StableBTreeMap<VaultId, Account, Mem>,
}

/// The memories of a [`PaymentRepository`].
pub struct PaymentMemories {
    pub sessions: Mem,
    pub by_vault: Mem,
    pub journal: Mem,
    pub billing: Mem,
    pub checks: Mem,
    pub refund_accounts: Mem,
}

impl PaymentMemories {
    /// The payment memories of `mm`, by their ids in `storage::memory`.
    pub fn of(mm: &MemoryManager<DefaultMemoryImpl>) -> Self {
        PaymentMemories {
            sessions: mm.get(ids::PAYMENT_SESSIONS),
            by_vault: mm.get(ids::PAYMENT_SESSIONS_BY_VAULT),
            journal: mm.get(ids::PAYMENT_JOURNAL),
            billing: mm.get(ids::BILLING),
            checks: mm.get(ids::PAYMENT_CHECKS),
            refund_accounts: mm.get(ids::REFUND_ACCOUNTS),
        }
    }
}

impl PaymentRepository {
    /// Opens every structure over its memory, in the order the state always opened them
    /// (on fresh memory, the order in which the memories get their first bucket).
    pub fn init(m: PaymentMemories) -> Self {
        PaymentRepository {
            sessions: StableBTreeMap::init(m.sessions),
            by_vault: StableBTreeMap::init(m.by_vault),
            journal: StableBTreeMap::init(m.journal),
            billing: StableBTreeMap::init(m.billing),
            checks: DueQueue::init(m.checks),
            refund_accounts: StableBTreeMap::init(m.refund_accounts),
        }
    }

    // ---- sessions

    /// Session `id`.
    pub fn session(&self, id: SessionId) -> Option<PaymentSession> {
        self.sessions.get(&id)
    }

    /// The id the next session gets (sequential from 1, never reused).
    pub fn next_session_id(&self) -> SessionId {
        self.sessions.last_key_value().map_or(1, |(k, _)| k + 1)
    }

    /// Ids ≥ `from` of `vault`'s sessions, ascending (reversible).
    pub fn sessions_of(
        &self,
        vault: VaultId,
        from: SessionId,
    ) -> impl DoubleEndedIterator<Item = SessionId> + '_ {
        self.by_vault
            .keys_range((vault, from)..=(vault, SessionId::MAX))
            .map(|(_, id)| id)
    }

    /// Every session, ascending by id.
    pub fn sessions(&self) -> impl Iterator<Item = PaymentSession> + '_ {
        self.sessions.iter().map(|e| e.into_pair().1)
    }

    /// Stores a new session with its by-vault index entry and its first check, due at
    /// `first_check` (`None`: none), which becomes its `next_check_at`.
    pub fn open_session(&mut self, session: &mut PaymentSession, first_check: Option<u64>) {
        debug_assert!(
            !self.sessions.contains_key(&session.id),
            "session id reused"
        );
        debug_assert!(
            session.next_check_at.is_none(),
            "a new session has no check"
        );
        if let Some(due) = first_check {
            self.checks.insert((due, CHECK_KIND, session.id), 0);
        }
        session.next_check_at = first_check;
        self.sessions.insert(session.id, session.clone());
        self.by_vault.insert((session.vault_id, session.id), ());
    }

    /// Writes a changed session back. Its id and vault never change (so neither does its
    /// index entry); its check moves only through [`Self::reschedule_check`].
    pub fn save_session(&mut self, session: &PaymentSession) {
        debug_assert!(
            self.sessions.get(&session.id).is_some_and(
                |s| s.vault_id == session.vault_id && s.next_check_at == session.next_check_at
            ),
            "save_session: not a stored session, or its vault or check changed"
        );
        self.sessions.insert(session.id, session.clone());
    }

    // ---- payment checks

    /// Replaces the session's check with one due at `due` (`None`: no check) with `retries`
    /// consecutive retries behind it, and stores the session.
    pub fn reschedule_check(
        &mut self,
        session: &mut PaymentSession,
        due: Option<u64>,
        retries: u32,
    ) {
        if let Some(old) = session.next_check_at {
            self.checks.remove(&(old, CHECK_KIND, session.id));
        }
        if let Some(d) = due {
            self.checks.insert((d, CHECK_KIND, session.id), retries);
        }
        session.next_check_at = due;
        self.sessions.insert(session.id, session.clone());
    }

    /// The consecutive retries of the session's check due at `due`, if it has that check.
    pub fn check_retries(&self, due: u64, session: SessionId) -> Option<u32> {
        self.checks.get(&(due, CHECK_KIND, session))
    }

    /// Sessions whose check is due at `now`, oldest first.
    pub fn checks_due(&self, now: u64) -> impl Iterator<Item = SessionId> + '_ {
        self.checks
            .keys_range(..=(now, u8::MAX, u64::MAX))
            .map(|(_, _, id)| id)
    }

    /// Checks queued.
    pub fn checks_queued(&self) -> u64 {
        self.checks.len()
    }

    // ---- journal

    /// Journal entry `key`.
    pub fn journal_entry(&self, key: (SessionId, u32)) -> Option<JournalEntry> {
        self.journal.get(&key)
    }

    /// The session's transfers, oldest first.
    pub fn journal_of(&self, session: SessionId) -> impl Iterator<Item = JournalEntry> + '_ {
        self.journal
            .range((session, 0)..=(session, u32::MAX))
            .map(|e| e.into_pair().1)
    }

    /// Every journal entry, by session then seq.
    pub fn journal(&self) -> impl Iterator<Item = JournalEntry> + '_ {
        self.journal.iter().map(|e| e.into_pair().1)
    }

    /// The seq the session's next transfer gets (counting from 0).
    pub fn next_journal_seq(&self, session: SessionId) -> u32 {
        self.journal
            .range((session, 0)..=(session, u32::MAX))
            .last()
            .map_or(0, |e| e.key().1 + 1)
    }

    /// Appends a new entry (its seq from [`Self::next_journal_seq`]).
    pub fn append_journal(&mut self, entry: &JournalEntry) {
        debug_assert_eq!(
            entry.seq,
            self.next_journal_seq(entry.session_id),
            "journal seq"
        );
        self.journal
            .insert((entry.session_id, entry.seq), entry.clone());
    }

    /// Writes a changed entry back (an attempt counted, an outcome recorded).
    pub fn save_journal(&mut self, entry: &JournalEntry) {
        debug_assert!(
            self.journal.contains_key(&(entry.session_id, entry.seq)),
            "save_journal: not a stored entry"
        );
        self.journal
            .insert((entry.session_id, entry.seq), entry.clone());
    }

    // ---- billing

    /// Billing entry `id`.
    pub fn billing(&self, id: BillingId) -> Option<BillingEntry> {
        self.billing.get(&id)
    }

    /// The id the next billing entry gets (sequential from 1, never reused).
    pub fn next_billing_id(&self) -> BillingId {
        self.billing.last_key_value().map_or(1, |(k, _)| k + 1)
    }

    /// Billing entries with id ≥ `from`, ascending.
    pub fn billing_from(&self, from: BillingId) -> impl Iterator<Item = BillingEntry> + '_ {
        self.billing.range(from..).map(|e| e.into_pair().1)
    }

    /// Every billing entry, ascending by id.
    pub fn billing_entries(&self) -> impl Iterator<Item = BillingEntry> + '_ {
        self.billing.iter().map(|e| e.into_pair().1)
    }

    /// Stores a new billing entry (its id from [`Self::next_billing_id`]).
    pub fn insert_billing(&mut self, entry: &BillingEntry) {
        debug_assert_eq!(entry.id, self.next_billing_id(), "billing id");
        self.billing.insert(entry.id, entry.clone());
    }

    /// Writes a changed billing entry back (a sweep or refund settled).
    pub fn save_billing(&mut self, entry: &BillingEntry) {
        debug_assert!(
            self.billing.contains_key(&entry.id),
            "save_billing: not a stored entry"
        );
        self.billing.insert(entry.id, entry.clone());
    }

    // ---- refund accounts

    /// The account refunds of `vault`'s payments go to, if its owner named one.
    pub fn refund_account(&self, vault: VaultId) -> Option<Account> {
        self.refund_accounts.get(&vault)
    }

    /// Names the account refunds of `vault`'s payments go to.
    pub fn set_refund_account(&mut self, vault: VaultId, account: Account) {
        self.refund_accounts.insert(vault, account);
    }

    /// Forgets `vault`'s refund account (back to the owner's default account).
    pub fn clear_refund_account(&mut self, vault: VaultId) {
        self.refund_accounts.remove(&vault);
    }

    /// Vaults with a refund account, ascending (invariant checks).
    pub fn refund_account_vaults(&self) -> impl Iterator<Item = VaultId> + '_ {
        self.refund_accounts.keys()
    }

    // ---- invariants

    /// Walks every structure (the checks queue's own walk first):
    /// - sessions: each under its own id; the by-vault index lists exactly the sessions,
    ///   under their vault;
    /// - checks: each a payment check of an existing session whose `next_check_at` is its
    ///   due time, and each session's `next_check_at` has its check (so at most one each);
    /// - journal: each entry under its own `(session, seq)`, of an existing session, the
    ///   session's seqs dense from 0, at most one `Pending` per session;
    /// - billing: each entry under its own id, of an existing session of the same vault
    ///   whose `billing_id` names it; a session has a billing entry exactly when completed.
    pub(in crate::storage) fn check_invariants(&self) -> Result<(), String> {
        self.checks.check_invariants()?;
        let mut sessions: BTreeMap<SessionId, PaymentSession> = BTreeMap::new();
        for (id, s) in self.sessions.iter().map(|e| e.into_pair()) {
            ensure!(
                s.id == id,
                "payment session {id} stored as session {}",
                s.id
            );
            sessions.insert(id, s);
        }
        let indexed: BTreeSet<(VaultId, SessionId)> = self.by_vault.keys().collect();
        let expected: BTreeSet<(VaultId, SessionId)> =
            sessions.values().map(|s| (s.vault_id, s.id)).collect();
        ensure!(
            indexed == expected,
            "the payment session index differs from the sessions: {:?} listed only, {:?} \
             missing",
            indexed.difference(&expected).take(3).collect::<Vec<_>>(),
            expected.difference(&indexed).take(3).collect::<Vec<_>>()
        );
        for (due, kind, id) in self.checks.keys() {
            ensure!(
                kind == CHECK_KIND,
                "payment check ({due}, {kind}, {id}) of another kind"
            );
            let next = sessions.get(&id).map(|s| s.next_check_at);
            ensure!(
                next == Some(Some(due)),
                "payment check of session {id} due at {due}: the session's next check is \
                 {next:?}"
            );
        }
        for s in sessions.values() {
            if let Some(due) = s.next_check_at {
                ensure!(
                    self.checks.contains_key(&(due, CHECK_KIND, s.id)),
                    "session {}: next check at {due}, none queued",
                    s.id
                );
            }
        }
        let mut next_seq: BTreeMap<SessionId, u32> = BTreeMap::new();
        let mut pending: BTreeSet<SessionId> = BTreeSet::new();
        for ((id, seq), e) in self.journal.iter().map(|e| e.into_pair()) {
            ensure!(
                (e.session_id, e.seq) == (id, seq),
                "journal entry ({id}, {seq}) stored as ({}, {})",
                e.session_id,
                e.seq
            );
            ensure!(
                sessions.contains_key(&id),
                "journal entry ({id}, {seq}) of a session that does not exist"
            );
            let expect = next_seq.entry(id).or_insert(0);
            ensure!(
                seq == *expect,
                "journal of session {id}: seq {seq} follows {} entries",
                *expect
            );
            *expect += 1;
            if e.outcome == Outcome::Pending {
                ensure!(
                    pending.insert(id),
                    "journal of session {id}: more than one pending transfer"
                );
            }
        }
        let mut billed: BTreeMap<SessionId, BillingId> = BTreeMap::new();
        for (id, b) in self.billing.iter().map(|e| e.into_pair()) {
            ensure!(b.id == id, "billing entry {id} stored as {}", b.id);
            let session = sessions.get(&b.session_id);
            ensure!(
                session.is_some_and(|s| s.vault_id == b.vault_id && s.billing_id == Some(id)),
                "billing entry {id}: session {} of vault {} does not name it",
                b.session_id,
                b.vault_id
            );
            billed.insert(b.session_id, id);
        }
        for s in sessions.values() {
            ensure!(
                s.billing_id == billed.get(&s.id).copied(),
                "session {}: billing {:?}, the billing entries say {:?}",
                s.id,
                s.billing_id,
                billed.get(&s.id)
            );
            ensure!(
                s.billing_id.is_some() == (s.status == PaymentSessionStatus::Completed),
                "session {} is {:?} with billing {:?}",
                s.id,
                s.status,
                s.billing_id
            );
        }
        Ok(())
    }

    // ---- test fixtures (states the code itself cannot reach)

    /// Test fixtures: a session written as it is, without index entry or check.
    #[cfg(test)]
    pub fn put_session_unchecked(&mut self, session: &PaymentSession) {
        self.sessions.insert(session.id, session.clone());
    }

    /// Test fixtures: a by-vault index entry removed directly.
    #[cfg(test)]
    pub fn unindex_session_unchecked(&mut self, vault: VaultId, session: SessionId) {
        self.by_vault.remove(&(vault, session));
    }

    /// Test fixtures: a journal entry written as it is.
    #[cfg(test)]
    pub fn put_journal_unchecked(&mut self, entry: &JournalEntry) {
        self.journal
            .insert((entry.session_id, entry.seq), entry.clone());
    }

    /// Test fixtures: a check queued directly.
    #[cfg(test)]
    pub fn queue_check_unchecked(&mut self, due: u64, session: SessionId) {
        self.checks.insert((due, CHECK_KIND, session), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::payments::{PaymentPurpose, TransferKind};
    use crate::storage::memory::BUCKET_PAGES;
    use candid::Principal;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    fn open(memory: &DefaultMemoryImpl) -> PaymentRepository {
        let mm = MemoryManager::init_with_bucket_size(memory.clone(), BUCKET_PAGES);
        PaymentRepository::init(PaymentMemories::of(&mm))
    }

    fn session(id: SessionId, vault: VaultId) -> PaymentSession {
        PaymentSession {
            id,
            vault_id: vault,
            owner: p(2),
            purpose: PaymentPurpose::Create,
            amount_e8s: 1_000_000,
            subaccount: serde_bytes::ByteBuf::from(vec![id as u8; 32]),
            account_identifier: "ab".repeat(32),
            icrc1_account: "aaaaa-aa".into(),
            created_at: 10,
            expires_at: 20,
            status: PaymentSessionStatus::Open,
            received_e8s: 0,
            billing_id: None,
            closed_at: None,
            refunded_e8s: 0,
            refund_block: None,
            period_expires_at: None,
            next_check_at: None,
        }
    }

    fn entry(session: SessionId, seq: u32, outcome: Outcome) -> JournalEntry {
        JournalEntry {
            session_id: session,
            seq,
            kind: TransferKind::Sweep,
            from_subaccount: vec![1; 32],
            to: vec![2; 32],
            to_owner: p(9),
            amount_e8s: 990_000,
            fee_e8s: 10_000,
            memo: (session << 16) | u64::from(seq),
            created_at_time: 30,
            balance_before: 1_000_000,
            attempts: 0,
            outcome,
            written_at: 30,
            settled_at: None,
        }
    }

    fn billing(id: BillingId, session: &PaymentSession) -> BillingEntry {
        BillingEntry {
            id,
            session_id: session.id,
            vault_id: session.vault_id,
            owner: session.owner,
            purpose: session.purpose,
            amount_e8s: session.amount_e8s,
            received_e8s: session.amount_e8s,
            treasury_e8s: session.amount_e8s - 10_000,
            sweep_block: None,
            sweep_pending: true,
            refund_e8s: 0,
            refund_block: None,
            refund_pending: false,
            dust_e8s: 0,
            fees_e8s: 10_000,
            applied: true,
            recorded_at: 30,
        }
    }

    /// Three sessions over two vaults, the first completed with a billing entry and a
    /// settled sweep; the second with a pending one.
    fn populated(memory: &DefaultMemoryImpl) -> PaymentRepository {
        let mut r = open(memory);
        for (vault, due) in [(7, Some(100)), (8, None), (7, Some(50))] {
            let id = r.next_session_id();
            r.open_session(&mut session(id, vault), due);
        }
        let mut s1 = r.session(1).unwrap();
        r.reschedule_check(&mut s1, None, 0);
        let b = billing(r.next_billing_id(), &s1);
        r.insert_billing(&b);
        s1.status = PaymentSessionStatus::Completed;
        s1.billing_id = Some(b.id);
        r.save_session(&s1);
        r.append_journal(&entry(1, r.next_journal_seq(1), Outcome::Pending));
        let mut e = r.journal_entry((1, 0)).unwrap();
        e.outcome = Outcome::Done { block: Some(4) };
        r.save_journal(&e);
        r.append_journal(&entry(1, r.next_journal_seq(1), Outcome::Pending));
        r.append_journal(&entry(2, r.next_journal_seq(2), Outcome::Pending));
        r.set_refund_account(
            7,
            Account {
                owner: p(3),
                subaccount: None,
            },
        );
        r
    }

    #[test]
    fn sessions_keep_their_index_and_checks_and_read_back_after_reopening() {
        let memory = DefaultMemoryImpl::default();
        let mut r = populated(&memory);
        assert_eq!(r.check_invariants(), Ok(()));
        assert_eq!(r.sessions_of(7, 0).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(r.sessions_of(7, 2).collect::<Vec<_>>(), vec![3]);
        assert_eq!(r.sessions_of(7, 0).rev().collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(r.sessions_of(8, 0).collect::<Vec<_>>(), vec![2]);
        assert_eq!(r.next_session_id(), 4);
        // Session 1's check was taken off; session 3's is the only one due at 60.
        assert_eq!(r.checks_queued(), 1);
        assert_eq!(r.checks_due(60).collect::<Vec<_>>(), vec![3]);
        let mut s3 = r.session(3).unwrap();
        assert_eq!(s3.next_check_at, Some(50));
        r.reschedule_check(&mut s3, Some(70), 2);
        assert_eq!(r.session(3).unwrap().next_check_at, Some(70));
        assert_eq!(r.check_retries(70, 3), Some(2));
        assert_eq!(r.check_retries(50, 3), None);
        assert_eq!(r.checks_due(60).count(), 0);
        assert_eq!(r.check_invariants(), Ok(()));
        let journal: Vec<_> = r.journal_of(1).map(|e| (e.seq, e.outcome)).collect();
        assert_eq!(
            journal,
            vec![(0, Outcome::Done { block: Some(4) }), (1, Outcome::Pending)]
        );
        assert_eq!(r.next_journal_seq(1), 2);
        assert_eq!(r.next_journal_seq(3), 0);
        let b = r.billing(1).unwrap();
        assert_eq!(b.session_id, 1);
        let mut settled = b.clone();
        settled.sweep_pending = false;
        settled.sweep_block = Some(4);
        r.save_billing(&settled);
        assert_eq!(r.billing_from(1).collect::<Vec<_>>(), vec![settled.clone()]);
        assert_eq!(r.billing_from(2).count(), 0);
        r.clear_refund_account(8);
        assert_eq!(r.refund_account(7).map(|a| a.owner), Some(p(3)));
        let sessions: Vec<_> = r.sessions().collect();
        drop(r);

        let again = open(&memory);
        assert_eq!(again.check_invariants(), Ok(()));
        assert_eq!(again.sessions().collect::<Vec<_>>(), sessions);
        assert_eq!(again.billing_entries().collect::<Vec<_>>(), vec![settled]);
        assert_eq!(again.check_retries(70, 3), Some(2));
        assert_eq!(again.journal().count(), 3);
        assert_eq!(again.refund_account_vaults().collect::<Vec<_>>(), vec![7]);
    }

    /// The walk is not vacuous: each kind of inconsistency it names is found.
    #[test]
    fn the_walk_finds_broken_indexes_checks_journals_and_billing() {
        let err = |r: &PaymentRepository| r.check_invariants().unwrap_err();
        let fresh = || {
            let r = populated(&DefaultMemoryImpl::default());
            assert_eq!(r.check_invariants(), Ok(()));
            r
        };

        let mut r = fresh();
        r.unindex_session_unchecked(8, 2);
        assert!(err(&r).contains("payment session index"), "{}", err(&r));

        // A session written without its index entry (as a hand-kept index would forget).
        let mut r = fresh();
        r.put_session_unchecked(&session(4, 9));
        assert!(err(&r).contains("missing"), "{}", err(&r));

        let mut r = fresh();
        r.queue_check_unchecked(80, 2);
        assert!(err(&r).contains("session's next check"), "{}", err(&r));

        let mut r = fresh();
        let mut s3 = r.session(3).unwrap();
        s3.next_check_at = Some(99);
        r.put_session_unchecked(&s3);
        assert!(err(&r).contains("next check"), "{}", err(&r));

        let mut r = fresh();
        r.put_journal_unchecked(&entry(5, 0, Outcome::Pending));
        assert!(err(&r).contains("does not exist"), "{}", err(&r));

        let mut r = fresh();
        r.put_journal_unchecked(&entry(2, 1, Outcome::Pending));
        assert!(err(&r).contains("more than one pending"), "{}", err(&r));

        let mut r = fresh();
        r.put_journal_unchecked(&entry(2, 2, Outcome::Failed { reason: "x".into() }));
        assert!(err(&r).contains("seq 2 follows 1"), "{}", err(&r));

        let mut r = fresh();
        let mut s1 = r.session(1).unwrap();
        s1.billing_id = None;
        r.put_session_unchecked(&s1);
        assert!(err(&r).contains("does not name it"), "{}", err(&r));
    }
}
