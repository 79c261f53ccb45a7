//! The element-wise conversions of the hot path, in forms LLVM vectorises (or at least runs
//! without branches) on baseline x86-64, each exactly equal to its definition in
//! [`scheme`](super::super::scheme): the tests compare them value for value.

use super::super::kernel::{Isa, available};
use super::super::scheme::{Multiplier, QParams};

/// 1.5 · 2²³: `v + ROUND_MAGIC` for `|v| ≤ 2²²` lands in `[2²³, 2²⁴)`, where f32 steps are 1, so
/// the addition itself rounds `v` half to even (the default rounding mode) and the bit pattern
/// minus `ROUND_MAGIC`'s is that integer. `round_ties_even` is a libm call without SSE4.1.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// [`QParams::quantize_u8`]: the same division, half-to-even rounding and clamp, NaN to the
/// zero point.
#[inline(always)]
pub(super) fn quantize_u8(x: f32, p: QParams) -> u8 {
    let v = x / p.scale;
    // Beyond ±512 steps the code clamps to 0 or 255 whatever the zero point.
    let v = if v.is_nan() {
        0.0
    } else {
        v.clamp(-512.0, 512.0)
    };
    let r = (v + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    (r + p.zero_point).clamp(0, 255) as u8
}

/// One column's [`Multiplier`], unpacked so that [`Rescale::apply`] is a multiply, an add and
/// a shift: `Multiplier::apply` is an out-of-line call with a branch per case, per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rescale {
    m0: i32,
    shift: u32,
    half: i64,
}

impl Rescale {
    /// `None` for factors ≥ 2³⁰ (a left shift), which no sensible pair of scales asks for;
    /// such layers keep `Multiplier::apply`.
    pub(super) fn new(m: Multiplier) -> Option<Self> {
        const ZERO: Rescale = Rescale {
            m0: 0,
            shift: 1,
            half: 0,
        };
        let right = 31 - m.shift;
        // |acc · m0| < 2⁶² rounds to 0 past a shift of 62.
        if m.m0 == 0 || right > 62 {
            return Some(ZERO);
        }
        (m.m0 > 0 && right >= 1).then(|| Self {
            m0: m.m0,
            shift: right as u32,
            half: 1i64 << (right - 1),
        })
    }

    /// [`rescale`] with this column's fields (the row loop reads them from [`Rescales`]).
    #[cfg(test)]
    fn apply(self, acc: i32) -> i64 {
        rescale(acc, self.m0, u64::from(self.shift), self.half as u64)
    }
}

/// `Multiplier::apply(acc)` before its saturation to i32 (callers clamp to a code anyway):
/// `round(acc · m0 / 2^shift)`, ties away from zero, on the magnitude so that the shift is a
/// logical one (AVX2 has per-lane logical 64-bit shifts, not arithmetic ones).
#[inline(always)]
fn rescale(acc: i32, m0: i32, shift: u64, half: u64) -> i64 {
    // |acc · m0| < 2⁶²: the magnitude and the rounding offset fit. Both factors are i32, so
    // the product is one signed 32×32→64 multiply per lane (`vpmuldq`), not an emulated i64 one.
    let prod = i64::from(acc) * i64::from(m0);
    let sign = prod >> 63;
    let magnitude = ((prod ^ sign) - sign) as u64;
    let q = ((magnitude + half) >> shift) as i64;
    (q ^ sign) - sign
}

/// [`rescale`] with an arithmetic shift, for ISAs that have one per 64-bit lane (AVX-512's
/// `vpsravq`): ties away from zero are `(prod + half − [prod < 0]) >> shift`, two operations
/// fewer than going through the magnitude. Equal to [`rescale`] for every input.
#[inline(always)]
fn rescale_sra(acc: i32, m0: i32, shift: u64, half: u64) -> i64 {
    // |prod| < 2⁶² and half ≤ 2⁶¹: no sum overflows.
    let prod = i64::from(acc) * i64::from(m0);
    (prod + half as i64 + (prod >> 63)) >> shift
}

/// A layer's [`Rescale`]s by field, so a row's columns load as vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rescales {
    m0: Vec<i32>,
    shift: Vec<u64>,
    half: Vec<u64>,
}

