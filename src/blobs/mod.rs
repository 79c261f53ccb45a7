//! Content-addressed files: every blob lives at `<data_dir>/blobs/ab/cdef…`,
//! named by the sha256 of its bytes.
//!
//! A blob is written to `<data_dir>/blobs/tmp/` while it is hashed, fsynced,
//! then renamed to its real name, so a crash never leaves half a file under a
//! real name (leftover temp files are removed at start). Identical content is
//! stored once. The blob store does not know who uses a blob: callers ask
//! [`crate::store::Store::blob_referenced`] before [`BlobStore::delete`], and
//! the orphan sweep (`services::blob_gc`) lists blobs with [`BlobStore::list`].
//! Writing content that is already stored refreshes the file's mtime, so the
//! sweep's grace period also covers a blob that a new record is about to reuse.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::fs;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content went past the limit; nothing was kept.
    #[error("content exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("`{0}` is not a sha256 (64 lowercase hex characters)")]
    BadDigest(String),
    #[error("no blob {0}")]
    NotFound(String),
    /// The source stream failed (e.g. the client's upload broke off).
    #[error("reading the content: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("blob storage {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a blob went: its digest, size and file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// 64 lowercase hex characters.
    pub sha256: String,
    pub size_bytes: u64,
    pub path: PathBuf,
}

/// A blob found on disk by [`BlobStore::list`] (its age is read when it matters,
/// with [`BlobStore::modified`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub sha256: String,
    pub size_bytes: u64,
}

/// The blob folder; cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
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

