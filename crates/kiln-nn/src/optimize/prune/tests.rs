//! Pruning under training: masks against every optimizer, gradual schedules,
//! and gradual structured pruning ending in a smaller model.

use ndarray::{Array1, Array2, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gradual::{GradualMagnitude, GradualNeurons};
use super::magnitude::{MagnitudeConfig, Scope, layer_sparsity, magnitude_masks, set_masks};
use super::neurons::{NeuronConfig, UnitCriterion, remove_units};
use super::schedule::{PruneSchedule, polynomial_sparsity};
use crate::data::Task;
use crate::model::Sequential;
use crate::spec::Architecture;
use crate::train::loss::Loss;
use crate::train::optim::{Adam, AdamW, Momentum, Nesterov, OptimizerConfig, RmsProp, Sgd};
use crate::train::regularization::Regularization;
use crate::train::schedule::Schedule;
use crate::train::trainer::{FitConfig, StepHook, fit, fit_with_hook};

/// Dense layers at 0 (4→16), 2 (16→8) and 3 (8→1, the output): 64 + 128 + 8 weights.
const NET: &str = r#"{"input_dim": 4, "layers": [
    {"type": "dense", "units": 16, "activation": "relu"},
    {"type": "dropout", "rate": 0.1},
    {"type": "dense", "units": 8, "activation": "tanh"},
    {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#;

fn model(seed: u64) -> Sequential {
    let arch: Architecture = serde_json::from_str(NET).expect("architecture");
    Sequential::new(&arch, seed)
}

/// Label = (x0 + x1·x2 > 0) on uniform features.
fn data(rows: usize, seed: u64) -> (Array2<f32>, Array1<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((rows, 4), |_| rng.random_range(-1.0f32..1.0));
    let y = x
        .rows()
        .into_iter()
        .map(|r| f32::from(r[0] + r[1] * r[2] > 0.0))
        .collect();
    (x, y)
}

fn config(epochs: u32, optimizer: OptimizerConfig, regularization: Regularization) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 32,
        optimizer,
        schedule: Schedule::Constant,
        loss: Loss::BinaryCrossentropy,
        regularization,
        validation_split: 0.0,
        early_stopping: None,
        seed: 11,
        task: Task::Binary,
    }
}

fn magnitude(sparsity: f32, overrides: &[(usize, f32)]) -> MagnitudeConfig {
    MagnitudeConfig {
        sparsity,
        scope: Scope::Global,
        overrides: overrides.iter().copied().collect(),
    }
}

fn weights(m: &Sequential, layer: usize) -> ArrayView2<'_, f32> {
    m.layers()[layer].as_dense().expect("dense").weight.matrix()
}

fn zeros(a: &ArrayView2<f32>) -> usize {
    a.iter().filter(|&&v| v == 0.0).count()
}

#[test]
fn masks_survive_every_optimizer_with_l1_and_l2() {
    let adam = Adam {
        lr: 0.01,
        ..Adam::default()
    };
    let optimizers = [
        OptimizerConfig::Sgd(Sgd { lr: 0.05 }),
        OptimizerConfig::Momentum(Momentum {
            lr: 0.05,
            momentum: 0.9,
        }),
        OptimizerConfig::Nesterov(Nesterov {
            lr: 0.05,
            momentum: 0.9,
        }),
        OptimizerConfig::Adam(adam),
        OptimizerConfig::AdamW(AdamW {
            adam,
            weight_decay: 0.01,
        }),
        OptimizerConfig::RmsProp(RmsProp {
            lr: 0.01,
            rho: 0.9,
            eps: 1e-7,
        }),
    ];
    let (x, y) = data(256, 1);
    let reg = Regularization { l1: 1e-3, l2: 1e-3 };
    for opt in optimizers {
        let mut m = model(2);
        let masks = magnitude_masks(&m, &magnitude(0.6, &[(3, 0.5)])).expect("dense");
        set_masks(&mut m, &masks);
        let before = m.clone();
        fit(
            &mut m,
            x.view(),
            y.view(),
            &config(3, opt, reg),
            &mut |_| {},
            &|| false,
        )
        .expect("trains");
        for (layer, mask) in &masks {
            let (w0, w1) = (weights(&before, *layer), weights(&m, *layer));
            for ((&keep, &a), &b) in mask.iter().zip(w0).zip(w1) {
                if keep == 0.0 {
                    // `v·0` keeps the sign, so a pruned weight may read -0.0: still zero.
                    assert_eq!(b, 0.0, "{opt:?}: layer {layer}");
                } else {
                    assert_ne!(
                        a, b,
                        "{opt:?}: a kept weight of layer {layer} did not train"
                    );
                }
            }
        }
    }
}

/// Counts the zeros of every layer right after each pruning event.
struct Probe<H> {
    inner: H,
    events: fn(&H) -> &[(u64, f32)],
    seen: Vec<(u64, Vec<usize>)>,
}

impl<H: StepHook> StepHook for Probe<H> {
    fn before_update(&mut self, step: u64, model: &mut Sequential) {
        self.inner.before_update(step, model);
    }

    fn after_update(&mut self, step: u64, model: &mut Sequential) {
        self.inner.after_update(step, model);
        if (self.events)(&self.inner)
            .last()
            .is_some_and(|&(t, _)| t == step)
        {
            let counts = model
                .dense_layers()
                .map(|(_, d)| zeros(&d.weight.matrix()))
                .collect();
            self.seen.push((step, counts));
        }
    }
}

