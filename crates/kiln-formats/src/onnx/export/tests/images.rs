//! Convolutional networks through the exporter: the graph's operators, shapes and
//! initializers, and the reference interpreter's outputs against kiln's own.

use ndarray::{Array1, Array2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::super::super::interpret::image as spec;
use super::*;
use kiln_nn::Param;
use kiln_nn::layers::Layer;

/// Gives every batch norm γ, β and running statistics away from their defaults.
pub(super) fn with_statistics(mut model: Sequential, seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for layer in model.layers_mut() {
        if let Layer::BatchNorm(bn) = layer {
            let c = bn.channels();
            let mut draw = |lo: f32, hi: f32| -> Vec<f32> {
                (0..c).map(|_| rng.random_range(lo..hi)).collect()
            };
            let row = |v: Vec<f32>| Param::new(Array2::from_shape_vec((1, c), v).expect("row"));
            bn.params = [row(draw(0.5, 1.5)), row(draw(-0.5, 0.5))];
            bn.running_mean = Array1::from(draw(-0.3, 0.3)).into_dyn();
            bn.running_var = Array1::from(draw(0.2, 2.0)).into_dyn();
        }
    }
    model
}

/// Every image layer and option the exporter writes: same and explicit padding, stride,
/// dilation, groups, convolutions with and without bias, both pools, batch norms on images
/// and on features, a flatten, a dropout.
pub(super) fn every_image_layer() -> Architecture {
    arch(serde_json::json!({"input_shape": [2, 9, 9], "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": false},
        {"type": "batch_norm", "activation": "relu"},
        {"type": "max_pool2d", "pool_size": 2, "padding": "same"},
        {"type": "conv2d", "filters": 6, "kernel_size": [2, 3], "strides": [1, 2],
         "dilation": [2, 1], "groups": 2, "padding": [1, 0, 1, 2], "activation": "tanh"},
        {"type": "avg_pool2d", "pool_size": 2, "strides": 1, "padding": [1, 1, 0, 0]},
        {"type": "flatten"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 7, "activation": "linear"},
        {"type": "batch_norm", "activation": "leaky_relu"},
        {"type": "dense", "units": 3, "activation": "softmax"}]}))
}

pub(super) fn trained_cnn(a: &Architecture, seed: u64) -> Sequential {
    with_statistics(trained_like(a, seed), seed + 2)
}

#[test]
fn a_cnn_exports_with_its_batch_norms_folded_and_computes_what_kiln_predicts() {
    let model = trained_cnn(&every_image_layer(), 11);
    let onnx = exported(&file_of(model.clone()));
    assert_eq!(
        ops(&onnx),
        [
            "Conv",
            "Relu",
            "MaxPool",
            "Conv",
            "Tanh",
            "AveragePool",
            "Flatten",
            "Gemm",
            "LeakyRelu",
            "Gemm",
            "Softmax"
        ]
    );
    let graph = onnx.graph.as_ref().expect("graph");
    assert_eq!(declared_dims(&graph.input[0]), Some(vec![0, 2, 9, 9]));
    assert_eq!(declared_dims(&graph.output[0]), Some(vec![0, 3]));
    // Weights keep kiln's (and ONNX's) `[filters, channels / groups, kh, kw]`; the first
    // convolution gained the bias its batch norm folded into it.
    assert_eq!(initializer(&onnx, "layers.0.weight").dims, [4, 2, 3, 3]);
    assert_eq!(initializer(&onnx, "layers.0.bias").dims, [4]);
    assert_eq!(initializer(&onnx, "layers.2.weight").dims, [6, 2, 2, 3]);
    let conv = &nodes(&onnx)[3];
    let ints = |name: &str| {
        conv.attribute
            .iter()
            .find(|a| a.name() == name)
            .map(|a| a.ints.clone())
    };
    assert_eq!(ints("pads"), Some(vec![1, 0, 1, 2]));
    assert_eq!(ints("strides"), Some(vec![1, 2]));
    assert_eq!(ints("dilations"), Some(vec![2, 1]));
    let x = uniform(30, 2 * 81, -1.5, 1.5, 12);
    let kiln = model.predict(x.view());
    let diff = max_abs_diff(&interpret_on(&onnx, x.view()), &kiln);
    assert!(diff < 1e-5, "max |onnx − kiln| = {diff}");
    assert!(
        onnx.graph
            .as_ref()
            .and_then(|g| g.doc_string.as_deref())
            .is_some_and(
                |d| d.starts_with("kiln model: input [2, 9, 9] → conv2d 4 3×3 relu → max_pool2d")
            )
    );
}

