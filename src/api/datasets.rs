//! `/v1/datasets`: upload (multipart), list, show, delete.

use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use uuid::Uuid;

use super::extract::IdPath;
use super::multipart::{UploadForm, read_upload_form};
use super::pagination::{ListQuery, Page, timestamp};
use super::problem::{ApiError, Problem};
use crate::services::Services;
use crate::services::datasets::NewDataset;
use crate::store::DatasetRecord;

pub fn router(upload_limit: usize) -> Router<Services> {
    Router::new()
        .route(
            "/v1/datasets",
            get(list_datasets)
                .post(create_dataset)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/v1/datasets/{id}", get(get_dataset).delete(delete_dataset))
}

/// A dataset as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatasetView {
    pub id: Uuid,
    pub name: String,
    pub created_at: String,
    /// `csv` or `npz`: the format of the uploaded file.
    pub format: String,
    /// `binary`, `multiclass` or `regression`.
    pub task: String,
    pub rows: i64,
    pub features: i64,
    /// Number of classes (2 for binary, 0 for regression).
    pub classes: i64,
    pub label_column: Option<String>,
    /// sha256 of the uploaded file.
    pub sha256: String,
    /// Size of the uploaded file.
    pub size_bytes: i64,
    /// `[channels, height, width]` of one example for image datasets; absent for feature rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
}

impl From<DatasetRecord> for DatasetView {
    fn from(r: DatasetRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            created_at: timestamp(r.created_at),
            format: r.format,
            task: r.task,
            rows: r.rows,
            features: r.features,
            classes: r.classes,
            label_column: r.label_column,
            sha256: r.sha256,
            size_bytes: r.size_bytes,
            input_shape: r.input_shape,
        }
    }
}

/// The multipart form of `POST /v1/datasets` (for the OpenAPI document).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct DatasetUploadForm {
    /// CSV with a header row, or NPZ with `x` (or `X`) and `y`.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub name: Option<String>,
    /// CSV only: the label column's name (default: the last column).
    pub label_column: Option<String>,
    /// `binary`, `multiclass` or `regression` (default: inferred from the labels).
    pub task: Option<String>,
    /// How image values are ordered: `nchw` (channels first, the default) or `nhwc`
    /// (channels last, as Keras and TensorFlow store them). Applies to an NPZ `x` of
    /// shape `[N, C, H, W]` / `[N, H, W, C]` and to rows given an `input_shape`.
    pub layout: Option<String>,
    /// `[C, H, W]` (e.g. `[1, 28, 28]` or `1,28,28`): makes each CSV row (or 2-D NPZ
    /// row) one image. For a 3-D or 4-D NPZ `x` it must agree with the array.
    pub input_shape: Option<String>,
}

/// Upload a dataset.
#[utoipa::path(post, path = "/v1/datasets", tag = "datasets",
    request_body(content = DatasetUploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = DatasetView, description = "Created; `Location` names it"),
        (status = 400, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn create_dataset(
    State(svc): State<Services>,
    multipart: Multipart,
) -> Result<impl IntoResponse, ApiError> {
    let UploadForm { file, fields } = read_upload_form(
        &svc,
        multipart,
        &["name", "label_column", "task", "layout", "input_shape"],
    )
    .await?;
    let record = svc
        .create_dataset(
            file,
            NewDataset {
                name: fields.get("name").cloned(),
                label_column: fields.get("label_column").cloned(),
                task: fields.get("task").cloned(),
                layout: fields.get("layout").cloned(),
                input_shape: fields.get("input_shape").cloned(),
            },
        )
        .await?;
    let location = format!("/v1/datasets/{}", record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(DatasetView::from(record)),
    ))
}

/// List datasets, newest first.
#[utoipa::path(get, path = "/v1/datasets", tag = "datasets", params(ListQuery),
    responses((status = 200, body = Page<DatasetView>), (status = 422, body = Problem)))]
pub async fn list_datasets(
    State(svc): State<Services>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<DatasetView>>, ApiError> {
    let page = q.page()?;
    let rows = svc.list_datasets(page).await?;
    Ok(Json(Page::from_rows(
        rows,
        page.limit,
        |r| r.id,
        DatasetView::from,
    )))
}

/// Show one dataset.
#[utoipa::path(get, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DatasetView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_dataset(
    State(svc): State<Services>,
    IdPath(id): IdPath,
) -> Result<Json<DatasetView>, ApiError> {
    Ok(Json(svc.get_dataset(id).await?.into()))
}

/// Delete a dataset; refused with 409 while a queued or running job uses it.
#[utoipa::path(delete, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_dataset(
    State(svc): State<Services>,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    svc.delete_dataset(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
