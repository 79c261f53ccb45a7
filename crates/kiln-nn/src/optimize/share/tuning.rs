//! Centroid fine-tuning (Deep Compression §3.3) as a training-loop hook.
//!
//! The loss gradient of centroid `k` is the sum of the gradients of the weights
//! that share it (eq. 3). The centroids are updated with their own Adam, not
//! SGD: a centroid's summed gradient grows with its cluster (thousands of
//! members in a wide layer, a handful in a small one), so one SGD learning rate
//! would either blow up the big clusters or freeze the small ones. Adam's step
//! is about `lr` whatever the gradient's scale, so an `lr` around 1e-4–1e-3
//! (a small fraction of typical weight magnitudes) suits every layer.

use ndarray::Array2;

use super::codebook::SharedWeights;
use crate::layers::Layer;
use crate::model::Sequential;
use crate::train::optim::adam::{self, Adam, AdamState};
use crate::train::trainer::StepHook;

/// Use with [`crate::train::trainer::fit_with_hook`] on a model the codebooks were
/// applied to. Biases train normally; shared weights move only with their centroid.
#[derive(Debug, Clone)]
pub struct CentroidTuner {
    shared: SharedWeights,
    hp: Adam,
    /// Per layer: the codebook as a `[1, k]` tensor for the Adam step, and its state.
    centroids: Vec<(Array2<f32>, AdamState)>,
    grad: Vec<Array2<f32>>,
    t: u64,
}

impl CentroidTuner {
    pub fn new(shared: SharedWeights, lr: f32) -> Self {
        let centroids: Vec<(Array2<f32>, AdamState)> = shared
            .layers
            .iter()
            .map(|l| {
                let c = Array2::from_shape_fn((1, l.codebook.len()), |(_, j)| l.codebook[j]);
                let state = AdamState::new(c.view());
                (c, state)
            })
            .collect();
        let grad = centroids
            .iter()
            .map(|(c, _)| Array2::zeros(c.raw_dim()))
            .collect();
        Self {
            shared,
            hp: Adam {
                lr,
                ..Adam::default()
            },
            centroids,
            grad,
            t: 0,
        }
    }

    /// The tuned codebooks. If early stopping restored older weights, call
    /// [`SharedWeights::read_codebooks`] with the model to match them.
    pub fn into_shared(self) -> SharedWeights {
        self.shared
    }
}

impl StepHook for CentroidTuner {
    fn before_update(&mut self, _step: u64, model: &mut Sequential) {
        self.t += 1;
        for ((s, (c, state)), g) in self
            .shared
            .layers
            .iter_mut()
            .zip(&mut self.centroids)
            .zip(&mut self.grad)
        {
            let Some(wg) = model
                .layers()
                .get(s.layer)
                .and_then(Layer::as_dense)
                .and_then(|d| d.weight.grad().as_slice())
            else {
                continue;
            };
            g.fill(0.0);
            for (&p, &code) in s.positions.iter().zip(&s.codes) {
                if let (Some(&gw), Some(gc)) = (wg.get(p as usize), g.get_mut((0, code as usize))) {
                    *gc += gw;
                }
            }
            adam::step(&self.hp, self.hp.lr, self.t, c.view_mut(), g.view(), state);
            for (dst, &src) in s.codebook.iter_mut().zip(c.iter()) {
                *dst = src;
            }
        }
    }

