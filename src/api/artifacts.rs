//! `/v1/artifacts/{id}`: download what a job produced.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use uuid::Uuid;

use super::download::serve_blob;
use super::extract::IdPath;
use super::pagination::timestamp;
use super::problem::{ApiError, Problem};
use crate::services::Services;
use crate::store::ArtifactRecord;

pub fn router() -> Router<Services> {
    Router::new().route("/v1/artifacts/{id}", get(download_artifact))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ArtifactView {
    pub id: Uuid,
    pub job_id: Uuid,
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub created_at: String,
    /// Where to download it.
    pub url: String,
}

impl From<ArtifactRecord> for ArtifactView {
    fn from(r: ArtifactRecord) -> Self {
        Self {
            url: format!("/v1/artifacts/{}", r.id),
            id: r.id,
            job_id: r.job_id,
            name: r.name,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            created_at: timestamp(r.created_at),
        }
    }
}

/// Download an artifact (`ETag` is its sha256; `Range` is honoured).
#[utoipa::path(get, path = "/v1/artifacts/{id}", tag = "artifacts", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The file"), (status = 206, description = "A byte range of it"),
        (status = 304, description = "Not modified"), (status = 404, body = Problem),
        (status = 416, body = Problem, description = "The range selects nothing of the file")))]
pub async fn download_artifact(
    State(svc): State<Services>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = svc.get_artifact(id).await?;
    serve_blob(
        &svc,
        &headers,
        &record.sha256,
        &record.name,
        &record.content_type,
    )
    .await
}
