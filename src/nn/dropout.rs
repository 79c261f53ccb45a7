//! Inverted dropout: while training each activation is kept with probability
//! `1 − rate` and scaled by `1/(1 − rate)`, so inference is the identity.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

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
}
