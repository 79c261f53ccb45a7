//! The AVX-512 VNNI path: `vpdpbusd` multiplies 4 u8 of A by 4 i8 of W and adds the four
//! products to an i32 lane, exactly (no intermediate saturation), 64 MACs per instruction.
//!
//! A micro-kernel keeps an `R × P` grid of zmm accumulators (R rows of A × P panels of 16
//! columns): per k-group it loads P weight blocks, broadcasts 4 bytes of each A row
//! (`vpbroadcastd`) and issues R·P `vpdpbusd`. 6 × 4 (24 accumulators + 4 weights) for full
//! row blocks; for 1–2 rows (batch 1 is a gemv) up to 8 panels, so enough independent
//! accumulators hide the `vpdpbusd` latency.

use std::arch::x86_64::{
    __m512i, _mm512_dpbusd_epi32, _mm512_load_si512, _mm512_mask_storeu_epi32, _mm512_set1_epi32,
    _mm512_setzero_si512, _mm512_storeu_si512,
};

use super::Isa;
use super::pack::{Block, GROUP, PANEL, PackedWeights};

/// Rows of A per micro-kernel.
const MR: usize = 6;
/// Panels per micro-kernel for blocks of more than [`GEMV_ROWS`] rows.
const NR: usize = 4;
/// Up to this many rows, the micro-kernel takes [`NR_GEMV`] panels.
const GEMV_ROWS: usize = 2;
const NR_GEMV: usize = 8;

/// `C = A · W` on the first `rows` rows. Returns `false` (and does nothing) when the CPU lacks
/// AVX-512 VNNI. Lengths are re-clamped here, so this safe function is sound on its own.
pub(super) fn gemm(a: &[u8], rows: usize, w: &PackedWeights, c: &mut [i32]) -> bool {
    if !super::available(Isa::Avx512Vnni) {
        return false;
    }
    let (k, n) = (w.k(), w.n());
    let rows = super::rows_that_fit(rows, a.len(), k, c.len(), n);
    if rows == 0 || n == 0 {
        return true;
    }
    let blocks = w.blocks();
    debug_assert_eq!(blocks.len(), w.groups() * w.panels());
    // SAFETY: the CPU has avx512f, avx512bw and avx512vnni (checked above). `a` holds at least
    // rows·k bytes and `c` rows·n i32 (clamped above); `blocks` holds groups·panels blocks by
    // construction of `PackedWeights`; `c` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm_impl(
            a.as_ptr(),
            rows,
            k,
            blocks.as_ptr(),
            w.groups(),
            w.panels(),
            c.as_mut_ptr(),
            n,
        );
    }
    true
}

/// One micro-kernel's operands: R rows of A from `a`, P panels of W from `w`, into C at `c`.
#[derive(Clone, Copy)]
struct Tile {
    /// First byte of the first A row; rows are `k` apart.
    a: *const u8,
    k: usize,
    /// First block of the first panel; panels are `groups` blocks apart.
    w: *const Block,
    groups: usize,
    /// First output of the tile; rows are `n` apart.
    c: *mut i32,
    n: usize,
    /// Columns of C from the tile's first column to the end of the row (> 0).
    cols: usize,
}

/// # Safety
/// The CPU supports avx512f/bw/vnni; `a` is valid for `rows·k` reads, `blocks` for
/// `groups·panels` (with `groups = ⌈k/4⌉`, `panels = ⌈n/16⌉`), `c` for `rows·n` writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_impl(
    a: *const u8,
    rows: usize,
    k: usize,
    blocks: *const Block,
    groups: usize,
    panels: usize,
    c: *mut i32,
    n: usize,
) {
    let mut i0 = 0;
    while i0 < rows {
        let mr = (rows - i0).min(MR);
        let nr_max = if mr <= GEMV_ROWS { NR_GEMV } else { NR };
        let mut p0 = 0;
        while p0 < panels {
            let nr = (panels - p0).min(nr_max);
            // SAFETY: i0 < rows and p0 < panels, so every offset stays inside its buffer (the
            // function's contract); the tile covers rows i0..i0+mr and panels p0..p0+nr.
            let tile = unsafe {
                Tile {
                    a: a.add(i0 * k),
                    k,
                    w: blocks.add(p0 * groups),
                    groups,
                    c: c.add(i0 * n + p0 * PANEL),
                    n,
                    cols: n - p0 * PANEL,
                }
            };
            // SAFETY: mr ≤ MR rows and nr panels of the tile are in bounds (above).
            unsafe {
                match mr {
                    1 => wide::<1>(nr, tile),
                    2 => wide::<2>(nr, tile),
                    3 => narrow::<3>(nr, tile),
                    4 => narrow::<4>(nr, tile),
                    5 => narrow::<5>(nr, tile),
                    _ => narrow::<MR>(nr, tile),
                }
            }
            p0 += nr;
        }
        i0 += mr;
    }
}

