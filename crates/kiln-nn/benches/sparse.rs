//! Sparse inference: LeNet-300-100 magnitude-pruned to several densities, run
//! dense ([`Sequential::predict`]), all-CSR and through the measured plan.
//!
//! `cargo bench --bench sparse -- --warm-up-time 1 --measurement-time 3`.
//! Single thread: the GEMM (matrixmultiply) is built without threading.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_nn::Sequential;
use kiln_nn::kernels::sparse::{Choice, Csr, compile_with};
use kiln_nn::spec::Architecture;
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LENET_300_100: &str = r#"{"input_dim": 784, "layers": [
    {"type": "dense", "units": 300, "activation": "relu"},
    {"type": "dense", "units": 100, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"}]}"#;

/// LeNet-300-100 with every weight matrix keeping its `density` largest |w|.
fn pruned_lenet(density: f64) -> Sequential {
    let architecture: Architecture = serde_json::from_str(LENET_300_100).expect("parses");
    let mut model = Sequential::new(&architecture, 1);
    for layer in model.layers_mut() {
        if let Some(d) = layer.as_dense_mut() {
            let mut mags: Vec<f32> = d.weight.matrix().iter().map(|v| v.abs()).collect();
            mags.sort_by(|a, b| b.total_cmp(a));
            let keep = ((mags.len() as f64 * density).round() as usize).clamp(1, mags.len());
            let threshold = mags[keep - 1];
            d.weight
                .matrix_mut()
                .mapv_inplace(|v| if v.abs() >= threshold { v } else { 0.0 });
        }
    }
    model
}

fn input(rows: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, 784), || rng.random_range(-1.0f32..1.0))
}

fn lenet(c: &mut Criterion) {
    let mut g = c.benchmark_group("sparse_lenet_300_100");
    for density in [1.0, 0.3, 0.1, 0.05] {
        let model = pruned_lenet(density);
        let sparse = compile_with(&model, Choice::Sparse);
        let plan = compile_with(&model, Choice::Measure);
        let kernels: Vec<String> = plan
            .kernels()
            .iter()
            .map(|k| format!("{}:{}/{}", k.layer, k.batch1, k.batched))
            .collect();
        eprintln!("density {density}: plan {}", kernels.join(" "));
        for batch in [1usize, 1024] {
            let x = input(batch, 3);
            g.throughput(Throughput::Elements(batch as u64));
            let id = |kind: &str| BenchmarkId::new(format!("{kind}/b{batch}"), density);
            g.bench_with_input(id("dense"), &x, |b, x| {
                b.iter(|| model.predict(black_box(x.view())))
            });
            g.bench_with_input(id("csr"), &x, |b, x| {
                b.iter(|| sparse.predict(black_box(x.view())))
            });
            g.bench_with_input(id("plan"), &x, |b, x| {
                b.iter(|| plan.predict(black_box(x.view())))
            });
        }
    }
    g.finish();
}

/// The first LeNet layer alone (784→300, no activation): the two kernels head to head.
fn layer(c: &mut Criterion) {
    let mut g = c.benchmark_group("sparse_layer_784x300");
    for density in [1.0, 0.3, 0.1, 0.05] {
        let model = pruned_lenet(density);
        let Some(d) = model.layers()[0].as_dense() else {
            return;
        };
        let csr = Csr::from_dense(d.weight.matrix().view()).expect("fits");
        let bias: Vec<f32> = d
            .bias
            .as_ref()
            .map_or(vec![0.0; 300], |b| b.matrix().iter().copied().collect());
        for batch in [1usize, 64] {
            let x = input(batch, 4);
            let mut z = Array2::zeros((batch, 300));
            g.throughput(Throughput::Elements(batch as u64));
            let id = |kind: &str| BenchmarkId::new(format!("{kind}/b{batch}"), density);
            g.bench_function(id("dense"), |b| {
                b.iter(|| d.linear_into(black_box(x.view()), z.view_mut()))
            });
            g.bench_function(id("csr"), |b| {
                b.iter(|| csr.linear_into(black_box(x.view()), Some(&bias), z.view_mut()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, lenet, layer);
criterion_main!(benches);
