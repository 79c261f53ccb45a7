use super::*;

#[test]
fn the_output_layer_implies_the_task_of_an_imported_network() {
    use crate::data::Task;
    let with_head = |units: usize, activation: Activation| Architecture {
        input_dim: 4,
        input_shape: None,
        layers: vec![
            LayerSpec::Dense {
                units,
                activation,
                use_bias: true,
            },
            LayerSpec::Dropout { rate: 0.1 },
        ],
    };
    assert_eq!(
        with_head(1, Activation::Sigmoid).implied_task(),
        Some(Task::Binary)
    );
    assert_eq!(
        with_head(3, Activation::Softmax).implied_task(),
        Some(Task::Multiclass)
    );
    assert_eq!(
        with_head(1, Activation::Linear).implied_task(),
        Some(Task::Regression)
    );
    assert_eq!(with_head(2, Activation::Sigmoid).implied_task(), None);
    assert_eq!(with_head(1, Activation::Softmax).implied_task(), None);
    assert_eq!(with_head(4, Activation::Relu).implied_task(), None);
}

fn seed() -> Architecture {
    serde_json::from_str(
        r#"{"input_dim": 100, "layers": [
            {"type": "dense", "units": 64, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 32, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
    )
    .expect("seed architecture parses")
}

#[test]
fn the_seed_architecture_has_the_keras_parameter_count() {
    // Keras model.summary(): 6464 + 2080 + 33.
    assert_eq!(seed().param_count(), 8577);
    assert_eq!(seed().output_dim(), 1);
    assert_eq!(seed().output_activation(), Activation::Sigmoid);
    assert!(seed().check(&ArchitectureLimits::default()).is_ok());
}

#[test]
fn an_unknown_layer_type_or_activation_does_not_parse() {
    let bad_layer = r#"{"input_dim": 2, "layers": [{"type": "conv9d", "units": 1}]}"#;
    assert!(serde_json::from_str::<Architecture>(bad_layer).is_err());
    let bad_act =
        r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 1, "activation": "swishy"}]}"#;
    assert!(serde_json::from_str::<Architecture>(bad_act).is_err());
}

#[test]
fn zero_units_and_a_dropout_rate_of_one_name_their_fields() {
    let arch: Architecture = serde_json::from_str(
        r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 0}, {"type": "dropout", "rate": 1.0}]}"#,
    )
    .expect("parses");
    let err = arch
        .check(&ArchitectureLimits::default())
        .expect_err("must be rejected");
    let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"layers[0].units"), "{fields:?}");
    assert!(fields.contains(&"layers[1].rate"), "{fields:?}");
}

fn parse(json: &str) -> Architecture {
    serde_json::from_str(json).expect("parses")
}

fn fields(arch: &Architecture) -> Vec<(String, String)> {
    match arch.check(&ArchitectureLimits::default()) {
        Ok(()) => vec![],
        Err(e) => e.0.into_iter().map(|f| (f.field, f.message)).collect(),
    }
}

