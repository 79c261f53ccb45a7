//! Scales and zero points: how a float range maps onto 8-bit codes.
//!
//! Activations are `u8` in `[0, 255]`, weights `i8`; a code `q` stands for
//! `scale · (q − zero_point)`. The zero point is an integer so that `0.0` is
//! exactly representable: zero padding, ReLU outputs and pruned weights then
//! cost no error, and the integer kernels can fold zero points into sums.
//!
//! Rounding is round-half-to-even (as ONNX `QuantizeLinear` and PyTorch do),
//! so ties carry no bias over many values; out-of-range values are clamped.
//! The requantization [`Multiplier`] rounds ties away from zero, as gemmlowp.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

/// Whether the float range is centred on zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// `[−m, m]` with `m = max(|min|, |max|)`: a fixed zero point, so the
    /// kernels skip the zero-point correction terms.
    Symmetric,
    /// `[min(min, 0), max(max, 0)]`: every code used when the data is lopsided
    /// (e.g. post-ReLU activations), at the cost of correction terms.
    Asymmetric,
}

/// One set of [`QParams`] for the whole tensor, or one per output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    PerTensor,
    /// One per output unit (column of `W [in, out]`): a unit with small weights
    /// does not share the step size of the layer's largest weight.
    PerChannel,
}

/// `x ≈ scale · (q − zero_point)`. `scale` is always finite and positive.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// The scale of a range of width zero: any positive value represents the only
/// value (`0.0`) exactly; 1.0 keeps requantization multipliers ordinary.
const DEGENERATE_SCALE: f32 = 1.0;

/// NaN counts as 0 and infinities as the largest finite value, so a stray
/// non-finite statistic still yields finite parameters.
fn sanitize(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(f32::MIN, f32::MAX)
    }
}

/// Significant bits kept in a scale (f32 has 24).
const SCALE_BITS: u32 = 18;
/// A scale may sit this far (relatively) below `width / levels`: more than the
/// f32 rounding of a range read back off the grid, far less than a grid step.
const SCALE_SLACK: f64 = 1.0 / (1u64 << 21) as f64;

/// `width / levels` as a finite positive f32, or [`DEGENERATE_SCALE`] for width 0.
///
/// Rounded up to [`SCALE_BITS`] significant bits after a slack of
/// [`SCALE_SLACK`], so that a range read back off a grid (its ends rounded to
/// f32, `width·(1 ± 2⁻²²)`) snaps back to the grid's own scale. Without this
/// the scale drifts by an ulp in about one tensor in thirty, and int8 weights
/// written by QAT would not re-quantize to themselves. The cost is at most
/// 2⁻²¹ of the range clipped at each end (≈ 1.4e-4 of a step).
fn scale_of(width: f64, levels: f64) -> f32 {
    if width.is_nan() || width <= 0.0 {
        return DEGENERATE_SCALE;
    }
    let raw = ((width / levels * (1.0 - SCALE_SLACK)) as f32).clamp(f32::MIN_POSITIVE, f32::MAX);
    let mask = (1u32 << (24 - SCALE_BITS)) - 1;
    let bits = raw.to_bits();
    let up = if bits & mask == 0 {
        bits
    } else {
        (bits | mask) + 1
    };
    let snapped = f32::from_bits(up);
    if snapped.is_finite() {
        snapped
    } else {
        f32::MAX
    }
}

/// `[min(min, 0), max(max, 0)]` in f64 (the width of a huge f32 range overflows f32).
fn range_with_zero(min: f32, max: f32) -> (f64, f64) {
    let (a, b) = (sanitize(min) as f64, sanitize(max) as f64);
    (a.min(b).min(0.0), a.max(b).max(0.0))
}

fn max_abs(min: f32, max: f32) -> f64 {
    (sanitize(min) as f64)
        .abs()
        .max((sanitize(max) as f64).abs())
}

/// Asymmetric parameters mapping `[lo, hi]` (containing 0) onto `[qmin, qmax]`;
/// the zero point is rounded, which moves each end by at most half a step.
fn asymmetric(lo: f64, hi: f64, qmin: i32, qmax: i32) -> QParams {
    let scale = scale_of(hi - lo, (qmax - qmin) as f64);
    let zp = (qmin as f64 - lo / scale as f64).round_ties_even();
    QParams {
        scale,
        zero_point: zp.clamp(qmin as f64, qmax as f64) as i32,
    }
}

impl QParams {
    /// u8 activations in `[0, 255]`. Asymmetric: `[min(min,0), max(max,0)] → [0, 255]`,
    /// zero point rounded and clamped so 0.0 is exactly representable. Symmetric:
    /// zero point 128, `scale = max(|min|, |max|) / 127` (code 0 is unused by in-range
    /// values, which keeps the range symmetric around the zero point).
    pub fn activation(min: f32, max: f32, scheme: Scheme) -> QParams {
        match scheme {
            Scheme::Symmetric => QParams {
                scale: scale_of(max_abs(min, max), 127.0),
                zero_point: 128,
            },
            Scheme::Asymmetric => {
                let (lo, hi) = range_with_zero(min, max);
                asymmetric(lo, hi, 0, 255)
            }
        }
    }

