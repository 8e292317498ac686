//! Arguments: random Candid values of each method's `.did` types, biased towards the edges
//! (empty and huge texts, blobs and vectors; 0 / 1 / max numbers and the validation
//! boundaries of the interface; ids, tokens and principals that exist in the populated
//! canister), and raw-byte mutations of valid encodings (bit flips, truncation, appended
//! garbage, wrong magic, huge length prefixes, deep nesting, foreign argument types).

use candid::types::value::{IDLArgs, IDLField, IDLValue, VariantValue};
use candid::types::{Label, Type, TypeInner};
use candid::{Int, Nat, Principal};

use super::interface::{Interface, Method};
use super::rng::Rng;
use super::world::Dictionary;

/// The inspect limit of ordinary update arguments (`api::arguments::MAX_ARG_BYTES`).
pub const ARG_LIMIT: usize = 16 * 1024;
/// The IC's ingress message size limit.
pub const INGRESS_LIMIT: usize = 2 * 1024 * 1024;
/// The default upload chunk size.
pub const CHUNK: usize = 1 << 20;

/// How an argument was made (reported per endpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArgKind {
    /// A valid encoding of random values of the method's types.
    Typed,
    /// Valid Candid of other types: another method's arguments, one argument less, extra
    /// arguments.
    Foreign,
    /// A valid encoding mutated at the byte level.
    Mutated,
    /// Hand-made bytes: empty, garbage, deep nesting, huge length prefixes.
    Raw,
}

impl ArgKind {
    pub const ALL: [ArgKind; 4] = [
        ArgKind::Typed,
        ArgKind::Foreign,
        ArgKind::Mutated,
        ArgKind::Raw,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ArgKind::Typed => "typed",
            ArgKind::Foreign => "foreign",
            ArgKind::Mutated => "mutated",
            ArgKind::Raw => "raw",
        }
    }
}

/// Generator of values and argument bytes.
pub struct Gen<'a> {
    pub rng: Rng,
    pub iface: &'a Interface,
    pub dict: &'a Dictionary,
    /// Host time now (for timestamps near the present).
    pub now: u64,
    /// Bytes the current argument may still spend on big values (so one argument stays near
    /// at most a few MiB).
    budget: usize,
}

const DAY: u64 = 86_400 * 1_000_000_000;

