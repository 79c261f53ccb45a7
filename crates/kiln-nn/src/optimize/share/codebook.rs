//! Shared weights: each dense layer's non-zero weights replaced by indices into
//! a small codebook of centroids (Deep Compression stage 2).
//!
//! Zeros are pruned positions: they are not clustered and stay exactly zero,
//! so weight sharing composes with pruning.

use ndarray::{Array2, ArrayViewMut2};

use super::kmeans::{CodebookInit, kmeans_1d};
use crate::layers::{Layer, UnsupportedLayer};
use crate::model::Sequential;

/// Lloyd iterations per layer; 1-D k-means converges well within this.
const KMEANS_ITERS: usize = 100;

/// One dense layer's weight matrix as a codebook and per-position codes.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedLayer {
    /// Index into `architecture.layers`.
    pub layer: usize,
    pub rows: usize,
    pub cols: usize,
    /// Centroids, at most `2^bits`.
    pub codebook: Vec<f32>,
    /// Flat row-major indices of the non-zero weights, ascending.
    pub positions: Vec<u32>,
    /// One code (index into `codebook`) per position.
    pub codes: Vec<u8>,
}

impl SharedLayer {
    /// The weight matrix this layer stands for: `codebook[code]` at every
    /// position, exact `0.0` elsewhere. `None` if a position or code is out of range.
    pub fn weights(&self) -> Option<Array2<f32>> {
        let mut w = Array2::zeros((self.rows, self.cols));
        self.write_into(w.view_mut()).then_some(w)
    }

    /// Writes [`Self::weights`] into `w` in place; false (and `w` untouched) if
    /// `w` has another shape or a position or code is out of range.
    pub fn write_into(&self, mut w: ArrayViewMut2<f32>) -> bool {
        let total = self.rows * self.cols;
        let fits = w.dim() == (self.rows, self.cols)
            && self.positions.len() == self.codes.len()
            && self.positions.iter().all(|&p| (p as usize) < total)
            && self
                .codes
                .iter()
                .all(|&c| (c as usize) < self.codebook.len());
        let Some(flat) = w.as_slice_mut().filter(|_| fits) else {
            return false;
        };
        flat.fill(0.0);
        for (&p, &c) in self.positions.iter().zip(&self.codes) {
            flat[p as usize] = self.codebook[c as usize];
        }
        true
    }
}

/// A whole model's shared weights. Biases are not shared: they stay f32 in the model.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedWeights {
    /// Bits per code; each codebook holds at most `2^bits` centroids.
    pub bits: u8,
    /// One entry per dense layer, in layer order.
    pub layers: Vec<SharedLayer>,
}

/// Clusters every dense layer's non-zero weights into `2^bits` centroids
/// (`bits` is clamped to `1..=8`, as codes are bytes). A layer with parameters
/// that is not dense is refused rather than left unshared.
pub fn share_weights(
    model: &Sequential,
    bits: u8,
    init: CodebookInit,
) -> Result<SharedWeights, UnsupportedLayer> {
    let bits = bits.clamp(1, 8);
    let k = 1usize << bits;
    let layers = model
        .dense_only("weight sharing")?
        .into_iter()
        .map(|(layer, d)| {
            let w = &d.weight.matrix();
            // Positions are u32 (a layer over 4G weights is far past any architecture limit).
            let (positions, values): (Vec<u32>, Vec<f32>) = (0u32..)
                .zip(w.iter().copied())
                .filter(|&(_, v)| v != 0.0)
                .unzip();
            let (codebook, codes) = kmeans_1d(&values, k, init, KMEANS_ITERS);
            SharedLayer {
                layer,
                rows: w.nrows(),
                cols: w.ncols(),
                codebook,
                positions,
                codes,
            }
        })
        .collect();
    Ok(SharedWeights { bits, layers })
}

impl SharedWeights {
    /// Writes `codebook[code]` into every position of every shared layer and
    /// exact `0.0` elsewhere. Layers the model does not have (or with another
    /// shape) are skipped.
    pub fn apply(&self, model: &mut Sequential) {
        for s in &self.layers {
            if let Some(Layer::Dense(d)) = model.layers_mut().get_mut(s.layer) {
                s.write_into(d.weight.matrix_mut());
            }
        }
    }

    /// Mean squared difference between the model's dense weights and the
    /// shared ones, over every entry of every shared layer; NaN if a layer
    /// does not match the model.
    pub fn reconstruction_error(&self, model: &Sequential) -> f64 {
        let (mut sum, mut count) = (0.0f64, 0usize);
        for s in &self.layers {
            let Some(d) = model.layers().get(s.layer).and_then(Layer::as_dense) else {
                return f64::NAN;
            };
            let Some(shared) = s.weights().filter(|w| w.dim() == d.weight.matrix().dim()) else {
                return f64::NAN;
            };
            sum += shared
                .iter()
                .zip(&d.weight.matrix())
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum::<f64>();
            count += shared.len();
        }
        if count == 0 { 0.0 } else { sum / count as f64 }
    }

