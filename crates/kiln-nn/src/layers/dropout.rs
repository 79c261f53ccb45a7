//! Inverted dropout: while training each activation is kept with probability
//! `1 − rate` and scaled by `1/(1 − rate)`, so inference is the identity.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::layers::param::Param;
use crate::layers::shape::{Shape, ShapeError};
use crate::layers::{BackwardPass, LayerKind, LayerOps};
use crate::spec::LayerSpec;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    pub rate: f32,
}

impl Dropout {
    /// Fills `mask` with 0 or `1/(1 − rate)` and writes `out = x ⊙ mask`.
    pub fn forward_train(
        &self,
        x: ArrayView2<f32>,
        mut mask: ArrayViewMut2<f32>,
        mut out: ArrayViewMut2<f32>,
        rng: &mut ChaCha8Rng,
    ) {
        if self.rate <= 0.0 {
            mask.fill(1.0);
            out.assign(&x);
            return;
        }
        let keep = 1.0 / (1.0 - self.rate);
        let rate = self.rate;
        mask.map_inplace(|m| {
            *m = if rng.random::<f32>() < rate {
                0.0
            } else {
                keep
            }
        });
        Zip::from(&mut out)
            .and(&x)
            .and(&mask)
            .for_each(|o, &x, &m| *o = x * m);
    }

    /// `g ← g ⊙ mask`.
    pub fn backward(mask: ArrayView2<f32>, g_out: ArrayView2<f32>, mut g_in: ArrayViewMut2<f32>) {
        Zip::from(&mut g_in)
            .and(&g_out)
            .and(&mask)
            .for_each(|gi, &go, &m| *gi = go * m);
    }
}

impl LayerOps for Dropout {
    fn kind(&self) -> LayerKind {
        LayerKind::Dropout
    }

    fn spec(&self) -> LayerSpec {
        LayerSpec::Dropout { rate: self.rate }
    }

    fn push_params<'a>(&'a self, _out: &mut Vec<&'a Param>) {}

    fn push_params_mut<'a>(&'a mut self, _out: &mut Vec<&'a mut Param>) {}

    fn has_params(&self) -> bool {
        false
    }

    fn kernels(&self) -> &[Param] {
        &[]
    }

    fn kernels_mut(&mut self) -> &mut [Param] {
        &mut []
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        Ok(input.clone())
    }

    /// The mask drawn for the batch.
    fn scratch_shape(&self, input: &Shape) -> Result<Option<Shape>, ShapeError> {
        Ok(Some(input.clone()))
    }

    fn is_identity_at_inference(&self) -> bool {
        true
    }

    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        x.to_owned()
    }

    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        scratch: ArrayViewMut2<f32>,
        out: ArrayViewMut2<f32>,
        rng: &mut ChaCha8Rng,
    ) {
        Dropout::forward_train(self, x, scratch, out, rng);
    }

    fn backward(&mut self, pass: BackwardPass<'_>) {
        if let Some(g_in) = pass.g_in {
            Dropout::backward(pass.scratch, pass.g_out.view(), g_in);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;

    #[test]
    fn dropout_zeroes_about_rate_of_the_activations_and_keeps_the_mean() {
        let d = Dropout { rate: 0.25 };
        let x = Array2::<f32>::ones((100, 100));
        let mut mask = Array2::zeros((100, 100));
        let mut out = Array2::zeros((100, 100));
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        d.forward_train(x.view(), mask.view_mut(), out.view_mut(), &mut rng);
        let dropped = out.iter().filter(|v| **v == 0.0).count() as f64 / 10_000.0;
        assert!((dropped - 0.25).abs() < 0.03, "dropped {dropped}");
        let mean = out.mean().expect("non-empty");
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        assert!(
            out.iter()
                .all(|v| *v == 0.0 || (*v - 4.0 / 3.0).abs() < 1e-6)
        );
    }

    #[test]
    fn dropout_backward_matches_finite_differences_for_a_fixed_mask() {
        // With the mask drawn once, L(x) = Σ w ⊙ dropout(x) is linear in x, so a
        // central difference is exact up to rounding; seeding the forward pass
        // the same way each time keeps the mask fixed.
        let d = Dropout { rate: 0.5 };
        let x = Array2::from_shape_fn((3, 4), |(i, j)| (i as f32 - 1.0) * 0.7 + j as f32 * 0.3);
        let w = Array2::from_shape_fn((3, 4), |(i, j)| ((i * 4 + j) as f32 * 0.37).sin());
        let loss = |x: &Array2<f32>| -> (f64, Array2<f32>) {
            let mut mask = Array2::zeros(x.raw_dim());
            let mut out = Array2::zeros(x.raw_dim());
            d.forward_train(
                x.view(),
                mask.view_mut(),
                out.view_mut(),
                &mut ChaCha8Rng::seed_from_u64(9),
            );
            let l = out
                .iter()
                .zip(w.iter())
                .map(|(o, w)| f64::from(o * w))
                .sum();
            (l, mask)
        };
        let (_, mask) = loss(&x);
        assert!(mask.iter().any(|m| *m == 0.0) && mask.iter().any(|m| *m == 2.0));
        let mut grad = Array2::zeros(x.raw_dim());
        Dropout::backward(mask.view(), w.view(), grad.view_mut());
        let eps = 1e-2f32;
        for i in 0..3 {
            for j in 0..4 {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[(i, j)] += eps;
                down[(i, j)] -= eps;
                let numeric = (loss(&up).0 - loss(&down).0) / f64::from(2.0 * eps);
                let analytic = f64::from(grad[(i, j)]);
                assert!(
                    (numeric - analytic).abs() < 1e-4,
                    "({i},{j}): {numeric} vs {analytic}"
                );
            }
        }
    }
}
