//! Whole-network tests of convolutional models: gradients through every image
//! layer against finite differences, learning an image task, seeded
//! reproducibility and batch-norm statistics (the model file round trip is
//! `kiln::formats::model_file`'s test).

use ndarray::{Array1, Array2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::data::Task;
use super::model::{Sequential, Workspace};
use super::spec::{Architecture, ArchitectureLimits};
use crate::datagen::bars;
use crate::layers::Layer;
use crate::train::loss::Loss;
use crate::train::optim::{Adam, OptimizerConfig};
use crate::train::regularization::Regularization;
use crate::train::schedule::Schedule;
use crate::train::trainer::{FitConfig, fit};

fn arch(json: &str) -> Architecture {
    let a: Architecture = serde_json::from_str(json).expect("architecture parses");
    a.check(&ArchitectureLimits::default())
        .expect("architecture checks");
    a
}

/// The training-mode loss (batch statistics), which is what backward differentiates.
fn train_loss(model: &Sequential, x: &Array2<f32>, y: &Array1<f32>, loss: Loss) -> f64 {
    let n = y.len();
    let mut ws = Workspace::new(model, n);
    ws.x.assign(x);
    ws.y.assign(y);
    model.forward_train(&mut ws, n, &mut ChaCha8Rng::seed_from_u64(0));
    let uses_logits = loss.uses_logits(model.output_activation());
    let (z, out, _, yb) = ws.head_mut(n);
    loss.value(if uses_logits { z.view() } else { out.view() }, yb.view())
}

/// Every parameter gradient and the input gradient of the first layer, against
/// central differences of the training loss.
fn check_gradients(json: &str, n: usize, classes: usize, seed: u64) {
    let a = arch(json);
    let mut model = Sequential::new(&a, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in model.params_mut() {
        p.matrix_mut()
            .map_inplace(|v| *v += (rng.random::<f32>() - 0.5) * 0.1);
    }
    let x = Array2::from_shape_fn((n, a.input_dim), |_| rng.random::<f32>() * 2.0 - 1.0);
    let y = Array1::from_shape_fn(n, |i| (i % classes) as f32);
    let loss = Loss::CategoricalCrossentropy;
    let mut ws = Workspace::new(&model, n);
    ws.x.assign(&x);
    ws.y.assign(&y);
    model.forward_train(&mut ws, n, &mut ChaCha8Rng::seed_from_u64(0));
    let uses_logits = loss.uses_logits(model.output_activation());
    let (z, out, g, yb) = ws.head_mut(n);
    loss.value_and_grad(if uses_logits { z } else { out }, yb, g);
    let probe = model.clone();
    model.backward(&mut ws, n, uses_logits);
    // Small enough that no max-pool window changes its winner.
    let eps = 1e-3f32;
    for pi in 0..probe.params().len() {
        let grad = model.params()[pi].grad_matrix().to_owned();
        for idx in ndarray::indices(grad.raw_dim()) {
            let mut plus = probe.clone();
            plus.params_mut()[pi].matrix_mut()[idx] += eps;
            let mut minus = probe.clone();
            minus.params_mut()[pi].matrix_mut()[idx] -= eps;
            let numeric = (train_loss(&plus, &x, &y, loss) - train_loss(&minus, &x, &y, loss))
                / (2.0 * eps as f64);
            let analytic = grad[idx] as f64;
            assert!(
                (numeric - analytic).abs() < 2e-3 + 3e-2 * numeric.abs(),
                "param {pi} {idx:?}: numeric {numeric}, analytic {analytic}"
            );
        }
    }
}

#[test]
fn conv_pool_and_dense_gradients_match_finite_differences() {
    check_gradients(
        r#"{"input_shape": [2, 7, 7], "layers": [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "tanh"},
            {"type": "max_pool2d", "pool_size": 2, "padding": "same"},
            {"type": "conv2d", "filters": 4, "kernel_size": 2, "groups": 2, "strides": [1, 2], "activation": "tanh"},
            {"type": "avg_pool2d", "pool_size": 2, "strides": 1},
            {"type": "flatten"},
            {"type": "dense", "units": 3, "activation": "softmax"}]}"#,
        5,
        3,
        1,
    );
}

