//! Compact binary encoding of the hottest records: `VaultRecord`, `AuditEvent`,
//! `StorageHeader`, `TicketRecord`, `MemberRecord` (version byte 2; version 1 is CBOR, see
//! `storage::codec`), and of the payment trail every paid vault keeps: `PaymentSession`,
//! `JournalEntry`, `BillingEntry`.
//!
//! Why: the scheduler touches these on every due item, and CBOR with field names (ciborium)
//! cost ~480 000 instructions to decode one vault and ~140 000 to encode it; this layout
//! costs a few thousand (numbers in BENCHMARKS.md, Scheduler). The payment records are kept
//! for the vault's whole life: the binary form is less than half their CBOR size.
//!
//! Layout rules (the same guarantees as the CBOR records):
//! - version byte, then the fields in a fixed order: integers little-endian at fixed width,
//!   `bool` one byte, `Option<T>` a 0/1 byte then `T`, strings and byte strings a `u32`
//!   length then the bytes, principals a `u8` length then the bytes, vectors a `u32` count
//!   then the elements, enums a stable `u8` code (the declaration index: variants are only
//!   ever appended).
//! - Two tagged forms for the 32-byte values of the payment records: `bytes32` (a byte
//!   string: tag 1, the count of leading zero bytes, then the other bytes, when it is 32
//!   bytes long; else tag 0 and a plain byte string) and `hex32` (a string: tag 1 and the
//!   32 bytes, when it is their 64-digit lowercase hex; else tag 0 and a plain string).
//!   Both give back exactly what was written.
//! - New fields are appended at the end of a record; the decoder gives missing trailing
//!   fields their default, and ignores trailing bytes it does not know (written by newer
//!   code). A change that cannot follow this rule takes a new version byte.
//! - Records written as version 1 (CBOR) still decode; they are rewritten as version 2 the
//!   next time they are written (no bulk migration is needed).
//! - Anything else that does not decode is a programming error and traps, like CBOR.

use candid::Principal;

use crate::model::payments::{
    BillingEntry, JournalEntry, Outcome, PaymentPurpose, PaymentSession, PaymentSessionStatus,
    TransferKind,
};
use crate::model::records::{
    ApprovalRecord, AuditEvent, FailedAttempt, MemberRecord, MemberRole, MetricsCounters,
    OpenInvite, Relation, StorageHeader, TicketRecord, UnlockRequestRecord, VaultMembership,
    VaultRecord,
};
use crate::model::types::{PlanSelection, Tier, UnlockRules, VaultStatus};

/// Version byte of the binary records.
pub const BINARY_VERSION: u8 = 2;

/// Appends fields to a buffer.
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// A buffer starting with `version`.
    pub fn new(version: u8, capacity: usize) -> Writer {
        let mut out = Vec::with_capacity(capacity);
        out.push(version);
        Writer(out)
    }
    /// Field `u8` (see the module docs for its layout).
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    /// Field `u16` (see the module docs for its layout).
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Field `u32` (see the module docs for its layout).
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Field `u64` (see the module docs for its layout).
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Field `bool` (see the module docs for its layout).
    pub fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    /// Field `opt_u64` (see the module docs for its layout).
    pub fn opt_u64(&mut self, v: Option<u64>) {
        self.opt(v.as_ref(), |w, v| w.u64(*v));
    }
    /// Field `opt` (see the module docs for its layout).
    pub fn opt<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Writer, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }
    /// Field `bytes` (see the module docs for its layout).
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    /// Field `str` (see the module docs for its layout).
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// Field `principal` (see the module docs for its layout).
    pub fn principal(&mut self, p: &Principal) {
        let b = p.as_slice();
        self.u8(b.len() as u8);
        self.0.extend_from_slice(b);
    }
    /// Field `bytes32` (see the module docs for its layout).
    pub fn bytes32(&mut self, v: &[u8]) {
        if v.len() == 32 {
            let zeros = v.iter().take_while(|b| **b == 0).count();
            self.u8(1);
            self.u8(zeros as u8);
            self.0.extend_from_slice(&v[zeros..]);
        } else {
            self.u8(0);
            self.bytes(v);
        }
    }
    /// Field `hex32` (see the module docs for its layout).
    pub fn hex32(&mut self, v: &str) {
        let digits = (v.len() == 64)
            .then(|| hex::decode(v).ok())
            .flatten()
            .filter(|b| hex::encode(b) == v);
        match digits {
            Some(b) => {
                self.u8(1);
                self.0.extend_from_slice(&b);
            }
            None => {
                self.u8(0);
                self.str(v);
            }
        }
    }
    /// An unsigned LEB128 integer (7 bits a byte, low first; used by the packed audit log).
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    /// Field `vec` (see the module docs for its layout).
    pub fn vec<T>(&mut self, v: &[T], mut f: impl FnMut(&mut Writer, &T)) {
        self.u32(v.len() as u32);
        for e in v {
            f(self, e);
        }
    }
}

/// Reads fields from a record body; `None` when the bytes end early or are malformed.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    /// Whether every byte was read (a record written by older code ends before newer fields).
    pub fn at_end(&self) -> bool {
        self.0.is_empty()
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).map(|b| b.try_into().expect("length checked"))
    }
    /// Field `u8` (see the module docs for its layout).
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    /// Field `u16` (see the module docs for its layout).
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    /// Field `u32` (see the module docs for its layout).
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    /// Field `u64` (see the module docs for its layout).
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    /// Field `bool` (see the module docs for its layout).
    pub fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    /// Field `opt` (see the module docs for its layout).
    pub fn opt<T>(&mut self, f: impl FnOnce(&mut Reader<'a>) -> Option<T>) -> Option<Option<T>> {
        match self.u8()? {
            0 => Some(None),
            1 => f(self).map(Some),
            _ => None,
        }
    }
    /// Field `opt_u64` (see the module docs for its layout).
    pub fn opt_u64(&mut self) -> Option<Option<u64>> {
        self.opt(|r| r.u64())
    }
    /// Field `bytes` (see the module docs for its layout).
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// Field `string` (see the module docs for its layout).
    pub fn string(&mut self) -> Option<String> {
        self.bytes()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
    }
    /// Field `principal` (see the module docs for its layout).
    pub fn principal(&mut self) -> Option<Principal> {
        let n = self.u8()? as usize;
        Principal::try_from_slice(self.take(n)?).ok()
    }
    /// Field `bytes32` (see the module docs for its layout).
    pub fn bytes32(&mut self) -> Option<Vec<u8>> {
        match self.u8()? {
            0 => self.bytes().map(<[u8]>::to_vec),
            1 => {
                let zeros = usize::from(self.u8()?);
                let rest = self.take(32usize.checked_sub(zeros)?)?;
                let mut v = vec![0u8; zeros];
                v.extend_from_slice(rest);
                Some(v)
            }
            _ => None,
        }
    }
    /// Field `hex32` (see the module docs for its layout).
    pub fn hex32(&mut self) -> Option<String> {
        match self.u8()? {
            0 => self.string(),
            1 => self.array::<32>().map(hex::encode),
            _ => None,
        }
    }
    /// An unsigned LEB128 integer ([`Writer::varint`]); `None` past 10 bytes or 64 bits.
    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7F);
            if i == 9 && bits > 1 {
                return None;
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// Bytes left unread.
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }
    /// Field `vec` (see the module docs for its layout).
    pub fn vec<T>(&mut self, mut f: impl FnMut(&mut Reader<'a>) -> Option<T>) -> Option<Vec<T>> {
        let n = self.u32()? as usize;
        // Every element takes at least one byte: a corrupt count cannot allocate much.
        if n > self.0.len() {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(f(self)?);
        }
        Some(out)
    }
}

fn status(code: u8) -> Option<VaultStatus> {
    VaultStatus::ALL.get(usize::from(code)).copied()
}

fn tier_code(t: Tier) -> u8 {
    Tier::ALL
        .iter()
        .position(|x| *x == t)
        .expect("every tier is in Tier::ALL") as u8
}

fn tier(code: u8) -> Option<Tier> {
    Tier::ALL.get(usize::from(code)).copied()
}

fn role_code(r: MemberRole) -> u8 {
    match r {
        MemberRole::Heir => 0,
        MemberRole::Witness => 1,
    }
}

fn role(code: u8) -> Option<MemberRole> {
    match code {
        0 => Some(MemberRole::Heir),
        1 => Some(MemberRole::Witness),
        _ => None,
    }
}

