use super::*;
use crate::data::Task;
use crate::model::Workspace;
use crate::optimize::quant::scheme::{fake_quantize_weights_into, quantize_weights};
use crate::spec::Architecture;
use crate::train::loss::Loss;
use crate::train::optim::{Adam, OptimizerConfig, Sgd};
use crate::train::regularization::Regularization;
use crate::train::schedule::Schedule;
use crate::train::trainer::{FitConfig, fit_with_hook};
use ndarray::{Array1, Array2, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SCHEMES: [Scheme; 2] = [Scheme::Symmetric, Scheme::Asymmetric];
const GRANULARITIES: [Granularity; 2] = [Granularity::PerTensor, Granularity::PerChannel];

fn arch(json: &str) -> Architecture {
    serde_json::from_str(json).expect("architecture parses")
}

const NET: &str = r#"{"input_dim": 3, "layers": [
    {"type": "dense", "units": 16, "activation": "tanh"},
    {"type": "dropout", "rate": 0.1},
    {"type": "dense", "units": 1, "activation": "linear"}]}"#;

/// `y = sin(x₀) + x₁·x₂` on `[-1.5, 1.5]³`.
fn regression(rows: usize, seed: u64) -> (Array2<f32>, Array1<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((rows, 3), |_| rng.random_range(-1.5f32..1.5));
    let y = x
        .rows()
        .into_iter()
        .map(|r| r[0].sin() + r[1] * r[2])
        .collect();
    (x, y)
}

fn config(epochs: u32, batch_size: usize, optimizer: OptimizerConfig) -> FitConfig {
    FitConfig {
        epochs,
        batch_size,
        optimizer,
        schedule: Schedule::Constant,
        loss: Loss::Mse,
        regularization: Regularization::default(),
        validation_split: 0.0,
        early_stopping: None,
        seed: 3,
        task: Task::Regression,
    }
}

/// One round of quantize → dequantize; QAT's projection must agree with it to
/// the bit whenever that round already lands on its own grid.
fn fq(w: ArrayView2<f32>, scheme: Scheme, granularity: Granularity) -> Array2<f32> {
    let once = quantize_weights(w.view(), scheme, granularity).dequantize();
    let mut settled = Array2::zeros(w.raw_dim());
    fake_quantize_weights_into(w.view(), settled.view_mut(), scheme, granularity);
    if quantize_weights(once.view(), scheme, granularity).dequantize() == once {
        assert_eq!(settled, once);
    }
    settled
}

fn weight(model: &Sequential, layer: usize) -> ArrayView2<'_, f32> {
    model.layers()[layer]
        .as_dense()
        .expect("dense layer")
        .weight
        .matrix()
}

#[test]
fn training_keeps_fake_quantized_weights_and_lowers_the_loss() {
    let (x, y) = regression(256, 1);
    for scheme in SCHEMES {
        for granularity in GRANULARITIES {
            let mut model = Sequential::new(&arch(NET), 7);
            let mut hook = FakeQuantWeights::attach(&mut model, vec![0, 2], scheme, granularity);
            assert_eq!(hook.layers(), vec![0, 2]);
            for layer in [0, 2] {
                let shadow = hook.shadow(layer).expect("tracked");
                assert_eq!(
                    weight(&model, layer),
                    fq(shadow.view(), scheme, granularity)
                );
            }
            let cfg = config(
                15,
                32,
                OptimizerConfig::Adam(Adam {
                    lr: 0.01,
                    ..Adam::default()
                }),
            );
            let out = fit_with_hook(
                &mut model,
                x.view(),
                y.view(),
                &cfg,
                &mut |_| {},
                &mut hook,
                &|| false,
            )
            .expect("fit");
            let loss = |e: usize| out.history[e].get("loss").expect("loss");
            let (first, last) = (loss(0), loss(out.history.len() - 1));
            assert!(
                last < 0.5 * first,
                "{scheme:?} {granularity:?}: {first} → {last}"
            );
            for layer in [0, 2] {
                let shadow = hook.shadow(layer).expect("tracked");
                let w = weight(&model, layer);
                assert_eq!(w, fq(shadow.view(), scheme, granularity), "layer {layer}");
                // The shadow holds the float weights, off the grid.
                assert!(w.iter().zip(shadow).any(|(a, b)| a != b));
            }
            hook.finish(&mut model);
            for layer in [0, 2] {
                let w = weight(&model, layer);
                assert_eq!(
                    w,
                    fq(w, scheme, granularity),
                    "{scheme:?} {granularity:?} layer {layer} is on the int8 grid"
                );
            }
        }
    }
}

