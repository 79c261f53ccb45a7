use ndarray::{Array1, Array2, ArrayView2, array, s};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::data::Task;
use crate::spec::Architecture;
use crate::train::loss::Loss;
use crate::train::optim::{Adam, OptimizerConfig};
use crate::train::regularization::Regularization;
use crate::train::schedule::Schedule;
use crate::train::trainer::{FitConfig, fit};

fn arch(v: serde_json::Value) -> Architecture {
    serde_json::from_value(v).expect("architecture parses")
}

fn uniform(rows: usize, cols: usize, lo: f32, hi: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(lo..hi))
}

/// Non-zero biases, so the quantized bias and its folding are exercised.
fn with_biases(mut model: Sequential, seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in model.params_mut() {
        if p.matrix().nrows() == 1 {
            p.matrix_mut()
                .mapv_inplace(|_| rng.random_range(-0.3f32..0.3));
        }
    }
    model
}

/// Dense layers 0, 2, 3, 4, 5 with a dropout at 1: relu → linear → tanh → relu → softmax, so
/// static mode fuses 0→2 (relu) and 2→3 (linear), dequantizes for tanh, and has a float layer
/// (4) when asked.
fn mixed_model() -> Sequential {
    let a = arch(serde_json::json!({"input_dim": 20, "layers": [
        {"type": "dense", "units": 19, "activation": "relu"},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 17, "activation": "linear"},
        {"type": "dense", "units": 33, "activation": "tanh"},
        {"type": "dense", "units": 6, "activation": "relu"},
        {"type": "dense", "units": 5, "activation": "softmax"}]}));
    with_biases(Sequential::new(&a, 3), 4)
}

fn config(mode: QuantMode, scheme: Scheme, granularity: Granularity) -> QuantConfig {
    QuantConfig {
        mode,
        scheme,
        granularity,
    }
}

const SCHEMES: [Scheme; 2] = [Scheme::Symmetric, Scheme::Asymmetric];
const GRANULARITIES: [Granularity; 2] = [Granularity::PerTensor, Granularity::PerChannel];

/// Largest `|a − b|` relative to the larger magnitude (1 where both are tiny).
fn max_relative(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = (x as f64 - y as f64).abs();
            d / (x.abs().max(y.abs()) as f64).max(1e-6)
        })
        .fold(0.0, f64::max)
}

fn fused_count(q: &QuantizedModel) -> usize {
    q.stages
        .iter()
        .filter(|s| matches!(s, Stage::Int8(l) if l.fixed.as_ref().is_some_and(|f| f.requant.is_some())))
        .count()
}

#[test]
fn static_predict_equals_the_simulated_integer_arithmetic() {
    let model = mixed_model();
    let calib = uniform(64, 20, -1.0, 1.0, 5);
    // Wider than the calibration range: inputs and activations clamp at both ends.
    let x = uniform(37, 20, -1.6, 1.6, 6);
    for scheme in SCHEMES {
        for granularity in GRANULARITIES {
            for float_layers in [&[][..], &[4][..]] {
                let cfg = config(QuantMode::Static, scheme, granularity);
                let method = CalibrationMethod::MinMax;
                let q =
                    QuantizedModel::build(&model, &cfg, float_layers, Some((calib.view(), method)))
                        .expect("builds");
                // 0→2 (relu), 2→3 (linear) and 4→5 (relu) when 4 is int8.
                assert_eq!(fused_count(&q), 3 - float_layers.len());
                for rows in [1, 3, 37] {
                    let x = x.slice(s![..rows, ..]);
                    let (fast, reference) = (q.predict(x), q.simulate(x));
                    let err = max_relative(&fast, &reference);
                    assert!(
                        err <= 1e-6,
                        "{scheme:?} {granularity:?} {float_layers:?} rows {rows}: {err}"
                    );
                }
            }
        }
    }
}

#[test]
fn static_batches_run_in_row_blocks_give_each_rows_own_result() {
    let model = mixed_model();
    let calib = uniform(64, 20, -1.0, 1.0, 5);
    // Two full blocks and a partial one.
    let rows = 2 * BLOCK_ROWS + 17;
    let x = uniform(rows, 20, -1.6, 1.6, 8);
    for scheme in SCHEMES {
        let cfg = config(QuantMode::Static, scheme, Granularity::PerChannel);
        let method = CalibrationMethod::MinMax;
        let q = QuantizedModel::build(&model, &cfg, &[4], Some((calib.view(), method)))
            .expect("builds");
        let whole = q.predict(x.view());
        assert_eq!(whole.dim(), (rows, 5));
        for i in [0, BLOCK_ROWS - 1, BLOCK_ROWS, 2 * BLOCK_ROWS + 3, rows - 1] {
            let one = q.predict(x.slice(s![i..i + 1, ..]));
            assert_eq!(one.row(0), whole.row(i), "{scheme:?} row {i}");
        }
        assert!(max_relative(&whole, &q.simulate(x.view())) <= 1e-6);
        // A strided input (every other row) takes the row-by-row quantization.
        let strided = x.slice(s![..;2, ..]);
        let fast = q.predict(strided);
        assert_eq!(fast, q.predict(strided.to_owned().view()));
    }
}

