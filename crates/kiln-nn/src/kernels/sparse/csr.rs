//! Compressed sparse rows over a weight's *input* rows (`W: [in, out]`).
//!
//! Row `k` lists the outputs input `k` feeds, so `z = x · W` becomes, for every
//! non-zero `x[k]`, an AXPY of row `k` scattered into `z`: inputs that are zero
//! (half of a ReLU layer's, typically) cost nothing, and the output row being
//! written stays in L1.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};

use super::SparseError;

/// Rows of `x` handled together by the blocked kernel: each stored `(col, val)`
/// is loaded once for all of them and updates them with one 8-wide multiply-add.
const BLOCK: usize = 8;

/// Column indices, `u16` when every column fits: half the index bytes to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indices {
    U16(Vec<u16>),
    U32(Vec<u32>),
}

/// An index type the kernels are generic over.
trait Index: Copy {
    fn at(self) -> usize;
}

impl Index for u16 {
    #[inline]
    fn at(self) -> usize {
        usize::from(self)
    }
}

impl Index for u32 {
    #[inline]
    fn at(self) -> usize {
        self as usize
    }
}

/// A `[rows, cols]` matrix without its exact zeros.
///
/// Invariants (the fields are private so they hold): `indptr` has `rows + 1`
/// non-decreasing entries ending at `values.len()`, `indices` has as many
/// entries as `values`, each `< cols`, ascending within a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    rows: usize,
    cols: usize,
    indptr: Vec<u32>,
    indices: Indices,
    values: Vec<f32>,
}

