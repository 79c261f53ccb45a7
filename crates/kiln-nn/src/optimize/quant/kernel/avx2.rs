//! The AVX2 path, exact: u8 and i8 are widened to i16 and multiplied with `vpmaddwd`, whose
//! i16 × i16 pair sums cannot overflow i32. (`vpmaddubsw` would be twice as dense but saturates
//! its pair sums at i16: 255·127·2 does not fit, so results would differ from the other paths.)
//!
//! It reads the same packed blocks as the VNNI path. A 16-byte quarter of a block holds 4
//! columns × 4 k; widened to 16 i16 and `vpmaddwd`-ed against the row's 4 widened A bytes
//! (broadcast as one 64-bit pattern), it yields 8 i32 = (k0·w0 + k1·w1, k2·w2 + k3·w3) per
//! column. Each quarter accumulates on its own; a final `vphaddd` folds the pairs and a
//! `vpermq` restores column order. A micro-kernel covers R rows × P panels
//! (4·R·P ymm accumulators out of 16 registers): 3 × 1, or 1 × 2 for a single row.

use std::arch::x86_64::{
    __m128i, __m256i, _mm_cvtepu8_epi16, _mm_cvtsi32_si128, _mm_load_si128, _mm256_add_epi32,
    _mm256_broadcastq_epi64, _mm256_cvtepi8_epi16, _mm256_hadd_epi32, _mm256_madd_epi16,
    _mm256_permute4x64_epi64, _mm256_setzero_si256, _mm256_storeu_si256,
};

use super::Isa;
use super::operands::{Product, Tile};
use super::pack::{Block, GROUP, PANEL, PackedWeights};

/// Rows of A per micro-kernel.
const MR: usize = 3;
/// Quarters of a block: 4 columns × 4 k = 16 bytes each.
const QUARTERS: usize = 4;

/// `C = A · W` on the first `rows` rows. Returns `false` (and does nothing) when the CPU lacks
/// AVX2. Lengths are re-clamped here, so this safe function is sound on its own.
pub(super) fn gemm(a: &[u8], rows: usize, w: &PackedWeights, c: &mut [i32]) -> bool {
    if !super::available(Isa::Avx2) {
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
/// The CPU supports avx2, and the slices `p` was made from are still borrowed.
#[target_feature(enable = "avx2")]
unsafe fn gemm_impl(p: Product) {
    let (rows, panels) = (p.rows, p.panels);
    let mut i0 = 0;
    while i0 < rows {
        let mr = (rows - i0).min(MR);
        let mut p0 = 0;
        while p0 < panels {
            let nr = if mr == 1 { (panels - p0).min(2) } else { 1 };
            // SAFETY: i0 < rows and p0 < panels; the tile covers rows i0..i0+mr and panels
            // p0..p0+nr, all inside the product.
            let tile = unsafe { p.tile(i0, p0) };
            // SAFETY: mr rows and nr panels of the tile are in bounds (above).
            unsafe {
                match (mr, nr) {
                    (1, 1) => kernel::<1, 1>(tile),
                    (1, _) => kernel::<1, 2>(tile),
                    (2, _) => kernel::<2, 1>(tile),
                    _ => kernel::<MR, 1>(tile),
                }
            }
            p0 += nr;
        }
        i0 += mr;
    }
}

/// 4 bytes of A (little-endian in `quad`) widened to i16 and repeated in every 64-bit lane.
#[target_feature(enable = "avx2")]
#[inline]
fn broadcast_quad(quad: i32) -> __m256i {
    _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(quad)))
}

