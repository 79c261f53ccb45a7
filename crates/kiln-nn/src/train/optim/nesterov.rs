//! Nesterov momentum, PyTorch's form (`nesterov=True`, `dampening = 0`):
//! `b ← μ·b + g`, `p ← p − lr·(g + μ·b)`.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

pub use super::momentum::MomentumState as NesterovState;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nesterov {
    pub lr: f32,
    pub momentum: f32,
}

pub fn step(
    mu: f32,
    lr: f32,
    value: ArrayViewMut2<f32>,
    grad: ArrayView2<f32>,
    state: &mut NesterovState,
) {
    Zip::from(value)
        .and(grad)
        .and(&mut state.buf)
        .for_each(|p, &g, b| {
            *b = mu * *b + g;
            *p -= lr * (g + mu * *b);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn nesterov_matches_hand_computed_steps() {
        // lr 0.1, μ 0.9, p0 = 1, g = 1 every step:
        // b1 = 1,    p1 = 1 − 0.1·(1 + 0.9)     = 0.81
        // b2 = 1.9,  p2 = 0.81 − 0.1·(1 + 1.71) = 0.539
        // b3 = 2.71, p3 = 0.539 − 0.1·(1 + 2.439) = 0.1951
        let mut p = array![[1.0f32]];
        let g = array![[1.0f32]];
        let mut s = NesterovState::new(p.view());
        for expected in [0.81f32, 0.539, 0.1951] {
            step(0.9, 0.1, p.view_mut(), g.view(), &mut s);
            assert!(
                (p[(0, 0)] - expected).abs() < 1e-6,
                "{} vs {expected}",
                p[(0, 0)]
            );
        }
    }
}
