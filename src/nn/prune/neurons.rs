//! Structured pruning: remove whole hidden units, physically.
//!
//! Unlike masks, removing a unit shrinks `W` to `[in, kept]` and the next
//! layer's `W` to `[kept, out]`, so the smaller model is faster and smaller on
//! disk with any runtime. Units are ranked by a score; the lowest go.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use super::PruneError;
use super::magnitude::{Scope, target};
use crate::nn::activation::{self, Activation};
use crate::nn::dense::Dense;
use crate::nn::layer::Layer;
use crate::nn::model::Sequential;
use crate::nn::surgery;

/// How a unit's importance is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitCriterion {
    /// L1 norm of the unit's incoming weight column.
    L1,
    /// L2 norm of the unit's incoming weight column.
    L2,
    /// Mean `|a_j|` over the rows of a dataset: what the next layer actually sees.
    Activation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NeuronConfig {
    /// Fraction of hidden units to remove, in `[0, 1]`.
    pub sparsity: f32,
    pub scope: Scope,
    /// Layer index → that layer's own fraction; such layers stay out of the
    /// global ranking.
    pub overrides: BTreeMap<usize, f32>,
    pub criterion: UnitCriterion,
}

/// Rows per forward pass when scoring by activation, bounding temporary memory.
const CHUNK: usize = 1024;

/// Dense layers whose units can be removed: all but the output layer, whose
/// units are the model's outputs.
pub fn hidden_layers(model: &Sequential) -> Vec<usize> {
    let dense: Vec<usize> = model.dense_layers().map(|(i, _)| i).collect();
    dense[..dense.len().saturating_sub(1)].to_vec()
}

/// One score per unit of dense layer `layer` (higher = more important); empty
/// when `layer` is not dense. `x` is read only for [`UnitCriterion::Activation`],
/// where data of the wrong width or without rows scores every unit 0
/// ([`select_units`] checks the data first).
pub fn unit_scores(
    model: &Sequential,
    layer: usize,
    criterion: UnitCriterion,
    x: ArrayView2<f32>,
) -> Array1<f32> {
    let Some(d) = model.layers().get(layer).and_then(Layer::as_dense) else {
        return Array1::zeros(0);
    };
    match criterion {
        UnitCriterion::L1 | UnitCriterion::L2 => norm_scores(d, criterion),
        UnitCriterion::Activation => activation_scores(model, &[layer], x)
            .pop()
            .unwrap_or_else(|| Array1::zeros(d.units())),
    }
}

/// L1 or L2 norm of each incoming weight column (L2 for any other criterion).
pub(crate) fn norm_scores(d: &Dense, criterion: UnitCriterion) -> Array1<f32> {
    d.weight.value.map_axis(Axis(0), |col| match criterion {
        UnitCriterion::L1 => col.iter().map(|w| w.abs()).sum(),
        _ => col.iter().map(|w| w * w).sum::<f32>().sqrt(),
    })
}

/// Mean `|a_j|` of every unit of each of `layers` (ascending dense indices),
/// from one inference pass over `x` in chunks of [`CHUNK`] rows.
fn activation_scores(model: &Sequential, layers: &[usize], x: ArrayView2<f32>) -> Vec<Array1<f32>> {
    let mut sums: Vec<Array1<f64>> = layers
        .iter()
        .map(|&l| {
            let units = model
                .layers()
                .get(l)
                .and_then(Layer::as_dense)
                .map_or(0, Dense::units);
            Array1::zeros(units)
        })
        .collect();
    let last = layers.iter().copied().max();
    if x.ncols() != model.input_dim() || x.nrows() == 0 {
        return sums.into_iter().map(|s| s.mapv(|_| 0.0f32)).collect();
    }
    let Some(last) = last else { return Vec::new() };
    let mut start = 0;
    while start < x.nrows() {
        let stop = (start + CHUNK).min(x.nrows());
        let mut h: Option<Array2<f32>> = None;
        for (i, layer) in model.layers()[..=last].iter().enumerate() {
            let Layer::Dense(d) = layer else { continue };
            let input = h
                .as_ref()
                .map_or(x.slice(s![start..stop, ..]), |h| h.view());
            let a = d.forward(input);
            if let Some(k) = layers.iter().position(|&l| l == i) {
                for row in a.rows() {
                    sums[k].zip_mut_with(&row, |s, &v| *s += v.abs() as f64);
                }
            }
            h = Some(a);
        }
        start = stop;
    }
    let rows = x.nrows() as f64;
    sums.into_iter()
        .map(|s| s.mapv(|v| (v / rows) as f32))
        .collect()
}

