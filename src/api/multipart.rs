//! Reading upload forms: the `file` part streams straight into the blob store
//! (never held whole in memory); the few text parts are collected.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::Multipart;
use axum::http::StatusCode;
use futures::TryStreamExt;

use super::problem::ApiError;
use crate::services::{ServiceError, Services, Upload};

/// Longest accepted text part (names, column names).
const MAX_TEXT_FIELD: usize = 1024;

pub struct UploadForm {
    pub file: Upload,
    pub fields: HashMap<String, String>,
}

fn too_large(limit: u64) -> ApiError {
    ServiceError::TooLarge {
        field: "file",
        limit,
    }
    .into()
}

/// Reads a multipart form with one `file` part and the named text parts.
pub async fn read_upload_form(
    svc: &Services,
    mut multipart: Multipart,
    text_fields: &[&str],
) -> Result<UploadForm, ApiError> {
    let limit = svc.settings.limits.max_upload_bytes;
    let mut file = None;
    let mut fields = HashMap::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large(limit)),
            Err(e) => return Err(ApiError::bad_request("body", e.body_text())),
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if file.is_some() {
                return Err(ApiError::bad_request(
                    "file",
                    "send exactly one `file` part",
                ));
            }
            let filename = field.file_name().map(str::to_string);
            // Remember whether the body limit, not the client's bytes, ended the stream.
            let hit_limit = Arc::new(AtomicBool::new(false));
            let flag = hit_limit.clone();
            let stream = field
                .inspect_err(move |e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        flag.store(true, Ordering::Relaxed);
                    }
                })
                .map_err(std::io::Error::other);
            match svc.store_upload(stream, filename).await {
                Ok(upload) => file = Some(upload),
                Err(_) if hit_limit.load(Ordering::Relaxed) => return Err(too_large(limit)),
                Err(e) => return Err(e.into()),
            }
        } else if text_fields.contains(&name.as_str()) {
            let value = field
                .text()
                .await
                .map_err(|e| ApiError::bad_request(name.clone(), e.body_text()))?;
            if value.len() > MAX_TEXT_FIELD {
                return Err(ApiError::invalid(crate::validation::Invalid::one(
                    name,
                    format!("at most {MAX_TEXT_FIELD} bytes"),
                )));
            }
            fields.insert(name, value);
        } else {
            return Err(ApiError::invalid(crate::validation::Invalid::one(
                name.clone(),
                format!(
                    "unknown form field `{name}`; expected `file` and optionally {}",
                    text_fields.join(", ")
                ),
            )));
        }
    }
    let file = file.ok_or_else(|| {
        ApiError::invalid(crate::validation::Invalid::one(
            "file",
            "a multipart part named `file` is required",
        ))
    })?;
    Ok(UploadForm { file, fields })
}
