//! `/openapi.json`, generated from the handlers' annotations.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::services::Services;

#[derive(OpenApi)]
#[openapi(
    info(title = "kiln", description = "Model-optimization service: upload a network and a dataset, train, evaluate, and download the result with the metrics that prove it."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::datasets::create_dataset,
        super::datasets::list_datasets,
        super::datasets::get_dataset,
        super::datasets::delete_dataset,
        super::models::create_model,
        super::models::list_models,
        super::models::get_model,
        super::models::delete_model,
        super::models::download_model,
        super::models::predict,
        super::jobs::create_job,
        super::jobs::list_jobs,
        super::jobs::get_job,
        super::jobs::cancel_job,
        super::jobs::job_metrics,
        super::jobs::job_artifacts,
        super::artifacts::download_artifact,
    ),
    components(schemas(
        super::problem::Problem,
        crate::validation::FieldError,
        crate::nn::spec::Architecture,
        crate::nn::spec::LayerSpec,
        crate::nn::spec::Activation,
        crate::jobs::JobKind,
    )),
    tags(
        (name = "datasets", description = "Upload and inspect datasets"),
        (name = "models", description = "Create, upload and download models"),
        (name = "jobs", description = "Train, evaluate and optimize models"),
        (name = "artifacts", description = "Files jobs produced"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

pub fn router() -> Router<Services> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
