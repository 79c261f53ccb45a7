//! Whole-network tests: gradients of a multi-layer model, learning XOR,
//! determinism and early stopping.

use ndarray::{Array1, Array2, s};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::data::Task;
use super::model::{Sequential, Workspace};
use super::spec::Architecture;
use crate::train::loss::Loss;
use crate::train::optim::{Adam, OptimizerConfig, Sgd};
use crate::train::regularization::Regularization;
use crate::train::schedule::Schedule;
use crate::train::trainer::{EarlyStopping, FitConfig, FitError, fit};

fn arch(json: &str) -> Architecture {
    serde_json::from_str(json).expect("architecture parses")
}

/// Analytic gradients of a whole network (via the workspace) against central differences.
fn check_model_gradients(architecture: &str, loss: Loss, y: Array1<f32>) {
    let a = arch(architecture);
    let mut model = Sequential::new(&a, 17);
    // Non-zero biases so their gradients are exercised away from symmetric points.
    for p in model.params_mut() {
        if p.matrix().nrows() == 1 {
            p.matrix_mut().map_inplace(|v| *v = 0.05);
        }
    }
    let n = y.len();
    let x = Array2::from_shape_fn((n, a.input_dim), |(i, j)| {
        ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.45
    });
    let uses_logits = loss.uses_logits(model.output_activation());
    let mut ws = Workspace::new(&model, n);
    ws.x.assign(&x);
    ws.y.assign(&y);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    model.forward_train(&mut ws, n, &mut rng);
    let (z, out, g, yb) = ws.head_mut(n);
    loss.value_and_grad(if uses_logits { z } else { out }, yb, g);
    model.backward(&mut ws, n, uses_logits);
    let value = |m: &Sequential| -> f64 {
        let f = m.forward(x.view());
        loss.value(
            if uses_logits {
                f.logits.view()
            } else {
                f.output.view()
            },
            y.view(),
        )
    };
    let eps = 1e-3f32;
    let params = model.params().len();
    for pi in 0..params {
        let grad = model.params()[pi].grad_matrix().to_owned();
        for idx in ndarray::indices(grad.raw_dim()) {
            let mut plus = model.clone();
            plus.params_mut()[pi].matrix_mut()[idx] += eps;
            let mut minus = model.clone();
            minus.params_mut()[pi].matrix_mut()[idx] -= eps;
            let numeric = (value(&plus) - value(&minus)) / (2.0 * eps as f64);
            let analytic = grad[idx] as f64;
            assert!(
                (numeric - analytic).abs() < 1e-3 + 2e-2 * numeric.abs(),
                "{loss:?} param {pi} {idx:?}: numeric {numeric}, analytic {analytic}"
            );
        }
    }
}

#[test]
fn a_multi_layer_sigmoid_network_has_correct_gradients_for_crossentropy_from_logits() {
    check_model_gradients(
        r#"{"input_dim": 3, "layers": [{"type": "dense", "units": 5, "activation": "tanh"},
            {"type": "dense", "units": 4, "activation": "gelu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        Loss::BinaryCrossentropy,
        Array1::from(vec![0.0, 1.0, 1.0, 0.0, 1.0]),
    );
}

#[test]
fn a_multi_layer_softmax_network_has_correct_gradients_for_categorical_crossentropy() {
    check_model_gradients(
        r#"{"input_dim": 4, "layers": [{"type": "dense", "units": 6, "activation": "leaky_relu"},
            {"type": "dense", "units": 5, "activation": "sigmoid"},
            {"type": "dense", "units": 3, "activation": "softmax"}]}"#,
        Loss::CategoricalCrossentropy,
        Array1::from(vec![0.0, 2.0, 1.0, 2.0]),
    );
}

#[test]
fn a_regression_network_with_a_hidden_softmax_has_correct_mse_gradients() {
    check_model_gradients(
        r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 4, "activation": "softmax"},
            {"type": "dense", "units": 3, "activation": "tanh", "use_bias": false},
            {"type": "dense", "units": 1, "activation": "linear"}]}"#,
        Loss::Mse,
        Array1::from(vec![0.3, -1.2, 2.0]),
    );
}

#[test]
fn a_linear_head_is_read_as_logits_by_binary_crossentropy() {
    check_model_gradients(
        r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 3, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "linear"}]}"#,
        Loss::BinaryCrossentropy,
        Array1::from(vec![1.0, 0.0, 1.0]),
    );
}

/// Noisy XOR: four clusters, label = (x > 0) xor (y > 0).
fn xor(rows: usize, seed: u64) -> (Array2<f32>, Array1<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((rows, 2));
    let mut y = Array1::zeros(rows);
    for i in 0..rows {
        let a = rng.random_range(0..2u8);
        let b = rng.random_range(0..2u8);
        x[(i, 0)] = if a == 1 { 1.0 } else { -1.0 } + rng.random_range(-0.3f32..0.3);
        x[(i, 1)] = if b == 1 { 1.0 } else { -1.0 } + rng.random_range(-0.3f32..0.3);
        y[i] = (a ^ b) as f32;
    }
    (x, y)
}

fn xor_config(epochs: u32, seed: u64) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 16,
        optimizer: OptimizerConfig::Adam(Adam {
            lr: 0.02,
            ..Adam::default()
        }),
        schedule: Schedule::Constant,
        loss: Loss::BinaryCrossentropy,
        regularization: Regularization::default(),
        validation_split: 0.0,
        early_stopping: None,
        seed,
        task: Task::Binary,
    }
}

