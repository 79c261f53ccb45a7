//! int8 dense layers as QDQ around `MatMul`, the form ONNX Runtime fuses into integer kernels.
//!
//! Weights: the stored i8 codes `[in, out]` → `DequantizeLinear(q, scale, zero_point)`, per
//! tensor (scalars) or per channel (`[out]`, `axis = 1`), written as u8 (`q + 128` and
//! `zero_point + 128`, the same values). ONNX Runtime fuses u8 activations × i8 weights into
//! its U8S8 kernels, which on x86 without VNNI (AVX2) add products in pairs with 16-bit
//! saturation: kiln's full-range codes saturated there, and an export picked another class
//! than kiln on 15–40 % of a test network's rows. Its U8U8 kernels do not saturate. Activations: static mode
//! `QuantizeLinear → DequantizeLinear` with the layer's calibrated u8 params; dynamic mode
//! `DynamicQuantizeLinear → DequantizeLinear` (asymmetric u8 over the batch's range with 0
//! representable, which is kiln's dynamic mode). Then `MatMul`, `Add(bias)`, the activation.
//!
//! This is kiln's arithmetic: kiln multiplies the same codes and rescales the i32
//! accumulator by `s_a·s_w[j]`; a fused static ReLU/Linear layer requantizes straight to the
//! next layer's input params, which is what the next layer's `QuantizeLinear` does here. The
//! differences are rounding: kiln rounds the bias to accumulator units and a fused
//! requantization ties away from zero, and kiln's dynamic scale is snapped to 18 significant
//! bits where `DynamicQuantizeLinear` divides exactly.

use super::dense;
use super::graph::{GraphBuilder, attr_int};
use kiln_nn::layers::dense::Dense;
use kiln_nn::optimize::quant::qmodel::{LayerQuant, QuantMode};
use kiln_nn::optimize::quant::scheme::QParams;

use super::super::proto::tensor_proto::DataType;

/// Adds int8 layer `lq` (dense `d`) on float value `x`; returns the layer's output value.
/// Zero points are those kiln validated (u8 activations, i8 weights); an out-of-range one
/// saturates, and the graph check would still pass, so callers validate first.
pub(super) fn layer(
    g: &mut GraphBuilder,
    lq: &LayerQuant,
    d: &Dense,
    mode: QuantMode,
    x: &str,
) -> String {
    let i = lq.layer;
    let x_dq = match (mode, lq.input) {
        (QuantMode::Static, Some(p)) => {
            let scale = g.floats(&format!("layers.{i}.input_scale"), &[], [p.scale]);
            let zp = g.initializer(
                &format!("layers.{i}.input_zero_point"),
                DataType::Uint8,
                &[],
                vec![u8_code(p)],
            );
            let q = g.op(
                "QuantizeLinear",
                &format!("layers.{i}.input_quantized"),
                &[x, &scale, &zp],
                Vec::new(),
            );
            g.op(
                "DequantizeLinear",
                &format!("layers.{i}.input_dequantized"),
                &[&q, &scale, &zp],
                Vec::new(),
            )
        }
        // Dynamic mode, and a static layer without params (rejected before export).
        _ => {
            let out = g.node(
                "DynamicQuantizeLinear",
                &format!("layers.{i}.input_quantized"),
                &[x],
                &["_scale", "_zero_point"],
                Vec::new(),
            );
            let [q, scale, zp] = &out[..] else {
                return x.to_string();
            };
            g.op(
                "DequantizeLinear",
                &format!("layers.{i}.input_dequantized"),
                &[q, scale, zp],
                Vec::new(),
            )
        }
    };
    let w = &lq.weight;
    let (rows, cols) = w.q.dim();
    let q = g.initializer(
        &format!("layers.{i}.weight"),
        DataType::Uint8,
        &[rows, cols],
        w.q.iter().map(|&v| u8_of_i8(v)).collect(),
    );
    let per_channel = w.params.len() > 1;
    let dims: &[usize] = if per_channel { &[w.params.len()] } else { &[] };
    let scale = g.floats(
        &format!("layers.{i}.weight_scale"),
        dims,
        w.params.iter().map(|p| p.scale),
    );
    let zp = g.initializer(
        &format!("layers.{i}.weight_zero_point"),
        DataType::Uint8,
        dims,
        w.params.iter().map(|&p| u8_of_i8(i8_code(p))).collect(),
    );
    let axis = if per_channel {
        vec![attr_int("axis", 1)]
    } else {
        Vec::new()
    };
    let w_dq = g.op(
        "DequantizeLinear",
        &format!("layers.{i}.weight_dequantized"),
        &[&q, &scale, &zp],
        axis,
    );
    let z = match dense::bias(g, i, d) {
        Some(bias) => {
            let product = g.op(
                "MatMul",
                &format!("layers.{i}.matmul"),
                &[&x_dq, &w_dq],
                Vec::new(),
            );
            g.op(
                "Add",
                &format!("layers.{i}.linear"),
                &[&product, &bias],
                Vec::new(),
            )
        }
        None => g.op(
            "MatMul",
            &format!("layers.{i}.linear"),
            &[&x_dq, &w_dq],
            Vec::new(),
        ),
    };
    dense::activation(g, i, d.activation, &z)
}

/// An activation zero point as the u8 ONNX stores.
fn u8_code(p: QParams) -> u8 {
    p.zero_point.clamp(0, 255) as u8
}

/// A weight zero point as the i8 kiln stores.
fn i8_code(p: QParams) -> i8 {
    p.zero_point.clamp(-128, 127) as i8
}

/// An i8 code as the u8 code `q + 128`. Code and zero point shift together, so
/// `(q − zp)·s`, all `DequantizeLinear` computes, is unchanged.
fn u8_of_i8(q: i8) -> u8 {
    (i16::from(q) + 128) as u8
}
