use super::*;
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SCHEMES: [Scheme; 2] = [Scheme::Symmetric, Scheme::Asymmetric];
const GRANULARITIES: [Granularity; 2] = [Granularity::PerTensor, Granularity::PerChannel];

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-0.7f32..1.3))
}

/// Half a step, with room for the f32 rounding of `x / scale` and the scale's
/// 2⁻²¹ slack (≤ 255·2⁻²¹ ≈ 1.2e-4 of a step at the range's ends).
fn half_step(p: QParams) -> f32 {
    p.scale * 0.5 * (1.0 + 1e-3)
}

/// `a ≈ b` to the scale's 16 significant bits.
fn close(a: f32, b: f32) -> bool {
    ((a - b) / b).abs() <= 2f32.powi(-15)
}

/// Scales carry at most 16 significant bits.
fn on_scale_grid(s: f32) -> bool {
    s.to_bits() & 0x7f == 0
}

#[test]
fn hand_computed_parameters() {
    let a = QParams::activation(-1.0, 3.0, Scheme::Asymmetric);
    assert!(
        close(a.scale, 4.0 / 255.0) && on_scale_grid(a.scale),
        "{a:?}"
    );
    assert_eq!(a.zero_point, 64); // round(1 / (4/255)) = round(63.75)
    let a = QParams::activation(0.5, 2.55, Scheme::Asymmetric); // range widened to include 0
    assert_eq!(a.zero_point, 0);
    assert!(close(a.scale, 0.01));
    let s = QParams::activation(-2.54, 1.0, Scheme::Symmetric);
    assert_eq!(s.zero_point, 128);
    assert!(close(s.scale, 0.02));
    let w = QParams::weight(-63.5, 10.0, Scheme::Symmetric);
    assert_eq!(
        w,
        QParams {
            scale: 0.5,
            zero_point: 0
        }
    );
    let w = QParams::weight(-1.0, 3.0, Scheme::Asymmetric);
    assert!(close(w.scale, 4.0 / 255.0) && on_scale_grid(w.scale));
    assert_eq!(w.zero_point, -128 + 64);
    // Rounded up, never below the exact ratio by more than the 2⁻²¹ slack.
    for (lo, hi) in [(-1.0f32, 3.0), (-0.3, 0.587), (0.0, 1e-3), (-7.7, 1234.5)] {
        let p = QParams::weight(lo, hi, Scheme::Asymmetric);
        let exact = (hi as f64 - lo.min(0.0) as f64) / 255.0;
        assert!(
            p.scale as f64 >= exact * (1.0 - 2f64.powi(-20)),
            "{lo} {hi}"
        );
    }
}

#[test]
fn rounding_is_half_to_even_and_clamps() {
    let p = QParams {
        scale: 0.5,
        zero_point: 0,
    };
    assert_eq!(p.quantize_i8(0.25), 0); // 0.5 → 0
    assert_eq!(p.quantize_i8(0.75), 2); // 1.5 → 2
    assert_eq!(p.quantize_i8(1.25), 2); // 2.5 → 2
    assert_eq!(p.quantize_i8(-0.75), -2);
    assert_eq!(p.quantize_i8(-63.5), -127);
    assert_eq!(p.quantize_i8(1e6), 127);
    assert_eq!(p.quantize_i8(-1e6), -128);
    assert_eq!(p.quantize_i8(f32::NAN), 0);
    let u = QParams {
        scale: 0.5,
        zero_point: 10,
    };
    assert_eq!(u.quantize_u8(0.25), 10);
    assert_eq!(u.quantize_u8(-1e6), 0);
    assert_eq!(u.quantize_u8(1e6), 255);
    assert_eq!(u.dequantize(14), 2.0);
    assert_eq!(u.dequantize(0), -5.0);
}

#[test]
fn weight_round_trip_error_is_at_most_half_a_step() {
    let w = random_matrix(37, 9, 1);
    for scheme in SCHEMES {
        for granularity in GRANULARITIES {
            let qw = quantize_weights(w.view(), scheme, granularity);
            let expected = match granularity {
                Granularity::PerTensor => 1,
                Granularity::PerChannel => 9,
            };
            assert_eq!(qw.params.len(), expected);
            let back = qw.dequantize();
            for ((i, j), &x) in w.indexed_iter() {
                let p = qw.params_for(j);
                let err = (back[(i, j)] - x).abs();
                assert!(
                    err <= half_step(p),
                    "{scheme:?} {granularity:?} [{i},{j}]: {x} → {} (scale {})",
                    back[(i, j)],
                    p.scale
                );
                if scheme == Scheme::Symmetric {
                    assert!(qw.q[(i, j)] >= -127, "symmetric codes stay in [-127, 127]");
                }
            }
        }
    }
}

