//! RMSprop (Hinton 2012), the form shared by PyTorch (`centered=False`, no momentum)
//! and Keras: `v ← ρ·v + (1−ρ)·g²`, `p ← p − lr·g/(√v + ε)`.
//! Defaults are Keras': ρ 0.9, ε 1e-7 (PyTorch calls ρ `alpha` and defaults it to 0.99).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsProp {
    pub lr: f32,
    pub rho: f32,
    pub eps: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RmsPropState {
    pub v: Array2<f32>,
}

impl RmsPropState {
    pub fn new(like: ArrayView2<f32>) -> Self {
        Self {
            v: Array2::zeros(like.raw_dim()),
        }
    }
}

pub fn step(
    hp: &RmsProp,
    lr: f32,
    value: ArrayViewMut2<f32>,
    grad: ArrayView2<f32>,
    state: &mut RmsPropState,
) {
    let (rho, eps) = (hp.rho, hp.eps);
    Zip::from(value)
        .and(grad)
        .and(&mut state.v)
        .for_each(|p, &g, v| {
            *v = rho * *v + (1.0 - rho) * g * g;
            *p -= lr * g / (v.sqrt() + eps);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rmsprop_matches_hand_computed_steps() {
        // lr 0.01, ρ 0.9, ε 1e-7, p0 = 1, g = 2:
        // v1 = 0.1·4 = 0.4,          p1 = 1 − 0.01·2/0.632456 = 0.968377
        // v2 = 0.36 + 0.4 = 0.76,    p2 = p1 − 0.01·2/0.871780 = 0.945435
        let hp = RmsProp {
            lr: 0.01,
            rho: 0.9,
            eps: 1e-7,
        };
        let mut p = array![[1.0f32]];
        let mut s = RmsPropState::new(p.view());
        let g = array![[2.0f32]];
        step(&hp, 0.01, p.view_mut(), g.view(), &mut s);
        assert!((p[(0, 0)] - 0.968_377).abs() < 1e-5, "{}", p[(0, 0)]);
        step(&hp, 0.01, p.view_mut(), g.view(), &mut s);
        assert!((p[(0, 0)] - 0.945_435).abs() < 1e-5, "{}", p[(0, 0)]);
    }
}