    /// i8 weights. Symmetric: zero point 0, codes `[-127, 127]`, `scale = max|w| / 127`
    /// (−128 is never produced for in-range values, so every code's negation is an
    /// i8 too). Asymmetric: `[min(min,0), max(max,0)] → [-128, 127]`.
    pub fn weight(min: f32, max: f32, scheme: Scheme) -> QParams {
        match scheme {
            Scheme::Symmetric => QParams {
                scale: scale_of(max_abs(min, max), 127.0),
                zero_point: 0,
            },
            Scheme::Asymmetric => {
                let (lo, hi) = range_with_zero(min, max);
                asymmetric(lo, hi, -128, 127)
            }
        }
    }

    /// `x / scale + zero_point`, rounded half to even, clamped to `[lo, hi]`.
    /// NaN maps to the zero point.
    fn code(&self, x: f32, lo: i32, hi: i32) -> i32 {
        let q = (x / self.scale).round_ties_even() + self.zero_point as f32;
        if q.is_nan() {
            return self.zero_point.clamp(lo, hi);
        }
        q.clamp(lo as f32, hi as f32) as i32
    }

    pub fn quantize_u8(&self, x: f32) -> u8 {
        self.code(x, 0, 255) as u8
    }

    pub fn quantize_i8(&self, x: f32) -> i8 {
        self.code(x, -128, 127) as i8
    }

    /// `scale · (q − zero_point)`.
    pub fn dequantize(&self, q: i32) -> f32 {
        self.scale * (q - self.zero_point) as f32
    }

    /// `dequantize(quantize_i8(x))`: the value an int8 weight stands for.
    pub fn fake_quantize_i8(&self, x: f32) -> f32 {
        self.dequantize(self.quantize_i8(x) as i32)
    }

    /// `dequantize(quantize_u8(x))`: the value a u8 activation stands for.
    pub fn fake_quantize_u8(&self, x: f32) -> f32 {
        self.dequantize(self.quantize_u8(x) as i32)
    }
}

/// Quantized weights: `[in, out]` i8 and one [`QParams`] per output column
/// (per-channel) or one (per-tensor).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeights {
    pub q: Array2<i8>,
    pub params: Vec<QParams>,
}

/// `(min, max)` of finite values, `(0, 0)` when there are none.
fn min_max<'a>(values: impl IntoIterator<Item = &'a f32>) -> (f32, f32) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

/// The parameters [`quantize_weights`] uses for `w [in, out]`: one per tensor, or
/// one per output column, from the finite values' own ranges.
pub fn weight_params(w: ArrayView2<f32>, scheme: Scheme, granularity: Granularity) -> Vec<QParams> {
    match granularity {
        Granularity::PerTensor => {
            let (lo, hi) = min_max(w.iter());
            vec![QParams::weight(lo, hi, scheme)]
        }
        Granularity::PerChannel => w
            .axis_iter(Axis(1))
            .map(|col| {
                let (lo, hi) = min_max(col.iter());
                QParams::weight(lo, hi, scheme)
            })
            .collect(),
    }
}

/// Quantizes a `[in, out]` weight matrix to i8 with ranges from its own values.
pub fn quantize_weights(
    w: ArrayView2<f32>,
    scheme: Scheme,
    granularity: Granularity,
) -> QuantizedWeights {
    let mut out = QuantizedWeights {
        q: Array2::zeros(w.raw_dim()),
        params: weight_params(w, scheme, granularity),
    };
    for j in 0..w.ncols() {
        let p = out.params_for(j);
        out.q
            .column_mut(j)
            .iter_mut()
            .zip(w.column(j))
            .for_each(|(q, &x)| *q = p.quantize_i8(x));
    }
    out
}

/// Rounds of re-quantization [`fake_quantize_weights_into`] allows; one or two suffice.
const MAX_PROJECTION_ROUNDS: usize = 8;

