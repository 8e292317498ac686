//! Content endpoints: uploads, items, downloads.
//!
//! The two byte-heavy endpoints bypass the generic Candid paths to stay near the cost floor:
//! `upload_chunk` decodes its blob as a slice borrowed from the argument buffer (no copy), and
//! `get_download_chunk` writes its reply by reading stable memory straight into the reply
//! buffer (one stable read and one reply append per byte).

use serde_bytes::ByteBuf;

use crate::domain::content;
use crate::model::types::{
    BeginUploadArgs, DownloadTicket, ItemId, ItemView, Page, PageArgs, TicketId,
    UpdateItemMetaArgs, UploadId, UploadView, VaultId,
};
use crate::runtime::Runtime;
use crate::storage::pages::{self, ChunkLoc};

use super::errors::public;
use super::{read, rt, update, write, WhenPaused};
use crate::model::errors::{ContentError, DownloadError, ReadError};

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn begin_upload(args: BeginUploadArgs) -> Result<UploadView, ContentError> {
    public("begin_upload", {
        update("begin_upload", WhenPaused::Refuse, |rt, _| {
            write(|s| content::begin_upload(s, rt, args))
        })
    })
}

/// The `blob` argument of `upload_chunk`, kept inside the argument buffer it arrived in.
pub struct ChunkBytes {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ChunkBytes {
    /// The chunk's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

/// The call's argument bytes, copied once into an uninitialised buffer (ic-cdk's
/// `msg_arg_data` zero-fills its buffer first, which costs one more instruction per byte).
fn arg_data() -> Vec<u8> {
    let len = ic0::msg_arg_data_size();
    let mut buf = Vec::with_capacity(len);
    ic0::msg_arg_data_copy_uninit(&mut buf.spare_capacity_mut()[..len], 0);
    // SAFETY: `msg_arg_data_copy_uninit` initialised the first `len` bytes (or trapped).
    unsafe { buf.set_len(len) };
    buf
}

/// Decodes the arguments of a hand-decoded endpoint: first the limits every endpoint applies
/// ([`super::arguments::check`]: size, type table, depth, value count), then candid with a
/// skipping quota for values beyond the declared ones, as ic-cdk's generated decoders do.
/// Malformed or over-limit arguments trap with the reason, like the generated decoders do.
fn decode<'a, T: candid::utils::ArgumentDecoder<'a>>(method: &str, buf: &'a [u8]) -> T {
    let mut config = candid::DecoderConfig::new();
    config.set_skipping_quota(10_000);
    super::arguments::check(method, buf)
        .and_then(|()| {
            candid::utils::decode_args_with_config(buf, &config).map_err(|e| format!("{e:#}"))
        })
        .unwrap_or_else(|e| ic_cdk::trap(format!("{method}: bad arguments: {e}")))
}

/// Decodes `(nat64, nat32, blob)` with the blob borrowed from the argument buffer (see
/// [`decode`]).
pub fn decode_chunk_args(buf: Vec<u8>) -> (UploadId, u32, ChunkBytes) {
    let (upload_id, index, start, end) = {
        let (upload_id, index, bytes): (u64, u32, &serde_bytes::Bytes) =
            decode("upload_chunk", &buf);
        let start = bytes.as_ptr() as usize - buf.as_ptr() as usize;
        (upload_id, index, start, start + bytes.len())
    };
    (upload_id, index, ChunkBytes { buf, start, end })
}

/// Encodes the reply of `upload_chunk` (the macro's own encoding, kept explicit because the
/// entry point reads its argument itself).
pub fn encode_upload_reply(result: Result<UploadView, ContentError>) -> Vec<u8> {
    candid::encode_one(result)
        .unwrap_or_else(|e| ic_cdk::trap(format!("BUG: encode upload_chunk reply: {e}")))
}

// `hidden`: with a custom decoder the macro would describe the argument as one blob; the
// interface is declared by `interface::upload_chunk` below instead.
// The argument `(upload_id : nat64, index : nat32, bytes : blob)` is read and decoded in the
// body ([`arg_data`], [`decode_chunk_args`]): the macro's own argument path would zero-fill
// the buffer first.
#[ic_cdk::update(encode_with = "encode_upload_reply", hidden = true)]
fn upload_chunk() -> Result<UploadView, ContentError> {
    let (upload_id, index, bytes) = decode_chunk_args(arg_data());
    public(
        "upload_chunk",
        update("upload_chunk", WhenPaused::Refuse, |rt, _| {
            write(|s| content::upload_chunk(s, rt, upload_id, index, bytes.as_slice()))
        }),
    )
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn finish_upload(upload_id: UploadId) -> Result<ItemView, ContentError> {
    public("finish_upload", {
        update("finish_upload", WhenPaused::Refuse, |rt, _| {
            write(|s| content::finish_upload(s, rt, upload_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn abort_upload(upload_id: UploadId) -> Result<(), ContentError> {
    public("abort_upload", {
        update("abort_upload", WhenPaused::Allow, |rt, _| {
            write(|s| content::abort_upload(s, rt, upload_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn delete_item(vault_id: VaultId, item_id: ItemId) -> Result<(), ContentError> {
    public("delete_item", {
        update("delete_item", WhenPaused::Refuse, |rt, _| {
            write(|s| content::delete_item(s, rt, vault_id, item_id))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn update_item_meta(args: UpdateItemMetaArgs) -> Result<ItemView, ContentError> {
    public("update_item_meta", {
        update("update_item_meta", WhenPaused::Refuse, |rt, _| {
            write(|s| content::update_item_meta(s, rt, args))
        })
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_items(vault_id: VaultId, page: PageArgs) -> Result<Page<ItemView>, ReadError> {
    public("list_items", {
        read(|s| content::list_items(s, &rt(), vault_id, page))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn request_download(vault_id: VaultId, item_id: ItemId) -> Result<DownloadTicket, ContentError> {
    public("request_download", {
        update("request_download", WhenPaused::Allow, |rt, _| {
            write(|s| content::request_download(s, rt, vault_id, item_id))
        })
    })
}

/// The reply of `get_download_chunk`: `variant { Ok : blob; Err : DownloadError }`, holding
/// where the bytes are rather than the bytes (see [`encode_chunk_reply`]).
pub struct ChunkReply(Result<ChunkLoc, DownloadError>);

/// The Candid encoding of `Ok(blob)` of type `variant { Ok : blob; Err : DownloadError }` for
/// a blob of `len` bytes, which `fill` appends (exactly `len` of them) to the buffer. The
/// buffer is allocated once with its final capacity, so the bytes are written once. The
/// prefix (header, type table, `Ok` tag) is the encoding of `Ok(empty blob)` without its last
/// byte (the blob's LEB128 length 0); with the four-case `DownloadError` building it costs
/// far less than 1 % of a 1 MiB chunk (BENCHMARKS.md), so it is not cached.
pub fn encode_ok_blob(len: u32, fill: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut prefix = candid::encode_one(Ok::<ByteBuf, DownloadError>(ByteBuf::new()))
        .unwrap_or_else(|e| ic_cdk::trap(format!("BUG: encode an empty blob: {e}")));
    let zero = prefix.pop();
    assert_eq!(zero, Some(0), "BUG: unexpected encoding of an empty blob");
    let mut out = Vec::with_capacity(prefix.len() + 5 + len as usize);
    out.extend_from_slice(&prefix);
    let mut n = len;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    let at = out.len();
    fill(&mut out);
    debug_assert_eq!(out.len() - at, len as usize);
    out
}

/// Encodes the reply of `get_download_chunk`. `Ok`: the prefix, the blob length, then the
/// bytes read from stable memory directly into the reply buffer, which is appended once (per
/// byte: one stable read, one reply append). Errors: the plain Candid encoding.
pub fn encode_chunk_reply(result: ChunkReply) -> Vec<u8> {
    match result.0 {
        Err(e) => candid::encode_one(Err::<ByteBuf, DownloadError>(e))
            .unwrap_or_else(|e| ic_cdk::trap(format!("BUG: encode get_download_chunk reply: {e}"))),
        Ok(loc) => encode_ok_blob(loc.len, |out| read(|s| pages::read_append(s, &loc, out))),
    }
}

/// `(nat64, nat32)` as agents encode it: magic, no type table, two primitive argument types.
const DOWNLOAD_ARGS_HEAD: &[u8; 8] = b"DIDL\x00\x02\x78\x79";

/// Decodes `get_download_chunk`'s `(ticket_id : nat64, index : nat32)`. The encoding every
/// agent produces (20 bytes) is read directly; the generic Candid decoder (~40 000
/// instructions, 2% of a 1 MiB chunk's cost) handles any other valid encoding, within the
/// limits of every endpoint ([`decode`]). Malformed or over-limit arguments trap, like the
/// generated decoders do.
pub fn decode_download_args(buf: &[u8]) -> (TicketId, u32) {
    if buf.len() == 20 && buf.starts_with(DOWNLOAD_ARGS_HEAD) {
        let ticket = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
        let index = u32::from_le_bytes(buf[16..].try_into().expect("4 bytes"));
        return (ticket, index);
    }
    decode("get_download_chunk", buf)
}

// `hidden`: see `upload_chunk`; declared by `interface::get_download_chunk`. The argument is
// read in the body ([`decode_download_args`]).
#[ic_cdk::query(encode_with = "encode_chunk_reply", hidden = true)]
fn get_download_chunk() -> ChunkReply {
    let (ticket_id, index) = decode_download_args(&arg_data());
    let rt = rt();
    ChunkReply(public(
        "get_download_chunk",
        read(|s| content::download_chunk_loc(s, &rt.caller(), rt.now(), ticket_id, index)),
    ))
}

/// The Candid signatures of the two endpoints with custom codecs, for the exported
/// interface (they are never called).
#[cfg(test)]
#[allow(dead_code)]
mod interface {
    use super::*;

    #[candid::candid_method(update, rename = "upload_chunk")]
    fn upload_chunk(
        upload_id: UploadId,
        index: u32,
        bytes: serde_bytes::ByteBuf,
    ) -> Result<UploadView, ContentError> {
        unreachable!(
            "interface declaration only: {upload_id} {index} {}",
            bytes.len()
        )
    }

    #[candid::candid_method(query, rename = "get_download_chunk")]
    fn get_download_chunk(
        ticket_id: TicketId,
        index: u32,
    ) -> Result<serde_bytes::ByteBuf, DownloadError> {
        unreachable!("interface declaration only: {ticket_id} {index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::{VaultError, VaultResult};
    use crate::storage::pages;

    #[test]
    fn download_args_decode_like_candid_in_every_encoding() {
        for (ticket, index) in [(0u64, 0u32), (1, 2), (u64::MAX, u32::MAX), (1 << 40, 7)] {
            let canonical = candid::encode_args((ticket, index)).unwrap();
            assert_eq!(canonical.len(), 20);
            assert!(canonical.starts_with(DOWNLOAD_ARGS_HEAD));
            assert_eq!(decode_download_args(&canonical), (ticket, index));
            // Other valid encodings take the generic decoder: an extra trailing argument
            // (ignored, as Candid subtyping allows), or a reserved extra type.
            let extra = candid::encode_args((ticket, index, "x")).unwrap();
            assert_eq!(decode_download_args(&extra), (ticket, index));
        }
    }

    fn typed_blob(bytes: &[u8]) -> Vec<u8> {
        candid::encode_one(Ok::<ByteBuf, DownloadError>(ByteBuf::from(bytes.to_vec()))).unwrap()
    }

    /// Lengths around every LEB128 width change, up to past the 2 MiB reply limit.
    const LENGTHS: [usize; 10] = [
        0,
        1,
        127,
        128,
        300,
        16_383,
        16_384,
        1 << 20,
        2_097_151,
        2_097_152,
    ];

    #[test]
    fn hand_encoded_ok_blob_equals_the_typed_encoding() {
        for len in LENGTHS {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let bytes = encode_ok_blob(len as u32, |out| out.extend_from_slice(&data));
            assert_eq!(bytes, typed_blob(&data), "len {len}");
            let back: VaultResult<ByteBuf> = candid::decode_one(&bytes).unwrap();
            assert_eq!(back, Ok(ByteBuf::from(data)), "len {len}");
        }
    }

    #[test]
    fn chunk_reply_from_stable_pages_equals_the_typed_encoding() {
        for len in [1usize, 4096, 4097, 100_000, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let loc = write(|s| {
                let loc = pages::allocate(s, len as u64).unwrap();
                pages::write(s, &loc, &data);
                loc
            });
            let bytes = encode_chunk_reply(ChunkReply(Ok(loc.clone())));
            assert_eq!(bytes, typed_blob(&data), "len {len}");
            let back: VaultResult<ByteBuf> = candid::decode_one(&bytes).unwrap();
            assert_eq!(back, Ok(ByteBuf::from(data)));
            write(|s| pages::free(s, &loc));
        }
    }

    /// Every error `get_download_chunk` can return keeps the typed encoding, and decodes into
    /// the domain's `VaultError` as the same case (Candid variant subtyping).
    #[test]
    fn chunk_error_replies_equal_the_typed_encoding() {
        for e in [
            DownloadError::NotFound,
            DownloadError::NotAuthorized,
            DownloadError::TokenExpired,
            DownloadError::InvalidInput {
                field: "index".into(),
                reason: "past the last chunk".into(),
            },
        ] {
            let bytes = encode_chunk_reply(ChunkReply(Err(e.clone())));
            assert_eq!(
                bytes,
                candid::encode_one(Err::<ByteBuf, DownloadError>(e.clone())).unwrap()
            );
            let back: VaultResult<ByteBuf> = candid::decode_one(&bytes).unwrap();
            let back = back.unwrap_err();
            assert_eq!(back.name(), e.name());
            assert_eq!(DownloadError::try_from(back), Ok(e));
        }
    }

    /// `upload_chunk`'s reply decodes into the domain's `VaultResult` (variant subtyping).
    #[test]
    fn upload_reply_decodes_into_the_domain_result() {
        let bytes = encode_upload_reply(Err(ContentError::ChunkOutOfOrder { expected: 4 }));
        let back: VaultResult<UploadView> = candid::decode_one(&bytes).unwrap();
        assert_eq!(back, Err(VaultError::ChunkOutOfOrder { expected: 4 }));
    }
}
