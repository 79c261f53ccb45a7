//! `/v1/models`: create from a JSON architecture or upload a model file; list, show, delete, download.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::download::{serve_blob, serve_bytes};
use super::extract::{AppJson, IdPath, is_json, parse_json};
use super::multipart::{UploadForm, read_upload_form};
use super::pagination::{ListQuery, Page, timestamp};
use super::problem::{ApiError, Problem};
use crate::formats::source::Source;
use crate::nn::spec::Architecture;
use crate::services::Services;
use crate::services::model_download::Download;
use crate::store::ModelRecord;

pub fn router(upload_limit: usize) -> Router<Services> {
    Router::new()
        .route(
            "/v1/models",
            get(list_models)
                .post(create_model)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/v1/models/{id}", get(get_model).delete(delete_model))
        .route("/v1/models/{id}/download", get(download_model))
        .route("/v1/models/{id}/predict", axum::routing::post(predict))
}

/// A model as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelView {
    pub id: Uuid,
    pub name: String,
    pub created_at: String,
    pub architecture: Architecture,
    /// Trainable parameters.
    pub params: i64,
    pub nonzero_params: i64,
    /// Fraction of parameters that are exactly zero.
    pub sparsity: f64,
    /// Bytes of the model file.
    pub size_bytes: i64,
    pub dtype: String,
    /// False for a model created from an architecture and never trained.
    pub trained: bool,
    pub task: Option<String>,
    /// The model this one was derived from.
    pub parent_id: Option<Uuid>,
    /// The job that produced it.
    pub job_id: Option<Uuid>,
    pub sha256: String,
    /// Where an imported model (or the model it derives from) came from: ONNX or Keras,
    /// its graph input and output names, producer, opset and what the import left out.
    pub source: Option<Source>,
}

impl From<ModelRecord> for ModelView {
    fn from(r: ModelRecord) -> Self {
        let sparsity = if r.params > 0 {
            1.0 - r.nonzero_params as f64 / r.params as f64
        } else {
            0.0
        };
        Self {
            id: r.id,
            name: r.name,
            created_at: timestamp(r.created_at),
            architecture: r.architecture,
            params: r.params,
            nonzero_params: r.nonzero_params,
            sparsity,
            size_bytes: r.size_bytes,
            dtype: r.dtype,
            trained: r.trained,
            task: r.task,
            parent_id: r.parent_id,
            job_id: r.job_id,
            sha256: r.sha256,
            source: r.source,
        }
    }
}

/// `POST /v1/models` with a JSON body: an untrained model from an architecture.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    pub name: Option<String>,
    pub architecture: Architecture,
    /// Seed of the weight initialisation (default 42).
    pub seed: Option<u64>,
}

/// The multipart form of `POST /v1/models` (for the OpenAPI document).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct ModelUploadForm {
    /// A model file, told by its content: kiln safetensors (with kiln's `__metadata__`), a
    /// compressed `kilnz` artifact, an ONNX model (dense networks) or a Keras 3 `.keras` file.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DownloadQuery {
    /// `safetensors`, `kilnz` (kiln's compressed artifact) or `onnx`; default: the form the
    /// model is stored in. A compressed model also downloads as dense `safetensors`; every
    /// model downloads as `onnx` (int8 models as QDQ graphs ONNX Runtime runs).
    pub format: Option<String>,
}

/// Create a model: JSON `{name, architecture}` for an untrained model, or a
/// multipart upload (`file`, optional `name`) of a kiln, ONNX or Keras model file.
#[utoipa::path(post, path = "/v1/models", tag = "models",
    request_body(description = "JSON architecture or multipart upload", content(
        (CreateModel = "application/json"),
        (ModelUploadForm = "multipart/form-data"))),
    responses(
        (status = 201, body = ModelView), (status = 400, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn create_model(State(svc): State<Services>, req: Request) -> Result<Response, ApiError> {
    let record = if is_json(req.headers()) {
        let bytes = axum::body::Bytes::from_request(req, &svc)
            .await
            .map_err(|e| ApiError::bad_request("body", e.body_text()))?;
        let body: CreateModel = parse_json(&bytes)?;
        svc.create_model_from_architecture(body.name, body.architecture, body.seed)
            .await?
    } else if req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
    {
        let multipart = Multipart::from_request(req, &svc)
            .await
            .map_err(|e| ApiError::bad_request("body", e.body_text()))?;
        let UploadForm { file, fields } = read_upload_form(&svc, multipart, &["name"]).await?;
        svc.create_model_from_upload(file, fields.get("name").cloned())
            .await?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send application/json (an architecture) or multipart/form-data (a model file)",
        )
        .with_field(
            "content-type",
            "must be application/json or multipart/form-data",
        ));
    };
    let location = format!("/v1/models/{}", record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ModelView::from(record)),
    )
        .into_response())
}

/// List models, newest first.
#[utoipa::path(get, path = "/v1/models", tag = "models", params(ListQuery),
    responses((status = 200, body = Page<ModelView>), (status = 422, body = Problem)))]
pub async fn list_models(
    State(svc): State<Services>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<ModelView>>, ApiError> {
    let page = q.page()?;
    let rows = svc.list_models(page).await?;
    Ok(Json(Page::from_rows(
        rows,
        page.limit,
        |r| r.id,
        ModelView::from,
    )))
}

/// Show one model: architecture, parameter count, size, sparsity, dtype, lineage.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "models", params(("id" = Uuid, Path)),
    responses((status = 200, body = ModelView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_model(
    State(svc): State<Services>,
    IdPath(id): IdPath,
) -> Result<Json<ModelView>, ApiError> {
    Ok(Json(svc.get_model(id).await?.into()))
}

/// Delete a model; refused with 409 while a queued or running job uses it.
#[utoipa::path(delete, path = "/v1/models/{id}", tag = "models", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_model(
    State(svc): State<Services>,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    svc.delete_model(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Download the model file.
#[utoipa::path(get, path = "/v1/models/{id}/download", tag = "models",
    params(("id" = Uuid, Path), DownloadQuery),
    responses(
        (status = 200, content_type = "application/octet-stream", description = "The model file"),
        (status = 206, description = "A byte range of it"),
        (status = 304, description = "Not modified"),
        (status = 404, body = Problem), (status = 416, body = Problem), (status = 422, body = Problem)))]
pub async fn download_model(
    State(svc): State<Services>,
    IdPath(id): IdPath,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = svc.get_model(id).await?;
    match svc.model_download(&record, q.format.as_deref()).await? {
        Download::Stored { filename } => {
            serve_blob(
                &svc,
                &headers,
                &record.sha256,
                &filename,
                "application/octet-stream",
            )
            .await
        }
        Download::Converted { filename, bytes } => Ok(serve_bytes(&filename, bytes)),
    }
}

/// `POST /v1/models/{id}/predict`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// One row of `input_dim` numbers per example (at most 10,000 rows).
    pub inputs: Vec<Vec<f32>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PredictResponse {
    /// One row per input: probabilities for sigmoid/softmax outputs, raw values otherwise.
    pub outputs: Vec<Vec<f32>>,
}

/// Run the model on a few rows.
#[utoipa::path(post, path = "/v1/models/{id}/predict", tag = "models", params(("id" = Uuid, Path)),
    request_body = PredictRequest,
    responses((status = 200, body = PredictResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn predict(
    State(svc): State<Services>,
    IdPath(id): IdPath,
    AppJson(body): AppJson<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    let outputs = svc.predict(id, body.inputs).await?;
    Ok(Json(PredictResponse { outputs }))
}