impl Rescales {
    /// `None` when some multiplier does not unpack (see [`Rescale::new`]).
    pub(super) fn new(multipliers: &[Multiplier]) -> Option<Self> {
        let all: Vec<Rescale> = multipliers
            .iter()
            .map(|&m| Rescale::new(m))
            .collect::<Option<_>>()?;
        Some(Self {
            m0: all.iter().map(|r| r.m0).collect(),
            shift: all.iter().map(|r| u64::from(r.shift)).collect(),
            half: all.iter().map(|r| r.half as u64).collect(),
        })
    }
}

/// What one fused row needs besides its accumulators.
pub(super) struct RowRequant<'a> {
    /// Per column: added to the accumulator (bias and zero-point terms).
    pub offset: &'a [i32],
    /// Per column: the weight zero point, times the row sum of the codes `rs`.
    pub w_zero: &'a [i32],
    pub rs: i32,
    pub rescales: &'a Rescales,
    pub zero_point: i64,
    /// The smallest code: the zero point under a fused ReLU, else 0.
    pub floor: i64,
}

/// Codes of one row: `dst[i] = quantize_u8(src[i], p)`.
pub(super) fn quantize_row(src: &[f32], dst: &mut [u8], p: QParams) {
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx512Vnni) {
        // SAFETY: the CPU has AVX-512 F and BW (part of what the check above asks for).
        unsafe { quantize_row_avx512(src, dst, p) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx2) {
        // SAFETY: the CPU has AVX2 (checked just above); the function only needs that feature.
        unsafe { quantize_row_avx2(src, dst, p) };
        return;
    }
    quantize_row_any(src, dst, p);
}

/// Fused requantization of one row: accumulators to the next layer's codes.
pub(super) fn requantize_row(acc: &[i32], r: &RowRequant<'_>, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx512Vnni) {
        // SAFETY: the CPU has AVX-512 F and BW (part of what the check above asks for).
        unsafe { requantize_row_avx512(acc, r, dst) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx2) {
        // SAFETY: the CPU has AVX2 (checked just above); the function only needs that feature.
        unsafe { requantize_row_avx2(acc, r, dst) };
        return;
    }
    requantize_row_any(acc, r, dst);
}

/// `Σ a` with wrapping i32 addition, like the accumulators it corrects.
pub(super) fn row_sum(a: &[u8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx512Vnni) {
        // SAFETY: the CPU has AVX-512 F and BW (part of what the check above asks for).
        return unsafe { row_sum_avx512(a) };
    }
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx2) {
        // SAFETY: the CPU has AVX2 (checked just above); the function only needs that feature.
        return unsafe { row_sum_avx2(a) };
    }
    row_sum_any(a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn row_sum_avx512(a: &[u8]) -> i32 {
    row_sum_any(a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn row_sum_avx2(a: &[u8]) -> i32 {
    row_sum_any(a)
}

#[inline(always)]
fn row_sum_any(a: &[u8]) -> i32 {
    a.iter().fold(0i32, |s, &v| s.wrapping_add(i32::from(v)))
}

/// `(min, max)` of the finite values of `src` and 0.
pub(super) fn finite_range(src: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx2) {
        // SAFETY: the CPU has AVX2 (checked just above); the function only needs that feature.
        return unsafe { finite_range_avx2(src) };
    }
    finite_range_any(src)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn finite_range_avx2(src: &[f32]) -> (f32, f32) {
    finite_range_any(src)
}

/// Eight running minima and maxima (lanes, not one sequential fold, so it vectorises);
/// non-finite values count as 0, which the range holds anyway.
#[inline(always)]
fn finite_range_any(src: &[f32]) -> (f32, f32) {
    const LANES: usize = 8;
    let (mut lo, mut hi) = ([0.0f32; LANES], [0.0f32; LANES]);
    let chunks = src.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let v = if c[i].is_finite() { c[i] } else { 0.0 };
            lo[i] = lo[i].min(v);
            hi[i] = hi[i].max(v);
        }
    }
    for (i, &v) in tail.iter().enumerate() {
        let v = if v.is_finite() { v } else { 0.0 };
        lo[i] = lo[i].min(v);
        hi[i] = hi[i].max(v);
    }
    (
        lo.iter().fold(0.0f32, |a, &b| a.min(b)),
        hi.iter().fold(0.0f32, |a, &b| a.max(b)),
    )
}

/// [`quantize_row_any`] compiled for AVX2: 8 lanes of the same arithmetic, same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_row_avx2(src: &[f32], dst: &mut [u8], p: QParams) {
    quantize_row_any(src, dst, p);
}