impl<'a> Gen<'a> {
    pub fn new(rng: Rng, iface: &'a Interface, dict: &'a Dictionary, now: u64) -> Gen<'a> {
        Gen {
            rng,
            iface,
            dict,
            now,
            budget: 0,
        }
    }

    /// The argument bytes of one call of `m`, and how they were made.
    pub fn args(&mut self, m: &Method) -> (Vec<u8>, ArgKind) {
        self.budget = INGRESS_LIMIT + 64 * 1024;
        match self.rng.below(100) {
            0..=54 => (self.typed(m), ArgKind::Typed),
            55..=64 => (self.foreign(m), ArgKind::Foreign),
            65..=94 => {
                let mut bytes = self.typed(m);
                for _ in 0..self.rng.range(1, 3) {
                    self.mutate(&mut bytes);
                }
                (bytes, ArgKind::Mutated)
            }
            _ => (self.raw(), ArgKind::Raw),
        }
    }

    /// Random values of the method's own types, encoded.
    pub fn typed(&mut self, m: &Method) -> Vec<u8> {
        let values: Vec<IDLValue> = m.args.iter().map(|t| self.value(t, 0)).collect();
        encode(self.iface, &values, &m.args)
    }

    fn foreign(&mut self, m: &Method) -> Vec<u8> {
        match self.rng.below(3) {
            0 => {
                // Another method's arguments.
                let other = self.rng.pick(&self.iface.methods).clone();
                self.typed(&other)
            }
            1 if !m.args.is_empty() => {
                // One argument less (a missing `opt` argument is null; others are refused).
                let types = &m.args[..m.args.len() - 1];
                let values: Vec<IDLValue> = types.iter().map(|t| self.value(t, 0)).collect();
                encode(self.iface, &values, types)
            }
            2 if self.rng.percent(40) => {
                // The right arguments and an extra one of a recursive type (`t = opt t`)
                // nested deep: the decoder skips it value by value.
                let bytes = self.typed(m);
                let depth = *self.rng.pick(&[10usize, 500, 3_000, 15_000]);
                with_deep_extra(&bytes, depth).unwrap_or(bytes)
            }
            _ => {
                // The right arguments followed by extra ones (skipped by the decoder, within
                // its skipping quota).
                let mut types = m.args.clone();
                let other = self.rng.pick(&self.iface.methods).clone();
                types.extend(other.args.iter().cloned());
                if self.rng.percent(30) {
                    // A long extra vector: exercises the skipping quota.
                    types.push(TypeInner::Vec(TypeInner::Null.into()).into());
                }
                let values: Vec<IDLValue> = types
                    .iter()
                    .map(|t| match t.as_ref() {
                        TypeInner::Vec(e) if matches!(e.as_ref(), TypeInner::Null) => {
                            let n = *self.rng.pick(&[10usize, 9_999, 10_001, 200_000]);
                            IDLValue::Vec(vec![IDLValue::Null; n])
                        }
                        _ => self.value(t, 0),
                    })
                    .collect();
                encode(self.iface, &values, &types)
            }
        }
    }

    /// A random value of type `ty`.
    pub fn value(&mut self, ty: &Type, depth: u32) -> IDLValue {
        let ty = self.iface.env.trace_type(ty).expect("known type");
        match ty.as_ref() {
            TypeInner::Null => IDLValue::Null,
            TypeInner::Bool => IDLValue::Bool(self.rng.percent(50)),
            TypeInner::Nat => IDLValue::Nat(self.nat()),
            TypeInner::Int => IDLValue::Int(self.int()),
            TypeInner::Nat8 => IDLValue::Nat8(self.nat8()),
            TypeInner::Nat16 => IDLValue::Nat16(self.nat16()),
            TypeInner::Nat32 => IDLValue::Nat32(self.nat32()),
            TypeInner::Nat64 => IDLValue::Nat64(self.nat64()),
            TypeInner::Int8 => IDLValue::Int8(self.rng.next_u64() as i8),
            TypeInner::Int16 => IDLValue::Int16(self.rng.next_u64() as i16),
            TypeInner::Int32 => IDLValue::Int32(self.rng.next_u64() as i32),
            TypeInner::Int64 => IDLValue::Int64(*self.rng.pick(&[
                0,
                1,
                -1,
                i64::MIN,
                i64::MAX,
                self.rng.clone().next_u64() as i64,
            ])),
            TypeInner::Float32 => IDLValue::Float32(*self.rng.pick(&[
                0.0,
                -0.0,
                1.5,
                f32::NAN,
                f32::INFINITY,
                f32::MIN,
            ])),
            TypeInner::Float64 => IDLValue::Float64(*self.rng.pick(&[
                0.0,
                -0.0,
                1.5,
                f64::NAN,
                f64::INFINITY,
                f64::MIN,
            ])),
            TypeInner::Text => {
                // Big texts are charged where they are made; small ones here (many of them in
                // a long vector add up).
                let t = self.text();
                if t.len() >= 4096 || self.take_budget(t.len() + 1) {
                    IDLValue::Text(t)
                } else {
                    IDLValue::Text(String::new())
                }
            }
            TypeInner::Reserved => IDLValue::Reserved,
            TypeInner::Principal => IDLValue::Principal(self.principal()),
            TypeInner::Opt(inner) => {
                if depth > 8 || self.rng.percent(35) {
                    IDLValue::None
                } else {
                    IDLValue::Opt(Box::new(self.value(inner, depth + 1)))
                }
            }
            TypeInner::Vec(inner) => {
                let inner_t = self.iface.env.trace_type(inner).expect("known type");
                if matches!(inner_t.as_ref(), TypeInner::Nat8) {
                    let b = self.blob();
                    if b.len() >= 4096 || self.take_budget(b.len() + 1) {
                        IDLValue::Blob(b)
                    } else {
                        IDLValue::Blob(Vec::new())
                    }
                } else {
                    let n = self.vec_len(depth);
                    IDLValue::Vec((0..n).map(|_| self.value(&inner_t, depth + 1)).collect())
                }
            }
            TypeInner::Record(fields) => IDLValue::Record(
                fields
                    .iter()
                    .map(|f| IDLField {
                        id: (*f.id).clone(),
                        val: self.value(&f.ty, depth + 1),
                    })
                    .collect(),
            ),
            TypeInner::Variant(fields) => {
                let i = self.rng.index(fields.len());
                let f = &fields[i];
                IDLValue::Variant(VariantValue(
                    Box::new(IDLField {
                        id: (*f.id).clone(),
                        val: self.value(&f.ty, depth + 1),
                    }),
                    i as u64,
                ))
            }
            other => panic!("the fuzzer cannot generate values of type {other:?}"),
        }
    }

    fn take_budget(&mut self, n: usize) -> bool {
        if n <= self.budget {
            self.budget -= n;
            true
        } else {
            false
        }
    }

    fn vec_len(&mut self, depth: u32) -> usize {
        let n = match self.rng.below(100) {
            0..=29 => 0,
            30..=54 => 1,
            55..=79 => self.rng.range(2, 5) as usize,
            80..=93 => self.rng.range(6, 100) as usize,
            94..=98 => self.rng.range(101, 3_000) as usize,
            _ => 100_000,
        };
        // Elements cost at least a byte each; nested vectors stay small.
        let n = if depth > 2 { n.min(4) } else { n };
        if self.take_budget(n.saturating_mul(8)) {
            n
        } else {
            1
        }
    }

    fn nat(&mut self) -> Nat {
        let s = match self.rng.below(6) {
            0 => "0".to_string(),
            1 => "1".to_string(),
            2 => u64::MAX.to_string(),
            3 => "18446744073709551616".to_string(),
            4 => "340282366920938463463374607431768211456".to_string(),
            _ => self.rng.next_u64().to_string(),
        };
        Nat::parse(s.as_bytes()).expect("decimal")
    }

    fn int(&mut self) -> Int {
        let s = match self.rng.below(6) {
            0 => "0".to_string(),
            1 => "-1".to_string(),
            2 => i64::MIN.to_string(),
            3 => "-340282366920938463463374607431768211456".to_string(),
            4 => "340282366920938463463374607431768211456".to_string(),
            _ => (self.rng.next_u64() as i64).to_string(),
        };
        Int::parse(s.as_bytes()).expect("decimal")
    }

    fn nat8(&mut self) -> u8 {
        match self.rng.below(3) {
            0 => *self.rng.pick(&[
                0, 1, 2, 3, 5, 8, 10, 11, 17, 18, 19, 120, 121, 127, 128, 255,
            ]),
            1 => self.rng.below(12) as u8,
            _ => self.rng.next_u64() as u8,
        }
    }

    fn nat16(&mut self) -> u16 {
        match self.rng.below(3) {
            0 => *self
                .rng
                .pick(&[0, 1, 29, 30, 31, 364, 365, 366, 3650, 3651, u16::MAX]),
            1 => self.rng.below(12) as u16,
            _ => self.rng.next_u64() as u16,
        }
    }

    fn nat32(&mut self) -> u32 {
        match self.rng.below(5) {
            0 => *self.rng.pick(&[
                0,
                1,
                2,
                7,
                50,
                64,
                65,
                99,
                100,
                101,
                365,
                366,
                3650,
                3651,
                u32::MAX - 1,
                u32::MAX,
            ]),
            1 | 2 => {
                if !self.dict.member_ids.is_empty() && self.rng.percent(50) {
                    *self.rng.pick(&self.dict.member_ids)
                } else {
                    self.rng.below(12) as u32
                }
            }
            3 => self.rng.below(1 << 21) as u32,
            _ => self.rng.next_u64() as u32,
        }
    }

    fn nat64(&mut self) -> u64 {
        match self.rng.below(100) {
            0..=34 => self.rng.below(14),
            35..=49 if !self.dict.ids.is_empty() => *self.rng.pick(&self.dict.ids),
            50..=64 => *self.rng.pick(&[
                0,
                1,
                2,
                u64::MAX,
                u64::MAX - 1,
                i64::MAX as u64,
                1 << 32,
                (1 << 32) - 1,
                1 << 53,
                10_000,
                10_001,
                99_999_999,
                100_000_000,
                CHUNK as u64,
                CHUNK as u64 + 1,
                5 * CHUNK as u64,
                250 * CHUNK as u64 + 1,
            ]),
            65..=79 => {
                let base = if !self.dict.times.is_empty() && self.rng.percent(50) {
                    *self.rng.pick(&self.dict.times)
                } else {
                    self.now
                };
                let delta = *self.rng.pick(&[
                    0,
                    1,
                    1_000_000_000,
                    3600 * 1_000_000_000,
                    DAY,
                    30 * DAY,
                    3650 * DAY,
                    36_600 * DAY,
                ]);
                if self.rng.percent(50) {
                    base.saturating_add(delta)
                } else {
                    base.saturating_sub(delta)
                }
            }
            _ => {
                let bits = self.rng.range(1, 64);
                self.rng.next_u64() >> (64 - bits)
            }
        }
    }

    fn principal(&mut self) -> Principal {
        match self.rng.below(100) {
            0..=49 if !self.dict.principals.is_empty() => *self.rng.pick(&self.dict.principals),
            50..=59 => Principal::anonymous(),
            60..=69 => {
                let mut b = self.rng.bytes(29);
                b[28] = 0x02;
                Principal::from_slice(&b)
            }
            _ => {
                let n = self.rng.below(30) as usize;
                Principal::from_slice(&self.rng.bytes(n))
            }
        }
    }

    /// A text of `n` characters (ASCII letters, or any scalar values when `wide`).
    fn chars(&mut self, n: usize, wide: bool) -> String {
        (0..n)
            .map(|_| {
                if wide && self.rng.percent(50) {
                    char::from_u32(self.rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}')
                } else {
                    (b'a' + self.rng.below(26) as u8) as char
                }
            })
            .collect()
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.rng.below(16) as u32, 16).expect("digit"))
            .collect()
    }

    fn text(&mut self) -> String {
        match self.rng.below(100) {
            0..=24 if !self.dict.texts.is_empty() => {
                let mut t = self.rng.pick(&self.dict.texts).clone();
                match self.rng.below(5) {
                    0 if !t.is_empty() => {
                        let cut = self.rng.index(t.len());
                        let mut cut = cut;
                        while !t.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        t.truncate(cut);
                    }
                    1 => t.push('0'),
                    2 => t = t.to_uppercase(),
                    _ => {}
                }
                t
            }
            25..=34 => String::new(),
            35..=49 => {
                let n = self.rng.range(1, 16) as usize;
                self.chars(n, false)
            }
            50..=59 => {
                let n = *self
                    .rng
                    .pick(&[63usize, 64, 65, 127, 128, 129, 255, 256, 4096, 4097]);
                let wide = self.rng.percent(30);
                if self.take_budget(n * 4) {
                    self.chars(n, wide)
                } else {
                    "z".to_string()
                }
            }
            60..=69 => {
                let prefix = *self.rng.pick(&["lvi1_", "lvr1_", "LVI1_", "lvi2_", ""]);
                let n = *self.rng.pick(&[0usize, 63, 64, 65]);
                format!("{prefix}{}", self.hex(n))
            }
            70..=79 => self
                .rng
                .pick(&[
                    "\0",
                    "a\0b",
                    "\u{7}\u{1b}[2J",
                    "line\nbreak",
                    "\t",
                    " ",
                    "  padded  ",
                    "\u{202e}rtl",
                    "e\u{301}\u{301}\u{301}",
                    "👨‍👩‍👧‍👦",
                    "\u{feff}bom",
                    "%s%n%x",
                    "../../etc/passwd",
                    "<script>",
                    "'; DROP TABLE",
                    "GET",
                    "POST",
                    "/health",
                    "/metrics",
                    "/metrics?x=1",
                    "//health",
                    "http://x/health",
                ])
                .to_string(),
            80..=92 => {
                let n = self.rng.range(1, 100) as usize;
                self.chars(n, true)
            }
            93..=97 => {
                let n = self
                    .rng
                    .range(ARG_LIMIT as u64 - 300, ARG_LIMIT as u64 + 300)
                    as usize;
                if self.take_budget(n) {
                    self.chars(n, false)
                } else {
                    String::new()
                }
            }
            _ => {
                let n = *self.rng.pick(&[CHUNK, INGRESS_LIMIT + 1]);
                if self.take_budget(n) {
                    "x".repeat(n)
                } else {
                    "y".to_string()
                }
            }
        }
    }

    fn blob(&mut self) -> Vec<u8> {
        match self.rng.below(100) {
            0..=19 if !self.dict.blobs.is_empty() => self.rng.pick(&self.dict.blobs).clone(),
            20..=29 => Vec::new(),
            30..=49 => {
                let n = *self.rng.pick(&[1usize, 31, 32, 33, 64]);
                self.rng.bytes(n)
            }
            50..=79 => {
                let n = self.rng.range(1, 200) as usize;
                self.rng.bytes(n)
            }
            80..=91 => {
                let n = *self
                    .rng
                    .pick(&[4096usize, 4097, ARG_LIMIT - 64, ARG_LIMIT + 1]);
                if self.take_budget(n) {
                    self.rng.bytes(n)
                } else {
                    self.rng.bytes(8)
                }
            }
            _ => {
                let n = *self
                    .rng
                    .pick(&[CHUNK - 1, CHUNK, CHUNK + 1, INGRESS_LIMIT + 1]);
                if self.take_budget(n) {
                    let mut b = vec![0u8; n];
                    b[0] = self.rng.next_u64() as u8;
                    b
                } else {
                    self.rng.bytes(8)
                }
            }
        }
    }

    /// One byte-level mutation of `bytes`.
    pub fn mutate(&mut self, bytes: &mut Vec<u8>) {
        let len = bytes.len();
        match self.rng.below(10) {
            0 | 1 if len > 0 => {
                for _ in 0..self.rng.range(1, 4) {
                    let i = self.rng.index(len);
                    bytes[i] ^= 1 << self.rng.below(8);
                }
            }
            2 if len > 0 => {
                let i = self.rng.index(len);
                bytes[i] = *self.rng.pick(&[0x00, 0x01, 0x7f, 0x80, 0xff]);
            }
            3 if len > 0 => {
                let cut = self.rng.index(len);
                bytes.truncate(cut);
            }
            4 => {
                let n = *self.rng.pick(&[1usize, 2, 7, 64, 1000]);
                let junk = self.rng.bytes(n);
                bytes.extend_from_slice(&junk);
            }
            5 if len >= 4 => {
                let magic: [u8; 4] = *self.rng.pick(&[*b"DIDM", *b"didl", *b"\0\0\0\0", *b"LDID"]);
                bytes[..4].copy_from_slice(&magic);
            }
            6 => {
                // A huge or unterminated LEB128 where a length, count or index may be.
                let at = if len > 4 {
                    self.rng.range(4, len as u64) as usize
                } else {
                    len
                };
                const LEBS: [&[u8]; 4] = [
                    &[0xff, 0xff, 0xff, 0xff, 0x0f],
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                    &[
                        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                    ],
                    &[0xff, 0xff, 0x7f],
                ];
                let leb: &[u8] = LEBS[self.rng.index(LEBS.len())];
                if self.rng.percent(50) && at < len {
                    let end = (at + leb.len()).min(len);
                    bytes.splice(at..end, leb.iter().copied());
                } else {
                    bytes.splice(at..at, leb.iter().copied());
                }
            }
            7 if len > 1 => {
                let a = self.rng.index(len);
                let b = (a + self.rng.range(1, 16) as usize).min(len);
                bytes.drain(a..b);
            }
            8 if len > 0 => {
                // Duplicate a slice of itself somewhere.
                let a = self.rng.index(len);
                let b = (a + self.rng.range(1, 32) as usize).min(len);
                let piece = bytes[a..b].to_vec();
                let at = self.rng.index(len + 1);
                bytes.splice(at..at, piece);
            }
            _ => {
                // Swap the type table for another method's (values stay).
                let other = self.rng.pick(&self.iface.methods).clone();
                let foreign = self.typed(&other);
                let cut = self.rng.index(foreign.len().max(1)).min(foreign.len());
                let mine = self.rng.index(len.max(1)).min(len);
                let mut out = foreign[..cut].to_vec();
                out.extend_from_slice(&bytes[mine..]);
                *bytes = out;
            }
        }
    }

    /// Hand-made bytes.
    pub fn raw(&mut self) -> Vec<u8> {
        match self.rng.below(8) {
            0 => Vec::new(),
            1 => b"DIDL\x00\x00".to_vec(),
            2 => {
                let n = self.rng.range(1, 64) as usize;
                self.rng.bytes(n)
            }
            3 => {
                let mut b = b"DIDL".to_vec();
                let n = self.rng.range(1, 300) as usize;
                b.extend(self.rng.bytes(n));
                b
            }
            4 => nested(
                *self.rng.pick(&[100, 1_000, 10_000, 100_000]),
                self.rng.below(3),
            ),
            5 => recursive_opt(*self.rng.pick(&[100, 10_000, 1_000_000])),
            6 => {
                // A vector (or text, or blob) whose announced length is far beyond the bytes.
                let mut b = b"DIDL\x00\x01".to_vec();
                b.push(*self.rng.pick(&[0x71u8, 0x7f])); // text or null
                b.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
                b
            }
            _ => {
                // Many arguments of type null, or a huge declared argument count.
                let mut b = b"DIDL\x00".to_vec();
                if self.rng.percent(50) {
                    leb(&mut b, 100_000);
                    b.extend(std::iter::repeat_n(0x7f, 100_000));
                } else {
                    b.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
                }
                b
            }
        }
    }
}

