//! Adam (Kingma & Ba 2015) in PyTorch's formulation:
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr·m̂/(√v̂ + ε)` with `m̂ = m/(1−β1ᵗ)`, `v̂ = v/(1−β2ᵗ)`.
//! Defaults: β1 0.9, β2 0.999, ε 1e-8 (PyTorch; Keras uses ε = 1e-7 inside a slightly different form).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

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
    pub fn new(like: ArrayView2<f32>) -> Self {
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
    mut value: ArrayViewMut2<f32>,
    grad: ArrayView2<f32>,
    state: &mut AdamState,
) {
    let t = t.max(1).min(i32::MAX as u64) as i32;
    let bc1 = 1.0 - (hp.beta1 as f64).powi(t);
    let bc2 = 1.0 - (hp.beta2 as f64).powi(t);
    let c = Coeffs {
        b1: hp.beta1,
        b2: hp.beta2,
        eps: hp.eps,
        step_size: (lr as f64 / bc1) as f32,
        inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
    };
    let same_shape = value.shape() == grad.shape()
        && value.shape() == state.m.shape()
        && value.shape() == state.v.shape();
    match (
        value.as_slice_mut(),
        grad.as_slice(),
        state.m.as_slice_mut(),
        state.v.as_slice_mut(),
    ) {
        (Some(p), Some(g), Some(m), Some(v)) if same_shape => update(p, g, m, v, &c),
        _ => Zip::from(value)
            .and(grad)
            .and(&mut state.m)
            .and(&mut state.v)
            .for_each(|p, &g, m, v| c.apply(p, g, m, v)),
    }
}

/// The per-step constants of the update.
struct Coeffs {
    b1: f32,
    b2: f32,
    eps: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
}

impl Coeffs {
    /// The update of one parameter; every path runs exactly these operations in
    /// this order (no fused multiply-add), so all give the same bits.
    #[inline(always)]
    fn apply(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        *m = self.b1 * *m + (1.0 - self.b1) * g;
        *v = self.b2 * *v + (1.0 - self.b2) * g * g;
        *p -= self.step_size * *m / (v.sqrt() * self.inv_sqrt_bc2 + self.eps);
    }
}

/// Contiguous parameters: the loop compiled for the widest vectors this CPU has.
/// The update streams four arrays once per step; for small batches it was a
/// third of a training step when compiled for baseline x86-64 (SSE2).
fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Coeffs) {
    if p.len() >= PARALLEL_MIN && crate::kernels::parallel::ways() > 1 {
        // Elementwise, so halves updated on two threads give the same bits.
        let half = (p.len() / 2).next_multiple_of(64).min(p.len());
        let (p0, p1) = p.split_at_mut(half);
        let (g0, g1) = g.split_at(half);
        let (m0, m1) = m.split_at_mut(half);
        let (v0, v1) = v.split_at_mut(half);
        rayon::join(|| update(p0, g0, m0, v0, c), || update(p1, g1, m1, v1, c));
        return;
    }
    update_serial(p, g, m, v, c);
}

/// Parameters in one tensor from which the update is split over rayon's threads
/// (recursively, in halves): a 1200×1200 layer's update streams 23 MB a step.
const PARALLEL_MIN: usize = 1 << 18;

fn update_serial(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Coeffs) {
    #[cfg(target_arch = "x86_64")]
    {
        let f = crate::kernels::cpu::features();
        if f.avx512f {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { update_avx512(p, g, m, v, c) };
        }
        if f.avx2 {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { update_avx2(p, g, m, v, c) };
        }
    }
    update_any(p, g, m, v, c);
}

#[inline(always)]
fn update_any(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Coeffs) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        c.apply(p, g, m, v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn update_avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Coeffs) {
    update_any(p, g, m, v, c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn update_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Coeffs) {
    update_any(p, g, m, v, c);
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
        let mut s = AdamState::new(p.view());
        step(&hp, 0.1, 1, p.view_mut(), array![[0.5f32]].view(), &mut s);
        assert!((p[(0, 0)] - 0.9).abs() < 1e-6, "{}", p[(0, 0)]);
        step(&hp, 0.1, 2, p.view_mut(), array![[-1.0f32]].view(), &mut s);
        assert!((p[(0, 0)] - 0.936_610).abs() < 1e-5, "{}", p[(0, 0)]);
    }

    #[test]
    fn every_path_gives_the_bits_of_the_scalar_update() {
        every_path_gives_the_bits_of_the_scalar_update_at(1037);
        // Large enough to be split over threads.
        every_path_gives_the_bits_of_the_scalar_update_at(2 * PARALLEL_MIN + 37);
    }

    fn every_path_gives_the_bits_of_the_scalar_update_at(n: usize) {
        let wave = |k: f32| (0..n).map(move |i| (i as f32 * k).sin() * 3.0);
        let g: Vec<f32> = wave(0.37).collect();
        let start: Vec<f32> = wave(0.11).collect();
        let c = Coeffs {
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            step_size: 0.0013,
            inv_sqrt_bc2: 7.3,
        };
        type Update<'a> = &'a dyn Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]);
        let run = |f: Update| {
            let (mut p, mut m, mut v) = (start.clone(), vec![0.01f32; n], vec![0.02f32; n]);
            for _ in 0..3 {
                f(&mut p, &g, &mut m, &mut v);
            }
            (p, m, v)
        };
        let scalar = run(&|p, g, m, v| {
            for i in 0..p.len() {
                c.apply(&mut p[i], g[i], &mut m[i], &mut v[i]);
            }
        });
        let dispatched = run(&|p, g, m, v| update(p, g, m, v, &c));
        assert_eq!(dispatched, scalar);
        #[cfg(target_arch = "x86_64")]
        {
            let f = crate::kernels::cpu::features();
            if f.avx2 {
                // SAFETY: checked just above.
                let avx2 = run(&|p, g, m, v| unsafe { update_avx2(p, g, m, v, &c) });
                assert_eq!(avx2, scalar);
            }
            if f.avx512f {
                // SAFETY: checked just above.
                let avx512 = run(&|p, g, m, v| unsafe { update_avx512(p, g, m, v, &c) });
                assert_eq!(avx512, scalar);
            }
        }
        // A non-contiguous view takes the element-wise path to the same numbers.
        let hp = Adam::default();
        let full = Array2::from_shape_vec((2, 8), (0..16).map(|i| i as f32 * 0.1).collect())
            .expect("shape");
        let grad = full.mapv(|x| x - 0.7);
        let mut a = full.clone();
        let mut sa = AdamState::new(a.view());
        step(&hp, 0.01, 1, a.view_mut(), grad.view(), &mut sa);
        let mut b = full.t().to_owned();
        let mut sb = AdamState::new(b.view());
        step(
            &hp,
            0.01,
            1,
            b.view_mut(),
            grad.t().to_owned().view(),
            &mut sb,
        );
        assert_eq!(a, b.t());
    }
}
