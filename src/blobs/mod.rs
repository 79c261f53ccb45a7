//! Content-addressed blobs behind one trait, so a second storage (an object
//! store, say) is one new folder: [`BlobBackend`] is what services and the
//! queue see; where the bytes live stays inside the backend ([`local`] today,
//! a folder of files). Nothing outside this module learns a file path.
//!
//! Every blob is named by the sha256 of its bytes, so identical content is
//! stored once. A backend writes new content under a temporary name while it
//! hashes it and only then moves it to its real name, so a crash never leaves
//! half a blob under a real name (leftover temporaries are removed at start).
//! The backend does not know who uses a blob: callers ask
//! [`crate::store::Catalog::blob_referenced`] before [`BlobBackend::delete`],
//! and the orphan sweep (`services::blob_gc`) walks [`BlobBackend::list`] and
//! checks each candidate's age with [`BlobBackend::head`]. Writing content that
//! is already stored refreshes its modification time, so the sweep's grace
//! period also covers a blob that a new record is about to reuse.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

mod local;
mod range;

pub use local::LocalBlobs;
pub use range::ByteRange;

/// The backend this build runs on. Code outside `blobs/` names only this alias
/// and the trait, so switching backends is a change here and in start-up.
pub type BlobStore = local::LocalBlobs;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content went past the limit; nothing was kept.
    #[error("content exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("`{0}` is not a sha256 (64 lowercase hex characters)")]
    BadDigest(String),
    #[error("no blob {0}")]
    NotFound(String),
    /// The requested range selects no byte of a blob of `size` bytes.
    #[error("the range selects nothing of a {size}-byte blob")]
    RangeNotSatisfiable { size: u64 },
    /// The source stream failed (e.g. the client's upload broke off).
    #[error("reading the content: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The storage itself failed; `location` is the backend's name for what it touched.
    #[error("blob storage {location}: {source}")]
    Storage {
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What was stored: the blob's digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// 64 lowercase hex characters.
    pub sha256: String,
    pub size_bytes: u64,
}

/// A blob named by [`BlobBackend::list`] (its age is read when it matters, with
/// [`BlobBackend::head`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub sha256: String,
    pub size_bytes: u64,
}

/// What [`BlobBackend::head`] knows of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub sha256: String,
    pub size_bytes: u64,
    /// When it was last written or reused; the orphan sweep's grace counts from here.
    pub modified: SystemTime,
}

/// A blob's bytes as a stream: owned, so a response body can outlive the call.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobError>> + Send + 'static>>;

/// What [`BlobBackend::get`] serves: `len` bytes from `start` of a `size`-byte blob.
pub struct BlobRead {
    pub stream: BlobStream,
    pub start: u64,
    pub len: u64,
    /// The whole blob's size (a `Content-Range` needs it).
    pub size: u64,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Content-addressed storage. Futures are `Send` so handlers, spawned tasks
/// and the queue can await them anywhere. Every method that takes a digest
/// answers [`BlobError::BadDigest`] for a malformed one before touching storage.
pub trait BlobBackend: Send + Sync {
    /// Stores content while hashing it. Past `limit` bytes it stops reading,
    /// discards what it wrote and answers [`BlobError::TooLarge`]; a failing
    /// stream answers [`BlobError::Source`]. The content is never held whole in memory.
    fn put_stream<S, E>(
        &self,
        stream: S,
        limit: u64,
    ) -> impl Future<Output = Result<BlobInfo, BlobError>> + Send
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + Send + Sync + 'static;

    /// Like [`BlobBackend::put_stream`] for content already in memory (job results).
    fn put_bytes(&self, bytes: &[u8]) -> impl Future<Output = Result<BlobInfo, BlobError>> + Send {
        let chunk = Bytes::copy_from_slice(bytes);
        async move {
            self.put_stream(
                futures::stream::iter([Ok::<_, Infallible>(chunk)]),
                u64::MAX,
            )
            .await
        }
    }

    /// Streams a blob, or the part `range` selects. [`BlobError::NotFound`] when
    /// it is missing, [`BlobError::RangeNotSatisfiable`] (with the size) when the
    /// range selects nothing. Size and range are read together, so they agree.
    fn get(
        &self,
        sha256: &str,
        range: Option<ByteRange>,
    ) -> impl Future<Output = Result<BlobRead, BlobError>> + Send;

    /// The whole blob in memory; for model files and datasets, not for downloads.
    fn read(&self, sha256: &str) -> impl Future<Output = Result<Vec<u8>, BlobError>> + Send {
        async move { collect(self.get(sha256, None).await?).await }
    }

    /// The first `n` bytes of a blob (fewer if it is shorter): enough to tell a format by its magic.
    fn read_head(
        &self,
        sha256: &str,
        n: u64,
    ) -> impl Future<Output = Result<Vec<u8>, BlobError>> + Send {
        async move {
            if n == 0 {
                return Ok(Vec::new());
            }
            match self.get(sha256, Some(ByteRange::first(n))).await {
                Ok(read) => collect(read).await,
                // Only an empty blob has no first byte.
                Err(BlobError::RangeNotSatisfiable { size: 0 }) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        }
    }

    /// Size and age of a blob; `None` when it is not stored.
    fn head(
        &self,
        sha256: &str,
    ) -> impl Future<Output = Result<Option<BlobMeta>, BlobError>> + Send;

    /// Whether a blob is stored.
    fn exists(&self, sha256: &str) -> impl Future<Output = Result<bool, BlobError>> + Send {
        async move { Ok(self.head(sha256).await?.is_some()) }
    }

    /// Removes a blob; removing a missing one is not an error.
    fn delete(&self, sha256: &str) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Every stored blob, by digest. Whatever is not named like a blob (and
    /// unfinished writes) is skipped, never reported, so the sweep cannot delete it.
    fn list(&self) -> impl Future<Output = Result<Vec<StoredBlob>, BlobError>> + Send;
}

/// Reads a served stream into memory.
async fn collect(read: BlobRead) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::with_capacity(usize::try_from(read.len).unwrap_or(0));
    let mut stream = read.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Lowercase hex of a digest (sha2 0.11 digests no longer implement `LowerHex`).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Accepts exactly 64 lowercase hex characters, the only names a blob has.
pub fn check_digest(sha256: &str) -> Result<(), BlobError> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(BlobError::BadDigest(sha256.chars().take(80).collect()))
    }
}
