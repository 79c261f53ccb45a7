//! `/v1/jobs`: queue, list, show, cancel, metrics history, artifacts.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::artifacts::ArtifactView;
use super::extract::{AppJson, IdPath};
use super::pagination::{Page, PageRequest, timestamp};
use super::problem::{ApiError, Problem};
use crate::jobs::JobKind;
use crate::services::Services;
use crate::services::jobs::{JobFilter, NewJob};
use crate::store::{JobRecord, JobStatus};
use crate::validation::Checker;

pub fn router() -> Router<Services> {
    Router::new()
        .route("/v1/jobs", get(list_jobs).post(create_job))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/metrics", get(job_metrics))
        .route("/v1/jobs/{id}/artifacts", get(job_artifacts))
}

/// `POST /v1/jobs`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    pub kind: JobKind,
    /// The model the job starts from (the teacher, for distillation).
    pub model: Uuid,
    /// The dataset it trains or evaluates on.
    pub dataset: Uuid,
    /// Held-out data for the final metrics.
    pub eval_dataset: Option<Uuid>,
    /// Kind-specific parameters (DESIGN §2); `{}` takes every default.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Value,
}

/// A job as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub model_id: Uuid,
    pub dataset_id: Uuid,
    pub eval_dataset_id: Option<Uuid>,
    /// The parameters as accepted, defaults filled in.
    #[schema(value_type = Object)]
    pub params: Value,
    /// 0 to 1.
    pub progress: f64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub cancel_requested: bool,
    pub error: Option<String>,
    /// Once succeeded: `{model_id, metrics, before, artifacts}`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            status: r.status.as_str().to_owned(),
            model_id: r.model_id,
            dataset_id: r.dataset_id,
            eval_dataset_id: r.eval_dataset_id,
            params: r.params,
            progress: r.progress,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            cancel_requested: r.cancel_requested,
            error: r.error,
            result: r.result,
            created_at: timestamp(r.created_at),
            started_at: r.started_at.map(timestamp),
            finished_at: r.finished_at.map(timestamp),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListJobsQuery {
    /// Only jobs with this status.
    pub status: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One step (epoch) of a job's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricStep {
    pub step: i64,
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricHistory {
    pub job_id: Uuid,
    pub history: Vec<MetricStep>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ArtifactList {
    pub items: Vec<ArtifactView>,
}

const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Queue a job. The same `Idempotency-Key` with the same body returns the same job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = CreateJob,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a request safely: same key, same job")),
    responses(
        (status = 202, body = JobView, description = "Queued; `Location` names the job"),
        (status = 400, body = Problem), (status = 409, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_job(
    State(svc): State<Services>,
    headers: HeaderMap,
    AppJson(body): AppJson<CreateJob>,
) -> Result<impl IntoResponse, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Idempotency-Key",
                        format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
                    )
                })?;
            Some(key.to_string())
        }
    };
    let job = svc
        .create_job(
            NewJob {
                kind: body.kind,
                model: body.model,
                dataset: body.dataset,
                eval_dataset: body.eval_dataset,
                params: body.params,
            },
            key,
        )
        .await?;
    let location = format!("/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(JobView::from(job)),
    ))
}

/// The message for a query value outside `names`.
fn one_of(names: &[&str]) -> String {
    format!("must be one of {}", names.join(", "))
}

/// List jobs, newest first, optionally filtered by `status` and `kind`.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListJobsQuery),
    responses((status = 200, body = Page<JobView>), (status = 422, body = Problem)))]
pub async fn list_jobs(
    State(svc): State<Services>,
    Query(q): Query<ListJobsQuery>,
) -> Result<Json<Page<JobView>>, ApiError> {
    let mut c = Checker::new();
    let status = q.status.as_deref().and_then(|s| {
        let status = JobStatus::parse(s);
        let names: Vec<_> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        c.require(status.is_some(), "status", one_of(&names));
        status
    });
    let kind = q.kind.as_deref().and_then(|k| {
        let kind = JobKind::parse(k);
        let names: Vec<_> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        c.require(kind.is_some(), "kind", one_of(&names));
        kind
    });
    let page = match PageRequest::parse(q.limit.as_deref(), q.cursor.as_deref()) {
        Ok(p) => Some(p),
        Err(e) => {
            c.extend(e);
            None
        }
    };
    c.finish(())?;
    let page = page.unwrap_or(PageRequest {
        limit: super::pagination::DEFAULT_LIMIT,
        cursor: None,
    });
    let filter = JobFilter { status, kind };
    let rows = svc.list_jobs(&filter, page).await?;
    Ok(Json(Page::from_rows(
        rows,
        page.limit,
        |r| r.id,
        JobView::from,
    )))
}

/// Show a job: status, progress, timing, attempts, error, result.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_job(
    State(svc): State<Services>,
    IdPath(id): IdPath,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(svc.get_job(id).await?.into()))
}

/// Cancel a job: a queued one at once, a running one at its next batch.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = Uuid, Path)),
    responses(
        (status = 202, body = JobView, description = "Cancelled, or cancellation requested"),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "Already finished")))]
pub async fn cancel_job(
    State(svc): State<Services>,
    IdPath(id): IdPath,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = svc.cancel_job(id).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// The per-epoch history: loss, val_loss, accuracy, …
#[utoipa::path(get, path = "/v1/jobs/{id}/metrics", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, body = MetricHistory), (status = 404, body = Problem)))]
pub async fn job_metrics(
    State(svc): State<Services>,
    IdPath(id): IdPath,
) -> Result<Json<MetricHistory>, ApiError> {
    let points = svc.job_metrics(id).await?;
    let mut steps: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
    for p in points {
        steps.entry(p.step).or_default().insert(p.name, p.value);
    }
    Ok(Json(MetricHistory {
        job_id: id,
        history: steps
            .into_iter()
            .map(|(step, metrics)| MetricStep { step, metrics })
            .collect(),
    }))
}

/// What a job produced.
#[utoipa::path(get, path = "/v1/jobs/{id}/artifacts", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, body = ArtifactList), (status = 404, body = Problem)))]
pub async fn job_artifacts(
    State(svc): State<Services>,
    IdPath(id): IdPath,
) -> Result<Json<ArtifactList>, ApiError> {
    let items = svc.job_artifacts(id).await?;
    Ok(Json(ArtifactList {
        items: items.into_iter().map(ArtifactView::from).collect(),
    }))
}
