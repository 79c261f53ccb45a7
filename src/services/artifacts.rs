//! Artifacts: files jobs produced, downloadable by id.

use uuid::Uuid;

use super::{ServiceError, Services};
use crate::store::{ArtifactRecord, Catalog};

impl Services {
    pub async fn get_artifact(&self, id: Uuid) -> Result<ArtifactRecord, ServiceError> {
        self.store
            .get_artifact(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("artifact", "id", id))
    }
}