    /// Reads the centroids back from a model the codebooks were applied to,
    /// e.g. after early stopping restored older weights: centroid `k` becomes
    /// the model's weight at the first position coded `k`.
    pub fn read_codebooks(&mut self, model: &Sequential) {
        for s in &mut self.layers {
            let Some(flat) = model
                .layers()
                .get(s.layer)
                .and_then(Layer::as_dense)
                .and_then(|d| d.weight.value().as_slice())
            else {
                continue;
            };
            let mut seen = vec![false; s.codebook.len()];
            for (&p, &c) in s.positions.iter().zip(&s.codes) {
                let (Some(v), Some(done)) = (flat.get(p as usize), seen.get_mut(c as usize)) else {
                    continue;
                };
                if !*done {
                    *done = true;
                    s.codebook[c as usize] = *v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Architecture;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    fn model(json: &str, seed: u64) -> Sequential {
        let a: Architecture = serde_json::from_str(json).expect("architecture parses");
        Sequential::new(&a, seed)
    }

    /// One `rows × cols` linear layer holding the given weights.
    fn single_layer(w: Array2<f32>) -> Sequential {
        let json = format!(
            r#"{{"input_dim": {}, "layers": [{{"type": "dense", "units": {}}}]}}"#,
            w.nrows(),
            w.ncols()
        );
        let mut m = model(&json, 0);
        if let Some(Layer::Dense(d)) = m.layers_mut().get_mut(0) {
            d.weight.set_value(w);
        }
        m
    }

    #[test]
    fn sharing_keeps_zeros_and_puts_every_weight_on_its_codebook() {
        let mut m = model(
            r#"{"input_dim": 6, "layers": [{"type": "dense", "units": 5, "activation": "relu"},
                {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 3}]}"#,
            3,
        );
        // Prune every third weight of the first layer.
        if let Some(Layer::Dense(d)) = m.layers_mut().get_mut(0) {
            d.weight
                .matrix_mut()
                .iter_mut()
                .step_by(3)
                .for_each(|v| *v = 0.0);
        }
        let before = m.clone();
        let shared = share_weights(&m, 2, CodebookInit::Linear).expect("dense");
        assert_eq!(shared.layers.len(), 2);
        assert_eq!(shared.layers[1].layer, 2, "dropout layers count in indices");
        assert_eq!(shared.layers[0].positions.len(), 20);
        assert!(shared.layers.iter().all(|l| l.codebook.len() <= 4));
        assert!(shared.reconstruction_error(&m) > 0.0);
        shared.apply(&mut m);
        assert_eq!(shared.reconstruction_error(&m), 0.0);
        for ((_, a), (_, b)) in before.dense_layers().zip(m.dense_layers()) {
            for (&x, &y) in a.weight.matrix().iter().zip(&b.weight.matrix()) {
                assert_eq!(
                    x == 0.0,
                    y == 0.0,
                    "zeros stay zero, non-zeros get a centroid"
                );
            }
            assert_eq!(a.bias, b.bias, "biases are not shared");
        }
        let s = &shared.layers[0];
        let w = m.layers()[0]
            .as_dense()
            .expect("dense")
            .weight
            .matrix()
            .to_owned();
        let flat = w.as_slice().expect("contiguous");
        for (&p, &c) in s.positions.iter().zip(&s.codes) {
            assert_eq!(flat[p as usize], s.codebook[c as usize]);
        }
    }

    #[test]
    fn the_reconstruction_error_is_the_hand_computed_mean_square() {
        // Values 1, 2 (and a zero) with one centroid: 1.5; errors 0.25, 0.25, 0 over 4 entries.
        let m = single_layer(ndarray::array![[1.0, 0.0], [2.0, 0.0]]);
        let shared = share_weights(&m, 1, CodebookInit::Linear).expect("dense");
        assert_eq!(
            shared.layers[0].codebook,
            vec![1.0, 2.0],
            "two values fit 2 centroids"
        );
        assert_eq!(shared.reconstruction_error(&m), 0.0);
        let mut one = shared.clone();
        one.layers[0].codebook = vec![1.5];
        one.layers[0].codes = vec![0, 0];
        assert!((one.reconstruction_error(&m) - 0.125).abs() < 1e-12);
    }

    #[test]
    fn more_bits_reconstruct_a_gaussian_layer_better() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let normal = Normal::new(0.0f32, 0.1).expect("normal");
        let w = Array2::from_shape_fn((64, 48), |_| normal.sample(&mut rng));
        let m = single_layer(w);
        for init in [CodebookInit::Linear, CodebookInit::Density] {
            let errors: Vec<f64> = (2..=8)
                .map(|bits| {
                    share_weights(&m, bits, init)
                        .expect("dense")
                        .reconstruction_error(&m)
                })
                .collect();
            assert!(
                errors.windows(2).all(|e| e[1] < e[0]),
                "{init:?}: {errors:?}"
            );
            // 8 bits over a σ = 0.1 Gaussian: far below the weights' variance 0.01.
            assert!(errors[6] < 1e-5, "{init:?}: {errors:?}");
        }
    }

    #[test]
    fn codebooks_are_read_back_from_the_model() {
        let mut m = single_layer(ndarray::array![[1.0, 0.0, 3.0], [2.0, 3.0, 1.0]]);
        let mut shared = share_weights(&m, 2, CodebookInit::Linear).expect("dense");
        assert_eq!(shared.layers[0].codebook, vec![1.0, 2.0, 3.0]);
        let mut moved = shared.clone();
        moved.layers[0].codebook = vec![1.5, 2.5, 3.5];
        moved.apply(&mut m);
        shared.read_codebooks(&m);
        assert_eq!(shared, moved);
    }
}