/// `dst ← fq(src)`: `dequantize(quantize(src))` with `src`'s own parameters,
/// repeated until the parameters of the result are the ones that made it.
///
/// One round is [`quantize_weights`]`(src).dequantize()`. Rarely (when rounding
/// leaves the largest code unused) that result's own range, hence parameters,
/// is a code narrower; the next round settles it. The fixed point is what QAT
/// needs: `quantize_weights(fq(w))` gives back exactly `fq(w)`, so the int8
/// network holds the very weights training saw. `dst` must have `src`'s shape
/// (else it is left untouched).
pub fn fake_quantize_weights_into(
    src: ArrayView2<f32>,
    mut dst: ArrayViewMut2<f32>,
    scheme: Scheme,
    granularity: Granularity,
) {
    if dst.dim() != src.dim() {
        return;
    }
    let mut params = weight_params(src, scheme, granularity);
    dst.assign(&src);
    for _ in 0..MAX_PROJECTION_ROUNDS {
        for (j, mut col) in dst.axis_iter_mut(Axis(1)).enumerate() {
            if let Some(p) = params.get(j).or(params.first()).copied() {
                col.mapv_inplace(|x| p.fake_quantize_i8(x));
            }
        }
        let again = weight_params(dst.view(), scheme, granularity);
        if again == params {
            return;
        }
        params = again;
    }
}

impl QuantizedWeights {
    /// The float matrix the codes stand for.
    pub fn dequantize(&self) -> Array2<f32> {
        Array2::from_shape_fn(self.q.raw_dim(), |(i, j)| {
            self.params_for(j).dequantize(self.q[(i, j)] as i32)
        })
    }

    /// The parameters of output column `col` (the only ones when per-tensor).
    pub fn params_for(&self, col: usize) -> QParams {
        self.params
            .get(col)
            .or(self.params.first())
            .copied()
            .unwrap_or(QParams {
                scale: DEGENERATE_SCALE,
                zero_point: 0,
            })
    }
}

/// A positive real factor as a fixed-point number, `real ≈ m0 · 2^(shift − 31)`
/// with `m0 ∈ [2^30, 2^31)` (gemmlowp / TFLite's quantized multiplier): the
/// integer network rescales i32 accumulators to the next layer's codes without floats.
/// `m0 == 0` stands for a factor of zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Multiplier {
    pub m0: i32,
    /// Power of two applied after the Q31 multiply: negative shifts right.
    pub shift: i32,
}

/// Factors below this give 0 for every i32 accumulator, so they are stored as 0.
const SMALLEST_MULTIPLIER: f64 = 1e-30;

/// The fixed-point form of `real`, for any `real ≥ 0` (factors ≥ 1 get a positive
/// `shift`). Zero, negative, NaN or negligible factors give the zero multiplier;
/// huge ones saturate in [`Multiplier::apply`].
pub fn multiplier(real: f64) -> Multiplier {
    if real.is_nan() || real < SMALLEST_MULTIPLIER {
        return Multiplier { m0: 0, shift: 0 };
    }
    let real = real.min(f64::MAX);
    // real = f · 2^e with f ∈ [0.5, 1): read e off the (normal) f64's exponent.
    let e = ((real.to_bits() >> 52) & 0x7ff) as i32 - 1022;
    let f = real / 2f64.powi(e);
    let mut m0 = (f * 2f64.powi(31)).round() as i64;
    let mut shift = e;
    if m0 == 1i64 << 31 {
        m0 /= 2;
        shift += 1;
    }
    Multiplier {
        m0: m0 as i32,
        shift: shift.min(64),
    }
}

impl Multiplier {
    /// The factor this multiplier represents exactly.
    pub fn real(&self) -> f64 {
        self.m0 as f64 * 2f64.powi(self.shift - 31)
    }

    /// `round(acc · m0 · 2^(shift − 31))`, ties away from zero, saturated to i32;
    /// integer arithmetic only.
    ///
    /// This is gemmlowp's saturating rounding doubling high multiply followed by
    /// its rounding right shift, fused: the full 64-bit product is rounded once.
    /// Rounding twice (first to Q31, then by the shift) is off by one for up to a
    /// quarter of accumulators when the shift is small; one rounding is exact and
    /// costs the same single widening multiply (TFLite's `SINGLE_ROUNDING` path).
    pub fn apply(&self, acc: i32) -> i32 {
        if self.m0 == 0 {
            return 0;
        }
        // |acc · m0| < 2^62: the product and the rounding offset fit in i64.
        let prod = acc as i64 * self.m0 as i64;
        let right = 31 - self.shift;
        let out = if right > 0 {
            rounding_shift_right(prod, right.min(63) as u32)
        } else {
            let left = (-right) as u32;
            if prod == 0 {
                0
            } else if left >= 32 {
                if prod > 0 { i64::MAX } else { i64::MIN }
            } else {
                prod.saturating_mul(1i64 << left)
            }
        };
        out.clamp(i32::MIN as i64, i32::MAX as i64) as i32
    }
}

/// `x / 2^n` rounded half away from zero, for `1 ≤ n ≤ 63` and `|x| < 2^62`.
fn rounding_shift_right(x: i64, n: u32) -> i64 {
    let half = 1i64 << (n - 1);
    if x >= 0 {
        (x + half) >> n
    } else {
        -((-x + half) >> n)
    }
}

#[cfg(test)]
#[path = "scheme_tests.rs"]
mod tests;