/// Encodes a vault record (version [`BINARY_VERSION`]).
pub fn encode_vault(v: &VaultRecord) -> Vec<u8> {
    let m = &v.membership;
    let mut w = Writer::new(
        BINARY_VERSION,
        256 + v.name.len()
            + 64 * (m.approvals.len() + m.failed_attempts.len() + m.open_invites.len()),
    );
    w.u64(v.id);
    w.principal(&v.owner);
    w.str(&v.name);
    w.u8(v.status.index() as u8);
    w.u8(tier_code(v.plan.tier));
    w.u8(v.plan.heir_slots);
    w.bool(v.plan.witness_slot);
    w.u8(v.owner_age);
    w.u64(v.price_e8s);
    w.opt(v.unlock_rules.as_ref(), |w, r| {
        w.opt_u64(r.unlock_after);
        w.opt(r.inactivity_days.as_ref(), |w, d| w.u32(*d));
        w.u32(r.request_wait_days);
        w.u8(r.required_heirs);
        w.bool(r.required_witness);
    });
    w.u16(v.post_unlock_days);
    w.u16(v.audit_retention_days);
    w.u64(v.created_at);
    w.u64(v.updated_at);
    w.u64(v.status_changed_at);
    w.opt_u64(v.paid_at);
    w.opt_u64(v.expires_at);
    w.opt_u64(v.activated_at);
    w.opt_u64(v.unlocked_at);
    w.opt_u64(v.access_until);
    w.opt_u64(v.deleted_at);
    w.u64(v.last_owner_activity);
    w.u64(v.storage_committed_bytes);
    w.u64(v.storage_reserved_bytes);
    w.u32(v.item_count);
    w.u32(v.heir_count);
    w.bool(v.witness_joined);
    w.u64(v.audit_next_seq);
    w.bytes(&v.audit_head);
    // membership
    w.u64(m.invites_issued);
    w.u32(m.members_issued);
    w.u16(m.share_indices_used);
    w.opt(m.unlock_request.as_ref(), |w, r| {
        w.principal(&r.opened_by);
        w.u32(r.member_id);
        w.u64(r.opened_at);
    });
    w.vec(&m.approvals, |w, a| {
        w.u32(a.member_id);
        w.u64(a.at);
    });
    w.vec(&m.failed_attempts, |w, f| {
        w.principal(&f.principal);
        w.u64(f.at);
    });
    w.opt(m.recovery_code_hash.as_ref(), |w, h| {
        w.0.extend_from_slice(h)
    });
    w.vec(&m.open_invites, |w, i| {
        w.u64(i.invite_id);
        w.u8(role_code(i.role));
        w.u64(i.expires_at);
    });
    // New fields go here (see the module docs).
    w.0
}

/// Decodes the body (after the version byte) of a binary vault record.
pub fn decode_vault(body: &[u8]) -> Option<VaultRecord> {
    let mut r = Reader(body);
    let r = &mut r;
    Some(VaultRecord {
        id: r.u64()?,
        owner: r.principal()?,
        name: r.string()?,
        status: status(r.u8()?)?,
        plan: PlanSelection {
            tier: tier(r.u8()?)?,
            heir_slots: r.u8()?,
            witness_slot: r.bool()?,
        },
        owner_age: r.u8()?,
        price_e8s: r.u64()?,
        unlock_rules: r.opt(|r| {
            Some(UnlockRules {
                unlock_after: r.opt_u64()?,
                inactivity_days: r.opt(|r| r.u32())?,
                request_wait_days: r.u32()?,
                required_heirs: r.u8()?,
                required_witness: r.bool()?,
            })
        })?,
        post_unlock_days: r.u16()?,
        audit_retention_days: r.u16()?,
        created_at: r.u64()?,
        updated_at: r.u64()?,
        status_changed_at: r.u64()?,
        paid_at: r.opt_u64()?,
        expires_at: r.opt_u64()?,
        activated_at: r.opt_u64()?,
        unlocked_at: r.opt_u64()?,
        access_until: r.opt_u64()?,
        deleted_at: r.opt_u64()?,
        last_owner_activity: r.u64()?,
        storage_committed_bytes: r.u64()?,
        storage_reserved_bytes: r.u64()?,
        item_count: r.u32()?,
        heir_count: r.u32()?,
        witness_joined: r.bool()?,
        audit_next_seq: r.u64()?,
        audit_head: r.bytes()?.to_vec(),
        membership: VaultMembership {
            invites_issued: r.u64()?,
            members_issued: r.u32()?,
            share_indices_used: r.u16()?,
            unlock_request: r.opt(|r| {
                Some(UnlockRequestRecord {
                    opened_by: r.principal()?,
                    member_id: r.u32()?,
                    opened_at: r.u64()?,
                })
            })?,
            approvals: r.vec(|r| {
                Some(ApprovalRecord {
                    member_id: r.u32()?,
                    at: r.u64()?,
                })
            })?,
            failed_attempts: r.vec(|r| {
                Some(FailedAttempt {
                    principal: r.principal()?,
                    at: r.u64()?,
                })
            })?,
            recovery_code_hash: r.opt(|r| r.array::<32>())?,
            open_invites: r.vec(|r| {
                Some(OpenInvite {
                    invite_id: r.u64()?,
                    role: role(r.u8()?)?,
                    expires_at: r.u64()?,
                })
            })?,
        },
        // New fields: `if r.at_end() { default } else { read }` (see the module docs).
    })
}

/// Encodes an audit event (version [`BINARY_VERSION`]).
pub fn encode_audit(e: &AuditEvent) -> Vec<u8> {
    let mut w = Writer::new(
        BINARY_VERSION,
        64 + e.action.len() + e.details.len() + e.hash.len(),
    );
    w.u64(e.seq);
    w.u64(e.at);
    w.principal(&e.actor);
    w.str(&e.action);
    w.str(&e.details);
    w.bytes(&e.hash);
    w.0
}

/// Decodes the body of a binary audit event.
pub fn decode_audit(body: &[u8]) -> Option<AuditEvent> {
    let mut r = Reader(body);
    let r = &mut r;
    Some(AuditEvent {
        seq: r.u64()?,
        at: r.u64()?,
        actor: r.principal()?,
        action: r.string()?,
        details: r.string()?,
        hash: r.bytes()?.to_vec(),
    })
}

/// The audit action codes the packed form stores as one byte (code `i + 1`; 0: the action
/// follows as a string). Append-only: a code's meaning never changes. Actions not listed
/// (none today) cost their string.
pub const AUDIT_ACTIONS: [&str; 36] = [
    "vault.created",
    "vault.renamed",
    "vault.unlock_rules_changed",
    "vault.settings_changed",
    "status.changed",
    "owner.check_in",
    "vault.deleted",
    "invite.created",
    "invite.revoked",
    "invite.regenerated",
    "member.joined",
    "member.removed",
    "unlock.requested",
    "unlock.approved",
    "unlock.attempt_failed",
    "unlock.request_cancelled",
    "unlock.completed",
    "recovery.issued",
    "recovery.revoked",
    "recovery.ownership_transferred",
    "recovery.quorum_bypassed",
    "audit.compacted",
    "payment.session_opened",
    "payment.confirmed",
    "payment.refunded",
    "payment.refund_account_set",
    "vault.plan_upgraded",
    "content.upload_begun",
    "content.upload_aborted",
    "content.upload_expired",
    "content.item_added",
    "content.item_replaced",
    "content.item_deleted",
    "content.download_requested",
    "content.item_meta_updated",
    "key.derived",
];

/// Actor byte of a packed event: the previous event of the record had the same actor.
const SAME_ACTOR: u8 = 0xFF;
/// Bit 7 of a packed event's action byte: its details are in the compact encoding of
/// [`super::details`] (records written before it have codes ≤ 36 and plain details).
const PACKED_DETAILS: u8 = 0x80;
const _: () = assert!(AUDIT_ACTIONS.len() < PACKED_DETAILS as usize);

/// Appends one event of the packed small-log form (`storage::audit_log`, layout 6) to `w`:
/// `at: u64 LE | actor | action | details | hash`, where `actor` is a `u8` length and the
/// principal's bytes, or [`SAME_ACTOR`] when it equals `prev_actor`; `action` is a `u8` code
/// (`i + 1` for [`AUDIT_ACTIONS`]`[i]`), or 0 then a varint length and the string, the
/// code's bit 7 ([`PACKED_DETAILS`]) set when the details are compact; `details` a varint
/// length and the string, or its [`super::details`] encoding when `compress` and that is
/// shorter (records written before it hold plain details); `hash` a `u8` tag: 0 when the hash is the chain
/// hash after the previous event (`chained`, recomputed on read), else 1, a varint length
/// and the bytes. The seq is not stored: it is the event's position in the record.
pub fn encode_audit_packed(
    w: &mut Writer,
    e: &AuditEvent,
    prev_actor: Option<&Principal>,
    chained: bool,
    compress: bool,
) {
    w.u64(e.at);
    if prev_actor == Some(&e.actor) {
        w.u8(SAME_ACTOR);
    } else {
        w.principal(&e.actor);
    }
    let mut details = Writer(Vec::with_capacity(e.details.len()));
    if compress {
        super::details::encode(&mut details, &e.details);
    }
    let compressed = compress && details.0.len() < e.details.len();
    let flag = if compressed { PACKED_DETAILS } else { 0 };
    match AUDIT_ACTIONS.iter().position(|a| *a == e.action) {
        Some(i) => w.u8(flag | (i as u8 + 1)),
        None => {
            w.u8(flag);
            w.varint(e.action.len() as u64);
            w.0.extend_from_slice(e.action.as_bytes());
        }
    }
    let details = if compressed {
        &details.0[..]
    } else {
        e.details.as_bytes()
    };
    w.varint(details.len() as u64);
    w.0.extend_from_slice(details);
    if chained {
        w.u8(0);
    } else {
        w.u8(1);
        w.varint(e.hash.len() as u64);
        w.0.extend_from_slice(&e.hash);
    }
}

/// Skips one packed event ([`encode_audit_packed`]) without decoding it; returns its actor's
/// bytes (`None`: the previous event's) and whether its hash is chained. `None` outside when
/// malformed.
pub fn skip_audit_packed<'a>(r: &mut Reader<'a>) -> Option<(Option<&'a [u8]>, bool)> {
    r.take(8)?;
    let actor = match r.u8()? {
        SAME_ACTOR => None,
        n => Some(r.take(usize::from(n))?),
    };
    if r.u8()? & !PACKED_DETAILS == 0 {
        let n = usize::try_from(r.varint()?).ok()?;
        r.take(n)?;
    }
    let n = usize::try_from(r.varint()?).ok()?;
    r.take(n)?;
    let chained = match r.u8()? {
        0 => true,
        1 => {
            let n = usize::try_from(r.varint()?).ok()?;
            r.take(n)?;
            false
        }
        _ => return None,
    };
    Some((actor, chained))
}

