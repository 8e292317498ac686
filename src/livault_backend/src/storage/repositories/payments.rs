//! Payments: the sessions with their by-vault index, the scheduler's payment checks, the
//! payment journal, the billing entries and the vaults' refund accounts.
//!
//! The repository keeps what goes together: a session opened here gets its by-vault index
//! entry and its first check; a check moved here moves the session's `next_check_at` with
//! it. The rules (what a session may do, when it is checked, what a transfer means) are the
//! domain's (`domain::payments`); this module only stores.
//!
//! Persisted format: `PAYMENT_SESSIONS` `session id → session` (layout 6: version 3 with
//! the session's journal base, `binary::encode_stored_session`);
//! `PAYMENT_SESSIONS_BY_VAULT` `(vault, session id) → ()`; `PAYMENT_CHECKS` a due queue keyed
//! `(due, CHECK_KIND, session id)` with the consecutive retries as value; `PAYMENT_JOURNAL`
//! `(session id, seq) → entry`, only for sessions whose trail is not settled yet (a settled
//! one is folded: its entries go, its journal base keeps their seqs used); `BILLING_SLOTS`
//! one fixed slot per billing id (`binary::encode_billing_slot`: the fields that are not the
//! session's) and `BILLING` `billing id → entry` for the few that cannot be split;
//! `REFUND_ACCOUNTS` `vault → account`. Only this module builds those keys.

use std::collections::{BTreeMap, BTreeSet};

use ic_stable_structures::memory_manager::MemoryManager;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableVec};

use crate::model::config::Account;
use crate::model::payments::{
    BillingEntry, BillingId, JournalEntry, Outcome, PaymentSession, PaymentSessionStatus, SessionId,
};
use crate::model::types::VaultId;
use crate::storage::binary;
use crate::storage::due_queue::DueQueue;
use crate::storage::memory as ids;
use crate::storage::state::Mem;

/// A session as stored: the session and its journal base, the first journal seq it has not
/// used yet once its settled entries were folded away (0 until then; seqs stay unique for
/// the session's whole life, so do the transfer memos built from them).
#[derive(Clone, Debug, PartialEq, Eq)]
struct StoredSession {
    session: PaymentSession,
    journal_base: u32,
}

impl ic_stable_structures::Storable for StoredSession {
    fn to_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Owned(binary::encode_stored_session(
            &self.session,
            self.journal_base,
        ))
    }
    fn into_bytes(self) -> Vec<u8> {
        binary::encode_stored_session(&self.session, self.journal_base)
    }
    /// Reads every form a session was ever stored in: version 3 (layout 6), the version 2
    /// binary form and the CBOR records of version 1 (both with journal base 0).
    fn from_bytes(bytes: std::borrow::Cow<[u8]>) -> Self {
        match bytes.first() {
            Some(&binary::SESSION_VERSION) => {
                let (session, journal_base) = binary::decode_stored_session(&bytes[1..])
                    .unwrap_or_else(|| panic!("BUG: corrupt stored PaymentSession"));
                StoredSession {
                    session,
                    journal_base,
                }
            }
            _ => StoredSession {
                session: PaymentSession::from_bytes(bytes),
                journal_base: 0,
            },
        }
    }
    const BOUND: ic_stable_structures::storable::Bound =
        ic_stable_structures::storable::Bound::Unbounded;
}

/// A billing slot: the tag (`binary::SLOT_*`) and, for a compact slot, the entry's own
/// fields (the rest are its session's).
#[derive(Clone, Debug, PartialEq, Eq)]
struct BillingSlot {
    tag: u8,
    entry: Option<BillingEntry>,
}

impl ic_stable_structures::Storable for BillingSlot {
    fn to_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Owned(self.clone().into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        match &self.entry {
            Some(e) => binary::encode_billing_slot(self.tag, e),
            None => binary::encode_billing_slot(self.tag, &placeholder()),
        }
    }
    fn from_bytes(bytes: std::borrow::Cow<[u8]>) -> Self {
        let (tag, entry) = binary::decode_billing_slot(&bytes)
            .unwrap_or_else(|| panic!("BUG: corrupt stored billing slot"));
        BillingSlot { tag, entry }
    }
    const BOUND: ic_stable_structures::storable::Bound =
        ic_stable_structures::storable::Bound::Bounded {
            max_size: binary::BILLING_SLOT_BYTES as u32,
            is_fixed_size: true,
        };
}

