//! f32 matrix products for the dense layers, `C ← A·B` and `C ← A·Bᵀ`, without packing.
//!
//! `matrixmultiply` copies ("packs") both operands into its own panel layout on
//! every call. At training batch sizes that copy of the weights costs as much as
//! a third of the product: a 1200×1200 layer at batch 32 multiplies 32 rows but
//! packs 1.4 M weights, three times a step. These kernels read `B` in place
//! instead (its rows must be contiguous, which kiln's `[in, out]` weights and
//! activations are): a tile of 6 rows of `C` × 64 columns (AVX-512; 16 with
//! AVX2) is held in registers while `k` runs, with `B`'s slice for that tile
//! staying in L2 across the row blocks. `A` and `C` may have any strides, so
//! `xᵀ·dz` needs no copy either; `dz·Wᵀ` is computed as `(W·dzᵀ)ᵀ` after
//! transposing the small `dz` once.
//!
//! Every path gives the same bits: each element of `C` is one fused
//! multiply-add chain over `k` in ascending order, starting from 0
//! (`c = fma(a₀, b₀, 0)`, `c = fma(a₁, b₁, c)`, …). Splitting `k` into blocks
//! stores and reloads the running sum unchanged, so it does not change the
//! result. The portable path uses `f32::mul_add`, which is exactly that
//! operation: a hardware instruction on aarch64, but a library call on x86-64
//! CPUs without FMA (before 2013, or under Rosetta 2), where products are then
//! several times slower than with a packed GEMM — the price of the same bits.
//!
//! Products of 16 MFLOPs or more are split over rayon's threads, by
//! column blocks (or row blocks when `C` is narrow): each element is still
//! computed by one thread in the same order, so the split never changes a bit.
//!
//! The `unsafe` code lives in `avx512.rs` and `avx2.rs`, and in the hand-off of
//! disjoint parts of `C` to other threads; [`matmul_on`] checks every shape
//! before handing raw pointers on.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::sync::OnceLock;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// An instruction-set path of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Portable,
    Avx2Fma,
    Avx512,
}

impl Isa {
    /// All paths, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2Fma, Isa::Avx512];

    /// Whether this CPU can run the path ([`crate::kernels::cpu::features`]).
    pub fn available(self) -> bool {
        let f = crate::kernels::cpu::features();
        match self {
            Isa::Portable => true,
            Isa::Avx2Fma => f.avx2_fma(),
            Isa::Avx512 => f.avx512f,
        }
    }
}

/// The fastest path this CPU has, probed once.
pub fn best_isa() -> Isa {
    static BEST: OnceLock<Isa> = OnceLock::new();
    *BEST.get_or_init(|| {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.available())
            .unwrap_or(Isa::Portable)
    })
}

/// Rows of `C` per register tile.
const MR: usize = 6;
/// Depth of one pass over `k`: bounds the slice of `B` a column tile keeps in cache.
const KC: usize = 512;

/// `C ← A·B` on the fastest path. `A: [m, k]`, `B: [k, n]`, `C: [m, n]`; panics on
/// mismatched shapes (a programming error: layer shapes are checked when a model is built).
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>) {
    matmul_on(best_isa(), a, b, c);
}

/// `C ← A·Bᵀ` on the fastest path. `A: [m, n]`, `B: [k, n]`, `C: [m, k]`. Computed as
/// `Cᵀ = B·Aᵀ` after copying `A` transposed into a per-thread scratch buffer (for the
/// layers' `dz·Wᵀ`, `A` is the small one).
pub fn matmul_bt(a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>) {
    matmul_bt_on(best_isa(), a, b, c);
}

