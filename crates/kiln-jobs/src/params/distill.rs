//! Distill parameters: [`validate_distill`] → [`ValidDistillParams`].
//!
//! ```json
//! {"student": "<model id>" | {architecture},   // or, without a student:
//!  "shrink": 0.25,            // every hidden layer of the teacher × 0.25 (the default when no student is given)
//!  "temperature": 4,          // T of the softened outputs (classification)
//!  "alpha": 0.1,              // weight of the hard-label loss; 1 − alpha goes to the teacher
//!  "baseline": false,         // also train the same student without the teacher, under result.baseline
//!  "teacher_cache_bytes": …,  // cache the teacher's soft targets when they fit (default: the configured limit)
//!  …train params…}            // epochs, batch_size, optimizer, … as in train, for the student
//! ```
//!
//! The stored (normalised) form names the student as `{"architecture": …}` plus
//! `"model"` (an id the service resolved) or `"shrink"` (how it was derived), so
//! the job record says exactly which network was trained.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::fields::{Fields, positive_finite};
use super::train::{ValidTrainParams, validate_train};
use crate::{DatasetShape, JobLimits};
use kiln_nn::optimize::distill::{DistillError, check_pair, shrink};
use kiln_nn::spec::Architecture;
use kiln_nn::validation::{Checker, FieldError, Invalid};

pub const DEFAULT_TEMPERATURE: f64 = 4.0;
pub const DEFAULT_ALPHA: f64 = 0.1;
pub const DEFAULT_SHRINK: f64 = 0.25;

/// The keys a distill job reads besides the train parameters.
const DISTILL_KEYS: [&str; 6] = [
    "student",
    "shrink",
    "temperature",
    "alpha",
    "baseline",
    "teacher_cache_bytes",
];

/// The student network and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentSpec {
    pub architecture: Architecture,
    /// The stored model the student starts from (its weights when trained).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<uuid::Uuid>,
    /// The factor the teacher's hidden widths were scaled by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrink: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidDistillParams {
    pub student: StudentSpec,
    pub temperature: f64,
    pub alpha: f64,
    pub baseline: bool,
    pub teacher_cache_bytes: u64,
    /// How the student trains (checked against the student's architecture).
    #[serde(flatten)]
    pub train: ValidTrainParams,
}

/// Whether `student` names a stored model, in either accepted form: the id itself, or
/// the normalised `{"model": id, …}`. The service resolves these before validation.
pub fn student_model_ref(params: &Value) -> Option<&Value> {
    match params.get("student")? {
        s @ Value::String(_) => Some(s),
        Value::Object(m) => m.get("model").filter(|v| !v.is_null()),
        _ => None,
    }
}

