//! Unstructured magnitude pruning: zero the kernel weights (dense and conv2d)
//! of smallest `|w|`. A convolution's kernel `[filters, channels, kh, kw]` is
//! ranked through its matrix view, one row per filter, so the same masks,
//! rankings and ties serve both kinds.
//!
//! Pruning only writes [`Param::mask`](crate::layers::param::Param): the optimizer
//! re-applies masks after every step, so fine-tuning keeps pruned weights at
//! exactly zero without knowing about pruning. Biases are never pruned: they are
//! few and each one shifts a whole unit.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ndarray::Array2;

use crate::layers::param::Param;
use crate::layers::{LayerKind, UnsupportedLayer};
use crate::model::Sequential;

/// Where the sparsity budget applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One ranking across all prunable layers: layers with many small weights
    /// give up more of them.
    Global,
    /// The same fraction of every layer.
    PerLayer,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MagnitudeConfig {
    /// Fraction of prunable weights to zero, in `[0, 1]`.
    pub sparsity: f32,
    pub scope: Scope,
    /// Layer index → that layer's own sparsity; such layers stay out of the
    /// global ranking.
    pub overrides: BTreeMap<usize, f32>,
}

/// Zero count and size of one layer's kernel (dense or conv2d).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSparsity {
    pub layer: usize,
    pub weights: u64,
    pub nonzero: u64,
    pub sparsity: f64,
}

/// The operation named when a layer kind is refused.
const OPERATION: &str = "magnitude pruning";

/// Every kernel layer (dense, conv2d) but the output layer, plus the output
/// layer when it has an override: the output layer is small and every class
/// depends on its fan-in, so it stays dense unless asked.
/// A layer with parameters that has no kernel and is not a batch norm (whose
/// per-channel scale and shift are left alone, as biases are) is refused:
/// passing over it would leave it silently unpruned.
pub fn prunable_layers(
    model: &Sequential,
    overrides: &BTreeMap<usize, f32>,
) -> Result<Vec<usize>, UnsupportedLayer> {
    for (index, layer) in model.layers().iter().enumerate() {
        let kind = layer.kind();
        if layer.has_params() && layer.kernel().is_none() && kind != LayerKind::BatchNorm {
            return Err(UnsupportedLayer {
                index,
                kind,
                operation: OPERATION,
            });
        }
    }
    let kernels: Vec<usize> = model.kernel_layers().map(|(i, _)| i).collect();
    let last = kernels.last().copied();
    Ok(kernels
        .into_iter()
        .filter(|&i| Some(i) != last || overrides.contains_key(&i))
        .collect())
}

/// Masks (1.0 keep, 0.0 prune) for every layer of [`prunable_layers`].
///
/// Exactly `round(s·n)` weights are pruned per ranking (all non-overridden
/// layers for [`Scope::Global`], each layer for [`Scope::PerLayer`] and for
/// overrides). Weights already zero or masked rank first, so re-pruning a
/// masked model to a higher sparsity only adds zeros; equal magnitudes are
/// broken by position (layer order, then row-major index). Sparsities are
/// clamped to `[0, 1]`.
pub fn magnitude_masks(
    model: &Sequential,
    cfg: &MagnitudeConfig,
) -> Result<Vec<(usize, Array2<f32>)>, UnsupportedLayer> {
    let layers: Vec<(usize, &Param)> = prunable_layers(model, &cfg.overrides)?
        .into_iter()
        .filter_map(|i| model.layers()[i].kernel().map(|k| (i, k)))
        .collect();
    let mut masks: Vec<(usize, Array2<f32>)> = layers
        .iter()
        .map(|(i, k)| (*i, Array2::ones(k.matrix().raw_dim())))
        .collect();
    let ranked_alone = |i: usize| cfg.scope == Scope::PerLayer || cfg.overrides.contains_key(&i);

    for ((i, d), (_, mask)) in layers.iter().zip(&mut masks) {
        if ranked_alone(*i) {
            let s = cfg.overrides.get(i).copied().unwrap_or(cfg.sparsity);
            let mut keys = keys_of(d);
            let cut = Cut::new(&mut keys, s);
            let mut ties = cut.ties;
            mark(d, mask, cut.threshold, &mut ties);
        }
    }

    let pooled: Vec<usize> = (0..layers.len())
        .filter(|&k| !ranked_alone(layers[k].0))
        .collect();
    if !pooled.is_empty() {
        let mut keys: Vec<f32> = pooled.iter().flat_map(|&k| keys_of(layers[k].1)).collect();
        let cut = Cut::new(&mut keys, cfg.sparsity);
        let mut ties = cut.ties;
        for &k in &pooled {
            mark(layers[k].1, &mut masks[k].1, cut.threshold, &mut ties);
        }
    }
    Ok(masks)
}

