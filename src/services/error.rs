//! The services' error type; `api::problem` maps each variant to its status once.

use crate::validation::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The client's values are not acceptable (422), each field named.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No such resource (404). `field` is where the id came from (`id`, `model`, …).
    #[error("no {what} with id {id}")]
    NotFound {
        what: &'static str,
        field: &'static str,
        id: String,
    },
    /// The request conflicts with the resource's state (409).
    #[error("{detail}")]
    Conflict { field: &'static str, detail: String },
    /// An upload over the configured limit (413).
    #[error("upload exceeds {limit} bytes")]
    TooLarge { field: &'static str, limit: u64 },
    /// Not ready to serve (503).
    #[error("{0}")]
    Unavailable(String),
    /// Our fault (500): the cause goes to the log, not to the client.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError {
    pub fn not_found(what: &'static str, field: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            field,
            id: id.to_string(),
        }
    }
}

impl From<crate::store::StoreError> for ServiceError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<crate::blobs::BlobError> for ServiceError {
    fn from(e: crate::blobs::BlobError) -> Self {
        Self::Internal(e.into())
    }
}
