//! Prune parameters: [`validate_prune`] → [`ValidPruneParams`].
//!
//! ```json
//! {"method": "magnitude" | "neurons",          // default magnitude
//!  "sparsity": 0.9,                            // fraction removed, [0, 1); default 0.5
//!  "scope": "global" | "per_layer",            // default global
//!  "layers": {"3": 0.5},                       // per-layer sparsity overrides, keyed by layer index
//!  "criterion": "l1" | "l2" | "activation",    // neurons only; default l2
//!  "schedule": "one_shot" | {"type": "polynomial", "initial_sparsity": 0,
//!               "begin_step": 0, "end_step": …, "frequency": …},
//!  "fine_tune": {…train params…}}              // absent: no fine-tuning
//! ```
//! Magnitude pruning zeroes weights of every dense and conv2d layer (biases and
//! batch-norm scales are never pruned; the output layer only when it has an
//! override). Neuron pruning removes whole hidden units of dense networks. The
//! polynomial schedule (Zhu & Gupta 2017) prunes during fine-tuning, so it needs
//! `fine_tune`; by default it runs from step 0 to 75 % of the fine-tuning steps,
//! pruning about 20 times.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Fields, choice, unit_interval};
use super::fine_tune::{fine_tune, steps_per_epoch};
use super::train::ValidTrainParams;
use crate::{DatasetShape, JobLimits};
use kiln_nn::spec::{Architecture, LayerSpec};
use kiln_nn::validation::{Checker, Invalid};