#[test]
fn a_global_pool_head_and_an_image_output_become_rows() {
    // GlobalAveragePool gives [batch, C, 1, 1]; kiln's layer gives [C].
    let gap = arch(serde_json::json!({"input_shape": [3, 6, 5], "layers": [
        {"type": "conv2d", "filters": 5, "kernel_size": 3, "activation": "relu"},
        {"type": "global_avg_pool2d"},
        {"type": "dense", "units": 1, "activation": "sigmoid"}]}));
    let model = trained_like(&gap, 21);
    let onnx = exported(&file_of(model.clone()));
    assert_eq!(
        ops(&onnx),
        [
            "Conv",
            "Relu",
            "GlobalAveragePool",
            "Flatten",
            "Gemm",
            "Sigmoid"
        ]
    );
    let x = uniform(20, 90, -1.0, 1.0, 22);
    let diff = max_abs_diff(&interpret_on(&onnx, x.view()), &model.predict(x.view()));
    assert!(diff < 1e-5, "{diff}");
    // A network that ends on an image answers rows, as kiln's predictions are; a softmax over
    // an image spans the whole sample, as kiln's does.
    let image_out = arch(serde_json::json!({"input_shape": [1, 4, 4], "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 2, "activation": "softmax"}]}));
    let model = trained_like(&image_out, 23);
    let onnx = exported(&file_of(model.clone()));
    assert_eq!(
        ops(&onnx),
        ["Conv", "Flatten", "Softmax", "Reshape", "Flatten"]
    );
    let graph = onnx.graph.as_ref().expect("graph");
    assert_eq!(declared_dims(&graph.output[0]), Some(vec![0, 18]));
    let x = uniform(10, 16, -1.0, 1.0, 24);
    let (onnx_y, kiln_y) = (interpret_on(&onnx, x.view()), model.predict(x.view()));
    assert!(max_abs_diff(&onnx_y, &kiln_y) < 1e-6);
    let row_sum: f32 = onnx_y.row(0).sum();
    assert!((row_sum - 1.0).abs() < 1e-5, "{row_sum}");
}

#[test]
fn a_batch_norm_with_nothing_to_fold_into_is_a_batch_normalization_node() {
    // The architecture check refuses this for kiln's own models; a model file need not have
    // passed it, and the export must still be right.
    let a = arch(serde_json::json!({"input_shape": [2, 4, 4], "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "activation": "relu"},
        {"type": "batch_norm", "activation": "sigmoid"},
        {"type": "flatten"},
        {"type": "dense", "units": 2, "activation": "softmax"}]}));
    let model = trained_cnn(&a, 31);
    let onnx = exported(&file_of(model.clone()));
    assert_eq!(
        ops(&onnx),
        [
            "Conv",
            "Relu",
            "BatchNormalization",
            "Sigmoid",
            "Flatten",
            "Gemm",
            "Softmax"
        ]
    );
    let x = uniform(15, 32, -1.0, 1.0, 32);
    let diff = max_abs_diff(&interpret_on(&onnx, x.view()), &model.predict(x.view()));
    assert!(diff < 1e-5, "{diff}");
}

/// The interpreter's image operators on hand-computed cases, so agreement above means the
/// export is right rather than that two wrong things agree.
#[test]
fn the_interpreters_image_operators_give_hand_computed_values() {
    let img = |dims: Vec<usize>, data: Vec<f32>| Value {
        dtype: DataType::Float,
        dims,
        data,
    };
    // x = 1..9 as one 3×3 plane.
    let x = img(vec![1, 1, 3, 3], (1..=9).map(|v| v as f32).collect());
    let ones = img(vec![1, 1, 2, 2], vec![1.0; 4]);
    let conv = |attrs| {
        let n = node("Conv", &["x", "w"], &["y"], attrs);
        spec::conv(&n, &x, &ones, None).expect("conv")
    };
    // 2×2 sums: [1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9].
    assert_eq!(conv(vec![]).data, [12.0, 16.0, 24.0, 28.0]);
    assert_eq!(conv(vec![]).dims, [1, 1, 2, 2]);
    // One row of padding on top only: the first row of windows sees [1, 2] / [2, 3].
    let padded = conv(vec![graph::attr_ints("pads", [1, 0, 0, 0])]);
    assert_eq!(padded.data, [3.0, 5.0, 12.0, 16.0, 24.0, 28.0]);
    // Dilation 2 reads the corners: 1 + 3 + 7 + 9.
    let dilated = conv(vec![graph::attr_ints("dilations", [2, 2])]);
    assert_eq!(dilated.data, [20.0]);
    let pool = |op: &str, attrs| spec::pool(&node(op, &["x"], &["y"], attrs), &x, op == "MaxPool");
    let window = || {
        vec![
            graph::attr_ints("kernel_shape", [2, 2]),
            graph::attr_ints("strides", [2, 2]),
            graph::attr_ints("pads", [0, 0, 1, 1]),
        ]
    };
    assert_eq!(
        pool("MaxPool", window()).expect("max").data,
        [5.0, 6.0, 8.0, 9.0]
    );
    // The corner window holds only 9; without count_include_pad the mean is 9.
    assert_eq!(
        pool("AveragePool", window()).expect("avg").data,
        [3.0, 4.5, 7.5, 9.0]
    );
    let mut counted = window();
    counted.push(graph::attr_int("count_include_pad", 1));
    assert_eq!(
        pool("AveragePool", counted).expect("avg").data,
        [3.0, 2.25, 3.75, 2.25]
    );
    assert_eq!(spec::global_average(&x).expect("gap").data, [5.0]);
    // (x − 1) / √(3 + 1) · 2 + 0.5 on one channel.
    let one = |v: f32| img(vec![1], vec![v]);
    let (s, b, m, v) = (one(2.0), one(0.5), one(1.0), one(3.0));
    let bn = spec::batch_norm(&x, [&s, &b, &m, &v], 1.0).expect("bn");
    assert_eq!(bn.data[..3], [0.5, 1.5, 2.5]);
}

#[test]
fn a_cnn_export_imports_back_to_the_network_its_batch_norms_fold_to() {
    let model = trained_cnn(&every_image_layer(), 31);
    let bytes = crate::onnx::export(&file_of(model.clone())).expect("export");
    let back =
        crate::onnx::import(&bytes, &kiln_nn::spec::ArchitectureLimits::default()).expect("import");
    // The file holds the folded network without its dropout: that is what comes back,
    // with every padding written out as the pads it gives this input (`same` → explicit).
    use kiln_nn::spec::{LayerSpec, Padding};
    let folded = kiln_nn::optimize::fold::fold_batch_norm(&model);
    let mut expected = folded.architecture().clone();
    expected
        .layers
        .retain(|l| !matches!(l, LayerSpec::Dropout { .. }));
    let unpadded = |layers: &[LayerSpec]| -> Vec<LayerSpec> {
        let mut layers = layers.to_vec();
        for l in &mut layers {
            if let LayerSpec::Conv2d { padding, .. }
            | LayerSpec::MaxPool2d { padding, .. }
            | LayerSpec::AvgPool2d { padding, .. } = l
            {
                *padding = Padding::Valid;
            }
        }
        layers
    };
    let arch = back.model.architecture();
    assert_eq!(unpadded(&arch.layers), unpadded(&expected.layers));
    assert_eq!(
        arch.shapes().expect("shapes"),
        expected.shapes().expect("shapes")
    );
    assert_eq!(
        back.model.architecture().input_shape,
        model.architecture().input_shape
    );
    let x = uniform(25, 2 * 81, -1.5, 1.5, 32);
    let diff = max_abs_diff(&back.model.predict(x.view()), &model.predict(x.view()));
    assert!(diff < 1e-5, "max |import − kiln| = {diff}");
}
