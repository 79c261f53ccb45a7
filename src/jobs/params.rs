//! Job parameter types: raw params → `check()` → valid params.
//!
//! Raw parameters are read field by field with [`Fields`] rather than with one
//! `serde` derive, so that a wrong type deep inside (`params.optimizer.lr:
//! "fast"`) and an unknown field (`params.optimizer.lrr`) are both reported
//! with their full path — plain `serde_json` errors do not carry the path.
//! Every object rejects unknown fields (the `deny_unknown_fields` rule).
//! `null` means "use the default".
//!
//! Train defaults: `epochs` 10, `batch_size` 32, `optimizer` Adam with lr 0.001,
//! `lr_schedule` constant, `loss` from the task and output width,
//! `regularization` none, `validation_split` 0, no early stopping,
//! `seed` 42 (a fixed default so that a repeated job gives the same model).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{DatasetShape, JobLimits};
use crate::nn::data::Task;
use crate::nn::loss::Loss;
use crate::nn::optim::{Adam, AdamW, Momentum, Nesterov, OptimizerConfig, RmsProp, Sgd};
use crate::nn::regularization::Regularization;
use crate::nn::schedule::Schedule;
use crate::nn::spec::{Activation, Architecture};
use crate::nn::trainer::EarlyStopping;
use crate::validation::{Checker, Invalid};

pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_EPOCHS: u32 = 10;
pub const DEFAULT_BATCH_SIZE: usize = 32;
pub const DEFAULT_EVAL_BATCH_SIZE: usize = 1024;
pub const DEFAULT_PATIENCE: u32 = 5;

