//! The image layers of a graph, channels first as ONNX's operators are: `Conv`
//! (2-D, weights `[filters, channels / group, kh, kw]`, kiln's own layout),
//! `MaxPool`, `AveragePool`, `GlobalAveragePool` and `BatchNormalization` (over
//! an image's channels or a row's features). Each becomes the kiln layer that
//! computes the same values; anything that would compute something else (ceil
//! rounding that adds a window, padding counted in an average, dilated pools,
//! training-mode statistics) is refused by name.

use ndarray::{Array1, ArrayD, IxDyn};

use super::{Imported, Other, Walk, attr, attr_f, attr_i};
use crate::onnx::import::{invalid, tensor};
use crate::onnx::proto::NodeProto;
use kiln_nn::layers::shape::Shape;
use kiln_nn::spec::{Activation, LayerSpec, Padding, shapes::layer_output_shape};
use kiln_nn::validation::Invalid;

/// The largest pad, stride, dilation or window side kiln reads: far beyond any real
/// network's, small enough that no size computed from them overflows.
const MAX_PAD: i64 = 1 << 16;

/// Whether `act` never decreases, so that applying it after a max pool gives
/// what applying it before does.
pub(super) fn commutes_with_max(act: Activation) -> bool {
    matches!(
        act,
        Activation::Relu
            | Activation::Relu6
            | Activation::LeakyRelu
            | Activation::Sigmoid
            | Activation::Tanh
    )
}

/// A 2-D attribute such as `strides`: two values from 1 to [`MAX_PAD`], or `default`.
fn pair(node: &NodeProto, desc: &str, name: &str, default: usize) -> Result<[usize; 2], Invalid> {
    let Some(a) = attr(node, name) else {
        return Ok([default; 2]);
    };
    match a.ints.as_slice() {
        [h, w] if [h, w].iter().all(|v| (1..=MAX_PAD).contains(*v)) => {
            Ok([*h, *w].map(|v| usize::try_from(v).unwrap_or(0)))
        }
        other => Err(invalid(format!(
            "{desc}: {name} is {other:?}; kiln reads two values from 1 to {MAX_PAD} (a 2-D window)"
        ))),
    }
}

/// `auto_pad` and `pads` as kiln's padding. kiln's `same` is ONNX's `SAME_UPPER`.
fn padding(node: &NodeProto, desc: &str) -> Result<Padding, Invalid> {
    let auto = attr(node, "auto_pad").map_or(&b"NOTSET"[..], |a| a.s());
    match auto {
        b"VALID" => return Ok(Padding::Valid),
        b"SAME_UPPER" => return Ok(Padding::Same),
        b"NOTSET" | b"" => {}
        other => {
            return Err(invalid(format!(
                "{desc}: auto_pad \"{}\" is not supported; kiln reads NOTSET (explicit pads), \
                 VALID and SAME_UPPER",
                String::from_utf8_lossy(other)
            )));
        }
    }
    let Some(a) = attr(node, "pads") else {
        return Ok(Padding::Valid);
    };
    match a.ints.as_slice() {
        // ONNX's order is [top, left, bottom, right], kiln's too.
        &[t, l, b, r] if [t, l, b, r].iter().all(|p| (0..=MAX_PAD).contains(p)) => {
            let p = [t, l, b, r].map(|v| usize::try_from(v).unwrap_or(0));
            Ok(if p == [0; 4] {
                Padding::Valid
            } else {
                Padding::Explicit(p)
            })
        }
        other => Err(invalid(format!(
            "{desc}: pads {other:?}; kiln reads four values [top, left, bottom, right] from 0 to \
             {MAX_PAD}"
        ))),
    }
}

impl Walk<'_, '_> {
    /// The `[C, H, W]` an image layer reads.
    fn image_in(&self, desc: &str) -> Result<[usize; 3], Invalid> {
        match self.image {
            Some(image) => Ok(image),
            None if self.flat => Err(invalid(format!(
                "{desc} reads \"{}\", rows [batch, features]; kiln's image layers take [batch, \
                 channels, height, width]",
                self.cur
            ))),
            None => Err(invalid(format!(
                "{desc} reads \"{}\", an image whose size kiln does not know; kiln needs the graph \
                 input declared as [batch, channels, height, width] with fixed channels, height \
                 and width, and no global pooling before an image layer",
                self.cur
            ))),
        }
    }

    /// Checks that nothing reads outputs after the first (pool indices, training statistics).
    fn only_first_output(&self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        match node.output.iter().skip(1).find(|o| {
            !o.is_empty() && (!self.graph.consumers(o).is_empty() || self.graph.is_graph_output(o))
        }) {
            Some(o) => Err(invalid(format!(
                "{desc}: its output \"{o}\" is used; kiln computes only the first output of {}",
                node.op_type()
            ))),
            None => Ok(()),
        }
    }