#[test]
fn dynamic_predict_equals_the_simulated_integer_arithmetic() {
    let model = mixed_model();
    let x = uniform(37, 20, -1.6, 1.6, 7);
    for scheme in SCHEMES {
        for granularity in GRANULARITIES {
            let cfg = config(QuantMode::Dynamic, scheme, granularity);
            let q = QuantizedModel::build(&model, &cfg, &[4], None).expect("builds");
            assert_eq!(fused_count(&q), 0);
            for rows in [1, 2, 37] {
                let x = x.slice(s![..rows, ..]);
                let err = max_relative(&q.predict(x), &q.simulate(x));
                assert!(err <= 1e-6, "{scheme:?} {granularity:?} rows {rows}: {err}");
            }
        }
    }
}

/// A 6 → 32 → 16 → 1 regression network fitted for a few epochs on a smooth target.
fn trained_model() -> (Sequential, Array2<f32>) {
    let a = arch(serde_json::json!({"input_dim": 6, "layers": [
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "dense", "units": 16, "activation": "relu"},
        {"type": "dense", "units": 1, "activation": "linear"}]}));
    let mut model = Sequential::new(&a, 11);
    let x = uniform(512, 6, -1.0, 1.0, 12);
    let y: Array1<f32> = x
        .rows()
        .into_iter()
        .map(|r| (r[0] * 2.0).sin() + r[1] * r[2] - 0.5 * r[3].abs() + 0.3 * r[4])
        .collect();
    let cfg = FitConfig {
        epochs: 30,
        batch_size: 32,
        optimizer: OptimizerConfig::Adam(Adam {
            lr: 0.01,
            ..Adam::default()
        }),
        schedule: Schedule::Constant,
        loss: Loss::Mse,
        regularization: Regularization::default(),
        validation_split: 0.0,
        early_stopping: None,
        seed: 13,
        task: Task::Regression,
    };
    let out = fit(&mut model, x.view(), y.view(), &cfg, &mut |_| {}, &|| false).expect("fits");
    let mse = out.history.last().and_then(|h| h.get("mse")).expect("mse");
    assert!(mse < 0.05, "the float model learned the target: mse {mse}");
    (model, x)
}

#[test]
fn int8_outputs_stay_within_two_percent_of_the_float_range() {
    let (model, x) = trained_model();
    let float = model.predict(x.view());
    let range = float.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
        - float.iter().fold(f32::INFINITY, |m, &v| m.min(v));
    let calib = x.view();
    for scheme in SCHEMES {
        for granularity in GRANULARITIES {
            for mode in [QuantMode::Static, QuantMode::Dynamic] {
                let cfg = config(mode, scheme, granularity);
                let q = QuantizedModel::build(
                    &model,
                    &cfg,
                    &[],
                    Some((calib, CalibrationMethod::MinMax)),
                )
                .expect("builds");
                let out = q.predict(x.view());
                let worst = out
                    .iter()
                    .zip(&float)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    worst < 0.02 * range,
                    "{mode:?} {scheme:?} {granularity:?}: {worst} vs range {range}"
                );
                // …and not because nothing was quantized.
                assert!(worst > 0.0);
            }
        }
    }
}

#[test]
fn rebuilding_from_stored_parts_predicts_identically() {
    let model = mixed_model();
    let calib = uniform(64, 20, -1.0, 1.0, 8);
    let x = uniform(9, 20, -1.2, 1.2, 9);
    for mode in [QuantMode::Static, QuantMode::Dynamic] {
        let cfg = config(mode, Scheme::Asymmetric, Granularity::PerChannel);
        let q = QuantizedModel::build(
            &model,
            &cfg,
            &[3],
            Some((calib.view(), CalibrationMethod::MinMax)),
        )
        .expect("builds");
        // A file holds the float layers and all biases; the int8 layers' float weights are gone.
        let mut stored = model.clone();
        for lq in q.layers() {
            if let Some(d) = stored.layers_mut()[lq.layer].as_dense_mut() {
                d.weight.matrix_mut().fill(0.0);
            }
        }
        let back =
            QuantizedModel::from_parts(&stored, &cfg, q.layers().to_vec()).expect("rebuilds");
        assert_eq!(back.layers(), q.layers());
        assert_eq!(back.predict(x.view()), q.predict(x.view()), "{mode:?}");
        assert_eq!(back.dequantized(), q.dequantized());
    }
}

