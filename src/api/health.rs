//! Liveness and readiness.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::problem::{ApiError, Problem};
use crate::services::Services;

pub fn router() -> Router<Services> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub database: &'static str,
    pub migrations: &'static str,
    /// Jobs waiting to run.
    pub queued_jobs: i64,
    pub workers: usize,
}

/// The process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The database is reachable and its migrations are applied.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Readiness), (status = 503, body = Problem)))]
pub async fn readyz(State(svc): State<Services>) -> Result<Json<Readiness>, ApiError> {
    let queued_jobs = svc.readiness().await?;
    Ok(Json(Readiness {
        status: "ready",
        database: "ok",
        migrations: "applied",
        queued_jobs,
        workers: svc.settings.worker_count(),
    }))
}
