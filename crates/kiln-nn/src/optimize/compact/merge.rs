//! Duplicate units: two units of a layer with the same incoming weights and
//! bias compute the same activation, so one of them can carry both.
//!
//! Unit `j` merges into unit `i < j` by adding `scale · W_next[j, :]` to
//! `W_next[i, :]` and removing `j`. `scale` is 1 for duplicates; for ReLU,
//! leaky ReLU and linear layers a unit whose signature is `c > 0` times another's
//! also merges with `scale = c`, because `f(c·z) = c·f(z)` for those
//! (any non-zero `c` for linear ones).

use std::fmt::Write as _;

use super::{Action, ActionKind, CompactError, check_tolerance, dense_at, hidden_layers};
use crate::layers::Layer;
use crate::layers::activation::Activation;
use crate::layers::dense::Dense;
use crate::model::Sequential;
use crate::optimize::surgery::{SurgeryError, next_dense, rebuild, remove_units};

/// How many merges an action's `detail` lists before summarising.
const LISTED: usize = 8;

/// `from` goes, and `scale ·` its outgoing weights go to `into`.
#[derive(Debug, Clone, Copy)]
struct Merge {
    from: usize,
    into: usize,
    scale: f32,
}

/// In every hidden dense layer (not the output layer, not softmax layers),
/// merges each unit `j` into the first earlier unit `i` whose signature
/// (bias, incoming weight column) matches within `tolerance` (max abs
/// difference of `scale · sig_i` and `sig_j`). Layers go front to back.
/// Pruning masks are dropped by the surgery.
///
/// Comparisons are pairwise against the units kept so far, with early exit on
/// the first differing entry (the bias comes first): for layers of a few
/// thousand units that is milliseconds. `exact` is true when `tolerance == 0`.
pub fn merge_duplicate_units(
    model: &Sequential,
    tolerance: f32,
) -> Result<(Sequential, Vec<Action>), CompactError> {
    check_tolerance(tolerance)?;
    let mut current = model.clone();
    let mut actions = Vec::new();
    for layer in hidden_layers(model)? {
        let dense = dense_at(&current, layer)?;
        let units = dense.units();
        let (merges, worst) = find_merges(dense, tolerance);
        if merges.is_empty() {
            continue;
        }
        let next = next_dense(&current, layer).ok_or(SurgeryError::OutputLayer(layer))?;
        let mut layers = current.layers().to_vec();
        if let Some(Layer::Dense(nd)) = layers.get_mut(next) {
            for m in &merges {
                let row = nd.weight.matrix().row(m.from).to_owned();
                nd.weight
                    .matrix_mut()
                    .row_mut(m.into)
                    .scaled_add(m.scale, &row);
            }
        }
        let summed = rebuild(current.input_dim(), layers)?;
        let gone: Vec<usize> = merges.iter().map(|m| m.from).collect();
        let keep: Vec<usize> = (0..units).filter(|j| !gone.contains(j)).collect();
        let merged = remove_units(&summed, layer, &keep, None)?;
        actions.push(Action {
            kind: ActionKind::MergedUnits,
            layer,
            units: gone,
            detail: describe(layer, units, &merges, worst),
            params_before: current.param_count(),
            params_after: merged.param_count(),
            exact: tolerance == 0.0,
        });
        current = merged;
    }
    Ok((current, actions))
}

/// Every unit that matches an earlier kept unit, and the largest signature
/// difference among the matches.
fn find_merges(dense: &Dense, tolerance: f32) -> (Vec<Merge>, f32) {
    let width = dense.inputs() + 1;
    let flat = signatures(dense);
    let sigs: Vec<&[f32]> = flat.chunks_exact(width).collect();
    let scalable = match dense.activation {
        Activation::Linear => Scaling::AnySign,
        Activation::Relu | Activation::LeakyRelu => Scaling::Positive,
        _ => Scaling::None,
    };
    // Index of each signature's largest entry: the scale is read off there.
    let pivots: Vec<usize> = sigs
        .iter()
        .map(|s| {
            s.iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .map_or(0, |(k, _)| k)
        })
        .collect();
    let mut kept: Vec<usize> = Vec::new();
    let mut merges = Vec::new();
    let mut worst = 0f32;
    for (j, &sj) in sigs.iter().enumerate() {
        let found = kept.iter().find_map(|&i| {
            let si = sigs[i];
            if let Some(d) = within(si, sj, 1.0, tolerance) {
                return Some((i, 1.0, d));
            }
            let scale = sj[pivots[i]] / si[pivots[i]];
            let allowed = match scalable {
                Scaling::None => false,
                Scaling::Positive => scale > 0.0,
                Scaling::AnySign => scale != 0.0,
            };
            if !allowed || !scale.is_finite() {
                return None;
            }
            within(si, sj, scale, tolerance).map(|d| (i, scale, d))
        });
        match found {
            Some((into, scale, d)) => {
                worst = worst.max(d);
                merges.push(Merge {
                    from: j,
                    into,
                    scale,
                });
            }
            None => kept.push(j),
        }
    }
    (merges, worst)
}

#[derive(Debug, Clone, Copy)]
enum Scaling {
    None,
    Positive,
    AnySign,
}

/// Unit `j`'s `[bias, W[0, j], …, W[in−1, j]]`, one after another (a missing
/// bias is 0 for every unit alike).
fn signatures(dense: &Dense) -> Vec<f32> {
    let mut flat = Vec::with_capacity(dense.units() * (dense.inputs() + 1));
    for (j, column) in dense.weight.matrix().columns().into_iter().enumerate() {
        flat.push(
            dense
                .bias
                .as_ref()
                .and_then(|b| b.matrix().get((0, j)).copied())
                .unwrap_or(0.0),
        );
        flat.extend(column.iter().copied());
    }
    flat
}

/// `max |scale·a − b|` if it is at most `tolerance`; stops at the first entry over.
fn within(a: &[f32], b: &[f32], scale: f32, tolerance: f32) -> Option<f32> {
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(b) {
        let d = (scale * x - y).abs();
        if d.is_nan() || d > tolerance {
            return None;
        }
        worst = worst.max(d);
    }
    Some(worst)
}

fn describe(layer: usize, units: usize, merges: &[Merge], worst: f32) -> String {
    let mut s = format!(
        "merged {} of {units} units of layer {layer} into matching units (",
        merges.len()
    );
    for (n, m) in merges.iter().take(LISTED).enumerate() {
        let sep = if n == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}{}→{}", m.from, m.into);
        if m.scale != 1.0 {
            let _ = write!(s, " ×{}", m.scale);
        }
    }
    if merges.len() > LISTED {
        let _ = write!(s, ", … {} more", merges.len() - LISTED);
    }
    let _ = write!(s, "); largest signature difference {worst}");
    s
}
