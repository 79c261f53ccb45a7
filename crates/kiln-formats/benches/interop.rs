//! ONNX in and out: how long kiln takes to read a LeNet-300-100 and a LeNet-5 ONNX file
//! into its own network (each against decoding the same network from kiln's own
//! safetensors file, in the same run), a `.keras` file saved by Keras, and to write ONNX (fp32 and int8 QDQ).
//!
//! `cargo bench --bench interop` (add `-- --quick` for a short run). Upload round
//! trips over HTTP, a `.keras` file, and the exported int8 graph in ONNX Runtime
//! are measured by `scripts/interop_bench.sh`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_formats::model_file::ModelFile;
use kiln_formats::onnx;
use kiln_formats::quantized::Quantization;
use kiln_nn::optimize::quant::qmodel::{QuantConfig, QuantMode, QuantizedModel};
use kiln_nn::optimize::quant::scheme::{Granularity, Scheme};
use kiln_nn::spec::{Architecture, ArchitectureLimits};

const LENET_300_100: &str = r#"{"input_dim": 784, "layers": [
    {"type": "dense", "units": 300, "activation": "relu"},
    {"type": "dense", "units": 100, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"}]}"#;

/// PyTorch's tutorial LeNet-5 (61,706 parameters) on 1×28×28 images.
const LENET_5: &str = r#"{"input_shape": [1, 28, 28], "layers": [
    {"type": "conv2d", "filters": 6, "kernel_size": 5, "padding": [2, 2], "activation": "relu"},
    {"type": "max_pool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 16, "kernel_size": 5, "activation": "relu"},
    {"type": "max_pool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 120, "activation": "relu"},
    {"type": "dense", "units": 84, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"}]}"#;

fn lenet() -> ModelFile {
    trained(LENET_300_100)
}

fn trained(json: &str) -> ModelFile {
    let arch: Architecture = serde_json::from_str(json).expect("architecture parses");
    let mut file = ModelFile::untrained(&arch, 1);
    file.meta.trained = true;
    file
}

/// The same network quantized to dynamic int8, per-channel symmetric weights.
fn lenet_int8() -> ModelFile {
    let mut file = lenet();
    let config = QuantConfig {
        mode: QuantMode::Dynamic,
        scheme: Scheme::Symmetric,
        granularity: Granularity::PerChannel,
    };
    let q = QuantizedModel::build(&file.model, &config, &[], None).expect("quantizes");
    file.model = q.dequantized();
    file.meta.dtype = "int8".into();
    file.meta.quantization = Some(Quantization {
        config,
        layers: q.layers().to_vec(),
    });
    file
}

fn interop(c: &mut Criterion) {
    let mut group = c.benchmark_group("onnx");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    let fp32 = lenet();
    let int8 = lenet_int8();
    let bytes = onnx::export(&fp32).expect("exports");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    // The baseline in the same run: reading the same network from kiln's own file.
    let own = kiln_formats::model_file::encode(&fp32).expect("encodes");
    group.bench_function(
        BenchmarkId::new("decode kiln safetensors", "lenet-300-100 fp32"),
        |b| b.iter(|| kiln_formats::model::read(black_box(&own)).expect("decodes")),
    );
    // A .keras file saved by Keras (the source document's model, tests/fixtures/keras).
    let keras_file: &[u8] = include_bytes!("../tests/fixtures/keras/sequential.keras");
    group.bench_function(BenchmarkId::new("import", "keras 100-64-32-1"), |b| {
        b.iter(|| {
            kiln_formats::keras::import(black_box(keras_file), &ArchitectureLimits::default())
                .expect("imports")
        })
    });
    group.bench_function(BenchmarkId::new("import", "lenet-300-100 fp32"), |b| {
        b.iter(|| onnx::import(black_box(&bytes), &ArchitectureLimits::default()).expect("imports"))
    });
    for (name, file) in [("fp32", &fp32), ("int8 dynamic", &int8)] {
        group.bench_function(
            BenchmarkId::new("export", format!("lenet-300-100 {name}")),
            |b| b.iter(|| onnx::export(black_box(file)).expect("exports")),
        );
    }
    // A convolutional network: import of kiln's own LeNet-5 export against its safetensors file.
    let cnn = trained(LENET_5);
    let cnn_onnx = onnx::export(&cnn).expect("exports");
    let cnn_own = kiln_formats::model_file::encode(&cnn).expect("encodes");
    group.throughput(Throughput::Bytes(cnn_onnx.len() as u64));
    group.bench_function(
        BenchmarkId::new("decode kiln safetensors", "lenet-5 fp32"),
        |b| b.iter(|| kiln_formats::model::read(black_box(&cnn_own)).expect("decodes")),
    );
    group.bench_function(BenchmarkId::new("import", "lenet-5 fp32"), |b| {
        b.iter(|| {
            onnx::import(black_box(&cnn_onnx), &ArchitectureLimits::default()).expect("imports")
        })
    });
    group.finish();
}

criterion_group!(benches, interop);
criterion_main!(benches);