fn check_digest(sha256: &str) -> Result<(), BlobError> {
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

/// A temp file that removes itself unless it was renamed into place.
struct TempBlob {
    path: PathBuf,
    kept: bool,
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.kept {
            // Best effort: a leftover temp file is also swept at the next start.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl BlobStore {
    /// Opens (creating) `<data_dir>/blobs` and removes temp files a crash left behind.
    pub fn new(data_dir: impl AsRef<Path>) -> Result<BlobStore, BlobError> {
        let root = data_dir.as_ref().join("blobs");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        for entry in std::fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let entry = entry.map_err(io_err(&tmp))?;
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a stale temp blob");
            }
        }
        Ok(BlobStore { root })
    }

    /// The file a blob lives in (whether or not it exists). Fails on a malformed digest.
    pub fn path(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        check_digest(sha256)?;
        Ok(self.root.join(&sha256[..2]).join(&sha256[2..]))
    }

    pub async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        let path = self.path(sha256)?;
        fs::try_exists(&path).await.map_err(io_err(&path))
    }

    pub async fn open(&self, sha256: &str) -> Result<fs::File, BlobError> {
        let path = self.path(sha256)?;
        fs::File::open(&path)
            .await
            .map_err(|e| self.not_found_or(e, sha256, &path))
    }

    /// The first `n` bytes of a blob (fewer if it is shorter): enough to tell a format by its magic.
    pub async fn read_head(&self, sha256: &str, n: usize) -> Result<Vec<u8>, BlobError> {
        use tokio::io::AsyncReadExt;
        let path = self.path(sha256)?;
        let mut head = Vec::with_capacity(n);
        self.open(sha256)
            .await?
            .take(n as u64)
            .read_to_end(&mut head)
            .await
            .map_err(io_err(&path))?;
        Ok(head)
    }

    /// The whole blob in memory; for model files and normalised datasets, not for uploads.
    pub async fn read(&self, sha256: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path(sha256)?;
        fs::read(&path)
            .await
            .map_err(|e| self.not_found_or(e, sha256, &path))
    }

    /// Every blob on disk. Files that are not named like a blob (and the temp
    /// folder) are skipped, never reported, so the sweep cannot delete them.
    pub async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || list_blobs(&root))
            .await
            .map_err(|e| BlobError::Io {
                path: PathBuf::new(),
                source: io::Error::other(e),
            })?
    }

    /// When a blob was last written or reused; `None` when it is gone.
    pub async fn modified(&self, sha256: &str) -> Result<Option<SystemTime>, BlobError> {
        let path = self.path(sha256)?;
        match fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.modified().map_err(io_err(&path))?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Marks an existing blob as just written, so a sweep's grace period protects it.
    /// Best effort: a store whose files cannot be touched (read-only blobs) still
    /// accepts content it already has; only that protection is lost, with a warning.
    async fn refresh(&self, path: &Path) {
        let touched = match fs::OpenOptions::new().write(true).open(path).await {
            Ok(file) => file.into_std().await.set_modified(SystemTime::now()),
            Err(e) => Err(e),
        };
        if let Err(e) = touched {
            tracing::warn!(path = %path.display(), error = %e, "cannot refresh a reused blob's mtime");
        }
    }

    /// Removes a blob; removing a missing one is not an error.
    pub async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        let path = self.path(sha256)?;
        match fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn not_found_or(&self, e: io::Error, sha256: &str, path: &Path) -> BlobError {
        if e.kind() == io::ErrorKind::NotFound {
            BlobError::NotFound(sha256.to_string())
        } else {
            io_err(path)(e)
        }
    }

    /// Streams content to a temp file while hashing it, then moves it into place.
    /// Past `max_bytes` it stops reading, deletes the temp file and answers
    /// [`BlobError::TooLarge`]. The content is never held whole in memory.
    pub async fn put_stream<S, E>(
        &self,
        mut stream: S,
        max_bytes: u64,
    ) -> Result<BlobInfo, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::error::Error + Send + Sync + 'static,
    {
        let (mut file, mut temp) = self.create_temp().await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BlobError::Source(Box::new(e)))?;
            size += chunk.len() as u64;
            if size > max_bytes {
                return Err(BlobError::TooLarge { limit: max_bytes });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io_err(&temp.path))?;
        }
        self.finish(file, &mut temp, hex(&hasher.finalize()), size)
            .await
    }

    /// Like [`BlobStore::put_stream`] for content already in memory (job results).
    pub async fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo, BlobError> {
        let sha256 = sha256_hex(bytes);
        let path = self.path(&sha256)?;
        if fs::try_exists(&path).await.map_err(io_err(&path))? {
            self.refresh(&path).await;
            return Ok(BlobInfo {
                sha256,
                size_bytes: bytes.len() as u64,
                path,
            });
        }
        let (mut file, mut temp) = self.create_temp().await?;
        file.write_all(bytes).await.map_err(io_err(&temp.path))?;
        self.finish(file, &mut temp, sha256, bytes.len() as u64)
            .await
    }

    async fn create_temp(&self) -> Result<(fs::File, TempBlob), BlobError> {
        let path = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(io_err(&path))?;
        Ok((file, TempBlob { path, kept: false }))
    }

    async fn finish(
        &self,
        mut file: fs::File,
        temp: &mut TempBlob,
        sha256: String,
        size_bytes: u64,
    ) -> Result<BlobInfo, BlobError> {
        file.flush().await.map_err(io_err(&temp.path))?;
        file.sync_all().await.map_err(io_err(&temp.path))?;
        drop(file);
        let path = self.path(&sha256)?;
        if fs::try_exists(&path).await.map_err(io_err(&path))? {
            // Same content already stored; the temp file goes when `temp` drops.
            self.refresh(&path).await;
            return Ok(BlobInfo {
                sha256,
                size_bytes,
                path,
            });
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).await.map_err(io_err(dir))?;
        }
        fs::rename(&temp.path, &path).await.map_err(io_err(&path))?;
        temp.kept = true;
        // Make the rename itself durable.
        if let Some(dir) = path.parent()
            && let Ok(d) = fs::File::open(dir).await
        {
            let _ = d.sync_all().await;
        }
        Ok(BlobInfo {
            sha256,
            size_bytes,
            path,
        })
    }
}

