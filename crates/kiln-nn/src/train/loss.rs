//! Losses, all averaged over the batch (Keras' and PyTorch's `mean` reduction).
//!
//! * Binary cross-entropy is computed **from logits**:
//!   `ℓ = max(z,0) − z·y + ln(1 + e^{−|z|})`, `∂ℓ/∂z = σ(z) − y` — finite for any `z`.
//!   With a sigmoid head the trainer feeds the pre-activation; with any other
//!   head the output itself is read as a logit.
//! * Categorical cross-entropy is fused with softmax, from logits:
//!   `ℓ = logsumexp(z) − z_y`, `∂ℓ/∂z = softmax(z) − onehot(y)`. Targets are class indices.
//! * MSE is `mean((a − y)²)` over rows and outputs; `∂/∂a = 2(a − y)/(rows·outputs)`.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use serde::{Deserialize, Serialize};

use crate::layers::activation::{Activation, sigmoid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Mse,
}

impl Loss {
    pub fn as_str(self) -> &'static str {
        match self {
            Loss::BinaryCrossentropy => "binary_crossentropy",
            Loss::CategoricalCrossentropy => "categorical_crossentropy",
            Loss::Mse => "mse",
        }
    }

    pub fn parse(s: &str) -> Option<Loss> {
        match s {
            "binary_crossentropy" => Some(Loss::BinaryCrossentropy),
            "categorical_crossentropy" | "sparse_categorical_crossentropy" => {
                Some(Loss::CategoricalCrossentropy)
            }
            "mse" | "mean_squared_error" => Some(Loss::Mse),
            _ => None,
        }
    }

    /// True when, for a head with `activation`, the loss reads the last
    /// pre-activation (and its gradient skips the activation's derivative).
    pub fn uses_logits(self, activation: Activation) -> bool {
        matches!(
            (self, activation),
            (Loss::BinaryCrossentropy, Activation::Sigmoid)
                | (Loss::CategoricalCrossentropy, Activation::Softmax)
        )
    }

    /// Mean loss of a batch. `input` is logits or outputs as [`Self::uses_logits`] says.
    pub fn value(self, input: ArrayView2<f32>, y: ArrayView1<f32>) -> f64 {
        let rows = input.nrows().max(1) as f64;
        match self {
            Loss::BinaryCrossentropy => {
                let mut sum = 0.0f64;
                for (row, &t) in input.axis_iter(Axis(0)).zip(y) {
                    let z = row[0];
                    sum += (z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()) as f64;
                }
                sum / rows
            }
            Loss::CategoricalCrossentropy => {
                let mut sum = 0.0f64;
                for (row, &t) in input.axis_iter(Axis(0)).zip(y) {
                    let (lse, _) = logsumexp(row);
                    sum += (lse - row[class_index(t, row.len())]) as f64;
                }
                sum / rows
            }
            Loss::Mse => {
                let mut sum = 0.0f64;
                for (row, &t) in input.axis_iter(Axis(0)).zip(y) {
                    for &a in row {
                        let d = (a - t) as f64;
                        sum += d * d;
                    }
                }
                sum / (rows * input.ncols().max(1) as f64)
            }
        }
    }

    /// Mean loss of a batch, writing `∂(mean loss)/∂input` into `grad` (same shape as `input`).
    pub fn value_and_grad(
        self,
        input: ArrayView2<f32>,
        y: ArrayView1<f32>,
        mut grad: ArrayViewMut2<f32>,
    ) -> f64 {
        let rows = input.nrows().max(1);
        let inv_rows = 1.0 / rows as f32;
        let mut sum = 0.0f64;
        match self {
            Loss::BinaryCrossentropy => {
                for ((row, mut g), &t) in input
                    .axis_iter(Axis(0))
                    .zip(grad.axis_iter_mut(Axis(0)))
                    .zip(y)
                {
                    let z = row[0];
                    sum += (z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()) as f64;
                    g[0] = (sigmoid(z) - t) * inv_rows;
                }
            }
            Loss::CategoricalCrossentropy => {
                for ((row, mut g), &t) in input
                    .axis_iter(Axis(0))
                    .zip(grad.axis_iter_mut(Axis(0)))
                    .zip(y)
                {
                    let (lse, max) = logsumexp(row);
                    let k = class_index(t, row.len());
                    sum += (lse - row[k]) as f64;
                    let shift = lse - max;
                    for (gj, &zj) in g.iter_mut().zip(row) {
                        *gj = (zj - max - shift).exp() * inv_rows;
                    }
                    g[k] -= inv_rows;
                }
            }
            Loss::Mse => {
                let cols = input.ncols().max(1);
                let scale = 2.0 / (rows * cols) as f32;
                for ((row, mut g), &t) in input
                    .axis_iter(Axis(0))
                    .zip(grad.axis_iter_mut(Axis(0)))
                    .zip(y)
                {
                    for (gj, &a) in g.iter_mut().zip(row) {
                        let d = a - t;
                        sum += (d as f64) * (d as f64);
                        *gj = d * scale;
                    }
                }
                return sum / (rows * cols) as f64;
            }
        }
        sum / rows as f64
    }
}