/// Dispatches `nr ∈ 1..=8` panels to a monomorphic kernel.
///
/// # Safety
/// As [`kernel`], for `nr` panels.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn wide<const R: usize>(nr: usize, t: Tile) {
    // SAFETY: forwarded contract; each arm runs exactly `nr` panels (the last arm is nr = 8,
    // the caller never asks for more).
    unsafe {
        match nr {
            1 => kernel::<R, 1>(t),
            2 => kernel::<R, 2>(t),
            3 => kernel::<R, 3>(t),
            4 => kernel::<R, 4>(t),
            5 => kernel::<R, 5>(t),
            6 => kernel::<R, 6>(t),
            7 => kernel::<R, 7>(t),
            _ => kernel::<R, NR_GEMV>(t),
        }
    }
}

/// Dispatches `nr ∈ 1..=4` panels to a monomorphic kernel.
///
/// # Safety
/// As [`kernel`], for `nr` panels.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn narrow<const R: usize>(nr: usize, t: Tile) {
    // SAFETY: forwarded contract; the last arm is nr = 4, the caller never asks for more.
    unsafe {
        match nr {
            1 => kernel::<R, 1>(t),
            2 => kernel::<R, 2>(t),
            3 => kernel::<R, 3>(t),
            _ => kernel::<R, NR>(t),
        }
    }
}

/// `C[R rows, P panels] = A[R rows, k] · W[k, P panels]` for one tile.
///
/// # Safety
/// The CPU supports avx512f/bw/vnni; `t.a` is valid for reads of R rows of `t.k` bytes `t.k`
/// apart, `t.w` for P panels of `t.groups` blocks, `t.c` for writes of R rows of
/// `min(t.cols, 16·P)` i32 `t.n` apart, and every panel but possibly the last is full
/// (`t.cols > 16·(P − 1)`).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn kernel<const R: usize, const P: usize>(t: Tile) {
    let full = t.k / GROUP;
    let mut acc = [[_mm512_setzero_si512(); P]; R];
    for g in 0..full {
        let mut wv = [_mm512_setzero_si512(); P];
        for (p, wp) in wv.iter_mut().enumerate() {
            // SAFETY: block g of panel p exists (g < full ≤ groups, p < P); blocks are 64-byte
            // aligned by `Block`'s repr.
            *wp = unsafe { _mm512_load_si512(t.w.add(p * t.groups + g).cast::<__m512i>()) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: bytes 4g..4g+4 of row r are inside the row (4g + 4 ≤ 4·full ≤ k).
            let quad = unsafe { t.a.add(r * t.k + g * GROUP).cast::<i32>().read_unaligned() };
            let av = _mm512_set1_epi32(quad);
            for (acc_rp, &wp) in acc_r.iter_mut().zip(&wv) {
                *acc_rp = _mm512_dpbusd_epi32(*acc_rp, av, wp);
            }
        }
    }
    if full < t.groups {
        // The k tail: the last block's weights are zero-padded, A is not, so read only the
        // row's remaining 1–3 bytes.
        let tail = t.k - full * GROUP;
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let mut quad = [0u8; GROUP];
            for (i, q) in quad.iter_mut().enumerate().take(tail) {
                // SAFETY: full·4 + i < k, inside row r.
                *q = unsafe { *t.a.add(r * t.k + full * GROUP + i) };
            }
            let av = _mm512_set1_epi32(i32::from_le_bytes(quad));
            for (p, acc_rp) in acc_r.iter_mut().enumerate() {
                // SAFETY: block `full` (< groups) of panel p exists and is aligned.
                let wp =
                    unsafe { _mm512_load_si512(t.w.add(p * t.groups + full).cast::<__m512i>()) };
                *acc_rp = _mm512_dpbusd_epi32(*acc_rp, av, wp);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (p, &v) in acc_r.iter().enumerate() {
            let cols = t.cols - p * PANEL;
            // SAFETY: row r, columns p·16 .. p·16 + min(cols, 16) are inside C (contract);
            // the masked store touches only the enabled lanes.
            unsafe {
                let dst = t.c.add(r * t.n + p * PANEL);
                if cols >= PANEL {
                    _mm512_storeu_si512(dst.cast::<__m512i>(), v);
                } else {
                    _mm512_mask_storeu_epi32(dst, (1u16 << cols) - 1, v);
                }
            }
        }
    }
}
