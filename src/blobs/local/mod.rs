//! Blobs as files in a local folder: every blob lives at `<data_dir>/blobs/ab/cdef…`.
//!
//! A blob is written to `<data_dir>/blobs/tmp/` while it is hashed, fsynced,
//! then renamed to its real name; temp files a crash left behind are removed by
//! [`LocalBlobs::new`]. A blob's age is its file's mtime. File paths never
//! leave this module.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{
    BlobBackend, BlobError, BlobInfo, BlobMeta, BlobRead, ByteRange, StoredBlob, check_digest, hex,
    sha256_hex,
};

/// How much of a file one streamed chunk holds.
const CHUNK: usize = 64 * 1024;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Storage {
        location: path.display().to_string(),
        source: Box::new(source),
    }
}

/// The blob folder; cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
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

impl LocalBlobs {
    /// Opens (creating) `<data_dir>/blobs` and removes temp files a crash left behind.
    pub fn new(data_dir: impl AsRef<Path>) -> Result<LocalBlobs, BlobError> {
        let root = data_dir.as_ref().join("blobs");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        for entry in std::fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let entry = entry.map_err(io_err(&tmp))?;
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a stale temp blob");
            }
        }
        Ok(LocalBlobs { root })
    }

    /// The file a blob lives in (whether or not it exists). Fails on a malformed digest.
    fn path(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        check_digest(sha256)?;
        Ok(self.root.join(&sha256[..2]).join(&sha256[2..]))
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
            return Ok(BlobInfo { sha256, size_bytes });
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
        Ok(BlobInfo { sha256, size_bytes })
    }
}

fn not_found_or(e: io::Error, sha256: &str, path: &Path) -> BlobError {
    if e.kind() == io::ErrorKind::NotFound {
        BlobError::NotFound(sha256.to_string())
    } else {
        io_err(path)(e)
    }
}

impl BlobBackend for LocalBlobs {
    async fn put_stream<S, E>(&self, mut stream: S, limit: u64) -> Result<BlobInfo, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + Send + Sync + 'static,
    {
        let (mut file, mut temp) = self.create_temp().await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BlobError::Source(Box::new(e)))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(BlobError::TooLarge { limit });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io_err(&temp.path))?;
        }
        self.finish(file, &mut temp, hex(&hasher.finalize()), size)
            .await
    }

    /// Hashes first: content already stored is only refreshed, never written again.
    async fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo, BlobError> {
        let sha256 = sha256_hex(bytes);
        let size_bytes = bytes.len() as u64;
        let path = self.path(&sha256)?;
        if fs::try_exists(&path).await.map_err(io_err(&path))? {
            self.refresh(&path).await;
            return Ok(BlobInfo { sha256, size_bytes });
        }
        let (mut file, mut temp) = self.create_temp().await?;
        file.write_all(bytes).await.map_err(io_err(&temp.path))?;
        self.finish(file, &mut temp, sha256, size_bytes).await
    }

    /// Opens the file once and takes the size from that open file, so the
    /// range and the bytes come from the same content.
    async fn get(&self, sha256: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        let path = self.path(sha256)?;
        let mut file = fs::File::open(&path)
            .await
            .map_err(|e| not_found_or(e, sha256, &path))?;
        let size = file.metadata().await.map_err(io_err(&path))?.len();
        let (start, len) = match range {
            None => (0, size),
            Some(r) => r
                .resolve(size)
                .ok_or(BlobError::RangeNotSatisfiable { size })?,
        };
        if start > 0 {
            file.seek(io::SeekFrom::Start(start))
                .await
                .map_err(io_err(&path))?;
        }
        let location = path.display().to_string();
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK).map_err(
            move |source| BlobError::Storage {
                location: location.clone(),
                source: Box::new(source),
            },
        );
        Ok(BlobRead {
            stream: Box::pin(stream),
            start,
            len,
            size,
        })
    }

    async fn read(&self, sha256: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path(sha256)?;
        fs::read(&path)
            .await
            .map_err(|e| not_found_or(e, sha256, &path))
    }

    async fn head(&self, sha256: &str) -> Result<Option<BlobMeta>, BlobError> {
        let path = self.path(sha256)?;
        match fs::metadata(&path).await {
            Ok(m) => Ok(Some(BlobMeta {
                sha256: sha256.to_string(),
                size_bytes: m.len(),
                modified: m.modified().map_err(io_err(&path))?,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        let path = self.path(sha256)?;
        match fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || list_blobs(&root))
            .await
            .map_err(|e| BlobError::Storage {
                location: "listing task".into(),
                source: Box::new(e),
            })?
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
mod tests;
