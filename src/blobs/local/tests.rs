use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;

use super::LocalBlobs;
use crate::blobs::{BlobBackend, BlobError, ByteRange, sha256_hex};

const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + Unpin {
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

fn blob_file(dir: &Path, sha256: &str) -> PathBuf {
    dir.join("blobs").join(&sha256[..2]).join(&sha256[2..])
}

/// The bytes a `get` serves, with its `(start, len, size)`.
async fn get(
    blobs: &LocalBlobs,
    sha256: &str,
    range: Option<ByteRange>,
) -> Result<(Vec<u8>, (u64, u64, u64)), BlobError> {
    use futures::TryStreamExt;
    let read = blobs.get(sha256, range).await?;
    let served = (read.start, read.len, read.size);
    let chunks: Vec<Bytes> = read.stream.try_collect().await?;
    Ok((chunks.concat(), served))
}

#[tokio::test]
async fn a_streamed_blob_is_named_by_the_sha256_of_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let info = blobs.put_stream(chunks(&[b"a", b"bc"]), 100).await.unwrap();
    assert_eq!(info.sha256, ABC_SHA256);
    assert_eq!(info.size_bytes, 3);
    assert_eq!(
        files_under(&dir.path().join("blobs")),
        vec![blob_file(dir.path(), ABC_SHA256)]
    );
    assert_eq!(blobs.read(ABC_SHA256).await.unwrap(), b"abc");
    assert!(blobs.exists(ABC_SHA256).await.unwrap());
    assert_eq!(sha256_hex(b"abc"), ABC_SHA256);
}

#[tokio::test]
async fn content_over_the_limit_is_refused_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
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
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let a = blobs.put_stream(chunks(&[b"abc"]), 100).await.unwrap();
    let b = blobs.put_bytes(b"abc").await.unwrap();
    let c = blobs.put_stream(chunks(&[b"ab", b"c"]), 100).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(
        files_under(&dir.path().join("blobs")),
        vec![blob_file(dir.path(), &a.sha256)]
    );
}

#[tokio::test]
async fn a_malformed_digest_never_touches_the_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
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
        assert!(matches!(
            blobs.get(bad, None).await,
            Err(BlobError::BadDigest(_))
        ));
        assert!(matches!(
            blobs.head(bad).await,
            Err(BlobError::BadDigest(_))
        ));
        assert!(matches!(
            blobs.delete(bad).await,
            Err(BlobError::BadDigest(_))
        ));
    }
}

#[tokio::test]
async fn a_missing_blob_is_not_found_and_has_no_head() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    assert!(matches!(
        blobs.read(ABC_SHA256).await,
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        blobs.get(ABC_SHA256, None).await,
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        blobs.get(ABC_SHA256, Some(ByteRange::first(4))).await,
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        blobs.read_head(ABC_SHA256, 8).await,
        Err(BlobError::NotFound(_))
    ));
    assert_eq!(blobs.head(ABC_SHA256).await.unwrap(), None);
    assert!(!blobs.exists(ABC_SHA256).await.unwrap());
}

#[tokio::test]
async fn get_streams_the_whole_blob_or_the_range_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    // Larger than one chunk, so a range crosses chunk boundaries.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sha = blobs.put_bytes(&data).await.unwrap().sha256;
    let size = data.len() as u64;

    let (all, served) = get(&blobs, &sha, None).await.unwrap();
    assert_eq!(all, data);
    assert_eq!(served, (0, size, size));

    let (first, served) = get(&blobs, &sha, Some(ByteRange::first(8))).await.unwrap();
    assert_eq!(first, &data[..8]);
    assert_eq!(served, (0, 8, size));

    let middle = ByteRange::From {
        first: 65_000,
        last: Some(140_000),
    };
    let (bytes, served) = get(&blobs, &sha, Some(middle)).await.unwrap();
    assert_eq!(bytes, &data[65_000..=140_000]);
    assert_eq!(served, (65_000, 75_001, size));

    let open_ended = ByteRange::From {
        first: 199_990,
        last: None,
    };
    let (bytes, served) = get(&blobs, &sha, Some(open_ended)).await.unwrap();
    assert_eq!(bytes, &data[199_990..]);
    assert_eq!(served, (199_990, 10, size));

    let (bytes, served) = get(&blobs, &sha, Some(ByteRange::Suffix(5))).await.unwrap();
    assert_eq!(bytes, &data[data.len() - 5..]);
    assert_eq!(served, (size - 5, 5, size));

    // A range that runs past the end is cut at the end.
    let past_end = ByteRange::From {
        first: 199_999,
        last: Some(1 << 40),
    };
    let (bytes, _) = get(&blobs, &sha, Some(past_end)).await.unwrap();
    assert_eq!(bytes, &data[199_999..]);
}