/// Sets each `(layer, mask)` as that layer's kernel mask (over its matrix
/// view) and zeroes the pruned weights. Entries naming no kernel layer, or of
/// the wrong shape, are skipped.
pub fn set_masks(model: &mut Sequential, masks: &[(usize, Array2<f32>)]) {
    for (i, mask) in masks {
        if let Some(k) = model.layers_mut().get_mut(*i).and_then(|l| l.kernel_mut())
            && mask.raw_dim() == k.matrix().raw_dim()
        {
            k.set_mask(mask.clone());
            k.apply_mask();
        }
    }
}

/// Removes every weight and bias mask; values stay as they are.
pub fn clear_masks(model: &mut Sequential) {
    for p in model.params_mut() {
        p.clear_mask();
    }
}

/// Weight sparsity of every kernel layer (biases excluded).
pub fn layer_sparsity(model: &Sequential) -> Vec<LayerSparsity> {
    model
        .kernel_layers()
        .map(|(layer, k)| {
            let weights = k.len() as u64;
            let nonzero = k.nonzero();
            let sparsity = if weights == 0 {
                0.0
            } else {
                1.0 - nonzero as f64 / weights as f64
            };
            LayerSparsity {
                layer,
                weights,
                nonzero,
                sparsity,
            }
        })
        .collect()
}

/// `round(s·n)`, with `s` clamped to `[0, 1]` (NaN reads as 0).
pub(crate) fn target(s: f32, n: usize) -> usize {
    let s = if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) };
    ((s as f64 * n as f64).round() as usize).min(n)
}

/// Calls `f(index, key)` for every weight of `k` in row-major order; the key is
/// 0 for weights already zero or masked and `|w|` otherwise.
fn for_each_key(k: &Param, mut f: impl FnMut((usize, usize), f32)) {
    let mask = k.mask_matrix();
    for (ix, &w) in k.matrix().indexed_iter() {
        let pruned = mask.is_some_and(|m| m[ix] == 0.0);
        f(ix, if pruned { 0.0 } else { w.abs() });
    }
}

fn keys_of(k: &Param) -> Vec<f32> {
    let mut keys = Vec::with_capacity(k.len());
    for_each_key(k, |_, key| keys.push(key));
    keys
}

/// Where a ranking is cut: prune every key below `threshold` and the first
/// `ties` keys equal to it, in position order.
struct Cut {
    threshold: Option<f32>,
    ties: usize,
}

impl Cut {
    /// The cut that prunes exactly `round(sparsity·n)` of the `n` `keys` (which it reorders).
    fn new(keys: &mut [f32], sparsity: f32) -> Self {
        let k = target(sparsity, keys.len());
        if k == 0 || keys.is_empty() {
            return Self {
                threshold: None,
                ties: 0,
            };
        }
        let (_, &mut t, _) = keys.select_nth_unstable_by(k - 1, f32::total_cmp);
        let below = keys
            .iter()
            .filter(|v| v.total_cmp(&t) == Ordering::Less)
            .count();
        Self {
            threshold: Some(t),
            ties: k - below,
        }
    }
}

