//! The fit loop: epochs of shuffled mini-batches, per-epoch metrics, early
//! stopping, cancellation.
//!
//! Determinism: one ChaCha8 stream seeded with `seed` drives the validation
//! split, every epoch's shuffle and every dropout mask, and every element of a
//! matrix product or an Adam update is computed by one thread in a fixed order
//! (large ones are split over the cores, see [`crate::kernels::parallel`]), so the same
//! seed and data give bit-identical weights on the same machine.
//!
//! Reported per epoch (Keras' names): `loss` (mean over the epoch's batches,
//! including L1/L2 penalties, in training mode) and `accuracy` for
//! classification or `mse`/`mae` for regression; with a validation split also
//! `val_loss` (with penalties) and `val_accuracy` or `val_mse`/`val_mae`, in
//! inference mode.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::Task;
use crate::measure::evaluation::{self, Head};
use crate::model::{Sequential, Workspace};
use crate::train::batch;
use crate::train::loss::{Loss, class_index};
use crate::train::optim::{Optimizer, OptimizerConfig};
use crate::train::regularization::Regularization;
use crate::train::schedule::Schedule;

/// Stop when `monitor` has not improved by more than `min_delta` for
/// `patience` epochs; the best weights are restored when training ends.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    pub patience: u32,
    /// A metric name from the per-epoch report, e.g. `val_loss`, `accuracy`.
    pub monitor: String,
    pub min_delta: f64,
}

impl EarlyStopping {
    /// Accuracy-like metrics improve upwards, losses and errors downwards.
    pub fn maximize(&self) -> bool {
        self.monitor.ends_with("accuracy") || self.monitor.ends_with("r2")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    pub epochs: u32,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    pub loss: Loss,
    pub regularization: Regularization,
    /// Fraction of rows held out for validation, in `[0, 1)`.
    pub validation_split: f64,
    pub early_stopping: Option<EarlyStopping>,
    pub seed: u64,
    pub task: Task,
}

/// One row of the training history.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: u32,
    pub lr: f32,
    pub values: Vec<(&'static str, f64)>,
}

impl EpochMetrics {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FitOutcome {
    pub epochs_run: u32,
    pub history: Vec<EpochMetrics>,
    pub stopped_early: bool,
    /// The epoch whose weights the model holds when early stopping restored them.
    pub best_epoch: Option<u32>,
    /// Rows (of the `x` given to [`fit`]) held out for validation.
    pub validation_rows: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("cancelled")]
    Cancelled,
    #[error(
        "the loss became {value} at epoch {epoch}, batch {batch}: training diverged; try a lower learning rate"
    )]
    Diverged {
        epoch: u32,
        batch: usize,
        value: f64,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Hooks into every optimizer step, for training that constrains the weights:
/// gradual pruning tightens masks every few steps, weight sharing turns the
/// members' gradients into centroid updates and writes the centroids back.
pub trait StepHook {
    /// After gradients (with regularization) are computed, before the optimizer
    /// step. `step` counts optimizer steps from 0.
    fn before_update(&mut self, _step: u64, _model: &mut Sequential) {}
    /// After the optimizer step (masks already re-applied).
    fn after_update(&mut self, _step: u64, _model: &mut Sequential) {}
}

/// The hook plain training uses.
pub struct NoHook;
impl StepHook for NoHook {}

/// What a batch's loss is, when it is not just [`FitConfig::loss`] on the labels:
/// distillation adds the teacher's soft targets, which it finds by row index.
pub trait Objective {
    /// Mean loss of the batch, writing `∂(mean loss)/∂input` into `grad`.
    /// `rows` index the `x` given to the fit; `input` is the head's logits or
    /// outputs, as [`Loss::uses_logits`] says for the configured loss; `y` are
    /// the batch's labels.
    fn value_and_grad(
        &mut self,
        rows: &[usize],
        input: ArrayView2<f32>,
        y: ArrayView1<f32>,
        grad: ArrayViewMut2<f32>,
    ) -> f64;
}

/// The ways a fit can be extended; [`Hooks::default`] is plain training.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Called around every optimizer step.
    pub step: Option<&'a mut dyn StepHook>,
    /// Replaces the configured loss on the training batches. Validation
    /// metrics still use the configured loss on the labels.
    pub objective: Option<&'a mut dyn Objective>,
}

/// Trains `model` in place on `(x, y)`.
///
/// `on_epoch` sees every epoch's metrics; `cancelled` is polled before every
/// batch and stops training with [`FitError::Cancelled`].
pub fn fit(
    model: &mut Sequential,
    x: ArrayView2<f32>,
    y: ArrayView1<f32>,
    cfg: &FitConfig,
    on_epoch: &mut dyn FnMut(&EpochMetrics),
    cancelled: &dyn Fn() -> bool,
) -> Result<FitOutcome, FitError> {
    fit_with_hook(model, x, y, cfg, on_epoch, &mut NoHook, cancelled)
}

/// [`fit`] with a [`StepHook`] called around every optimizer step.
pub fn fit_with_hook(
    model: &mut Sequential,
    x: ArrayView2<f32>,
    y: ArrayView1<f32>,
    cfg: &FitConfig,
    on_epoch: &mut dyn FnMut(&EpochMetrics),
    hook: &mut dyn StepHook,
    cancelled: &dyn Fn() -> bool,
) -> Result<FitOutcome, FitError> {
    let hooks = Hooks {
        step: Some(hook),
        objective: None,
    };
    fit_with(model, x, y, cfg, on_epoch, hooks, cancelled)
}

