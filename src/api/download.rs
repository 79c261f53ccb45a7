//! File downloads with `Content-Length`, `ETag` (the sha256), `Content-Disposition`
//! and range requests. Which bytes to send is the service's answer
//! ([`Services::blob_download`]); this file only turns it into a response.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::problem::ApiError;
use crate::blobs::BlobRead;
use crate::services::Services;
use crate::services::blob_download::{BlobDownload, RangeRequest};

/// Serves the blob `sha256`; the request's headers decide range and revalidation.
pub async fn serve_blob(
    svc: &Services,
    request_headers: &HeaderMap,
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

    let text = |name: header::HeaderName| request_headers.get(name).and_then(|v| v.to_str().ok());
    let request = RangeRequest {
        range: text(header::RANGE),
        if_range: text(header::IF_RANGE),
    };
    let mut res = match svc.blob_download(sha256, request).await? {
        BlobDownload::Full(read) => body(StatusCode::OK, read),
        BlobDownload::Partial(read) => {
            let range = format!(
                "bytes {}-{}/{}",
                read.start,
                read.start + read.len - 1,
                read.size
            );
            let mut res = body(StatusCode::PARTIAL_CONTENT, read);
            insert(&mut res, header::CONTENT_RANGE, &range);
            res
        }
        BlobDownload::Unsatisfiable { size } => {
            let detail = format!("the range selects no byte of the {size}-byte file");
            let mut res = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "Range not satisfiable",
                detail.clone(),
            )
            .with_field("range", detail)
            .into_response();
            insert(&mut res, header::CONTENT_RANGE, &format!("bytes */{size}"));
            insert(&mut res, header::ACCEPT_RANGES, "bytes");
            insert(&mut res, header::ETAG, &etag);
            return Ok(res);
        }
    };
    insert(&mut res, header::ACCEPT_RANGES, "bytes");
    insert(&mut res, header::ETAG, &etag);
    insert(&mut res, header::CONTENT_TYPE, content_type);
    attach(&mut res, filename);
    Ok(res)
}

/// A streamed body of `read.len` bytes.
fn body(status: StatusCode, read: BlobRead) -> Response {
    let len = read.len;
    let mut res = (status, Body::from_stream(read.stream)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    res
}

/// Serves bytes made for this request (a converted file): no ranges, ETag of the content.
pub fn serve_bytes(filename: &str, bytes: Vec<u8>) -> Response {
    let digest = crate::blobs::sha256_hex(&bytes);
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