/// Reads one packed event ([`encode_audit_packed`]) as event `seq`; its hash is empty when
/// it is chained (the caller computes it). `None` when malformed.
pub fn decode_audit_packed(
    r: &mut Reader,
    seq: u64,
    prev_actor: Option<&Principal>,
) -> Option<(AuditEvent, bool)> {
    let at = r.u64()?;
    let actor = match r.0.first()? {
        &SAME_ACTOR => {
            r.u8()?;
            *prev_actor?
        }
        _ => r.principal()?,
    };
    let code = r.u8()?;
    let action = match code & !PACKED_DETAILS {
        0 => {
            let n = usize::try_from(r.varint()?).ok()?;
            String::from_utf8(r.take(n)?.to_vec()).ok()?
        }
        code => (*AUDIT_ACTIONS.get(usize::from(code) - 1)?).to_string(),
    };
    let n = usize::try_from(r.varint()?).ok()?;
    let details = if code & PACKED_DETAILS != 0 {
        super::details::decode(r.take(n)?)?
    } else {
        String::from_utf8(r.take(n)?.to_vec()).ok()?
    };
    let (hash, chained) = match r.u8()? {
        0 => (Vec::new(), true),
        1 => {
            let n = usize::try_from(r.varint()?).ok()?;
            (r.take(n)?.to_vec(), false)
        }
        _ => return None,
    };
    Some((
        AuditEvent {
            seq,
            at,
            actor,
            action,
            details,
            hash,
        },
        chained,
    ))
}

/// Encodes the storage header (version [`BINARY_VERSION`]).
pub fn encode_header(h: &StorageHeader) -> Vec<u8> {
    let mut w = Writer::new(BINARY_VERSION, 64 + 8 * h.status_counts.len());
    w.u32(h.layout_version);
    w.u64(h.next_vault_id);
    w.vec(&h.status_counts, |w, c| w.u64(*c));
    w.u64(h.next_upload_id);
    w.u64(h.next_item_id);
    w.u64(h.next_blob_id);
    w.u64(h.next_ticket_id);
    w.u64(h.content_pages_hwm);
    w.u64(h.content_free_pages);
    // Appended with the metrics counters (see `domain::metrics`).
    w.u32(h.counters_version);
    let c = &h.counters;
    for v in [
        c.storage_committed_bytes,
        c.storage_reserved_bytes,
        c.invites_day,
        c.invites_issued_today,
        c.invites_claimed_today,
        c.invites_issued_total,
        c.invites_claimed_total,
        c.open_sessions,
        c.billing_entries,
        c.treasury_e8s,
        c.refunded_e8s,
    ] {
        w.u64(v);
    }
    // Appended with the dense ticket table (layout 3).
    w.u64(h.tickets_collected_below);
    w.0
}

/// Decodes the body of a binary storage header.
pub fn decode_header(body: &[u8]) -> Option<StorageHeader> {
    let mut r = Reader(body);
    let r = &mut r;
    Some(StorageHeader {
        layout_version: r.u32()?,
        next_vault_id: r.u64()?,
        status_counts: r.vec(|r| r.u64())?,
        next_upload_id: r.u64()?,
        next_item_id: r.u64()?,
        next_blob_id: r.u64()?,
        next_ticket_id: r.u64()?,
        content_pages_hwm: r.u64()?,
        content_free_pages: r.u64()?,
        // A header written before the counters existed: version 0, recounted by
        // `post_upgrade` (`metrics::ensure_counters`).
        counters_version: if r.at_end() { 0 } else { r.u32()? },
        counters: if r.at_end() {
            MetricsCounters::default()
        } else {
            MetricsCounters {
                storage_committed_bytes: r.u64()?,
                storage_reserved_bytes: r.u64()?,
                invites_day: r.u64()?,
                invites_issued_today: r.u64()?,
                invites_claimed_today: r.u64()?,
                invites_issued_total: r.u64()?,
                invites_claimed_total: r.u64()?,
                open_sessions: r.u64()?,
                billing_entries: r.u64()?,
                treasury_e8s: r.u64()?,
                refunded_e8s: r.u64()?,
            }
        },
        tickets_collected_below: if r.at_end() { 0 } else { r.u64()? },
    })
}

/// Encodes a download ticket (version [`BINARY_VERSION`]).
pub fn encode_ticket(t: &TicketRecord) -> Vec<u8> {
    let mut w = Writer::new(BINARY_VERSION, 80);
    w.u64(t.ticket_id);
    w.u64(t.vault_id);
    w.u64(t.item_id);
    w.u64(t.blob_id);
    w.principal(&t.holder);
    w.u64(t.expires_at);
    w.u32(t.chunk_count);
    w.0
}

/// Decodes the body of a binary download ticket.
pub fn decode_ticket(body: &[u8]) -> Option<TicketRecord> {
    let mut r = Reader(body);
    let r = &mut r;
    Some(TicketRecord {
        ticket_id: r.u64()?,
        vault_id: r.u64()?,
        item_id: r.u64()?,
        blob_id: r.u64()?,
        holder: r.principal()?,
        expires_at: r.u64()?,
        chunk_count: r.u32()?,
    })
}

/// Encodes a member (version [`BINARY_VERSION`]). Members are read by every access check of a
/// non-owner and by every unlock evaluation (one per approval): CBOR cost ~20 000
/// instructions per read, this a few hundred (BENCHMARKS.md, "Endpoint costs").
pub fn encode_member(m: &MemberRecord) -> Vec<u8> {
    let mut w = Writer::new(
        BINARY_VERSION,
        64 + m.name.len() + m.email_hint.as_ref().map_or(0, String::len),
    );
    w.u64(m.vault_id);
    w.u32(m.member_id);
    w.principal(&m.principal);
    w.u8(role_code(m.role));
    w.str(&m.name);
    w.u8(m.share_index);
    w.u64(m.joined_at);
    w.u8(relation_code(m.relation));
    w.opt(m.email_hint.as_ref(), |w, e| w.str(e));
    w.bool(m.can_trigger_unlock);
    w.bool(m.count_as_approver);
    w.u64(m.invite_id);
    w.0
}

/// Decodes the body of a binary member.
pub fn decode_member(body: &[u8]) -> Option<MemberRecord> {
    let mut r = Reader(body);
    let r = &mut r;
    Some(MemberRecord {
        vault_id: r.u64()?,
        member_id: r.u32()?,
        principal: r.principal()?,
        role: role(r.u8()?)?,
        name: r.string()?,
        share_index: r.u8()?,
        joined_at: r.u64()?,
        relation: Relation::ALL.get(usize::from(r.u8()?)).copied()?,
        email_hint: r.opt(|r| r.string())?,
        can_trigger_unlock: r.bool()?,
        count_as_approver: r.bool()?,
        invite_id: r.u64()?,
        // New fields: `if r.at_end() { default } else { read }` (see the module docs).
    })
}

fn relation_code(rel: Relation) -> u8 {
    Relation::ALL
        .iter()
        .position(|x| *x == rel)
        .expect("every relation is in Relation::ALL") as u8
}

// ---- payments (the payment trail every paid vault keeps)

fn purpose_write(w: &mut Writer, p: &PaymentPurpose) {
    match p {
        PaymentPurpose::Create => w.u8(0),
        PaymentPurpose::Upgrade(plan) => {
            w.u8(1);
            w.u8(tier_code(plan.tier));
            w.u8(plan.heir_slots);
            w.bool(plan.witness_slot);
        }
        PaymentPurpose::Renew => w.u8(2),
    }
}

fn purpose_read(r: &mut Reader) -> Option<PaymentPurpose> {
    Some(match r.u8()? {
        0 => PaymentPurpose::Create,
        1 => PaymentPurpose::Upgrade(PlanSelection {
            tier: tier(r.u8()?)?,
            heir_slots: r.u8()?,
            witness_slot: r.bool()?,
        }),
        2 => PaymentPurpose::Renew,
        _ => return None,
    })
}

fn session_status_code(s: PaymentSessionStatus) -> u8 {
    match s {
        PaymentSessionStatus::Open => 0,
        PaymentSessionStatus::Completed => 1,
        PaymentSessionStatus::Refunded => 2,
    }
}

fn session_status(code: u8) -> Option<PaymentSessionStatus> {
    match code {
        0 => Some(PaymentSessionStatus::Open),
        1 => Some(PaymentSessionStatus::Completed),
        2 => Some(PaymentSessionStatus::Refunded),
        _ => None,
    }
}

fn transfer_kind_code(k: TransferKind) -> u8 {
    match k {
        TransferKind::Sweep => 0,
        TransferKind::Refund => 1,
        TransferKind::LateRefund => 2,
    }
}

fn transfer_kind(code: u8) -> Option<TransferKind> {
    match code {
        0 => Some(TransferKind::Sweep),
        1 => Some(TransferKind::Refund),
        2 => Some(TransferKind::LateRefund),
        _ => None,
    }
}

/// Encodes a payment session (version [`BINARY_VERSION`]).
pub fn encode_session(s: &PaymentSession) -> Vec<u8> {
    let mut w = Writer::new(
        BINARY_VERSION,
        160 + s.subaccount.len() + s.account_identifier.len() + s.icrc1_account.len(),
    );
    w.u64(s.id);
    w.u64(s.vault_id);
    w.principal(&s.owner);
    purpose_write(&mut w, &s.purpose);
    w.u64(s.amount_e8s);
    w.bytes32(&s.subaccount);
    w.hex32(&s.account_identifier);
    w.str(&s.icrc1_account);
    w.u64(s.created_at);
    w.u64(s.expires_at);
    w.u8(session_status_code(s.status));
    w.u64(s.received_e8s);
    w.opt_u64(s.billing_id);
    w.opt_u64(s.closed_at);
    w.u64(s.refunded_e8s);
    w.opt_u64(s.refund_block);
    w.opt_u64(s.period_expires_at);
    w.opt_u64(s.next_check_at);
    // New fields go here (see the module docs).
    w.0
}