#[test]
fn batch_norm_and_global_pooling_gradients_match_finite_differences() {
    check_gradients(
        r#"{"input_shape": [3, 5, 5], "layers": [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": [1, 0, 1, 0], "use_bias": false},
            {"type": "batch_norm", "activation": "tanh", "epsilon": 0.01},
            {"type": "conv2d", "filters": 3, "kernel_size": 1, "dilation": 1},
            {"type": "global_avg_pool2d"},
            {"type": "dense", "units": 4},
            {"type": "batch_norm", "activation": "tanh"},
            {"type": "dense", "units": 2, "activation": "softmax"}]}"#,
        6,
        2,
        2,
    );
}

/// Accuracy on 200 fresh bar images drawn with `seed`.
fn bars_accuracy(model: &Sequential, seed: u64) -> f64 {
    let (x, y) = bars(200, seed);
    let loss = Loss::CategoricalCrossentropy;
    super::evaluate(model, x.view(), y.view(), Task::Multiclass, 2, loss, 64).main_metric()
}

const SMALL_CNN: &str = r#"{"input_shape": [1, 8, 8], "layers": [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "batch_norm", "activation": "relu"},
    {"type": "max_pool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 2, "activation": "softmax"}]}"#;

fn config(seed: u64) -> FitConfig {
    FitConfig {
        epochs: 8,
        batch_size: 16,
        optimizer: OptimizerConfig::Adam(Adam {
            lr: 0.01,
            ..Adam::default()
        }),
        schedule: Schedule::Constant,
        loss: Loss::CategoricalCrossentropy,
        regularization: Regularization::default(),
        validation_split: 0.0,
        early_stopping: None,
        seed,
        task: Task::Multiclass,
    }
}

#[test]
fn a_small_cnn_learns_bar_orientation_reproducibly_and_keeps_running_statistics() {
    let (x, y) = bars(320, 1);
    let train = |seed: u64| {
        let mut model = Sequential::new(&arch(SMALL_CNN), seed);
        fit(
            &mut model,
            x.view(),
            y.view(),
            &config(seed),
            &mut |_| {},
            &|| false,
        )
        .expect("trains");
        model
    };
    let model = train(3);
    let accuracy = bars_accuracy(&model, 2);
    assert!(accuracy >= 0.95, "accuracy {accuracy}");
    // Seeded training is bit-reproducible, running statistics included.
    let again = train(3);
    assert_eq!(model, again);
    assert_ne!(model.snapshot(), train(4).snapshot());
    let Layer::BatchNorm(bn) = &model.layers()[1] else {
        panic!("layer 1 is the batch norm")
    };
    assert!(
        bn.running_var.iter().all(|v| *v > 0.0 && *v != 1.0),
        "{:?}",
        bn.running_var
    );
    assert!(bn.running_mean.iter().any(|v| *v != 0.0));
}

#[test]
fn batch_norm_running_statistics_follow_the_momentum_rule() {
    // One feature, batch [1, 3]: mean 2, biased var 1, unbiased 2.
    let a = arch(
        r#"{"input_dim": 1, "layers": [{"type": "dense", "units": 1, "use_bias": false},
            {"type": "batch_norm", "momentum": 0.5}, {"type": "dense", "units": 1}]}"#,
    );
    let mut model = Sequential::new(&a, 0);
    model.params_mut()[0].matrix_mut().fill(1.0);
    let mut ws = Workspace::new(&model, 2);
    ws.x.assign(&ndarray::array![[1.0], [3.0]]);
    ws.y.assign(&ndarray::array![0.0, 0.0]);
    model.forward_train(&mut ws, 2, &mut ChaCha8Rng::seed_from_u64(0));
    ws.head_mut(2).2.fill(1.0);
    model.backward(&mut ws, 2, false);
    let Layer::BatchNorm(bn) = &model.layers()[1] else {
        panic!("batch norm")
    };
    assert_eq!(bn.running_mean[0], 0.5 * 0.0 + 0.5 * 2.0);
    assert_eq!(bn.running_var[0], 0.5 * 1.0 + 0.5 * 2.0);
    // Inference: (x − 1) / √(1.5 + 0.001) with γ = 1, β = 0.
    let (scale, shift) = bn.affine();
    assert!((scale[0] - 1.0 / 1.501f32.sqrt()).abs() < 1e-6);
    assert!((shift[0] + 1.0 / 1.501f32.sqrt()).abs() < 1e-6);
}

