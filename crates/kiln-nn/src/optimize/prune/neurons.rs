//! Structured pruning: remove whole hidden units, physically.
//!
//! Unlike masks, removing a unit shrinks `W` to `[in, kept]` and the next
//! layer's `W` to `[kept, out]`, so the smaller model is faster and smaller on
//! disk with any runtime. Units are ranked by a score; the lowest go.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use super::PruneError;
use super::magnitude::{Scope, target};
use crate::layers::activation::{self, Activation};
use crate::layers::dense::Dense;
use crate::layers::{Layer, UnsupportedLayer};
use crate::model::Sequential;
use crate::optimize::surgery;

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
/// A layer with parameters that is not dense is refused: units are dense
/// columns, and passing over the layer would break the next layer's fan-in.
pub fn hidden_layers(model: &Sequential) -> Result<Vec<usize>, UnsupportedLayer> {
    let dense: Vec<usize> = model
        .dense_only("neuron pruning")?
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    Ok(dense[..dense.len().saturating_sub(1)].to_vec())
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
    d.weight.matrix().map_axis(Axis(0), |col| match criterion {
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
    let hidden = hidden_layers(model)?;
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
    d.weight.matrix().column(j).iter().all(|&w| w == 0.0)
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
            let b = d.bias.as_ref().map_or(0.0, |b| b.matrix()[(0, j)]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Architecture;
    use ndarray::{Array1, array};

    fn arch(json: &str) -> Architecture {
        serde_json::from_str(json).expect("architecture")
    }

    fn cfg(sparsity: f32, scope: Scope, overrides: &[(usize, f32)]) -> NeuronConfig {
        NeuronConfig {
            sparsity,
            scope,
            overrides: overrides.iter().copied().collect(),
            criterion: UnitCriterion::L1,
        }
    }

    /// Hidden layers 0 (4 units, column L1 norms 4, 1, 3, 2) and 1 (3 units,
    /// norms 50, 10, 30): raw norms differ by a factor 10 between layers.
    fn two_hidden() -> Sequential {
        let a = arch(
            r#"{"input_dim": 2, "layers": [
                {"type": "dense", "units": 4, "activation": "relu"},
                {"type": "dense", "units": 3, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        );
        let w0 = array![[4.0, 1.0, -3.0, 1.0], [0.0, 0.0, 0.0, -1.0]];
        let w1 = array![
            [20.0, -5.0, 10.0],
            [30.0, 5.0, -20.0],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0]
        ];
        let w2 = array![[1.0], [1.0], [1.0]];
        let b = |n| Some(Array1::zeros(n));
        Sequential::from_weights(&a, vec![(w0, b(4)), (w1, b(3)), (w2, b(1))]).expect("weights")
    }

    fn none() -> Array2<f32> {
        Array2::zeros((0, 2))
    }

    #[test]
    fn norm_and_activation_scores_match_hand_computed_values() {
        let a = arch(
            r#"{"input_dim": 3, "layers": [
                {"type": "dense", "units": 2, "activation": "relu"},
                {"type": "dense", "units": 1}]}"#,
        );
        let w = array![[1.0, -2.0], [3.0, 0.0], [-1.0, 2.0]];
        let m = Sequential::from_weights(
            &a,
            vec![
                (w, Some(array![0.5, -1.0])),
                (array![[1.0], [1.0]], Some(array![0.0])),
            ],
        )
        .expect("weights");
        let x = array![[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]];
        assert_eq!(
            unit_scores(&m, 0, UnitCriterion::L1, x.view()),
            array![5.0, 4.0]
        );
        let l2 = unit_scores(&m, 0, UnitCriterion::L2, x.view());
        assert!((l2[0] - 11f32.sqrt()).abs() < 1e-6 && (l2[1] - 8f32.sqrt()).abs() < 1e-6);
        // z = [1.5, −3] and [2.5, 1]; relu → [1.5, 0] and [2.5, 1]; mean |a| = [2, 0.5].
        assert_eq!(
            unit_scores(&m, 0, UnitCriterion::Activation, x.view()),
            array![2.0, 0.5]
        );
        assert_eq!(unit_scores(&m, 7, UnitCriterion::L1, x.view()).len(), 0);
    }

    #[test]
    fn activation_scores_over_many_chunks_equal_one_pass() {
        let m = two_hidden();
        let rows = 2 * CHUNK + 37;
        let x = Array2::from_shape_fn((rows, 2), |(i, j)| {
            ((i * 7 + j * 3) % 11) as f32 * 0.2 - 1.0
        });
        let scores = unit_scores(&m, 1, UnitCriterion::Activation, x.view());
        let d0 = m.layers()[0].as_dense().expect("dense");
        let d1 = m.layers()[1].as_dense().expect("dense");
        let a = d1.forward(d0.forward(x.view()).view());
        for j in 0..3 {
            let want = a.column(j).iter().map(|v| v.abs() as f64).sum::<f64>() / rows as f64;
            assert!(
                (scores[j] as f64 - want).abs() < 1e-4 * want.max(1.0),
                "unit {j}"
            );
        }
    }

    #[test]
    fn per_layer_selection_drops_the_lowest_scores_of_each_layer() {
        let keep = select_units(
            &two_hidden(),
            &cfg(0.5, Scope::PerLayer, &[]),
            none().view(),
        )
        .expect("selects");
        // Layer 0 drops round(2) = 2 (norms 1, 2); layer 1 drops round(1.5) = 2 (norms 10, 30).
        assert_eq!(keep, vec![(0, vec![0, 2]), (1, vec![0])]);
    }

    #[test]
    fn global_selection_ranks_scores_relative_to_their_layer_mean() {
        // Normalised: layer 0 (mean 2.5) [1.6, 0.4, 1.2, 0.8], layer 1 (mean 30) [1.67, 0.33, 1.0].
        // round(0.5·7) = 4 go: 0.33, 0.4, 0.8, 1.0. Raw norms would drop 1, 2, 3, 10 instead.
        let keep = select_units(&two_hidden(), &cfg(0.5, Scope::Global, &[]), none().view())
            .expect("selects");
        assert_eq!(keep, vec![(0, vec![0, 2]), (1, vec![0])]);
        // Everything asked: each layer still keeps its best unit.
        let keep = select_units(&two_hidden(), &cfg(1.0, Scope::Global, &[]), none().view())
            .expect("selects");
        assert_eq!(keep, vec![(0, vec![0]), (1, vec![0])]);
        // An override takes layer 1 out of the pool: layer 0 alone gives up round(0.5·4) = 2.
        let keep = select_units(
            &two_hidden(),
            &cfg(0.5, Scope::Global, &[(1, 0.0)]),
            none().view(),
        )
        .expect("selects");
        assert_eq!(keep, vec![(0, vec![0, 2]), (1, vec![0, 1, 2])]);
    }

    #[test]
    fn emptying_a_layer_or_having_none_to_prune_is_an_error() {
        let m = two_hidden();
        let x = none();
        assert_eq!(
            select_units(&m, &cfg(1.0, Scope::PerLayer, &[]), x.view()),
            Err(PruneError::EmptyLayer { layer: 0 })
        );
        assert_eq!(
            select_units(&m, &cfg(0.2, Scope::Global, &[(1, 0.9)]), x.view()),
            Err(PruneError::EmptyLayer { layer: 1 })
        );
        assert_eq!(
            select_units(&m, &cfg(0.2, Scope::Global, &[(2, 0.5)]), x.view()),
            Err(PruneError::NotHidden { layer: 2 })
        );
        assert_eq!(
            select_units(&m, &cfg(1.5, Scope::Global, &[]), x.view()),
            Err(PruneError::Sparsity { value: 1.5 })
        );
        let by_activation = NeuronConfig {
            criterion: UnitCriterion::Activation,
            ..cfg(0.5, Scope::Global, &[])
        };
        assert_eq!(
            select_units(&m, &by_activation, Array2::zeros((3, 5)).view()),
            Err(PruneError::InputWidth {
                expected: 2,
                got: 5
            })
        );
        let single = Sequential::new(
            &arch(r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 3}]}"#),
            1,
        );
        assert_eq!(
            select_units(&single, &cfg(0.5, Scope::Global, &[]), x.view()),
            Err(PruneError::NoPrunableLayer)
        );
    }

    /// Hidden layers 0 (tanh, 8) and 2 (sigmoid, 6), dropout between, softmax head; non-zero biases.
    fn deep(seed: u64) -> Sequential {
        let a = arch(
            r#"{"input_dim": 5, "layers": [
                {"type": "dense", "units": 8, "activation": "tanh"},
                {"type": "dropout", "rate": 0.3},
                {"type": "dense", "units": 6, "activation": "sigmoid"},
                {"type": "dense", "units": 3, "activation": "softmax"}]}"#,
        );
        let mut m = Sequential::new(&a, seed);
        for (k, p) in m.params_mut().into_iter().enumerate() {
            if p.matrix().nrows() == 1 {
                let n = p.matrix().len();
                p.set_value(Array2::from_shape_fn((1, n), |(_, j)| {
                    0.1 * (j as f32 - 2.0) + k as f32 * 0.05
                }));
            }
        }
        m
    }

    fn x() -> Array2<f32> {
        Array2::from_shape_fn((9, 5), |(i, j)| ((i * 5 + j) % 7) as f32 * 0.3 - 0.9)
    }

    const KEEP: [(usize, &[usize]); 2] = [(0, &[0, 2, 3, 5, 7]), (2, &[1, 2, 4])];

    fn keep() -> Vec<(usize, Vec<usize>)> {
        KEEP.iter().map(|(l, u)| (*l, u.to_vec())).collect()
    }

    #[test]
    fn removing_units_shrinks_the_model_and_keeps_kept_units_bitwise() {
        let m = deep(3);
        let small = remove_units(&m, &keep()).expect("removes");
        // 5·5 + 5, 5·3 + 3, 3·3 + 3
        assert_eq!(small.param_count(), 60);
        assert_eq!(small.architecture().layers.len(), 4);
        let x = x();
        let before = m.layers()[0].as_dense().expect("dense").forward(x.view());
        let after = small.layers()[0]
            .as_dense()
            .expect("dense")
            .forward(x.view());
        assert_eq!(after, before.select(Axis(1), KEEP[0].1));
    }

    #[test]
    fn units_cut_off_by_masks_fold_into_the_next_bias_and_outputs_stay() {
        let mut m = deep(4);
        for (layer, units) in keep() {
            let d = m.layers_mut()[layer].as_dense_mut().expect("dense");
            for j in (0..d.units()).filter(|j| !units.contains(j)) {
                d.weight.matrix_mut().column_mut(j).fill(0.0);
                // Layer 0 keeps its bias (constant tanh(b_j)); layer 2 loses it (sigmoid(0) = 0.5).
                if layer == 2 {
                    d.bias.as_mut().expect("bias").matrix_mut()[(0, j)] = 0.0;
                }
            }
        }
        let small = remove_units(&m, &keep()).expect("removes");
        assert_eq!(small.param_count(), 60);
        let (a, b) = (m.predict(x().view()), small.predict(x().view()));
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // Without the fold the outputs would differ: the constants are not zero.
        let mut unfolded = small.clone();
        let head = unfolded.layers_mut()[3].as_dense_mut().expect("dense");
        head.bias = m.layers()[3].as_dense().expect("dense").bias.clone();
        assert_ne!(unfolded.predict(x().view()), b);
    }
}
