//! Every path against the portable one (bit for bit) and against f64 sums.

use ndarray::{Array2, ArrayView2, s};

use super::*;

/// Deterministic values in [-1, 1) with varied magnitudes, so rounding differences would show.
fn filled(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array2::from_shape_simple_fn((rows, cols), || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
        (unit * 2.0 - 1.0) * if state & 3 == 0 { 100.0 } else { 1.0 }
    })
}

fn reference(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f64> {
    let a = a.mapv(f64::from);
    let b = b.mapv(f64::from);
    a.dot(&b)
}

fn run(isa: Isa, a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    // NaN first, so a path that leaves an element unwritten cannot pass.
    let mut c = Array2::from_elem((a.nrows(), b.ncols()), f32::NAN);
    matmul_on(isa, a, b, c.view_mut());
    c
}

fn assert_bits(got: &Array2<f32>, want: &Array2<f32>, what: &str) {
    assert_eq!(got.dim(), want.dim(), "{what}");
    for ((idx, g), w) in got.indexed_iter().zip(want) {
        assert_eq!(g.to_bits(), w.to_bits(), "{what} at {idx:?}: {g} vs {w}");
    }
}

fn assert_close(got: &Array2<f32>, a: ArrayView2<f32>, b: ArrayView2<f32>, what: &str) {
    let want = reference(a, b);
    let scale = reference(a.mapv(f32::abs).view(), b.mapv(f32::abs).view());
    for ((idx, &g), (&w, &s)) in got.indexed_iter().zip(want.iter().zip(&scale)) {
        let tol = 1e-6 * s + 1e-30;
        assert!((g as f64 - w).abs() <= tol, "{what} at {idx:?}: {g} vs {w}");
    }
}

fn paths() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.available()).collect()
}

#[test]
fn every_path_gives_the_portable_bits_on_awkward_shapes() {
    // Tails of every width, row remainders 1–5, and depths across the 512 block.
    for &(m, n, k) in &[
        (1, 1, 1),
        (2, 3, 7),
        (5, 15, 2),
        (6, 16, 33),
        (7, 17, 64),
        (13, 65, 511),
        (12, 64, 512),
        (11, 130, 513),
        (32, 71, 1100),
        (3, 8, 9),
        (4, 9, 1),
    ] {
        let a = filled(m, k, (m * 7 + k) as u64);
        let b = filled(k, n, (n * 3 + k) as u64);
        let portable = run(Isa::Portable, a.view(), b.view());
        assert_close(&portable, a.view(), b.view(), &format!("{m}x{n}x{k}"));
        for isa in paths() {
            let got = run(isa, a.view(), b.view());
            assert_bits(&got, &portable, &format!("{isa:?} {m}x{n}x{k}"));
        }
    }
}

#[test]
fn strided_and_reversed_operands_give_the_same_bits_as_contiguous_ones() {
    let (m, n, k) = (9, 37, 600);
    let a_t = filled(k, m, 1); // A = a_tᵀ: strides (1, m)
    let b = filled(k, n, 2);
    let a = a_t.t().as_standard_layout().into_owned();
    let want = run(Isa::Portable, a.view(), b.view());
    for isa in paths() {
        assert_bits(&run(isa, a_t.t(), b.view()), &want, &format!("{isa:?} Aᵀ"));
        // C written through transposed strides.
        let mut c_t = Array2::from_elem((n, m), f32::NAN);
        matmul_on(isa, a.view(), b.view(), c_t.view_mut().reversed_axes());
        assert_bits(&c_t.t().to_owned(), &want, &format!("{isa:?} Cᵀ"));
        // Rows of A and B taken backwards (negative strides) flip the rows of C.
        let a_rev = a.slice(s![..;-1, ..]);
        let got = run(isa, a_rev, b.view());
        assert_bits(
            &got.slice(s![..;-1, ..]).to_owned(),
            &want,
            &format!("{isa:?} -A"),
        );
        // Columns of B with a gap: not contiguous, so the matrixmultiply fallback (close, not bits).
        let wide = filled(k, 2 * n, 3);
        let gapped = wide.slice(s![.., ..;2]);
        let got = run(isa, a.view(), gapped);
        assert_close(&got, a.view(), gapped, &format!("{isa:?} gapped B"));
    }
}