#[test]
fn activation_round_trip_error_is_at_most_half_a_step() {
    for (lo, hi) in [
        (-1.0f32, 3.0),
        (0.0, 6.0),
        (-5.0, -0.5),
        (0.3, 0.31),
        (-2.0, 2.0),
    ] {
        for scheme in SCHEMES {
            let p = QParams::activation(lo, hi, scheme);
            let (a, b) = (lo.min(0.0), hi.max(0.0));
            for k in 0..=1000 {
                let x = a + (b - a) * k as f32 / 1000.0;
                let err = (p.fake_quantize_u8(x) - x).abs();
                assert!(
                    err <= half_step(p),
                    "{scheme:?} [{lo}, {hi}] x={x}: err {err}"
                );
            }
        }
    }
}

#[test]
fn per_channel_beats_per_tensor_when_columns_differ() {
    // Column j spans ±10^(j−2): one scale for all wastes the small columns.
    let mut w = random_matrix(64, 5, 2);
    for (j, mut col) in w.axis_iter_mut(ndarray::Axis(1)).enumerate() {
        col *= 10f32.powi(j as i32 - 2);
    }
    for scheme in SCHEMES {
        let sq_err = |g| {
            let back = quantize_weights(w.view(), scheme, g).dequantize();
            (&back - &w).mapv(|d| (d as f64).powi(2)).sum()
        };
        let (pt, pc) = (
            sq_err(Granularity::PerTensor),
            sq_err(Granularity::PerChannel),
        );
        assert!(pc < pt, "{scheme:?}: per-channel {pc} vs per-tensor {pt}");
        // The small columns are quantized far better, column by column.
        let pt_q = quantize_weights(w.view(), scheme, Granularity::PerTensor).dequantize();
        let pc_q = quantize_weights(w.view(), scheme, Granularity::PerChannel).dequantize();
        for j in 0..5 {
            let e = |q: &Array2<f32>| {
                (&q.column(j) - &w.column(j))
                    .mapv(|d| (d as f64).powi(2))
                    .sum()
            };
            assert!(e(&pc_q) <= e(&pt_q) + 1e-12, "{scheme:?} column {j}");
        }
    }
}

#[test]
fn zero_is_exact() {
    for (lo, hi) in [
        (-1.0f32, 3.0),
        (0.1, 7.3),
        (-9.7, -0.2),
        (-0.013, 250.0),
        (-3.3, 3.3),
    ] {
        for scheme in SCHEMES {
            let a = QParams::activation(lo, hi, scheme);
            assert_eq!(
                a.quantize_u8(0.0) as i32,
                a.zero_point,
                "{scheme:?} act [{lo}, {hi}]"
            );
            assert_eq!(a.fake_quantize_u8(0.0), 0.0);
            let w = QParams::weight(lo, hi, scheme);
            assert_eq!(
                w.quantize_i8(0.0) as i32,
                w.zero_point,
                "{scheme:?} w [{lo}, {hi}]"
            );
            assert_eq!(w.fake_quantize_i8(0.0), 0.0);
        }
    }
    // Pruned (zero) weights stay exactly zero through quantization.
    let mut w = random_matrix(10, 4, 3);
    w[(2, 1)] = 0.0;
    w[(7, 3)] = 0.0;
    for scheme in SCHEMES {
        for g in GRANULARITIES {
            let back = quantize_weights(w.view(), scheme, g).dequantize();
            assert_eq!(back[(2, 1)], 0.0);
            assert_eq!(back[(7, 3)], 0.0);
        }
    }
}

#[test]
fn degenerate_ranges_give_a_finite_positive_scale_and_exact_zero() {
    let cases = [
        (0.0f32, 0.0f32),
        (3.0, 3.0),
        (-2.0, -2.0),
        (f32::NAN, f32::NAN),
        (f32::NEG_INFINITY, f32::INFINITY),
        (1e-45, 1e-45),
    ];
    for (lo, hi) in cases {
        for scheme in SCHEMES {
            let w = QParams::weight(lo, hi, scheme);
            let a = QParams::activation(lo, hi, scheme);
            for p in [w, a] {
                assert!(p.scale.is_finite() && p.scale > 0.0, "[{lo}, {hi}] {p:?}");
            }
            assert_eq!(w.fake_quantize_i8(0.0), 0.0);
            assert_eq!(a.fake_quantize_u8(0.0), 0.0);
        }
    }
    // A constant column is reproduced: its range is [0, c] or [c, 0].
    let w = Array2::from_shape_fn((4, 3), |(_, j)| [0.0f32, 2.5, -1.5][j]);
    for scheme in SCHEMES {
        for g in GRANULARITIES {
            let qw = quantize_weights(w.view(), scheme, g);
            let back = qw.dequantize();
            for ((i, j), &x) in w.indexed_iter() {
                assert!((back[(i, j)] - x).abs() <= half_step(qw.params_for(j)));
            }
            assert!(back.column(0).iter().all(|&v| v == 0.0));
        }
    }
    let empty = Array2::<f32>::zeros((0, 0));
    let qw = quantize_weights(empty.view(), Scheme::Symmetric, Granularity::PerChannel);
    assert!(qw.dequantize().is_empty());
    assert!(qw.params_for(3).scale > 0.0);
}

/// `x` rounded half away from zero.
fn round_away(x: f64) -> f64 {
    x.round()
}

