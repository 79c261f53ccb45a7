//! Activation ranges from data: min–max, percentile and entropy (KL) calibration.
//!
//! An [`Observer`] sees one tensor (e.g. one layer's output) batch after batch
//! and keeps, in bounded memory (well under 1 MB) however many rows it sees:
//! * the exact running min and max;
//! * a linear histogram of `|x|` with [`LINEAR_BINS`] bins of width `2^k`, `k`
//!   the smallest that covers the running `max |x|`. When the max grows the
//!   bins are merged by a power of two; the dyadic bins nest, so the histogram
//!   (and every range computed from it) is exactly the same whatever the batch
//!   order. The entropy method reads it;
//! * a log-bucketed histogram of the signed values (a bucket per f32 exponent
//!   and leading [`LOG_MANTISSA_BITS`] mantissa bits, relative width ≤ 2⁻⁷), for
//!   percentiles that stay precise however far one outlier sits from the bulk.
//!
//! Non-finite values are skipped: they carry no range information.

use ndarray::ArrayView2;

use super::scheme::Scheme;

/// How [`Observer::range`] turns the observed values into a quantization range.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// The observed extremes: nothing clipped, but one outlier coarsens every step.
    MinMax,
    /// Clip at a percentile (in `[50, 100]`; other values are clamped, NaN is 100).
    Percentile { percentile: f64 },
    /// TensorRT's KL-divergence threshold.
    Entropy,
}

/// Bins of the linear `|x|` histogram.
pub const LINEAR_BINS: usize = 1 << 14;
/// Bins of the histogram the entropy method compares distributions on (TensorRT's 2048).
pub const ENTROPY_BINS: usize = 2048;
/// Quantization levels of one sign in 8 bits, the candidate distribution's resolution.
pub const ENTROPY_LEVELS: usize = 128;
/// Mantissa bits kept by the log-bucketed histogram's bucket keys.
pub const LOG_MANTISSA_BITS: u32 = 7;
const LOG_SHIFT: u32 = 23 - LOG_MANTISSA_BITS;
/// Keys of finite non-negative f32s: 8 exponent bits and the kept mantissa bits.
const LOG_BUCKETS: usize = 1 << (8 + LOG_MANTISSA_BITS);
/// The smallest bin-width exponent: the f32 subnormal spacing.
const MIN_WIDTH_EXP: i32 = -149;

/// Accumulates one tensor's values over many batches.
#[derive(Clone)]
pub struct Observer {
    count: u64,
    min: f32,
    max: f32,
    /// Bin width of `linear` is `2^width_exp`.
    width_exp: i32,
    linear: Vec<u64>,
    /// Log buckets of `x ≥ 0` and of `|x|` for `x < 0`.
    log_pos: Vec<u64>,
    log_neg: Vec<u64>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max())
            .field("bin_width", &self.bin_width())
            .finish_non_exhaustive()
    }
}

impl Default for Observer {
    fn default() -> Self {
        Self::new()
    }
}