#[test]
fn products_split_over_threads_give_the_same_bits() {
    // Over the split threshold: by columns (n ≥ 128), by rows (narrow C), and with C
    // written through transposed strides, so the parts' offsets are exercised both ways.
    for &(m, n, k) in &[
        (40, 500, 400),
        (500, 40, 400),
        (7, 3000, 400),
        (1400, 20, 300),
    ] {
        assert!(
            2 * m * n * k >= PARALLEL_MIN_FLOPS,
            "{m}x{n}x{k} would not be split"
        );
        let a = filled(m, k, 8);
        let b = filled(k, n, 9);
        let want = run(Isa::Portable, a.view(), b.view());
        for isa in paths() {
            assert_bits(
                &run(isa, a.view(), b.view()),
                &want,
                &format!("{isa:?} {m}x{n}x{k}"),
            );
            let mut c_t = Array2::from_elem((n, m), f32::NAN);
            matmul_on(isa, a.view(), b.view(), c_t.view_mut().reversed_axes());
            assert_bits(
                &c_t.t().to_owned(),
                &want,
                &format!("{isa:?} Cᵀ {m}x{n}x{k}"),
            );
        }
    }
}

#[test]
fn a_times_b_transposed_equals_the_product_with_b_transposed_first() {
    let (m, n, k) = (32, 300, 77);
    let dz = filled(m, n, 4);
    let w = filled(k, n, 5);
    // Row-major, so the product below runs the kernels (to_owned would keep w's column order).
    let w_t = w.t().as_standard_layout().into_owned();
    let want = run(Isa::Portable, dz.view(), w_t.view());
    for isa in paths() {
        let mut got = Array2::from_elem((m, k), f32::NAN);
        matmul_bt_on(isa, dz.view(), w.view(), got.view_mut());
        assert_bits(&got, &want, &format!("{isa:?}"));
    }
}

#[test]
fn hand_computed_products_and_degenerate_shapes() {
    let a = ndarray::array![[1.0f32, 2.0], [3.0, 4.0], [-1.0, 0.5]];
    let b = ndarray::array![[5.0f32, 6.0, 7.0], [8.0, 9.0, 10.0]];
    let want = ndarray::array![
        [21.0f32, 24.0, 27.0],
        [47.0, 54.0, 61.0],
        [-1.0, -1.5, -2.0]
    ];
    for isa in paths() {
        assert_eq!(run(isa, a.view(), b.view()), want, "{isa:?}");
        // k = 0: an empty sum is 0.
        let empty_a = Array2::<f32>::zeros((3, 0));
        let empty_b = Array2::<f32>::zeros((0, 4));
        assert_eq!(
            run(isa, empty_a.view(), empty_b.view()),
            Array2::<f32>::zeros((3, 4))
        );
        // m = 0 or n = 0: nothing to write, nothing read.
        let none = run(isa, Array2::<f32>::zeros((0, 2)).view(), b.view());
        assert_eq!(none.dim(), (0, 3));
    }
}

#[test]
fn nan_and_infinity_reach_exactly_the_outputs_they_feed() {
    let mut a = filled(7, 20, 6);
    let b = filled(20, 40, 7);
    a[[2, 5]] = f32::NAN;
    a[[4, 0]] = f32::INFINITY;
    for isa in paths() {
        let c = run(isa, a.view(), b.view());
        for ((i, j), &v) in c.indexed_iter() {
            match i {
                2 => assert!(v.is_nan(), "{isa:?} ({i},{j})"),
                4 => assert!(v.is_infinite() || v.is_nan(), "{isa:?} ({i},{j}) {v}"),
                _ => assert!(v.is_finite(), "{isa:?} ({i},{j}) {v}"),
            }
        }
    }
}

#[test]
#[should_panic(expected = "inner dimensions")]
fn mismatched_shapes_panic_before_any_memory_is_touched() {
    let a = Array2::<f32>::zeros((2, 3));
    let b = Array2::<f32>::zeros((4, 5));
    let mut c = Array2::<f32>::zeros((2, 5));
    matmul(a.view(), b.view(), c.view_mut());
}