/// `(ln Σ e^{z}, max z)` of a row, computed stably.
fn logsumexp(row: ArrayView1<f32>) -> (f32, f32) {
    let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
    (max + sum.ln(), max)
}

/// A class label stored as `f32`, clamped into `0..classes` so a bad label cannot index out of bounds.
#[inline]
pub fn class_index(label: f32, classes: usize) -> usize {
    if label.is_finite() && label > 0.0 {
        (label as usize).min(classes.saturating_sub(1))
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2, array};

    fn check_grad(loss: Loss, input: Array2<f32>, y: Array1<f32>) {
        let mut grad = Array2::zeros(input.raw_dim());
        let v = loss.value_and_grad(input.view(), y.view(), grad.view_mut());
        assert!((v - loss.value(input.view(), y.view())).abs() < 1e-9);
        let eps = 1e-2f32;
        for idx in ndarray::indices(input.raw_dim()) {
            let mut p = input.clone();
            p[idx] += eps;
            let mut m = input.clone();
            m[idx] -= eps;
            let num = (loss.value(p.view(), y.view()) - loss.value(m.view(), y.view()))
                / (2.0 * eps as f64);
            assert!(
                (num - grad[idx] as f64).abs() < 1e-3,
                "{loss:?} at {idx:?}: numeric {num}, analytic {}",
                grad[idx]
            );
        }
    }

    #[test]
    fn binary_crossentropy_from_logits_gradient_matches_finite_differences() {
        check_grad(
            Loss::BinaryCrossentropy,
            array![[-2.0], [0.3], [4.0], [-0.7]],
            array![0.0, 1.0, 0.0, 1.0],
        );
    }

    #[test]
    fn softmax_crossentropy_gradient_matches_finite_differences() {
        check_grad(
            Loss::CategoricalCrossentropy,
            array![[1.0, -0.5, 0.2], [0.1, 2.0, -1.0]],
            array![2.0, 1.0],
        );
    }

    #[test]
    fn mse_gradient_matches_finite_differences() {
        check_grad(
            Loss::Mse,
            array![[1.5], [-0.2], [3.0]],
            array![1.0, 0.0, 2.5],
        );
    }

    #[test]
    fn crossentropy_from_logits_is_finite_for_extreme_logits_and_matches_the_closed_form() {
        let v = Loss::BinaryCrossentropy.value(
            array![[1000.0f32], [-1000.0]].view(),
            array![0.0, 1.0].view(),
        );
        assert!((v - 1000.0).abs() < 1e-3, "{v}");
        // −ln σ(0) = ln 2
        let v = Loss::BinaryCrossentropy.value(array![[0.0f32]].view(), array![1.0].view());
        assert!((v - std::f64::consts::LN_2).abs() < 1e-6);
        // uniform logits over 4 classes: ln 4
        let v = Loss::CategoricalCrossentropy
            .value(array![[3.0f32, 3.0, 3.0, 3.0]].view(), array![2.0].view());
        assert!((v - 4f64.ln()).abs() < 1e-6);
    }
}
