//! The shape walk: what each layer spec gives for what it is given, and its
//! parameter count. `Architecture::check` and the layers built from a spec both
//! use it, so a network that passed the check always chains.

use super::LayerSpec;
use crate::kernels::conv::{Conv2dGeometry, ConvError};
use crate::layers::shape::Shape;
use crate::validation::{FieldError, Invalid};

/// A layer spec that cannot take its input: which field (if one is at fault) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerShapeError {
    pub field: Option<&'static str>,
    pub message: String,
}

impl LayerShapeError {
    /// The error as `layers[i]` (or `layers[i].field`) of the architecture.
    pub fn at(self, i: usize) -> Invalid {
        let field = match self.field {
            Some(f) => format!("layers[{i}].{f}"),
            None => format!("layers[{i}]"),
        };
        Invalid::from(FieldError::new(field, self.message))
    }
}

impl std::fmt::Display for LayerShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn conv_error(kind: &str, input: &Shape, e: ConvError) -> LayerShapeError {
    // Pools share the conv geometry; their window field is `pool_size`.
    let field = match e.field() {
        Some("kernel_size") if kind != "conv2d" => Some("pool_size"),
        field => field,
    };
    LayerShapeError {
        field,
        message: format!("a {kind} layer given samples of shape {input}: {e}"),
    }
}

/// The window geometry of a conv2d or pooling spec over `input`, `None` for other layers.
pub fn geometry(
    spec: &LayerSpec,
    input: &Shape,
) -> Option<Result<Conv2dGeometry, LayerShapeError>> {
    let channels = input.dims().first().copied().unwrap_or(0);
    let g = match *spec {
        LayerSpec::Conv2d {
            filters,
            kernel_size,
            strides,
            padding,
            dilation,
            groups,
            ..
        } => Conv2dGeometry::new(
            input.dims(),
            filters,
            kernel_size,
            strides,
            dilation,
            padding,
            groups,
        ),
        LayerSpec::MaxPool2d {
            pool_size,
            strides,
            padding,
        }
        | LayerSpec::AvgPool2d {
            pool_size,
            strides,
            padding,
        } => Conv2dGeometry::new(
            input.dims(),
            channels.max(1),
            pool_size,
            strides,
            [1, 1],
            padding,
            channels.max(1),
        ),
        _ => return None,
    };
    Some(g.map_err(|e| conv_error(spec.type_name(), input, e)))
}

/// What `spec` outputs per sample when given samples of shape `input`.
pub fn layer_output_shape(spec: &LayerSpec, input: &Shape) -> Result<Shape, LayerShapeError> {
    let image = |what: &str| -> Result<(), LayerShapeError> {
        match input.dims() {
            [c, h, w] if c * h * w > 0 => Ok(()),
            _ => Err(LayerShapeError {
                field: None,
                message: format!(
                    "a {what} layer takes samples of shape [channels, height, width]; it was given {input}"
                ),
            }),
        }
    };
    match spec {
        LayerSpec::Dense { units, .. } => match input.dims() {
            [_] => Ok(Shape::features(*units)),
            _ => Err(LayerShapeError {
                field: None,
                message: format!(
                    "a dense layer takes flat samples; it was given {input}: put a flatten or \
                     global_avg_pool2d layer before it"
                ),
            }),
        },
        LayerSpec::Dropout { .. } => Ok(input.clone()),
        LayerSpec::BatchNorm { .. } => match input.dims() {
            [_] | [_, _, _] => Ok(input.clone()),
            _ => Err(LayerShapeError {
                field: None,
                message: format!(
                    "a batch_norm layer takes [features] or [channels, height, width]; it was given {input}"
                ),
            }),
        },
        LayerSpec::GlobalAvgPool2d => {
            image("global_avg_pool2d")?;
            Ok(Shape::features(input.dims()[0]))
        }
        LayerSpec::Flatten => Ok(Shape::features(input.size())),
        LayerSpec::Conv2d { .. } | LayerSpec::MaxPool2d { .. } | LayerSpec::AvgPool2d { .. } => {
            match geometry(spec, input) {
                Some(g) => g.map(|g| Shape::new(g.output_dims())),
                None => Ok(input.clone()),
            }
        }
    }
}

/// Trainable scalars of `spec` over `input` (0 where the shapes do not fit).
pub fn layer_param_count(spec: &LayerSpec, input: &Shape) -> u64 {
    let channels = input.dims().first().copied().unwrap_or(0) as u64;
    match *spec {
        LayerSpec::Dense {
            units, use_bias, ..
        } => {
            let (n_in, units) = (input.size() as u64, units as u64);
            n_in.saturating_mul(units)
                .saturating_add(if use_bias { units } else { 0 })
        }
        LayerSpec::Conv2d {
            filters,
            kernel_size,
            groups,
            use_bias,
            ..
        } => {
            let per_filter = (channels / groups.max(1) as u64)
                .saturating_mul(kernel_size[0] as u64)
                .saturating_mul(kernel_size[1] as u64);
            (filters as u64)
                .saturating_mul(per_filter)
                .saturating_add(if use_bias { filters as u64 } else { 0 })
        }
        LayerSpec::BatchNorm { .. } => 2 * channels,
        _ => 0,
    }
}
