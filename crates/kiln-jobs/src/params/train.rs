//! Train parameters: raw [`TrainParams`] → [`validate_train`] → [`ValidTrainParams`], with the model/dataset fit checks and the default loss.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Fields, non_negative_finite, unit_interval};
use super::optimizer::{OptimizerParams, optimizer};
use super::schedule::schedule;
use super::{DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_PATIENCE, DEFAULT_SEED};
use crate::{DatasetShape, JobLimits};
use kiln_nn::data::Task;
use kiln_nn::spec::{Activation, Architecture};
use kiln_nn::train::loss::Loss;
use kiln_nn::train::regularization::Regularization;
use kiln_nn::train::schedule::Schedule;
use kiln_nn::train::trainer::EarlyStopping;
use kiln_nn::validation::{Checker, Invalid};

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
    if let (Some(model), Some(images)) = (&architecture.input_shape, &data.input_shape) {
        c.require(
            model == images,
            field,
            format!(
                "the model expects images of shape {model:?} (channels, height, width); the {}'s are {images:?}",
                field.replace('_', " ")
            ),
        );
    }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        let n_val = kiln_nn::train::batch::validation_rows(dataset.rows, validation_split);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{binary, fields, seed_arch};
    use super::*;
    use crate::params::to_json;

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
            input_shape: None,
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
    fn a_model_and_dataset_of_different_image_shapes_do_not_fit() {
        let cnn: Architecture = serde_json::from_value(json!({
            "input_shape": [1, 4, 4],
            "layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
                       {"type": "flatten"},
                       {"type": "dense", "units": 1, "activation": "sigmoid"}]}))
        .unwrap();
        let images = |shape: Vec<usize>| DatasetShape {
            features: 16,
            input_shape: Some(shape),
            ..binary(16)
        };
        let limits = JobLimits::default();
        let ok = validate_train(&json!({}), &cnn, &images(vec![1, 4, 4]), None, &limits);
        assert!(ok.is_ok(), "{:?}", ok.err());
        // Flat rows of the right width are accepted: the model reads them as its shape.
        assert!(validate_train(&json!({}), &cnn, &binary(16), None, &limits).is_ok());
        let err = validate_train(&json!({}), &cnn, &images(vec![4, 2, 2]), None, &limits)
            .expect_err("same size, other shape");
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].field, "dataset");
        assert!(err.0[0].message.contains("[1, 4, 4]"), "{err}");
        assert!(err.0[0].message.contains("[4, 2, 2]"), "{err}");
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
}
