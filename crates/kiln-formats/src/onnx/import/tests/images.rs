//! Convolutional graphs as torch.onnx.export writes them (Conv with pads, Relu,
//! MaxPool, Flatten, Gemm with transB; Conv → BatchNormalization → Relu →
//! GlobalAveragePool), imported and run against the reference interpreter, and
//! every image op option kiln cannot compute the same way refused by name.

use ndarray::Array2;

use super::build::*;
use super::import;
use crate::onnx::export::graph::attr_ints as ints_attr;
use crate::onnx::interpret::{self, Value, max_abs_diff};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::{AttributeProto, ModelProto, NodeProto, TensorProto};
use kiln_nn::spec::{Activation, ArchitectureLimits, LayerSpec, Padding};

/// Deterministic values in `[-scale, scale]` for a tensor of `dims`.
fn weights(name: &str, dims: &[i64], scale: f32, seed: usize) -> TensorProto {
    let n: i64 = dims.iter().product();
    let values: Vec<f32> = (0..usize::try_from(n).unwrap_or(0))
        .map(|i| {
            let k = (i * 7 + seed * 13 + 3) % 23;
            scale * (k as f32 / 11.0 - 1.0)
        })
        .collect();
    floats(name, dims, &values, true)
}

fn positive(name: &str, dims: &[i64], seed: usize) -> TensorProto {
    let n: i64 = dims.iter().product();
    let values: Vec<f32> = (0..usize::try_from(n).unwrap_or(0))
        .map(|i| 0.5 + ((i * 5 + seed) % 7) as f32 / 7.0)
        .collect();
    floats(name, dims, &values, false)
}

fn window(kernel: [usize; 2], strides: [usize; 2], pads: [usize; 4]) -> Vec<AttributeProto> {
    vec![
        ints_attr("kernel_shape", kernel),
        ints_attr("strides", strides),
        ints_attr("pads", pads),
    ]
}

/// A graph over an image input `[N, c, h, w]` with one output `y`.
fn image_model(nodes: Vec<NodeProto>, init: Vec<TensorProto>, chw: [i64; 3]) -> ModelProto {
    let [c, h, w] = chw;
    model(
        nodes,
        init,
        input_dims("x", &[None, Some(c), Some(h), Some(w)]),
        &["y"],
    )
}

