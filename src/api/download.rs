//! File downloads with `Content-Length`, `ETag` (the sha256), `Content-Disposition`
//! and range requests. Range and conditional handling come from tower-http's `ServeFile`.

use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::problem::ApiError;

/// Serves the blob at `path`; the request's headers decide range and revalidation.
pub async fn serve_blob(
    request_headers: &HeaderMap,
    path: &Path,
    sha256: &str,
    filename: &str,
    content_type: &str,
) -> Result<Response, ApiError> {
    let etag = format!("\"{sha256}\"");
    if let Some(tags) = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && tags.split(',').any(|t| t.trim() == etag || t.trim() == "*")
    {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        insert(&mut res, header::ETAG, &etag);
        return Ok(res);
    }

    let mut req = Request::new(Body::empty());
    for name in [header::RANGE, header::IF_RANGE, header::IF_MODIFIED_SINCE] {
        if let Some(v) = request_headers.get(&name) {
            req.headers_mut().insert(name, v.clone());
        }
    }
    let res = ServeFile::new(path)
        .oneshot(req)
        .await
        .map_err(|e| crate::services::ServiceError::Internal(e.into()))?;
    if res.status() == StatusCode::NOT_FOUND {
        return Err(crate::services::ServiceError::Internal(anyhow::anyhow!(
            "blob {sha256} is missing from the data directory"
        ))
        .into());
    }
    let mut res = res.map(Body::new);
    insert(&mut res, header::ETAG, &etag);
    insert(&mut res, header::CONTENT_TYPE, content_type);
    attach(&mut res, filename);
    Ok(res)
}

/// Serves bytes made for this request (a converted file): no ranges, ETag of the content.
pub fn serve_bytes(filename: &str, bytes: Vec<u8>) -> Response {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut res = Body::from(bytes).into_response();
    insert(&mut res, header::ETAG, &format!("\"{digest}\""));
    insert(&mut res, header::CONTENT_TYPE, "application/octet-stream");
    attach(&mut res, filename);
    res
}

/// `Content-Disposition: attachment` with a filename safe to quote.
fn attach(res: &mut Response, filename: &str) {
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    insert(
        res,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{safe}\""),
    );
}

fn insert(res: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}