/// Reads one JSON object, recording errors with full field paths.
pub struct Fields<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// `value` must be an object (or `null`, read as `{}`).
    pub fn new(value: &'a Value, path: &str, c: &mut Checker) -> Self {
        let map = match value {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                c.push(path, format!("must be an object; found {}", kind(other)));
                None
            }
        };
        Self {
            path: path.to_string(),
            map,
            known: Vec::new(),
        }
    }

    pub fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// The raw value of `key`, if present and not null.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    /// `key` deserialised as `T`; a wrong type is recorded and read as absent.
    pub fn get<T: DeserializeOwned>(&mut self, key: &'static str, c: &mut Checker) -> Option<T> {
        let v = self.raw(key)?;
        match T::deserialize(v) {
            Ok(t) => Some(t),
            Err(e) => {
                c.push(self.path(key), type_message(&e.to_string(), v));
                None
            }
        }
    }

    /// Records every key that was not asked for as unknown.
    pub fn finish(self, c: &mut Checker) {
        if let Some(m) = self.map {
            for k in m.keys() {
                if !self.known.contains(&k.as_str()) {
                    c.push(
                        format!("{}.{k}", self.path),
                        format!("unknown field; expected one of: {}", self.known.join(", ")),
                    );
                }
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn type_message(serde_msg: &str, v: &Value) -> String {
    // serde says e.g. "invalid type: string \"x\", expected u32"; keep the expectation.
    let expected = serde_msg
        .rsplit_once("expected ")
        .map(|(_, e)| e.to_string())
        .unwrap_or_else(|| serde_msg.to_string());
    let expected = match expected.as_str() {
        "u32" | "u64" | "usize" => "a non-negative integer".to_string(),
        "f32" | "f64" => "a number".to_string(),
        other => other.to_string(),
    };
    format!("must be {expected}; found {}", kind(v))
}

fn positive_finite(c: &mut Checker, field: String, v: f64) -> bool {
    let ok = v.is_finite() && v > 0.0;
    c.require(ok, field, "must be a finite number greater than 0");
    ok
}

fn non_negative_finite(c: &mut Checker, field: String, v: f64) -> bool {
    let ok = v.is_finite() && v >= 0.0;
    c.require(ok, field, "must be a finite number of at least 0");
    ok
}

fn unit_interval(c: &mut Checker, field: String, v: f64) -> bool {
    let ok = v.is_finite() && (0.0..1.0).contains(&v);
    c.require(ok, field, "must be a number in [0, 1)");
    ok
}

/// Optimizer parameters with defaults filled in (serialised into the normalised params).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerParams {
    Sgd {
        lr: f64,
    },
    Momentum {
        lr: f64,
        momentum: f64,
    },
    Nesterov {
        lr: f64,
        momentum: f64,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    Adamw {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    Rmsprop {
        lr: f64,
        rho: f64,
        eps: f64,
    },
}

impl OptimizerParams {
    pub fn to_config(&self) -> OptimizerConfig {
        let f = |v: f64| v as f32;
        match *self {
            OptimizerParams::Sgd { lr } => OptimizerConfig::Sgd(Sgd { lr: f(lr) }),
            OptimizerParams::Momentum { lr, momentum } => OptimizerConfig::Momentum(Momentum {
                lr: f(lr),
                momentum: f(momentum),
            }),
            OptimizerParams::Nesterov { lr, momentum } => OptimizerConfig::Nesterov(Nesterov {
                lr: f(lr),
                momentum: f(momentum),
            }),
            OptimizerParams::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => OptimizerConfig::Adam(Adam {
                lr: f(lr),
                beta1: f(beta1),
                beta2: f(beta2),
                eps: f(eps),
            }),
            OptimizerParams::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => OptimizerConfig::AdamW(AdamW {
                adam: Adam {
                    lr: f(lr),
                    beta1: f(beta1),
                    beta2: f(beta2),
                    eps: f(eps),
                },
                weight_decay: f(weight_decay),
            }),
            OptimizerParams::Rmsprop { lr, rho, eps } => OptimizerConfig::RmsProp(RmsProp {
                lr: f(lr),
                rho: f(rho),
                eps: f(eps),
            }),
        }
    }
}

const OPTIMIZERS: &str = "sgd, momentum, nesterov, adam, adamw, rmsprop";

fn optimizer(value: Option<&Value>, c: &mut Checker) -> OptimizerParams {
    let path = "params.optimizer";
    let default = OptimizerParams::Adam {
        lr: 0.001,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let name_only;
    let value = match value {
        None => return default,
        // "optimizer": "sgd" is shorthand for {"name": "sgd"}.
        Some(Value::String(s)) => {
            name_only = serde_json::json!({ "name": s });
            &name_only
        }
        Some(v) => v,
    };
    let mut f = Fields::new(value, path, c);
    let name: String = f.get("name", c).unwrap_or_else(|| "adam".into());
    let mut lr = f.get::<f64>("lr", c);
    let num = |f: &mut Fields<'_>, c: &mut Checker, key: &'static str, default: f64| {
        f.get::<f64>(key, c).unwrap_or(default)
    };
    let (field_lr, field) = (f.path("lr"), |k: &str| format!("{path}.{k}"));
    let params = match name.as_str() {
        "sgd" => OptimizerParams::Sgd {
            lr: lr.take().unwrap_or(0.01),
        },
        "momentum" | "nesterov" => {
            let momentum = num(&mut f, c, "momentum", 0.9);
            unit_interval(c, field("momentum"), momentum);
            let lr = lr.take().unwrap_or(0.01);
            if name == "momentum" {
                OptimizerParams::Momentum { lr, momentum }
            } else {
                OptimizerParams::Nesterov { lr, momentum }
            }
        }
        "adam" | "adamw" => {
            let beta1 = num(&mut f, c, "beta1", 0.9);
            let beta2 = num(&mut f, c, "beta2", 0.999);
            let eps = num(&mut f, c, "eps", 1e-8);
            unit_interval(c, field("beta1"), beta1);
            unit_interval(c, field("beta2"), beta2);
            positive_finite(c, field("eps"), eps);
            let lr = lr.take().unwrap_or(0.001);
            if name == "adam" {
                OptimizerParams::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                }
            } else {
                let weight_decay = num(&mut f, c, "weight_decay", 0.01);
                non_negative_finite(c, field("weight_decay"), weight_decay);
                OptimizerParams::Adamw {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                }
            }
        }
        "rmsprop" => {
            let rho = num(&mut f, c, "rho", 0.9);
            let eps = num(&mut f, c, "eps", 1e-7);
            unit_interval(c, field("rho"), rho);
            positive_finite(c, field("eps"), eps);
            OptimizerParams::Rmsprop {
                lr: lr.take().unwrap_or(0.001),
                rho,
                eps,
            }
        }
        other => {
            c.push(
                field("name"),
                format!("unknown optimizer {other:?}; expected one of: {OPTIMIZERS}"),
            );
            f.finish(&mut Checker::new());
            return default;
        }
    };
    let lr_value = match &params {
        OptimizerParams::Sgd { lr }
        | OptimizerParams::Momentum { lr, .. }
        | OptimizerParams::Nesterov { lr, .. }
        | OptimizerParams::Adam { lr, .. }
        | OptimizerParams::Adamw { lr, .. }
        | OptimizerParams::Rmsprop { lr, .. } => *lr,
    };
    if positive_finite(c, field_lr.clone(), lr_value) {
        c.require(lr_value <= 10.0, field_lr, "must be at most 10");
    }
    f.finish(c);
    params
}

fn schedule(value: Option<&Value>, epochs: u32, c: &mut Checker) -> Schedule {
    let path = "params.lr_schedule";
    let type_only;
    let value = match value {
        None => return Schedule::Constant,
        Some(Value::String(s)) => {
            type_only = serde_json::json!({ "type": s });
            &type_only
        }
        Some(v) => v,
    };
    let mut f = Fields::new(value, path, c);
    let kind: String = f.get("type", c).unwrap_or_else(|| "constant".into());
    let s = match kind.as_str() {
        "constant" => Schedule::Constant,
        "step" => {
            let step_size: u32 = f.get("step_size", c).unwrap_or(10);
            let gamma: f64 = f.get("gamma", c).unwrap_or(0.1);
            c.require(
                step_size >= 1,
                format!("{path}.step_size"),
                "must be at least 1",
            );
            positive_finite(c, format!("{path}.gamma"), gamma);
            Schedule::Step {
                step_size,
                gamma: gamma as f32,
            }
        }
        "cosine" => {
            let t_max: u32 = f.get("t_max", c).unwrap_or(epochs);
            let min_lr: f64 = f.get("min_lr", c).unwrap_or(0.0);
            c.require(t_max >= 1, format!("{path}.t_max"), "must be at least 1");
            non_negative_finite(c, format!("{path}.min_lr"), min_lr);
            Schedule::Cosine {
                t_max,
                min_lr: min_lr as f32,
            }
        }
        other => {
            c.push(
                format!("{path}.type"),
                format!("unknown schedule {other:?}; expected constant, step or cosine"),
            );
            f.finish(&mut Checker::new());
            return Schedule::Constant;
        }
    };
    f.finish(c);
    s
}

/// Problems between a model and a dataset, reported against `field` (`dataset` or `eval_dataset`).
pub fn check_compatibility(
    architecture: &Architecture,
    data: &DatasetShape,
    field: &str,
    c: &mut Checker,
) {
    let outputs = architecture.output_dim();
    let act = architecture.output_activation();
    c.require(
        data.features == architecture.input_dim,
        field,
        format!(
            "the model expects {} features; the {} has {}",
            architecture.input_dim,
            field.replace('_', " "),
            data.features
        ),
    );
    c.require(data.rows >= 1, field, "the dataset has no rows");
    match data.task {
        Task::Binary => {
            c.require(
                outputs == 1 || outputs == 2,
                field,
                format!(
                    "a binary task needs a model with 1 output (sigmoid) or 2 outputs (softmax); the model has {outputs}"
                ),
            );
            c.require(
                !(outputs == 1 && act == Activation::Softmax),
                field,
                "a softmax over a single output is always 1; use sigmoid for a binary task",
            );
        }
        Task::Multiclass => c.require(
            outputs >= 2 && outputs >= data.classes,
            field,
            format!(
                "a multiclass task with {} classes needs a model with {} outputs; the model has {outputs}",
                data.classes, data.classes
            ),
        ),
        Task::Regression => {
            c.require(
                outputs == 1,
                field,
                format!("a regression task needs a model with 1 output; the model has {outputs}"),
            );
            c.require(
                act != Activation::Softmax,
                field,
                "a softmax output cannot fit regression targets",
            );
        }
    }
}

/// The loss a task trains with when `params.loss` is not given.
pub fn default_loss(architecture: &Architecture, task: Task) -> Loss {
    match task {
        Task::Regression => Loss::Mse,
        Task::Binary if architecture.output_dim() == 1 => Loss::BinaryCrossentropy,
        Task::Binary | Task::Multiclass => Loss::CategoricalCrossentropy,
    }
}

/// Checked train parameters; the trainer only ever sees these.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidTrainParams {
    pub epochs: u32,
    pub batch_size: usize,
    pub optimizer: OptimizerParams,
    pub lr_schedule: Schedule,
    pub loss: Loss,
    pub regularization: Regularization,
    pub validation_split: f64,
    pub early_stopping: Option<ValidEarlyStopping>,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidEarlyStopping {
    pub patience: u32,
    pub monitor: String,
    pub min_delta: f64,
}

impl ValidEarlyStopping {
    pub fn to_config(&self) -> EarlyStopping {
        EarlyStopping {
            patience: self.patience,
            monitor: self.monitor.clone(),
            min_delta: self.min_delta,
        }
    }
}

/// Raw train parameters as the client sent them (types checked, values not yet).
#[derive(Debug, Default)]
pub struct TrainParams<'a> {
    pub epochs: Option<u32>,
    pub batch_size: Option<usize>,
    pub optimizer: Option<&'a Value>,
    pub lr_schedule: Option<&'a Value>,
    pub loss: Option<String>,
    pub regularization: Option<&'a Value>,
    pub validation_split: Option<f64>,
    pub early_stopping: Option<&'a Value>,
    pub seed: Option<u64>,
}

impl<'a> TrainParams<'a> {
    /// Reads the fields of `params`, rejecting unknown ones and wrong types.
    pub fn parse(params: &'a Value, c: &mut Checker) -> Self {
        let mut f = Fields::new(params, "params", c);
        let p = TrainParams {
            epochs: f.get("epochs", c),
            batch_size: f.get("batch_size", c),
            optimizer: f.raw("optimizer"),
            lr_schedule: f.raw("lr_schedule"),
            loss: f.get("loss", c),
            regularization: f.raw("regularization"),
            validation_split: f.get("validation_split", c),
            early_stopping: f.raw("early_stopping"),
            seed: f.get("seed", c),
        };
        f.finish(c);
        p
    }
}

/// Raw `params` → [`ValidTrainParams`], checked against the model and datasets.
pub fn validate_train(
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    eval: Option<&DatasetShape>,
    limits: &JobLimits,
) -> Result<ValidTrainParams, Invalid> {
    let mut c = Checker::new();
    let raw = TrainParams::parse(params, &mut c);

    let epochs = raw.epochs.unwrap_or(DEFAULT_EPOCHS);
    c.require(
        (1..=limits.max_epochs).contains(&epochs),
        "params.epochs",
        format!("must be between 1 and {}", limits.max_epochs),
    );
    let batch_size = raw.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    c.require(
        (1..=limits.max_batch_size).contains(&batch_size),
        "params.batch_size",
        format!("must be between 1 and {}", limits.max_batch_size),
    );
    let optimizer = optimizer(raw.optimizer, &mut c);
    let lr_schedule = schedule(raw.lr_schedule, epochs, &mut c);

    check_compatibility(architecture, dataset, "dataset", &mut c);
    if let Some(e) = eval {
        check_compatibility(architecture, e, "eval_dataset", &mut c);
        c.require(
            e.task == dataset.task,
            "eval_dataset",
            format!(
                "the evaluation dataset is {}; the training dataset is {}",
                e.task.as_str(),
                dataset.task.as_str()
            ),
        );
    }

    let loss = match raw.loss.as_deref() {
        None => default_loss(architecture, dataset.task),
        Some(name) => match Loss::parse(name) {
            Some(l) => l,
            None => {
                c.push(
                    "params.loss",
                    format!(
                        "unknown loss {name:?}; expected binary_crossentropy, categorical_crossentropy or mse"
                    ),
                );
                default_loss(architecture, dataset.task)
            }
        },
    };
    let outputs = architecture.output_dim();
    match (loss, dataset.task) {
        (Loss::BinaryCrossentropy, Task::Binary) => c.require(
            outputs == 1,
            "params.loss",
            "binary_crossentropy needs a model with 1 output; use categorical_crossentropy for 2 outputs",
        ),
        (Loss::CategoricalCrossentropy, Task::Binary | Task::Multiclass) => c.require(
            outputs >= 2,
            "params.loss",
            "categorical_crossentropy needs a model with one output per class",
        ),
        (Loss::Mse, Task::Regression) => {}
        (l, t) => c.push(
            "params.loss",
            format!("{} does not fit a {} dataset", l.as_str(), t.as_str()),
        ),
    }

    let mut regularization = Regularization::default();
    if let Some(v) = raw.regularization {
        let mut f = Fields::new(v, "params.regularization", &mut c);
        let l1: f64 = f.get("l1", &mut c).unwrap_or(0.0);
        let l2: f64 = f.get("l2", &mut c).unwrap_or(0.0);
        f.finish(&mut c);
        non_negative_finite(&mut c, "params.regularization.l1".into(), l1);
        non_negative_finite(&mut c, "params.regularization.l2".into(), l2);
        regularization = Regularization {
            l1: l1 as f32,
            l2: l2 as f32,
        };
    }

    let validation_split = raw.validation_split.unwrap_or(0.0);
    if unit_interval(&mut c, "params.validation_split".into(), validation_split)
        && validation_split > 0.0
    {
        let n_val = crate::nn::batch::validation_rows(dataset.rows, validation_split);
        c.require(
            n_val >= 1 && n_val < dataset.rows,
            "params.validation_split",
            format!(
                "leaves {n_val} of {} rows for validation; both parts need at least one row",
                dataset.rows
            ),
        );
    }

    let early_stopping = raw.early_stopping.map(|v| {
        let mut f = Fields::new(v, "params.early_stopping", &mut c);
        let patience: u32 = f.get("patience", &mut c).unwrap_or(DEFAULT_PATIENCE);
        let min_delta: f64 = f.get("min_delta", &mut c).unwrap_or(0.0);
        let default_monitor = if validation_split > 0.0 {
            "val_loss"
        } else {
            "loss"
        };
        let monitor: String = f
            .get("monitor", &mut c)
            .unwrap_or_else(|| default_monitor.into());
        f.finish(&mut c);
        non_negative_finite(&mut c, "params.early_stopping.min_delta".into(), min_delta);
        let mut allowed: Vec<&str> = vec!["loss"];
        allowed.extend(if dataset.task == Task::Regression {
            &["mse", "mae"][..]
        } else {
            &["accuracy"][..]
        });
        let with_val: Vec<String> = allowed
            .iter()
            .map(|m| m.to_string())
            .chain(
                allowed
                    .iter()
                    .filter(|_| validation_split > 0.0)
                    .map(|m| format!("val_{m}")),
            )
            .collect();
        c.require(
            with_val.contains(&monitor),
            "params.early_stopping.monitor",
            format!(
                "cannot monitor {monitor:?}; this job reports: {}",
                with_val.join(", ")
            ),
        );
        ValidEarlyStopping {
            patience,
            monitor,
            min_delta,
        }
    });

    let seed = raw.seed.unwrap_or(DEFAULT_SEED);
    c.finish(ValidTrainParams {
        epochs,
        batch_size,
        optimizer,
        lr_schedule,
        loss,
        regularization,
        validation_split,
        early_stopping,
        seed,
    })
}

/// Checked evaluate parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidEvaluateParams {
    /// Rows per inference batch (memory bound only; metrics do not depend on it).
    pub batch_size: usize,
}

pub fn validate_evaluate(
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    limits: &JobLimits,
) -> Result<ValidEvaluateParams, Invalid> {
    let mut c = Checker::new();
    let mut f = Fields::new(params, "params", &mut c);
    let batch_size: usize = f
        .get("batch_size", &mut c)
        .unwrap_or(DEFAULT_EVAL_BATCH_SIZE.min(limits.max_batch_size));
    f.finish(&mut c);
    c.require(
        (1..=limits.max_batch_size).contains(&batch_size),
        "params.batch_size",
        format!("must be between 1 and {}", limits.max_batch_size),
    );
    check_compatibility(architecture, dataset, "dataset", &mut c);
    c.finish(ValidEvaluateParams { batch_size })
}

/// Serialises checked parameters as the normalised JSON stored with the job.
pub fn to_json<T: Serialize>(params: &T) -> Value {
    serde_json::to_value(params).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed_arch() -> Architecture {
        serde_json::from_str(
            r#"{"input_dim": 100, "layers": [
                {"type": "dense", "units": 64, "activation": "relu"},
                {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 32, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        )
        .expect("parses")
    }

    fn binary(features: usize) -> DatasetShape {
        DatasetShape {
            rows: 1000,
            features,
            classes: 2,
            task: Task::Binary,
        }
    }

    fn fields(params: Value) -> Vec<String> {
        let err = validate_train(
            &params,
            &seed_arch(),
            &binary(100),
            None,
            &JobLimits::default(),
        )
        .expect_err("must be rejected");
        err.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn empty_params_fill_in_every_default() {
        let p = validate_train(
            &json!({}),
            &seed_arch(),
            &binary(100),
            None,
            &JobLimits::default(),
        )
        .expect("valid");
        let v = to_json(&p);
        assert_eq!(v["epochs"], 10);
        assert_eq!(v["batch_size"], 32);
        assert_eq!(
            v["optimizer"],
            json!({"name": "adam", "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8})
        );
        assert_eq!(v["lr_schedule"], json!({"type": "constant"}));
        assert_eq!(v["loss"], "binary_crossentropy");
        assert_eq!(v["seed"], 42);
        assert_eq!(v["validation_split"], 0.0);
        // The normalised params are themselves valid and normalise to themselves.
        let again = validate_train(&v, &seed_arch(), &binary(100), None, &JobLimits::default())
            .expect("normalised params are valid");
        assert_eq!(to_json(&again), v);
    }

    #[test]
    fn bad_train_params_each_name_their_field() {
        assert_eq!(fields(json!({"epochs": 0})), ["params.epochs"]);
        assert_eq!(fields(json!({"epochs": 1_000_000})), ["params.epochs"]);
        assert_eq!(fields(json!({"epochs": "ten"})), ["params.epochs"]);
        assert_eq!(fields(json!({"batch_size": 0})), ["params.batch_size"]);
        assert_eq!(fields(json!({"batch_size": -3})), ["params.batch_size"]);
        assert_eq!(
            fields(json!({"optimizer": {"name": "adam", "lr": -0.1}})),
            ["params.optimizer.lr"]
        );
        assert_eq!(
            fields(json!({"optimizer": {"name": "adam", "lr": "fast"}})),
            ["params.optimizer.lr"]
        );
        assert_eq!(
            fields(json!({"optimizer": {"name": "adagrad"}})),
            ["params.optimizer.name"]
        );
        assert_eq!(
            fields(json!({"optimizer": {"name": "sgd", "beta1": 0.9}})),
            ["params.optimizer.beta1"]
        );
        assert_eq!(
            fields(json!({"optimizer": {"name": "adam", "beta2": 1.0}})),
            ["params.optimizer.beta2"]
        );
        assert_eq!(
            fields(json!({"validation_split": 1.0})),
            ["params.validation_split"]
        );
        assert_eq!(
            fields(json!({"validation_split": -0.1})),
            ["params.validation_split"]
        );
        assert_eq!(fields(json!({"loss": "hinge"})), ["params.loss"]);
        assert_eq!(fields(json!({"loss": "mse"})), ["params.loss"]);
        assert_eq!(
            fields(json!({"regularization": {"l2": -1}})),
            ["params.regularization.l2"]
        );
        assert_eq!(
            fields(json!({"lr_schedule": {"type": "step", "step_size": 0}})),
            ["params.lr_schedule.step_size"]
        );
        assert_eq!(
            fields(json!({"lr_schedule": "exponential"})),
            ["params.lr_schedule.type"]
        );
        assert_eq!(
            fields(json!({"early_stopping": {"monitor": "val_loss"}})),
            ["params.early_stopping.monitor"]
        );
        assert_eq!(
            fields(json!({"early_stopping": {"patience": 2, "mode": "min"}})),
            ["params.early_stopping.mode"]
        );
        assert_eq!(fields(json!({"epochz": 3})), ["params.epochz"]);
        assert_eq!(fields(json!([1, 2])), ["params"]);
        // Several problems are reported together.
        let mut all = fields(json!({"epochs": 0, "batch_size": 0, "seed": "x"}));
        all.sort();
        assert_eq!(all, ["params.batch_size", "params.epochs", "params.seed"]);
    }

    #[test]
    fn a_model_that_does_not_fit_the_dataset_is_rejected_naming_the_dataset() {
        let err = validate_train(
            &json!({}),
            &seed_arch(),
            &binary(20),
            None,
            &JobLimits::default(),
        )
        .expect_err("feature mismatch");
        assert_eq!(err.0[0].field, "dataset");
        assert!(
            err.0[0]
                .message
                .contains("expects 100 features; the dataset has 20"),
            "{err}"
        );

        let multi = DatasetShape {
            rows: 100,
            features: 100,
            classes: 10,
            task: Task::Multiclass,
        };
        let err = validate_train(
            &json!({}),
            &seed_arch(),
            &multi,
            None,
            &JobLimits::default(),
        )
        .expect_err("one output cannot hold ten classes");
        assert!(
            err.0
                .iter()
                .any(|e| e.field == "dataset" && e.message.contains("10 outputs")),
            "{err}"
        );

        let eval = DatasetShape {
            features: 3,
            ..binary(3)
        };
        let err = validate_train(
            &json!({}),
            &seed_arch(),
            &binary(100),
            Some(&eval),
            &JobLimits::default(),
        )
        .expect_err("eval width mismatch");
        assert_eq!(err.0[0].field, "eval_dataset");
    }

    #[test]
    fn optimizer_shorthand_and_validation_defaults_are_accepted() {
        let p = validate_train(
            &json!({"optimizer": "nesterov", "validation_split": 0.2, "early_stopping": {}, "lr_schedule": "cosine"}),
            &seed_arch(),
            &binary(100),
            None,
            &JobLimits::default(),
        )
        .expect("valid");
        assert_eq!(
            p.optimizer,
            OptimizerParams::Nesterov {
                lr: 0.01,
                momentum: 0.9
            }
        );
        assert_eq!(p.early_stopping.expect("set").monitor, "val_loss");
        assert_eq!(
            p.lr_schedule,
            Schedule::Cosine {
                t_max: 10,
                min_lr: 0.0
            }
        );
    }

    #[test]
    fn evaluate_params_accept_an_empty_object_and_reject_unknown_fields() {
        let ok = validate_evaluate(
            &json!({}),
            &seed_arch(),
            &binary(100),
            &JobLimits::default(),
        )
        .expect("valid");
        assert_eq!(ok.batch_size, DEFAULT_EVAL_BATCH_SIZE);
        let err = validate_evaluate(
            &json!({"bacth_size": 3}),
            &seed_arch(),
            &binary(100),
            &JobLimits::default(),
        )
        .expect_err("typo");
        assert_eq!(err.0[0].field, "params.bacth_size");
    }
}