/// An entry whose fields are never read (the body of an absent or overflow slot).
fn placeholder() -> BillingEntry {
    BillingEntry {
        id: 0,
        session_id: 0,
        vault_id: 0,
        owner: candid::Principal::anonymous(),
        purpose: crate::model::payments::PaymentPurpose::Create,
        amount_e8s: 0,
        received_e8s: 0,
        treasury_e8s: 0,
        sweep_block: None,
        sweep_pending: false,
        refund_e8s: 0,
        refund_block: None,
        refund_pending: false,
        dust_e8s: 0,
        fees_e8s: 0,
        applied: false,
        recorded_at: 0,
    }
}

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
    /// `session id → session` (with its journal base).
    sessions: StableBTreeMap<SessionId, StoredSession, Mem>,
    /// `(vault, session id) → ()`: every session, by vault.
    by_vault: StableBTreeMap<(VaultId, SessionId), (), Mem>,
    /// `(due, CHECK_KIND, session id) → consecutive retries`: at most one per session, the
    /// one its `next_check_at` names.
    checks: DueQueue<Mem>,
    /// `(session id, seq) → transfer intent and outcome`.
    journal: StableBTreeMap<(SessionId, u32), JournalEntry, Mem>,
    /// Slot `id − 1`: billing entry `id` (ids are dense from 1), compact (the fields that
    /// are not its session's) or a mark that it is in `billing_overflow`.
    billing_slots: StableVec<BillingSlot, Mem>,
    /// `billing id → confirmed payment`, whole: only the entries that differ from their
    /// session in vault, owner, purpose or price (none the canister writes), and, until the
    /// layout-6 migration moved them into slots, every entry of an older layout.
    billing_overflow: StableBTreeMap<BillingId, BillingEntry, Mem>,
    /// `vault → account` refunds of the vault's payments go to (default: the owner's).
    refund_accounts: StableBTreeMap<VaultId, Account, Mem>,
}