/// [`matmul_bt`] on a given path.
pub fn matmul_bt_on(isa: Isa, a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>) {
    assert_eq!(a.ncols(), b.ncols(), "A·Bᵀ: inner dimensions");
    thread_local! {
        static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    // Taken out of the cell while in use, so a nested call on this thread (a rayon
    // worker may run another task while it waits) finds an empty buffer, not a borrow.
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let (m, n) = a.dim();
    buf.clear();
    buf.resize(m * n, 0.0);
    for (i, row) in a.rows().into_iter().enumerate() {
        for (p, &v) in row.iter().enumerate() {
            buf[p * m + i] = v;
        }
    }
    let at = ArrayView2::from_shape((n, m), &buf[..]).expect("n·m elements");
    matmul_on(isa, b, at, c.reversed_axes());
    SCRATCH.with(|s| *s.borrow_mut() = buf);
}

/// `C ← A·B` on a given path (tests run every path this CPU has). A path the CPU
/// lacks, or a `B` whose rows are not contiguous, falls back to `matrixmultiply`.
pub fn matmul_on(isa: Isa, a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(b.nrows(), k, "A·B: inner dimensions");
    assert_eq!(c.dim(), (m, n), "A·B: output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    if b.strides()[1] != 1 && n > 1 {
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        return;
    }
    let ops = Operands {
        m,
        n,
        k,
        a: a.as_ptr(),
        rsa: a.strides()[0],
        csa: a.strides()[1],
        b: b.as_ptr(),
        ldb: b.strides()[0],
        c: c.as_mut_ptr(),
        rsc: c.strides()[0],
        csc: c.strides()[1],
    };
    match isa {
        Isa::Avx512 | Isa::Avx2Fma if isa.available() => {
            let parts = if 2 * m * n * k >= PARALLEL_MIN_FLOPS {
                crate::kernels::parallel::ways()
            } else {
                1
            };
            run_split(isa, Shared(ops), parts);
        }
        Isa::Portable => portable::matmul(a, b, c),
        _ => general_mat_mul(1.0, &a, &b, 0.0, &mut c),
    }
}

/// Products of at least this many FLOPs (about 150 µs of one core) are split over
/// rayon's threads. A job's thread is not one of rayon's, so each split wakes a pool
/// thread and waits for it: at 2–3 MFLOPs (a 784-64 layer at batch 32) that hand-off
/// made a train job 1.7× slower; from a 784-1200 layer at batch 32 (60 MFLOPs) up,
/// splitting makes the products close to 2× faster on two cores.
const PARALLEL_MIN_FLOPS: usize = 16_000_000;

/// [`Operands`] handed to another thread. Parts made by [`Operands::split`] write
/// disjoint blocks of `C` and only read `A` and `B`.
struct Shared(Operands);

// SAFETY: see `Shared`: no two threads write the same element, and `A`, `B`
// are not written while the product runs (`matmul_on` borrows them shared).
unsafe impl Send for Shared {}

/// Runs the product in `parts` pieces on rayon's pool (each element is still one
/// thread's ordered sum, so the bits do not depend on the split).
fn run_split(isa: Isa, ops: Shared, parts: usize) {
    if parts > 1
        && let Some((left, right)) = ops.0.split()
    {
        let half = parts / 2;
        let (left, right) = (Shared(left), Shared(right));
        rayon::join(
            move || run_split(isa, left, half),
            move || run_split(isa, right, parts - half),
        );
        return;
    }
    run_kernel(isa, &ops.0);
}

fn run_kernel(isa: Isa, ops: &Operands) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: callers reach this only after `isa.available()`; `ops` describes
            // three live, non-empty arrays (or disjoint parts of them) whose shapes were
            // checked against each other, and no other thread writes its part of `C`.
            unsafe { avx512::matmul(ops) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            // SAFETY: as above, for AVX2 and FMA.
            unsafe { avx2::matmul(ops) }
        }
        _ => unreachable!("only vector paths are split"),
    }
}

/// The three operands as raw parts: element `(i, p)` of `A` is at `a + i·rsa + p·csa`,
/// `(p, j)` of `B` at `b + p·ldb + j` (rows contiguous), `(i, j)` of `C` at `c + i·rsc + j·csc`.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Operands {
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    ldb: isize,
    c: *mut f32,
    rsc: isize,
    csc: isize,
}

impl Operands {
    /// Two halves of `C`: by columns when it is at least two 64-column tiles wide,
    /// else by rows (cut at a multiple of 64 columns or [`MR`] rows, so neither half
    /// gets an extra partial tile), or `None` when it is too small for either.
    fn split(&self) -> Option<(Operands, Operands)> {
        if self.n >= 128 {
            let cut = (self.n / 2 / 64) * 64;
            let mut left = *self;
            let mut right = *self;
            left.n = cut;
            right.n = self.n - cut;
            // In bounds: `cut < n` columns into `B`'s and `C`'s rows.
            right.b = self.b.wrapping_add(cut);
            right.c = self.c.wrapping_offset(cut as isize * self.csc);
            return Some((left, right));
        }
        if self.m >= 2 * MR {
            let cut = (self.m / 2 / MR) * MR;
            let mut top = *self;
            let mut bottom = *self;
            top.m = cut;
            bottom.m = self.m - cut;
            bottom.a = self.a.wrapping_offset(cut as isize * self.rsa);
            bottom.c = self.c.wrapping_offset(cut as isize * self.rsc);
            return Some((top, bottom));
        }
        None
    }
}

/// One register tile of `C`: `rows ≤ MR` rows from `i0`, `cols ≤ nr` columns from `j0`,
/// over `k` in `p0 .. p0 + depth`; `first` when it starts the sum (else it continues `C`).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Tile {
    i0: usize,
    rows: usize,
    j0: usize,
    cols: usize,
    p0: usize,
    depth: usize,
    first: bool,
}

/// Visits the tiles of an `m × n` product over depth `k`, `nr` columns wide: `k` blocks
/// outermost and in ascending order (so every element's sum runs in order), then column
/// tiles, then row blocks, which reuse the column tile's slice of `B` from cache.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn for_each_tile(m: usize, n: usize, k: usize, nr: usize, mut f: impl FnMut(Tile)) {
    for p0 in (0..k).step_by(KC) {
        let depth = KC.min(k - p0);
        for j0 in (0..n).step_by(nr) {
            let cols = nr.min(n - j0);
            for i0 in (0..m).step_by(MR) {
                f(Tile {
                    i0,
                    rows: MR.min(m - i0),
                    j0,
                    cols,
                    p0,
                    depth,
                    first: p0 == 0,
                });
            }
        }
    }
}