/// Two convolutions (36 and 72 weights) between a batch norm and the output
/// dense layer (32·2): what magnitude pruning ranks and what it leaves alone.
const TWO_CONV: &str = r#"{"input_shape": [1, 8, 8], "layers": [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": false},
    {"type": "batch_norm", "activation": "relu"},
    {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "max_pool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 2, "activation": "softmax"}]}"#;

#[test]
fn magnitude_pruning_ranks_conv_filters_with_one_global_threshold() {
    use crate::optimize::prune::{
        MagnitudeConfig, Scope, layer_sparsity, magnitude_masks, set_masks,
    };
    let mut model = Sequential::new(&arch(TWO_CONV), 2);
    let before = model.clone();
    let cfg = MagnitudeConfig {
        sparsity: 0.5,
        scope: Scope::Global,
        overrides: Default::default(),
    };
    let masks = magnitude_masks(&model, &cfg).expect("conv layers are prunable");
    // Both convolutions, not the output layer; a mask per filter row.
    let shapes: Vec<(usize, Vec<usize>)> = masks
        .iter()
        .map(|(i, m)| (*i, m.shape().to_vec()))
        .collect();
    assert_eq!(shapes, vec![(0, vec![4, 9]), (2, vec![2, 36])]);
    set_masks(&mut model, &masks);
    let stats = layer_sparsity(&model);
    let pruned: Vec<(usize, u64, u64)> = stats
        .iter()
        .map(|s| (s.layer, s.weights, s.nonzero))
        .collect();
    // round(0.5 · (36 + 72)) = 54 zeros, wherever the smallest |w| are.
    assert_eq!(pruned[0].1 + pruned[1].1, 108);
    assert_eq!(pruned[0].2 + pruned[1].2, 54);
    assert_eq!(pruned[2], (5, 64, 64), "the output layer stays dense");
    // One threshold: every zeroed weight was no larger than every kept one.
    let (mut max_cut, mut min_kept) = (0.0f32, f32::INFINITY);
    for i in [0, 2] {
        let (old, new) = (
            before.layers()[i].kernel().expect("k"),
            model.layers()[i].kernel().expect("k"),
        );
        for (&w, &p) in old.value().iter().zip(new.value().iter()) {
            if p == 0.0 {
                max_cut = max_cut.max(w.abs());
            } else {
                assert_eq!(p, w, "kept weights are untouched");
                min_kept = min_kept.min(w.abs());
            }
        }
    }
    assert!(max_cut <= min_kept, "{max_cut} > {min_kept}");
    // Batch norm's scale and shift are not pruned.
    assert_eq!(model.layers()[1].params(), before.layers()[1].params());
}

#[test]
fn gradual_pruning_of_a_cnn_keeps_masked_filters_at_zero_and_still_learns() {
    use crate::optimize::prune::{
        GradualMagnitude, MagnitudeConfig, PruneSchedule, Scope, layer_sparsity,
    };
    use crate::train::trainer::fit_with_hook;
    let (x, y) = bars(320, 7);
    let mut model = Sequential::new(&arch(TWO_CONV), 3);
    let cfg = MagnitudeConfig {
        sparsity: 0.6,
        scope: Scope::PerLayer,
        overrides: Default::default(),
    };
    let schedule = PruneSchedule::Polynomial {
        initial_sparsity: 0.0,
        begin_step: 0,
        frequency: 10,
        pruning_steps: 8,
    };
    let mut hook = GradualMagnitude::new(&model, cfg, schedule).expect("prunable");
    let mut fit_cfg = config(3);
    fit_cfg.epochs = 10;
    fit_with_hook(
        &mut model,
        x.view(),
        y.view(),
        &fit_cfg,
        &mut |_| {},
        &mut hook,
        &|| false,
    )
    .expect("trains");
    assert!(hook.events().len() >= 8, "{:?}", hook.events());
    let stats = layer_sparsity(&model);
    // Per layer: round(0.6 · 36) = 22 and round(0.6 · 72) = 43 zeros, held
    // through every optimizer step after the last cut.
    assert_eq!((stats[0].nonzero, stats[1].nonzero), (36 - 22, 72 - 43));
    let accuracy = bars_accuracy(&model, 8);
    assert!(accuracy >= 0.9, "accuracy {accuracy}");
}
