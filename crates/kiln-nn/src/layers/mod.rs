//! The layers a [`crate::model::Sequential`] is made of, and the one place that
//! dispatches on their kind.
//!
//! Each kind lives in its own file and implements [`LayerOps`]; `Layer` derefs
//! to it, so everything else calls `layer.params()`, `layer.forward(..)` without
//! naming a variant. Adding a kind: its file, a variant here, an arm in `each!`
//! and in [`Layer::from_spec`].

pub mod activation;
pub mod batch_norm;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod flatten;
pub mod init;
mod ops;
pub mod param;
pub mod pooling;
pub mod shape;
mod unsupported;

use std::fmt;
use std::ops::{Deref, DerefMut};

use rand_chacha::ChaCha8Rng;

pub use ops::{BackwardPass, LayerOps};
pub use unsupported::UnsupportedLayer;

use crate::layers::batch_norm::BatchNorm;
use crate::layers::conv2d::Conv2d;
use crate::layers::dense::Dense;
use crate::layers::dropout::Dropout;
use crate::layers::flatten::Flatten;
use crate::layers::param::Param;
use crate::layers::pooling::{GlobalAvgPool2d, Pool2d, PoolKind};
use crate::layers::shape::Shape;
use crate::spec::{self, LayerShapeError, LayerSpec};

/// A network holds a handful of layers, so the size gap between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    Dense(Dense),
    Dropout(Dropout),
    Conv2d(Conv2d),
    Pool2d(Pool2d),
    GlobalAvgPool2d(GlobalAvgPool2d),
    BatchNorm(BatchNorm),
    Flatten(Flatten),
}

/// The name of a layer kind, for errors and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    Dense,
    Dropout,
    Conv2d,
    MaxPool2d,
    AvgPool2d,
    GlobalAvgPool2d,
    BatchNorm,
    Flatten,
}

impl LayerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::Dense => "dense",
            LayerKind::Dropout => "dropout",
            LayerKind::Conv2d => "conv2d",
            LayerKind::MaxPool2d => "max_pool2d",
            LayerKind::AvgPool2d => "avg_pool2d",
            LayerKind::GlobalAvgPool2d => "global_avg_pool2d",
            LayerKind::BatchNorm => "batch_norm",
            LayerKind::Flatten => "flatten",
        }
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a new layer's parameters start.
pub enum Init<'a> {
    /// Seeded random initialisation (see [`crate::layers::init`]).
    Random(&'a mut ChaCha8Rng),
    /// Zeros of the right shapes, to be overwritten with stored weights.
    Zeros,
}

/// The one match over the variants: `each!(layer, l => expr)` runs `expr` with
/// `l` bound to the variant's value.
macro_rules! each {
    ($layer:expr, $l:ident => $e:expr) => {
        match $layer {
            Layer::Dense($l) => $e,
            Layer::Dropout($l) => $e,
            Layer::Conv2d($l) => $e,
            Layer::Pool2d($l) => $e,
            Layer::GlobalAvgPool2d($l) => $e,
            Layer::BatchNorm($l) => $e,
            Layer::Flatten($l) => $e,
        }
    };
}

impl Deref for Layer {
    type Target = dyn LayerOps;

    fn deref(&self) -> &Self::Target {
        each!(self, l => l)
    }
}

impl DerefMut for Layer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        each!(self, l => l)
    }
}

impl Layer {
    /// The layer `spec` describes, taking samples of shape `input`, or why
    /// the two do not fit (which [`spec::Architecture::check`] rules out).
    pub fn from_spec(
        spec: &LayerSpec,
        input: &Shape,
        init: &mut Init<'_>,
    ) -> Result<Self, LayerShapeError> {
        // The shape walk is the one place that decides whether a spec fits.
        spec::layer_output_shape(spec, input)?;
        let geometry = || match spec::shapes::geometry(spec, input) {
            Some(g) => g,
            None => unreachable_geometry(spec),
        };
        Ok(match *spec {
            LayerSpec::Dense {
                units,
                activation,
                use_bias,
            } => Layer::Dense(Dense::init(input.size(), units, activation, use_bias, init)),
            LayerSpec::Dropout { rate } => Layer::Dropout(Dropout { rate }),
            LayerSpec::Conv2d {
                padding,
                activation,
                use_bias,
                ..
            } => Layer::Conv2d(Conv2d::init(
                geometry()?,
                padding,
                activation,
                use_bias,
                init,
            )),
            LayerSpec::MaxPool2d { padding, .. } => Layer::Pool2d(Pool2d {
                kind: PoolKind::Max,
                geometry: geometry()?,
                padding,
            }),
            LayerSpec::AvgPool2d { padding, .. } => Layer::Pool2d(Pool2d {
                kind: PoolKind::Avg,
                geometry: geometry()?,
                padding,
            }),
            LayerSpec::GlobalAvgPool2d => Layer::GlobalAvgPool2d(GlobalAvgPool2d {
                input: input.clone(),
            }),
            LayerSpec::BatchNorm {
                momentum,
                epsilon,
                activation,
            } => Layer::BatchNorm(BatchNorm::new(input.clone(), momentum, epsilon, activation)),
            LayerSpec::Flatten => Layer::Flatten(Flatten),
        })
    }

    /// Every trainable tensor, weights before biases.
    pub fn params(&self) -> Vec<&Param> {
        let mut out = Vec::new();
        self.push_params(&mut out);
        out
    }

    /// Same order as [`Self::params`].
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut out = Vec::new();
        self.push_params_mut(&mut out);
        out
    }

    /// The weight tensor of a layer that multiplies its input by one (dense and
    /// conv2d): what element-wise optimizations such as magnitude pruning act
    /// on. Biases and batch-norm scales are left out: few, and each shifts or
    /// scales a whole channel.
    pub fn kernel(&self) -> Option<&Param> {
        match self {
            Layer::Dense(d) => Some(&d.weight),
            Layer::Conv2d(c) => Some(&c.weight),
            _ => None,
        }
    }

    /// Mutable form of [`Self::kernel`].
    pub fn kernel_mut(&mut self) -> Option<&mut Param> {
        match self {
            Layer::Dense(d) => Some(&mut d.weight),
            Layer::Conv2d(c) => Some(&mut c.weight),
            _ => None,
        }
    }

    /// The dense layer, for algorithms that only exist for dense layers; see
    /// [`Self::dense`] for the checked form.
    pub fn as_dense(&self) -> Option<&Dense> {
        match self {
            Layer::Dense(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_dense_mut(&mut self) -> Option<&mut Dense> {
        match self {
            Layer::Dense(d) => Some(d),
            _ => None,
        }
    }

    /// The dense layer at `index`, or the typed refusal of `operation`.
    pub fn dense(&self, index: usize, operation: &'static str) -> Result<&Dense, UnsupportedLayer> {
        let kind = self.kind();
        self.as_dense().ok_or(UnsupportedLayer {
            index,
            kind,
            operation,
        })
    }

    /// Mutable form of [`Self::dense`].
    pub fn dense_mut(
        &mut self,
        index: usize,
        operation: &'static str,
    ) -> Result<&mut Dense, UnsupportedLayer> {
        let kind = self.kind();
        self.as_dense_mut().ok_or(UnsupportedLayer {
            index,
            kind,
            operation,
        })
    }
}

/// `geometry()` is `Some` for every windowed spec; this keeps the match total without a panic.
fn unreachable_geometry(
    spec: &LayerSpec,
) -> Result<crate::kernels::conv::Conv2dGeometry, LayerShapeError> {
    Err(LayerShapeError {
        field: None,
        message: format!("a {} layer has no window", spec.type_name()),
    })
}
