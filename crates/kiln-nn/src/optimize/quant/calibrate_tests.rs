use super::*;
use crate::optimize::quant::scheme::QParams;
use ndarray::{Array2, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StudentT};

const SCHEMES: [Scheme; 2] = [Scheme::Symmetric, Scheme::Asymmetric];

fn methods() -> [CalibrationMethod; 4] {
    [
        CalibrationMethod::MinMax,
        CalibrationMethod::Percentile { percentile: 99.9 },
        CalibrationMethod::Percentile { percentile: 99.99 },
        CalibrationMethod::Entropy,
    ]
}

fn column(values: &[f32]) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((values.len(), 1), values).expect("shape")
}

fn observe_all(values: &[f32], batch: usize) -> Observer {
    let mut obs = Observer::new();
    for chunk in values.chunks(batch) {
        obs.observe(column(chunk));
    }
    obs
}

fn normal_samples(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = Normal::new(0.0f32, 1.0).expect("normal");
    (0..n).map(|_| d.sample(&mut rng)).collect()
}

/// The exact `q`-quantile (nearest rank) of `values`.
fn exact_quantile(values: &[f32], q: f64) -> f32 {
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let idx = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[idx]
}

/// Mean squared error of `values` quantized to u8 with the range `(lo, hi)`.
fn quantization_mse(values: &[f32], (lo, hi): (f32, f32), scheme: Scheme) -> f64 {
    let p = QParams::activation(lo, hi, scheme);
    values
        .iter()
        .map(|&x| ((p.fake_quantize_u8(x) - x) as f64).powi(2))
        .sum::<f64>()
        / values.len() as f64
}

#[test]
fn min_max_is_the_exact_extremes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut obs = Observer::new();
    for b in 0..10 {
        let x = Array2::from_shape_fn((32, 7), |_| rng.random_range(-2.0f32..3.0));
        obs.observe(x.view());
        if b == 4 {
            obs.observe(Array2::from_elem((1, 1), -7.25f32).view());
            obs.observe(Array2::from_elem((1, 2), f32::NAN).view());
        }
        if b == 6 {
            obs.observe(Array2::from_elem((2, 1), 11.5f32).view());
            obs.observe(Array2::from_elem((1, 1), f32::INFINITY).view());
        }
    }
    for scheme in SCHEMES {
        assert_eq!(obs.range(CalibrationMethod::MinMax, scheme), (-7.25, 11.5));
    }
    assert_eq!((obs.min(), obs.max()), (-7.25, 11.5));
    assert_eq!(obs.count(), 10 * 32 * 7 + 3);
}

#[test]
fn nothing_observed_or_all_zero_gives_zero_range() {
    let empty = Observer::new();
    let zeros = observe_all(&[0.0; 100], 10);
    for obs in [&empty, &zeros] {
        for m in methods() {
            for s in SCHEMES {
                assert_eq!(obs.range(m, s), (0.0, 0.0), "{m:?} {s:?}");
            }
        }
    }
}

#[test]
fn percentile_clips_a_single_huge_outlier() {
    let mut values = normal_samples(100_000, 2);
    values[31_337] = 1e4;
    let obs = observe_all(&values, 1000);
    let p = CalibrationMethod::Percentile { percentile: 99.99 };
    let abs: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    let want = exact_quantile(&abs, 0.9999);
    let (lo, hi) = obs.range(p, Scheme::Symmetric);
    assert_eq!(lo, -hi);
    assert!(hi > 3.0 && hi < 5.0, "{hi}: far below the outlier 1e4");
    assert!((hi - want).abs() <= 0.02 * want, "{hi} vs exact {want}");
    let (lo, hi) = obs.range(p, Scheme::Asymmetric);
    let (want_lo, want_hi) = (
        exact_quantile(&values, 0.0001),
        exact_quantile(&values, 0.9999),
    );
    assert!(
        (lo - want_lo).abs() <= 0.02 * want_lo.abs(),
        "{lo} vs {want_lo}"
    );
    assert!((hi - want_hi).abs() <= 0.02 * want_hi, "{hi} vs {want_hi}");
    assert!(hi < 5.0);
    // 100 % is the extremes again.
    let all = CalibrationMethod::Percentile { percentile: 100.0 };
    assert_eq!(obs.range(all, Scheme::Asymmetric), (obs.min(), 1e4));
}

#[test]
fn percentile_is_interpolated_within_buckets() {
    // 0.01, 0.02, …, 100.00: the p-th percentile is p (to the bucket's ≤ 2⁻⁷ width).
    let values: Vec<f32> = (1..=10_000).map(|i| i as f32 * 0.01).collect();
    let obs = observe_all(&values, 777);
    for p in [50.0, 90.0, 99.0, 99.9] {
        let (_, hi) = obs.range(
            CalibrationMethod::Percentile { percentile: p },
            Scheme::Asymmetric,
        );
        assert!((hi as f64 - p).abs() <= p * 2f64.powi(-7), "p{p}: {hi}");
    }
}

/// Laplace(0, 1) by inverse CDF.
fn laplace_samples(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = rng.random_range(-0.5..0.5);
            (-u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
        })
        .collect()
}

