//! Batch normalization over channels (`[C, H, W]` samples) or features (`[F]`):
//! `z = γ · (x − μ) / √(σ² + ε) + β`, `a = act(z)`.
//!
//! Training normalizes with the batch's mean and (biased) variance and moves
//! the running statistics toward them in the backward pass, the one call every
//! training step makes with `&mut self` (`running ← m · running + (1 − m) ·
//! batch`, the variance unbiased, as PyTorch and Keras keep it). Inference uses
//! the running statistics, which makes the layer an affine map per channel: see
//! [`BatchNorm::affine`], which folding into the layer before uses.

use ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD};
use rand_chacha::ChaCha8Rng;

use crate::layers::activation::{self, Activation};
use crate::layers::conv2d::{flat, flat_mut};
use crate::layers::param::Param;
use crate::layers::shape::{Shape, ShapeError};
use crate::layers::{BackwardPass, LayerKind, LayerOps};
use crate::spec::LayerSpec;

#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// `[C, H, W]` or `[F]`: what it was built for.
    pub input: Shape,
    /// γ and β, each `[1, C]`.
    pub params: [Param; 2],
    pub running_mean: ArrayD<f32>,
    pub running_var: ArrayD<f32>,
    pub momentum: f32,
    pub epsilon: f32,
    pub activation: Activation,
}