pub fn validate_distill(
    params: &Value,
    teacher: &Architecture,
    dataset: &DatasetShape,
    eval: Option<&DatasetShape>,
    limits: &JobLimits,
) -> Result<ValidDistillParams, Invalid> {
    let mut c = Checker::new();
    let empty = Map::new();
    let all = match params {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(Invalid::one("params", "must be an object")),
    };
    let mine: Map<String, Value> = all
        .iter()
        .filter(|(k, _)| DISTILL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rest: Map<String, Value> = all
        .iter()
        .filter(|(k, _)| !DISTILL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mine = Value::Object(mine);
    let mut f = Fields::new(&mine, "params", &mut c);
    let raw_student = f.raw("student");
    let shrink_factor: Option<f64> = f.get("shrink", &mut c);
    let temperature: f64 = f.get("temperature", &mut c).unwrap_or(DEFAULT_TEMPERATURE);
    let alpha: f64 = f.get("alpha", &mut c).unwrap_or(DEFAULT_ALPHA);
    let baseline: bool = f.get("baseline", &mut c).unwrap_or(false);
    let cache: Option<u64> = f.get("teacher_cache_bytes", &mut c);
    f.finish(&mut c);

    if positive_finite(&mut c, "params.temperature".into(), temperature) {
        c.require(
            temperature <= 100.0,
            "params.temperature",
            "must be at most 100; beyond that the softened outputs are uniform to float precision",
        );
    }
    c.require(
        alpha.is_finite() && (0.0..=1.0).contains(&alpha),
        "params.alpha",
        "must be a number in [0, 1]: the weight of the hard-label loss",
    );
    let teacher_cache_bytes = cache.unwrap_or(limits.teacher_cache_bytes);
    c.require(
        teacher_cache_bytes <= limits.teacher_cache_bytes,
        "params.teacher_cache_bytes",
        format!(
            "must be at most the configured {} bytes",
            limits.teacher_cache_bytes
        ),
    );

    let student = match (raw_student, shrink_factor) {
        (Some(_), Some(_)) => {
            c.push(
                "params.shrink",
                "give either params.student or params.shrink, not both",
            );
            None
        }
        (Some(v), None) => student_of(v, limits, &mut c),
        (None, factor) => {
            let factor = factor.unwrap_or(DEFAULT_SHRINK);
            let ok = factor.is_finite() && factor > 0.0 && factor <= 1.0;
            c.require(
                ok,
                "params.shrink",
                "must be a number in (0, 1]: the fraction of each hidden layer's width the student keeps",
            );
            ok.then(|| StudentSpec {
                architecture: shrink(teacher, factor),
                model: None,
                shrink: Some(factor),
            })
        }
    };
    if let Some(s) = &student {
        check_student(&s.architecture, teacher, s.model.is_some(), &mut c);
    }

    // The train parameters are checked against the student, which is what trains;
    // a student that does not fit the teacher is already reported, so the teacher
    // stands in for it then and only the train parameters' own errors remain.
    let fits = c.is_empty();
    let arch = match &student {
        Some(s) if fits => &s.architecture,
        _ => teacher,
    };
    let train = match validate_train(&Value::Object(rest), arch, dataset, eval, limits) {
        Ok(t) => Some(t),
        Err(Invalid(errors)) => {
            for e in errors {
                let message = match e.message.strip_prefix("unknown field; expected one of: ") {
                    Some(known) => format!(
                        "unknown field; expected one of: {}, {known}",
                        DISTILL_KEYS.join(", ")
                    ),
                    None => e.message,
                };
                c.extend(FieldError::new(e.field, message).into());
            }
            None
        }
    };
    match (student, train) {
        (Some(student), Some(train)) => c.finish(ValidDistillParams {
            student,
            temperature,
            alpha,
            baseline,
            teacher_cache_bytes,
            train,
        }),
        // Either missing part recorded why.
        _ => Err(c
            .finish(())
            .err()
            .unwrap_or_else(|| Invalid::one("params", "invalid distill parameters"))),
    }
}

/// `params.student`: an architecture, or the normalised `{"architecture", "model"?, "shrink"?}`.
/// A bare model id here means the service did not resolve it, which only a
/// client-written `{"model": …}` without an architecture can cause.
fn student_of(v: &Value, limits: &JobLimits, c: &mut Checker) -> Option<StudentSpec> {
    let wrapped = v
        .as_object()
        .is_some_and(|m| m.contains_key("architecture") || m.contains_key("model"));
    if !wrapped {
        if v.is_string() {
            c.push("params.student", "no such model");
            return None;
        }
        return architecture_of(v, "params.student", limits, c).map(|architecture| StudentSpec {
            architecture,
            model: None,
            shrink: None,
        });
    }
    let mut f = Fields::new(v, "params.student", c);
    let raw_arch = f.raw("architecture");
    let model: Option<uuid::Uuid> = f.get("model", c);
    let shrink: Option<f64> = f.get("shrink", c);
    f.finish(c);
    let Some(raw_arch) = raw_arch else {
        c.push(
            "params.student",
            "give a model id or an architecture ({\"input_dim\": …, \"layers\": […]})",
        );
        return None;
    };
    let architecture = architecture_of(raw_arch, "params.student.architecture", limits, c)?;
    Some(StudentSpec {
        architecture,
        model,
        shrink,
    })
}

fn architecture_of(
    v: &Value,
    field: &str,
    limits: &JobLimits,
    c: &mut Checker,
) -> Option<Architecture> {
    match serde_path_to_error::deserialize::<_, Architecture>(v) {
        Ok(a) => match a.check(&limits.architecture) {
            Ok(()) => Some(a),
            Err(e) => {
                c.extend(e.prefixed(field));
                None
            }
        },
        Err(e) => {
            let path = e.path().to_string();
            let at = if path == "." {
                field.to_string()
            } else {
                format!("{field}.{path}")
            };
            c.push(at, e.into_inner().to_string());
            None
        }
    }
}

/// The student must read the teacher's inputs and produce the teacher's outputs,
/// or the soft targets mean nothing to it.
fn check_student(student: &Architecture, teacher: &Architecture, by_id: bool, c: &mut Checker) {
    if let Err(e) = check_pair(teacher, student) {
        let field = match (&e, by_id) {
            (_, true) => "params.student",
            (DistillError::InputWidth { .. }, false) => "params.student.input_dim",
            (_, false) => "params.student.layers",
        };
        c.push(field, e.to_string());
    }
}

/// The normalised student reference a service writes once it has looked up `model`.
pub fn resolved_student(model: uuid::Uuid, architecture: &Architecture) -> Value {
    json!({"model": model, "architecture": architecture})
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_nn::data::Task;

    fn teacher() -> Architecture {
        serde_json::from_value(json!({"input_dim": 20, "layers": [
            {"type": "dense", "units": 64, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 32, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"}]}))
        .expect("parses")
    }

    fn shape() -> DatasetShape {
        DatasetShape {
            rows: 100,
            features: 20,
            classes: 3,
            task: Task::Multiclass,
            input_shape: None,
        }
    }

    fn check(params: Value) -> Result<ValidDistillParams, Invalid> {
        validate_distill(&params, &teacher(), &shape(), None, &JobLimits::default())
    }

    fn fields(params: Value) -> Vec<String> {
        check(params)
            .expect_err("must be rejected")
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn defaults_shrink_the_teacher_by_a_quarter_with_hintons_settings() {
        let p = check(json!({})).expect("valid");
        let units = p.student.architecture.dense_units();
        assert_eq!(units, vec![16, 8, 3]);
        assert_eq!(p.student.shrink, Some(0.25));
        assert_eq!((p.temperature, p.alpha, p.baseline), (4.0, 0.1, false));
        assert_eq!(
            p.teacher_cache_bytes,
            JobLimits::default().teacher_cache_bytes
        );
        assert_eq!(p.train.epochs, 10);
    }

    #[test]
    fn the_normalised_form_validates_to_itself() {
        let p = check(json!({"shrink": 0.5, "temperature": 2, "epochs": 3})).expect("valid");
        let stored = super::super::to_json(&p);
        assert!(stored.get("shrink").is_none(), "shrink moves into student");
        assert_eq!(check(stored).expect("stored form is valid"), p);
    }

    #[test]
    fn an_explicit_student_architecture_is_checked_against_the_teacher() {
        let student = json!({"input_dim": 20, "layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"}]});
        let p = check(json!({"student": student})).expect("valid");
        assert_eq!(p.student.architecture.input_dim, 20);
        assert_eq!(p.student.model, None);

        let wide = json!({"input_dim": 21, "layers": [{"type": "dense", "units": 3, "activation": "softmax"}]});
        assert_eq!(
            fields(json!({"student": wide})),
            vec!["params.student.input_dim"]
        );
        let classes = json!({"input_dim": 20, "layers": [{"type": "dense", "units": 4, "activation": "softmax"}]});
        assert_eq!(
            fields(json!({"student": classes})),
            vec!["params.student.layers"]
        );
        let broken = json!({"input_dim": 20, "layers": [{"type": "dense", "units": 0}]});
        assert_eq!(
            fields(json!({"student": broken})),
            vec!["params.student.layers[0].units"]
        );
        assert_eq!(
            fields(json!({"student": {"input_dim": "x", "layers": []}})),
            vec!["params.student.input_dim"]
        );
    }

    #[test]
    fn a_resolved_model_student_names_the_student_field() {
        let id = uuid::Uuid::now_v7();
        let arch: Architecture = serde_json::from_value(json!({"input_dim": 19, "layers": [
            {"type": "dense", "units": 3, "activation": "softmax"}]}))
        .expect("parses");
        let params = json!({"student": resolved_student(id, &arch)});
        assert_eq!(student_model_ref(&params), Some(&json!(id)));
        assert_eq!(fields(params), vec!["params.student"]);
        assert_eq!(
            fields(json!({"student": "not-resolved"})),
            vec!["params.student"]
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(
            fields(json!({"temperature": 0})),
            vec!["params.temperature"]
        );
        assert_eq!(
            fields(json!({"temperature": 1000})),
            vec!["params.temperature"]
        );
        assert_eq!(fields(json!({"alpha": 1.5})), vec!["params.alpha"]);
        assert_eq!(fields(json!({"shrink": 0})), vec!["params.shrink"]);
        assert_eq!(fields(json!({"shrink": 2})), vec!["params.shrink"]);
        assert_eq!(fields(json!({"baseline": "yes"})), vec!["params.baseline"]);
        assert_eq!(
            fields(json!({"teacher_cache_bytes": u64::MAX})),
            vec!["params.teacher_cache_bytes"]
        );
        assert_eq!(fields(json!({"epochs": 0})), vec!["params.epochs"]);
        assert_eq!(
            fields(json!({"shrink": 0.5, "student": {"input_dim": 20, "layers": []}})),
            vec!["params.shrink"]
        );
        let unknown = check(json!({"temperatur": 4})).expect_err("unknown");
        assert_eq!(unknown.0[0].field, "params.temperatur");
        assert!(unknown.0[0].message.contains("temperature"));
    }
}