fn leb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, n: i64) {
    let mut n = n;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        let done = (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return;
        }
    }
}

/// `depth` nested type-table entries (opt / vec / record of the next one, the last of
/// `null`) and one argument of the outermost type whose value goes all the way down.
pub fn nested(depth: usize, shape: u64) -> Vec<u8> {
    let mut b = b"DIDL".to_vec();
    leb(&mut b, depth as u64);
    for i in 0..depth {
        let next: i64 = if i + 1 < depth { (i + 1) as i64 } else { -1 }; // -1: null
        match shape {
            0 => sleb(&mut b, -18), // opt
            1 => sleb(&mut b, -19), // vec
            _ => {
                sleb(&mut b, -20); // record with one field 0
                leb(&mut b, 1);
                leb(&mut b, 0);
            }
        }
        sleb(&mut b, next);
    }
    leb(&mut b, 1);
    sleb(&mut b, 0);
    for _ in 0..depth {
        match shape {
            0 => b.push(1), // some
            1 => b.push(1), // one element
            _ => {}
        }
    }
    b
}

/// `type 0 = opt type 0` and one argument of it nested `depth` times.
pub fn recursive_opt(depth: usize) -> Vec<u8> {
    let mut b = b"DIDL\x01".to_vec();
    sleb(&mut b, -18);
    sleb(&mut b, 0);
    leb(&mut b, 1);
    sleb(&mut b, 0);
    b.extend(std::iter::repeat_n(1u8, depth));
    b.push(0);
    b
}