#[test]
fn entropy_beats_min_max_on_heavy_tails() {
    // A million Laplace values (the bulk within ±14) and three far outliers: min-max
    // spends its steps on the empty tail, entropy clips the outliers.
    let mut values = laplace_samples(1_000_000, 5);
    values[10] = 60.0;
    values[500_000] = -45.0;
    values[999_999] = 38.0;
    let obs = observe_all(&values, 4096);
    for scheme in SCHEMES {
        let minmax = obs.range(CalibrationMethod::MinMax, scheme);
        let entropy = obs.range(CalibrationMethod::Entropy, scheme);
        let (e_mm, e_ent) = (
            quantization_mse(&values, minmax, scheme),
            quantization_mse(&values, entropy, scheme),
        );
        eprintln!(
            "{scheme:?}: min-max {minmax:?} mse {e_mm:.3e}, entropy {entropy:?} mse {e_ent:.3e}"
        );
        assert!(entropy.1 < 30.0, "entropy clips the outliers: {entropy:?}");
        assert!(
            e_ent < e_mm,
            "{scheme:?}: entropy {e_ent} vs min-max {e_mm}"
        );
    }
}

/// Student-t (3 degrees of freedom) for the record: entropy's threshold, not asserted.
#[test]
fn entropy_threshold_on_student_t_is_inside_the_range() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let d = StudentT::new(3.0f32).expect("t");
    let values: Vec<f32> = (0..100_000).map(|_| d.sample(&mut rng)).collect();
    let obs = observe_all(&values, 4096);
    let (lo, hi) = obs.range(CalibrationMethod::Entropy, Scheme::Symmetric);
    let max_abs = obs.max().max(-obs.min());
    assert_eq!(lo, -hi);
    // At least 128 of the ≤ 2048 bins over [0, max|x|] are kept.
    assert!(
        hi >= max_abs * 128.0 / 2048.0 && hi < max_abs,
        "{hi} of {max_abs}"
    );
    eprintln!(
        "t3: entropy ±{hi}, mse {:.3e}; min-max mse {:.3e}",
        quantization_mse(&values, (lo, hi), Scheme::Symmetric),
        quantization_mse(&values, (obs.min(), obs.max()), Scheme::Symmetric)
    );
}

#[test]
fn entropy_keeps_the_range_of_uniform_data() {
    // No tail to clip: any threshold below the max only adds clipping error.
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let values: Vec<f32> = (0..50_000).map(|_| rng.random_range(0.0f32..4.0)).collect();
    let obs = observe_all(&values, 5000);
    let (lo, hi) = obs.range(CalibrationMethod::Entropy, Scheme::Asymmetric);
    assert_eq!(lo, obs.min());
    assert!(hi >= 0.95 * obs.max(), "{hi} vs max {}", obs.max());
}

#[test]
fn entropy_of_post_relu_data_starts_at_zero() {
    let values: Vec<f32> = normal_samples(20_000, 7)
        .into_iter()
        .map(|v| v.max(0.0))
        .collect();
    let obs = observe_all(&values, 1000);
    let (lo, hi) = obs.range(CalibrationMethod::Entropy, Scheme::Asymmetric);
    assert_eq!(lo, 0.0);
    assert!(hi > 1.0 && hi <= obs.max(), "{hi}");
}

#[test]
fn kl_divergence_hand_computed() {
    // One bin per level and no outliers: Q = P.
    assert!(kl_divergence(&[1.0; 128], 0.0).abs() < 1e-12);
    // Pairs (1, 3) merged into one level of 4 spread as (2, 2):
    // KL = ¼ ln(½) + ¾ ln(3/2).
    let hist: Vec<f64> = (0..256)
        .map(|k| if k % 2 == 0 { 1.0 } else { 3.0 })
        .collect();
    let want = 0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln();
    assert!((kl_divergence(&hist, 0.0) - want).abs() < 1e-12);
    // Empty bins get no mass from Q: pairs (0, 4) merge to (0, 4) again.
    let hist: Vec<f64> = (0..256)
        .map(|k| if k % 2 == 0 { 0.0 } else { 4.0 })
        .collect();
    assert!(kl_divergence(&hist, 0.0).abs() < 1e-12);
    // Outliers folded into the last bin make P differ from Q.
    assert!(kl_divergence(&[1.0; 128], 50.0) > 0.0);
}

#[test]
fn histogram_and_ranges_do_not_depend_on_batch_order() {
    // Batches of growing scale force several re-binnings in one order and none in the other.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let batches: Vec<Vec<f32>> = (0..12)
        .map(|b| {
            let scale = 2f32.powi(b - 4);
            (0..500).map(|_| rng.random_range(-scale..scale)).collect()
        })
        .collect();
    let feed = |order: &[usize]| {
        let mut obs = Observer::new();
        for &i in order {
            obs.observe(column(&batches[i]));
        }
        obs
    };
    let ascending: Vec<usize> = (0..12).collect();
    let descending: Vec<usize> = (0..12).rev().collect();
    let mixed = [5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6];
    let a = feed(&ascending);
    let all: Vec<f32> = batches.concat();
    let reference = observe_all(&all, all.len());
    for other in [feed(&descending), feed(&mixed), reference] {
        assert_eq!(a.linear, other.linear);
        assert_eq!(a.width_exp, other.width_exp);
        for m in methods() {
            for s in SCHEMES {
                assert_eq!(a.range(m, s), other.range(m, s), "{m:?} {s:?}");
            }
        }
    }
    assert_eq!(a.linear.iter().sum::<u64>(), 12 * 500);
    assert_eq!(a.linear.len(), LINEAR_BINS);
}

#[test]
fn serde_names() {
    let json = serde_json::to_value(CalibrationMethod::Percentile { percentile: 99.9 })
        .expect("serialize");
    assert_eq!(
        json,
        serde_json::json!({"method": "percentile", "percentile": 99.9})
    );
    let back: CalibrationMethod =
        serde_json::from_value(serde_json::json!({"method": "entropy"})).expect("parse");
    assert_eq!(back, CalibrationMethod::Entropy);
}