/// [`requantize_row_any`] compiled for AVX2, which has the per-lane 64-bit shifts it needs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn requantize_row_avx2(acc: &[i32], r: &RowRequant<'_>, dst: &mut [u8]) {
    requantize_row_any(acc, r, dst);
}

/// [`quantize_row_any`] for AVX-512, with a multiplication by `1/s` instead of the division
/// `x / s` (the division bounded the loop). The two quotients differ by far less than
/// [`TIE_MARGIN`], so they round to the same integer unless the product is that close to a
/// half-integer; a vector with such a lane (about 1 lane in 500 for arbitrary data), a NaN or
/// an infinity is redone with the division, so every code equals [`quantize_u8`]'s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn quantize_row_avx512(src: &[f32], dst: &mut [u8], p: QParams) {
    use std::arch::x86_64::{
        _CMP_NLE_UQ, _mm_storeu_si128, _mm512_add_epi32, _mm512_and_si512, _mm512_castps_si512,
        _mm512_castsi512_ps, _mm512_cmp_ps_mask, _mm512_cvtepi32_ps, _mm512_cvtps_epi32,
        _mm512_cvtusepi32_epi8, _mm512_loadu_ps, _mm512_max_epi32, _mm512_min_ps, _mm512_mul_ps,
        _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_si512, _mm512_sub_ps,
    };
    const LANES: usize = 16;
    let inv = 1.0 / p.scale;
    // A zero point outside the codes could overflow `r + zp` below; no u8 params have one.
    if !(inv.is_finite() && inv > 0.0 && (0..=255).contains(&p.zero_point)) {
        quantize_row_any(src, dst, p);
        return;
    }
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let vinv = _mm512_set1_ps(inv);
    let clamp = _mm512_set1_ps(512.0);
    let limit = _mm512_set1_ps(0.5 - TIE_MARGIN);
    let abs = _mm512_set1_epi32(0x7fff_ffff);
    let zero_point = _mm512_set1_epi32(p.zero_point);
    let zero = _mm512_setzero_si512();
    let mut src_chunks = src.chunks_exact(LANES);
    let mut dst_chunks = dst.chunks_exact_mut(LANES);
    for (s, d) in (&mut src_chunks).zip(&mut dst_chunks) {
        // SAFETY: `s` holds 16 f32 and `d` 16 bytes (exact chunks); loads and stores are
        // unaligned ones.
        unsafe {
            let v = _mm512_mul_ps(_mm512_loadu_ps(s.as_ptr()), vinv);
            // `min` returns its second operand for a NaN, so NaN stays NaN (and is caught
            // below); +∞ and everything past 512 become 512, which codes as 255 either way.
            // Below −512 nothing is clamped: the conversion saturates to i32::MIN, code 0.
            let vc = _mm512_min_ps(clamp, v);
            let r = _mm512_cvtps_epi32(vc); // half to even, the default rounding mode
            let frac = _mm512_sub_ps(vc, _mm512_cvtepi32_ps(r));
            let frac = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(frac), abs));
            // Not `|frac| ≤ limit`: near a tie, or NaN (NaN input, −∞, below i32::MIN).
            if _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(frac, limit) != 0 {
                quantize_row_any(s, d, p);
                continue;
            }
            // r ≥ i32::MIN and 0 ≤ zp ≤ 255: no overflow; the narrowing saturates at 255.
            let code = _mm512_max_epi32(_mm512_add_epi32(r, zero_point), zero);
            _mm_storeu_si128(d.as_mut_ptr().cast(), _mm512_cvtusepi32_epi8(code));
        }
    }
    quantize_row_any(src_chunks.remainder(), dst_chunks.into_remainder(), p);
}

/// How close to a rounding boundary (`j + ½`) the product `x · fl(1/s)` may come before
/// [`quantize_row_avx512`] redoes it with the division: the product is within `2⁻²²·|x/s|` of
/// `fl(x/s)`, and only `|x/s| ≤ 512` is not clamped, so the quotients differ by less than
/// `2⁻¹³`; `2⁻¹⁰` leaves a wide margin.
const TIE_MARGIN: f32 = 1.0 / 1024.0;

/// [`requantize_row_any`] compiled for AVX-512: 8 i64 lanes per zmm and direct narrowing of
/// i64 lanes to bytes (`vpmovqb`), which AVX2 spells as a chain of shuffles. (A hand-written
/// 16-column form, clamping at 0 before an unsigned rounding under a fused ReLU, measured
/// slower than this.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn requantize_row_avx512(acc: &[i32], r: &RowRequant<'_>, dst: &mut [u8]) {
    requantize_row_with(acc, r, dst, rescale_sra);
}

