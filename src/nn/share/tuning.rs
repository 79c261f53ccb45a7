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
use crate::nn::layer::Layer;
use crate::nn::model::Sequential;
use crate::nn::optim::adam::{self, Adam, AdamState};
use crate::nn::trainer::StepHook;

/// Use with [`crate::nn::trainer::fit_with_hook`] on a model the codebooks were
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
                let state = AdamState::new(&c);
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
                .and_then(|d| d.weight.grad.as_slice())
            else {
                continue;
            };
            g.fill(0.0);
            for (&p, &code) in s.positions.iter().zip(&s.codes) {
                if let (Some(&gw), Some(gc)) = (wg.get(p as usize), g.get_mut((0, code as usize))) {
                    *gc += gw;
                }
            }
            adam::step(&self.hp, self.hp.lr, self.t, c, g, state);
            for (dst, &src) in s.codebook.iter_mut().zip(c.iter()) {
                *dst = src;
            }
        }
    }

    fn after_update(&mut self, _step: u64, model: &mut Sequential) {
        self.shared.apply(model);
    }
}
