//! The distillation loss: labels and the teacher's soft targets, blended.
//!
//! For a batch of `N` rows, student logits `z`, teacher soft targets `p`:
//! * CE: `α·CE(y, z) + (1−α)·T²·KL(p ‖ softmax(z/T))`; `∂KL/∂z = (softmax(z/T) − p)/(N·T)`,
//!   so the soft part's gradient is `(1−α)·T·(q − p)/N`.
//! * BCE: the same with Bernoulli distributions `p` and `σ(z/T)` on the first output.
//! * MSE: `α·MSE(y, a) + (1−α)·MSE(p, a)`; no temperature (outputs are values).
//!
//! KL rather than cross-entropy against `p`: they differ by `p`'s entropy, a
//! constant for the gradient, but KL is 0 for a student that matches the
//! teacher, so the reported loss says how far from the teacher it still is.
//! The `T²` keeps the soft gradient `O(1)` as `T` grows (Hinton et al. §2.1).
//! The soft part is computed in `f64`: at large `T`, `q − p` is a small
//! difference of numbers near `1/K`.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

use super::error::DistillError;
use crate::layers::activation::sigmoid;
use crate::model::Sequential;
use crate::train::loss::{Loss, class_index};

/// `α·hard + (1−α)·soft`, the soft part scaled by `T²` for the
/// cross-entropies so its gradient keeps its size as `T` changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistillLoss {
    /// The loss on the labels; also decides the soft part's form.
    pub hard: Loss,
    /// Softening of both teacher and student logits (CE and BCE only).
    pub temperature: f32,
    /// Weight of the hard (label) loss, in `[0, 1]`.
    pub alpha: f32,
}