#[test]
fn the_optimizer_applies_the_fake_quantized_gradient_to_the_float_weights() {
    // One full-batch SGD step: shadow₁ = shadow₀ − lr · ∇L(fq(shadow₀)).
    let a = arch(
        r#"{"input_dim": 3, "layers": [
        {"type": "dense", "units": 8, "activation": "tanh"},
        {"type": "dense", "units": 1, "activation": "linear"}]}"#,
    );
    let (x, y) = regression(64, 2);
    let mut model = Sequential::new(&a, 5);
    // One large weight makes the per-tensor step coarse (5/127), so fq moves the rest visibly.
    if let Some(d) = model.layers_mut()[0].as_dense_mut() {
        d.weight.matrix_mut()[(0, 0)] = 5.0;
    }
    let (scheme, granularity) = (Scheme::Symmetric, Granularity::PerTensor);
    let float = model.clone();
    let mut hook = FakeQuantWeights::attach(&mut model, vec![0], scheme, granularity);
    let gradient_at = |m: &Sequential| -> Array2<f32> {
        let mut m = m.clone();
        let mut ws = Workspace::new(&m, x.nrows());
        ws.x.assign(&x);
        ws.y.assign(&y);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        m.forward_train(&mut ws, x.nrows(), &mut rng);
        let (z, _, g, yb) = ws.head_mut(x.nrows());
        Loss::Mse.value_and_grad(z, yb, g);
        m.backward(&mut ws, x.nrows(), true);
        m.layers()[0]
            .as_dense()
            .expect("dense")
            .weight
            .grad_matrix()
            .to_owned()
    };
    let g_fq = gradient_at(&model);
    let g_float = gradient_at(&float);
    let gap = (&g_fq - &g_float)
        .mapv(f32::abs)
        .fold(0.0f32, |m, &v| m.max(v));
    assert!(gap > 1e-3, "fake quantization changes the gradient ({gap})");

    let shadow0 = hook.shadow(0).expect("tracked").clone();
    let lr = 0.1;
    let cfg = config(1, 64, OptimizerConfig::Sgd(Sgd { lr }));
    fit_with_hook(
        &mut model,
        x.view(),
        y.view(),
        &cfg,
        &mut |_| {},
        &mut hook,
        &|| false,
    )
    .expect("fit");
    let shadow1 = hook.shadow(0).expect("tracked");
    let max_diff = |g: &Array2<f32>| {
        let want = &shadow0 - &(g * lr);
        (shadow1 - &want)
            .mapv(f32::abs)
            .fold(0.0f32, |m, &v| m.max(v))
    };
    assert!(max_diff(&g_fq) < 1e-5, "STE update: {}", max_diff(&g_fq));
    assert!(max_diff(&g_float) > 1e-4, "not the float gradient");
    assert_eq!(weight(&model, 0), fq(shadow1.view(), scheme, granularity));
}

#[test]
fn pruned_weights_stay_zero() {
    let (x, y) = regression(128, 3);
    let mut model = Sequential::new(&arch(NET), 9);
    let mask = Array2::from_shape_fn((3, 16), |(i, j)| ((i + j) % 3 != 0) as u8 as f32);
    if let Some(d) = model.layers_mut()[0].as_dense_mut() {
        d.weight.set_mask(mask.clone());
        d.weight.apply_mask();
    }
    let (scheme, granularity) = (Scheme::Asymmetric, Granularity::PerChannel);
    let mut hook = FakeQuantWeights::attach(&mut model, vec![0], scheme, granularity);
    let cfg = config(3, 16, OptimizerConfig::Sgd(Sgd { lr: 0.05 }));
    fit_with_hook(
        &mut model,
        x.view(),
        y.view(),
        &cfg,
        &mut |_| {},
        &mut hook,
        &|| false,
    )
    .expect("fit");
    let shadow = hook.shadow(0).expect("tracked").clone();
    hook.finish(&mut model);
    let w = weight(&model, 0);
    for ((idx, &m), (&v, &s)) in mask.indexed_iter().zip(w.iter().zip(&shadow)) {
        if m == 0.0 {
            assert_eq!((v, s), (0.0, 0.0), "{idx:?}");
        }
    }
    assert!(w.iter().filter(|v| **v != 0.0).count() >= 30);
}

#[test]
fn new_only_reads_and_ignores_non_dense_layers() {
    let mut model = Sequential::new(&arch(NET), 11);
    let before = model.clone();
    let hook = FakeQuantWeights::new(
        &model,
        vec![2, 1, 9, 0, 2],
        Scheme::Symmetric,
        Granularity::PerChannel,
    );
    assert_eq!(hook.layers(), vec![0, 2]);
    assert_eq!(model, before);
    assert_eq!(hook.shadow(0).map(|s| s.view()), Some(weight(&before, 0)));
    assert_eq!(hook.shadow(1), None);
    hook.finish(&mut model);
    let w = weight(&model, 0);
    assert_eq!(
        w,
        fq(
            weight(&before, 0),
            Scheme::Symmetric,
            Granularity::PerChannel
        )
    );
    assert_ne!(w, weight(&before, 0));
}
