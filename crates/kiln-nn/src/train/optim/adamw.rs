//! AdamW (Loshchilov & Hutter 2019) in PyTorch's formulation: decoupled weight
//! decay `p ← p·(1 − lr·λ)` first, then the Adam update of [`super::adam`].
//! Default `weight_decay` λ = 0.01 (PyTorch). Decay applies to every parameter, biases included, as in PyTorch.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::adam::{self, Adam, AdamState};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    pub adam: Adam,
    pub weight_decay: f32,
}

pub fn step(
    hp: &AdamW,
    lr: f32,
    t: u64,
    mut value: ArrayViewMut2<f32>,
    grad: ArrayView2<f32>,
    state: &mut AdamState,
) {
    let decay = 1.0 - lr * hp.weight_decay;
    value.map_inplace(|p| *p *= decay);
    adam::step(&hp.adam, lr, t, value, grad, state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn adamw_decays_then_applies_adam() {
        // lr 0.1, λ 0.5, p0 = 1, g = 0.5 at t=1: decay → 1·(1 − 0.05) = 0.95; Adam step −0.1 → 0.85
        // t=2, g = 0.5: decay → 0.85·0.95 = 0.8075; m = 0.095, v = 0.00049975
        //   m̂ = 0.5, v̂ = 0.25 → step 0.1 → 0.7075
        let hp = AdamW {
            adam: Adam {
                lr: 0.1,
                ..Adam::default()
            },
            weight_decay: 0.5,
        };
        let mut p = array![[1.0f32]];
        let mut s = AdamState::new(p.view());
        let g = array![[0.5f32]];
        step(&hp, 0.1, 1, p.view_mut(), g.view(), &mut s);
        assert!((p[(0, 0)] - 0.85).abs() < 1e-6, "{}", p[(0, 0)]);
        step(&hp, 0.1, 2, p.view_mut(), g.view(), &mut s);
        assert!((p[(0, 0)] - 0.7075).abs() < 1e-5, "{}", p[(0, 0)]);
    }
}
