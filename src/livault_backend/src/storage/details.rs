//! A compact, lossless encoding of audit-event details, used by the packed small audit log
//! ([`super::audit_log`], layout 6).
//!
//! Details are short texts the domain formats from a few templates (`session=7
//! purpose=Create amount_e8s=150000000`, `NeedSetup -> Active (CreationPaid)`): most of their
//! bytes are key names, enum names and decimal numbers. The encoding replaces each of those
//! with one or a few bytes and gives back exactly the text written, whatever it is:
//!
//! ```text
//! 0x00..=0x7F   that ASCII byte
//! 0x80 + i      DICTIONARY[i]                      (i < 0x70)
//! 0xF0 varint   a decimal number: the digits of the value, no leading zero
//! 0xF1 varint n the next n bytes as they are (text outside ASCII)
//! 0xF2..=0xFF   malformed
//! ```
//!
//! [`DICTIONARY`] is part of the stored format: entries are only ever appended (a test pins
//! the existing ones). The encoder takes, at each position, the longest dictionary entry
//! that starts there, else a digit run that is a `u64` without a leading zero, else the byte;
//! the decoder does not depend on those choices. The idle vault's four events (creation,
//! payment session, payment, status change) take ~50 bytes of details instead of ~235 (the
//! test `the_idle_vaults_details_round_trip_in_under_a_quarter_of_their_bytes` prints
//! both), which puts its packed audit record in a 192-byte block instead of a 384-byte one
//! (BENCHMARKS.md, stable bytes per idle vault).

use super::binary::{Reader, Writer};

/// Texts one byte stands for (`0x80 + index`). Only ever appended to: the index is stored.
pub const DICTIONARY: &[&str] = &[
    // keys of the domain's details templates
    "plan=",
    " heir_slots=",
    " witness_slot=",
    " price_e8s=",
    "session=",
    " purpose=",
    " amount_e8s=",
    " received_e8s=",
    " billing=",
    " applied=",
    " refunded_e8s=",
    " block=",
    "upload=",
    " kind=",
    " size=",
    " replaces=",
    "member=",
    " wait_days=",
    " role=",
    "item=",
    " ticket=",
    "invite=",
    " invite=",
    " share_index=",
    "share_index=",
    " key=",
    " meta_bytes=",
    " recipients=",
    "from=",
    " to=",
    "bypass_quorum=",
    " replaced_previous=",
    "; access_until=",
    "reason=member joined",
    " -> ",
    // values
    "true",
    "false",
    "Some(",
    "None",
    "Create",
    "Upgrade(",
    "Renew",
    "PlanSelection { tier: ",
    ", heir_slots: ",
    ", witness_slot: ",
    " }",
    "Heir",
    "Witness",
    "Basic",
    "Standard",
    "Premium",
    "Deluxe",
    "Titan",
    "File",
    "Letter",
    "Password",
    // vault statuses
    "Draft",
    "NeedSetup",
    "SetupComplete",
    "Active",
    "GraceMaster",
    "GraceHeir",
    "Unlockable",
    "Expired",
    "Deleted",
    // lifecycle events
    "CreationPaid",
    "DraftUnpaidTimeout",
    "SetupConditionsMet",
    "SetupConditionsLost",
    "Finalize",
    "UnlockRulesMet",
    "ValidityEnded",
    "Renewed",
    "GraceMasterElapsed",
    "GraceHeirQuorumMet",
    "GraceHeirElapsed",
    "AccessEnded",
    "TombstoneDue",
    "OwnerDelete",
    // unlock paths
    "scheduler: ",
    "trigger_unlock: ",
    "approve_unlock: ",
    "recovery code bypassed the quorum; ",
    // appended: settings, rules and the remaining templates
    "unlock_after=",
    " inactivity_days=",
    " request_wait_days=",
    " required_heirs=",
    " required_witness=",
    " while=",
    "post_unlock_days=",
    "audit_retention_days=",
    " upload=",
    " version=",
    "owner activity; request_open=",
    " approvals_cleared=",
    "refund_account=",
    "removed ",
    " events (seq ",
    ") older than ",
    " days",
];

const FIRST_WORD: u8 = 0x80;
const NUMBER: u8 = 0xF0;
const RAW: u8 = 0xF1;
const _: () = assert!(DICTIONARY.len() <= (NUMBER - FIRST_WORD) as usize);

/// Most dictionary entries that start with the same byte.
const MAX_SAME_FIRST: usize = 48;