fn imported(m: &ModelProto) -> crate::model_file::ModelFile {
    import(&encode(m), &ArchitectureLimits::default()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn refusal(m: &ModelProto) -> String {
    match import(&encode(m), &ArchitectureLimits::default()) {
        Ok(_) => panic!("imported a graph that must be refused"),
        Err(e) => {
            e.0.iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

/// The imported network's layer types, in order.
fn kinds(file: &crate::model_file::ModelFile) -> Vec<&'static str> {
    file.model
        .architecture()
        .layers
        .iter()
        .map(LayerSpec::type_name)
        .collect()
}

/// Rows of `n` images, channels first, and what the interpreter computes on them.
fn check_against_interpreter(m: &ModelProto, n: usize) -> f32 {
    let file = imported(m);
    let dims = file
        .model
        .architecture()
        .input_shape
        .clone()
        .expect("an image input");
    let size: usize = dims.iter().product();
    let x = Array2::from_shape_fn((n, size), |(i, j)| {
        ((i * 31 + j * 17) % 29) as f32 / 14.0 - 1.0
    });
    let mut value = Value::matrix(DataType::Float, &x);
    value.dims = std::iter::once(n).chain(dims.iter().copied()).collect();
    let mut outs = interpret::run(m, &[("x", value)]).expect("the interpreter runs the graph");
    let want = outs.remove("y").expect("y").to_matrix().expect("a matrix");
    max_abs_diff(&file.model.predict(x.view()), &want)
}

/// LeNet-5 as torch.onnx.export writes it (PyTorch's tutorial model, 28×28 input with
/// padding 2 on the first convolution): Conv → Relu → MaxPool twice, Flatten, three Gemms.
fn lenet5() -> ModelProto {
    let conv = |name: &str, x: &str, w: &str, b: &str, y: &str, pad: usize| {
        node(
            "Conv",
            name,
            &[x, w, b],
            &[y],
            vec![
                ints_attr("dilations", [1, 1]),
                int("group", 1),
                ints_attr("kernel_shape", [5, 5]),
                ints_attr("pads", [pad; 4]),
                ints_attr("strides", [1, 1]),
            ],
        )
    };
    let gemm = |name: &str, x: &str, w: &str, b: &str, y: &str| {
        node(
            "Gemm",
            name,
            &[x, w, b],
            &[y],
            vec![float("alpha", 1.0), float("beta", 1.0), int("transB", 1)],
        )
    };
    let relu = |name: &str, x: &str, y: &str| node("Relu", name, &[x], &[y], vec![]);
    let pool = |name: &str, x: &str, y: &str| {
        node("MaxPool", name, &[x], &[y], window([2, 2], [2, 2], [0; 4]))
    };
    image_model(
        vec![
            conv("/conv1/Conv", "x", "conv1.weight", "conv1.bias", "c1", 2),
            relu("/relu1", "c1", "r1"),
            pool("/pool1", "r1", "p1"),
            conv("/conv2/Conv", "p1", "conv2.weight", "conv2.bias", "c2", 0),
            relu("/relu2", "c2", "r2"),
            pool("/pool2", "r2", "p2"),
            node("Flatten", "/flatten", &["p2"], &["f"], vec![int("axis", 1)]),
            gemm("/fc1/Gemm", "f", "fc1.weight", "fc1.bias", "h1"),
            relu("/relu3", "h1", "a1"),
            gemm("/fc2/Gemm", "a1", "fc2.weight", "fc2.bias", "h2"),
            relu("/relu4", "h2", "a2"),
            gemm("/fc3/Gemm", "a2", "fc3.weight", "fc3.bias", "y"),
        ],
        vec![
            weights("conv1.weight", &[6, 1, 5, 5], 0.3, 1),
            weights("conv1.bias", &[6], 0.1, 2),
            weights("conv2.weight", &[16, 6, 5, 5], 0.1, 3),
            weights("conv2.bias", &[16], 0.1, 4),
            weights("fc1.weight", &[120, 400], 0.05, 5),
            weights("fc1.bias", &[120], 0.1, 6),
            weights("fc2.weight", &[84, 120], 0.1, 7),
            weights("fc2.bias", &[84], 0.1, 8),
            weights("fc3.weight", &[10, 84], 0.1, 9),
            weights("fc3.bias", &[10], 0.1, 10),
        ],
        [1, 28, 28],
    )
}

#[test]
fn a_torch_lenet5_imports_as_kilns_lenet5_and_computes_what_the_graph_does() {
    let m = lenet5();
    let file = imported(&m);
    let arch = file.model.architecture();
    assert_eq!(arch.input_shape.as_deref(), Some(&[1, 28, 28][..]));
    let kinds: Vec<&str> = arch.layers.iter().map(LayerSpec::type_name).collect();
    assert_eq!(
        kinds,
        [
            "conv2d",
            "max_pool2d",
            "conv2d",
            "max_pool2d",
            "flatten",
            "dense",
            "dense",
            "dense"
        ]
    );
    assert!(matches!(
        arch.layers[0],
        LayerSpec::Conv2d {
            filters: 6,
            kernel_size: [5, 5],
            padding: Padding::Explicit([2, 2, 2, 2]),
            activation: Activation::Relu,
            use_bias: true,
            ..
        }
    ));
    // PyTorch's count for LeNet-5.
    assert_eq!(file.model.param_count(), 61_706);
    let diff = check_against_interpreter(&m, 5);
    assert!(diff < 1e-5, "max |onnx − kiln| = {diff}");
}

/// LeNet-5 with its Flatten (node 6) replaced by `nodes` (reading "p2", writing "f") and
/// `inits` added, at `opset`.
fn lenet5_flattened_by(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, opset: i64) -> ModelProto {
    let mut m = lenet5();
    if let Some(g) = m.graph.as_mut() {
        g.node.splice(6..7, nodes);
        g.initializer.extend(inits);
    }
    set_versions(&mut m, opset, 8);
    m
}

#[test]
fn lenet5_flattened_by_a_constant_reshape_or_by_torchscripts_size_arithmetic_imports() {
    // The dynamo exporter: Reshape to the constant [-1, 400].
    let constant = lenet5_flattened_by(
        vec![node(
            "Reshape",
            "/Reshape",
            &["p2", "flat_shape"],
            &["f"],
            vec![],
        )],
        vec![ints("flat_shape", &[2], &[-1, 400])],
        18,
    );
    // TorchScript's x.view(x.size(0), -1): Shape → Gather(0) → Unsqueeze(0) → Concat → Reshape.
    let computed = lenet5_flattened_by(
        vec![
            node("Shape", "/Shape", &["p2"], &["s"], vec![]),
            node(
                "Gather",
                "/Gather",
                &["s", "zero"],
                &["b"],
                vec![int("axis", 0)],
            ),
            node("Unsqueeze", "/Unsqueeze", &["b", "axis0"], &["b1"], vec![]),
            node(
                "Concat",
                "/Concat",
                &["b1", "minus1"],
                &["shape"],
                vec![int("axis", 0)],
            ),
            node("Reshape", "/Reshape", &["p2", "shape"], &["f"], vec![]),
        ],
        vec![
            ints("zero", &[], &[0]),
            ints("axis0", &[1], &[0]),
            ints("minus1", &[1], &[-1]),
        ],
        17,
    );
    for (form, m) in [("constant", constant), ("computed", computed.clone())] {
        let file = imported(&m);
        let kinds = kinds(&file);
        assert_eq!(kinds[4], "flatten", "{form}: {kinds:?}");
        assert_eq!(file.model.param_count(), 61_706, "{form}");
        let diff = check_against_interpreter(&m, 4);
        assert!(diff < 1e-5, "{form}: max |onnx − kiln| = {diff}");
    }
    let notes = crate::source::Source::read(&imported(&computed).meta)
        .expect("source")
        .notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("folded to the constant [0, -1]")),
        "{notes:?}"
    );
    // Gathering another dimension than the batch is not a flattening kiln can fold.
    let mut other = computed;
    if let Some(g) = other.graph.as_mut() {
        let at = g.initializer.len() - 3;
        g.initializer[at] = ints("zero", &[], &[1]);
    }
    let text = refusal(&other);
    assert!(text.contains("branches at \"p2\""), "{text}");
}

/// Conv → Relu → `ReduceMean` over the spatial axes (the dynamo exporter's global pooling),
/// `keepdims` 0 straight into a Gemm or 1 then Flatten; axes as an attribute (opset 17) or
/// an input (opset 18).
fn reduce_mean_cnn(keepdims: i64, opset: i64, axes: &[i64]) -> ModelProto {
    let mut reduce_inputs = vec!["r"];
    let mut attrs = vec![int("keepdims", keepdims)];
    if opset >= 18 {
        reduce_inputs.push("axes");
    } else {
        attrs.push(super::build::ints_attr("axes", axes));
    }
    let mut nodes = vec![
        node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            &["c"],
            window([3, 3], [1, 1], [1; 4]),
        ),
        node("Relu", "relu", &["c"], &["r"], vec![]),
        node("ReduceMean", "mean", &reduce_inputs, &["g"], attrs),
    ];
    let pooled = if keepdims == 0 {
        "g"
    } else {
        nodes.push(node(
            "Flatten",
            "flat",
            &["g"],
            &["f"],
            vec![int("axis", 1)],
        ));
        "f"
    };
    nodes.push(node(
        "Gemm",
        "fc",
        &[pooled, "wf", "bf"],
        &["y"],
        vec![int("transB", 1)],
    ));
    let mut m = image_model(
        nodes,
        vec![
            weights("w", &[3, 2, 3, 3], 0.4, 1),
            weights("b", &[3], 0.2, 2),
            weights("wf", &[4, 3], 0.5, 3),
            weights("bf", &[4], 0.1, 4),
            ints("axes", &[axes.len() as i64], axes),
        ],
        [2, 6, 5],
    );
    set_versions(&mut m, opset, 8);
    m
}

#[test]
fn reduce_mean_over_the_spatial_axes_is_global_average_pooling() {
    for (keepdims, opset, axes) in [
        (0, 18, &[2, 3][..]),
        (1, 18, &[-1, -2][..]),
        (0, 17, &[2, 3][..]),
        (1, 17, &[3, 2][..]),
    ] {
        let m = reduce_mean_cnn(keepdims, opset, axes);
        let file = imported(&m);
        let kinds = kinds(&file);
        assert_eq!(
            kinds,
            ["conv2d", "global_avg_pool2d", "dense"],
            "keepdims {keepdims}"
        );
        let diff = check_against_interpreter(&m, 3);
        assert!(diff < 1e-5, "keepdims {keepdims}, opset {opset}: {diff}");
    }
    let text = refusal(&reduce_mean_cnn(0, 18, &[1]));
    assert!(
        text.contains("\"mean\" (ReduceMean)") && text.contains("[1]"),
        "{text}"
    );
}

/// Conv (no bias) → BatchNormalization → Relu → AveragePool (padded, count_include_pad 0)
/// → Conv (grouped, strided, padded as SAME_UPPER pads) → MaxPool → Relu (after the pool) →
/// GlobalAveragePool → Flatten → Gemm → BatchNormalization (rows) → Softmax.
fn batch_norm_cnn() -> ModelProto {
    image_model(
        vec![
            node(
                "Conv",
                "conv0",
                &["x", "w0"],
                &["c0"],
                window([3, 3], [1, 1], [1, 1, 1, 1]),
            ),
            node(
                "BatchNormalization",
                "bn0",
                &["c0", "g0", "b0", "m0", "v0"],
                &["n0"],
                vec![float("epsilon", 1e-5), float("momentum", 0.9)],
            ),
            node("Relu", "relu0", &["n0"], &["r0"], vec![]),
            node(
                "AveragePool",
                "avg",
                &["r0"],
                &["a0"],
                window([2, 2], [1, 1], [0, 0, 1, 1]),
            ),
            node(
                "Conv",
                "conv1",
                &["a0", "w1", "bias1"],
                &["c1"],
                vec![
                    ints_attr("kernel_shape", [3, 3]),
                    ints_attr("strides", [2, 2]),
                    int("group", 2),
                    // SAME_UPPER's pads on a 9×8 input at stride 2.
                    ints_attr("pads", [1, 0, 1, 1]),
                ],
            ),
            node(
                "MaxPool",
                "max",
                &["c1"],
                &["p1"],
                window([2, 2], [2, 2], [0; 4]),
            ),
            node("Relu", "relu1", &["p1"], &["r1"], vec![]),
            node("GlobalAveragePool", "gap", &["r1"], &["g"], vec![]),
            node("Flatten", "flat", &["g"], &["f"], vec![int("axis", 1)]),
            node(
                "Gemm",
                "fc",
                &["f", "wf", "bf"],
                &["h"],
                vec![int("transB", 1)],
            ),
            node(
                "BatchNormalization",
                "bn1",
                &["h", "g1", "b1", "m1", "v1"],
                &["n1"],
                vec![],
            ),
            node("Softmax", "soft", &["n1"], &["y"], vec![int("axis", 1)]),
        ],
        vec![
            weights("w0", &[4, 2, 3, 3], 0.4, 1),
            positive("g0", &[4], 1),
            weights("b0", &[4], 0.2, 2),
            weights("m0", &[4], 0.3, 3),
            positive("v0", &[4], 2),
            weights("w1", &[6, 2, 3, 3], 0.3, 4),
            weights("bias1", &[6], 0.2, 5),
            weights("wf", &[3, 6], 0.5, 6),
            weights("bf", &[3], 0.1, 7),
            positive("g1", &[3], 3),
            weights("b1", &[3], 0.2, 8),
            weights("m1", &[3], 0.1, 9),
            positive("v1", &[3], 4),
        ],
        [2, 9, 8],
    )
}

#[test]
fn batch_norms_pools_groups_and_same_padding_compute_what_the_graph_does() {
    let m = batch_norm_cnn();
    let file = imported(&m);
    let layers = &file.model.architecture().layers;
    let kinds: Vec<&str> = layers.iter().map(LayerSpec::type_name).collect();
    assert_eq!(
        kinds,
        [
            "conv2d",
            "batch_norm",
            "avg_pool2d",
            "conv2d",
            "max_pool2d",
            "global_avg_pool2d",
            "dense"
        ]
    );
    // The batch norm after the last Gemm is folded into it, its softmax with it.
    // The Relu after the max pool is applied before it, at the convolution.
    assert_eq!(layers[3].activation(), Some(Activation::Relu));
    assert_eq!(layers[1].activation(), Some(Activation::Relu));
    assert_eq!(layers[6].activation(), Some(Activation::Softmax));
    let notes = crate::source::Source::read(&file.meta)
        .expect("source")
        .notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("after a MaxPool applied before it")),
        "{notes:?}"
    );
    let diff = check_against_interpreter(&m, 7);
    assert!(diff < 1e-5, "max |onnx − kiln| = {diff}");
}