/// The units to keep (ascending) of every hidden dense layer.
///
/// Per layer (and for overrides) the `round(s·units)` lowest-scoring units go;
/// asking for all of them is [`PruneError::EmptyLayer`]. Globally, units are
/// ranked across layers by score divided by their layer's mean score (raw
/// norms grow with fan-in, so they are not comparable), and every layer keeps
/// at least its best unit. Units whose incoming weights are all zero rank
/// first; equal scores go in position order.
pub fn select_units(
    model: &Sequential,
    cfg: &NeuronConfig,
    x: ArrayView2<f32>,
) -> Result<Vec<(usize, Vec<usize>)>, PruneError> {
    let hidden = hidden_layers(model);
    if hidden.is_empty() {
        return Err(PruneError::NoPrunableLayer);
    }
    let fraction = |value: f32| {
        (0.0..=1.0)
            .contains(&value)
            .then_some(value)
            .ok_or(PruneError::Sparsity { value })
    };
    fraction(cfg.sparsity)?;
    for (&layer, &s) in &cfg.overrides {
        if !hidden.contains(&layer) {
            return Err(PruneError::NotHidden { layer });
        }
        fraction(s)?;
    }
    let scores = match cfg.criterion {
        UnitCriterion::Activation => {
            if x.ncols() != model.input_dim() {
                return Err(PruneError::InputWidth {
                    expected: model.input_dim(),
                    got: x.ncols(),
                });
            }
            if x.nrows() == 0 {
                return Err(PruneError::NoData);
            }
            activation_scores(model, &hidden, x)
        }
        c => hidden
            .iter()
            .map(|&l| unit_scores(model, l, c, x))
            .collect(),
    };
    let scored: Vec<(usize, Array1<f32>)> = hidden.into_iter().zip(scores).collect();
    let alone = |l: usize| {
        cfg.overrides
            .get(&l)
            .copied()
            .or((cfg.scope == Scope::PerLayer).then_some(cfg.sparsity))
    };
    choose_keep(model, &scored, cfg.sparsity, alone, true)
}