fn read_leb(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn read_sleb(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut v = 0i64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= i64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            if shift < 64 && byte & 0x40 != 0 {
                v |= -1 << shift;
            }
            return Some(v);
        }
        if shift >= 63 {
            return None;
        }
    }
}

/// `bytes` (a valid encoding whose type table holds only opt / vec / record / variant
/// entries) with one more argument of the recursive type `t = opt t`, nested `depth` times.
/// `None` if the table has other entries.
pub fn with_deep_extra(bytes: &[u8], depth: usize) -> Option<Vec<u8>> {
    let mut at = 4;
    if !bytes.starts_with(b"DIDL") {
        return None;
    }
    let types = read_leb(bytes, &mut at)?;
    let table_start = at;
    for _ in 0..types {
        match read_sleb(bytes, &mut at)? {
            -18 | -19 => {
                read_sleb(bytes, &mut at)?;
            }
            -20 | -21 => {
                for _ in 0..read_leb(bytes, &mut at)? {
                    read_leb(bytes, &mut at)?;
                    read_sleb(bytes, &mut at)?;
                }
            }
            _ => return None,
        }
    }
    let table_end = at;
    let args = read_leb(bytes, &mut at)?;
    let args_start = at;
    for _ in 0..args {
        read_sleb(bytes, &mut at)?;
    }
    let values_start = at;
    let mut out = b"DIDL".to_vec();
    leb(&mut out, types + 1);
    out.extend_from_slice(&bytes[table_start..table_end]);
    sleb(&mut out, -18);
    sleb(&mut out, types as i64);
    leb(&mut out, args + 1);
    out.extend_from_slice(&bytes[args_start..values_start]);
    sleb(&mut out, types as i64);
    out.extend_from_slice(&bytes[values_start..]);
    out.extend(std::iter::repeat_n(1u8, depth));
    out.push(0);
    Some(out)
}

fn encode(iface: &Interface, values: &[IDLValue], types: &[Type]) -> Vec<u8> {
    IDLArgs::new(values)
        .to_bytes_with_types(&iface.env, types)
        .unwrap_or_else(|e| panic!("fuzzer bug: cannot encode {types:?}: {e}"))
}

/// The label of a variant value's case (`Ok`, `Err`, `NotFound`...).
pub fn variant_case(v: &IDLValue) -> Option<(String, &IDLValue)> {
    match v {
        IDLValue::Variant(VariantValue(f, _)) => Some((label_name(&f.id), &f.val)),
        _ => None,
    }
}

/// A label as text.
pub fn label_name(l: &Label) -> String {
    match l {
        Label::Named(n) => n.clone(),
        Label::Id(i) | Label::Unnamed(i) => format!("#{i}"),
    }
}