/// Zeroes in `mask` the weights of `k` below the cut, spending `ties` on keys
/// equal to the threshold in row-major order.
fn mark(k: &Param, mask: &mut Array2<f32>, threshold: Option<f32>, ties: &mut usize) {
    let Some(t) = threshold else { return };
    for_each_key(k, |ix, key| match key.total_cmp(&t) {
        Ordering::Less => mask[ix] = 0.0,
        Ordering::Equal if *ties > 0 => {
            *ties -= 1;
            mask[ix] = 0.0;
        }
        _ => {}
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Architecture;

    /// Dense layers at indices 0, 2 and 3 (the output layer); 48 + 40 + 15 weights.
    fn model() -> Sequential {
        let arch: Architecture = serde_json::from_str(
            r#"{"input_dim": 6, "layers": [
                {"type": "dense", "units": 8, "activation": "relu"},
                {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 5, "activation": "tanh"},
                {"type": "dense", "units": 3, "activation": "softmax"}]}"#,
        )
        .expect("architecture");
        Sequential::new(&arch, 5)
    }

    fn cfg(sparsity: f32, scope: Scope, overrides: &[(usize, f32)]) -> MagnitudeConfig {
        MagnitudeConfig {
            sparsity,
            scope,
            overrides: overrides.iter().copied().collect(),
        }
    }

    fn zeros(mask: &Array2<f32>) -> usize {
        mask.iter().filter(|&&m| m == 0.0).count()
    }

    /// `(largest pruned |w|, smallest kept |w|)` over the given masks.
    fn extremes(model: &Sequential, masks: &[(usize, Array2<f32>)]) -> (f32, f32) {
        let (mut pruned, mut kept) = (0.0f32, f32::INFINITY);
        for (i, m) in masks {
            let w = &model.layers()[*i]
                .as_dense()
                .expect("dense")
                .weight
                .matrix();
            for (&w, &m) in w.iter().zip(m) {
                if m == 0.0 {
                    pruned = pruned.max(w.abs());
                } else {
                    kept = kept.min(w.abs());
                }
            }
        }
        (pruned, kept)
    }

    #[test]
    fn the_output_layer_is_prunable_only_with_an_override() {
        let m = model();
        assert_eq!(prunable_layers(&m, &BTreeMap::new()), Ok(vec![0, 2]));
        assert_eq!(
            prunable_layers(&m, &[(3, 0.5)].into_iter().collect()),
            Ok(vec![0, 2, 3])
        );
    }

    #[test]
    fn global_masks_prune_exactly_round_s_n_below_one_threshold() {
        let m = model();
        let masks = magnitude_masks(&m, &cfg(0.5, Scope::Global, &[])).expect("dense");
        assert_eq!(
            masks.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 2]
        );
        let total: usize = masks.iter().map(|(_, mk)| zeros(mk)).sum();
        assert_eq!(total, 44); // round(0.5 · 88)
        let (pruned, kept) = extremes(&m, &masks);
        assert!(pruned <= kept, "{pruned} > {kept}");
        // Layers give up different shares: the ranking is global, not per layer.
        assert_ne!(zeros(&masks[0].1), 24);

        let mut pruned_model = m.clone();
        set_masks(&mut pruned_model, &masks);
        let stats = layer_sparsity(&pruned_model);
        assert_eq!(stats.len(), 3);
        assert_eq!(stats[0].nonzero + stats[1].nonzero, 88 - 44);
        // The output layer stays dense.
        assert_eq!(
            (stats[2].layer, stats[2].nonzero, stats[2].sparsity),
            (3, 15, 0.0)
        );
        assert!(
            pruned_model.layers()[3]
                .as_dense()
                .expect("dense")
                .weight
                .mask()
                .is_none()
        );
    }

    #[test]
    fn per_layer_masks_prune_each_layer_to_its_own_count() {
        let m = model();
        let masks = magnitude_masks(&m, &cfg(0.3, Scope::PerLayer, &[])).expect("dense");
        assert_eq!(zeros(&masks[0].1), 14); // round(14.4)
        assert_eq!(zeros(&masks[1].1), 12);
        for one in &masks {
            let (pruned, kept) = extremes(&m, std::slice::from_ref(one));
            assert!(pruned <= kept);
        }
    }

    #[test]
    fn overridden_layers_get_their_own_fraction_and_leave_the_global_ranking() {
        let m = model();
        let masks =
            magnitude_masks(&m, &cfg(0.5, Scope::Global, &[(0, 0.25), (3, 0.5)])).expect("dense");
        let by_layer: Vec<(usize, usize)> = masks.iter().map(|(i, mk)| (*i, zeros(mk))).collect();
        // Layer 0: round(0.25·48) = 12; layer 2 alone in the global pool: 20; output: round(7.5) = 8.
        assert_eq!(by_layer, vec![(0, 12), (2, 20), (3, 8)]);
    }

    #[test]
    fn equal_magnitudes_are_cut_in_position_order() {
        let mut m = model();
        for p in m.params_mut() {
            p.matrix_mut().fill(-0.5);
        }
        let masks = magnitude_masks(&m, &cfg(0.5, Scope::Global, &[])).expect("dense");
        // The first 44 weights in (layer, row-major) order: all of layer 0's first 44.
        let flat: Vec<f32> = masks[0].1.iter().copied().collect();
        assert!(flat[..44].iter().all(|&v| v == 0.0));
        assert!(flat[44..].iter().all(|&v| v == 1.0));
        assert_eq!(zeros(&masks[1].1), 0);
    }

    #[test]
    fn re_pruning_a_masked_model_only_adds_zeros() {
        let mut m = model();
        let first = magnitude_masks(&m, &cfg(0.3, Scope::Global, &[])).expect("dense");
        set_masks(&mut m, &first);
        // Perturb survivors so the ranking could change if masks were ignored.
        if let Some(d) = m.layers_mut()[0].as_dense_mut() {
            d.weight.matrix_mut().mapv_inplace(|w| w * 0.01);
        }
        let second = magnitude_masks(&m, &cfg(0.6, Scope::Global, &[])).expect("dense");
        assert_eq!(second.iter().map(|(_, mk)| zeros(mk)).sum::<usize>(), 53); // round(52.8)
        for ((_, a), (_, b)) in first.iter().zip(&second) {
            for (&a, &b) in a.iter().zip(b) {
                assert!(b <= a, "a pruned weight came back");
            }
        }
        clear_masks(&mut m);
        assert!(m.params().iter().all(|p| p.mask().is_none()));
    }
}