/// Keep lists from per-unit scores. `alone(layer)` is the fraction of a layer
/// ranked on its own (`None`: it joins the global ranking at `global`); see
/// [`select_units`] for the rules. With `strict`, a fraction that would empty a
/// layer is an error; otherwise the layer keeps its best unit.
pub(crate) fn choose_keep(
    model: &Sequential,
    scored: &[(usize, Array1<f32>)],
    global: f32,
    alone: impl Fn(usize) -> Option<f32>,
    strict: bool,
) -> Result<Vec<(usize, Vec<usize>)>, PruneError> {
    let mut keep: Vec<Vec<bool>> = Vec::with_capacity(scored.len());
    // (normalised key, position in `scored`, unit), built in position order so
    // a stable sort breaks ties by position.
    let mut pooled: Vec<(f32, usize, usize)> = Vec::new();
    let mut pooled_units = 0;
    for (p, (layer, scores)) in scored.iter().enumerate() {
        let dense = model.layers().get(*layer).and_then(Layer::as_dense);
        // Units already cut off (zero fan-in) go first, so pruning is monotone.
        let keys: Vec<f32> = scores
            .iter()
            .enumerate()
            .map(|(j, &v)| {
                if dense.is_some_and(|d| dead(d, j)) {
                    f32::NEG_INFINITY
                } else {
                    v
                }
            })
            .collect();
        let mut kept = vec![true; keys.len()];
        match alone(*layer) {
            Some(s) => {
                let mut drop = target(s, keys.len());
                if drop >= keys.len() && !keys.is_empty() {
                    if strict {
                        return Err(PruneError::EmptyLayer { layer: *layer });
                    }
                    drop = keys.len() - 1;
                }
                let mut order: Vec<(f32, usize)> = keys.iter().copied().zip(0..).collect();
                order.sort_by(|a, b| a.0.total_cmp(&b.0));
                for &(_, j) in &order[..drop] {
                    kept[j] = false;
                }
            }
            None => {
                pooled_units += keys.len();
                let best = (0..keys.len()).reduce(|b, j| {
                    if keys[j].total_cmp(&keys[b]).is_gt() {
                        j
                    } else {
                        b
                    }
                });
                let live: Vec<f64> = keys
                    .iter()
                    .filter(|&&v| v != f32::NEG_INFINITY)
                    .map(|&v| v as f64)
                    .collect();
                let mean = live.iter().sum::<f64>() / live.len().max(1) as f64;
                let scale = if mean > 0.0 && mean.is_finite() {
                    (1.0 / mean) as f32
                } else {
                    1.0
                };
                for (j, &v) in keys.iter().enumerate() {
                    if Some(j) != best {
                        pooled.push((v * scale, p, j));
                    }
                }
            }
        }
        keep.push(kept);
    }
    let drop = target(global, pooled_units).min(pooled.len());
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    for &(_, p, j) in &pooled[..drop] {
        keep[p][j] = false;
    }
    Ok(scored
        .iter()
        .zip(keep)
        .map(|((layer, _), kept)| {
            let units = kept
                .iter()
                .enumerate()
                .filter_map(|(j, &k)| k.then_some(j))
                .collect();
            (*layer, units)
        })
        .collect())
}

/// Whether unit `j` of `d` has all-zero incoming weights (a constant output).
fn dead(d: &Dense, j: usize) -> bool {
    d.weight.value.column(j).iter().all(|&w| w == 0.0)
}

/// Each unit's output when its incoming weights are all zero (`act(b_j)`, a
/// constant the next layer can absorb), 0 otherwise. Softmax is not
/// element-wise, so its units get 0.
fn constants(d: &Dense) -> Vec<f32> {
    (0..d.units())
        .map(|j| {
            if !dead(d, j) || d.activation == Activation::Softmax {
                return 0.0;
            }
            let b = d.bias.as_ref().map_or(0.0, |b| b.value[(0, j)]);
            activation::scalar(d.activation, b)
        })
        .collect()
}

/// A smaller dense model keeping only the units `keep` lists per layer.
///
/// A removed unit whose incoming weights are all zero outputs the constant
/// `act(b_j)`, which is folded into the next layer's bias, so the outputs do
/// not change; other removed units are simply dropped. Kept units keep their
/// weights exactly. The result has no masks.
pub fn remove_units(
    model: &Sequential,
    keep: &[(usize, Vec<usize>)],
) -> Result<Sequential, PruneError> {
    let mut order: Vec<&(usize, Vec<usize>)> = keep.iter().collect();
    order.sort_by_key(|(layer, _)| *layer);
    let mut current: Option<Sequential> = None;
    for (layer, units) in order {
        let m = current.as_ref().unwrap_or(model);
        let d = m
            .layers()
            .get(*layer)
            .and_then(Layer::as_dense)
            .ok_or(surgery::SurgeryError::NotDense(*layer))?;
        let mut units = units.clone();
        units.sort_unstable();
        units.dedup();
        // Layer indices do not move: surgery only changes unit counts.
        let next = surgery::remove_units(m, *layer, &units, Some(&constants(d)))?;
        current = Some(next);
    }
    Ok(current.unwrap_or_else(|| model.clone()))
}
