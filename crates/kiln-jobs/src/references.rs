//! Which stored models a job kind references, and in what role: the one place
//! that knows, so the service (resolving ids before the params check), the
//! store (`job_models`, which makes "model in use" a join) and the loader
//! (handing the job its decoded models) stay generic over job kinds.
//!
//! A new kind that reads a second model adds a [`ModelRole`] and an arm in
//! [`params_model_refs`] / [`referenced_models`]; nothing in services, store or
//! queue changes.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use super::JobKind;
use super::params::{resolved_student, student_model_ref};
use kiln_formats::model_file::ModelFile;
use kiln_nn::spec::Architecture;

/// Why a job names a model. The JSON/SQL name is [`ModelRole::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelRole {
    /// The job's `model`: what it trains, evaluates or optimizes.
    Input,
    /// The stored model a distill job starts its student from.
    Student,
}

impl ModelRole {
    pub const ALL: &'static [ModelRole] = &[ModelRole::Input, ModelRole::Student];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelRole::Input => "input",
            ModelRole::Student => "student",
        }
    }

    pub fn parse(s: &str) -> Option<ModelRole> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

/// A model named inside a job's raw params, before the service looked it up.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamsModelRef {
    pub role: ModelRole,
    /// Where errors about it point (`params.student`).
    pub field: &'static str,
    /// The raw reference as the client gave it (normally a model id string).
    pub value: Value,
}

/// The models `kind`'s raw `params` name (beside the job's own `model`), which
/// the service must look up and [`resolve_params_model`] before the params check.
pub fn params_model_refs(kind: JobKind, params: &Value) -> Vec<ParamsModelRef> {
    match kind {
        JobKind::Distill => student_model_ref(params)
            .map(|value| ParamsModelRef {
                role: ModelRole::Student,
                field: "params.student",
                value: value.clone(),
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// Writes the looked-up model `id` (of `architecture`) into `params` in the
/// normalised form the params check expects for `role`.
pub fn resolve_params_model(
    role: ModelRole,
    params: &mut Value,
    id: Uuid,
    architecture: &Architecture,
) {
    match role {
        // The job's own model is not named in its params.
        ModelRole::Input => {}
        ModelRole::Student => params["student"] = resolved_student(id, architecture),
    }
}

/// Every stored model a queued job references, by role: its `model_id` as
/// [`ModelRole::Input`] and whatever its normalised params name.
pub fn referenced_models(kind: JobKind, model_id: Uuid, params: &Value) -> Vec<(ModelRole, Uuid)> {
    let mut refs = vec![(ModelRole::Input, model_id)];
    for r in params_model_refs(kind, params) {
        if let Some(id) = r.value.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
            refs.push((r.role, id));
        }
    }
    refs
}

/// The decoded models a job references besides its input model, by role.
#[derive(Debug, Clone, Default)]
pub struct InputModels(BTreeMap<ModelRole, ModelFile>);

impl InputModels {
    pub fn get(&self, role: ModelRole) -> Option<&ModelFile> {
        self.0.get(&role)
    }

    pub fn insert(&mut self, role: ModelRole, model: ModelFile) {
        self.0.insert(role, model);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_role_name_parses_back() {
        for &r in ModelRole::ALL {
            assert_eq!(ModelRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(ModelRole::parse("teacher"), None);
    }

    #[test]
    fn a_distill_job_references_its_stored_student_in_either_form() {
        let (model, student) = (Uuid::now_v7(), Uuid::now_v7());
        let want = vec![(ModelRole::Input, model), (ModelRole::Student, student)];
        let raw = json!({"student": student.to_string()});
        assert_eq!(referenced_models(JobKind::Distill, model, &raw), want);
        let normalised = json!({"student": {"model": student, "architecture": {}}});
        assert_eq!(
            referenced_models(JobKind::Distill, model, &normalised),
            want
        );
    }

    #[test]
    fn other_kinds_and_architecture_students_reference_only_the_input() {
        let model = Uuid::now_v7();
        let arch = json!({"student": {"architecture": {"input_dim": 2, "layers": []}}});
        assert_eq!(
            referenced_models(JobKind::Distill, model, &arch),
            vec![(ModelRole::Input, model)]
        );
        let named = json!({"student": Uuid::now_v7().to_string()});
        assert_eq!(
            referenced_models(JobKind::Train, model, &named),
            vec![(ModelRole::Input, model)]
        );
        assert!(params_model_refs(JobKind::Prune, &named).is_empty());
    }
}