/// [`fit`] with any of [`Hooks`].
pub fn fit_with(
    model: &mut Sequential,
    x: ArrayView2<f32>,
    y: ArrayView1<f32>,
    cfg: &FitConfig,
    on_epoch: &mut dyn FnMut(&EpochMetrics),
    hooks: Hooks<'_>,
    cancelled: &dyn Fn() -> bool,
) -> Result<FitOutcome, FitError> {
    let Hooks {
        step,
        mut objective,
    } = hooks;
    let mut no_hook = NoHook;
    let hook: &mut dyn StepHook = step.unwrap_or(&mut no_hook);
    if x.ncols() != model.input_dim() {
        return Err(FitError::Invalid(format!(
            "the model expects {} features; the data has {}",
            model.input_dim(),
            x.ncols()
        )));
    }
    if x.nrows() != y.len() || x.nrows() == 0 {
        return Err(FitError::Invalid(format!(
            "{} rows of features and {} targets",
            x.nrows(),
            y.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (mut train_idx, val_idx) =
        batch::train_validation_split(x.nrows(), cfg.validation_split, &mut rng);
    if train_idx.is_empty() {
        return Err(FitError::Invalid("no rows left for training".into()));
    }
    let val = (!val_idx.is_empty()).then(|| evaluation::gather_rows(x, y, &val_idx));
    let head = Head::new(model, cfg.task);
    let bs = cfg.batch_size.clamp(1, train_idx.len());
    let mut ws = Workspace::new(model, bs);
    let mut opt = Optimizer::new(cfg.optimizer);
    let uses_logits = cfg.loss.uses_logits(head.activation);
    let base_lr = cfg.optimizer.lr();
    let regression = cfg.task == Task::Regression;

    let mut history = Vec::new();
    let mut best: Option<(f64, u32, Vec<ndarray::ArrayD<f32>>)> = None;
    let mut waited = 0u32;
    let mut stopped_early = false;

    for epoch in 0..cfg.epochs {
        let lr = cfg.schedule.lr_at(base_lr, epoch);
        batch::shuffle(&mut train_idx, &mut rng);
        let (mut loss_sum, mut hits, mut abs_sum, mut sq_sum) = (0.0f64, 0usize, 0.0f64, 0.0f64);
        for (b, chunk) in train_idx.chunks(bs).enumerate() {
            if cancelled() {
                return Err(FitError::Cancelled);
            }
            let n = chunk.len();
            ws.gather(x, y, chunk);
            model.forward_train(&mut ws, n, &mut rng);
            {
                let out = ws.output(n);
                let yb = ws.y.slice(ndarray::s![..n]);
                if regression {
                    for (row, &t) in out.axis_iter(Axis(0)).zip(yb) {
                        let d = (row[0] - t) as f64;
                        abs_sum += d.abs();
                        sq_sum += d * d;
                    }
                } else {
                    for (row, &t) in out.axis_iter(Axis(0)).zip(yb) {
                        if head.predicted_class(row) == class_index(t, head.outputs.max(2)) {
                            hits += 1;
                        }
                    }
                }
            }
            let (z, a, g, yb) = ws.head_mut(n);
            let input = if uses_logits { z } else { a };
            let batch_loss = match objective.as_deref_mut() {
                Some(o) => o.value_and_grad(chunk, input, yb, g),
                None => cfg.loss.value_and_grad(input, yb, g),
            };
            model.backward(&mut ws, n, uses_logits);
            let penalty = cfg.regularization.penalty(model);
            let total = batch_loss + penalty;
            if !total.is_finite() {
                return Err(FitError::Diverged {
                    epoch: epoch + 1,
                    batch: b + 1,
                    value: total,
                });
            }
            cfg.regularization.add_gradients(model);
            let step = opt.steps();
            hook.before_update(step, model);
            opt.step(model.params_mut(), lr);
            hook.after_update(step, model);
            loss_sum += total * n as f64;
        }
        let rows = train_idx.len() as f64;
        let mut values: Vec<(&'static str, f64)> = vec![("loss", loss_sum / rows)];
        if regression {
            values.push(("mse", sq_sum / rows));
            values.push(("mae", abs_sum / rows));
        } else {
            values.push(("accuracy", hits as f64 / rows));
        }
        if let Some((vx, vy)) = &val {
            let ev = evaluation::evaluate(
                model,
                vx.view(),
                vy.view(),
                cfg.task,
                head.outputs.max(2),
                cfg.loss,
                1024,
            );
            let val_loss = ev.loss + cfg.regularization.penalty(model);
            if !val_loss.is_finite() {
                return Err(FitError::Diverged {
                    epoch: epoch + 1,
                    batch: 0,
                    value: val_loss,
                });
            }
            values.push(("val_loss", val_loss));
            if let Some(r) = &ev.regression {
                values.push(("val_mse", r.mse));
                values.push(("val_mae", r.mae));
            }
            if let Some(c) = &ev.classification {
                values.push(("val_accuracy", c.accuracy));
            }
        }
        let report = EpochMetrics {
            epoch: epoch + 1,
            lr,
            values,
        };
        on_epoch(&report);
        let monitored = cfg
            .early_stopping
            .as_ref()
            .and_then(|es| report.get(&es.monitor).map(|v| (es, v)));
        history.push(report);
        if let Some((es, value)) = monitored {
            let signed = if es.maximize() { -value } else { value };
            let improved = match &best {
                None => true,
                Some((b, _, _)) => signed < *b - es.min_delta,
            };
            if improved {
                best = Some((signed, epoch + 1, model.snapshot()));
                waited = 0;
            } else {
                waited += 1;
                if waited >= es.patience.max(1) {
                    stopped_early = true;
                    break;
                }
            }
        }
    }
    let best_epoch = best.map(|(_, epoch, weights)| {
        model.restore(&weights);
        epoch
    });
    Ok(FitOutcome {
        epochs_run: history.len() as u32,
        history,
        stopped_early,
        best_epoch,
        validation_rows: val_idx,
    })
}
