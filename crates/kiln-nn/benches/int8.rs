//! int8 matrix products (`nn::optimize::quant::kernel`) against kiln's f32 product, single-threaded.
//!
//! `cargo bench --bench int8 -- --warm-up-time 1 --measurement-time 2`. Each group is one
//! shape `C (m×n) = A (m×k) · W (k×n)` at batch 1 and 1024, for the LeNet-300-100 layers
//! (784×300, 300×100, 100×10) and the seed model's (100×64, 64×32, 32×1). Throughput is counted
//! as 2·m·k·n operations, so criterion's "elem/s" is int8 OP/s for the int8 paths and FLOP/s for
//! `f32`:
//! - `portable`, `avx2`, `avx512_vnni`: `gemm_u8i8_with` on pre-packed weights, for every path
//!   this CPU has;
//! - `f32`: `ndarray::linalg::general_mat_mul` (matrixmultiply, no threading) on f32 arrays of
//!   the same shape, into a preallocated output.
//!
//! The `lenet_network` groups chain the three LeNet products (the integer-only part of a
//! quantized forward pass; no requantization between layers), with throughput in rows, so
//! "elem/s" is rows/s and the time per iteration at batch 1 is the network's product latency.
//!
//! Before any timing, every available path is checked to equal the portable one bit for bit.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_nn::optimize::quant::kernel::{Isa, PackedWeights, available, gemm_u8i8_with};
use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `(name, k, n)` of each layer.
const LENET: &[(&str, usize, usize)] = &[
    ("lenet_784x300", 784, 300),
    ("lenet_300x100", 300, 100),
    ("lenet_100x10", 100, 10),
];
const SEED: &[(&str, usize, usize)] = &[
    ("seed_100x64", 100, 64),
    ("seed_64x32", 64, 32),
    ("seed_32x1", 32, 1),
];
const BATCHES: &[usize] = &[1, 1024];

/// One layer's operands in both number formats.
struct Layer {
    k: usize,
    n: usize,
    packed: PackedWeights,
    w_f32: Array2<f32>,
}

impl Layer {
    fn new(k: usize, n: usize, rng: &mut ChaCha8Rng) -> Self {
        let w = Array2::from_shape_simple_fn((k, n), || rng.random::<i8>());
        Self {
            k,
            n,
            packed: PackedWeights::pack(w.view()),
            w_f32: w.mapv(f32::from),
        }
    }
}

fn isas() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|&isa| available(isa)).collect()
}

fn random_u8(len: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    (0..len).map(|_| rng.random::<u8>()).collect()
}

/// Runs before any timing: every path must give the portable path's result exactly.
fn check_agreement(layer: &Layer, a: &[u8], m: usize) {
    let mut reference = vec![0i32; m * layer.n];
    gemm_u8i8_with(Isa::Portable, a, m, &layer.packed, &mut reference);
    for isa in isas() {
        let mut c = vec![i32::MIN; m * layer.n];
        gemm_u8i8_with(isa, a, m, &layer.packed, &mut c);
        assert!(c == reference, "{isa:?} differs from portable");
    }
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
}

fn bench_layers(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for &(name, k, n) in LENET.iter().chain(SEED) {
        let layer = Layer::new(k, n, &mut rng);
        for &m in BATCHES {
            let a = random_u8(m * k, &mut rng);
            check_agreement(&layer, &a, m);
            let a_f32 = Array2::from_shape_fn((m, k), |(i, j)| f32::from(a[i * k + j]));

            let mut group = c.benchmark_group(format!("int8/{name}"));
            configure(&mut group);
            group.throughput(Throughput::Elements((2 * m * k * n) as u64));
            let mut out = vec![0i32; m * n];
            for isa in isas() {
                group.bench_function(BenchmarkId::new(isa.name(), m), |bench| {
                    bench.iter(|| {
                        gemm_u8i8_with(isa, black_box(&a), m, black_box(&layer.packed), &mut out);
                        black_box(&out);
                    })
                });
            }
            let mut out_f32 = Array2::<f32>::zeros((m, n));
            group.bench_function(BenchmarkId::new("f32", m), |bench| {
                bench.iter(|| {
                    general_mat_mul(
                        1.0,
                        &black_box(&a_f32).view(),
                        &black_box(&layer.w_f32).view(),
                        0.0,
                        &mut out_f32,
                    );
                    black_box(&out_f32);
                })
            });
            group.finish();
        }
    }
}

fn bench_network(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let layers: Vec<Layer> = LENET
        .iter()
        .map(|&(_, k, n)| Layer::new(k, n, &mut rng))
        .collect();
    for &m in BATCHES {
        // One input per layer (the activations a requantization step would produce).
        let inputs: Vec<Vec<u8>> = layers
            .iter()
            .map(|l| random_u8(m * l.k, &mut rng))
            .collect();
        let mut outputs: Vec<Vec<i32>> = layers.iter().map(|l| vec![0; m * l.n]).collect();
        let mut group = c.benchmark_group("int8/lenet_network");
        configure(&mut group);
        group.throughput(Throughput::Elements(m as u64));
        for isa in isas() {
            group.bench_function(BenchmarkId::new(isa.name(), m), |bench| {
                bench.iter(|| {
                    for ((layer, a), out) in layers.iter().zip(&inputs).zip(&mut outputs) {
                        gemm_u8i8_with(isa, black_box(a), m, &layer.packed, out);
                    }
                    black_box(&outputs);
                })
            });
        }
        let inputs_f32: Vec<Array2<f32>> = layers
            .iter()
            .zip(&inputs)
            .map(|(l, a)| Array2::from_shape_fn((m, l.k), |(i, j)| f32::from(a[i * l.k + j])))
            .collect();
        let mut outputs_f32: Vec<Array2<f32>> =
            layers.iter().map(|l| Array2::zeros((m, l.n))).collect();
        group.bench_function(BenchmarkId::new("f32", m), |bench| {
            bench.iter(|| {
                for ((layer, a), out) in layers.iter().zip(&inputs_f32).zip(&mut outputs_f32) {
                    general_mat_mul(1.0, &black_box(a).view(), &layer.w_f32.view(), 0.0, out);
                }
                black_box(&outputs_f32);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_layers, bench_network);
criterion_main!(benches);
