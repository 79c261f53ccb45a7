//! L1 and L2 penalties on every layer's kernels (not biases, as Keras' `kernel_regularizer`):
//! `penalty = l1·Σ|W| + l2·Σ W²`, gradient `l1·sign(W) + 2·l2·W`.
//! The penalty is added to the reported loss and its gradient to the weight gradients.

use ndarray::Zip;
use serde::{Deserialize, Serialize};

use crate::model::Sequential;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Regularization {
    pub l1: f32,
    pub l2: f32,
}

impl Regularization {
    pub fn is_active(&self) -> bool {
        self.l1 != 0.0 || self.l2 != 0.0
    }

    /// `l1·Σ|W| + l2·Σ W²` over every layer's kernels ([`crate::layers::LayerOps::kernels`]).
    pub fn penalty(&self, model: &Sequential) -> f64 {
        if !self.is_active() {
            return 0.0;
        }
        let mut total = 0.0f64;
        for kernel in model.layers().iter().flat_map(|l| l.kernels()) {
            let (mut abs, mut sq) = (0.0f64, 0.0f64);
            for &w in &kernel.matrix() {
                abs += w.abs() as f64;
                sq += (w as f64) * (w as f64);
            }
            total += self.l1 as f64 * abs + self.l2 as f64 * sq;
        }
        total
    }

    /// Adds the penalty's gradient to every kernel's `grad`.
    pub fn add_gradients(&self, model: &mut Sequential) {
        if !self.is_active() {
            return;
        }
        let (l1, l2x2) = (self.l1, 2.0 * self.l2);
        for layer in model.layers_mut() {
            for kernel in layer.kernels_mut() {
                let (grad, value) = kernel.grad_views();
                Zip::from(grad).and(value).for_each(|g, &w| {
                    let sign = if w > 0.0 {
                        1.0
                    } else if w < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    *g += l1 * sign + l2x2 * w;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Architecture;

    #[test]
    fn l1_and_l2_gradients_match_finite_differences_of_the_penalty() {
        let arch: Architecture = serde_json::from_str(
            r#"{"input_dim": 3, "layers": [{"type": "dense", "units": 2, "activation": "relu"}]}"#,
        )
        .expect("parses");
        let mut model = Sequential::new(&arch, 11);
        let reg = Regularization { l1: 0.03, l2: 0.2 };
        for p in model.params_mut() {
            p.grad_matrix_mut().fill(0.0);
        }
        reg.add_gradients(&mut model);
        let grads = model.params()[0].grad_matrix().to_owned();
        let eps = 1e-3f32;
        for idx in ndarray::indices(grads.raw_dim()) {
            let mut p = model.clone();
            p.params_mut()[0].matrix_mut()[idx] += eps;
            let mut m = model.clone();
            m.params_mut()[0].matrix_mut()[idx] -= eps;
            let num = (reg.penalty(&p) - reg.penalty(&m)) / (2.0 * eps as f64);
            assert!(
                (num - grads[idx] as f64).abs() < 1e-3,
                "{idx:?}: {num} vs {}",
                grads[idx]
            );
        }
        // biases carry no penalty
        assert!(model.params()[1].grad_matrix().iter().all(|g| *g == 0.0));
    }
}