impl Csr {
    /// Keeps every entry of `w` that is not exactly zero (NaN is kept).
    pub fn from_dense(w: ArrayView2<f32>) -> Result<Self, SparseError> {
        let (rows, cols) = w.dim();
        let nonzeros = w.iter().filter(|v| **v != 0.0).count();
        let too_large = SparseError::TooLarge {
            rows,
            cols,
            nonzeros,
        };
        if u32::try_from(nonzeros).is_err() || u32::try_from(cols).is_err() {
            return Err(too_large);
        }
        let mut indptr = Vec::with_capacity(rows + 1);
        let mut cols_of = Vec::with_capacity(nonzeros);
        let mut values = Vec::with_capacity(nonzeros);
        indptr.push(0u32);
        for row in w.axis_iter(Axis(0)) {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    cols_of.push(j);
                    values.push(v);
                }
            }
            indptr.push(u32::try_from(values.len()).map_err(|_| too_large.clone())?);
        }
        let narrow = u16::try_from(cols.saturating_sub(1)).is_ok();
        let indices = if narrow {
            Indices::U16(cols_of.iter().map(|&j| j as u16).collect())
        } else {
            Indices::U32(cols_of.iter().map(|&j| j as u32).collect())
        };
        Ok(Self {
            rows,
            cols,
            indptr,
            indices,
            values,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Stored entries over all entries; 0 for a matrix without entries.
    pub fn density(&self) -> f64 {
        let all = self.rows * self.cols;
        if all == 0 {
            0.0
        } else {
            self.nnz() as f64 / all as f64
        }
    }

    pub fn indices(&self) -> &Indices {
        &self.indices
    }

    /// The dense matrix back, zeros where nothing is stored.
    pub fn to_dense(&self) -> Array2<f32> {
        let mut w = Array2::zeros((self.rows, self.cols));
        match &self.indices {
            Indices::U16(idx) => self.scatter_into(idx, &mut w),
            Indices::U32(idx) => self.scatter_into(idx, &mut w),
        }
        w
    }

    fn scatter_into<I: Index>(&self, idx: &[I], w: &mut Array2<f32>) {
        for (k, span) in self.indptr.windows(2).enumerate() {
            let (start, end) = (span[0] as usize, span[1] as usize);
            for (&j, &v) in idx[start..end].iter().zip(&self.values[start..end]) {
                w[(k, j.at())] = v;
            }
        }
    }

    /// `z ← x · W`.
    ///
    /// # Panics
    /// If `x` is not `[n, rows]` or `z` not `[n, cols]`.
    pub fn matmul_into(&self, x: ArrayView2<f32>, z: ArrayViewMut2<f32>) {
        self.linear_into(x, None, z);
    }

    /// `z ← x · W + bias`: the bias is where each output row starts, not an extra pass.
    ///
    /// # Panics
    /// If `x` is not `[n, rows]`, `z` not `[n, cols]` or `bias` not `cols` long.
    pub fn linear_into(&self, x: ArrayView2<f32>, bias: Option<&[f32]>, z: ArrayViewMut2<f32>) {
        assert_eq!(x.ncols(), self.rows, "input width");
        assert_eq!(z.dim(), (x.nrows(), self.cols), "output shape");
        if let Some(b) = bias {
            assert_eq!(b.len(), self.cols, "bias length");
        }
        match &self.indices {
            Indices::U16(idx) => self.product(idx, x, bias, z),
            Indices::U32(idx) => self.product(idx, x, bias, z),
        }
    }

    /// Blocks of [`BLOCK`] rows through the blocked kernel, the rest one row at a time.
    fn product<I: Index>(
        &self,
        idx: &[I],
        x: ArrayView2<f32>,
        bias: Option<&[f32]>,
        mut z: ArrayViewMut2<f32>,
    ) {
        let n = x.nrows();
        let mut done = 0;
        if n >= BLOCK {
            let mut xs = vec![[0f32; BLOCK]; self.rows];
            let mut zs = vec![[0f32; BLOCK]; self.cols];
            while done + BLOCK <= n {
                let rows = s![done..done + BLOCK, ..];
                for (i, x_row) in x.slice(rows).axis_iter(Axis(0)).enumerate() {
                    for (xk, &v) in xs.iter_mut().zip(x_row) {
                        xk[i] = v;
                    }
                }
                match bias {
                    Some(b) => zs.iter_mut().zip(b).for_each(|(zc, &bc)| *zc = [bc; BLOCK]),
                    None => zs.fill([0.0; BLOCK]),
                }
                block_kernel(&self.indptr, idx, &self.values, &xs, &mut zs);
                for (i, mut z_row) in z.slice_mut(rows).axis_iter_mut(Axis(0)).enumerate() {
                    z_row.iter_mut().zip(&zs).for_each(|(z, zc)| *z = zc[i]);
                }
                done += BLOCK;
            }
        }
        let mut scratch = Vec::new();
        for r in done..n {
            let x_row = x.row(r);
            let mut z_row = z.row_mut(r);
            let out = match z_row.as_slice_mut() {
                Some(out) => out,
                None => {
                    scratch.resize(self.cols, 0.0);
                    &mut scratch[..]
                }
            };
            match bias {
                Some(b) => out.copy_from_slice(b),
                None => out.fill(0.0),
            }
            match x_row.as_slice() {
                Some(xs) => row_kernel(&self.indptr, idx, &self.values, xs.iter().copied(), out),
                None => row_kernel(&self.indptr, idx, &self.values, x_row.iter().copied(), out),
            }
            if z_row.as_slice().is_none() {
                z_row.iter_mut().zip(&scratch).for_each(|(z, &s)| *z = s);
            }
        }
    }
}

/// `z += x · W` for one row: an AXPY of row `k` of `W` for every non-zero `x[k]`.
#[inline]
fn row_kernel<I: Index>(
    indptr: &[u32],
    idx: &[I],
    values: &[f32],
    x: impl Iterator<Item = f32>,
    z: &mut [f32],
) {
    for (span, xk) in indptr.windows(2).zip(x) {
        if xk == 0.0 {
            continue;
        }
        let (start, end) = (span[0] as usize, span[1] as usize);
        for (&j, &v) in idx[start..end].iter().zip(&values[start..end]) {
            z[j.at()] += xk * v;
        }
    }
}

/// `zs += xs · W` for [`BLOCK`] interleaved rows (`xs[k][i]` is row `i`'s input `k`).
/// An input that is zero in every row of the block is skipped.
#[inline]
fn block_kernel<I: Index>(
    indptr: &[u32],
    idx: &[I],
    values: &[f32],
    xs: &[[f32; BLOCK]],
    zs: &mut [[f32; BLOCK]],
) {
    for (span, xk) in indptr.windows(2).zip(xs) {
        if xk.iter().all(|&v| v == 0.0) {
            continue;
        }
        // A copy in registers: read through the reference, LLVM reloads it after
        // every store to `zs` (it cannot tell they don't overlap once inlined) and
        // the update stays scalar, 4x slower.
        let xk = *xk;
        let (start, end) = (span[0] as usize, span[1] as usize);
        for (&j, &v) in idx[start..end].iter().zip(&values[start..end]) {
            let zj = &mut zs[j.at()];
            zj.iter_mut().zip(&xk).for_each(|(z, &x)| *z += x * v);
        }
    }
}