/// `⌊log₂ r⌋` of a positive normal f64, read off its exponent bits.
fn floor_log2(r: f64) -> i32 {
    ((r.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// The log bucket of a finite `a ≥ 0`.
fn log_key(a: f32) -> usize {
    (a.to_bits() >> LOG_SHIFT) as usize
}

/// `[lo, hi)` of log bucket `key`.
fn log_bounds(key: usize) -> (f64, f64) {
    let lo = f32::from_bits((key as u32) << LOG_SHIFT) as f64;
    let hi = f32::from_bits(((key as u32) + 1) << LOG_SHIFT) as f64;
    (lo, if hi.is_finite() { hi } else { f32::MAX as f64 })
}

impl Observer {
    pub fn new() -> Self {
        Self {
            count: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            width_exp: MIN_WIDTH_EXP,
            linear: vec![0; LINEAR_BINS],
            log_pos: vec![0; LOG_BUCKETS],
            log_neg: vec![0; LOG_BUCKETS],
        }
    }

    /// Call once per batch.
    pub fn observe(&mut self, x: ArrayView2<f32>) {
        let mut batch_abs = 0.0f32;
        for &v in x.iter().filter(|v| v.is_finite()) {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            batch_abs = batch_abs.max(v.abs());
        }
        self.grow_to(batch_abs);
        let width = self.bin_width();
        for &v in x.iter().filter(|v| v.is_finite()) {
            let a = v.abs();
            // a / 2^k is exact; a < LINEAR_BINS · 2^k after grow_to.
            let bin = ((a as f64 / width) as usize).min(LINEAR_BINS - 1);
            self.linear[bin] += 1;
            let buckets = if v < 0.0 {
                &mut self.log_neg
            } else {
                &mut self.log_pos
            };
            buckets[log_key(a)] += 1;
            self.count += 1;
        }
    }

    /// Widens the linear bins (merging `2^d` at a time) until `a` falls in range.
    fn grow_to(&mut self, a: f32) {
        if (a as f64) < LINEAR_BINS as f64 * self.bin_width() {
            return;
        }
        let k = floor_log2(a as f64 / LINEAR_BINS as f64) + 1;
        let d = (k - self.width_exp) as u32;
        let mut merged = vec![0u64; LINEAR_BINS];
        for (j, &c) in self.linear.iter().enumerate() {
            merged[j.checked_shr(d).unwrap_or(0)] += c;
        }
        self.linear = merged;
        self.width_exp = k;
    }

    fn bin_width(&self) -> f64 {
        2f64.powi(self.width_exp)
    }

    /// Finite values observed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value seen (0.0 before any).
    pub fn min(&self) -> f32 {
        if self.count == 0 { 0.0 } else { self.min }
    }

    /// The largest value seen (0.0 before any).
    pub fn max(&self) -> f32 {
        if self.count == 0 { 0.0 } else { self.max }
    }

    fn max_abs(&self) -> f32 {
        self.min().abs().max(self.max().abs())
    }

    /// `(min, max)` to quantize with.
    ///
    /// * `MinMax`: the observed extremes.
    /// * `Percentile { p }`: Symmetric → `(−t, t)` with `t` the p-th percentile of
    ///   `|x|`; Asymmetric → two-sided, the `(100 − p)`-th and p-th percentiles of
    ///   the values. Interpolated within a log bucket, clamped to the extremes.
    /// * `Entropy`: `t` = TensorRT's KL threshold on the `|x|` histogram (which is
    ///   the histogram of `x` for non-negative, post-ReLU data); Symmetric →
    ///   `(−t, t)`, Asymmetric → `(max(min, −t), min(max, t))`, i.e. `[0, t]` after a ReLU.
    ///
    /// Before any value is observed every method gives `(0, 0)`.
    pub fn range(&self, method: CalibrationMethod, scheme: Scheme) -> (f32, f32) {
        if self.count == 0 {
            return (0.0, 0.0);
        }
        match (method, scheme) {
            (CalibrationMethod::MinMax, _) => (self.min(), self.max()),
            (CalibrationMethod::Percentile { percentile }, Scheme::Symmetric) => {
                let t = self.abs_quantile(percentile_fraction(percentile));
                (-t, t)
            }
            (CalibrationMethod::Percentile { percentile }, Scheme::Asymmetric) => {
                let q = percentile_fraction(percentile);
                (self.signed_quantile(1.0 - q), self.signed_quantile(q))
            }
            (CalibrationMethod::Entropy, scheme) => {
                let t = self.entropy_threshold();
                match scheme {
                    Scheme::Symmetric => (-t, t),
                    Scheme::Asymmetric => (self.min().max(-t), self.max().min(t)),
                }
            }
        }
    }

    /// The `q`-quantile of `|x|` (`q ∈ [0, 1]`).
    fn abs_quantile(&self, q: f64) -> f32 {
        let buckets = self
            .log_pos
            .iter()
            .zip(&self.log_neg)
            .enumerate()
            .map(|(key, (p, n))| {
                let (lo, hi) = log_bounds(key);
                (lo, hi, p + n)
            });
        let t = quantile_walk(buckets, q * self.count as f64);
        (t as f32).min(self.max_abs())
    }

    /// The `q`-quantile of the signed values.
    fn signed_quantile(&self, q: f64) -> f32 {
        let neg = self.log_neg.iter().enumerate().rev().map(|(key, &c)| {
            let (lo, hi) = log_bounds(key);
            (-hi, -lo, c)
        });
        let pos = self.log_pos.iter().enumerate().map(|(key, &c)| {
            let (lo, hi) = log_bounds(key);
            (lo, hi, c)
        });
        let v = quantile_walk(neg.chain(pos), q * self.count as f64);
        (v as f32).clamp(self.min(), self.max())
    }

    /// TensorRT's entropy calibration: for every candidate number of bins `i`,
    /// the reference `P` is the first `i` bins with the outliers folded into the
    /// last one, `Q` is the same bins (without outliers) merged into
    /// [`ENTROPY_LEVELS`] levels and spread back over `P`'s non-empty bins; the
    /// threshold is the upper edge of bin `i` with the least `KL(P‖Q)`.
    ///
    /// The linear histogram is regrouped so that at most [`ENTROPY_BINS`] bins span
    /// `[0, max |x|]` (between 1024 and 2048 of them: the grouping is an integer
    /// number of dyadic bins). With no more bins than levels nothing is clipped.
    fn entropy_threshold(&self) -> f32 {
        let max_abs = self.max_abs();
        let used = self
            .linear
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |j| j + 1);
        let group = used.div_ceil(ENTROPY_BINS).max(1);
        let hist: Vec<f64> = self
            .linear
            .chunks(group)
            .take(used.div_ceil(group))
            .map(|c| c.iter().sum::<u64>() as f64)
            .collect();
        let width = group as f64 * self.bin_width();
        let n = hist.len();
        if n <= ENTROPY_LEVELS {
            return max_abs;
        }
        // suffix[i] = Σ hist[i..]
        let mut suffix = vec![0.0; n + 1];
        for i in (0..n).rev() {
            suffix[i] = suffix[i + 1] + hist[i];
        }
        let mut best = (f64::INFINITY, n);
        for i in ENTROPY_LEVELS..=n {
            let kl = kl_divergence(&hist[..i], suffix[i]);
            if kl < best.0 {
                best = (kl, i);
            }
        }
        ((best.1 as f64 * width) as f32).min(max_abs)
    }
}

/// `p` percent as a fraction in `[0.5, 1]`.
fn percentile_fraction(p: f64) -> f64 {
    if p.is_nan() {
        1.0
    } else {
        p.clamp(50.0, 100.0) / 100.0
    }
}

/// The value at continuous rank `rank` of buckets `(lo, hi, count)` given in
/// ascending value order, interpolating linearly inside the bucket.
fn quantile_walk(buckets: impl Iterator<Item = (f64, f64, u64)>, rank: f64) -> f64 {
    let mut below = 0.0;
    let mut last = 0.0;
    for (lo, hi, c) in buckets.filter(|b| b.2 > 0) {
        let c = c as f64;
        if below + c >= rank {
            let frac = ((rank - below) / c).clamp(0.0, 1.0);
            return lo + frac * (hi - lo);
        }
        below += c;
        last = hi;
    }
    last
}

/// `KL(P‖Q)` for `P` = `clipped` with `outliers` added to its last bin and `Q`
/// = `clipped` quantized to [`ENTROPY_LEVELS`] levels (see `entropy_threshold`).
fn kl_divergence(clipped: &[f64], outliers: f64) -> f64 {
    let i = clipped.len();
    let mut p = clipped.to_vec();
    p[i - 1] += outliers;
    let mut q = vec![0.0; i];
    let merged = i / ENTROPY_LEVELS;
    for level in 0..ENTROPY_LEVELS {
        let start = level * merged;
        let end = if level + 1 == ENTROPY_LEVELS {
            i
        } else {
            start + merged
        };
        let total: f64 = clipped[start..end].iter().sum();
        let nonzero = p[start..end].iter().filter(|&&v| v > 0.0).count();
        if nonzero == 0 {
            continue;
        }
        for k in start..end {
            if p[k] > 0.0 {
                q[k] = total / nonzero as f64;
            }
        }
    }
    // Smoothing: a bin P has but Q lacks (outliers folded into an empty level)
    // gets a tiny count instead of an infinite divergence.
    const EPS: f64 = 1e-4;
    for (qk, &pk) in q.iter_mut().zip(&p) {
        if pk > 0.0 && *qk == 0.0 {
            *qk = EPS;
        }
    }
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp <= 0.0 || sq <= 0.0 {
        return f64::INFINITY;
    }
    p.iter()
        .zip(&q)
        .filter(|(pk, _)| **pk > 0.0)
        .map(|(pk, qk)| {
            let (pn, qn) = (pk / sp, qk / sq);
            pn * (pn / qn).ln()
        })
        .sum()
}

#[cfg(test)]
#[path = "calibrate_tests.rs"]
mod tests;