#[inline(always)]
fn quantize_row_any(src: &[f32], dst: &mut [u8], p: QParams) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = quantize_u8(v, p);
    }
}

/// [`Rescale::apply`] by fields, plus the correction, zero point and clamp.
#[inline(always)]
fn requantize_row_any(acc: &[i32], r: &RowRequant<'_>, dst: &mut [u8]) {
    requantize_row_with(acc, r, dst, rescale);
}

/// The row loop around either form of the rescaling.
#[inline(always)]
fn requantize_row_with(
    acc: &[i32],
    r: &RowRequant<'_>,
    dst: &mut [u8],
    rescale: impl Fn(i32, i32, u64, u64) -> i64,
) {
    let s = r.rescales;
    let out = |v: i32, m0: i32, shift: u64, half: u64| {
        (rescale(v, m0, shift, half) + r.zero_point).clamp(r.floor, 255) as u8
    };
    let cols = dst
        .iter_mut()
        .zip(acc)
        .zip(r.offset)
        .zip(&s.m0)
        .zip(&s.shift)
        .zip(&s.half);
    // `zw · 0 = 0`: rows without a row-sum term (symmetric weights) skip a multiply per column.
    if r.rs == 0 {
        for (((((d, &a), &off), &m0), &shift), &half) in cols {
            *d = out(a.wrapping_add(off), m0, shift, half);
        }
        return;
    }
    for ((((((d, &a), &off), &m0), &shift), &half), &zw) in cols.zip(r.w_zero) {
        let v = a.wrapping_add(off).wrapping_sub(zw.wrapping_mul(r.rs));
        *d = out(v, m0, shift, half);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::scheme::multiplier;
    use super::*;

    #[test]
    fn the_vectorised_quantizer_is_the_schemes_quantizer() {
        let params = [
            QParams {
                scale: 0.1,
                zero_point: 0,
            },
            QParams {
                scale: 0.037,
                zero_point: 131,
            },
            QParams {
                scale: 1e-30,
                zero_point: 255,
            },
        ];
        let mut values = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -f32::MAX,
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
        ];
        // Exact ties (k + ½ steps) and their neighbours, over and past the u8 range.
        for k in -600..600 {
            for p in &params[..2] {
                let tie = (k as f32 + 0.5) * p.scale;
                values.extend([tie, tie.next_up(), tie.next_down()]);
            }
            values.push(k as f32 * 0.01 + 0.005);
        }
        for p in params {
            for &v in &values {
                assert_eq!(quantize_u8(v, p), p.quantize_u8(v), "{v} with {p:?}");
            }
            // The row forms, whose multiplication by 1/s must fall back to the division at
            // every tie and neighbour above (and whose tail is not a whole chunk).
            let want: Vec<u8> = values.iter().map(|&v| p.quantize_u8(v)).collect();
            let mut got = vec![0u8; values.len()];
            quantize_row(&values, &mut got, p);
            assert_eq!(got, want, "{p:?}");
        }
    }

    #[test]
    fn the_reciprocal_quantizer_equals_the_division_near_ties_and_away_from_them() {
        // Scales whose reciprocal is inexact (and two whose reciprocal is huge or infinite):
        // every float in small windows around half-integer quotients, where `x · (1/s)` and
        // `x / s` can round apart, then values spread over and past the code range with NaN
        // and infinities among them (vectors that take the fast path and ones that do not).
        let scales = [0.003_921_569, 0.037, 0.1, 0.3, 7.0 / 3.0, 1e-30, 3e-39];
        for scale in scales {
            let p = QParams {
                scale,
                zero_point: 37,
            };
            let mut values = Vec::new();
            for k in -300..300 {
                let mut v = (k as f32 + 0.5) * scale;
                for _ in 0..24 {
                    v = v.next_down();
                }
                for _ in 0..48 {
                    values.push(v);
                    v = v.next_up();
                }
            }
            values.extend((0..4000).map(|i| (i as f32 * 0.618).sin() * 700.0 * scale));
            for (i, special) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -3e38, 3e38]
                .into_iter()
                .enumerate()
            {
                let at = values.len() - 1000 + 37 * i;
                values[at] = special;
            }
            let want: Vec<u8> = values.iter().map(|&v| p.quantize_u8(v)).collect();
            let mut got = vec![0u8; values.len()];
            quantize_row(&values, &mut got, p);
            assert_eq!(got, want, "{p:?}");
            #[cfg(target_arch = "x86_64")]
            if available(Isa::Avx512Vnni) {
                got.fill(0);
                // SAFETY: the CPU has AVX-512 F and BW (checked just above).
                unsafe { quantize_row_avx512(&values, &mut got, p) };
                assert_eq!(got, want, "{p:?}");
            }
        }
    }

    #[test]
    fn the_unpacked_multiplier_rounds_like_the_multiplier() {
        let reals = [
            0.0, 1e-12, 3.7e-5, 0.000_123, 0.25, 0.3333, 0.5, 0.75, 0.999_999,
        ];
        let mut accs: Vec<i32> = vec![0, 1, -1, 2, -2, 3, -3, i32::MAX, i32::MIN, i32::MIN + 1];
        for k in 0..2000i32 {
            let v = k.wrapping_mul(2_654_435_761u32 as i32) >> (k % 24);
            accs.extend([v, -v, v + 1]);
        }
        for real in reals {
            let m = multiplier(real);
            let r = Rescale::new(m).expect("factors below 2^30 unpack");
            // Ties: acc · real = j + ½ exactly when real is a power of two.
            for &acc in &accs {
                let want = i64::from(m.apply(acc));
                let got = r.apply(acc).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
                assert_eq!(got, want, "acc {acc} × {real}");
                let (shift, half) = (u64::from(r.shift), r.half as u64);
                assert_eq!(
                    rescale_sra(acc, r.m0, shift, half),
                    rescale(acc, r.m0, shift, half),
                    "acc {acc} × {real}"
                );
            }
        }
        assert_eq!(Rescale::new(multiplier(2f64.powi(31))), None);
    }

    #[test]
    fn the_row_functions_match_their_scalar_definitions_on_every_path() {
        let src: Vec<f32> = (0..203)
            .map(|i| (i as f32 - 101.0) * 0.0137 + 0.005)
            .collect();
        let p = QParams {
            scale: 0.01,
            zero_point: 77,
        };
        let mut dst = vec![0u8; src.len()];
        quantize_row(&src, &mut dst, p);
        let want: Vec<u8> = src.iter().map(|&v| p.quantize_u8(v)).collect();
        assert_eq!(dst, want);
        quantize_row_any(&src, &mut dst, p);
        assert_eq!(dst, want);

        let n = 37;
        let multipliers: Vec<Multiplier> = (0..n)
            .map(|j| multiplier(0.0003 * (j as f64 + 1.0)))
            .collect();
        let rescales = Rescales::new(&multipliers).expect("unpacks");
        let offset: Vec<i32> = (0..n).map(|j| j as i32 * 1000 - 17_000).collect();
        let w_zero: Vec<i32> = (0..n).map(|j| j as i32 % 5 - 2).collect();
        let acc: Vec<i32> = (0..n).map(|j| (j as i32 - 18) * 12_345).collect();
        let r = RowRequant {
            offset: &offset,
            w_zero: &w_zero,
            rs: 4321,
            rescales: &rescales,
            zero_point: 120,
            floor: 120,
        };
        let want: Vec<u8> = (0..n)
            .map(|j| {
                let v = acc[j] + offset[j] - w_zero[j] * 4321;
                (i64::from(multipliers[j].apply(v)) + 120).clamp(120, 255) as u8
            })
            .collect();
        let mut dst = vec![0u8; n];
        requantize_row(&acc, &r, &mut dst);
        assert_eq!(dst, want);
        assert!(want.contains(&120) && want.iter().any(|&c| c > 120 && c < 255));
        requantize_row_any(&acc, &r, &mut dst);
        assert_eq!(dst, want);
        #[cfg(target_arch = "x86_64")]
        if available(Isa::Avx512Vnni) {
            // SAFETY: the CPU has AVX-512 F and BW (checked just above).
            unsafe { requantize_row_avx512(&acc, &r, &mut dst) };
            assert_eq!(dst, want);
            let mut q = vec![0u8; src.len()];
            // SAFETY: as above.
            unsafe { quantize_row_avx512(&src, &mut q, p) };
            let want_q: Vec<u8> = src.iter().map(|&v| p.quantize_u8(v)).collect();
            assert_eq!(q, want_q);
        }

        // Without a row-sum term (rs = 0) the zero points drop out of the product.
        let r0 = RowRequant { rs: 0, ..r };
        let want0: Vec<u8> = (0..n)
            .map(|j| {
                let v = acc[j] + offset[j];
                (i64::from(multipliers[j].apply(v)) + 120).clamp(120, 255) as u8
            })
            .collect();
        assert_ne!(want0, want);
        requantize_row(&acc, &r0, &mut dst);
        assert_eq!(dst, want0);
        requantize_row_any(&acc, &r0, &mut dst);
        assert_eq!(dst, want0);
    }

    #[test]
    fn the_avx512_requantization_equals_the_generic_loop_on_every_width() {
        #[cfg(target_arch = "x86_64")]
        if !available(Isa::Avx512Vnni) {
            return;
        }
        // Factors from 0 (a zero multiplier) to just under 1, accumulators of both signs up to
        // the i32 extremes (wrapping corrections), every width 0..=40 (masked tails), fused ReLU
        // floors with and without a row-sum term, and a Linear floor of 0 (the generic path).
        let reals = [0.0, 1e-9, 2.5e-4, 0.003, 0.061, 0.5, 0.999];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut fused_nonzero = 0;
        for n in 0..=40usize {
            for (case, &(rs, zero_point, floor)) in [
                (0, 0, 0),
                (0, 37, 37),
                (913, 3, 3),
                (-77, 255, 255),
                (50, 128, 0),
            ]
            .iter()
            .enumerate()
            {
                let multipliers: Vec<Multiplier> = (0..n)
                    .map(|j| multiplier(reals[(j + case) % reals.len()]))
                    .collect();
                let rescales = Rescales::new(&multipliers).expect("unpacks");
                let offset: Vec<i32> = (0..n).map(|_| next() as i32 >> (next() % 20)).collect();
                let w_zero: Vec<i32> = (0..n).map(|_| (next() % 9) as i32 - 4).collect();
                let acc: Vec<i32> = (0..n)
                    .map(|j| match j % 7 {
                        0 => i32::MAX,
                        1 => i32::MIN,
                        _ => next() as i32 >> (next() % 24),
                    })
                    .collect();
                let r = RowRequant {
                    offset: &offset,
                    w_zero: &w_zero,
                    rs,
                    rescales: &rescales,
                    zero_point,
                    floor,
                };
                let mut want = vec![7u8; n + 3];
                requantize_row_any(&acc, &r, &mut want);
                let mut got = vec![7u8; n + 3];
                // SAFETY: the CPU has AVX-512 F and BW (checked above).
                unsafe { requantize_row_avx512(&acc, &r, &mut got) };
                assert_eq!(got, want, "n {n}, case {case}");
                assert_eq!(&got[n..], &[7, 7, 7], "nothing past the columns is written");
                fused_nonzero += want[..n]
                    .iter()
                    .filter(|&&c| floor > 0 && i64::from(c) > floor && c < 255)
                    .count();
            }
        }
        assert!(fused_nonzero > 50, "{fused_nonzero}");
    }

    #[test]
    fn row_sums_wrap_like_the_accumulators() {
        let a: Vec<u8> = (0..1001u32).map(|i| (i * 37 % 256) as u8).collect();
        let want = a.iter().map(|&v| i64::from(v)).sum::<i64>();
        assert_eq!(i64::from(row_sum(&a)), want);
        assert_eq!(row_sum_any(&a), row_sum(&a));
        assert_eq!(row_sum(&[]), 0);
        assert_eq!(row_sum(&[255; 3]), 765);
    }

    #[test]
    fn the_batch_range_is_the_finite_extremes_and_zero() {
        let mut v: Vec<f32> = (0..53)
            .map(|i| (i as f32 * 0.77).sin() * 3.0 + 1.0)
            .collect();
        v[7] = f32::NAN;
        v[19] = f32::INFINITY;
        v[50] = f32::NEG_INFINITY;
        v[52] = -4.5; // in the tail of the 8-lane chunks
        let finite = v.iter().filter(|x| x.is_finite());
        let want = finite.fold((0.0f32, 0.0f32), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        assert_eq!(want.0, -4.5);
        assert_eq!(finite_range(&v), want);
        assert_eq!(finite_range_any(&v), want);
        assert_eq!(finite_range(&[2.0, 3.0]), (0.0, 3.0));
        assert_eq!(finite_range(&[]), (0.0, 0.0));
    }
}