#[tokio::test]
async fn a_range_past_the_end_is_not_satisfiable_and_says_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let sha = blobs.put_bytes(b"hello").await.unwrap().sha256;
    for range in [
        ByteRange::From {
            first: 5,
            last: None,
        },
        ByteRange::From {
            first: 10,
            last: Some(20),
        },
        ByteRange::Suffix(0),
    ] {
        let err = blobs.get(&sha, Some(range)).await.unwrap_err();
        assert!(
            matches!(err, BlobError::RangeNotSatisfiable { size: 5 }),
            "{range:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn an_empty_blob_reads_empty_and_has_no_range() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let sha = blobs.put_bytes(b"").await.unwrap().sha256;
    let (bytes, served) = get(&blobs, &sha, None).await.unwrap();
    assert!(bytes.is_empty());
    assert_eq!(served, (0, 0, 0));
    assert!(matches!(
        blobs.get(&sha, Some(ByteRange::first(1))).await,
        Err(BlobError::RangeNotSatisfiable { size: 0 })
    ));
    assert!(blobs.read_head(&sha, 8).await.unwrap().is_empty());
}

#[tokio::test]
async fn read_head_answers_the_first_bytes_or_fewer() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let sha = blobs.put_bytes(b"hello world").await.unwrap().sha256;
    assert_eq!(blobs.read_head(&sha, 5).await.unwrap(), b"hello");
    assert_eq!(blobs.read_head(&sha, 100).await.unwrap(), b"hello world");
    assert!(blobs.read_head(&sha, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn head_tells_size_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let before = SystemTime::now() - Duration::from_secs(5);
    let info = blobs.put_bytes(b"hello").await.unwrap();
    let meta = blobs.head(&info.sha256).await.unwrap().unwrap();
    assert_eq!(meta.sha256, info.sha256);
    assert_eq!(meta.size_bytes, 5);
    assert!(meta.modified > before);
}

#[tokio::test]
async fn a_deleted_blob_is_gone_and_deleting_twice_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let info = blobs.put_bytes(b"hello").await.unwrap();
    blobs.delete(&info.sha256).await.unwrap();
    assert!(!blobs.exists(&info.sha256).await.unwrap());
    blobs.delete(&info.sha256).await.unwrap();
}

#[tokio::test]
async fn an_upload_that_breaks_off_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
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
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let data = vec![7u8; 1 << 20];
    let (a, b) = tokio::join!(blobs.put_bytes(&data), blobs.put_bytes(&data));
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
}

#[tokio::test]
async fn list_names_every_blob_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
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

async fn modified(blobs: &LocalBlobs, sha256: &str) -> Option<SystemTime> {
    blobs.head(sha256).await.unwrap().map(|m| m.modified)
}

#[tokio::test]
async fn writing_stored_content_again_refreshes_its_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path()).unwrap();
    let info = blobs.put_bytes(b"abc").await.unwrap();
    let file = blob_file(dir.path(), &info.sha256);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    set_mtime(&file, old);
    assert_eq!(modified(&blobs, &info.sha256).await, Some(old));
    blobs.put_bytes(b"abc").await.unwrap();
    let after_bytes = modified(&blobs, &info.sha256).await.unwrap();
    assert!(after_bytes > old + Duration::from_secs(1_000_000));
    set_mtime(&file, old);
    blobs.put_stream(chunks(&[b"a", b"bc"]), 100).await.unwrap();
    assert!(modified(&blobs, &info.sha256).await.unwrap() > old);
    blobs.delete(&info.sha256).await.unwrap();
    assert_eq!(modified(&blobs, &info.sha256).await, None);
}

#[tokio::test]
async fn temp_files_left_by_a_crash_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/tmp")).unwrap();
    std::fs::write(dir.path().join("blobs/tmp/half"), b"half a file").unwrap();
    LocalBlobs::new(dir.path()).unwrap();
    assert!(files_under(&dir.path().join("blobs")).is_empty());
}
