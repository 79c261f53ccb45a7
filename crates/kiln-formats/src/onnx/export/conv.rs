//! Image layers, channels first as ONNX's own operators are: `Conv` (weights
//! `[filters, channels / group, kh, kw]`, kiln's own layout), `MaxPool`,
//! `AveragePool` (padding not counted, ONNX's default), `GlobalAveragePool`,
//! `BatchNormalization` for a batch norm that could not be folded, and
//! `Flatten` where kiln's rows meet a dense layer.
//!
//! kiln resolves every padding to explicit `[top, left, bottom, right]`
//! amounts, which is also the order of ONNX's `pads`, so `same` is written as
//! the pads it became and no reader has to agree on how `SAME_UPPER` splits.

use super::dense;
use super::graph::{GraphBuilder, attr_float, attr_int, attr_ints};
use kiln_nn::kernels::conv::Conv2dGeometry;
use kiln_nn::layers::activation::Activation;
use kiln_nn::layers::batch_norm::BatchNorm;
use kiln_nn::layers::conv2d::Conv2d;
use kiln_nn::layers::pooling::{Pool2d, PoolKind};

/// A value in the graph and whether it is still an image (`[batch, C, H, W]`)
/// rather than rows (`[batch, features]`).
#[derive(Debug, Clone)]
pub(super) struct GraphValue {
    pub name: String,
    /// `[C, H, W]` while an image; `None` once rows.
    pub image: Option<[usize; 3]>,
}

impl GraphValue {
    pub fn rows(name: String) -> Self {
        Self { name, image: None }
    }
}

/// `x` as rows: itself, or a `Flatten` of the image (kiln's rows are the
/// channels-first memory of the image, which is what `Flatten` gives).
pub(super) fn rows(g: &mut GraphBuilder, i: usize, x: &GraphValue) -> String {
    match x.image {
        None => x.name.clone(),
        Some(_) => g.op(
            "Flatten",
            &format!("layers.{i}.flatten"),
            &[&x.name],
            vec![attr_int("axis", 1)],
        ),
    }
}

fn window_attrs(geometry: &Conv2dGeometry) -> Vec<super::super::proto::AttributeProto> {
    vec![
        attr_ints("kernel_shape", geometry.kernel),
        attr_ints("strides", geometry.strides),
        attr_ints("pads", geometry.pads),
    ]
}

fn image_out(name: String, g: &Conv2dGeometry, channels: usize) -> GraphValue {
    GraphValue {
        name,
        image: Some([channels, g.out_h, g.out_w]),
    }
}

/// Conv layer `i` on image `x`, with its activation.
pub(super) fn conv(g: &mut GraphBuilder, i: usize, c: &Conv2d, x: &GraphValue) -> GraphValue {
    let w = c.weight.value();
    let weight = g.floats(&format!("layers.{i}.weight"), w.shape(), w.iter().copied());
    let bias = c.bias.as_ref().map(|b| {
        let b = b.matrix();
        g.floats(&format!("layers.{i}.bias"), &[b.len()], b.iter().copied())
    });
    let geo = &c.geometry;
    let mut attrs = window_attrs(geo);
    attrs.push(attr_ints("dilations", geo.dilation));
    attrs.push(attr_int(
        "group",
        i64::try_from(geo.groups).unwrap_or(i64::MAX),
    ));
    let mut inputs = vec![x.name.as_str(), weight.as_str()];
    inputs.extend(bias.as_deref());
    let z = g.op("Conv", &format!("layers.{i}.conv"), &inputs, attrs);
    let z = image_out(z, geo, geo.filters);
    activation(g, i, c.activation, z)
}

/// Max or average pool layer `i` on image `x`.
pub(super) fn pool(g: &mut GraphBuilder, i: usize, p: &Pool2d, x: &GraphValue) -> GraphValue {
    let (op, name) = match p.kind {
        PoolKind::Max => ("MaxPool", "max_pool"),
        PoolKind::Avg => ("AveragePool", "avg_pool"),
    };
    let geo = &p.geometry;
    let y = g.op(
        op,
        &format!("layers.{i}.{name}"),
        &[&x.name],
        window_attrs(geo),
    );
    image_out(y, geo, geo.channels)
}

/// `GlobalAveragePool` gives `[batch, C, 1, 1]`; kiln's layer gives `[C]`
/// features, so the result is flattened to rows.
pub(super) fn global_avg_pool(g: &mut GraphBuilder, i: usize, x: &GraphValue) -> GraphValue {
    let y = g.op(
        "GlobalAveragePool",
        &format!("layers.{i}.global_avg_pool"),
        &[&x.name],
        Vec::new(),
    );
    let flat = g.op(
        "Flatten",
        &format!("layers.{i}.flatten"),
        &[&y],
        vec![attr_int("axis", 1)],
    );
    GraphValue::rows(flat)
}

/// A batch norm with its running statistics (inference), over the channel axis
/// of an image or the features of rows: ONNX's axis 1 in both.
pub(super) fn batch_norm(
    g: &mut GraphBuilder,
    i: usize,
    bn: &BatchNorm,
    x: &GraphValue,
) -> GraphValue {
    let c = bn.channels();
    let mut vector =
        |what: &str, values: Vec<f32>| g.floats(&format!("layers.{i}.{what}"), &[c], values);
    let scale = vector("gamma", bn.params[0].matrix().iter().copied().collect());
    let shift = vector("beta", bn.params[1].matrix().iter().copied().collect());
    let mean = vector("running_mean", bn.running_mean.iter().copied().collect());
    let var = vector("running_var", bn.running_var.iter().copied().collect());
    let y = g.op(
        "BatchNormalization",
        &format!("layers.{i}.batch_norm"),
        &[&x.name, &scale, &shift, &mean, &var],
        vec![attr_float("epsilon", bn.epsilon)],
    );
    let y = GraphValue {
        name: y,
        image: x.image,
    };
    activation(g, i, bn.activation, y)
}

/// The activation of layer `i` on `z`. kiln's softmax spans a sample's every
/// value; ONNX's spans one axis, so on an image it runs on the flattened rows
/// and the result is reshaped back.
pub(super) fn activation(
    g: &mut GraphBuilder,
    i: usize,
    act: Activation,
    z: GraphValue,
) -> GraphValue {
    match (act, z.image) {
        (Activation::Softmax, Some([c, h, w])) => {
            let flat = rows(g, i, &z);
            let soft = dense::activation(g, i, act, &flat);
            let dims = [0, c, h, w].map(|d| i64::try_from(d).unwrap_or(i64::MAX));
            let shape = g.int64s(&format!("layers.{i}.shape"), &dims);
            let name = g.op(
                "Reshape",
                &format!("layers.{i}.reshape"),
                &[&soft, &shape],
                Vec::new(),
            );
            GraphValue { name, ..z }
        }
        _ => GraphValue {
            name: dense::activation(g, i, act, &z.name),
            ..z
        },
    }
}