const XOR_NET: &str = r#"{"input_dim": 2, "layers": [
    {"type": "dense", "units": 16, "activation": "tanh"},
    {"type": "dropout", "rate": 0.1},
    {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#;

#[test]
fn a_small_mlp_learns_xor() {
    let (x, y) = xor(400, 1);
    let mut model = Sequential::new(&arch(XOR_NET), 3);
    let mut last = None;
    let outcome = fit(
        &mut model,
        x.view(),
        y.view(),
        &xor_config(60, 5),
        &mut |m| last = m.get("loss"),
        &|| false,
    )
    .expect("trains");
    assert_eq!(outcome.epochs_run, 60);
    let (tx, ty) = xor(400, 2);
    let ev = super::evaluate(
        &model,
        tx.view(),
        ty.view(),
        Task::Binary,
        2,
        Loss::BinaryCrossentropy,
        64,
    );
    let acc = ev.classification.expect("classification").accuracy;
    assert!(acc >= 0.95, "accuracy {acc}, last loss {last:?}");
}

#[test]
fn the_same_seed_trains_bit_identical_weights_and_another_seed_does_not() {
    let (x, y) = xor(200, 1);
    let train = |seed: u64| {
        let mut model = Sequential::new(&arch(XOR_NET), seed);
        let mut cfg = xor_config(3, seed);
        cfg.validation_split = 0.2;
        fit(&mut model, x.view(), y.view(), &cfg, &mut |_| {}, &|| false).expect("trains");
        model.snapshot()
    };
    assert_eq!(train(7), train(7));
    assert_ne!(train(7), train(8));
}

#[test]
fn early_stopping_restores_the_weights_of_the_best_epoch() {
    let (x, y) = xor(200, 1);
    let a = arch(XOR_NET);
    let mut cfg = xor_config(20, 9);
    cfg.validation_split = 0.25;
    // A min_delta no epoch can beat: epoch 1 stays best, training stops after `patience` more.
    cfg.early_stopping = Some(EarlyStopping {
        patience: 2,
        monitor: "val_loss".into(),
        min_delta: 1e9,
    });
    let mut model = Sequential::new(&a, 1);
    let outcome =
        fit(&mut model, x.view(), y.view(), &cfg, &mut |_| {}, &|| false).expect("trains");
    assert!(outcome.stopped_early);
    assert_eq!(outcome.best_epoch, Some(1));
    assert_eq!(outcome.epochs_run, 3);

    // The same seed for one epoch reaches exactly the epoch-1 weights.
    let mut reference = Sequential::new(&a, 1);
    let mut one = cfg.clone();
    one.epochs = 1;
    one.early_stopping = None;
    fit(
        &mut reference,
        x.view(),
        y.view(),
        &one,
        &mut |_| {},
        &|| false,
    )
    .expect("trains");
    assert_eq!(model.snapshot(), reference.snapshot());
}

#[test]
fn cancellation_stops_training_and_a_diverging_loss_is_an_error() {
    let (x, y) = xor(64, 1);
    let mut model = Sequential::new(&arch(XOR_NET), 1);
    let err = fit(
        &mut model,
        x.view(),
        y.view(),
        &xor_config(5, 1),
        &mut |_| {},
        &|| true,
    )
    .expect_err("cancelled");
    assert_eq!(err, FitError::Cancelled);

    let reg = arch(
        r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 1}]}"#,
    );
    let mut model = Sequential::new(&reg, 1);
    let mut cfg = xor_config(50, 1);
    cfg.task = Task::Regression;
    cfg.loss = Loss::Mse;
    cfg.optimizer = OptimizerConfig::Sgd(Sgd { lr: 1e6 });
    let targets = y.mapv(|v| v * 1e3);
    let err = fit(
        &mut model,
        x.view(),
        targets.view(),
        &cfg,
        &mut |_| {},
        &|| false,
    )
    .expect_err("diverges");
    assert!(matches!(err, FitError::Diverged { .. }), "{err:?}");
}

#[test]
fn regression_epochs_report_mse_and_validation_metrics() {
    let a = arch(
        r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 1}]}"#,
    );
    let (x, _) = xor(300, 3);
    let y = x.column(0).mapv(|v| 2.0 * v) + x.column(1);
    let mut model = Sequential::new(&a, 2);
    let mut cfg = xor_config(40, 2);
    cfg.task = Task::Regression;
    cfg.loss = Loss::Mse;
    cfg.validation_split = 0.2;
    let mut rows = Vec::new();
    fit(
        &mut model,
        x.view(),
        y.view(),
        &cfg,
        &mut |m| rows.push(m.clone()),
        &|| false,
    )
    .expect("trains");
    let last = rows.last().expect("epochs ran");
    for key in ["loss", "mse", "mae", "val_loss", "val_mse", "val_mae"] {
        assert!(last.get(key).is_some(), "{key} missing");
    }
    let first_loss = rows[0].get("loss").unwrap_or(f64::NAN);
    let last_loss = last.get("loss").unwrap_or(f64::NAN);
    assert!(last_loss < first_loss / 4.0, "{first_loss} → {last_loss}");
    let ev = super::evaluate(
        &model,
        x.slice(s![..50, ..]),
        y.slice(s![..50]),
        Task::Regression,
        0,
        Loss::Mse,
        16,
    );
    assert!(ev.regression.expect("regression").r2 > 0.9);
}
