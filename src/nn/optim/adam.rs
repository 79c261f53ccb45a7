//! Adam (Kingma & Ba 2015) in PyTorch's formulation:
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr·m̂/(√v̂ + ε)` with `m̂ = m/(1−β1ᵗ)`, `v̂ = v/(1−β2ᵗ)`.
//! Defaults: β1 0.9, β2 0.999, ε 1e-8 (PyTorch; Keras uses ε = 1e-7 inside a slightly different form).

use ndarray::{Array2, Zip};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for Adam {
    fn default() -> Self {
        Self {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    pub m: Array2<f32>,
    pub v: Array2<f32>,
}

impl AdamState {
    pub fn new(like: &Array2<f32>) -> Self {
        Self {
            m: Array2::zeros(like.raw_dim()),
            v: Array2::zeros(like.raw_dim()),
        }
    }
}

/// One Adam update at step `t` (1-based) with learning rate `lr`.
pub fn step(
    hp: &Adam,
    lr: f32,
    t: u64,
    value: &mut Array2<f32>,
    grad: &Array2<f32>,
    state: &mut AdamState,
) {
    let t = t.max(1).min(i32::MAX as u64) as i32;
    let bc1 = 1.0 - (hp.beta1 as f64).powi(t);
    let bc2 = 1.0 - (hp.beta2 as f64).powi(t);
    let step_size = (lr as f64 / bc1) as f32;
    let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
    let (b1, b2, eps) = (hp.beta1, hp.beta2, hp.eps);
    Zip::from(value)
        .and(grad)
        .and(&mut state.m)
        .and(&mut state.v)
        .for_each(|p, &g, m, v| {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= step_size * *m / (v.sqrt() * inv_sqrt_bc2 + eps);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn adam_matches_hand_computed_steps() {
        // lr 0.1, β1 0.9, β2 0.999, ε 1e-8, p0 = 1.
        // t=1, g=0.5: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25 → p = 1 − 0.1·0.5/0.5 = 0.9
        // t=2, g=−1: m = 0.045 − 0.1 = −0.055, v = 0.00024975 + 0.001 = 0.00124975
        //   m̂ = −0.055/0.19 = −0.289474, v̂ = 0.00124975/0.001999 = 0.625188, √ = 0.790688
        //   p = 0.9 + 0.1·0.289474/0.790688 = 0.936610
        let hp = Adam {
            lr: 0.1,
            ..Adam::default()
        };
        let mut p = array![[1.0f32]];
        let mut s = AdamState::new(&p);
        step(&hp, 0.1, 1, &mut p, &array![[0.5f32]], &mut s);
        assert!((p[(0, 0)] - 0.9).abs() < 1e-6, "{}", p[(0, 0)]);
        step(&hp, 0.1, 2, &mut p, &array![[-1.0f32]], &mut s);
        assert!((p[(0, 0)] - 0.936_610).abs() < 1e-5, "{}", p[(0, 0)]);
    }
}
