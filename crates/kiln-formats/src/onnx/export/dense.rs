//! fp32 dense layers (also pruned and compressed models, which decode to dense f32 weights):
//! `Gemm(x, W[in, out], b)` or, without a bias, `MatMul(x, W)`; then the activation node.

use super::graph::{GraphBuilder, attr_float, attr_int, attr_string};
use kiln_nn::layers::activation::{LEAKY_RELU_SLOPE, RELU6_CAP};
use kiln_nn::layers::dense::Dense;
use kiln_nn::spec::Activation;

/// Adds float layer `i` on value `x`; returns the layer's output value.
pub(super) fn layer(g: &mut GraphBuilder, i: usize, d: &Dense, x: &str) -> String {
    let w = &d.weight.matrix();
    let weight = g.floats(
        &format!("layers.{i}.weight"),
        &[w.nrows(), w.ncols()],
        w.iter().copied(),
    );
    let linear = format!("layers.{i}.linear");
    let z = match bias(g, i, d) {
        Some(bias) => g.op("Gemm", &linear, &[x, &weight, &bias], Vec::new()),
        None => g.op("MatMul", &linear, &[x, &weight], Vec::new()),
    };
    activation(g, i, d.activation, &z)
}

/// The layer's bias, if any, as a float initializer.
pub(super) fn bias(g: &mut GraphBuilder, i: usize, d: &Dense) -> Option<String> {
    d.bias.as_ref().map(|b| {
        g.floats(
            &format!("layers.{i}.bias"),
            &[b.matrix().len()],
            b.matrix().iter().copied(),
        )
    })
}

/// Adds `act` of layer `i` on `z` (nothing for `Linear`); returns the activated value.
pub(super) fn activation(g: &mut GraphBuilder, i: usize, act: Activation, z: &str) -> String {
    let (op, attrs) = match act {
        Activation::Linear => return z.to_string(),
        Activation::Relu => ("Relu", Vec::new()),
        Activation::Relu6 => {
            // Clip takes its bounds as inputs since opset 11.
            let lo = g.floats(&format!("layers.{i}.clip_min"), &[], [0.0]);
            let hi = g.floats(&format!("layers.{i}.clip_max"), &[], [RELU6_CAP]);
            return g.op(
                "Clip",
                &format!("layers.{i}.clip"),
                &[z, &lo, &hi],
                Vec::new(),
            );
        }
        Activation::LeakyRelu => ("LeakyRelu", vec![attr_float("alpha", LEAKY_RELU_SLOPE)]),
        Activation::Sigmoid => ("Sigmoid", Vec::new()),
        Activation::Tanh => ("Tanh", Vec::new()),
        Activation::Softmax => ("Softmax", vec![attr_int("axis", -1)]),
        Activation::Gelu => ("Gelu", vec![attr_string("approximate", "tanh")]),
        Activation::GeluErf => ("Gelu", Vec::new()),
    };
    let name = format!("layers.{i}.{}", op.to_lowercase());
    g.op(op, &name, &[z], attrs)
}
