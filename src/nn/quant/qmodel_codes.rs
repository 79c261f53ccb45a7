//! The element-wise conversions of the hot path, in forms LLVM vectorises (or at least runs
//! without branches) on baseline x86-64, each exactly equal to its definition in
//! [`scheme`](super::super::scheme): the tests compare them value for value.

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
    m0: i64,
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
            m0: i64::from(m.m0),
            shift: right as u32,
            half: 1i64 << (right - 1),
        })
    }

    /// `Multiplier::apply(acc)` before its saturation to i32 (callers clamp to a code anyway):
    /// `round(acc · m0 / 2^shift)`, ties away from zero.
    #[inline(always)]
    pub(super) fn apply(self, acc: i32) -> i64 {
        // |acc · m0| < 2⁶²: the magnitude and the rounding offset fit.
        let prod = i64::from(acc) * self.m0;
        let sign = prod >> 63;
        let magnitude = (prod ^ sign) - sign;
        let r = (magnitude + self.half) >> self.shift;
        (r ^ sign) - sign
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
            }
        }
        assert_eq!(Rescale::new(multiplier(2f64.powi(31))), None);
    }
}
