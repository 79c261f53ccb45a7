//! The reference path, plain Rust: each element of `C` is `fma` over `k` in order.

use ndarray::{ArrayView2, ArrayViewMut2};

/// `C ← A·B`, one row of `C` at a time: `c[j] = fma(a[p], B[p][j], c[j])` for `p` ascending,
/// the same chain per element as the vector paths.
pub(super) fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    for (a_row, mut c_row) in a.rows().into_iter().zip(c.rows_mut()) {
        c_row.fill(0.0);
        for (&ap, b_row) in a_row.iter().zip(b.rows()) {
            c_row
                .iter_mut()
                .zip(b_row)
                .for_each(|(c, &bv)| *c = ap.mul_add(bv, *c));
        }
    }
}
