//! [`QuantizedModel::simulate`]: the integer network written out plainly, as the reference for
//! the kernels, the packed layout and the folded zero-point algebra.
//!
//! Every int8 product is `Σ (a − za)·(w − zw)` summed in f64 (exact: the terms are integers far
//! below 2⁵³) straight from the stored i8 codes; codes come from [`QParams::quantize_u8`];
//! requantization is [`Multiplier::apply`](super::Multiplier::apply), which *is* the integer
//! arithmetic. Where the result turns float, the same f32 expressions as the fast path are used,
//! so the two agree exactly unless the fast path's integer work is wrong.

use ndarray::{Array2, ArrayView2};

use super::{
    LayerQuant, QParams, QuantMode, QuantizedModel, dynamic_params, multiplier, out_scale,
    quantize_bias,
};
use crate::layers::Layer;
use crate::layers::activation::{self, Activation};

/// Activations between layers: float, or u8 codes handed on by a fused static layer.
enum Act {
    Float(Array2<f32>),
    Codes(Array2<u8>, QParams),
}

pub(super) fn simulate(model: &QuantizedModel, x: ArrayView2<f32>) -> Array2<f32> {
    assert_eq!(x.ncols(), model.input_dim(), "input width");
    let base = &model.base;
    let dense: Vec<usize> = base.dense_layers().map(|(i, _)| i).collect();
    let quant = |layer: usize| model.layers.iter().find(|l| l.layer == layer);
    let mut act = Act::Float(x.to_owned());
    for (pos, &layer) in dense.iter().enumerate() {
        let Some(d) = base.layers().get(layer).and_then(Layer::as_dense) else {
            continue;
        };
        let Some(lq) = quant(layer) else {
            let h = match act {
                Act::Float(h) => h,
                // A fused layer is always followed by an int8 one.
                Act::Codes(c, p) => c.mapv(|v| p.dequantize(v as i32)),
            };
            act = Act::Float(d.forward(h.view()));
            continue;
        };
        let static_input = match model.config.mode {
            QuantMode::Static => lq.input,
            QuantMode::Dynamic => None,
        };
        let (codes, p) = match act {
            Act::Codes(c, p) => (c, p),
            Act::Float(h) => {
                let p = static_input.unwrap_or_else(|| dynamic_params(h.view()));
                (h.mapv(|v| p.quantize_u8(v)), p)
            }
        };
        let acc = integer_product(&codes, p.zero_point, lq);
        let bias: Vec<f32> = d.bias.as_ref().map_or_else(
            || vec![0.0; d.units()],
            |b| b.matrix().iter().copied().collect(),
        );
        let next = dense
            .get(pos + 1)
            .and_then(|&n| quant(n))
            .and_then(|n| n.input);
        let fusable = matches!(d.activation, Activation::Relu | Activation::Linear);
        act = match (static_input, next) {
            (Some(_), Some(next)) if fusable => {
                let floor = if d.activation == Activation::Relu {
                    next.zero_point
                } else {
                    0
                };
                let codes = Array2::from_shape_fn(acc.dim(), |(i, j)| {
                    let sw = lq.weight.params_for(j).scale;
                    let unit = out_scale(p.scale, sw);
                    let total = acc[(i, j)] as i64 + quantize_bias(bias[j], unit) as i64;
                    let m = multiplier(f64::from(p.scale) * f64::from(sw) / f64::from(next.scale));
                    let code = m.apply(total as i32).saturating_add(next.zero_point);
                    code.clamp(floor, 255) as u8
                });
                Act::Codes(codes, next)
            }
            (Some(_), _) => {
                let mut z = Array2::from_shape_fn(acc.dim(), |(i, j)| {
                    let unit = out_scale(p.scale, lq.weight.params_for(j).scale);
                    let total = acc[(i, j)] as i64 + quantize_bias(bias[j], unit) as i64;
                    total as i32 as f32 * unit
                });
                activation::apply_inplace(d.activation, z.view_mut());
                Act::Float(z)
            }
            (None, _) => {
                let mut z = Array2::from_shape_fn(acc.dim(), |(i, j)| {
                    let unit = out_scale(p.scale, lq.weight.params_for(j).scale);
                    acc[(i, j)] as i64 as i32 as f32 * unit + bias[j]
                });
                activation::apply_inplace(d.activation, z.view_mut());
                Act::Float(z)
            }
        };
    }
    match act {
        Act::Float(h) => h,
        Act::Codes(c, p) => c.mapv(|v| p.dequantize(v as i32)),
    }
}

/// `Σ_k (a[i,k] − za)·(w[k,j] − zw[j])` for every `(i, j)`, in f64, as exact integers.
fn integer_product(codes: &Array2<u8>, za: i32, lq: &LayerQuant) -> Array2<f64> {
    let w = &lq.weight.q;
    let (m, (k, n)) = (codes.nrows(), w.dim());
    Array2::from_shape_fn((m, n), |(i, j)| {
        let zw = lq.weight.params_for(j).zero_point;
        (0..k)
            .map(|t| {
                let a = f64::from(i32::from(codes[(i, t)]) - za);
                let b = f64::from(i32::from(w[(t, j)]) - zw);
                a * b
            })
            .sum()
    })
}
