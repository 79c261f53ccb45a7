//! The portable path: plain Rust over the packed layout, the reference for the SIMD paths.
//!
//! One row of `A` against one 16-column panel at a time, with a fixed-size `[i32; 16]`
//! accumulator and fixed trip counts, so LLVM keeps the accumulator in vector registers and
//! vectorizes the 16 × 4 multiply-adds of a block (as `pmaddwd` on x86-64).

use super::pack::{Block, GROUP, PANEL, PackedWeights};

/// `C = A · W` for `rows` rows; the caller guarantees `a.len() == rows·k`, `c.len() == rows·n`.
pub(super) fn gemm(a: &[u8], rows: usize, w: &PackedWeights, c: &mut [i32]) {
    let (k, n) = (w.k(), w.n());
    let groups = w.groups();
    if groups == 0 {
        c.fill(0);
        return;
    }
    for (a_row, c_row) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)).take(rows) {
        for (p, panel) in w.blocks().chunks_exact(groups).enumerate() {
            let acc = panel_dot(a_row, panel);
            let j0 = p * PANEL;
            let width = (n - j0).min(PANEL);
            c_row[j0..j0 + width].copy_from_slice(&acc[..width]);
        }
    }
}

/// One row of `A` times one panel: 16 dot products of length `k`.
fn panel_dot(a_row: &[u8], panel: &[Block]) -> [i32; PANEL] {
    let mut acc = [0i32; PANEL];
    let full = a_row.chunks_exact(GROUP);
    let tail = full.remainder();
    let mut blocks = panel.iter();
    for (quad, block) in full.zip(&mut blocks) {
        accumulate(&mut acc, [quad[0], quad[1], quad[2], quad[3]], block);
    }
    if let Some(block) = blocks.next() {
        // The k tail: A is not padded, the weights are (with zeros), so pad A's quad with zeros.
        let mut quad = [0u8; GROUP];
        quad[..tail.len()].copy_from_slice(tail);
        accumulate(&mut acc, quad, block);
    }
    acc
}

#[inline(always)]
fn accumulate(acc: &mut [i32; PANEL], quad: [u8; GROUP], block: &Block) {
    for (sum, column) in acc.iter_mut().zip(block.0.chunks_exact(GROUP)) {
        let dot: i32 = column
            .iter()
            .zip(&quad)
            .map(|(&w, &x)| i32::from(x) * i32::from(w))
            .sum();
        // |dot| ≤ 4 · 255 · 128 cannot overflow; only the running sum may, and it wraps like
        // the SIMD paths' adds do.
        *sum = sum.wrapping_add(dot);
    }
}