/// Decodes the body of a binary payment session.
pub fn decode_session(body: &[u8]) -> Option<PaymentSession> {
    let mut r = Reader(body);
    let r = &mut r;
    Some(PaymentSession {
        id: r.u64()?,
        vault_id: r.u64()?,
        owner: r.principal()?,
        purpose: purpose_read(r)?,
        amount_e8s: r.u64()?,
        subaccount: serde_bytes::ByteBuf::from(r.bytes32()?),
        account_identifier: r.hex32()?,
        icrc1_account: r.string()?,
        created_at: r.u64()?,
        expires_at: r.u64()?,
        status: session_status(r.u8()?)?,
        received_e8s: r.u64()?,
        billing_id: r.opt_u64()?,
        closed_at: r.opt_u64()?,
        refunded_e8s: r.u64()?,
        refund_block: r.opt_u64()?,
        period_expires_at: r.opt_u64()?,
        next_check_at: r.opt_u64()?,
    })
}

/// Version byte of a stored payment session since layout 6 (see [`encode_stored_session`]).
pub const SESSION_VERSION: u8 = 3;

/// Encodes a payment session as stored since layout 6 (version [`SESSION_VERSION`]): the
/// fields of [`encode_session`] in the same order, except that the ICRC-1 account text is
/// written as `icrc1` (tag 1 and the owner principal when the text is exactly
/// `icrc1_text(owner, subaccount)` of the session's own subaccount, which every session the
/// canister opens has; else tag 0 and a plain string), then `journal_base`: the first
/// journal seq the session has not used yet once its settled entries were folded away
/// (`u32`; see `storage::repositories::payments`).
pub fn encode_stored_session(s: &PaymentSession, journal_base: u32) -> Vec<u8> {
    let mut w = Writer::new(SESSION_VERSION, 160 + s.subaccount.len());
    w.u64(s.id);
    w.u64(s.vault_id);
    w.principal(&s.owner);
    purpose_write(&mut w, &s.purpose);
    w.u64(s.amount_e8s);
    w.bytes32(&s.subaccount);
    w.hex32(&s.account_identifier);
    match icrc1_owner(&s.icrc1_account, &s.subaccount) {
        Some(owner) => {
            w.u8(1);
            w.principal(&owner);
        }
        None => {
            w.u8(0);
            w.str(&s.icrc1_account);
        }
    }
    w.u64(s.created_at);
    w.u64(s.expires_at);
    w.u8(session_status_code(s.status));
    w.u64(s.received_e8s);
    w.opt_u64(s.billing_id);
    w.opt_u64(s.closed_at);
    w.u64(s.refunded_e8s);
    w.opt_u64(s.refund_block);
    w.opt_u64(s.period_expires_at);
    w.opt_u64(s.next_check_at);
    w.u32(journal_base);
    // New fields go here (see the module docs).
    w.0
}

/// The owner of `text` when it is exactly the ICRC-1 text of that owner and `subaccount`.
fn icrc1_owner(text: &str, subaccount: &[u8]) -> Option<Principal> {
    let sub: [u8; 32] = subaccount.try_into().ok()?;
    let (owner, _) = icp_ledger_types::icrc1_decode(text).ok()?;
    (icp_ledger_types::icrc1_text(&owner, Some(sub)) == text).then_some(owner)
}

/// Decodes the body of a session written by [`encode_stored_session`]: the session and its
/// journal base.
pub fn decode_stored_session(body: &[u8]) -> Option<(PaymentSession, u32)> {
    let mut r = Reader(body);
    let r = &mut r;
    let id = r.u64()?;
    let vault_id = r.u64()?;
    let owner = r.principal()?;
    let purpose = purpose_read(r)?;
    let amount_e8s = r.u64()?;
    let subaccount = r.bytes32()?;
    let account_identifier = r.hex32()?;
    let icrc1_account = match r.u8()? {
        0 => r.string()?,
        1 => {
            let canister = r.principal()?;
            let sub: [u8; 32] = subaccount.as_slice().try_into().ok()?;
            icp_ledger_types::icrc1_text(&canister, Some(sub))
        }
        _ => return None,
    };
    let session = PaymentSession {
        id,
        vault_id,
        owner,
        purpose,
        amount_e8s,
        subaccount: serde_bytes::ByteBuf::from(subaccount),
        account_identifier,
        icrc1_account,
        created_at: r.u64()?,
        expires_at: r.u64()?,
        status: session_status(r.u8()?)?,
        received_e8s: r.u64()?,
        billing_id: r.opt_u64()?,
        closed_at: r.opt_u64()?,
        refunded_e8s: r.u64()?,
        refund_block: r.opt_u64()?,
        period_expires_at: r.opt_u64()?,
        next_check_at: r.opt_u64()?,
    };
    let journal_base = if r.at_end() { 0 } else { r.u32()? };
    Some((session, journal_base))
}

/// Encodes a payment journal entry (version [`BINARY_VERSION`]).
pub fn encode_journal(e: &JournalEntry) -> Vec<u8> {
    let reason = match &e.outcome {
        Outcome::Failed { reason } => reason.len(),
        _ => 0,
    };
    let mut w = Writer::new(
        BINARY_VERSION,
        128 + e.from_subaccount.len() + e.to.len() + reason,
    );
    w.u64(e.session_id);
    w.u32(e.seq);
    w.u8(transfer_kind_code(e.kind));
    w.bytes32(&e.from_subaccount);
    w.bytes32(&e.to);
    w.principal(&e.to_owner);
    w.u64(e.amount_e8s);
    w.u64(e.fee_e8s);
    w.u64(e.memo);
    w.u64(e.created_at_time);
    w.u64(e.balance_before);
    w.u32(e.attempts);
    match &e.outcome {
        Outcome::Pending => w.u8(0),
        Outcome::Done { block } => {
            w.u8(1);
            w.opt_u64(*block);
        }
        Outcome::Failed { reason } => {
            w.u8(2);
            w.str(reason);
        }
    }
    w.u64(e.written_at);
    w.opt_u64(e.settled_at);
    // New fields go here (see the module docs).
    w.0
}

/// Decodes the body of a binary payment journal entry.
pub fn decode_journal(body: &[u8]) -> Option<JournalEntry> {
    let mut r = Reader(body);
    let r = &mut r;
    Some(JournalEntry {
        session_id: r.u64()?,
        seq: r.u32()?,
        kind: transfer_kind(r.u8()?)?,
        from_subaccount: r.bytes32()?,
        to: r.bytes32()?,
        to_owner: r.principal()?,
        amount_e8s: r.u64()?,
        fee_e8s: r.u64()?,
        memo: r.u64()?,
        created_at_time: r.u64()?,
        balance_before: r.u64()?,
        attempts: r.u32()?,
        outcome: match r.u8()? {
            0 => Outcome::Pending,
            1 => Outcome::Done {
                block: r.opt_u64()?,
            },
            2 => Outcome::Failed {
                reason: r.string()?,
            },
            _ => return None,
        },
        written_at: r.u64()?,
        settled_at: r.opt_u64()?,
    })
}

/// Encodes a billing entry (version [`BINARY_VERSION`]).
pub fn encode_billing(b: &BillingEntry) -> Vec<u8> {
    let mut w = Writer::new(BINARY_VERSION, 160);
    w.u64(b.id);
    w.u64(b.session_id);
    w.u64(b.vault_id);
    w.principal(&b.owner);
    purpose_write(&mut w, &b.purpose);
    w.u64(b.amount_e8s);
    w.u64(b.received_e8s);
    w.u64(b.treasury_e8s);
    w.opt_u64(b.sweep_block);
    w.bool(b.sweep_pending);
    w.u64(b.refund_e8s);
    w.opt_u64(b.refund_block);
    w.bool(b.refund_pending);
    w.u64(b.dust_e8s);
    w.u64(b.fees_e8s);
    w.bool(b.applied);
    w.u64(b.recorded_at);
    // New fields go here (see the module docs).
    w.0
}

/// Decodes the body of a binary billing entry.
pub fn decode_billing(body: &[u8]) -> Option<BillingEntry> {
    let mut r = Reader(body);
    let r = &mut r;
    Some(BillingEntry {
        id: r.u64()?,
        session_id: r.u64()?,
        vault_id: r.u64()?,
        owner: r.principal()?,
        purpose: purpose_read(r)?,
        amount_e8s: r.u64()?,
        received_e8s: r.u64()?,
        treasury_e8s: r.u64()?,
        sweep_block: r.opt_u64()?,
        sweep_pending: r.bool()?,
        refund_e8s: r.u64()?,
        refund_block: r.opt_u64()?,
        refund_pending: r.bool()?,
        dust_e8s: r.u64()?,
        fees_e8s: r.u64()?,
        applied: r.bool()?,
        recorded_at: r.u64()?,
    })
}

// ---- billing slots (layout 6)

/// Bytes of a billing slot: every slot has exactly this size (see [`encode_billing_slot`]).
pub const BILLING_SLOT_BYTES: usize = 74;
/// Slot tag: no billing entry has this id.
pub const SLOT_ABSENT: u8 = 0;
/// Slot tag: the entry is in the slot; its vault, owner, purpose and price are its session's.
pub const SLOT_COMPACT: u8 = 1;
/// Slot tag: the entry is kept whole in the `BILLING` map (one whose vault, owner, purpose
/// or price differ from its session's: none the canister writes; an older record might).
pub const SLOT_OVERFLOW: u8 = 2;

