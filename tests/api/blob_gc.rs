//! The orphan blob sweep: files no record names are removed at start once they
//! are older than the grace period; everything a record names stays.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kiln::blobs::{BlobBackend, sha256_hex};
use kiln::startup::Application;

use crate::helpers::{mlp, spawn_app, test_settings};

/// Writes `bytes` where the blob store keeps them, as a crash after writing would leave them.
fn plant_blob(data_dir: &Path, bytes: &[u8]) -> PathBuf {
    let sha = sha256_hex(bytes);
    let dir = data_dir.join("blobs").join(&sha[..2]);
    std::fs::create_dir_all(&dir).expect("prefix dir");
    let path = dir.join(&sha[2..]);
    std::fs::write(&path, bytes).expect("blob written");
    path
}

fn age(path: &Path, by: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(SystemTime::now() - by)
        .expect("mtime set");
}

/// Every blob file under the data directory (not the temp folder).
fn blob_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(data_dir.join("blobs")).expect("blobs dir") {
        let dir = dir.expect("entry").path();
        if dir.file_name().is_some_and(|n| n.len() == 2) {
            for f in std::fs::read_dir(&dir).expect("prefix dir") {
                out.push(f.expect("entry").path());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn orphans_older_than_the_grace_period_go_at_start_and_recorded_blobs_stay() {
    let app = spawn_app().await;
    let (_train, _test, trained) = app
        .trained_fixture(300, 4, 3, mlp(4, 8, 1, "sigmoid"))
        .await;
    let data_dir = app.stop().await;
    let recorded = blob_files(data_dir.path());
    // Raw uploads, normalised datasets, the untrained and the trained model files.
    assert!(recorded.len() >= 5, "{recorded:?}");
    for path in &recorded {
        age(path, Duration::from_secs(7200)); // old, but named by records
    }
    let old_orphan = plant_blob(data_dir.path(), b"left by a crash an hour ago");
    age(&old_orphan, Duration::from_secs(7200));
    let young_orphan = plant_blob(data_dir.path(), b"an upload not recorded yet");

    let app = Application::build(test_settings(data_dir.path()))
        .await
        .expect("app builds");
    assert!(!old_orphan.exists(), "an old orphan is removed at start");
    assert!(
        young_orphan.exists(),
        "an orphan inside the grace period stays"
    );
    for path in &recorded {
        assert!(path.exists(), "{path:?} is named by a record and must stay");
    }

    // Without a grace period the young orphan goes too, and only it.
    let sweep = app
        .services()
        .sweep_orphan_blobs(Duration::ZERO)
        .await
        .expect("sweeps");
    assert_eq!((sweep.removed, sweep.young_orphans), (1, 0), "{sweep:?}");
    assert_eq!(sweep.blobs, recorded.len() + 1);
    assert!(!young_orphan.exists());
    assert_eq!(blob_files(data_dir.path()), recorded);

    // The trained model still loads from its blob.
    let id = trained.parse().expect("uuid");
    let record = app.services().get_model(id).await.expect("model");
    let bytes = app
        .services()
        .blobs
        .read(&record.sha256)
        .await
        .expect("blob");
    assert_eq!(sha256_hex(&bytes), record.sha256);
}