/// Per-channel mean and biased variance of `x: [n, C·plane]` (two passes, in f64).
fn batch_stats(x: ArrayView2<f32>, channels: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let m = (x.nrows() * plane).max(1) as f64;
    let mut sum = vec![0.0f64; channels];
    for r in x.rows() {
        for (j, &v) in r.iter().enumerate() {
            sum[j / plane] += v as f64;
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / m).collect();
    let mut sq = vec![0.0f64; channels];
    for r in x.rows() {
        for (j, &v) in r.iter().enumerate() {
            sq[j / plane] += (v as f64 - mean[j / plane]).powi(2);
        }
    }
    (
        mean.iter().map(|&v| v as f32).collect(),
        sq.iter().map(|s| (s / m) as f32).collect(),
    )
}

impl BatchNorm {
    /// A fresh layer: γ = 1, β = 0, running mean 0 and variance 1.
    pub fn new(input: Shape, momentum: f32, epsilon: f32, activation: Activation) -> Self {
        let c = input.dims().first().copied().unwrap_or(0);
        Self {
            input,
            params: [
                Param::new(Array2::ones((1, c))),
                Param::new(Array2::zeros((1, c))),
            ],
            running_mean: ArrayD::zeros(vec![c]),
            running_var: ArrayD::ones(vec![c]),
            momentum,
            epsilon,
            activation,
        }
    }

    pub fn channels(&self) -> usize {
        self.input.dims()[0]
    }

    fn plane(&self) -> usize {
        self.input.dims()[1..].iter().product()
    }

    /// Inference as `z = scale[c] · x + shift[c]`.
    pub fn affine(&self) -> (Array1<f32>, Array1<f32>) {
        let (gamma, beta) = (self.params[0].matrix(), self.params[1].matrix());
        let c = self.channels();
        let scale = Array1::from_shape_fn(c, |i| {
            gamma[(0, i)] / (self.running_var[i] + self.epsilon).sqrt()
        });
        let shift = Array1::from_shape_fn(c, |i| beta[(0, i)] - scale[i] * self.running_mean[i]);
        (scale, shift)
    }

    /// `z[i, c·plane + j] = scale[c] · x + shift[c]`.
    fn apply(&self, x: ArrayView2<f32>, scale: &[f32], shift: &[f32], mut z: ArrayViewMut2<f32>) {
        let plane = self.plane();
        for (xr, mut zr) in x.rows().into_iter().zip(z.rows_mut()) {
            for (j, (zv, &xv)) in zr.iter_mut().zip(xr.iter()).enumerate() {
                let c = j / plane;
                *zv = scale[c] * xv + shift[c];
            }
        }
    }

    /// The batch's normalization as `z = scale[c] · x + shift[c]`, for a training pass.
    fn batch_affine(&self, x: ArrayView2<f32>) -> (Vec<f32>, Vec<f32>) {
        let (mean, var) = batch_stats(x, self.channels(), self.plane());
        let (gamma, beta) = (self.params[0].matrix(), self.params[1].matrix());
        let inv: Vec<f32> = var
            .iter()
            .map(|v| 1.0 / (v + self.epsilon).sqrt())
            .collect();
        let scale: Vec<f32> = (0..mean.len()).map(|c| gamma[(0, c)] * inv[c]).collect();
        let shift: Vec<f32> = (0..mean.len())
            .map(|c| beta[(0, c)] - scale[c] * mean[c])
            .collect();
        (scale, shift)
    }
}

impl LayerOps for BatchNorm {
    fn kind(&self) -> LayerKind {
        LayerKind::BatchNorm
    }

    fn spec(&self) -> LayerSpec {
        LayerSpec::BatchNorm {
            momentum: self.momentum,
            epsilon: self.epsilon,
            activation: self.activation,
        }
    }

    fn push_params<'a>(&'a self, out: &mut Vec<&'a Param>) {
        out.extend(&self.params);
    }

    fn push_params_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Param>) {
        out.extend(&mut self.params);
    }

    fn has_params(&self) -> bool {
        true
    }

    /// None: γ and β are not weights to penalize or prune (Keras does not regularize them either).
    fn kernels(&self) -> &[Param] {
        &[]
    }

    fn kernels_mut(&mut self) -> &mut [Param] {
        &mut []
    }

    /// PyTorch's names: γ is `weight`, β `bias`.
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f32>)> {
        vec![
            ("weight", flat(self.params[0].value().view())),
            ("bias", flat(self.params[1].value().view())),
            ("running_mean", self.running_mean.view()),
            ("running_var", self.running_var.view()),
        ]
    }

    fn tensor_mut(&mut self, name: &str) -> Option<ArrayViewMutD<'_, f32>> {
        let [gamma, beta] = &mut self.params;
        match name {
            "weight" => Some(flat_mut(gamma.value_mut())),
            "bias" => Some(flat_mut(beta.value_mut())),
            "running_mean" => Some(self.running_mean.view_mut()),
            "running_var" => Some(self.running_var.view_mut()),
            _ => None,
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        if *input != self.input {
            return Err(ShapeError::Mismatch {
                kind: LayerKind::BatchNorm,
                expected: self.input.clone(),
                found: input.clone(),
            });
        }
        Ok(input.clone())
    }

    /// The pre-activation `z`.
    fn scratch_shape(&self, input: &Shape) -> Result<Option<Shape>, ShapeError> {
        self.output_shape(input).map(Some)
    }

    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let (scale, shift) = self.affine();
        let mut z = Array2::zeros(x.raw_dim());
        self.apply(
            x,
            scale.as_slice().unwrap_or(&[]),
            shift.as_slice().unwrap_or(&[]),
            z.view_mut(),
        );
        activation::apply_inplace(self.activation, z.view_mut());
        z
    }

    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        mut scratch: ArrayViewMut2<f32>,
        out: ArrayViewMut2<f32>,
        _rng: &mut ChaCha8Rng,
    ) {
        let (scale, shift) = self.batch_affine(x);
        self.apply(x, &scale, &shift, scratch.view_mut());
        activation::forward(self.activation, scratch.view(), out);
    }

    fn backward(&mut self, mut pass: BackwardPass<'_>) {
        if !pass.g_is_wrt_logits {
            activation::backward(
                self.activation,
                pass.scratch,
                pass.output,
                pass.g_out.view_mut(),
            );
        }
        let (c_len, plane) = (self.channels(), self.plane());
        let x = pass.input;
        let (mean, var) = batch_stats(x, c_len, plane);
        let inv: Vec<f32> = var
            .iter()
            .map(|v| 1.0 / (v + self.epsilon).sqrt())
            .collect();
        let g = pass.g_out.view();
        let m = (x.nrows() * plane).max(1);
        // Σ g and Σ g·x̂ per channel, in f64.
        let mut sum_g = vec![0.0f64; c_len];
        let mut sum_gx = vec![0.0f64; c_len];
        for (xr, gr) in x.rows().into_iter().zip(g.rows()) {
            for (j, (&xv, &gv)) in xr.iter().zip(gr.iter()).enumerate() {
                let c = j / plane;
                let xhat = (xv - mean[c]) * inv[c];
                sum_g[c] += gv as f64;
                sum_gx[c] += (gv * xhat) as f64;
            }
        }
        {
            let mut dgamma = self.params[0].grad_matrix_mut();
            for c in 0..c_len {
                dgamma[(0, c)] = sum_gx[c] as f32;
            }
        }
        {
            let mut dbeta = self.params[1].grad_matrix_mut();
            for c in 0..c_len {
                dbeta[(0, c)] = sum_g[c] as f32;
            }
        }
        if let Some(mut dx) = pass.g_in {
            let gamma = self.params[0].matrix();
            for ((xr, gr), mut dr) in x.rows().into_iter().zip(g.rows()).zip(dx.rows_mut()) {
                for (j, ((&xv, &gv), d)) in xr.iter().zip(gr.iter()).zip(dr.iter_mut()).enumerate()
                {
                    let c = j / plane;
                    let xhat = (xv - mean[c]) * inv[c];
                    let mg = (sum_g[c] / m as f64) as f32;
                    let mgx = (sum_gx[c] / m as f64) as f32;
                    *d = gamma[(0, c)] * inv[c] * (gv - mg - xhat * mgx);
                }
            }
        }
        // Move the running statistics toward this batch's.
        let unbias = if m > 1 {
            m as f32 / (m - 1) as f32
        } else {
            1.0
        };
        let mo = self.momentum;
        for c in 0..c_len {
            self.running_mean[c] = mo * self.running_mean[c] + (1.0 - mo) * mean[c];
            self.running_var[c] = mo * self.running_var[c] + (1.0 - mo) * var[c] * unbias;
        }
    }
}