#[test]
fn same_upper_is_kilns_same_padding() {
    let explicit = imported(&batch_norm_cnn());
    let same = imported(&edited(4, |n| {
        n.attribute.retain(|a| a.name() != "pads");
        set(n, string("auto_pad", "SAME_UPPER"));
    }));
    assert!(matches!(
        same.model.architecture().layers[3],
        LayerSpec::Conv2d {
            padding: Padding::Same,
            ..
        }
    ));
    let x = Array2::from_shape_fn((4, 2 * 9 * 8), |(i, j)| {
        ((i + j * 3) % 11) as f32 / 5.0 - 1.0
    });
    assert_eq!(
        explicit.model.predict(x.view()),
        same.model.predict(x.view())
    );
}

/// `batch_norm_cnn` with node `i` replaced by what `edit` makes of it.
fn edited(i: usize, edit: impl FnOnce(&mut NodeProto)) -> ModelProto {
    let mut m = batch_norm_cnn();
    if let Some(g) = m.graph.as_mut() {
        edit(&mut g.node[i]);
    }
    m
}

fn set(node: &mut NodeProto, a: AttributeProto) {
    node.attribute.retain(|old| old.name() != a.name());
    node.attribute.push(a);
}

#[test]
fn image_ops_kiln_would_compute_differently_are_refused_by_name() {
    let cases: Vec<(ModelProto, &[&str])> = vec![
        (
            edited(3, |n| set(n, int("count_include_pad", 1))),
            &["\"avg\" (AveragePool)", "count_include_pad"],
        ),
        (
            // 5 rows in 2×2 windows at stride 2: ceil_mode adds a partial third window.
            // (On the stride-1 average pool it would change nothing, and is accepted.)
            edited(5, |n| set(n, int("ceil_mode", 1))),
            &["\"max\"", "ceil_mode", "partial window"],
        ),
        (
            edited(4, |n| set(n, string("auto_pad", "SAME_LOWER"))),
            &["\"conv1\" (Conv)", "SAME_LOWER"],
        ),
        (
            edited(5, |n| set(n, ints_attr("dilations", [2, 2]))),
            &["\"max\" (MaxPool)", "dilated"],
        ),
        (
            edited(1, |n| set(n, int("training_mode", 1))),
            &["\"bn0\"", "training_mode"],
        ),
        (
            edited(4, |n| set(n, int("group", 3))),
            &["\"conv1\"", "3 group(s)", "2 channels"],
        ),
        (
            edited(4, |n| set(n, ints_attr("kernel_shape", [2, 2]))),
            &["\"conv1\"", "kernel_shape [2, 2]", "3×3"],
        ),
        (
            edited(3, |n| set(n, ints_attr("pads", [1, 1]))),
            &["\"avg\"", "pads [1, 1]"],
        ),
        (
            // Sizes from the file that would overflow kiln's arithmetic are refused, not wrapped.
            edited(4, |n| {
                set(n, super::build::ints_attr("pads", &[0, 0, 1 << 40, 0]))
            }),
            &["\"conv1\"", "pads", "from 0 to 65536"],
        ),
        (
            edited(4, |n| set(n, int("group", i64::MAX))),
            &["\"conv1\"", "group(s)"],
        ),
        (
            edited(4, |n| {
                set(n, super::build::ints_attr("dilations", &[1, i64::MAX]))
            }),
            &["\"conv1\"", "dilations", "from 1 to 65536"],
        ),
        (
            // An activation after an average pool has no layer to go to:
            // bn0 → avg → relu0 instead of bn0 → relu0 → avg.
            {
                let mut m = batch_norm_cnn();
                if let Some(g) = m.graph.as_mut() {
                    g.node[3].input[0] = "n0".into();
                    g.node[3].output[0] = "pa".into();
                    g.node[2].input[0] = "pa".into();
                    g.node[2].output[0] = "a0".into();
                }
                m
            },
            &["\"relu0\" (Relu)", "avg_pool2d"],
        ),
    ];
    for (i, (m, phrases)) in cases.into_iter().enumerate() {
        let Err(e) = import(&encode(&m), &ArchitectureLimits::default()) else {
            panic!("case {i} imported a graph that must be refused");
        };
        let text =
            e.0.iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
        for p in phrases {
            assert!(text.contains(p), "`{p}` not in: {text}");
        }
    }
}

