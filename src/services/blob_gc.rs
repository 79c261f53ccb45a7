//! The orphan sweep: removes blobs no dataset, model or artifact row names.
//!
//! Deleting a record removes its blob at once (`delete_model`,
//! `delete_dataset`), and a rejected upload is discarded, but a crash or a
//! failed transaction between writing a blob and recording it leaves the file
//! behind. The sweep runs at start (before the server answers) and then every
//! `blobs.gc_interval_secs`.
//!
//! A blob younger than `blobs.gc_grace_secs` is never removed: it may belong
//! to an upload or a job whose record is not written yet. Reusing stored
//! content refreshes the blob's mtime, so a record that is about to name an
//! old orphan is covered by the same grace. Each candidate's age and
//! references are checked again right before it is removed.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{ServiceError, Services};
use crate::blobs::BlobBackend;
use crate::store::Catalog;

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlobSweep {
    /// Blobs on disk when the sweep began.
    pub blobs: usize,
    /// Orphans removed, and their bytes.
    pub removed: usize,
    pub removed_bytes: u64,
    /// Orphans kept because they are younger than the grace period.
    pub young_orphans: usize,
}

impl Services {
    /// Removes the blobs nothing names that are older than `grace`.
    pub async fn sweep_orphan_blobs(&self, grace: Duration) -> Result<BlobSweep, ServiceError> {
        // List before reading the references: a blob recorded in between is
        // then seen as referenced, never as an orphan.
        let on_disk = self.blobs.list().await?;
        let referenced = self.store.referenced_blobs().await?;
        let mut sweep = BlobSweep {
            blobs: on_disk.len(),
            ..BlobSweep::default()
        };
        for blob in on_disk.iter().filter(|b| !referenced.contains(&b.sha256)) {
            // Age and references again, as late as possible: an upload or a job may
            // have reused this content since the listing.
            let Some(meta) = self.blobs.head(&blob.sha256).await? else {
                continue;
            };
            if !older_than(meta.modified, grace) {
                sweep.young_orphans += 1;
                continue;
            }
            if self.store.blob_referenced(&blob.sha256).await? {
                continue;
            }
            self.blobs.delete(&blob.sha256).await?;
            sweep.removed += 1;
            sweep.removed_bytes += blob.size_bytes;
        }
        Ok(sweep)
    }

    /// One sweep, logged; errors are logged too (the next sweep tries again).
    pub async fn sweep_orphan_blobs_logged(&self, grace: Duration) {
        match self.sweep_orphan_blobs(grace).await {
            Ok(s) if s.removed > 0 => tracing::info!(
                removed = s.removed,
                removed_bytes = s.removed_bytes,
                blobs = s.blobs,
                young_orphans = s.young_orphans,
                "removed orphan blobs"
            ),
            Ok(s) => tracing::debug!(
                blobs = s.blobs,
                young_orphans = s.young_orphans,
                "no orphan blobs"
            ),
            Err(e) => tracing::warn!(error = %e, "orphan blob sweep failed"),
        }
    }

    /// Sweeps every `interval` (the first sweep one interval from now) until
    /// the task is aborted; `None` when `interval` is 0.
    pub fn spawn_blob_gc(
        &self,
        interval: Duration,
        grace: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if interval.is_zero() {
            return None;
        }
        let services = self.clone();
        Some(tokio::spawn(async move {
            let start = tokio::time::Instant::now() + interval;
            let mut ticks = tokio::time::interval_at(start, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                services.sweep_orphan_blobs_logged(grace).await;
            }
        }))
    }
}

/// Whether `modified` lies more than `grace` in the past (a clock that went
/// backwards makes every blob young, which only delays removal).
fn older_than(modified: SystemTime, grace: Duration) -> bool {
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age > grace)
}
