//! SGD with heavy-ball momentum, PyTorch's form (`dampening = 0`):
//! `b ← μ·b + g`, `p ← p − lr·b` (first step `b = g`). With a constant lr this
//! equals Keras' `v ← μ·v − lr·g`, `p ← p + v`.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Momentum {
    pub lr: f32,
    pub momentum: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MomentumState {
    pub buf: Array2<f32>,
}

impl MomentumState {
    pub fn new(like: ArrayView2<f32>) -> Self {
        Self {
            buf: Array2::zeros(like.raw_dim()),
        }
    }
}

pub fn step(
    mu: f32,
    lr: f32,
    value: ArrayViewMut2<f32>,
    grad: ArrayView2<f32>,
    state: &mut MomentumState,
) {
    Zip::from(value)
        .and(grad)
        .and(&mut state.buf)
        .for_each(|p, &g, b| {
            *b = mu * *b + g;
            *p -= lr * *b;
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn momentum_matches_hand_computed_steps() {
        // lr 0.1, μ 0.9, p0 = 1, g = 1 every step:
        // b1 = 1,   p1 = 1 − 0.1 = 0.9
        // b2 = 1.9, p2 = 0.9 − 0.19 = 0.71
        // b3 = 2.71, p3 = 0.71 − 0.271 = 0.439
        let mut p = array![[1.0f32]];
        let g = array![[1.0f32]];
        let mut s = MomentumState::new(p.view());
        for expected in [0.9f32, 0.71, 0.439] {
            step(0.9, 0.1, p.view_mut(), g.view(), &mut s);
            assert!(
                (p[(0, 0)] - expected).abs() < 1e-6,
                "{} vs {expected}",
                p[(0, 0)]
            );
        }
    }
}