#[test]
fn gradual_magnitude_follows_the_schedule_to_the_final_sparsity() {
    let (x, y) = data(256, 3);
    let mut m = model(4);
    let schedule = PruneSchedule::Polynomial {
        initial_sparsity: 0.1,
        begin_step: 4,
        frequency: 3,
        pruning_steps: 5,
    };
    let mut probe = Probe {
        inner: GradualMagnitude::new(&m, magnitude(0.8, &[(3, 0.5)]), schedule).expect("dense"),
        events: GradualMagnitude::events,
        seen: Vec::new(),
    };
    let cfg = config(
        4,
        OptimizerConfig::Adam(Adam::default()),
        Regularization::default(),
    );
    fit_with_hook(
        &mut m,
        x.view(),
        y.view(),
        &cfg,
        &mut |_| {},
        &mut probe,
        &|| false,
    )
    .expect("trains");

    let steps: Vec<u64> = probe.inner.events().iter().map(|e| e.0).collect();
    assert_eq!(steps, vec![4, 7, 10, 13, 16, 19]);
    assert_eq!(probe.seen.len(), 6);
    for (&(t, s), (seen_t, counts)) in probe.inner.events().iter().zip(&probe.seen) {
        assert_eq!(t, *seen_t);
        assert_eq!(s, polynomial_sparsity(0.1, 0.8, 4, 3, 5, t));
        // 192 weights in the global pool (layers 0 and 2); the output layer's
        // override ramps along: 0.5 · s_t / s_f of its 8 weights.
        let pooled = (s as f64 * 192.0).round() as usize;
        assert_eq!(counts[0] + counts[1], pooled, "step {t}");
        let head = ((0.5 * (s / 0.8)) as f64 * 8.0).round() as usize;
        assert_eq!(counts[2], head, "step {t}");
    }
    assert_eq!(probe.inner.current_sparsity(), 0.8);
    // 32 steps ran; after the last event nothing was pruned or regrown.
    let stats = layer_sparsity(&m);
    assert_eq!(
        (stats[0].weights + stats[1].weights) - (stats[0].nonzero + stats[1].nonzero),
        154 // round(0.8 · 192)
    );
    assert_eq!(stats[2].weights - stats[2].nonzero, 4);
}

#[test]
fn one_shot_prunes_once_at_the_first_step() {
    let (x, y) = data(64, 5);
    let mut m = model(6);
    let mut hook =
        GradualMagnitude::new(&m, magnitude(0.5, &[]), PruneSchedule::OneShot).expect("dense");
    let cfg = config(
        2,
        OptimizerConfig::Sgd(Sgd { lr: 0.1 }),
        Regularization::default(),
    );
    fit_with_hook(
        &mut m,
        x.view(),
        y.view(),
        &cfg,
        &mut |_| {},
        &mut hook,
        &|| false,
    )
    .expect("trains");
    assert_eq!(hook.events(), &[(0, 0.5)]);
    assert_eq!(zeros(&weights(&m, 0)) + zeros(&weights(&m, 2)), 96);
    assert_eq!(zeros(&weights(&m, 3)), 0);
}

#[test]
fn gradual_neurons_mask_whole_units_and_end_in_a_smaller_equivalent_model() {
    let (x, y) = data(256, 7);
    let mut m = model(8);
    let cfg = NeuronConfig {
        sparsity: 0.5,
        scope: Scope::PerLayer,
        overrides: Default::default(),
        // Falls back to L2 inside the hook.
        criterion: UnitCriterion::Activation,
    };
    let schedule = PruneSchedule::Polynomial {
        initial_sparsity: 0.0,
        begin_step: 0,
        frequency: 4,
        pruning_steps: 3,
    };
    let mut probe = Probe {
        inner: GradualNeurons::new(&m, cfg, schedule).expect("dense"),
        events: GradualNeurons::events,
        seen: Vec::new(),
    };
    let fit_cfg = config(
        3,
        OptimizerConfig::Adam(Adam::default()),
        Regularization::default(),
    );
    fit_with_hook(
        &mut m,
        x.view(),
        y.view(),
        &fit_cfg,
        &mut |_| {},
        &mut probe,
        &|| false,
    )
    .expect("trains");
    assert_eq!(probe.seen.len(), 4);
    for (&(t, s), (_, counts)) in probe.inner.events().iter().zip(&probe.seen) {
        assert_eq!(s, polynomial_sparsity(0.0, 0.5, 0, 4, 3, t));
        // A masked unit zeroes its whole fan-in column: 4 weights in layer 0, 16 in layer 2.
        let units = |n: usize| (s as f64 * n as f64).round() as usize;
        assert_eq!(counts[0], 4 * units(16), "step {t}");
        assert_eq!(counts[1], 16 * units(8), "step {t}");
    }
    let kept = probe.inner.kept_units(&m);
    assert_eq!(
        kept.iter().map(|(l, u)| (*l, u.len())).collect::<Vec<_>>(),
        vec![(0, 8), (2, 4)]
    );
    for (layer, units) in &kept {
        let d = m.layers()[*layer].as_dense().expect("dense");
        let b = &d.bias.as_ref().expect("bias").matrix();
        for j in (0..d.units()).filter(|j| !units.contains(j)) {
            assert!(d.weight.matrix().column(j).iter().all(|&w| w == 0.0));
            assert_eq!(b[(0, j)], 0.0);
        }
    }
    let small = remove_units(&m, &kept).expect("removes");
    // 4·8 + 8, 8·4 + 4, 4·1 + 1
    assert_eq!(small.param_count(), 81);
    // tanh(0) = 0 and relu(0) = 0: nothing to fold, outputs match to rounding.
    let (a, b) = (m.predict(x.view()), small.predict(x.view()));
    for (a, b) in a.iter().zip(&b) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}
