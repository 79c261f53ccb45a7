//! Plain SGD: `p ← p − lr·g` (PyTorch `SGD`, Keras `SGD` without momentum).

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    pub lr: f32,
}

pub fn step(lr: f32, value: ArrayViewMut2<f32>, grad: ArrayView2<f32>) {
    Zip::from(value).and(grad).for_each(|p, &g| *p -= lr * g);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn sgd_moves_against_the_gradient_by_lr() {
        // p = 1.0, g = 0.5, lr = 0.1: 1.0 − 0.05 = 0.95, then 0.95 − 0.05 = 0.90
        let mut p = array![[1.0f32]];
        let g = array![[0.5f32]];
        step(0.1, p.view_mut(), g.view());
        assert!((p[(0, 0)] - 0.95).abs() < 1e-7);
        step(0.1, p.view_mut(), g.view());
        assert!((p[(0, 0)] - 0.90).abs() < 1e-7);
    }
}
