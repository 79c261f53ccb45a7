//! Dead units: hidden units whose output does not vary over the data.
//!
//! A unit that outputs the same value `c` for every row (a ReLU that never
//! fires outputs 0; a unit with zero incoming weights outputs `f(b)`) carries
//! no information: the next layer sees `c · W_next[j, :]` added to every row,
//! which its bias can hold instead. Whether a unit is constant is a property
//! of the data, so the result is exact on the rows given, not in general.

use ndarray::{Array2, ArrayView2, Axis};

use super::{Action, ActionKind, CompactError, check_tolerance, hidden_layers};
use crate::layers::Layer;
use crate::model::Sequential;
use crate::optimize::surgery::{next_dense, remove_units};

/// Rows pushed through the network at a time, bounding temporary memory.
const CHUNK: usize = 1024;

/// Removes, from every hidden dense layer, the units whose activation over `x`
/// varies by at most `tolerance` (max − min), folding each one's mean output
/// into the next dense layer's bias. Layers go front to back, activations
/// recomputed after each removal; a layer always keeps its most varying unit.
/// Softmax layers are skipped (their units are not independent) and so is the
/// output layer. Pruning masks are dropped by the surgery.
///
/// `exact` is true when every removed unit was exactly constant on `x`.
pub fn remove_dead_units(
    model: &Sequential,
    x: ArrayView2<f32>,
    tolerance: f32,
) -> Result<(Sequential, Vec<Action>), CompactError> {
    check_tolerance(tolerance)?;
    model.check_input(x).map_err(CompactError::Input)?;
    if x.nrows() == 0 {
        return Err(CompactError::NoRows);
    }
    let mut current = model.clone();
    let mut actions = Vec::new();
    for layer in hidden_layers(model)? {
        let stats = unit_stats(&current, layer, x);
        let mut dead: Vec<usize> = (0..stats.len())
            .filter(|&j| stats[j].range() <= tolerance)
            .collect();
        if dead.len() == stats.len() {
            let liveliest = (0..stats.len())
                .max_by(|&a, &b| stats[a].range().total_cmp(&stats[b].range()))
                .unwrap_or(0);
            dead.retain(|&j| j != liveliest);
        }
        if dead.is_empty() {
            continue;
        }
        let keep: Vec<usize> = (0..stats.len()).filter(|j| !dead.contains(j)).collect();
        let constant: Vec<f32> = stats.iter().map(UnitStats::mean).collect();
        let smaller = remove_units(&current, layer, &keep, Some(&constant))?;
        let widest = dead.iter().map(|&j| stats[j].range()).fold(0.0, f32::max);
        let next = next_dense(&current, layer).unwrap_or(layer);
        actions.push(Action {
            kind: ActionKind::DeadUnits,
            layer,
            detail: format!(
                "removed {} of {} units of layer {layer} whose output varies by at most {widest} \
                 over {} rows; their mean outputs went into layer {next}'s bias",
                dead.len(),
                stats.len(),
                x.nrows()
            ),
            units: dead,
            params_before: current.param_count(),
            params_after: smaller.param_count(),
            exact: widest == 0.0,
        });
        current = smaller;
    }
    Ok((current, actions))
}

/// Running min, max and sum of one unit's activation.
#[derive(Debug, Clone, Copy)]
struct UnitStats {
    min: f32,
    max: f32,
    sum: f64,
    rows: usize,
    nan: bool,
}

impl UnitStats {
    const EMPTY: Self = Self {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        sum: 0.0,
        rows: 0,
        nan: false,
    };

    fn add(&mut self, v: f32) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += f64::from(v);
        self.rows += 1;
        self.nan |= v.is_nan();
    }

    /// max − min; infinite when a NaN was seen, so such a unit never counts as constant.
    fn range(&self) -> f32 {
        if self.nan {
            f32::INFINITY
        } else {
            self.max - self.min
        }
    }

    fn mean(&self) -> f32 {
        (self.sum / self.rows.max(1) as f64) as f32
    }
}

/// Statistics of every unit of dense layer `layer` over the rows of `x`.
fn unit_stats(model: &Sequential, layer: usize, x: ArrayView2<f32>) -> Vec<UnitStats> {
    let units = model.layers()[layer].as_dense().map_or(0, |d| d.units());
    let mut stats = vec![UnitStats::EMPTY; units];
    for chunk in x.axis_chunks_iter(Axis(0), CHUNK) {
        let mut h: Option<Array2<f32>> = None;
        for l in &model.layers()[..=layer] {
            if let Layer::Dense(d) = l {
                h = Some(d.forward(h.as_ref().map_or(chunk, |h| h.view())));
            }
        }
        for row in h.iter().flat_map(|h| h.rows()) {
            stats.iter_mut().zip(row).for_each(|(s, &v)| s.add(v));
        }
    }
    stats
}
