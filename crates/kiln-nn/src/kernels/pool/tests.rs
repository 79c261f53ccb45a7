use ndarray::{Array2, array};

use super::*;
use crate::spec::Padding;

fn geom(input: [usize; 3], k: usize, s: usize, padding: Padding) -> Conv2dGeometry {
    Conv2dGeometry::new(&input, input[0], [k, k], [s, s], [1, 1], padding, input[0]).expect("fits")
}

#[test]
fn max_and_average_pools_by_hand() {
    // One 4×4 plane, 2×2 windows, stride 2.
    let x = Array2::from_shape_vec((1, 16), (0..16).map(|v| v as f32).collect()).expect("16");
    let g = geom([1, 4, 4], 2, 2, Padding::Valid);
    let mut out = Array2::zeros((1, 4));
    let mut arg = Array2::zeros((1, 4));
    max_forward(&g, x.view(), out.view_mut(), Some(arg.view_mut()));
    assert_eq!(out, array![[5.0, 7.0, 13.0, 15.0]]);
    assert_eq!(arg, array![[5.0, 7.0, 13.0, 15.0]]);
    avg_forward(&g, x.view(), out.view_mut());
    assert_eq!(out, array![[2.5, 4.5, 10.5, 12.5]]);
    // `same` on 3×3 with a 2×2 window pads the end: the corner window sees one value.
    let x3 = Array2::from_shape_vec((1, 9), (1..=9).map(|v| v as f32).collect()).expect("9");
    let g3 = geom([1, 3, 3], 2, 2, Padding::Same);
    let mut out3 = Array2::zeros((1, 4));
    avg_forward(&g3, x3.view(), out3.view_mut());
    assert_eq!(out3, array![[3.0, 4.5, 7.5, 9.0]]);
    let mut gap = Array2::zeros((1, 1));
    global_avg_forward(9, x3.view(), gap.view_mut());
    assert_eq!(gap, array![[5.0]]);
}

/// `L = Σ R ⊙ pool(x)` against central differences (inputs distinct, so max is smooth).
#[test]
fn pool_gradients_match_finite_differences() {
    let g = geom([2, 5, 5], 3, 2, Padding::Same);
    let n = 2;
    let x = Array2::from_shape_fn((n, g.input_size()), |(i, j)| {
        ((i * 53 + j * 37) % 101) as f32 * 0.013 - 0.6
    });
    let r = Array2::from_shape_fn((n, g.output_size()), |(i, j)| (i + j) as f32 * 0.1 - 0.4);
    let out_len = g.output_size();
    let max_loss = |x: &Array2<f32>| -> f64 {
        let mut o = Array2::zeros((n, out_len));
        max_forward(&g, x.view(), o.view_mut(), None);
        o.iter().zip(&r).map(|(a, b)| (*a * *b) as f64).sum()
    };
    let avg_loss = |x: &Array2<f32>| -> f64 {
        let mut o = Array2::zeros((n, out_len));
        avg_forward(&g, x.view(), o.view_mut());
        o.iter().zip(&r).map(|(a, b)| (*a * *b) as f64).sum()
    };
    let mut out = Array2::zeros((n, out_len));
    let mut arg = Array2::zeros((n, out_len));
    max_forward(&g, x.view(), out.view_mut(), Some(arg.view_mut()));
    let mut dmax = Array2::zeros(x.raw_dim());
    max_backward(arg.view(), r.view(), dmax.view_mut());
    let mut davg = Array2::zeros(x.raw_dim());
    avg_backward(&g, r.view(), davg.view_mut());
    let eps = 1e-3f32;
    for idx in 0..x.len() {
        let (i, j) = (idx / x.ncols(), idx % x.ncols());
        let (mut p, mut m) = (x.clone(), x.clone());
        p[(i, j)] += eps;
        m[(i, j)] -= eps;
        let num_max = (max_loss(&p) - max_loss(&m)) / (2.0 * eps as f64);
        let num_avg = (avg_loss(&p) - avg_loss(&m)) / (2.0 * eps as f64);
        assert!(
            (num_max - dmax[(i, j)] as f64).abs() < 1e-2,
            "max x[{i},{j}]"
        );
        assert!(
            (num_avg - davg[(i, j)] as f64).abs() < 1e-2,
            "avg x[{i},{j}]"
        );
    }
    // Global average: every input of a channel gets its share.
    let gout = array![[1.0f32, -2.0]];
    let mut dx = Array2::zeros((1, 8));
    global_avg_backward(4, gout.view(), dx.view_mut());
    assert_eq!(dx, array![[0.25, 0.25, 0.25, 0.25, -0.5, -0.5, -0.5, -0.5]]);
}