#[test]
fn a_convolution_needs_an_input_of_known_size_and_a_4d_weight() {
    let mut unknown = lenet5();
    if let Some(g) = unknown.graph.as_mut() {
        g.input[0] = input_dims("x", &[None, Some(1), None, None]);
    }
    let text = refusal(&unknown);
    assert!(
        text.contains("\"/conv1/Conv\" (Conv)") && text.contains("does not know"),
        "{text}"
    );
    let mut conv1d = lenet5();
    if let Some(g) = conv1d.graph.as_mut() {
        g.initializer[0] = weights("conv1.weight", &[6, 1, 25], 0.3, 1);
    }
    let text = refusal(&conv1d);
    assert!(text.contains("2-D convolutions"), "{text}");
    // A Conv on rows (after a Flatten) is not an image layer.
    let mut on_rows = lenet5();
    if let Some(g) = on_rows.graph.as_mut() {
        g.node.insert(
            0,
            node("Flatten", "/pre", &["x"], &["xf"], vec![int("axis", 1)]),
        );
        g.node[1].input[0] = "xf".into();
    }
    let text = refusal(&on_rows);
    assert!(text.contains("rows [batch, features]"), "{text}");
}

#[test]
fn a_batch_norm_that_kiln_cannot_fold_is_refused_with_the_architecture_rule() {
    // BatchNormalization right after the input has no layer to fold into.
    let m = image_model(
        vec![
            node(
                "BatchNormalization",
                "bn",
                &["x", "g", "b", "m", "v"],
                &["n"],
                vec![],
            ),
            node(
                "Conv",
                "conv",
                &["n", "w"],
                &["c"],
                window([3, 3], [1, 1], [0; 4]),
            ),
            node("GlobalAveragePool", "gap", &["c"], &["p"], vec![]),
            node("Flatten", "flat", &["p"], &["f"], vec![]),
            node("Gemm", "fc", &["f", "wf"], &["y"], vec![int("transB", 1)]),
        ],
        vec![
            positive("g", &[1], 1),
            weights("b", &[1], 0.1, 1),
            weights("m", &[1], 0.1, 2),
            positive("v", &[1], 2),
            weights("w", &[2, 1, 3, 3], 0.3, 3),
            weights("wf", &[1, 2], 0.3, 4),
        ],
        [1, 5, 5],
    );
    let text = refusal(&m);
    assert!(
        text.contains("layer rules") && text.contains("layers[0]"),
        "{text}"
    );
}