/// Adds one k-group (block `g` of each of the P panels) times the R broadcast quads.
///
/// # Safety
/// The CPU supports avx2; `w` is valid for P panels of more than `g` blocks, `groups` apart.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn step<const R: usize, const P: usize>(
    acc: &mut [[[__m256i; R]; QUARTERS]; P],
    av: &[__m256i; R],
    w: *const Block,
    groups: usize,
    g: usize,
) {
    for (p, acc_p) in acc.iter_mut().enumerate() {
        // SAFETY: block g of panel p exists (contract); blocks are 64-byte aligned, so each
        // 16-byte quarter is 16-byte aligned.
        let block = unsafe { w.add(p * groups + g) }.cast::<__m128i>();
        for (q, acc_pq) in acc_p.iter_mut().enumerate() {
            // SAFETY: quarter q < 4 of a 64-byte block.
            let wv = _mm256_cvtepi8_epi16(unsafe { _mm_load_si128(block.add(q)) });
            for (acc_pqr, &avr) in acc_pq.iter_mut().zip(av) {
                *acc_pqr = _mm256_add_epi32(*acc_pqr, _mm256_madd_epi16(avr, wv));
            }
        }
    }
}

/// `C[R rows, P panels] = A[R rows, k] · W[k, P panels]` for one tile.
///
/// # Safety
/// The CPU supports avx2; `t.a` is valid for reads of R rows of `t.k` bytes `t.k` apart, `t.w`
/// for P panels of `t.groups` blocks, `t.c` for writes of R rows of `min(t.cols, 16·P)` i32
/// `t.n` apart, and every panel but possibly the last is full (`t.cols > 16·(P − 1)`).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn kernel<const R: usize, const P: usize>(t: Tile) {
    let full = t.k / GROUP;
    let mut acc = [[[_mm256_setzero_si256(); R]; QUARTERS]; P];
    for g in 0..full {
        let mut av = [_mm256_setzero_si256(); R];
        for (r, avr) in av.iter_mut().enumerate() {
            // SAFETY: bytes 4g..4g+4 of row r are inside the row (4g + 4 ≤ 4·full ≤ k).
            let quad = unsafe { t.a.add(r * t.k + g * GROUP).cast::<i32>().read_unaligned() };
            *avr = broadcast_quad(quad);
        }
        // SAFETY: g < full ≤ groups.
        unsafe { step(&mut acc, &av, t.w, t.groups, g) };
    }
    if full < t.groups {
        // The k tail: the last block's weights are zero-padded, A is not, so read only the
        // row's remaining 1–3 bytes.
        let tail = t.k - full * GROUP;
        let mut av = [_mm256_setzero_si256(); R];
        for (r, avr) in av.iter_mut().enumerate() {
            let mut quad = [0u8; GROUP];
            for (i, q) in quad.iter_mut().enumerate().take(tail) {
                // SAFETY: full·4 + i < k, inside row r.
                *q = unsafe { *t.a.add(r * t.k + full * GROUP + i) };
            }
            *avr = broadcast_quad(i32::from_le_bytes(quad));
        }
        // SAFETY: full < groups.
        unsafe { step(&mut acc, &av, t.w, t.groups, full) };
    }
    for (p, [q0, q1, q2, q3]) in acc.iter().enumerate() {
        let cols = (t.cols - p * PANEL).min(PANEL);
        for (r, ((&a0, &a1), (&a2, &a3))) in q0.iter().zip(q1).zip(q2.iter().zip(q3)).enumerate() {
            // Quarter q holds columns 4q..4q+4 as (pair 0, pair 1) sums: hadd folds the pairs of
            // two quarters into [c0 c1 c4 c5 | c2 c3 c6 c7]; vpermq 0xD8 orders the 64-bit
            // halves as c0..c7.
            let lo = _mm256_hadd_epi32(a0, a1);
            let hi = _mm256_hadd_epi32(a2, a3);
            let lo = _mm256_permute4x64_epi64::<0xD8>(lo);
            let hi = _mm256_permute4x64_epi64::<0xD8>(hi);
            let mut out = [0i32; PANEL];
            // SAFETY: `out` holds 16 i32, two 8-lane stores fill it.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().cast::<__m256i>(), lo);
                _mm256_storeu_si256(out.as_mut_ptr().add(8).cast::<__m256i>(), hi);
            }
            // SAFETY: row r, columns p·16 .. p·16 + cols are inside C (contract); `out` is a
            // local, so it does not overlap C.
            unsafe {
                std::ptr::copy_nonoverlapping(out.as_ptr(), t.c.add(r * t.n + p * PANEL), cols);
            }
        }
    }
}
