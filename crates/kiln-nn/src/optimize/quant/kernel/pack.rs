//! The packed weight layout every kernel reads.
//!
//! `W[k, n]` is cut into column panels of [`PANEL`] = 16 columns (one zmm of i32 outputs) and,
//! inside a panel, into k-groups of [`GROUP`] = 4 rows (what one `vpdpbusd` lane consumes). One
//! (panel, k-group) pair is one 64-byte [`Block`]: byte `4·j + t` holds `W[4·g + t, 16·p + j]`.
//! Blocks are stored panel-major, so a kernel walks one panel's k-groups contiguously. `k` and
//! `n` are padded with zero weights up to whole groups and panels, so the kernels never need a
//! weight-side tail; only the activations' k tail is handled where A is read.

use ndarray::ArrayView2;

/// Columns per panel: one 512-bit register of i32 accumulators.
pub const PANEL: usize = 16;
/// Consecutive k per i32 lane: one `vpdpbusd` step.
pub const GROUP: usize = 4;

/// One (panel, k-group) tile: 16 columns × 4 k, column-major within the tile. 64-byte aligned so
/// the AVX-512 kernel can use aligned loads and no tile straddles a cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Block(pub [i8; PANEL * GROUP]);

/// Weights packed once (at model load), in the layout of the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedWeights {
    k: usize,
    n: usize,
    blocks: Vec<Block>,
    col_sums: Vec<i32>,
}

impl PackedWeights {
    /// Packs `w`, a `[k, n]` (= `[in, out]`) weight matrix of any memory layout.
    pub fn pack(w: ArrayView2<i8>) -> Self {
        let (k, n) = w.dim();
        let groups = k.div_ceil(GROUP);
        let panels = n.div_ceil(PANEL);
        let mut blocks = vec![Block([0; PANEL * GROUP]); groups * panels];
        for ((kk, j), &value) in w.indexed_iter() {
            let (p, jj) = (j / PANEL, j % PANEL);
            let (g, t) = (kk / GROUP, kk % GROUP);
            blocks[p * groups + g].0[jj * GROUP + t] = value;
        }
        let col_sums = w
            .columns()
            .into_iter()
            // Wrapping like the kernels: the correction then cancels exactly even past 2^31.
            .map(|col| col.iter().fold(0i32, |s, &v| s.wrapping_add(i32::from(v))))
            .collect();
        Self {
            k,
            n,
            blocks,
            col_sums,
        }
    }

    /// Rows of `W` (the reduction length, `in`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `W` (`out`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Σ_k w[k][j] per output column, for zero-point corrections: with activations quantized as
    /// `q = x/s + z`, `Σ_k x·w = s·(Σ_k q·w − z·col_sums[j])`.
    pub fn col_sums(&self) -> &[i32] {
        &self.col_sums
    }

    /// k-groups per panel: `⌈k / 4⌉`.
    pub(crate) fn groups(&self) -> usize {
        self.k.div_ceil(GROUP)
    }

    /// Column panels: `⌈n / 16⌉`.
    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    /// All blocks, panel-major: panel `p` is `blocks()[p·groups() .. (p+1)·groups()]`.
    pub(crate) fn blocks(&self) -> &[Block] {
        &self.blocks
    }
}
