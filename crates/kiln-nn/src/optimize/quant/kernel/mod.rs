//! u8 × i8 → i32 matrix products, `C[m, n] = A[m, k] · W[k, n]`, with runtime CPU dispatch.
//!
//! `A` holds u8 activations (row-major, unpadded), `W` the layer's `[in, out]` i8 weights,
//! packed once into [`PackedWeights`]; `C` is row-major i32 and is overwritten.
//!
//! Three paths compute bit-identical results, because every one accumulates exact products in
//! i32 with wrapping addition (associative, so the order of the sums does not matter):
//! * [`Isa::Avx512Vnni`]: `vpdpbusd` on zmm, 4 k per i32 lane;
//! * [`Isa::Avx2`]: u8 and i8 widened to i16 and multiplied with `vpmaddwd`, which is exact
//!   (`vpmaddubsw` would saturate its i16 pair sums);
//! * [`Isa::Portable`]: plain Rust, the reference and the only path off x86-64.
//!
//! No sum can wrap unless `k > 65 793` (`255 · 128 · k ≥ 2³¹`); past that all paths still agree.
//!
//! The `unsafe` code (intrinsics, raw pointers) lives only in the ISA files `avx2.rs` and
//! `vnni.rs`; their `#[target_feature]` functions are reached only after [`available`] says so.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod operands;
mod pack;
mod portable;
#[cfg(target_arch = "x86_64")]
mod vnni;

#[cfg(test)]
mod tests;

pub use pack::{GROUP, PANEL, PackedWeights};

use std::sync::OnceLock;

/// An instruction-set path of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isa {
    Portable,
    Avx2,
    Avx512Vnni,
}

impl Isa {
    /// All paths, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni];

    /// The snake_case name, as serialized.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512_vnni",
        }
    }
}

/// Whether `isa` can run on this CPU (cached).
pub fn available(isa: Isa) -> bool {
    let f = crate::kernels::cpu::features();
    match isa {
        Isa::Portable => true,
        Isa::Avx2 => f.avx2,
        Isa::Avx512Vnni => f.avx512_vnni(),
    }
}

/// The best path available on this CPU (cached).
pub fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|&isa| available(isa))
            .unwrap_or(Isa::Portable)
    })
}

/// `C = A · W` with the [`detected`] path. `a.len()` should be `m · k` and `c.len()` `m · n`;
/// see [`gemm_u8i8_with`] for what happens when they are not.
pub fn gemm_u8i8(a: &[u8], m: usize, w: &PackedWeights, c: &mut [i32]) {
    gemm_u8i8_with(detected(), a, m, w, c);
}

/// `C = A · W` with a chosen path, falling back to the portable one when `isa` is not
/// [`available`] (for tests and benches).
///
/// Lengths are a caller contract, checked with `debug_assert!`; in release builds the product
/// is computed for the rows that fit both buffers (`min(m, a.len() / k, c.len() / n)`) and the
/// rest of `c` is left untouched, so no length can make a kernel read or write out of bounds.
pub fn gemm_u8i8_with(isa: Isa, a: &[u8], m: usize, w: &PackedWeights, c: &mut [i32]) {
    let (k, n) = (w.k(), w.n());
    debug_assert_eq!(a.len(), m * k, "A must be m × k");
    debug_assert_eq!(c.len(), m * n, "C must be m × n");
    let rows = rows_that_fit(m, a.len(), k, c.len(), n);
    if rows == 0 || n == 0 {
        return;
    }
    let (a, c) = (&a[..rows * k], &mut c[..rows * n]);
    let done = match isa {
        Isa::Portable => false,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => vnni::gemm(a, rows, w, c),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::gemm(a, rows, w, c),
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    };
    if !done {
        portable::gemm(a, rows, w, c);
    }
}

/// Rows of `C` both buffers can hold; a zero-width dimension holds any number of rows.
fn rows_that_fit(m: usize, a_len: usize, k: usize, c_len: usize, n: usize) -> usize {
    let by_a = a_len.checked_div(k).unwrap_or(m);
    let by_c = c_len.checked_div(n).unwrap_or(m);
    m.min(by_a).min(by_c)
}
