//! 2-D convolution kernels over batches of `[C, H, W]` samples held as rows.
//!
//! Each group is lowered by [`im2col`] to `cols: [K, n·P]` and multiplied on
//! [`crate::kernels::gemm`]: forward `W_g · cols`, backward `dz_g · colsᵀ` for the
//! weights and `W_gᵀ · dz_g` (then [`im2col::col2im_add`]) for the input. The
//! product's rows are filters and its columns (sample, position), so the output
//! is copied back one contiguous run per sample and filter. `reference` holds the
//! direct six-loop form in f64 that the tests hold the fast path to.
//!
//! Weights are `[filters, channels / groups, kh, kw]`, the ONNX and PyTorch
//! layout, seen as the matrix `[filters, K]` with `K = channels/groups · kh · kw`.

mod geometry;
pub mod im2col;
#[cfg(test)]
pub(crate) mod reference;
#[cfg(test)]
mod tests;

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, s};

use crate::kernels::gemm;

pub use geometry::{Conv2dGeometry, ConvError};

/// `[F_g, n·P]` for group `group` of `z: [n, F·P]` (a copy: one run per sample and filter).
fn gather_group(g: &Conv2dGeometry, z: ArrayView2<f32>, group: usize) -> Array2<f32> {
    let (n, p_len, fg) = (z.nrows(), g.positions(), g.filters_per_group());
    let mut out = Array2::zeros((fg, n * p_len));
    for f in 0..fg {
        let filter = group * fg + f;
        for i in 0..n {
            out.slice_mut(s![f, i * p_len..(i + 1) * p_len])
                .assign(&z.slice(s![i, filter * p_len..(filter + 1) * p_len]));
        }
    }
    out
}

/// `z ← conv(x, w) + b`: `x: [n, C·H·W]`, `w: [F, K]`, `b: [F]`, `z: [n, F·P]`.
pub fn forward(
    g: &Conv2dGeometry,
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    bias: Option<ArrayView1<f32>>,
    mut z: ArrayViewMut2<f32>,
) {
    let (n, p_len, fg) = (x.nrows(), g.positions(), g.filters_per_group());
    debug_assert_eq!(w.dim(), (g.filters, g.patch_len()));
    let mut cols = Array2::zeros((g.patch_len(), n * p_len));
    let mut prod = Array2::zeros((fg, n * p_len));
    for group in 0..g.groups {
        im2col::im2col(g, x, group, cols.view_mut());
        let w_g = w.slice(s![group * fg..(group + 1) * fg, ..]);
        gemm::matmul(w_g, cols.view(), prod.view_mut());
        for f in 0..fg {
            let filter = group * fg + f;
            let b = bias.as_ref().map_or(0.0, |b| b[filter]);
            for i in 0..n {
                let src = prod.slice(s![f, i * p_len..(i + 1) * p_len]);
                let mut dst = z.slice_mut(s![i, filter * p_len..(filter + 1) * p_len]);
                dst.zip_mut_with(&src, |d, &v| *d = v + b);
            }
        }
    }
}

/// Given `dz = ∂L/∂z`, writes `dw` and `db` (overwriting) and, when asked, `dx`.
pub fn backward(
    g: &Conv2dGeometry,
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    dz: ArrayView2<f32>,
    mut dw: ArrayViewMut2<f32>,
    db: Option<ArrayViewMut1<f32>>,
    mut dx: Option<ArrayViewMut2<f32>>,
) {
    let (n, p_len, fg) = (x.nrows(), g.positions(), g.filters_per_group());
    if let Some(mut db) = db {
        for (f, b) in db.iter_mut().enumerate() {
            *b = dz.slice(s![.., f * p_len..(f + 1) * p_len]).sum();
        }
    }
    if let Some(dx) = dx.as_mut() {
        dx.fill(0.0);
    }
    let mut cols = Array2::zeros((g.patch_len(), n * p_len));
    for group in 0..g.groups {
        let dz_g = gather_group(g, dz, group);
        im2col::im2col(g, x, group, cols.view_mut());
        let rows = s![group * fg..(group + 1) * fg, ..];
        gemm::matmul_bt(dz_g.view(), cols.view(), dw.slice_mut(rows));
        if let Some(dx) = dx.as_mut() {
            gemm::matmul(w.slice(rows).t(), dz_g.view(), cols.view_mut());
            im2col::col2im_add(g, cols.view(), group, dx.view_mut());
        }
    }
}