    fn after_update(&mut self, _step: u64, model: &mut Sequential) {
        self.shared.apply(model);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Task;
    use crate::measure::evaluation::evaluate;
    use crate::optimize::share::{CodebookInit, share_weights};
    use crate::spec::Architecture;
    use crate::train::loss::Loss;
    use crate::train::optim::OptimizerConfig;
    use crate::train::regularization::Regularization;
    use crate::train::schedule::Schedule;
    use crate::train::trainer::{FitConfig, fit, fit_with_hook};
    use ndarray::{Array1, Array2};

    fn config(epochs: u32, lr: f32) -> FitConfig {
        FitConfig {
            epochs,
            batch_size: 32,
            optimizer: OptimizerConfig::Adam(Adam {
                lr,
                ..Adam::default()
            }),
            schedule: Schedule::Constant,
            loss: Loss::Mse,
            regularization: Regularization::default(),
            validation_split: 0.0,
            early_stopping: None,
            seed: 5,
            task: Task::Regression,
        }
    }

    fn loss(model: &Sequential, x: &Array2<f32>, y: &Array1<f32>) -> f64 {
        evaluate(
            model,
            x.view(),
            y.view(),
            Task::Regression,
            2,
            Loss::Mse,
            256,
        )
        .loss
    }

    /// Every non-zero weight is its codebook entry and every other weight is an exact zero.
    fn on_codebook(model: &Sequential, shared: &SharedWeights) {
        for s in &shared.layers {
            let d = model.layers()[s.layer].as_dense().expect("dense");
            assert_eq!(
                s.weights().expect("consistent"),
                d.weight.matrix(),
                "layer {}",
                s.layer
            );
        }
    }

    #[test]
    fn tuning_the_centroids_lowers_the_loss_and_keeps_weights_shared_and_pruned() {
        let arch: Architecture = serde_json::from_str(
            r#"{"input_dim": 6, "layers": [{"type": "dense", "units": 24, "activation": "tanh"},
                {"type": "dense", "units": 1}]}"#,
        )
        .expect("parses");
        let x = Array2::from_shape_fn((256, 6), |(i, j)| {
            (((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5) * 2.0
        });
        let y = Array1::from_shape_fn(256, |i| {
            let r = x.row(i);
            (r[0] * 1.5 - r[1]).sin() + 0.5 * r[2] * r[3] - 0.3 * r[4]
        });
        let mut model = Sequential::new(&arch, 1);
        fit(
            &mut model,
            x.view(),
            y.view(),
            &config(150, 0.01),
            &mut |_| {},
            &|| false,
        )
        .expect("trains");
        // Prune a third of the first layer through its mask, as pruning does.
        if let Some(Layer::Dense(d)) = model.layers_mut().get_mut(0) {
            let mask = Array2::from_shape_fn(d.weight.matrix().raw_dim(), |(i, j)| {
                if (i + j) % 3 == 0 { 0.0 } else { 1.0 }
            });
            d.weight.set_mask(mask);
            d.weight.apply_mask();
        }
        let pruned_zeros = model.layers()[0]
            .as_dense()
            .expect("dense")
            .weight
            .matrix()
            .iter()
            .filter(|v| **v == 0.0)
            .count();
        assert!(pruned_zeros >= 48);

        let shared = share_weights(&model, 2, CodebookInit::Linear).expect("dense");
        shared.apply(&mut model);
        let start = loss(&model, &x, &y);

        // Baseline: the same training with frozen centroids (lr 0), so only biases learn.
        let mut frozen_model = model.clone();
        let mut frozen = CentroidTuner::new(shared.clone(), 0.0);
        let cfg = config(30, 1e-3);
        fit_with_hook(
            &mut frozen_model,
            x.view(),
            y.view(),
            &cfg,
            &mut |_| {},
            &mut frozen,
            &|| false,
        )
        .expect("trains");
        let frozen_loss = loss(&frozen_model, &x, &y);
        assert_eq!(frozen.into_shared(), shared, "lr 0 leaves the codebooks");

        let mut tuner = CentroidTuner::new(shared.clone(), 1e-3);
        fit_with_hook(
            &mut model,
            x.view(),
            y.view(),
            &cfg,
            &mut |_| {},
            &mut tuner,
            &|| false,
        )
        .expect("trains");
        let tuned = tuner.into_shared();
        let tuned_loss = loss(&model, &x, &y);
        assert!(
            tuned_loss < frozen_loss && frozen_loss <= start,
            "start {start}, biases only {frozen_loss}, centroids tuned {tuned_loss}"
        );
        assert_ne!(tuned.layers[0].codebook, shared.layers[0].codebook);
        assert_eq!(tuned.layers[0].positions, shared.layers[0].positions);
        assert_eq!(tuned.layers[0].codes, shared.layers[0].codes);
        on_codebook(&model, &tuned);
        let zeros = model.layers()[0]
            .as_dense()
            .expect("dense")
            .weight
            .matrix()
            .iter()
            .filter(|v| **v == 0.0)
            .count();
        assert_eq!(zeros, pruned_zeros, "pruned weights stay zero");
    }

    #[test]
    fn a_centroid_gradient_is_the_sum_of_its_members_gradients() {
        let arch: Architecture =
            serde_json::from_str(r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 2}]}"#)
                .expect("parses");
        let mut model = Sequential::new(&arch, 0);
        if let Some(Layer::Dense(d)) = model.layers_mut().get_mut(0) {
            d.weight.set_value(ndarray::array![[1.0, 2.0], [1.0, 0.0]]);
            d.weight
                .grad_matrix_mut()
                .assign(&ndarray::array![[0.5, -3.0], [0.25, 9.0]]);
        }
        let shared = share_weights(&model, 1, CodebookInit::Linear).expect("dense");
        assert_eq!(shared.layers[0].codebook, vec![1.0, 2.0]);
        let mut tuner = CentroidTuner::new(shared, 0.1);
        tuner.before_update(0, &mut model);
        // Summed gradients: 0.75 for centroid 1.0 and −3 for 2.0; the zero's 9 is ignored.
        assert_eq!(tuner.grad[0], ndarray::array![[0.75, -3.0]]);
        // Adam's first step moves each centroid by lr against its gradient's sign.
        let c = tuner.shared.layers[0].codebook.clone();
        assert!(
            (c[0] - 0.9).abs() < 1e-6 && (c[1] - 2.1).abs() < 1e-6,
            "{c:?}"
        );
        tuner.after_update(0, &mut model);
        let w = &model.layers()[0].as_dense().expect("dense").weight.matrix();
        assert_eq!(w, ndarray::array![[c[0], c[1]], [c[0], 0.0]]);
    }
}
