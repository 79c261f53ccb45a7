//! Distillation benchmarks: what the teacher costs a student's training epoch.
//!
//! One epoch of a 784-64-10 student (batch 32, Adam) on 10,000 rows trained on
//! the labels alone, distilled from cached soft targets, and distilled with the
//! teacher (784-512-512-10) run again on every batch; and the one teacher pass
//! that fills the cache. The ratios, not the absolute times, are the figures.
//!
//! `cargo bench --bench distill` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_nn::data::Task;
use kiln_nn::optimize::distill::{DistillLoss, Distiller, TeacherTargets};
use kiln_nn::spec::Architecture;
use kiln_nn::train::optim::{Adam, OptimizerConfig};
use kiln_nn::{FitConfig, Hooks, Loss, Regularization, Schedule, Sequential, fit, fit_with};
use ndarray::{Array1, Array2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROWS: usize = 10_000;

fn mlp(hidden: &[usize]) -> Architecture {
    let mut layers: Vec<serde_json::Value> = hidden
        .iter()
        .map(|u| serde_json::json!({"type": "dense", "units": u, "activation": "relu"}))
        .collect();
    layers.push(serde_json::json!({"type": "dense", "units": 10, "activation": "softmax"}));
    serde_json::from_value(serde_json::json!({"input_dim": 784, "layers": layers}))
        .expect("architecture parses")
}

fn data() -> (Array2<f32>, Array1<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = Array2::from_shape_simple_fn((ROWS, 784), || rng.random_range(0.0f32..1.0));
    let y = Array1::from_shape_fn(ROWS, |i| {
        let s: f32 = x.row(i).iter().take(16).sum();
        ((s * 2.0) as usize % 10) as f32
    });
    (x, y)
}

fn config() -> FitConfig {
    FitConfig {
        epochs: 1,
        batch_size: 32,
        optimizer: OptimizerConfig::Adam(Adam::default()),
        schedule: Schedule::Constant,
        loss: Loss::CategoricalCrossentropy,
        regularization: Regularization::default(),
        validation_split: 0.0,
        early_stopping: None,
        seed: 42,
        task: Task::Multiclass,
    }
}

fn distill(c: &mut Criterion) {
    let (x, y) = data();
    let teacher = Sequential::new(&mlp(&[512, 512]), 1);
    let student = mlp(&[64]);
    let cfg = config();
    let loss = DistillLoss {
        hard: Loss::CategoricalCrossentropy,
        temperature: 4.0,
        alpha: 0.1,
    };
    let mut g = c.benchmark_group("distill_epoch");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(ROWS as u64));

    g.bench_function("labels_only", |b| {
        let mut model = Sequential::new(&student, 1);
        b.iter(|| {
            fit(
                &mut model,
                black_box(x.view()),
                y.view(),
                &cfg,
                &mut |_| {},
                &|| false,
            )
        })
    });
    for (name, budget) in [("cached", usize::MAX), ("streamed", 0)] {
        let mut distiller = Distiller::new(TeacherTargets::new(&teacher, x.view(), loss, budget));
        g.bench_function(name, |b| {
            let mut model = Sequential::new(&student, 1);
            b.iter(|| {
                let hooks = Hooks {
                    step: None,
                    objective: Some(&mut distiller),
                };
                fit_with(
                    &mut model,
                    black_box(x.view()),
                    y.view(),
                    &cfg,
                    &mut |_| {},
                    hooks,
                    &|| false,
                )
            })
        });
    }
    g.bench_function("teacher_pass_fills_the_cache", |b| {
        b.iter(|| {
            TeacherTargets::new(&teacher, black_box(x.view()), loss, usize::MAX).cache_bytes()
        })
    });
    g.finish();
}

criterion_group!(benches, distill);
criterion_main!(benches);
