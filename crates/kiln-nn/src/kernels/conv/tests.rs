use ndarray::{Array1, Array2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::spec::Padding;

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random::<f32>() * 2.0 - 1.0)
}

/// Geometries covering stride, dilation, every padding form, groups and depthwise.
fn cases() -> Vec<Conv2dGeometry> {
    let g = |input: [usize; 3], f, k: [usize; 2], s, d, p, groups| {
        Conv2dGeometry::new(&input, f, k, s, d, p, groups).expect("valid case")
    };
    vec![
        g([1, 6, 6], 2, [3, 3], [1, 1], [1, 1], Padding::Valid, 1),
        g([2, 7, 5], 3, [3, 2], [2, 1], [1, 1], Padding::Same, 1),
        g(
            [2, 7, 7],
            2,
            [3, 3],
            [1, 2],
            [2, 1],
            Padding::Explicit([1, 0, 2, 1]),
            1,
        ),
        g([4, 5, 5], 6, [3, 3], [1, 1], [1, 1], Padding::Same, 2),
        g([3, 5, 6], 3, [3, 3], [2, 2], [1, 1], Padding::Same, 3),
        g([3, 4, 4], 5, [1, 1], [1, 1], [1, 1], Padding::Valid, 1),
    ]
}

#[test]
fn the_im2col_forward_matches_the_direct_convolution() {
    for (case, g) in cases().iter().enumerate() {
        let x = random(3, g.input_size(), case as u64);
        let w = random(g.filters, g.patch_len(), 100 + case as u64);
        let b = Array1::from_shape_fn(g.filters, |f| f as f32 * 0.1 - 0.2);
        let mut z = Array2::zeros((3, g.output_size()));
        forward(g, x.view(), w.view(), Some(b.view()), z.view_mut());
        let expected = reference::forward(g, x.view(), w.view(), b.as_slice());
        for (a, e) in z.iter().zip(expected.iter()) {
            assert!((*a as f64 - e).abs() < 1e-5, "case {case}: {a} vs {e}");
        }
    }
}

#[test]
fn a_hand_computed_convolution() {
    // 3×3 input 1..9, 2×2 kernel of ones, valid: each output sums a 2×2 window.
    let g = Conv2dGeometry::new(&[1, 3, 3], 1, [2, 2], [1, 1], [1, 1], Padding::Valid, 1)
        .expect("fits");
    let x = Array2::from_shape_vec((1, 9), (1..=9).map(|v| v as f32).collect()).expect("9");
    let w = Array2::ones((1, 4));
    let mut z = Array2::zeros((1, 4));
    forward(&g, x.view(), w.view(), None, z.view_mut());
    assert_eq!(z.as_slice().expect("standard"), &[12.0, 16.0, 24.0, 28.0]);
}

/// `L = Σ R ⊙ z`; every gradient of the fast backward against central differences
/// of the f64 reference.
#[test]
fn conv_gradients_match_finite_differences() {
    for (case, g) in cases().iter().enumerate() {
        let n = 2;
        let x = random(n, g.input_size(), 10 + case as u64);
        let w = random(g.filters, g.patch_len(), 20 + case as u64);
        let b: Vec<f32> = (0..g.filters).map(|f| f as f32 * 0.05).collect();
        let r = random(n, g.output_size(), 30 + case as u64);
        let loss = |x: &Array2<f32>, w: &Array2<f32>, b: &[f32]| -> f64 {
            let z = reference::forward(g, x.view(), w.view(), Some(b));
            z.iter().zip(r.iter()).map(|(z, r)| z * *r as f64).sum()
        };
        let mut dw = Array2::zeros(w.raw_dim());
        let mut db = Array1::zeros(g.filters);
        let mut dx = Array2::zeros(x.raw_dim());
        backward(
            g,
            x.view(),
            w.view(),
            r.view(),
            dw.view_mut(),
            Some(db.view_mut()),
            Some(dx.view_mut()),
        );
        let eps = 1e-2f32;
        let tol = 2e-3;
        for idx in (0..w.len()).step_by(3) {
            let (f, k) = (idx / w.ncols(), idx % w.ncols());
            let (mut p, mut m) = (w.clone(), w.clone());
            p[(f, k)] += eps;
            m[(f, k)] -= eps;
            let num = (loss(&x, &p, &b) - loss(&x, &m, &b)) / (2.0 * eps as f64);
            assert!(
                (num - dw[(f, k)] as f64).abs() < tol,
                "case {case} w[{f},{k}]"
            );
        }
        for f in 0..g.filters {
            let (mut p, mut m) = (b.clone(), b.clone());
            p[f] += eps;
            m[f] -= eps;
            let num = (loss(&x, &w, &p) - loss(&x, &w, &m)) / (2.0 * eps as f64);
            assert!((num - db[f] as f64).abs() < tol, "case {case} b[{f}]");
        }
        for idx in (0..x.len()).step_by(2) {
            let (i, j) = (idx / x.ncols(), idx % x.ncols());
            let (mut p, mut m) = (x.clone(), x.clone());
            p[(i, j)] += eps;
            m[(i, j)] -= eps;
            let num = (loss(&p, &w, &b) - loss(&m, &w, &b)) / (2.0 * eps as f64);
            assert!(
                (num - dx[(i, j)] as f64).abs() < tol,
                "case {case} x[{i},{j}]"
            );
        }
    }
}