#[test]
fn float_layers_keep_their_weights_and_int8_layers_sit_on_the_grid() {
    let model = mixed_model();
    let cfg = config(
        QuantMode::Dynamic,
        Scheme::Symmetric,
        Granularity::PerChannel,
    );
    let q = QuantizedModel::build(&model, &cfg, &[2, 5], None).expect("builds");
    let layers: Vec<usize> = q.layers().iter().map(|l| l.layer).collect();
    assert_eq!(layers, vec![0, 3, 4]);
    let deq = q.dequantized();
    for (i, d) in model.dense_layers() {
        let dq = deq.layers()[i].as_dense().expect("dense");
        assert_eq!(dq.bias, d.bias, "biases stay float");
        if [2, 5].contains(&i) {
            assert_eq!(
                dq.weight.matrix(),
                d.weight.matrix(),
                "layer {i} stays float"
            );
        } else {
            assert_ne!(
                dq.weight.matrix(),
                d.weight.matrix(),
                "layer {i} is quantized"
            );
            let lq = q.layers().iter().find(|l| l.layer == i).expect("int8");
            for ((r, j), &a) in dq.weight.matrix().indexed_iter() {
                let b = d.weight.matrix()[(r, j)];
                let step = lq.weight.params_for(j).scale;
                assert!(
                    (a - b).abs() <= 0.5 * step * 1.0001,
                    "layer {i}: {a} vs {b}, step {step}"
                );
            }
        }
    }
}

#[test]
fn per_layer_error_ranks_the_layer_with_an_outlier_first() {
    let a = arch(serde_json::json!({"input_dim": 16, "layers": [
        {"type": "dense", "units": 16, "activation": "tanh"},
        {"type": "dense", "units": 16, "activation": "tanh"},
        {"type": "dense", "units": 4, "activation": "linear"}]}));
    let mut model = with_biases(Sequential::new(&a, 21), 22);
    // One weight 200× the others: per tensor, the step grows so much that the rest round to 0.
    if let Some(d) = model.layers_mut()[1].as_dense_mut() {
        d.weight.matrix_mut()[(3, 5)] = 60.0;
    }
    let x = uniform(64, 16, -1.0, 1.0, 23);
    for mode in [QuantMode::Static, QuantMode::Dynamic] {
        let cfg = config(mode, Scheme::Symmetric, Granularity::PerTensor);
        let q = QuantizedModel::build(
            &model,
            &cfg,
            &[],
            Some((x.view(), CalibrationMethod::MinMax)),
        )
        .expect("builds");
        let errors = q.per_layer_error(&model, x.view());
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[0].0, 1, "{mode:?}: {errors:?}");
        assert!(errors[0].1 > 10.0 * errors[1].1, "{mode:?}: {errors:?}");
        assert!(
            errors.windows(2).all(|w| w[0].1 >= w[1].1),
            "sorted: {errors:?}"
        );
        assert!(errors.iter().all(|e| e.1 > 0.0), "{errors:?}");
    }
}

/// `y = relu(x) + relu(−x)` built by hand, with a next-layer zero point of 100, so the fused
/// ReLU must clamp the negative unit at code 100 (0.0) instead of writing code 50 (−0.5).
#[test]
fn the_fused_relu_clamps_at_the_next_layers_zero_point() {
    let a = arch(serde_json::json!({"input_dim": 1, "layers": [
        {"type": "dense", "units": 2, "activation": "relu", "use_bias": false},
        {"type": "dense", "units": 1, "activation": "linear", "use_bias": false}]}));
    let model = Sequential::from_weights(
        &a,
        vec![
            (array![[1.0f32, -1.0]], None),
            (array![[1.0f32], [1.0]], None),
        ],
    )
    .expect("weights");
    let cfg = config(QuantMode::Static, Scheme::Symmetric, Granularity::PerTensor);
    let weights =
        |w: ArrayView2<f32>| quantize_weights(w, Scheme::Symmetric, Granularity::PerTensor);
    let d = |i: usize| model.layers()[i].as_dense().expect("dense").weight.matrix();
    let layers = vec![
        LayerQuant {
            layer: 0,
            weight: weights(d(0)),
            // x = ±0.5 → codes 228 / 28.
            input: Some(QParams {
                scale: 0.005,
                zero_point: 128,
            }),
        },
        LayerQuant {
            layer: 1,
            weight: weights(d(1)),
            input: Some(QParams {
                scale: 0.01,
                zero_point: 100,
            }),
        },
    ];
    assert_eq!(layers[0].weight.q, array![[127i8, -127]]);
    let q = QuantizedModel::from_parts(&model, &cfg, layers).expect("builds");
    assert_eq!(fused_count(&q), 1);
    let x = array![[0.5f32], [-0.5], [0.0]];
    // Layer 0 accumulates ±100·127; ×(0.005/127)/0.01 = ±50 steps from code 100: codes 150 and
    // 100 (clamped from 50). Layer 1: (50 + 0)·127 accumulated, ×0.01/127 = 0.5.
    let expected = array![[0.5f32], [0.5], [0.0]];
    for out in [q.predict(x.view()), q.simulate(x.view())] {
        for (a, b) in out.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }
    assert_eq!(model.predict(x.view()), expected);
}