pub const DEFAULT_SPARSITY: f64 = 0.5;
/// Pruning events a default polynomial schedule spreads over its window.
const DEFAULT_PRUNING_EVENTS: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneMethod {
    Magnitude,
    Neurons,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneScope {
    Global,
    PerLayer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitRanking {
    L1,
    L2,
    Activation,
}

/// When pruning happens. Steps count optimizer steps of the fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PruneScheduleParams {
    OneShot,
    Polynomial {
        initial_sparsity: f64,
        begin_step: u64,
        end_step: u64,
        frequency: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidPruneParams {
    pub method: PruneMethod,
    pub sparsity: f64,
    pub scope: PruneScope,
    /// Layer index → that layer's sparsity.
    pub layers: BTreeMap<usize, f64>,
    /// How units are ranked; only for method `neurons`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criterion: Option<UnitRanking>,
    pub schedule: PruneScheduleParams,
    pub fine_tune: Option<ValidTrainParams>,
}

/// Layers with a kernel `(index, units or filters)`, in order: dense layers,
/// and conv2d layers for magnitude pruning, which ranks their weights alike.
fn kernel_layers(architecture: &Architecture, method: PruneMethod) -> Vec<(usize, usize)> {
    architecture
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l {
            LayerSpec::Dense { units, .. } => Some((i, *units)),
            LayerSpec::Conv2d { filters, .. } if method == PruneMethod::Magnitude => {
                Some((i, *filters))
            }
            _ => None,
        })
        .collect()
}

/// Units a layer of `units` keeps at `sparsity` (rounded to nearest, as the pruner does).
fn kept_units(units: usize, sparsity: f64) -> usize {
    units - ((sparsity * units as f64).round() as usize).min(units)
}

pub fn validate_prune(
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    eval: Option<&DatasetShape>,
    limits: &JobLimits,
) -> Result<ValidPruneParams, Invalid> {
    let mut c = Checker::new();
    let mut f = Fields::new(params, "params", &mut c);
    let method = choice(
        f.get("method", &mut c),
        "params.method",
        &[
            ("magnitude", PruneMethod::Magnitude),
            ("neurons", PruneMethod::Neurons),
        ],
        PruneMethod::Magnitude,
        &mut c,
    );
    let sparsity: f64 = f.get("sparsity", &mut c).unwrap_or(DEFAULT_SPARSITY);
    let sparsity_ok = unit_interval(&mut c, "params.sparsity".into(), sparsity);
    let scope = choice(
        f.get("scope", &mut c),
        "params.scope",
        &[
            ("global", PruneScope::Global),
            ("per_layer", PruneScope::PerLayer),
        ],
        PruneScope::Global,
        &mut c,
    );
    let raw_layers: Option<BTreeMap<String, f64>> = f.get("layers", &mut c);
    let raw_criterion: Option<String> = f.get("criterion", &mut c);
    let raw_schedule = f.raw("schedule");
    let raw_fine_tune = f.raw("fine_tune");
    f.finish(&mut c);

    let criterion = choice(
        raw_criterion.clone(),
        "params.criterion",
        &[
            ("l1", UnitRanking::L1),
            ("l2", UnitRanking::L2),
            ("activation", UnitRanking::Activation),
        ],
        UnitRanking::L2,
        &mut c,
    );
    if raw_criterion.is_some() && method == PruneMethod::Magnitude {
        c.push(
            "params.criterion",
            "ranks units for method \"neurons\"; magnitude pruning ranks weights by |w|",
        );
    }

    if method == PruneMethod::Neurons && architecture.has_spatial_layers() {
        c.push(
            "params.method",
            "removing units (\"neurons\") does not run on convolutional networks yet; \"magnitude\" prunes their conv2d and dense weights",
        );
    }
    let dense = kernel_layers(architecture, method);
    let output = dense.last().map(|&(i, _)| i);
    let hidden: Vec<(usize, usize)> = dense
        .iter()
        .copied()
        .filter(|&(i, _)| Some(i) != output)
        .collect();

    let mut layers = BTreeMap::new();
    for (key, s) in raw_layers.unwrap_or_default() {
        let field = format!("params.layers.{key}");
        let Ok(index) = key.parse::<usize>() else {
            c.push(
                field,
                "keys are layer indices (0-based, counting dropout layers)",
            );
            continue;
        };
        if !unit_interval(&mut c, field.clone(), s) {
            continue;
        }
        match dense.iter().find(|&&(i, _)| i == index) {
            None => c.push(
                field,
                format!(
                    "layer {index} is not a {} layer of this model",
                    match method {
                        PruneMethod::Magnitude => "dense or conv2d",
                        PruneMethod::Neurons => "dense",
                    }
                ),
            ),
            Some(&(i, _)) if method == PruneMethod::Neurons && Some(i) == output => c.push(
                field,
                "the output layer's units are the model's outputs and cannot be removed",
            ),
            Some(&(_, units)) if method == PruneMethod::Neurons && kept_units(units, s) == 0 => c
                .push(
                    field,
                    format!("would remove all {units} units of layer {index}"),
                ),
            Some(_) => {
                layers.insert(index, s);
            }
        }
    }

    // A model must have something to prune.
    let prunable = match method {
        PruneMethod::Magnitude => !hidden.is_empty() || !layers.is_empty(),
        PruneMethod::Neurons => !hidden.is_empty(),
    };
    c.require(
        prunable,
        "model",
        match method {
            PruneMethod::Magnitude => {
                "the model has no prunable layer: only its output layer has weights (give params.layers to prune it)"
            }
            PruneMethod::Neurons => {
                "the model has no hidden dense layer whose units could be removed"
            }
        },
    );
    if method == PruneMethod::Neurons && scope == PruneScope::PerLayer && sparsity_ok {
        for &(i, units) in hidden.iter().filter(|(i, _)| !layers.contains_key(i)) {
            c.require(
                kept_units(units, sparsity) > 0,
                "params.sparsity",
                format!("would remove all {units} units of layer {i}"),
            );
        }
    }

    let fine_tune = fine_tune(raw_fine_tune, architecture, dataset, eval, limits, &mut c);
    let schedule = schedule(
        raw_schedule,
        sparsity,
        fine_tune.as_ref(),
        dataset.rows,
        &mut c,
    );

    c.finish(ValidPruneParams {
        method,
        sparsity,
        scope,
        layers,
        criterion: (method == PruneMethod::Neurons).then_some(criterion),
        schedule,
        fine_tune,
    })
}

/// `"one_shot"`, `"polynomial"` or `{"type": …, …}`; the polynomial window defaults
/// to the first 75 % of the fine-tuning steps.
fn schedule(
    raw: Option<&Value>,
    sparsity: f64,
    fine_tune: Option<&ValidTrainParams>,
    rows: usize,
    c: &mut Checker,
) -> PruneScheduleParams {
    let (kind, fields) = match raw {
        None => return PruneScheduleParams::OneShot,
        Some(Value::String(s)) => (s.clone(), None),
        Some(v @ Value::Object(m)) => match m.get("type").and_then(Value::as_str) {
            Some(t) => (t.to_string(), Some(v)),
            None => {
                c.push(
                    "params.schedule.type",
                    "required: \"one_shot\" or \"polynomial\"",
                );
                return PruneScheduleParams::OneShot;
            }
        },
        Some(_) => {
            c.push(
                "params.schedule",
                "must be \"one_shot\", \"polynomial\" or an object with a type",
            );
            return PruneScheduleParams::OneShot;
        }
    };
    let mut f = fields.map(|v| Fields::new(v, "params.schedule", c));
    if let Some(f) = &mut f {
        f.raw("type");
    }
    let schedule = match kind.as_str() {
        "one_shot" => PruneScheduleParams::OneShot,
        "polynomial" => {
            let mut get = |key: &'static str, c: &mut Checker| -> Option<f64> {
                f.as_mut().and_then(|f| f.get::<f64>(key, c))
            };
            let initial = get("initial_sparsity", c).unwrap_or(0.0);
            let begin = get("begin_step", c);
            let end = get("end_step", c);
            let frequency = get("frequency", c);
            let total = fine_tune.map_or(0, |p| steps_per_epoch(p, rows) * p.epochs as u64);
            if fine_tune.is_none() {
                c.push(
                    "params.schedule",
                    "polynomial pruning happens while fine-tuning; give params.fine_tune",
                );
            }
            if !(initial.is_finite() && (0.0..=sparsity).contains(&initial)) {
                c.push(
                    "params.schedule.initial_sparsity",
                    format!("must be between 0 and params.sparsity ({sparsity})"),
                );
            }
            let step = |v: Option<f64>, field: &str, default: u64, c: &mut Checker| -> u64 {
                match v {
                    None => default,
                    Some(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 => v as u64,
                    Some(_) => {
                        c.push(field, "must be a non-negative whole number of steps");
                        default
                    }
                }
            };
            let begin = step(begin, "params.schedule.begin_step", 0, c);
            let end = step(
                end,
                "params.schedule.end_step",
                begin.max((total * 3 / 4).max(begin + 1)),
                c,
            );
            if fine_tune.is_some() {
                c.require(
                    end > begin && end <= total,
                    "params.schedule.end_step",
                    format!(
                        "must be after begin_step ({begin}) and within the {total} fine-tuning steps"
                    ),
                );
            }
            let default_freq = ((end.saturating_sub(begin)) / DEFAULT_PRUNING_EVENTS).max(1);
            let frequency = step(frequency, "params.schedule.frequency", default_freq, c);
            c.require(
                frequency >= 1,
                "params.schedule.frequency",
                "must be at least 1 step",
            );
            PruneScheduleParams::Polynomial {
                initial_sparsity: initial,
                begin_step: begin,
                end_step: end,
                frequency: frequency.max(1),
            }
        }
        other => {
            c.push(
                if fields.is_some() {
                    "params.schedule.type"
                } else {
                    "params.schedule"
                },
                format!("unknown schedule {other:?}; expected one_shot or polynomial"),
            );
            PruneScheduleParams::OneShot
        }
    };
    if let Some(f) = f {
        f.finish(c);
    }
    schedule
}