/// Per first byte, the indexes of the dictionary entries that start with it, longest first:
/// the encoder tries only those (most bytes of free text start none).
struct Starts {
    index: [[u8; MAX_SAME_FIRST]; 128],
    count: [u8; 128],
}

const STARTS: Starts = {
    let mut s = Starts {
        index: [[0; MAX_SAME_FIRST]; 128],
        count: [0; 128],
    };
    let mut longest = 0;
    let mut i = 0;
    while i < DICTIONARY.len() {
        let w = DICTIONARY[i].as_bytes();
        assert!(
            !w.is_empty() && w[0] < 0x80,
            "dictionary entries start with ASCII"
        );
        if w.len() > longest {
            longest = w.len();
        }
        i += 1;
    }
    let mut len = longest;
    while len > 0 {
        let mut i = 0;
        while i < DICTIONARY.len() {
            let w = DICTIONARY[i].as_bytes();
            if w.len() == len {
                let f = w[0] as usize;
                assert!((s.count[f] as usize) < MAX_SAME_FIRST);
                s.index[f][s.count[f] as usize] = i as u8;
                s.count[f] += 1;
            }
            i += 1;
        }
        len -= 1;
    }
    s
};

/// The longest dictionary entry `rest` starts with: its index and length.
fn word_at(rest: &[u8]) -> Option<(usize, usize)> {
    let first = usize::from(*rest.first()?);
    if first >= 0x80 {
        return None;
    }
    STARTS.index[first][..usize::from(STARTS.count[first])]
        .iter()
        .map(|&i| (usize::from(i), DICTIONARY[usize::from(i)].as_bytes()))
        // The second byte first: most candidates differ there, before a slice comparison.
        .find(|(_, w)| w.get(1).is_none_or(|b| rest.get(1) == Some(b)) && rest.starts_with(w))
        .map(|(i, w)| (i, w.len()))
}

/// The value of the digit run `rest` starts with, and its length, when it has no leading
/// zero (or is `0`) and fits a `u64`: then the value's decimal form is exactly the run.
fn number_at(rest: &[u8]) -> Option<(u64, usize)> {
    if !rest.first()?.is_ascii_digit() {
        return None;
    }
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if n > 1 && rest[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &d in &rest[..n] {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some((v, n))
}

/// Bytes of `v` as a varint.
fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Appends the encoding of `text` to `w` (without a length).
pub fn encode(w: &mut Writer, text: &str) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if let Some((index, n)) = word_at(rest) {
            w.u8(FIRST_WORD + index as u8);
            i += n;
        } else if let Some((v, n)) = number_at(rest).filter(|&(v, n)| 1 + varint_len(v) < n) {
            w.u8(NUMBER);
            w.varint(v);
            i += n;
        } else if rest[0] < FIRST_WORD {
            w.u8(rest[0]);
            i += 1;
        } else {
            let n = rest.iter().take_while(|&&c| c >= FIRST_WORD).count();
            w.u8(RAW);
            w.varint(n as u64);
            w.0.extend_from_slice(&rest[..n]);
            i += n;
        }
    }
}