const LENET5: &str = r#"{"input_shape": [1, 28, 28], "layers": [
    {"type": "conv2d", "filters": 6, "kernel_size": 5, "activation": "relu"},
    {"type": "max_pool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 16, "kernel_size": [5, 5], "activation": "relu"},
    {"type": "max_pool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 120, "activation": "relu"},
    {"type": "dense", "units": 84, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"}]}"#;

#[test]
fn lenet5_walks_to_the_pytorch_shapes_and_parameter_count() {
    let arch = parse(LENET5);
    assert_eq!(arch.input_dim, 784);
    assert!(fields(&arch).is_empty(), "{:?}", fields(&arch));
    let shapes: Vec<Vec<usize>> = arch
        .shapes()
        .expect("chains")
        .iter()
        .map(|s| s.dims().to_vec())
        .collect();
    assert_eq!(
        shapes,
        vec![
            vec![6, 24, 24],
            vec![6, 12, 12],
            vec![16, 8, 8],
            vec![16, 4, 4],
            vec![256],
            vec![120],
            vec![84],
            vec![10]
        ]
    );
    // torch: 156 + 2416 + 30840 + 10164 + 850.
    assert_eq!(arch.param_count(), 44_426);
    assert_eq!(arch.output_dim(), 10);
}

#[test]
fn an_architecture_round_trips_through_json_with_its_defaults_spelled_out() {
    let arch = parse(LENET5);
    let json = serde_json::to_string(&arch).expect("serializes");
    assert!(json.contains(r#""input_shape":[1,28,28]"#), "{json}");
    assert!(json.contains(r#""padding":"valid""#), "{json}");
    assert_eq!(parse(&json), arch);
    let explicit = parse(
        r#"{"input_shape": [3, 8, 8], "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": [1, 2], "groups": 3},
        {"type": "batch_norm", "activation": "relu"},
        {"type": "global_avg_pool2d"}, {"type": "dense", "units": 1}]}"#,
    );
    let LayerSpec::Conv2d { padding, .. } = explicit.layers[0] else {
        panic!("conv2d")
    };
    assert_eq!(padding, Padding::Explicit([1, 2, 1, 2]));
    assert_eq!(
        parse(&serde_json::to_string(&explicit).expect("json")),
        explicit
    );
    assert!(fields(&explicit).is_empty(), "{:?}", fields(&explicit));
    // depthwise 3×(1·3·3) + 3 bias, batch norm 2·3, dense 3 + 1.
    assert_eq!(explicit.param_count(), 30 + 6 + 4);
}

#[test]
fn input_dim_and_input_shape_must_agree() {
    let both = r#"{"input_dim": 784, "input_shape": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]}"#;
    assert_eq!(parse(both).input_dim, 784);
    let wrong = r#"{"input_dim": 100, "input_shape": [1, 28, 28], "layers": []}"#;
    assert!(serde_json::from_str::<Architecture>(wrong).is_err());
    let neither = r#"{"layers": [{"type": "dense", "units": 1}]}"#;
    assert!(serde_json::from_str::<Architecture>(neither).is_err());
    let flat = parse(r#"{"input_shape": [5], "layers": [{"type": "dense", "units": 1}]}"#);
    assert_eq!((flat.input_dim, flat.input_shape), (5, None));
}

#[test]
fn a_field_of_another_layer_type_is_refused_by_name() {
    let err = serde_json::from_str::<Architecture>(
        r#"{"input_shape": [1, 8, 8], "layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3, "rate": 0.5}]}"#,
    )
    .expect_err("rate is a dropout field")
    .to_string();
    assert!(err.contains("does not take `rate`"), "{err}");
    let err = serde_json::from_str::<Architecture>(
        r#"{"input_shape": [1, 8, 8], "layers": [{"type": "conv2d", "filters": 2}]}"#,
    )
    .expect_err("no kernel")
    .to_string();
    assert!(err.contains("kernel_size"), "{err}");
}

#[test]
fn bad_windows_and_shapes_name_the_layer_and_the_shapes() {
    let with = |layers: &str| {
        parse(&format!(
            r#"{{"input_shape": [3, 6, 6], "layers": [{layers}]}}"#
        ))
    };
    let head = r#"{"type": "flatten"}, {"type": "dense", "units": 2}"#;
    let too_large = with(&format!(
        r#"{{"type": "conv2d", "filters": 2, "kernel_size": 7}}, {head}"#
    ));
    let f = fields(&too_large);
    assert_eq!(f[0].0, "layers[0].kernel_size", "{f:?}");
    assert!(f[0].1.contains("[3, 6, 6]"), "{f:?}");
    let stride0 = with(&format!(
        r#"{{"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": 0}}, {head}"#
    ));
    assert_eq!(fields(&stride0)[0].0, "layers[0].strides");
    let groups = with(&format!(
        r#"{{"type": "conv2d", "filters": 4, "kernel_size": 3, "groups": 2}}, {head}"#
    ));
    assert_eq!(fields(&groups)[0].0, "layers[0].groups");
    let dense_on_image = with(r#"{"type": "dense", "units": 2}"#);
    let f = fields(&dense_on_image);
    assert_eq!(f[0].0, "layers[0]");
    assert!(f[0].1.contains("flatten"), "{f:?}");
    let pool_on_flat = parse(
        r#"{"input_dim": 9, "layers": [{"type": "max_pool2d", "pool_size": 2}, {"type": "dense", "units": 1}]}"#,
    );
    assert_eq!(fields(&pool_on_flat)[0].0, "layers[0]");
    let conv_head = with(r#"{"type": "conv2d", "filters": 2, "kernel_size": 3}"#);
    assert_eq!(fields(&conv_head)[0].0, "layers[0]");
}

#[test]
fn a_batch_norm_kiln_cannot_fold_is_refused() {
    let after_relu = parse(
        r#"{"input_shape": [1, 6, 6], "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
        {"type": "batch_norm"}, {"type": "flatten"}, {"type": "dense", "units": 1}]}"#,
    );
    let f = fields(&after_relu);
    assert_eq!(f[0].0, "layers[1]", "{f:?}");
    assert!(f[0].1.contains("folded"), "{f:?}");
    let first = parse(
        r#"{"input_dim": 4, "layers": [{"type": "batch_norm"}, {"type": "dense", "units": 1}]}"#,
    );
    assert_eq!(fields(&first)[0].0, "layers[0]");
    let bad_momentum = parse(
        r#"{"input_dim": 4, "layers": [{"type": "dense", "units": 3}, {"type": "batch_norm", "momentum": 1.5}, {"type": "dense", "units": 1}]}"#,
    );
    assert_eq!(fields(&bad_momentum)[0].0, "layers[1].momentum");
}