    /// Adds `spec` on the current value, with its output shape from kiln's own shape walk.
    fn push_layer(
        &mut self,
        desc: &str,
        input: &[usize],
        spec: LayerSpec,
        tensors: Vec<(&'static str, ArrayD<f32>)>,
    ) -> Result<(), Invalid> {
        let out = layer_output_shape(&spec, &Shape::new(input.to_vec()))
            .map_err(|e| invalid(format!("{desc}: {e}")))?;
        match *out.dims() {
            [c, h, w] => self.image = Some([c, h, w]),
            _ => self.image = None,
        }
        self.width = Some(out.size());
        self.layers.push(Imported::Other(Other {
            spec,
            tensors,
            activated_by: None,
        }));
        Ok(())
    }

    /// kiln's `flatten` where an image becomes rows (ONNX's Flatten and kiln's
    /// are the same channels-first order).
    pub(super) fn flatten_image(&mut self) {
        if let Some([c, h, w]) = self.image.take() {
            self.width = Some(c * h * w);
            self.layers.push(Imported::Other(Other {
                spec: LayerSpec::Flatten,
                tensors: Vec::new(),
                activated_by: None,
            }));
        }
    }

    pub(super) fn conv(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        let (w, b) = match node.input.as_slice() {
            [_, w] => (w, None),
            [_, w, b] => (w, Some(b).filter(|b| !b.is_empty())),
            _ => {
                return Err(invalid(format!(
                    "{desc}: Conv needs inputs X, W and optionally B"
                )));
            }
        };
        self.data_input(node, desc)?;
        let [c, h, width] = self.image_in(desc)?;
        let weight = self.constant(desc, w, "W")?;
        let &[filters, per_group, kh, kw] = weight.dims.as_slice() else {
            return Err(invalid(format!(
                "{desc}: weight \"{w}\" has shape {:?}; kiln reads 2-D convolutions, weights \
                 [filters, channels / group, kh, kw]",
                weight.dims
            )));
        };
        let groups = usize::try_from(attr_i(node, "group", 1)).unwrap_or(0);
        if groups == 0 || per_group.checked_mul(groups) != Some(c) {
            return Err(invalid(format!(
                "{desc}: weight \"{w}\" takes {per_group} channels per group in {groups} group(s), \
                 but \"{}\" has {c} channels",
                self.cur
            )));
        }
        let kernel = pair(node, desc, "kernel_shape", 0)?;
        if attr(node, "kernel_shape").is_some() && kernel != [kh, kw] {
            return Err(invalid(format!(
                "{desc}: kernel_shape {kernel:?} disagrees with the weight's {kh}×{kw}"
            )));
        }
        let bias = match b {
            Some(b) => Some(self.bias(desc, b, "B", filters)?),
            None => None,
        };
        let spec = LayerSpec::Conv2d {
            filters,
            kernel_size: [kh, kw],
            strides: pair(node, desc, "strides", 1)?,
            padding: padding(node, desc)?,
            dilation: pair(node, desc, "dilations", 1)?,
            groups,
            activation: Activation::Linear,
            use_bias: bias.is_some(),
        };
        let weight = ArrayD::from_shape_vec(IxDyn(&weight.dims), weight.values)
            .map_err(|e| invalid(format!("{desc}: weight \"{w}\": {e}")))?;
        let mut tensors = vec![("weight", weight)];
        tensors.extend(bias.map(|b| ("bias", b.into_dyn())));
        self.push_layer(desc, &[c, h, width], spec, tensors)
    }

    /// `MaxPool` or `AveragePool`.
    pub(super) fn pool(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        self.only_first_output(node, desc)?;
        let input = self.image_in(desc)?;
        let max = node.op_type() == "MaxPool";
        let Some(_) = attr(node, "kernel_shape") else {
            return Err(invalid(format!("{desc}: kernel_shape is missing")));
        };
        let pool_size = pair(node, desc, "kernel_shape", 1)?;
        let strides = pair(node, desc, "strides", 1)?;
        let padding = padding(node, desc)?;
        if pair(node, desc, "dilations", 1)? != [1, 1] {
            return Err(invalid(format!(
                "{desc}: a dilated pool; kiln's pools have dilation 1"
            )));
        }
        if !max && attr_i(node, "count_include_pad", 0) != 0 && padding != Padding::Valid {
            return Err(invalid(format!(
                "{desc}: count_include_pad = 1 averages padding in; kiln's avg_pool2d counts only \
                 positions inside the input (PyTorch's count_include_pad=False)"
            )));
        }
        if attr_i(node, "ceil_mode", 0) != 0
            && let Padding::Valid | Padding::Explicit(_) = padding
        {
            let [t, l, b, r] = match padding {
                Padding::Explicit(p) => p,
                _ => [0; 4],
            };
            let exact = |size: usize, before: usize, after: usize, k: usize, s: usize| {
                size.checked_add(before)
                    .and_then(|s| s.checked_add(after))
                    .and_then(|s| s.checked_sub(k))
                    .is_some_and(|d| d % s == 0)
            };
            if !(exact(input[1], t, b, pool_size[0], strides[0])
                && exact(input[2], l, r, pool_size[1], strides[1]))
            {
                return Err(invalid(format!(
                    "{desc}: ceil_mode = 1 adds a partial window here; kiln's pools round the \
                     output size down (ceil_mode = 0)"
                )));
            }
        }
        let spec = if max {
            LayerSpec::MaxPool2d {
                pool_size,
                strides,
                padding,
            }
        } else {
            LayerSpec::AvgPool2d {
                pool_size,
                strides,
                padding,
            }
        };
        self.push_layer(desc, &input, spec, Vec::new())
    }

    /// `GlobalAveragePool` gives `[batch, C, 1, 1]`; kiln's layer gives `[C]`
    /// features, so the Flatten or Reshape exporters put after it leaves no layer.
    pub(super) fn global_pool(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        let input = self.image_in(desc)?;
        self.push_layer(desc, &input, LayerSpec::GlobalAvgPool2d, Vec::new())?;
        // ONNX's value is still rank 4 until a Flatten.
        self.flat = false;
        Ok(())
    }

    /// `ReduceMean` over the two spatial axes (the dynamo exporter's global average
    /// pooling): kiln's `global_avg_pool2d`, flat at once when `keepdims` is 0.
    pub(super) fn reduce_mean(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        let input = self.image_in(desc)?;
        // Axes are an attribute before opset 18, an optional input since.
        let axes = match node.input.get(1).filter(|n| !n.is_empty()) {
            Some(name) => match self.graph.constant(name) {
                Some(t) => tensor::ints(t, desc)?.values,
                None => {
                    return Err(invalid(format!(
                        "{desc}: axes \"{name}\" are computed, not a constant"
                    )));
                }
            },
            None => attr(node, "axes")
                .map(|a| a.ints.clone())
                .unwrap_or_default(),
        };
        let mut spatial: Vec<i64> = axes
            .iter()
            .map(|&a| if a < 0 { a + 4 } else { a })
            .collect();
        spatial.sort_unstable();
        if spatial != [2, 3] {
            return Err(invalid(format!(
                "{desc}: ReduceMean over axes {axes:?}; kiln reads it only over the two spatial \
                 axes [2, 3] (global average pooling)"
            )));
        }
        self.push_layer(desc, &input, LayerSpec::GlobalAvgPool2d, Vec::new())?;
        // keepdims (default 1) leaves ONNX's value rank 4 until a Flatten.
        self.flat = attr_i(node, "keepdims", 1) == 0;
        Ok(())
    }

    /// Inference-mode `BatchNormalization` over an image's channels or a row's features.
    pub(super) fn batch_norm(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        self.only_first_output(node, desc)?;
        if attr_i(node, "training_mode", 0) != 0 {
            return Err(invalid(format!(
                "{desc}: training_mode = 1; kiln imports inference graphs (running statistics)"
            )));
        }
        let (input, channels) = match (self.image, self.flat, self.width) {
            (Some(image), _, _) => (image.to_vec(), image[0]),
            (None, true, Some(features)) => (vec![features], features),
            _ => {
                return Err(invalid(format!(
                    "{desc} reads \"{}\", whose channels kiln does not know; declare the graph \
                     input's dims",
                    self.cur
                )));
            }
        };
        let [_, scale, shift, mean, var] = node.input.as_slice() else {
            return Err(invalid(format!(
                "{desc}: BatchNormalization needs inputs X, scale, B, input_mean and input_var"
            )));
        };
        let mut vector = |name: &str, role: &str| -> Result<Array1<f32>, Invalid> {
            let v = self.constant(desc, name, role)?;
            if v.values.len() != channels || v.dims.len() != 1 {
                return Err(invalid(format!(
                    "{desc}: {role} \"{name}\" has shape {:?}; kiln needs [{channels}], one value \
                     per channel",
                    v.dims
                )));
            }
            Ok(Array1::from_vec(v.values))
        };
        let gamma = vector(scale, "scale")?;
        let beta = vector(shift, "B")?;
        let mean = vector(mean, "input_mean")?;
        let var = vector(var, "input_var")?;
        if var.iter().any(|v| v.is_nan() || *v < 0.0) {
            return Err(invalid(format!(
                "{desc}: input_var holds a negative or NaN variance"
            )));
        }
        let epsilon = attr_f(node, "epsilon", 1e-5);
        if !(epsilon > 0.0 && epsilon.is_finite()) {
            return Err(invalid(format!(
                "{desc}: epsilon is {epsilon}; kiln needs a positive epsilon"
            )));
        }
        let spec = LayerSpec::BatchNorm {
            // ONNX's momentum is the running statistics' weight, as kiln's and Keras' is.
            momentum: attr_f(node, "momentum", 0.9).clamp(0.0, 0.999),
            epsilon,
            activation: Activation::Linear,
        };
        let tensors = vec![
            ("weight", gamma.into_dyn()),
            ("bias", beta.into_dyn()),
            ("running_mean", mean.into_dyn()),
            ("running_var", var.into_dyn()),
        ];
        self.push_layer(desc, &input, spec, tensors)
    }
}
