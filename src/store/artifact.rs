//! Files a job produced (model files, reports, …), as the services see them.

use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactRecord {
    pub id: Uuid,
    pub job_id: Uuid,
    pub name: String,
    pub content_type: String,
    /// The blob holding the bytes; also the download's ETag.
    pub sha256: String,
    pub size_bytes: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// An artifact row written when its job completes; `job_id` and `created_at` come from the completion.
#[derive(Debug, Clone)]
pub struct NewArtifactRecord {
    pub id: Uuid,
    pub name: String,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: i64,
}