/// Encodes a billing slot: the tag, then (for [`SLOT_COMPACT`]; zeros otherwise) the fields
/// of the entry that are not its session's, at fixed width: `session_id`, `received_e8s`,
/// `treasury_e8s` (`u64`), one flags byte (bit 0 `sweep_pending`, 1 `refund_pending`,
/// 2 `applied`, 3 `sweep_block` present, 4 `refund_block` present), `sweep_block`,
/// `refund_e8s`, `refund_block`, `dust_e8s`, `fees_e8s`, `recorded_at` (`u64`, an absent
/// block as 0). The billing id is the slot's index + 1.
pub fn encode_billing_slot(tag: u8, b: &BillingEntry) -> Vec<u8> {
    let mut out = vec![0u8; BILLING_SLOT_BYTES];
    out[0] = tag;
    if tag != SLOT_COMPACT {
        return out;
    }
    let flags = u8::from(b.sweep_pending)
        | u8::from(b.refund_pending) << 1
        | u8::from(b.applied) << 2
        | u8::from(b.sweep_block.is_some()) << 3
        | u8::from(b.refund_block.is_some()) << 4;
    let mut w = Writer(Vec::with_capacity(BILLING_SLOT_BYTES));
    w.u8(tag);
    w.u64(b.session_id);
    w.u64(b.received_e8s);
    w.u64(b.treasury_e8s);
    w.u8(flags);
    w.u64(b.sweep_block.unwrap_or(0));
    w.u64(b.refund_e8s);
    w.u64(b.refund_block.unwrap_or(0));
    w.u64(b.dust_e8s);
    w.u64(b.fees_e8s);
    w.u64(b.recorded_at);
    debug_assert_eq!(w.0.len(), BILLING_SLOT_BYTES);
    w.0
}

/// Decodes a billing slot: its tag and, for [`SLOT_COMPACT`], the entry with id 0 and
/// without its session's fields (vault 0, the anonymous owner, `Create`, price 0), which
/// the reader fills in. `None` for a malformed slot.
pub fn decode_billing_slot(bytes: &[u8]) -> Option<(u8, Option<BillingEntry>)> {
    if bytes.len() != BILLING_SLOT_BYTES {
        return None;
    }
    let mut r = Reader(bytes);
    let tag = r.u8()?;
    match tag {
        SLOT_ABSENT | SLOT_OVERFLOW => {
            return bytes[1..].iter().all(|b| *b == 0).then_some((tag, None))
        }
        SLOT_COMPACT => {}
        _ => return None,
    }
    let session_id = r.u64()?;
    let received_e8s = r.u64()?;
    let treasury_e8s = r.u64()?;
    let flags = r.u8()?;
    if flags >> 5 != 0 {
        return None;
    }
    let bit = |n: u8| flags & (1 << n) != 0;
    let sweep_block = r.u64()?;
    let refund_e8s = r.u64()?;
    let refund_block = r.u64()?;
    let entry = BillingEntry {
        id: 0,
        session_id,
        vault_id: 0,
        owner: Principal::anonymous(),
        purpose: PaymentPurpose::Create,
        amount_e8s: 0,
        received_e8s,
        treasury_e8s,
        sweep_block: bit(3).then_some(sweep_block),
        sweep_pending: bit(0),
        refund_e8s,
        refund_block: bit(4).then_some(refund_block),
        refund_pending: bit(1),
        dust_e8s: r.u64()?,
        fees_e8s: r.u64()?,
        applied: bit(2),
        recorded_at: r.u64()?,
    };
    Some((tag, Some(entry)))
}

