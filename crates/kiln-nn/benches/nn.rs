//! Tensor-core benchmarks: training epochs and inference of the reference networks.
//!
//! `cargo bench --bench nn` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_nn::data::Task;
use kiln_nn::kernels::parallel::serial;
use kiln_nn::spec::Architecture;
use kiln_nn::train::optim::{Adam, OptimizerConfig};
use kiln_nn::{FitConfig, Loss, Regularization, Schedule, Sequential, fit};
use ndarray::{Array1, Array2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEED_MODEL: &str = r#"{"input_dim": 100, "layers": [
    {"type": "dense", "units": 64, "activation": "relu"},
    {"type": "dense", "units": 32, "activation": "relu"},
    {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#;

const LENET_300_100: &str = r#"{"input_dim": 784, "layers": [
    {"type": "dense", "units": 300, "activation": "relu"},
    {"type": "dense", "units": 100, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"}]}"#;

fn arch(json: &str) -> Architecture {
    serde_json::from_str(json).expect("architecture parses")
}

fn synthetic(
    rows: usize,
    features: usize,
    classes: usize,
    seed: u64,
) -> (Array2<f32>, Array1<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_simple_fn((rows, features), || rng.random_range(-1.0f32..1.0));
    let y = Array1::from_shape_fn(rows, |i| {
        let s: f32 = x.row(i).iter().take(8).sum();
        if classes == 2 {
            f32::from(s > 0.0)
        } else {
            ((s.abs() * 3.0) as usize % classes) as f32
        }
    });
    (x, y)
}

fn config(batch_size: usize, loss: Loss, task: Task) -> FitConfig {
    FitConfig {
        epochs: 1,
        batch_size,
        optimizer: OptimizerConfig::Adam(Adam::default()),
        schedule: Schedule::Constant,
        loss,
        regularization: Regularization::default(),
        validation_split: 0.0,
        early_stopping: None,
        seed: 42,
        task,
    }
}

fn train_epoch(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_epoch");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    // (name, rows, features, classes, data seed, architecture, batch, loss, task)
    let cases = [
        (
            "seed_100_64_32_1_b32_16k_rows",
            16_000,
            100,
            2,
            1,
            SEED_MODEL,
            32,
            Loss::BinaryCrossentropy,
            Task::Binary,
        ),
        (
            "lenet_300_100_b128_60k_rows",
            60_000,
            784,
            10,
            2,
            LENET_300_100,
            128,
            Loss::CategoricalCrossentropy,
            Task::Multiclass,
        ),
    ];
    for (name, rows, features, classes, data_seed, layers, batch, loss, task) in cases {
        let (x, y) = synthetic(rows, features, classes, data_seed);
        let architecture = arch(layers);
        let cfg = config(batch, loss, task);
        g.throughput(Throughput::Elements(rows as u64));
        // As a job runs it (large products split over the cores), and on one thread.
        for (suffix, one_thread) in [("", false), ("_1thread", true)] {
            g.bench_function(format!("{name}{suffix}"), |b| {
                let mut model = Sequential::new(&architecture, 1);
                let mut epoch = || {
                    fit(
                        &mut model,
                        black_box(x.view()),
                        black_box(y.view()),
                        &cfg,
                        &mut |_| {},
                        &|| false,
                    )
                    .expect("trains")
                };
                b.iter(|| {
                    if one_thread {
                        serial(&mut epoch)
                    } else {
                        epoch()
                    }
                })
            });
        }
    }
    g.finish();
}

fn forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, json, features) in [
        ("seed", SEED_MODEL, 100),
        ("lenet_300_100", LENET_300_100, 784),
    ] {
        let model = Sequential::new(&arch(json), 1);
        for batch in [1usize, 1024] {
            let (x, _) = synthetic(batch, features, 2, 3);
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_with_input(BenchmarkId::new(name, batch), &x, |b, x| {
                b.iter(|| model.predict(black_box(x.view())))
            });
            g.bench_with_input(
                BenchmarkId::new(format!("{name}_1thread"), batch),
                &x,
                |b, x| b.iter(|| serial(|| model.predict(black_box(x.view())))),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, train_epoch, forward);
criterion_main!(benches);
