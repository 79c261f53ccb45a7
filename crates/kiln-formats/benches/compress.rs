//! Deep Compression stages 2–3: k-means weight sharing and the KILNZ artifact.
//!
//! `cargo bench --bench compress` (add `-- --quick` for a short run). The model
//! is LeNet-300-100 with random weights pruned to ~8 % and shared at 5 bits.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kiln_formats::compressed::{self, Coder};
use kiln_formats::model_file::ModelFile;
use kiln_nn::layers::Layer;
use kiln_nn::optimize::share::{CodebookInit, SharedWeights, share_weights};
use kiln_nn::spec::Architecture;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LENET_300_100: &str = r#"{"input_dim": 784, "layers": [
    {"type": "dense", "units": 300, "activation": "relu"},
    {"type": "dense", "units": 100, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"}]}"#;

/// LeNet-300-100 with ~8 % of each weight matrix kept at random.
fn pruned_lenet() -> ModelFile {
    let arch: Architecture = serde_json::from_str(LENET_300_100).expect("architecture parses");
    let mut file = ModelFile::untrained(&arch, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for layer in file.model.layers_mut() {
        if let Layer::Dense(d) = layer {
            d.weight
                .matrix_mut()
                .map_inplace(|v| *v = if rng.random::<f64>() < 0.08 { *v } else { 0.0 });
        }
    }
    file
}

fn shared_lenet() -> (ModelFile, SharedWeights) {
    let mut file = pruned_lenet();
    let shared = share_weights(&file.model, 5, CodebookInit::Linear).expect("dense");
    shared.apply(&mut file.model);
    (file, shared)
}

fn share(c: &mut Criterion) {
    let mut g = c.benchmark_group("share_weights");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let file = pruned_lenet();
    for init in [CodebookInit::Linear, CodebookInit::Density] {
        g.bench_function(format!("{init:?}"), |b| {
            b.iter(|| share_weights(black_box(&file.model), 5, init).expect("dense"))
        });
    }
    g.finish();
}

fn artifact(c: &mut Criterion) {
    let mut g = c.benchmark_group("kilnz");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let (file, shared) = shared_lenet();
    for coder in [Coder::None, Coder::Zstd, Coder::Huffman] {
        let bytes = compressed::encode(&file, &shared, coder).expect("encodes");
        g.bench_with_input(
            BenchmarkId::new("encode", coder.as_str()),
            &coder,
            |b, &coder| {
                b.iter(|| compressed::encode(black_box(&file), &shared, coder).expect("encodes"))
            },
        );
        g.bench_with_input(
            BenchmarkId::new("decode", coder.as_str()),
            &bytes,
            |b, bytes| b.iter(|| compressed::decode(black_box(bytes)).expect("decodes")),
        );
    }
    g.finish();
}

criterion_group!(benches, share, artifact);
criterion_main!(benches);
