//! Resumable SHA-256 of an upload: the chaining value, the partial block and the length
//! live in the upload's progress record, so each chunk advances the hash and finishing costs
//! the same for any size.

use super::*;

impl HashState {
    /// The SHA-256 initial state.
    pub fn new() -> Self {
        HashState {
            h: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            tail: Vec::new(),
            len: 0,
        }
    }

    /// Absorbs `data`: full 64-byte blocks are compressed straight from `data`; fewer than
    /// 64 leftover bytes stay in `tail`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < 64 {
                return;
            }
            sha2::compress256(&mut self.h, &[*GenericArray::from_slice(&self.tail)]);
            self.tail.clear();
        }
        let full = data.len() - data.len() % 64;
        for block in data[..full].chunks_exact(64) {
            sha2::compress256(
                &mut self.h,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        self.tail.extend_from_slice(&data[full..]);
    }

    /// The digest of everything absorbed (the state itself is left as it is).
    pub fn finalize(&self) -> [u8; 32] {
        let mut h = self.h;
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % 64 != 56 {
            last.push(0);
        }
        last.extend_from_slice(&(self.len * 8).to_be_bytes());
        for block in last.chunks_exact(64) {
            sha2::compress256(
                &mut h,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(h) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

impl Default for HashState {
    fn default() -> Self {
        Self::new()
    }
}
