//! Batch-norm folding: at inference a batch norm is `z = scale[c] · x + shift[c]`
//! ([`BatchNorm::affine`]), so after a conv2d or dense layer with a linear
//! activation it merges into that layer's weights and bias. The folded network
//! computes the same function with one layer fewer per batch norm, and it is the
//! form export and the inference-only optimizations work on: an ONNX reader sees
//! `Conv` rather than `Conv → BatchNormalization`, and a quantizer sees one
//! weight tensor per output channel with the normalization already in it.
//!
//! A batch norm that does not follow such a layer (which
//! [`crate::spec::Architecture::check`] rules out for kiln's own models) is kept.

use ndarray::{Array1, Axis};

use crate::layers::Layer;
use crate::layers::activation::Activation;
use crate::layers::batch_norm::BatchNorm;
use crate::layers::param::Param;
use crate::model::Sequential;

/// `model` with every foldable batch norm merged into the layer before it; the
/// layer takes the batch norm's activation. Masks are kept: a pruned weight
/// scaled stays zero.
pub fn fold_batch_norm(model: &Sequential) -> Sequential {
    let mut out: Vec<Layer> = Vec::with_capacity(model.layers().len());
    for layer in model.layers() {
        if let Layer::BatchNorm(bn) = layer
            && let Some(prev) = out.last_mut()
            && fold_into(prev, bn)
        {
            continue;
        }
        out.push(layer.clone());
    }
    model.with_layers(out)
}

/// Whether `model` has a batch norm [`fold_batch_norm`] would merge.
pub fn has_foldable_batch_norm(model: &Sequential) -> bool {
    model
        .layers()
        .windows(2)
        .any(|w| matches!(&w[1], Layer::BatchNorm(bn) if foldable(&w[0], bn)))
}

fn foldable(prev: &Layer, bn: &BatchNorm) -> bool {
    match prev {
        Layer::Conv2d(c) => {
            c.activation == Activation::Linear && c.geometry.filters == bn.channels()
        }
        Layer::Dense(d) => {
            d.activation == Activation::Linear
                && bn.input.dims().len() == 1
                && d.units() == bn.channels()
        }
        _ => false,
    }
}