#[test]
fn multiplier_hand_computed() {
    let half = multiplier(0.5);
    assert_eq!(
        half,
        Multiplier {
            m0: 1 << 30,
            shift: 0
        }
    );
    assert_eq!(half.apply(3), 2); // 1.5 → 2
    assert_eq!(half.apply(5), 3); // 2.5 → 3
    assert_eq!(half.apply(-3), -2);
    assert_eq!(half.apply(-5), -3);
    assert_eq!(half.apply(0), 0);
    let three = multiplier(3.0);
    assert_eq!(
        three,
        Multiplier {
            m0: 3 << 29,
            shift: 2
        }
    );
    assert_eq!(three.apply(7), 21);
    assert_eq!(three.apply(-7), -21);
    assert_eq!(multiplier(4.0).apply(i32::MAX), i32::MAX);
    assert_eq!(multiplier(4.0).apply(i32::MIN), i32::MIN);
    assert_eq!(multiplier(1.0).apply(i32::MIN), i32::MIN);
    assert_eq!(multiplier(1.0).apply(i32::MAX), i32::MAX);
    assert_eq!(multiplier(1e40).apply(-1), i32::MIN);
    for zero in [0.0, -1.0, f64::NAN, 1e-40] {
        assert_eq!(multiplier(zero).apply(123_456), 0);
    }
    // m0 rounding up to 2^31 renormalises.
    let m = multiplier(1.0 - 1e-12);
    assert_eq!(
        m,
        Multiplier {
            m0: 1 << 30,
            shift: 1
        }
    );
}

#[test]
fn multiplier_apply_is_round_of_acc_times_real() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut exact_ties_checked = 0;
    for _ in 0..200_000 {
        // Factors from 1e-6 to 100, log-uniform: the integer net's range and beyond.
        let real = 10f64.powf(rng.random_range(-6.0..2.0));
        let m = multiplier(real);
        assert!(m.m0 >= 1 << 30, "{real}: m0 {}", m.m0);
        assert!(((m.real() - real) / real).abs() <= 2f64.powi(-31), "{real}");
        // |acc| < 2^22 keeps acc · m0 exact in f64.
        let acc = rng.random_range(-(1i32 << 22)..(1 << 22));
        let got = m.apply(acc);
        let represented = acc as f64 * m.m0 as f64 * 2f64.powi(m.shift - 31);
        let want = round_away(represented).clamp(i32::MIN as f64, i32::MAX as f64);
        assert_eq!(got as f64, want, "acc {acc}, real {real}, {m:?}");
        // Against the true factor: equal unless acc·real sits within the
        // multiplier's relative error of a rounding tie.
        let ideal = acc as f64 * real;
        let tie_dist = (ideal.abs().fract() - 0.5).abs();
        if ideal.abs() < i32::MAX as f64 && tie_dist > ideal.abs() * 2f64.powi(-30) {
            assert_eq!(got as f64, round_away(ideal), "acc {acc}, real {real}");
            exact_ties_checked += 1;
        }
    }
    assert!(exact_ties_checked > 150_000);
    // Full-range accumulators with factors below 1 never saturate; the error is half
    // a unit plus the 31-bit multiplier's relative error (2⁻³¹ of m0 ≥ 2³⁰), below one.
    for _ in 0..100_000 {
        let real = rng.random_range(1e-4..1.0);
        let acc: i32 = rng.random();
        let got = multiplier(real).apply(acc) as f64;
        assert!(
            (got - acc as f64 * real).abs() <= 0.5 + (acc as f64 * real).abs() * 2f64.powi(-30),
            "acc {acc}, real {real}"
        );
    }
}

#[test]
fn fake_quantization_is_a_projection() {
    // quantize_weights(fq(w)) gives back fq(w) bit for bit: weights left on the
    // grid by QAT quantize to the same parameters and values again.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut columns, mut one_round_misses) = (0, 0);
    for _ in 0..2000 {
        let (rows, cols) = (rng.random_range(1..20), rng.random_range(1..8));
        let shift: f32 = rng.random_range(-1.0..1.0);
        let spread = 10f32.powf(rng.random_range(-3.0..2.0));
        let w = Array2::from_shape_fn((rows, cols), |_| {
            (rng.random_range(-1.0f32..1.0) + shift) * spread
        });
        for scheme in SCHEMES {
            for g in GRANULARITIES {
                let qw = quantize_weights(w.view(), scheme, g);
                let one_round = qw.dequantize();
                let mut fq = Array2::zeros(w.raw_dim());
                fake_quantize_weights_into(w.view(), fq.view_mut(), scheme, g);
                let again = quantize_weights(fq.view(), scheme, g);
                assert_eq!(again.dequantize(), fq, "{scheme:?} {g:?}\n{w}");
                if one_round != fq {
                    one_round_misses += 1;
                } else {
                    assert_eq!(again, qw, "same codes and parameters");
                }
                columns += 1;
            }
        }
    }
    // Settling takes a second round only rarely.
    assert!(
        one_round_misses * 100 < columns,
        "{one_round_misses} of {columns}"
    );
}
