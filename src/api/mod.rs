//! The HTTP layer: thin handlers that parse, call a service and map errors to
//! problem documents. Every resource file exposes `fn router() -> Router<Services>`;
//! [`app`] merges them and adds the guard rails.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::services::Services;

pub mod artifacts;
pub mod datasets;
pub mod download;
pub mod extract;
pub mod health;
pub mod jobs;
pub mod models;
pub mod multipart;
pub mod openapi;
pub mod pagination;
pub mod problem;

use problem::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application as a router, without a socket: tests drive it directly too.
pub fn app(services: Services) -> Router {
    // Multipart framing adds a little to the file itself.
    let upload_limit = usize::try_from(services.settings.limits.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    Router::new()
        .merge(health::router())
        .merge(datasets::router(upload_limit))
        .merge(models::router(upload_limit))
        .merge(jobs::router())
        .merge(artifacts::router())
        .merge(openapi::router())
        .fallback(not_found)
        .with_state(services)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                        let id = req
                            .headers()
                            .get(&REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(panic_response))
                // Uploads of large datasets take a while; everything else is quick.
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(600),
                )),
        )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such route; see /openapi.json",
    )
}

fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal server error",
        "the server failed to complete the request; see its log",
    )
    .into_response()
}
