//! The raw operands the SIMD kernels work on, made once from checked slices.
//!
//! Both SIMD paths walk `C` in tiles of rows × 16-column panels; this is where
//! the slices become pointers, after the lengths are clamped, so each ISA file
//! only adds offsets that its loop bounds keep inside the buffers.

use super::PackedWeights;
use super::pack::{Block, PANEL};

/// A product `C = A · W` as raw parts. Built only by [`Product::new`], which
/// clamps `rows` to what both buffers hold.
#[derive(Clone, Copy)]
pub(super) struct Product {
    a: *const u8,
    pub rows: usize,
    k: usize,
    blocks: *const Block,
    groups: usize,
    pub panels: usize,
    c: *mut i32,
    n: usize,
}

/// One micro-kernel's operands: rows of A from `a`, panels of W from `w`, into C at `c`.
#[derive(Clone, Copy)]
pub(super) struct Tile {
    /// First byte of the first A row; rows are `k` apart.
    pub a: *const u8,
    pub k: usize,
    /// First block of the first panel; panels are `groups` blocks apart.
    pub w: *const Block,
    pub groups: usize,
    /// First output of the tile; rows are `n` apart.
    pub c: *mut i32,
    pub n: usize,
    /// Columns of C from the tile's first column to the end of the row (> 0).
    pub cols: usize,
}

impl Product {
    /// `None` when there is nothing to compute (no rows fit, or `n == 0`).
    pub fn new(a: &[u8], rows: usize, w: &PackedWeights, c: &mut [i32]) -> Option<Self> {
        let (k, n) = (w.k(), w.n());
        let rows = super::rows_that_fit(rows, a.len(), k, c.len(), n);
        if rows == 0 || n == 0 {
            return None;
        }
        let blocks = w.blocks();
        debug_assert_eq!(blocks.len(), w.groups() * w.panels());
        Some(Self {
            a: a.as_ptr(),
            rows,
            k,
            blocks: blocks.as_ptr(),
            groups: w.groups(),
            panels: w.panels(),
            c: c.as_mut_ptr(),
            n,
        })
    }

    /// The tile whose first row is `i0` and first panel `p0`.
    ///
    /// # Safety
    /// `i0 < self.rows` and `p0 < self.panels`, and the slices `new` saw are still
    /// borrowed as they were (the caller holds them for the whole product).
    pub unsafe fn tile(&self, i0: usize, p0: usize) -> Tile {
        // SAFETY: `a` holds rows·k bytes, `blocks` groups·panels blocks and `c` rows·n i32
        // (clamped in `new`); i0 < rows and p0 < panels keep every offset inside them.
        unsafe {
            Tile {
                a: self.a.add(i0 * self.k),
                k: self.k,
                w: self.blocks.add(p0 * self.groups),
                groups: self.groups,
                c: self.c.add(i0 * self.n + p0 * PANEL),
                n: self.n,
                cols: self.n - p0 * PANEL,
            }
        }
    }
}
