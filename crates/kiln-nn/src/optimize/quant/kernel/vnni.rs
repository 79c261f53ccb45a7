//! The AVX-512 VNNI path: `vpdpbusd` multiplies 4 u8 of A by 4 i8 of W and adds the four
//! products to an i32 lane, exactly (no intermediate saturation), 64 MACs per instruction.
//!
//! A micro-kernel keeps an `R × P` grid of zmm accumulators (R rows of A × P panels of 16
//! columns): per k-group it loads P weight blocks, broadcasts 4 bytes of each A row
//! (`vpbroadcastd`) and issues R·P `vpdpbusd`. 6 × 4 (24 accumulators + 4 weights) for full
//! row blocks; for 1–2 rows (batch 1 is a gemv) up to 8 panels, so enough independent
//! accumulators hide the `vpdpbusd` latency.
//!
//! The 1–2-row kernels visit only the *live* k-groups of their rows, those where some row has
//! a nonzero code: a zero quad adds exactly 0 to every lane, so skipping it changes no bit, and
//! activations are full of zeros (blank pixels, ReLU outputs at a zero point of 0; 62% of a
//! Fashion-MNIST row's groups are live). A gemv streams every weight block from L2 once, so each
//! skipped group is a load saved. Six rows share too few dead groups (8% on Fashion-MNIST) to
//! pay for the wider, load-heavier kernels it would take: measured slower at batch 1024.

use std::arch::x86_64::{
    __m512i, _mm512_dpbusd_epi32, _mm512_load_si512, _mm512_mask_storeu_epi32, _mm512_set1_epi32,
    _mm512_setzero_si512, _mm512_storeu_si512,
};

use super::Isa;
use super::operands::{Product, Tile};
use super::pack::{GROUP, PANEL, PackedWeights};

/// Rows of A per micro-kernel.
const MR: usize = 6;
/// Panels per micro-kernel for blocks of more than [`GEMV_ROWS`] rows.
const NR: usize = 4;
/// Up to this many rows, the micro-kernel takes [`NR_GEMV`] panels and skips dead k-groups.
const GEMV_ROWS: usize = 2;
const NR_GEMV: usize = 8;

/// `C = A · W` on the first `rows` rows. Returns `false` (and does nothing) when the CPU lacks
/// AVX-512 VNNI. Lengths are re-clamped here, so this safe function is sound on its own.
pub(super) fn gemm(a: &[u8], rows: usize, w: &PackedWeights, c: &mut [i32]) -> bool {
    if !super::available(Isa::Avx512Vnni) {
        return false;
    }
    if let Some(product) = Product::new(a, rows, w, c) {
        // SAFETY: the CPU has the features (checked above); `product` was built from the
        // borrowed slices, which outlive this call.
        unsafe { gemm_impl(product) }
    }
    true
}

/// # Safety
/// The CPU supports avx512f/bw/vnni, and the slices `p` was made from are still borrowed.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn gemm_impl(p: Product) {
    let (rows, panels) = (p.rows, p.panels);
    let mut live: Vec<u32> = Vec::new();
    let mut i0 = 0;
    while i0 < rows {
        let mr = (rows - i0).min(MR);
        if mr <= GEMV_ROWS {
            // SAFETY: i0 < rows and 0 < panels (a product has at least one of each); rows
            // i0..i0+mr of A are inside the product.
            unsafe { live_groups(p.tile(i0, 0), mr, &mut live) };
        }
        let nr_max = if mr <= GEMV_ROWS { NR_GEMV } else { NR };
        let mut p0 = 0;
        while p0 < panels {
            let nr = (panels - p0).min(nr_max);
            // SAFETY: i0 < rows and p0 < panels; the tile covers rows i0..i0+mr and panels
            // p0..p0+nr, all inside the product.
            let tile = unsafe { p.tile(i0, p0) };
            let live = live.iter().map(|&g| g as usize);
            // SAFETY: mr ≤ MR rows and nr panels of the tile are in bounds (above); `live`
            // holds full k-groups of this tile's rows, as does `0..k/4`.
            unsafe {
                match mr {
                    1 => wide::<1>(nr, tile, live),
                    2 => wide::<2>(nr, tile, live),
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

/// The full k-groups (`g < k / 4`) where some of the tile's first `r` rows has a nonzero code,
/// ascending, into `live`.
///
/// # Safety
/// `t.a` is valid for reads of `r` rows of `t.k` bytes, `t.k` apart.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn live_groups(t: Tile, r: usize, live: &mut Vec<u32>) {
    let full = t.k / GROUP;
    live.clear();
    live.reserve(full);
    for g in 0..full {
        let mut any = 0u32;
        for row in 0..r {
            // SAFETY: bytes 4g..4g+4 of row `row` < r are inside the row (4g + 4 ≤ k).
            any |= unsafe {
                t.a.add(row * t.k + g * GROUP)
                    .cast::<u32>()
                    .read_unaligned()
            };
        }
        if any != 0 {
            live.push(g as u32);
        }
    }
}

/// Dispatches `nr ∈ 1..=8` panels to a monomorphic kernel over the `live` k-groups.
///
/// # Safety
/// As [`kernel`], for `nr` panels.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn wide<const R: usize>(nr: usize, t: Tile, live: impl Iterator<Item = usize>) {
    // SAFETY: forwarded contract; each arm runs exactly `nr` panels (the last arm is nr = 8,
    // the caller never asks for more).
    unsafe {
        match nr {
            1 => kernel::<R, 1>(t, live),
            2 => kernel::<R, 2>(t, live),
            3 => kernel::<R, 3>(t, live),
            4 => kernel::<R, 4>(t, live),
            5 => kernel::<R, 5>(t, live),
            6 => kernel::<R, 6>(t, live),
            7 => kernel::<R, 7>(t, live),
            _ => kernel::<R, NR_GEMV>(t, live),
        }
    }
}

/// Dispatches `nr ∈ 1..=4` panels to a monomorphic kernel over every k-group.
///
/// # Safety
/// As [`kernel`], for `nr` panels.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn narrow<const R: usize>(nr: usize, t: Tile) {
    let all = 0..t.k / GROUP;
    // SAFETY: forwarded contract; the last arm is nr = 4, the caller never asks for more.
    unsafe {
        match nr {
            1 => kernel::<R, 1>(t, all),
            2 => kernel::<R, 2>(t, all),
            3 => kernel::<R, 3>(t, all),
            _ => kernel::<R, NR>(t, all),
        }
    }
}

/// `C[R rows, P panels] = A[R rows, k] · W[k, P panels]` for one tile, over the full k-groups
/// `groups` (the others must hold only zero codes in these rows) and the k tail.
///
/// # Safety
/// The CPU supports avx512f/bw/vnni; `t.a` is valid for reads of R rows of `t.k` bytes `t.k`
/// apart, `t.w` for P panels of `t.groups` blocks, `t.c` for writes of R rows of
/// `min(t.cols, 16·P)` i32 `t.n` apart, and every panel but possibly the last is full
/// (`t.cols > 16·(P − 1)`); every group of `groups` is below `t.k / 4`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn kernel<const R: usize, const P: usize>(t: Tile, groups: impl Iterator<Item = usize>) {
    let full = t.k / GROUP;
    let mut acc = [[_mm512_setzero_si512(); P]; R];
    for g in groups {
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