/// Appends the decimal digits of `v` (a table-free loop: the formatting machinery costs
/// a few thousand instructions a number, and moving a packed log to pages decodes all of
/// its events in one update).
fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The text encoded in `bytes` ([`encode`]); `None` when malformed or not UTF-8.
pub fn decode(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let mut r = Reader(bytes);
    while !r.at_end() {
        match r.u8()? {
            c if c < FIRST_WORD => out.push(c),
            NUMBER => push_decimal(&mut out, r.varint()?),
            RAW => {
                let n = usize::try_from(r.varint()?).ok()?;
                out.extend_from_slice(r.take(n)?);
            }
            c => out.extend_from_slice(DICTIONARY.get(usize::from(c - FIRST_WORD))?.as_bytes()),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(text: &str) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        encode(&mut w, text);
        w.0
    }

    /// The details an idle vault's events carry, as the domain formats them.
    const IDLE_VAULT: [&str; 4] = [
        "plan=Standard heir_slots=2 witness_slot=true price_e8s=150000000",
        "session=7 purpose=Create amount_e8s=150000000",
        "session=7 purpose=Create amount_e8s=150000000 received_e8s=150000000 billing=7 applied=true",
        "Draft -> NeedSetup (CreationPaid)",
    ];

    #[test]
    fn the_idle_vaults_details_round_trip_in_under_a_quarter_of_their_bytes() {
        let (mut text, mut packed) = (0, 0);
        for d in IDLE_VAULT {
            let e = encoded(d);
            assert_eq!(decode(&e).as_deref(), Some(d));
            text += d.len();
            packed += e.len();
        }
        println!("idle vault details: {packed} bytes for {text}");
        assert!(packed * 4 < text, "{packed} bytes for {text}");
    }

    #[test]
    fn the_dictionary_is_pinned() {
        // Stored indexes: an edit of an existing entry changes what old records decode to.
        assert_eq!(encoded("plan="), [0x80]);
        assert_eq!(encoded(" -> "), [0x80 + 34]);
        assert_eq!(encoded("true"), [0x80 + 35]);
        assert_eq!(encoded("Draft"), [0x80 + 56]);
        assert_eq!(encoded("CreationPaid"), [0x80 + 65]);
        // FNV-1a over the first PINNED entries: appending keeps it, editing breaks it.
        const PINNED: usize = 83;
        let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
        for b in DICTIONARY[..PINNED].join("\u{0}").bytes() {
            digest = (digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(
            digest, 0xb614_cecb_3acb_56f3,
            "dictionary digest {digest:#x}: entries are only appended"
        );
    }

    #[test]
    fn the_first_byte_table_finds_the_longest_entry_a_plain_scan_finds() {
        let longest = |rest: &[u8]| {
            DICTIONARY
                .iter()
                .enumerate()
                .filter(|(_, w)| rest.starts_with(w.as_bytes()))
                .max_by_key(|(_, w)| w.len())
                .map(|(i, w)| (i, w.len()))
        };
        for w in DICTIONARY {
            for tail in ["", "x", " -> ", "0", "Elapsed"] {
                let text = format!("{w}{tail}");
                assert_eq!(
                    word_at(text.as_bytes()),
                    longest(text.as_bytes()),
                    "{text:?}"
                );
            }
        }
        assert_eq!(word_at(b"GraceHeirElapsed"), longest(b"GraceHeirElapsed"));
        assert_eq!(word_at("é".as_bytes()), None);
    }

    #[test]
    fn numbers_keep_their_exact_digits() {
        for t in [
            "0",
            "00",
            "007",
            "10",
            "18446744073709551615",
            "18446744073709551616",
            "999999999999999999999999",
            "a1b22c333",
            "e8s",
        ] {
            assert_eq!(decode(&encoded(t)).as_deref(), Some(t), "{t}");
        }
        let mut w = Writer(vec![NUMBER]);
        w.varint(150_000_000);
        assert_eq!(encoded("150000000"), w.0);
        // A number shorter than its digits only: "7" stays a byte, "0…" is not a number.
        assert_eq!(encoded("007"), b"007");
        assert_eq!(encoded("1234"), [NUMBER, 0xD2, 0x09]);
        for v in [0, 9, 10, 99, 100, 1234, u64::MAX / 10, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }

    #[test]
    fn text_outside_ascii_is_kept_as_it_is() {
        for t in ["Grüße", "遺言 -> 相続人", "\u{10FFFF}x\u{80}"] {
            assert_eq!(decode(&encoded(t)).as_deref(), Some(t), "{t}");
        }
    }

    #[test]
    fn malformed_bytes_are_refused() {
        assert_eq!(decode(&[0xF2]), None);
        assert_eq!(decode(&[0x80 + DICTIONARY.len() as u8]), None);
        assert_eq!(decode(&[NUMBER]), None);
        assert_eq!(decode(&[RAW, 3, 0xC3]), None);
        assert_eq!(decode(&[RAW, 1, 0xC3]), None, "not UTF-8");
    }

    proptest! {
        #[test]
        fn any_text_round_trips(text in "\\PC{0,80}") {
            prop_assert_eq!(decode(&encoded(&text)), Some(text));
        }

        #[test]
        fn templated_text_round_trips(
            parts in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(DICTIONARY.to_vec()).prop_map(String::from),
                    any::<u64>().prop_map(|v| v.to_string()),
                    "[0-9 =;]{1,4}",
                ],
                0..12,
            )
        ) {
            let text = parts.concat();
            let e = encoded(&text);
            prop_assert!(e.len() <= text.len());
            prop_assert_eq!(decode(&e), Some(text));
        }

        #[test]
        fn any_bytes_decode_or_are_refused_without_a_trap(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Some(text) = decode(&bytes) {
                prop_assert_eq!(decode(&encoded(&text)), Some(text));
            }
        }
    }
}