/// Walks `<root>/ab/cdef…`: two hex characters, then the other 62.
fn list_blobs(root: &Path) -> Result<Vec<StoredBlob>, BlobError> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).map_err(io_err(root))? {
        let dir = dir.map_err(io_err(root))?;
        let prefix = dir.file_name().to_string_lossy().into_owned();
        if prefix.len() != 2 || !dir.file_type().map_err(io_err(root))?.is_dir() {
            continue;
        }
        let dir_path = dir.path();
        for entry in std::fs::read_dir(&dir_path).map_err(io_err(&dir_path))? {
            let entry = entry.map_err(io_err(&dir_path))?;
            let sha256 = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let meta = entry.metadata().map_err(io_err(&entry.path()))?;
            if check_digest(&sha256).is_err() || !meta.is_file() {
                continue;
            }
            out.push(StoredBlob {
                sha256,
                size_bytes: meta.len(),
            });
        }
    }
    out.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[tokio::test]
    async fn a_streamed_blob_is_named_by_the_sha256_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        let info = blobs.put_stream(chunks(&[b"a", b"bc"]), 100).await.unwrap();
        assert_eq!(info.sha256, ABC_SHA256);
        assert_eq!(info.size_bytes, 3);
        assert_eq!(
            info.path,
            dir.path().join("blobs/ba").join(&ABC_SHA256[2..])
        );
        assert_eq!(blobs.read(ABC_SHA256).await.unwrap(), b"abc");
        assert!(blobs.exists(ABC_SHA256).await.unwrap());
        assert_eq!(sha256_hex(b"abc"), ABC_SHA256);
    }

    #[tokio::test]
    async fn content_over_the_limit_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        let err = blobs
            .put_stream(chunks(&[b"abcd", b"efgh"]), 6)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 6 }), "{err:?}");
        assert!(files_under(&dir.path().join("blobs")).is_empty());
    }

    #[tokio::test]
    async fn identical_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        let a = blobs.put_stream(chunks(&[b"abc"]), 100).await.unwrap();
        let b = blobs.put_bytes(b"abc").await.unwrap();
        let c = blobs.put_stream(chunks(&[b"ab", b"c"]), 100).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(files_under(&dir.path().join("blobs")), vec![a.path]);
    }

    #[tokio::test]
    async fn a_malformed_digest_never_touches_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        for bad in [
            "../../etc/passwd",
            "abc",
            &"G".repeat(64),
            &ABC_SHA256.to_uppercase(),
        ] {
            assert!(
                matches!(blobs.path(bad), Err(BlobError::BadDigest(_))),
                "{bad}"
            );
            assert!(matches!(
                blobs.read(bad).await,
                Err(BlobError::BadDigest(_))
            ));
        }
        assert!(matches!(
            blobs.read(ABC_SHA256).await,
            Err(BlobError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_deleted_blob_is_gone_and_deleting_twice_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        let info = blobs.put_bytes(b"hello").await.unwrap();
        blobs.delete(&info.sha256).await.unwrap();
        assert!(!blobs.exists(&info.sha256).await.unwrap());
        blobs.delete(&info.sha256).await.unwrap();
    }

    #[tokio::test]
    async fn an_upload_that_breaks_off_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        let parts: Vec<Result<Bytes, io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            )),
        ];
        let err = blobs
            .put_stream(futures::stream::iter(parts), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Source(_)), "{err:?}");
        assert!(files_under(&dir.path().join("blobs")).is_empty());
    }

    #[tokio::test]
    async fn concurrent_writes_of_the_same_content_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        let data = vec![7u8; 1 << 20];
        let (a, b) = tokio::join!(blobs.put_bytes(&data), blobs.put_bytes(&data));
        assert_eq!(a.unwrap(), b.unwrap());
        assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
    }

    #[tokio::test]
    async fn list_names_every_blob_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        let a = blobs.put_bytes(b"abc").await.unwrap();
        let b = blobs.put_bytes(b"hello").await.unwrap();
        // Not blobs: a stray file at the top, a bad name in a prefix folder, a temp file.
        std::fs::write(dir.path().join("blobs/README"), b"x").unwrap();
        std::fs::write(dir.path().join("blobs/ba/not-a-digest"), b"x").unwrap();
        std::fs::write(dir.path().join("blobs/tmp/upload"), b"x").unwrap();
        let listed = blobs.list().await.unwrap();
        let mut want = vec![(a.sha256, 3), (b.sha256, 5)];
        want.sort();
        let got: Vec<_> = listed
            .iter()
            .map(|s| (s.sha256.clone(), s.size_bytes))
            .collect();
        assert_eq!(got, want);
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(t).unwrap();
    }

    #[tokio::test]
    async fn writing_stored_content_again_refreshes_its_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        let info = blobs.put_bytes(b"abc").await.unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        set_mtime(&info.path, old);
        assert_eq!(blobs.modified(&info.sha256).await.unwrap(), Some(old));
        blobs.put_bytes(b"abc").await.unwrap();
        let after_bytes = blobs.modified(&info.sha256).await.unwrap().unwrap();
        assert!(after_bytes > old + std::time::Duration::from_secs(1_000_000));
        set_mtime(&info.path, old);
        blobs.put_stream(chunks(&[b"a", b"bc"]), 100).await.unwrap();
        assert!(blobs.modified(&info.sha256).await.unwrap().unwrap() > old);
        blobs.delete(&info.sha256).await.unwrap();
        assert_eq!(blobs.modified(&info.sha256).await.unwrap(), None);
    }

    #[tokio::test]
    async fn temp_files_left_by_a_crash_are_swept_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/tmp")).unwrap();
        std::fs::write(dir.path().join("blobs/tmp/half"), b"half a file").unwrap();
        BlobStore::new(dir.path()).unwrap();
        assert!(files_under(&dir.path().join("blobs")).is_empty());
    }
}