/// Folds `bn` into `prev` when it can: output channel `c` of the weights is
/// multiplied by `scale[c]`, and the bias becomes `scale[c] · b[c] + shift[c]`
/// (a layer without one gains one).
fn fold_into(prev: &mut Layer, bn: &BatchNorm) -> bool {
    if !foldable(prev, bn) {
        return false;
    }
    let (scale, shift) = bn.affine();
    let (bias, activation) = match prev {
        Layer::Conv2d(c) => {
            // `[filters, K]`: one row per output channel.
            for (mut row, &s) in c.weight.matrix_mut().rows_mut().into_iter().zip(&scale) {
                row *= s;
            }
            (&mut c.bias, &mut c.activation)
        }
        Layer::Dense(d) => {
            // `[in, out]`: one column per output unit.
            for (mut col, &s) in d.weight.matrix_mut().columns_mut().into_iter().zip(&scale) {
                col *= s;
            }
            (&mut d.bias, &mut d.activation)
        }
        _ => return false,
    };
    let old: Array1<f32> = match bias {
        Some(b) => b.matrix().index_axis(Axis(0), 0).to_owned(),
        None => Array1::zeros(scale.len()),
    };
    let folded = &old * &scale + &shift;
    *bias = Some(Param::new(folded.insert_axis(Axis(0))));
    *activation = bn.activation;
    true
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::layers::LayerKind;
    use crate::spec::Architecture;

    fn arch(v: serde_json::Value) -> Architecture {
        serde_json::from_value(v).expect("architecture parses")
    }

    /// Gives every batch norm non-trivial γ, β and running statistics, as training would.
    fn with_statistics(mut model: Sequential, seed: u64) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for layer in model.layers_mut() {
            if let Layer::BatchNorm(bn) = layer {
                let c = bn.channels();
                let mut draw = |lo: f32, hi: f32| -> Vec<f32> {
                    (0..c).map(|_| rng.random_range(lo..hi)).collect()
                };
                bn.params[0] = Param::new(row(&draw(0.5, 1.5)));
                bn.params[1] = Param::new(row(&draw(-0.5, 0.5)));
                bn.running_mean = Array1::from(draw(-0.3, 0.3)).into_dyn();
                bn.running_var = Array1::from(draw(0.2, 2.0)).into_dyn();
            }
        }
        model
    }

    /// `[1, n]` of `v`: a bias or batch-norm parameter.
    fn row(v: &[f32]) -> Array2<f32> {
        Array2::from_shape_vec((1, v.len()), v.to_vec()).expect("one row")
    }

    fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
    }

    fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_folded_dense_layer_matches_hand_computed_values() {
        // One input, two units: w = [2, -1], b = [0.5, 0]; BN γ = [3, 1], β = [1, -1],
        // mean = [1, 0], var = [3, 0] with ε = 1 → scale = [3/2, 1], shift = [1 − 1.5, −1].
        let a = arch(serde_json::json!({"input_dim": 1, "layers": [
            {"type": "dense", "units": 2, "activation": "linear"},
            {"type": "batch_norm", "epsilon": 1.0, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}]}));
        let mut model = Sequential::new(&a, 1);
        if let Layer::Dense(d) = &mut model.layers_mut()[0] {
            d.weight = Param::new(array![[2.0f32, -1.0]]);
            d.bias = Some(Param::new(row(&[0.5, 0.0])));
        }
        if let Layer::BatchNorm(bn) = &mut model.layers_mut()[1] {
            bn.params = [Param::new(row(&[3.0, 1.0])), Param::new(row(&[1.0, -1.0]))];
            bn.running_mean = array![1.0f32, 0.0].into_dyn();
            bn.running_var = array![3.0f32, 0.0].into_dyn();
        }
        let folded = fold_batch_norm(&model);
        let kinds: Vec<LayerKind> = folded.layers().iter().map(|l| l.kind()).collect();
        assert_eq!(kinds, [LayerKind::Dense, LayerKind::Dense]);
        let d = folded.layers()[0].as_dense().expect("dense");
        assert_eq!(d.weight.matrix(), array![[3.0f32, -1.0]]);
        // 1.5 · 0.5 + (1 − 1.5) = 0.25; 1 · 0 − 1 = −1.
        let bias = d.bias.as_ref().expect("bias").matrix().to_owned();
        assert_eq!(bias, array![[0.25f32, -1.0]]);
        assert_eq!(d.activation, Activation::Relu);
        assert_eq!(folded.architecture().layers.len(), 2);
        let x = uniform(50, 1, 3);
        assert!(max_abs_diff(&model.predict(x.view()), &folded.predict(x.view())) < 1e-6);
    }

    #[test]
    fn a_folded_cnn_predicts_what_the_original_does() {
        let a = arch(serde_json::json!({"input_shape": [2, 7, 7], "layers": [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same",
             "use_bias": false},
            {"type": "batch_norm", "activation": "relu"},
            {"type": "max_pool2d", "pool_size": 2},
            {"type": "conv2d", "filters": 6, "kernel_size": 2, "groups": 2},
            {"type": "batch_norm", "activation": "tanh"},
            {"type": "global_avg_pool2d"},
            {"type": "dense", "units": 5, "activation": "linear"},
            {"type": "batch_norm"},
            {"type": "dense", "units": 3, "activation": "softmax"}]}));
        let model = with_statistics(Sequential::new(&a, 4), 5);
        assert!(has_foldable_batch_norm(&model));
        let folded = fold_batch_norm(&model);
        assert!(!has_foldable_batch_norm(&folded));
        let kinds: Vec<LayerKind> = folded.layers().iter().map(|l| l.kind()).collect();
        use LayerKind::*;
        assert_eq!(
            kinds,
            [Conv2d, MaxPool2d, Conv2d, GlobalAvgPool2d, Dense, Dense]
        );
        assert_eq!(folded.architecture().input_shape, Some(vec![2, 7, 7]));
        let x = uniform(40, 2 * 7 * 7, 6);
        let (p, q) = (model.predict(x.view()), folded.predict(x.view()));
        assert!(max_abs_diff(&p, &q) < 1e-5, "{}", max_abs_diff(&p, &q));
        // Folding is idempotent.
        assert_eq!(fold_batch_norm(&folded), folded);
    }

    #[test]
    fn pruned_weights_stay_zero_through_the_fold() {
        let a = arch(serde_json::json!({"input_shape": [1, 5, 5], "layers": [
            {"type": "conv2d", "filters": 3, "kernel_size": 3},
            {"type": "batch_norm", "activation": "relu"},
            {"type": "flatten"},
            {"type": "dense", "units": 2, "activation": "softmax"}]}));
        let mut model = with_statistics(Sequential::new(&a, 8), 9);
        let w = &mut model.layers_mut()[0].kernel_mut().expect("conv kernel");
        let mask =
            Array2::from_shape_fn((3, 9), |(f, k)| if (f + k) % 2 == 0 { 1.0f32 } else { 0.0 });
        w.set_mask(mask.clone());
        w.apply_mask();
        let folded = fold_batch_norm(&model);
        let k = folded.layers()[0].kernel().expect("conv kernel");
        assert_eq!(k.mask_matrix().expect("mask kept"), mask.view());
        for (v, m) in k.matrix().iter().zip(&mask) {
            if *m == 0.0 {
                assert_eq!(*v, 0.0);
            }
        }
    }
}