impl DistillLoss {
    /// `Err` naming `temperature` or `alpha` when out of range; call on client settings.
    pub fn check(&self) -> Result<(), DistillError> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(DistillError::Temperature(self.temperature));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(DistillError::Alpha(self.alpha));
        }
        Ok(())
    }

    /// Teacher soft targets from teacher logits (`[rows, outputs]`): softmax(z/T) for CE, σ(z/T) for BCE,
    /// the teacher's outputs themselves for MSE (temperature does not apply to regression).
    pub fn soft_targets(&self, teacher_logits: ArrayView2<f32>) -> Array2<f32> {
        let t = self.temperature as f64;
        let mut out = teacher_logits.to_owned();
        match self.hard {
            Loss::CategoricalCrossentropy => {
                for mut row in out.axis_iter_mut(Axis(0)) {
                    let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64 / t));
                    let mut sum = 0.0f64;
                    for &v in row.iter() {
                        sum += (v as f64 / t - max).exp();
                    }
                    row.map_inplace(|v| *v = ((*v as f64 / t - max).exp() / sum) as f32);
                }
            }
            Loss::BinaryCrossentropy => {
                out.map_inplace(|v| *v = sigmoid((*v as f64 / t) as f32));
            }
            Loss::Mse => {}
        }
        out
    }

    /// α·hard(y, input) + (1−α)·T²·KL(soft ‖ softmax(input/T))   (CE, Hinton et al. 2015),
    /// α·BCE(y, input) + (1−α)·T²·KL_bernoulli(soft ‖ σ(input/T)) (BCE),
    /// α·MSE(y, input) + (1−α)·MSE(soft, input)                    (MSE),
    /// all batch means; writes ∂/∂input into grad. KL, not cross-entropy, so a perfect student has soft loss 0.
    pub fn value_and_grad(
        &self,
        input: ArrayView2<f32>,
        y: ArrayView1<f32>,
        soft: ArrayView2<f32>,
        mut grad: ArrayViewMut2<f32>,
    ) -> f64 {
        self.run(input, y, soft, Some(grad.view_mut()))
    }

    /// The loss [`Self::value_and_grad`] returns, without the gradient.
    pub fn value(&self, input: ArrayView2<f32>, y: ArrayView1<f32>, soft: ArrayView2<f32>) -> f64 {
        self.run(input, y, soft, None)
    }

    /// One pass over the rows: the loss, and the gradient when asked for.
    /// Rows and columns beyond the shortest of the operands are ignored
    /// (callers pass matching shapes; a mismatch must not panic a job).
    fn run(
        &self,
        input: ArrayView2<f32>,
        y: ArrayView1<f32>,
        soft: ArrayView2<f32>,
        mut grad: Option<ArrayViewMut2<f32>>,
    ) -> f64 {
        let rows = input.nrows().max(1) as f64;
        let alpha = self.alpha as f64;
        let t = self.temperature as f64;
        if let Some(g) = grad.as_mut() {
            g.fill(0.0);
        }
        let mut sum = 0.0f64;
        match self.hard {
            Loss::CategoricalCrossentropy => {
                let mut q = vec![0.0f64; input.ncols()];
                let batch = input.axis_iter(Axis(0)).zip(y).zip(soft.axis_iter(Axis(0)));
                for (r, ((z, &label), p)) in batch.enumerate() {
                    let k = class_index(label, z.len());
                    // Hard part: logsumexp(z) − z_k, gradient softmax(z) − onehot.
                    let (lse, _) = logsumexp(z.iter().map(|&v| v as f64));
                    let hard = lse - z[k] as f64;
                    // Soft part: KL(p ‖ q), q = softmax(z/T).
                    let (lse_t, _) = logsumexp(z.iter().map(|&v| v as f64 / t));
                    let (mut kl, mut p_sum) = (0.0f64, 0.0f64);
                    for ((qj, &zj), &pj) in q.iter_mut().zip(z).zip(p) {
                        let log_q = zj as f64 / t - lse_t;
                        *qj = log_q.exp();
                        let pj = pj as f64;
                        if pj > 0.0 {
                            kl += pj * (pj.ln() - log_q);
                        }
                        p_sum += pj;
                    }
                    sum += alpha * hard + (1.0 - alpha) * t * t * kl;
                    if let Some(g) = grad.as_mut() {
                        let mut g = g.row_mut(r);
                        // ∂KL/∂z_j = (q_j·Σp − p_j)/T: exact for the KL above even when
                        // the f32 soft targets do not sum to exactly 1.
                        for (j, ((gj, &zj), (&qj, &pj))) in
                            g.iter_mut().zip(z).zip(q.iter().zip(p)).enumerate()
                        {
                            let s = (zj as f64 - lse).exp() - if j == k { 1.0 } else { 0.0 };
                            let soft_g = (qj * p_sum - pj as f64) / t;
                            *gj = ((alpha * s + (1.0 - alpha) * t * t * soft_g) / rows) as f32;
                        }
                    }
                }
            }
            Loss::BinaryCrossentropy => {
                for (r, (z, &label)) in input.axis_iter(Axis(0)).zip(y).enumerate() {
                    let (Some(&z0), Some(&p0)) = (z.first(), soft.get((r, 0))) else {
                        continue;
                    };
                    let (z, p, label) = (z0 as f64, p0 as f64, label as f64);
                    let hard = softplus(z) - z * label;
                    let u = z / t;
                    // KL of Bernoullis, with ln q = −softplus(−u), ln(1−q) = −softplus(u).
                    let kl = xlogx(p) + xlogx(1.0 - p) + p * softplus(-u) + (1.0 - p) * softplus(u);
                    sum += alpha * hard + (1.0 - alpha) * t * t * kl;
                    if let Some(g) = grad.as_mut() {
                        let s = sigmoid64(z) - label;
                        let soft_g = (sigmoid64(u) - p) / t;
                        g[(r, 0)] = ((alpha * s + (1.0 - alpha) * t * t * soft_g) / rows) as f32;
                    }
                }
            }
            Loss::Mse => {
                let cells = rows * input.ncols().max(1) as f64;
                for (r, (a, &label)) in input.axis_iter(Axis(0)).zip(y).enumerate() {
                    for (j, &aj) in a.iter().enumerate() {
                        let aj = aj as f64;
                        let dh = aj - label as f64;
                        let ds = soft.get((r, j)).map_or(0.0, |&s| aj - s as f64);
                        sum += alpha * dh * dh + (1.0 - alpha) * ds * ds;
                        if let Some(g) = grad.as_mut() {
                            g[(r, j)] = (2.0 * (alpha * dh + (1.0 - alpha) * ds) / cells) as f32;
                        }
                    }
                }
                return sum / cells;
            }
        }
        sum / rows
    }
}

/// Logits the loss reads from a model's forward pass: the pre-activation when `loss.uses_logits(head)`,
/// else the outputs. Used for the teacher (and by tests for the student).
pub fn loss_input(model: &Sequential, loss: Loss, x: ArrayView2<f32>) -> Array2<f32> {
    if loss.uses_logits(model.output_activation()) {
        model.forward(x).logits
    } else {
        model.predict(x)
    }
}

/// `(ln Σ e^v, max v)`, stable for any finite values.
fn logsumexp(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = values.map(|v| (v - max).exp()).sum();
    (max + sum.ln(), max)
}

/// `ln(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `x ln x`, continued by 0 at 0 (and for invalid negative `x`).
fn xlogx(x: f64) -> f64 {
    if x > 0.0 { x * x.ln() } else { 0.0 }
}