/// Implements `Storable` (unbounded) for a record with a binary encoding (version 2) that
/// also reads its older CBOR records (version 1).
#[macro_export]
macro_rules! binary_storable {
    ($ty:ty, $encode:path, $decode:path) => {
        impl ic_stable_structures::Storable for $ty {
            fn to_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
                std::borrow::Cow::Owned($encode(self))
            }
            fn into_bytes(self) -> Vec<u8> {
                $encode(&self)
            }
            fn from_bytes(bytes: std::borrow::Cow<[u8]>) -> Self {
                match bytes.split_first() {
                    Some((&$crate::storage::binary::BINARY_VERSION, body)) => $decode(body)
                        .unwrap_or_else(|| panic!("BUG: corrupt stored {}", stringify!($ty))),
                    Some((1, _)) => $crate::storage::codec::decode(1, stringify!($ty), &bytes),
                    Some((v, _)) => {
                        panic!("BUG: stored {} has unknown version {v}", stringify!($ty))
                    }
                    None => panic!("BUG: empty stored {}", stringify!($ty)),
                }
            }
            const BOUND: ic_stable_structures::storable::Bound =
                ic_stable_structures::storable::Bound::Unbounded;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::records::LAYOUT_VERSION;
    use ic_stable_structures::Storable;
    use std::borrow::Cow;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    /// A vault with every optional field set and every vector non-empty.
    fn full_vault() -> VaultRecord {
        VaultRecord {
            id: 77,
            owner: p(1),
            name: "Grandma's vault ✓".into(),
            status: VaultStatus::Unlockable,
            plan: PlanSelection {
                tier: Tier::Titan,
                heir_slots: 9,
                witness_slot: true,
            },
            owner_age: 81,
            price_e8s: 123_456_789,
            unlock_rules: Some(UnlockRules {
                unlock_after: Some(5),
                inactivity_days: Some(90),
                request_wait_days: 7,
                required_heirs: 2,
                required_witness: true,
            }),
            post_unlock_days: 200,
            audit_retention_days: 400,
            created_at: 1,
            updated_at: 2,
            status_changed_at: 3,
            paid_at: Some(4),
            expires_at: Some(u64::MAX),
            activated_at: Some(6),
            unlocked_at: Some(7),
            access_until: Some(8),
            deleted_at: None,
            last_owner_activity: 9,
            storage_committed_bytes: 10,
            storage_reserved_bytes: 11,
            item_count: 12,
            heir_count: 13,
            witness_joined: true,
            audit_next_seq: 14,
            audit_head: vec![0xAB; 32],
            membership: VaultMembership {
                invites_issued: 15,
                members_issued: 16,
                share_indices_used: 17,
                unlock_request: Some(UnlockRequestRecord {
                    opened_by: p(2),
                    member_id: 3,
                    opened_at: 18,
                }),
                approvals: vec![
                    ApprovalRecord {
                        member_id: 3,
                        at: 19,
                    },
                    ApprovalRecord {
                        member_id: 4,
                        at: 20,
                    },
                ],
                failed_attempts: vec![FailedAttempt {
                    principal: Principal::anonymous(),
                    at: 21,
                }],
                recovery_code_hash: Some([7; 32]),
                open_invites: vec![OpenInvite {
                    invite_id: 22,
                    role: MemberRole::Witness,
                    expires_at: 23,
                }],
            },
        }
    }

    fn minimal_vault() -> VaultRecord {
        VaultRecord {
            name: String::new(),
            status: VaultStatus::Deleted,
            unlock_rules: None,
            paid_at: None,
            expires_at: None,
            activated_at: None,
            unlocked_at: None,
            access_until: None,
            deleted_at: Some(99),
            membership: VaultMembership::default(),
            ..full_vault()
        }
    }

    fn event() -> AuditEvent {
        AuditEvent {
            seq: 3,
            at: 4,
            actor: p(5),
            action: "status.changed".into(),
            details: "Draft -> Deleted (DraftUnpaidTimeout)".into(),
            hash: vec![6; 32],
        }
    }

    fn header() -> StorageHeader {
        StorageHeader {
            layout_version: LAYOUT_VERSION,
            next_vault_id: 100_001,
            status_counts: (1..=9).collect(),
            next_upload_id: 2,
            next_item_id: 3,
            next_blob_id: 4,
            next_ticket_id: 5,
            content_pages_hwm: 6,
            content_free_pages: 7,
            counters: MetricsCounters {
                storage_committed_bytes: 8,
                storage_reserved_bytes: 9,
                invites_day: 10,
                invites_issued_today: 11,
                invites_claimed_today: 12,
                invites_issued_total: 13,
                invites_claimed_total: 14,
                open_sessions: 15,
                billing_entries: 16,
                treasury_e8s: 17,
                refunded_e8s: u64::MAX,
            },
            counters_version: crate::model::records::COUNTERS_VERSION,
            tickets_collected_below: 17,
        }
    }

    /// A binary header written before the metrics counters were appended reads with
    /// `counters_version` 0, so `post_upgrade` recounts them.
    #[test]
    fn header_without_counters_reads_as_version_0() {
        let full = header().to_bytes().into_owned();
        let without = full[..full.len() - 8 - 4 - 11 * 8].to_vec();
        let h = StorageHeader::from_bytes(Cow::Owned(without));
        assert_eq!(h.counters_version, 0);
        assert_eq!(h.counters, MetricsCounters::default());
        assert_eq!(h.next_vault_id, header().next_vault_id);
        assert_eq!(h.content_free_pages, header().content_free_pages);
        assert_eq!(h.tickets_collected_below, 0);
    }

    /// A header written before the ticket collector's resume point reads it as 0.
    #[test]
    fn header_without_ticket_cursor_reads_as_0() {
        let full = header().to_bytes().into_owned();
        let h = StorageHeader::from_bytes(Cow::Owned(full[..full.len() - 8].to_vec()));
        assert_eq!(h.tickets_collected_below, 0);
        assert_eq!(h.counters, header().counters);
    }

    #[test]
    fn tickets_round_trip_and_read_their_cbor_version() {
        let t = TicketRecord {
            ticket_id: 7,
            vault_id: 8,
            item_id: 9,
            blob_id: 10,
            holder: Principal::from_slice(&[4; 29]),
            expires_at: 11,
            chunk_count: 12,
        };
        let bytes = t.to_bytes();
        assert_eq!(bytes[0], BINARY_VERSION);
        assert_eq!(TicketRecord::from_bytes(bytes), t);
        let cbor = crate::storage::codec::encode(1, &t);
        assert_eq!(TicketRecord::from_bytes(Cow::Owned(cbor)), t);
    }

    #[test]
    fn records_round_trip() {
        for v in [full_vault(), minimal_vault()] {
            let bytes = v.to_bytes();
            assert_eq!(bytes[0], BINARY_VERSION);
            assert_eq!(VaultRecord::from_bytes(bytes), v);
        }
        assert_eq!(AuditEvent::from_bytes(event().to_bytes()), event());
        assert_eq!(StorageHeader::from_bytes(header().to_bytes()), header());
        for s in VaultStatus::ALL {
            let v = VaultRecord {
                status: s,
                ..minimal_vault()
            };
            assert_eq!(VaultRecord::from_bytes(v.to_bytes()), v);
        }
        for t in Tier::ALL {
            let mut v = minimal_vault();
            v.plan.tier = t;
            assert_eq!(VaultRecord::from_bytes(v.to_bytes()), v);
        }
    }

    /// Records written by the previous code (CBOR, version 1) still read back, so no bulk
    /// migration is needed; the next write stores them as version 2.
    #[test]
    fn version_1_cbor_records_still_decode() {
        use crate::storage::codec::encode;
        for v in [full_vault(), minimal_vault()] {
            let old = encode(1, &v);
            assert_eq!(VaultRecord::from_bytes(Cow::Owned(old)), v);
        }
        assert_eq!(
            AuditEvent::from_bytes(Cow::Owned(encode(1, &event()))),
            event()
        );
        assert_eq!(
            StorageHeader::from_bytes(Cow::Owned(encode(1, &header()))),
            header()
        );
    }

    /// Bytes appended by newer code (new trailing fields) are ignored.
    #[test]
    fn trailing_fields_of_newer_code_are_ignored() {
        let mut bytes = full_vault().to_bytes().into_owned();
        bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(VaultRecord::from_bytes(Cow::Owned(bytes)), full_vault());
    }

    /// The binary records are several times smaller than their CBOR form.
    #[test]
    fn binary_is_compact() {
        let v = full_vault();
        let cbor = crate::storage::codec::encode(1, &v).len();
        let bin = v.to_bytes().len();
        assert!(bin * 2 < cbor, "binary {bin} bytes, CBOR {cbor} bytes");
    }

    #[test]
    #[should_panic(expected = "corrupt stored VaultRecord")]
    fn truncated_record_is_refused() {
        let bytes = full_vault().to_bytes().into_owned();
        let _ = VaultRecord::from_bytes(Cow::Owned(bytes[..bytes.len() - 3].to_vec()));
    }

    #[test]
    #[should_panic(expected = "unknown version 3")]
    fn unknown_version_is_refused() {
        let mut bytes = full_vault().to_bytes().into_owned();
        bytes[0] = 3;
        let _ = VaultRecord::from_bytes(Cow::Owned(bytes));
    }

    // ------------------------------------------------------------ payment records

    fn session_of(purpose: PaymentPurpose, status: PaymentSessionStatus) -> PaymentSession {
        PaymentSession {
            id: 12,
            vault_id: 34,
            owner: p(2),
            purpose,
            amount_e8s: 150_010_000,
            subaccount: serde_bytes::ByteBuf::from(vec![5; 32]),
            account_identifier: "0f".repeat(32),
            icrc1_account: "uxrrr-q7777-77774-qaaaq-cai-ofgk7yq.1000000000000000c".into(),
            created_at: 1,
            expires_at: 2,
            status,
            received_e8s: 3,
            billing_id: Some(4),
            closed_at: Some(5),
            refunded_e8s: 6,
            refund_block: Some(7),
            period_expires_at: Some(8),
            next_check_at: Some(9),
        }
    }

    fn journal_of(kind: TransferKind, outcome: Outcome) -> JournalEntry {
        JournalEntry {
            session_id: 12,
            seq: 1,
            kind,
            from_subaccount: vec![5; 32],
            to: vec![6; 32],
            to_owner: p(9),
            amount_e8s: 150_000_000,
            fee_e8s: 10_000,
            memo: (12 << 16) | 1,
            created_at_time: 20,
            balance_before: 150_010_000,
            attempts: 2,
            outcome,
            written_at: 20,
            settled_at: Some(21),
        }
    }

    fn billing_of(purpose: PaymentPurpose) -> BillingEntry {
        BillingEntry {
            id: 4,
            session_id: 12,
            vault_id: 34,
            owner: p(2),
            purpose,
            amount_e8s: 150_010_000,
            received_e8s: 160_010_000,
            treasury_e8s: 150_000_000,
            sweep_block: Some(30),
            sweep_pending: false,
            refund_e8s: 9_990_000,
            refund_block: Some(31),
            refund_pending: true,
            dust_e8s: 0,
            fees_e8s: 20_000,
            applied: true,
            recorded_at: 32,
        }
    }

    /// Layout 6 sessions: the ICRC-1 text of the session's own subaccount is stored as its
    /// owner only, any other text whole; both read back exactly, with the journal base;
    /// a version-2 body (no base) reads with base 0.
    #[test]
    fn stored_sessions_keep_the_icrc1_text_as_its_owner_when_it_is_derived() {
        let canister = Principal::from_slice(&[0xCA, 0xFE, 1, 1]);
        for purpose in purposes() {
            let mut s = session_of(purpose, PaymentSessionStatus::Completed);
            let sub: [u8; 32] = s.subaccount.as_slice().try_into().unwrap();
            s.icrc1_account = icp_ledger_types::icrc1_text(&canister, Some(sub));
            let derived = encode_stored_session(&s, 3);
            assert_eq!(derived[0], SESSION_VERSION);
            assert_eq!(decode_stored_session(&derived[1..]), Some((s.clone(), 3)));
            // Not derived from this subaccount (the fixture's text): stored whole.
            let other = session_of(purpose, PaymentSessionStatus::Open);
            let whole = encode_stored_session(&other, 0);
            assert_eq!(decode_stored_session(&whole[1..]), Some((other.clone(), 0)));
            assert_eq!(
                whole.len() - derived.len(),
                // tag, u32 length, text against tag, principal length, principal
                (1 + 4 + other.icrc1_account.len()) - (1 + 1 + canister.as_slice().len()),
            );
            // A layout-5 body: the same fields, no base.
            let v2 = encode_session(&other);
            assert_eq!(decode_session(&v2[1..]), Some(other.clone()));
            assert_eq!(
                decode_stored_session(&whole[1..whole.len() - 4]),
                Some((other, 0))
            );
            assert_eq!(decode_stored_session(&derived[1..derived.len() - 9]), None);
        }
    }

    /// Billing slots: fixed size, every field of the entry that is not its session's reads
    /// back (absent blocks and set ones, flags); absent and overflow slots carry nothing;
    /// anything malformed is refused.
    #[test]
    fn billing_slots_round_trip_and_refuse_malformed_bytes() {
        let strip = |b: &BillingEntry| BillingEntry {
            id: 0,
            vault_id: 0,
            owner: Principal::anonymous(),
            purpose: PaymentPurpose::Create,
            amount_e8s: 0,
            ..b.clone()
        };
        let mut b = billing_of(PaymentPurpose::Renew);
        for (sweep, refund, flags) in [
            (None, None, (false, false, false)),
            (Some(0), Some(u64::MAX), (true, true, true)),
            (Some(30), None, (true, false, true)),
        ] {
            b.sweep_block = sweep;
            b.refund_block = refund;
            (b.sweep_pending, b.refund_pending, b.applied) = flags;
            let bytes = encode_billing_slot(SLOT_COMPACT, &b);
            assert_eq!(bytes.len(), BILLING_SLOT_BYTES);
            assert_eq!(
                decode_billing_slot(&bytes),
                Some((SLOT_COMPACT, Some(strip(&b))))
            );
        }
        for tag in [SLOT_ABSENT, SLOT_OVERFLOW] {
            let bytes = encode_billing_slot(tag, &b);
            assert!(bytes[1..].iter().all(|x| *x == 0));
            assert_eq!(decode_billing_slot(&bytes), Some((tag, None)));
        }
        let good = encode_billing_slot(SLOT_COMPACT, &b);
        let mut bad_tag = good.clone();
        bad_tag[0] = 3;
        let mut bad_flags = good.clone();
        bad_flags[25] |= 1 << 5;
        let mut dirty_absent = encode_billing_slot(SLOT_ABSENT, &b);
        dirty_absent[9] = 1;
        for bad in [bad_tag, bad_flags, dirty_absent, good[..73].to_vec()] {
            assert_eq!(decode_billing_slot(&bad), None);
        }
    }

    fn purposes() -> Vec<PaymentPurpose> {
        let mut all = vec![PaymentPurpose::Create, PaymentPurpose::Renew];
        for t in Tier::ALL {
            all.push(PaymentPurpose::Upgrade(PlanSelection {
                tier: t,
                heir_slots: 7,
                witness_slot: true,
            }));
        }
        all
    }

    fn outcomes() -> Vec<Outcome> {
        vec![
            Outcome::Pending,
            Outcome::Done { block: None },
            Outcome::Done {
                block: Some(u64::MAX),
            },
            Outcome::Failed {
                reason: String::new(),
            },
            Outcome::Failed {
                reason: "bad fee: the ledger expects 10000 e8s ✓".into(),
            },
        ]
    }

    /// Every payment record: every enum case, every option both ways, binary and (the
    /// version 1 records already stored) CBOR.
    #[test]
    fn payment_records_round_trip_and_read_their_cbor_version() {
        use crate::storage::codec::encode;
        let statuses = [
            PaymentSessionStatus::Open,
            PaymentSessionStatus::Completed,
            PaymentSessionStatus::Refunded,
        ];
        for purpose in purposes() {
            for status in statuses {
                let full = session_of(purpose, status);
                let empty = PaymentSession {
                    subaccount: serde_bytes::ByteBuf::new(),
                    account_identifier: String::new(),
                    icrc1_account: String::new(),
                    billing_id: None,
                    closed_at: None,
                    refund_block: None,
                    period_expires_at: None,
                    next_check_at: None,
                    ..full.clone()
                };
                for s in [full, empty] {
                    let bytes = s.to_bytes();
                    assert_eq!(bytes[0], BINARY_VERSION);
                    assert_eq!(PaymentSession::from_bytes(bytes), s);
                    assert_eq!(PaymentSession::from_bytes(Cow::Owned(encode(1, &s))), s);
                }
            }
            let b = billing_of(purpose);
            let none = BillingEntry {
                sweep_block: None,
                refund_block: None,
                sweep_pending: true,
                refund_pending: false,
                applied: false,
                ..b.clone()
            };
            for b in [b, none] {
                assert_eq!(BillingEntry::from_bytes(b.to_bytes()), b);
                assert_eq!(BillingEntry::from_bytes(Cow::Owned(encode(1, &b))), b);
            }
        }
        for kind in [
            TransferKind::Sweep,
            TransferKind::Refund,
            TransferKind::LateRefund,
        ] {
            for outcome in outcomes() {
                for settled_at in [None, Some(7)] {
                    let e = JournalEntry {
                        settled_at,
                        ..journal_of(kind, outcome.clone())
                    };
                    assert_eq!(JournalEntry::from_bytes(e.to_bytes()), e);
                    assert_eq!(JournalEntry::from_bytes(Cow::Owned(encode(1, &e))), e);
                }
            }
        }
    }

    /// A session stored (CBOR) before its `#[serde(default)]` fields existed still reads,
    /// with their defaults, and is rewritten in the binary form.
    #[test]
    fn a_cbor_session_older_than_its_default_fields_still_decodes() {
        #[derive(serde::Serialize)]
        struct OldSession {
            id: u64,
            vault_id: u64,
            owner: Principal,
            purpose: PaymentPurpose,
            amount_e8s: u64,
            subaccount: serde_bytes::ByteBuf,
            account_identifier: String,
            icrc1_account: String,
            created_at: u64,
            expires_at: u64,
            status: PaymentSessionStatus,
            received_e8s: u64,
            billing_id: Option<u64>,
            closed_at: Option<u64>,
        }
        let new = session_of(PaymentPurpose::Renew, PaymentSessionStatus::Completed);
        let old = OldSession {
            id: new.id,
            vault_id: new.vault_id,
            owner: new.owner,
            purpose: new.purpose,
            amount_e8s: new.amount_e8s,
            subaccount: new.subaccount.clone(),
            account_identifier: new.account_identifier.clone(),
            icrc1_account: new.icrc1_account.clone(),
            created_at: new.created_at,
            expires_at: new.expires_at,
            status: new.status,
            received_e8s: new.received_e8s,
            billing_id: new.billing_id,
            closed_at: new.closed_at,
        };
        let read = PaymentSession::from_bytes(Cow::Owned(crate::storage::codec::encode(1, &old)));
        let expect = PaymentSession {
            refunded_e8s: 0,
            refund_block: None,
            period_expires_at: None,
            next_check_at: None,
            ..new
        };
        assert_eq!(read, expect);
        let rewritten = read.to_bytes();
        assert_eq!(rewritten[0], BINARY_VERSION);
        assert_eq!(PaymentSession::from_bytes(rewritten), expect);
    }

    /// The payment records are unbounded like every record of this module (a failure
    /// reason, the strings of a session have no fixed maximum), and a long one still
    /// round-trips.
    #[test]
    fn payment_records_are_unbounded() {
        use ic_stable_structures::storable::Bound;
        assert!(matches!(PaymentSession::BOUND, Bound::Unbounded));
        assert!(matches!(JournalEntry::BOUND, Bound::Unbounded));
        assert!(matches!(BillingEntry::BOUND, Bound::Unbounded));
        let long = journal_of(
            TransferKind::Refund,
            Outcome::Failed {
                reason: "x".repeat(100_000),
            },
        );
        assert_eq!(JournalEntry::from_bytes(long.to_bytes()), long);
    }

    #[test]
    #[should_panic(expected = "corrupt stored JournalEntry")]
    fn an_unknown_outcome_code_is_refused() {
        let mut bytes = journal_of(TransferKind::Sweep, Outcome::Pending)
            .to_bytes()
            .into_owned();
        // The outcome code follows 8 + 4 + 1 + (2 + 32) * 2 + 30 + 8 * 5 + 4 bytes.
        let at = 1 + 8 + 4 + 1 + 34 + 34 + 30 + 40 + 4;
        assert_eq!(bytes[at], 0);
        bytes[at] = 3;
        let _ = JournalEntry::from_bytes(Cow::Owned(bytes));
    }

    // ------------------------------------------------------------ randomized round trips

    use crate::storage::model_test::cases;
    use proptest::prelude::*;

    fn principal() -> impl Strategy<Value = Principal> {
        prop::collection::vec(any::<u8>(), 0..=29).prop_map(|b| Principal::from_slice(&b))
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), ".{0,40}"]
    }

    prop_compose! {
        fn membership()(
            invites_issued in any::<u64>(),
            members_issued in any::<u32>(),
            share_indices_used in any::<u16>(),
            unlock_request in prop::option::of((principal(), any::<u32>(), any::<u64>())),
            approvals in prop::collection::vec((any::<u32>(), any::<u64>()), 0..4),
            failed in prop::collection::vec((principal(), any::<u64>()), 0..3),
            recovery_code_hash in prop::option::of(any::<[u8; 32]>()),
            open_invites in prop::collection::vec((any::<u64>(), any::<bool>(), any::<u64>()), 0..3),
        ) -> VaultMembership {
            VaultMembership {
                invites_issued,
                members_issued,
                share_indices_used,
                unlock_request: unlock_request.map(|(opened_by, member_id, opened_at)| {
                    UnlockRequestRecord { opened_by, member_id, opened_at }
                }),
                approvals: approvals
                    .into_iter()
                    .map(|(member_id, at)| ApprovalRecord { member_id, at })
                    .collect(),
                failed_attempts: failed
                    .into_iter()
                    .map(|(principal, at)| FailedAttempt { principal, at })
                    .collect(),
                recovery_code_hash,
                open_invites: open_invites
                    .into_iter()
                    .map(|(invite_id, witness, expires_at)| OpenInvite {
                        invite_id,
                        role: if witness { MemberRole::Witness } else { MemberRole::Heir },
                        expires_at,
                    })
                    .collect(),
            }
        }
    }

    prop_compose! {
        fn vault()(
            (id, owner, name, status, tier, heir_slots, witness_slot, owner_age) in (
                any::<u64>(), principal(), text(), prop::sample::select(VaultStatus::ALL.to_vec()),
                prop::sample::select(Tier::ALL.to_vec()), any::<u8>(), any::<bool>(), any::<u8>(),
            ),
            (price_e8s, rules, post_unlock_days, audit_retention_days) in (
                any::<u64>(),
                prop::option::of((
                    prop::option::of(any::<u64>()), prop::option::of(any::<u32>()),
                    any::<u32>(), any::<u8>(), any::<bool>(),
                )),
                any::<u16>(),
                any::<u16>(),
            ),
            times in any::<[u64; 4]>(),
            optional in any::<[Option<u64>; 6]>(),
            (committed, reserved, item_count, heir_count, witness_joined, audit_next_seq) in (
                any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<bool>(), any::<u64>(),
            ),
            audit_head in prop::collection::vec(any::<u8>(), 0..40),
            membership in membership(),
        ) -> VaultRecord {
            VaultRecord {
                id,
                owner,
                name,
                status,
                plan: PlanSelection { tier, heir_slots, witness_slot },
                owner_age,
                price_e8s,
                unlock_rules: rules.map(|(unlock_after, inactivity_days, request_wait_days, required_heirs, required_witness)| {
                    UnlockRules { unlock_after, inactivity_days, request_wait_days, required_heirs, required_witness }
                }),
                post_unlock_days,
                audit_retention_days,
                created_at: times[0],
                updated_at: times[1],
                status_changed_at: times[2],
                paid_at: optional[0],
                expires_at: optional[1],
                activated_at: optional[2],
                unlocked_at: optional[3],
                access_until: optional[4],
                deleted_at: optional[5],
                last_owner_activity: times[3],
                storage_committed_bytes: committed,
                storage_reserved_bytes: reserved,
                item_count,
                heir_count,
                witness_joined,
                audit_next_seq,
                audit_head,
                membership,
            }
        }
    }

    prop_compose! {
        fn audit_event()(
            seq in any::<u64>(), at in any::<u64>(), actor in principal(),
            action in text(), details in ".{0,300}", hash in prop::collection::vec(any::<u8>(), 0..40),
        ) -> AuditEvent {
            AuditEvent { seq, at, actor, action, details, hash }
        }
    }

    prop_compose! {
        fn storage_header()(
            ids in any::<[u64; 8]>(),
            layout_version in any::<u32>(),
            status_counts in prop::collection::vec(any::<u64>(), 0..12),
            c in any::<[u64; 11]>(),
            counters_version in any::<u32>(),
        ) -> StorageHeader {
            StorageHeader {
                layout_version,
                next_vault_id: ids[0],
                status_counts,
                next_upload_id: ids[1],
                next_item_id: ids[2],
                next_blob_id: ids[3],
                next_ticket_id: ids[4],
                content_pages_hwm: ids[5],
                content_free_pages: ids[6],
                counters: MetricsCounters {
                    storage_committed_bytes: c[0],
                    storage_reserved_bytes: c[1],
                    invites_day: c[2],
                    invites_issued_today: c[3],
                    invites_claimed_today: c[4],
                    invites_issued_total: c[5],
                    invites_claimed_total: c[6],
                    open_sessions: c[7],
                    billing_entries: c[8],
                    treasury_e8s: c[9],
                    refunded_e8s: c[10],
                },
                counters_version,
                tickets_collected_below: ids[7],
            }
        }
    }

    prop_compose! {
        fn ticket()(ids in any::<[u64; 5]>(), holder in principal(), chunk_count in any::<u32>()) -> TicketRecord {
            TicketRecord {
                ticket_id: ids[0],
                vault_id: ids[1],
                item_id: ids[2],
                blob_id: ids[3],
                holder,
                expires_at: ids[4],
                chunk_count,
            }
        }
    }

    /// Byte strings of any length, 32-byte ones (with leading zeros or not) more often.
    fn bytes32() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            (0usize..=32, any::<[u8; 32]>()).prop_map(|(zeros, b)| {
                let mut v = b.to_vec();
                v[..zeros].fill(0);
                v
            }),
        ]
    }

    /// Strings, 64 hex digits (lowercase: the compact form; uppercase or 63: not) often.
    fn hex32() -> impl Strategy<Value = String> {
        prop_oneof![text(), "[0-9a-f]{64}", "[0-9a-fA-F]{64}", "[0-9a-f]{63}"]
    }

    fn purpose() -> impl Strategy<Value = PaymentPurpose> {
        prop_oneof![
            Just(PaymentPurpose::Create),
            Just(PaymentPurpose::Renew),
            (
                prop::sample::select(Tier::ALL.to_vec()),
                any::<u8>(),
                any::<bool>()
            )
                .prop_map(|(tier, heir_slots, witness_slot)| PaymentPurpose::Upgrade(
                    PlanSelection {
                        tier,
                        heir_slots,
                        witness_slot,
                    }
                )),
        ]
    }

    prop_compose! {
        fn payment_session()(
            (id, vault_id, owner, purpose, amount_e8s) in
                (any::<u64>(), any::<u64>(), principal(), purpose(), any::<u64>()),
            (subaccount, account_identifier, icrc1_account) in
                (bytes32(), hex32(), text()),
            (created_at, expires_at, received_e8s, refunded_e8s) in any::<(u64, u64, u64, u64)>(),
            status in prop::sample::select(vec![
                PaymentSessionStatus::Open,
                PaymentSessionStatus::Completed,
                PaymentSessionStatus::Refunded,
            ]),
            optional in any::<[Option<u64>; 5]>(),
        ) -> PaymentSession {
            PaymentSession {
                id,
                vault_id,
                owner,
                purpose,
                amount_e8s,
                subaccount: serde_bytes::ByteBuf::from(subaccount),
                account_identifier,
                icrc1_account,
                created_at,
                expires_at,
                status,
                received_e8s,
                billing_id: optional[0],
                closed_at: optional[1],
                refunded_e8s,
                refund_block: optional[2],
                period_expires_at: optional[3],
                next_check_at: optional[4],
            }
        }
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Pending),
            any::<Option<u64>>().prop_map(|block| Outcome::Done { block }),
            text().prop_map(|reason| Outcome::Failed { reason }),
        ]
    }

    prop_compose! {
        fn journal_entry()(
            (session_id, seq, attempts) in (any::<u64>(), any::<u32>(), any::<u32>()),
            kind in prop::sample::select(vec![
                TransferKind::Sweep,
                TransferKind::Refund,
                TransferKind::LateRefund,
            ]),
            from_subaccount in bytes32(),
            to in bytes32(),
            to_owner in principal(),
            n in any::<[u64; 6]>(),
            outcome in outcome(),
            settled_at in any::<Option<u64>>(),
        ) -> JournalEntry {
            JournalEntry {
                session_id,
                seq,
                kind,
                from_subaccount,
                to,
                to_owner,
                amount_e8s: n[0],
                fee_e8s: n[1],
                memo: n[2],
                created_at_time: n[3],
                balance_before: n[4],
                attempts,
                outcome,
                written_at: n[5],
                settled_at,
            }
        }
    }

    prop_compose! {
        fn billing_entry()(
            ids in any::<[u64; 3]>(),
            owner in principal(),
            purpose in purpose(),
            n in any::<[u64; 7]>(),
            blocks in any::<[Option<u64>; 2]>(),
            flags in any::<[bool; 3]>(),
        ) -> BillingEntry {
            BillingEntry {
                id: ids[0],
                session_id: ids[1],
                vault_id: ids[2],
                owner,
                purpose,
                amount_e8s: n[0],
                received_e8s: n[1],
                treasury_e8s: n[2],
                sweep_block: blocks[0],
                sweep_pending: flags[0],
                refund_e8s: n[3],
                refund_block: blocks[1],
                refund_pending: flags[1],
                dust_e8s: n[4],
                fees_e8s: n[5],
                applied: flags[2],
                recorded_at: n[6],
            }
        }
    }

    prop_compose! {
        fn member()(
            ids in any::<(u64, u32, u64, u64)>(),
            holder in principal(),
            witness in any::<bool>(),
            name in ".{0,40}",
            share_index in any::<u8>(),
            relation in 0..Relation::ALL.len(),
            email_hint in proptest::option::of(".{0,40}"),
            flags in any::<(bool, bool)>(),
        ) -> MemberRecord {
            MemberRecord {
                vault_id: ids.0,
                member_id: ids.1,
                principal: holder,
                role: if witness { MemberRole::Witness } else { MemberRole::Heir },
                name,
                share_index,
                joined_at: ids.2,
                relation: Relation::ALL[relation],
                email_hint,
                can_trigger_unlock: flags.0,
                count_as_approver: flags.1,
                invite_id: ids.3,
            }
        }
    }

    /// Members: every relation round-trips, the CBOR form of earlier code still reads, and
    /// the binary form is several times smaller.
    #[test]
    fn members_round_trip_read_their_cbor_version_and_shrink() {
        for (i, relation) in Relation::ALL.into_iter().enumerate() {
            let m = MemberRecord {
                vault_id: 3,
                member_id: i as u32 + 1,
                principal: p(9),
                role: MemberRole::Heir,
                name: "Ana María".into(),
                share_index: 1,
                joined_at: 1_700_000_000_000_000_000,
                relation,
                email_hint: (i % 2 == 0).then(|| "a…@example.org".to_string()),
                can_trigger_unlock: true,
                count_as_approver: i % 3 == 0,
                invite_id: 4,
            };
            let bytes = m.to_bytes();
            assert_eq!(bytes[0], BINARY_VERSION);
            assert_eq!(
                bytes[bytes.len() - 10..bytes.len() - 8],
                [1, u8::from(i % 3 == 0)]
            );
            assert_eq!(MemberRecord::from_bytes(bytes.clone()), m);
            let cbor = crate::storage::codec::encode(1, &m);
            assert_eq!(MemberRecord::from_bytes(Cow::Owned(cbor.clone())), m);
            assert!(
                bytes.len() * 2 < cbor.len(),
                "binary {} bytes, CBOR {} bytes",
                bytes.len(),
                cbor.len()
            );
        }
    }

    /// The record survives its encoding, through `Storable` and through the body decoder.
    fn round_trips<T: Storable + PartialEq + std::fmt::Debug>(
        value: T,
        decode: fn(&[u8]) -> Option<T>,
    ) {
        let bytes = value.to_bytes().into_owned();
        assert_eq!(bytes[0], BINARY_VERSION);
        assert_eq!(T::from_bytes(Cow::Owned(bytes.clone())), value);
        assert_eq!(decode(&bytes[1..]).as_ref(), Some(&value));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(256)))]
        #[test]
        fn random_vaults_round_trip(v in vault()) {
            round_trips(v, decode_vault);
        }

        #[test]
        fn random_events_headers_and_tickets_round_trip(
            e in audit_event(), h in storage_header(), t in ticket(),
        ) {
            round_trips(e, decode_audit);
            round_trips(h, decode_header);
            round_trips(t, decode_ticket);
        }

        #[test]
        fn random_members_round_trip(m in member()) {
            round_trips(m, decode_member);
        }

        #[test]
        fn random_payment_records_round_trip_in_binary_and_in_cbor(
            s in payment_session(), e in journal_entry(), b in billing_entry(),
        ) {
            use crate::storage::codec::encode;
            prop_assert_eq!(PaymentSession::from_bytes(Cow::Owned(encode(1, &s))), s.clone());
            prop_assert_eq!(JournalEntry::from_bytes(Cow::Owned(encode(1, &e))), e.clone());
            prop_assert_eq!(BillingEntry::from_bytes(Cow::Owned(encode(1, &b))), b.clone());
            round_trips(s, decode_session);
            round_trips(e, decode_journal);
            round_trips(b, decode_billing);
        }
    }
}