/// The memories of a [`PaymentRepository`].
pub struct PaymentMemories {
    pub sessions: Mem,
    pub by_vault: Mem,
    pub journal: Mem,
    pub billing: Mem,
    pub billing_slots: Mem,
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
            billing_slots: mm.get(ids::BILLING_SLOTS),
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
            billing_overflow: StableBTreeMap::init(m.billing),
            checks: DueQueue::init(m.checks),
            refund_accounts: StableBTreeMap::init(m.refund_accounts),
            billing_slots: StableVec::init(m.billing_slots),
        }
    }

    // ---- sessions

    /// Session `id`.
    pub fn session(&self, id: SessionId) -> Option<PaymentSession> {
        self.sessions.get(&id).map(|s| s.session)
    }

    /// Writes `session` under its id, keeping its stored journal base.
    fn put_session(&mut self, session: &PaymentSession) {
        let journal_base = self.journal_base(session.id);
        self.sessions.insert(
            session.id,
            StoredSession {
                session: session.clone(),
                journal_base,
            },
        );
    }

    /// The session's journal base (0 for a session whose journal was never folded).
    fn journal_base(&self, session: SessionId) -> u32 {
        self.sessions.get(&session).map_or(0, |s| s.journal_base)
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
        self.sessions.iter().map(|e| e.into_pair().1.session)
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
        self.sessions.insert(
            session.id,
            StoredSession {
                session: session.clone(),
                journal_base: 0,
            },
        );
        self.by_vault.insert((session.vault_id, session.id), ());
    }

    /// Writes a changed session back. Its id and vault never change (so neither does its
    /// index entry); its check moves only through [`Self::reschedule_check`].
    pub fn save_session(&mut self, session: &PaymentSession) {
        debug_assert!(
            self.session(session.id).is_some_and(
                |s| s.vault_id == session.vault_id && s.next_check_at == session.next_check_at
            ),
            "save_session: not a stored session, or its vault or check changed"
        );
        self.put_session(session);
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
        self.put_session(session);
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

    /// The seq the session's next transfer gets (counting from 0, and on past the entries
    /// folded away by [`Self::fold_settled_journal`]).
    pub fn next_journal_seq(&self, session: SessionId) -> u32 {
        match self
            .journal
            .range((session, 0)..=(session, u32::MAX))
            .last()
        {
            Some(e) => e.key().1 + 1,
            None => self.journal_base(session),
        }
    }

    /// Whether nothing of the session's trail is left to do: no transfer awaits its outcome,
    /// and the session is either refunded, or completed with its sweep and excess refund
    /// settled (its billing entry says so). No flow reads a settled session's journal again
    /// (the next transfer of the session, a later `refund_session`, gets a new seq).
    pub fn trail_settled(&self, session: &PaymentSession) -> bool {
        let pending = self
            .journal_of(session.id)
            .any(|e| e.outcome == Outcome::Pending);
        !pending
            && match session.status {
                PaymentSessionStatus::Open => false,
                PaymentSessionStatus::Refunded => true,
                PaymentSessionStatus::Completed => session
                    .billing_id
                    .and_then(|id| self.billing(id))
                    .is_some_and(|b| !b.sweep_pending && !b.refund_pending),
            }
    }

    /// Folds the journal of session `id` once its trail is settled ([`Self::trail_settled`]):
    /// its entries are removed and the session's journal base moves past them, so the seqs
    /// (and memos) its later transfers get are still new. The outcomes stay where the
    /// endpoints read them (sweep and refund blocks in the billing entry, a late refund's in
    /// the session). Returns how many entries were removed (0 when the trail is not settled).
    pub fn fold_settled_journal(&mut self, id: SessionId) -> u32 {
        let Some(stored) = self.sessions.get(&id) else {
            return 0;
        };
        if !self.trail_settled(&stored.session) {
            return 0;
        }
        let seqs: Vec<u32> = self
            .journal
            .keys_range((id, 0)..=(id, u32::MAX))
            .map(|(_, seq)| seq)
            .collect();
        let Some(last) = seqs.last().copied() else {
            return 0;
        };
        for seq in &seqs {
            self.journal.remove(&(id, *seq));
        }
        self.sessions.insert(
            id,
            StoredSession {
                session: stored.session,
                journal_base: last + 1,
            },
        );
        seqs.len() as u32
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
        let slot = self.billing_slots.get(id.checked_sub(1)?)?;
        match (slot.tag, slot.entry) {
            (binary::SLOT_COMPACT, Some(mut e)) => {
                let s = self.session(e.session_id)?;
                e.id = id;
                e.vault_id = s.vault_id;
                e.owner = s.owner;
                e.purpose = s.purpose;
                e.amount_e8s = s.amount_e8s;
                Some(e)
            }
            (binary::SLOT_OVERFLOW, _) => self.billing_overflow.get(&id),
            _ => None,
        }
    }

    /// The id the next billing entry gets (sequential from 1, never reused).
    pub fn next_billing_id(&self) -> BillingId {
        self.billing_slots.len() + 1
    }

    /// Billing entries with id ≥ `from`, ascending.
    pub fn billing_from(&self, from: BillingId) -> impl Iterator<Item = BillingEntry> + '_ {
        (from.max(1)..self.next_billing_id()).filter_map(|id| self.billing(id))
    }

    /// Every billing entry, ascending by id.
    pub fn billing_entries(&self) -> impl Iterator<Item = BillingEntry> + '_ {
        self.billing_from(1)
    }

    /// Stores a new billing entry (its id from [`Self::next_billing_id`]).
    pub fn insert_billing(&mut self, entry: &BillingEntry) {
        debug_assert_eq!(entry.id, self.next_billing_id(), "billing id");
        let slot = self.billing_slot_for(entry);
        self.billing_slots.push(&slot);
    }

    /// Writes a changed billing entry back (a sweep or refund settled).
    pub fn save_billing(&mut self, entry: &BillingEntry) {
        debug_assert!(
            self.billing(entry.id).is_some(),
            "save_billing: not a stored entry"
        );
        let slot = self.billing_slot_for(entry);
        self.billing_slots.set(entry.id - 1, &slot);
    }

    /// The slot that stores `entry`: compact when its vault, owner, purpose and price are
    /// its session's (then any whole copy in the overflow map goes), else an overflow mark
    /// with the entry written whole to the overflow map.
    fn billing_slot_for(&mut self, entry: &BillingEntry) -> BillingSlot {
        let compact = self.session(entry.session_id).is_some_and(|s| {
            s.vault_id == entry.vault_id
                && s.owner == entry.owner
                && s.purpose == entry.purpose
                && s.amount_e8s == entry.amount_e8s
        });
        if compact {
            self.billing_overflow.remove(&entry.id);
            BillingSlot {
                tag: binary::SLOT_COMPACT,
                entry: Some(entry.clone()),
            }
        } else {
            self.billing_overflow.insert(entry.id, entry.clone());
            BillingSlot {
                tag: binary::SLOT_OVERFLOW,
                entry: None,
            }
        }
    }

    /// Layout 6: moves the billing entries of an older layout (all in the map) into slots,
    /// ascending by id; an id the map skips gets an absent slot. Entries already in slots
    /// (ids below [`Self::next_billing_id`]) are left as they are, so running it again does
    /// nothing. Returns how many entries moved.
    pub fn migrate_billing_to_slots(&mut self) -> u64 {
        let old: Vec<BillingEntry> = self
            .billing_overflow
            .range(self.next_billing_id()..)
            .map(|e| e.into_pair().1)
            .collect();
        for entry in &old {
            while self.next_billing_id() < entry.id {
                self.billing_slots.push(&BillingSlot {
                    tag: binary::SLOT_ABSENT,
                    entry: None,
                });
            }
            let slot = self.billing_slot_for(entry);
            self.billing_slots.push(&slot);
        }
        old.len() as u64
    }

    /// Layout 6: folds the journal of every session whose trail is settled (see
    /// [`Self::fold_settled_journal`]). Returns how many entries were removed.
    pub fn fold_settled_journals(&mut self) -> u64 {
        let mut sessions: Vec<SessionId> = self.journal.keys().map(|(id, _)| id).collect();
        sessions.dedup();
        sessions
            .into_iter()
            .map(|id| u64::from(self.fold_settled_journal(id)))
            .sum()
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
    ///   session's seqs dense from its journal base, at most one `Pending` per session, and
    ///   none of a session whose trail is settled (folded, [`Self::fold_settled_journal`]);
    /// - billing: each entry under its own id, of an existing session of the same vault
    ///   whose `billing_id` names it; a session has a billing entry exactly when completed.
    pub(in crate::storage) fn check_invariants(&self) -> Result<(), String> {
        self.checks.check_invariants()?;
        let mut sessions: BTreeMap<SessionId, PaymentSession> = BTreeMap::new();
        let mut bases: BTreeMap<SessionId, u32> = BTreeMap::new();
        for (id, stored) in self.sessions.iter().map(|e| e.into_pair()) {
            let s = stored.session;
            bases.insert(id, stored.journal_base);
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
            let base = bases.get(&id).copied().unwrap_or(0);
            let expect = next_seq.entry(id).or_insert(base);
            ensure!(
                seq == *expect,
                "journal of session {id}: seq {seq} where {} was next (journal base {base})",
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
        for id in next_seq.keys() {
            let s = &sessions[id];
            ensure!(
                !self.trail_settled(s),
                "session {id}: its trail is settled ({:?}) but its journal was not folded",
                s.status
            );
        }
        for id in 1..self.next_billing_id() {
            let tag = self.billing_slots.get(id - 1).map(|s| s.tag);
            let whole = self.billing_overflow.contains_key(&id);
            ensure!(
                whole == (tag == Some(binary::SLOT_OVERFLOW)),
                "billing {id}: slot {tag:?}, whole entry in the overflow map: {whole}"
            );
            ensure!(
                tag != Some(binary::SLOT_COMPACT) || self.billing(id).is_some(),
                "billing {id}: a compact slot whose session is missing"
            );
        }
        if let Some((id, _)) = self.billing_overflow.last_key_value() {
            ensure!(
                id < self.next_billing_id(),
                "billing {id} is in the overflow map without a slot"
            );
        }
        let mut billed: BTreeMap<SessionId, BillingId> = BTreeMap::new();
        for b in self.billing_entries() {
            let id = b.id;
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
        self.put_session(session);
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

    /// Test fixtures: a whole billing entry written to the overflow map directly.
    #[cfg(test)]
    pub fn put_billing_overflow_unchecked(&mut self, entry: &BillingEntry) {
        self.billing_overflow.insert(entry.id, entry.clone());
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
        assert!(err(&r).contains("seq 2 where 1 was next"), "{}", err(&r));

        let mut r = fresh();
        let mut s1 = r.session(1).unwrap();
        s1.billing_id = None;
        r.put_session_unchecked(&s1);
        assert!(err(&r).contains("does not name it"), "{}", err(&r));
    }

    /// A session paid and swept: its trail is settled once nothing is pending and the
    /// billing entry has no transfer left; only then is its journal folded, and the seqs
    /// its later transfers get continue after the folded ones.
    #[test]
    fn a_settled_journal_is_folded_and_its_seqs_stay_used() {
        let memory = DefaultMemoryImpl::default();
        let mut r = populated(&memory);
        // Session 1: entry 0 done, entry 1 pending, billing sweep pending: not settled.
        let s1 = r.session(1).unwrap();
        assert!(!r.trail_settled(&s1));
        assert_eq!(r.fold_settled_journal(1), 0);
        let mut e = r.journal_entry((1, 1)).unwrap();
        e.outcome = Outcome::Done { block: Some(5) };
        r.save_journal(&e);
        // Nothing pending, but the billing entry still waits for its sweep: not settled.
        assert!(!r.trail_settled(&s1));
        assert_eq!(r.fold_settled_journal(1), 0);
        let mut b = r.billing(1).unwrap();
        b.sweep_pending = false;
        b.sweep_block = Some(5);
        r.save_billing(&b);
        assert!(r.trail_settled(&s1));
        // The walk refuses a settled trail whose journal was not folded.
        let err = r.check_invariants().unwrap_err();
        assert!(err.contains("not folded"), "{err}");
        assert_eq!(r.fold_settled_journal(1), 2);
        assert_eq!(r.journal_of(1).count(), 0);
        assert_eq!(r.next_journal_seq(1), 2);
        assert_eq!(r.fold_settled_journal(1), 0, "nothing left to fold");
        assert_eq!(r.check_invariants(), Ok(()));
        // An open session is never settled; its journal stays.
        assert_eq!(r.fold_settled_journal(2), 0);
        assert_eq!(r.journal_of(2).count(), 1);
        // The session reads the same, the base survives its writes and a reopening.
        let mut s1 = r.session(1).unwrap();
        s1.refunded_e8s = 7;
        r.save_session(&s1);
        r.reschedule_check(&mut s1, Some(90), 0);
        assert_eq!(r.next_journal_seq(1), 2);
        drop(r);
        let mut r = open(&memory);
        assert_eq!(r.session(1), Some(s1));
        assert_eq!(r.next_journal_seq(1), 2);
        assert_eq!(r.billing(1), Some(b));
        // A later transfer (a late refund) starts at the base; the walk wants it there.
        r.append_journal(&entry(1, r.next_journal_seq(1), Outcome::Pending));
        assert_eq!(r.check_invariants(), Ok(()));
        r.put_journal_unchecked(&entry(1, 0, Outcome::Done { block: None }));
        let err = r.check_invariants().unwrap_err();
        assert!(err.contains("journal base 2"), "{err}");
    }

    /// Billing entries are slots read together with their session; one that differs from
    /// its session is kept whole in the overflow map, and moves back to a slot when saved
    /// matching it.
    #[test]
    fn billing_slots_read_back_whole_and_odd_entries_overflow() {
        let memory = DefaultMemoryImpl::default();
        let mut r = populated(&memory);
        let s2 = r.session(2).unwrap();
        let mut odd = billing(r.next_billing_id(), &s2);
        odd.owner = p(8);
        odd.refund_block = Some(u64::MAX);
        odd.dust_e8s = 3;
        r.insert_billing(&odd);
        assert_eq!(r.billing_overflow.len(), 1);
        let s3 = r.session(3).unwrap();
        let mut plain = billing(r.next_billing_id(), &s3);
        plain.received_e8s = u64::MAX;
        plain.sweep_block = Some(0);
        plain.refund_pending = true;
        plain.applied = false;
        r.insert_billing(&plain);
        assert_eq!(
            r.billing_overflow.len(),
            1,
            "a matching entry is a slot only"
        );
        assert_eq!(r.billing(2), Some(odd.clone()));
        assert_eq!(r.billing(3), Some(plain.clone()));
        assert_eq!(r.billing(0), None);
        assert_eq!(r.billing(4), None);
        assert_eq!(r.next_billing_id(), 4);
        assert_eq!(
            r.billing_from(2).map(|b| b.id).collect::<Vec<_>>(),
            vec![2, 3]
        );
        let mut back = odd.clone();
        back.owner = s2.owner;
        r.save_billing(&back);
        assert_eq!(r.billing_overflow.len(), 0);
        assert_eq!(r.billing(2), Some(back));
        // The walk finds a whole entry the slots do not point to.
        r.put_billing_overflow_unchecked(&odd);
        let err = r.check_invariants().unwrap_err();
        assert!(err.contains("overflow"), "{err}");
    }

    /// Layout 6 over a layout-5 memory: the billing entries move from their map into
    /// slots (the odd one stays whole, a gap in the ids stays absent), the settled journals
    /// are folded, the open ones kept; a second run changes nothing.
    #[test]
    fn layout_5_billing_and_journals_migrate_to_slots_and_folds() {
        let memory = DefaultMemoryImpl::default();
        let sessions: Vec<PaymentSession>;
        {
            let mm = MemoryManager::init_with_bucket_size(memory.clone(), BUCKET_PAGES);
            let m = PaymentMemories::of(&mm);
            // What layout 5 wrote: sessions as they are (version 2), entries in maps.
            let mut old_sessions: StableBTreeMap<SessionId, PaymentSession, Mem> =
                StableBTreeMap::init(m.sessions);
            let mut old_journal: StableBTreeMap<(SessionId, u32), JournalEntry, Mem> =
                StableBTreeMap::init(m.journal);
            let mut old_billing: StableBTreeMap<BillingId, BillingEntry, Mem> =
                StableBTreeMap::init(m.billing);
            let mut by_vault: StableBTreeMap<(VaultId, SessionId), (), Mem> =
                StableBTreeMap::init(m.by_vault);
            let mut all = Vec::new();
            for id in 1..=4 {
                let mut s = session(id, 10 + id);
                let b = billing(if id == 4 { 5 } else { id }, &s);
                if id != 3 {
                    s.status = PaymentSessionStatus::Completed;
                    s.billing_id = Some(b.id);
                    let mut b = b;
                    // Session 2's sweep is still pending; session 4's entry is odd.
                    b.sweep_pending = id == 2;
                    if id == 4 {
                        b.owner = p(77);
                    }
                    old_billing.insert(b.id, b);
                }
                let outcome = match id {
                    2 | 3 => Outcome::Pending,
                    _ => Outcome::Done { block: Some(id) },
                };
                old_journal.insert(
                    (id, 0),
                    entry(id, 0, Outcome::Failed { reason: "x".into() }),
                );
                old_journal.insert((id, 1), entry(id, 1, outcome));
                old_sessions.insert(id, s.clone());
                by_vault.insert((s.vault_id, id), ());
                all.push(s);
            }
            sessions = all;
        }
        let mut r = open(&memory);
        let billed: Vec<BillingEntry> =
            r.billing_overflow.iter().map(|e| e.into_pair().1).collect();
        assert_eq!(r.migrate_billing_to_slots(), 3);
        assert_eq!(
            r.fold_settled_journals(),
            4,
            "sessions 1 and 4, two entries each"
        );
        assert_eq!(r.check_invariants(), Ok(()));
        assert_eq!(r.sessions().collect::<Vec<_>>(), sessions);
        assert_eq!(r.billing_entries().collect::<Vec<_>>(), billed);
        assert_eq!(r.billing(4), None, "id 4 was never written");
        assert_eq!(r.next_billing_id(), 6);
        assert_eq!(r.billing_overflow.len(), 1, "the odd entry stays whole");
        assert_eq!(
            r.journal().map(|e| e.key()).collect::<Vec<_>>(),
            vec![(2, 0), (2, 1), (3, 0), (3, 1)]
        );
        assert_eq!((r.next_journal_seq(1), r.next_journal_seq(4)), (2, 2));
        assert_eq!(r.migrate_billing_to_slots(), 0);
        assert_eq!(r.fold_settled_journals(), 0);
        drop(r);
        let again = open(&memory);
        assert_eq!(again.check_invariants(), Ok(()));
        assert_eq!(again.billing_entries().collect::<Vec<_>>(), billed);
        assert_eq!(again.next_journal_seq(1), 2);
    }
}