#[test]
fn a_model_with_every_layer_in_float_is_the_float_model() {
    let model = mixed_model();
    let x = uniform(5, 20, -1.0, 1.0, 30);
    for mode in [QuantMode::Static, QuantMode::Dynamic] {
        let cfg = config(mode, Scheme::Symmetric, Granularity::PerTensor);
        // Static needs no calibration when nothing is int8.
        let q = QuantizedModel::build(&model, &cfg, &[0, 2, 3, 4, 5], None).expect("builds");
        assert!(q.layers().is_empty());
        assert_eq!(q.predict(x.view()), model.predict(x.view()));
        assert_eq!(q.simulate(x.view()), model.predict(x.view()));
        assert_eq!(q.dequantized(), model);
        assert!(q.per_layer_error(&model, x.view()).is_empty());
    }
}

#[test]
fn bad_requests_and_bad_parts_are_refused_with_their_reason() {
    let model = mixed_model();
    let st = config(
        QuantMode::Static,
        Scheme::Symmetric,
        Granularity::PerChannel,
    );
    let dy = config(
        QuantMode::Dynamic,
        Scheme::Symmetric,
        Granularity::PerChannel,
    );
    assert!(matches!(
        QuantizedModel::build(&model, &st, &[], None),
        Err(QuantError::NoCalibration)
    ));
    assert!(matches!(
        QuantizedModel::build(&model, &dy, &[1], None),
        Err(QuantError::NotDense(1))
    ));
    assert!(matches!(
        QuantizedModel::build(&model, &dy, &[9], None),
        Err(QuantError::NotDense(9))
    ));
    let narrow = Array2::zeros((4, 3));
    assert!(matches!(
        QuantizedModel::build(
            &model,
            &st,
            &[],
            Some((narrow.view(), CalibrationMethod::MinMax))
        ),
        Err(QuantError::CalibrationWidth {
            got: 3,
            expected: 20
        })
    ));
    let empty = Array2::zeros((0, 20));
    assert!(matches!(
        QuantizedModel::build(
            &model,
            &st,
            &[],
            Some((empty.view(), CalibrationMethod::Entropy))
        ),
        Err(QuantError::CalibrationEmpty)
    ));

    let parts = QuantizedModel::build(&model, &dy, &[], None)
        .expect("builds")
        .layers()
        .to_vec();
    // Dynamic parts carry no input params: static mode cannot run them.
    assert!(matches!(
        QuantizedModel::from_parts(&model, &st, parts.clone()),
        Err(QuantError::MissingInput(0))
    ));
    let mut twice = parts.clone();
    twice.push(parts[1].clone());
    assert!(matches!(
        QuantizedModel::from_parts(&model, &dy, twice),
        Err(QuantError::Duplicate(2))
    ));
    let mut misplaced = parts.clone();
    misplaced[1].layer = 3;
    misplaced.truncate(2);
    assert!(matches!(
        QuantizedModel::from_parts(&model, &dy, misplaced),
        Err(QuantError::Shape {
            layer: 3,
            got: (19, 17),
            expected: (17, 33)
        })
    ));
    let mut few = parts.clone();
    few[0].weight.params.truncate(2);
    assert!(matches!(
        QuantizedModel::from_parts(&model, &dy, few),
        Err(QuantError::ParamCount {
            layer: 0,
            got: 2,
            units: 19
        })
    ));
    let mut zero_scale = parts;
    zero_scale[2].weight.params[0].scale = 0.0;
    assert!(matches!(
        QuantizedModel::from_parts(&model, &dy, zero_scale),
        Err(QuantError::BadParams {
            layer: 3,
            kind: "weight",
            ..
        })
    ));
}

#[test]
fn the_quantized_model_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<QuantizedModel>();
    let model = mixed_model();
    let q = QuantizedModel::build(
        &model,
        &config(
            QuantMode::Dynamic,
            Scheme::Symmetric,
            Granularity::PerChannel,
        ),
        &[],
        None,
    )
    .expect("builds");
    let x = uniform(3, 20, -1.0, 1.0, 40);
    let here = q.predict(x.view());
    let there = std::thread::scope(|s| s.spawn(|| q.predict(x.view())).join().expect("joins"));
    assert_eq!(here, there);
}
