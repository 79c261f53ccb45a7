//! Convolution layer: `z = conv(x, W) + b`, `a = act(z)` over `[C, H, W]` samples.
//!
//! `W` is stored `[filters, channels / groups, kh, kw]` (ONNX and PyTorch) and
//! multiplied through its matrix view `[filters, K]` by [`crate::kernels::conv`].

use ndarray::{Array, Array2, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD, Axis, IxDyn};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::kernels::conv::{self, Conv2dGeometry};
use crate::layers::activation::{self, Activation};
use crate::layers::init;
use crate::layers::param::Param;
use crate::layers::shape::{Shape, ShapeError};
use crate::layers::{BackwardPass, Init, LayerKind, LayerOps};
use crate::spec::{LayerSpec, Padding};

#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    pub weight: Param,
    /// `[1, filters]`, as a dense layer's.
    pub bias: Option<Param>,
    pub activation: Activation,
    pub geometry: Conv2dGeometry,
    /// As the architecture spelled it (`same` stays `same` when written back).
    pub padding: Padding,
}

impl Conv2d {
    /// A layer over `geometry`, started as `init` says. Random weights are
    /// Glorot/He uniform with Keras' fans: `fan_in = K`, `fan_out = filters·kh·kw`.
    pub fn init(
        geometry: Conv2dGeometry,
        padding: Padding,
        activation: Activation,
        use_bias: bool,
        init: &mut Init<'_>,
    ) -> Self {
        let g = &geometry;
        let dims = [g.filters, g.channels_per_group(), g.kernel[0], g.kernel[1]];
        let weight = match init {
            Init::Random(rng) => {
                let fan_out = g.filters * g.kernel[0] * g.kernel[1];
                let limit = init::uniform_limit(activation, g.patch_len(), fan_out);
                Array::from_shape_simple_fn(dims, || (rng.random::<f32>() * 2.0 - 1.0) * limit)
            }
            Init::Zeros => Array::zeros(dims),
        };
        Self {
            weight: Param::new(weight),
            bias: use_bias.then(|| Param::new(Array2::zeros((1, g.filters)))),
            activation,
            geometry,
            padding,
        }
    }

    fn output(&self) -> Shape {
        Shape::new(self.geometry.output_dims())
    }

    /// `z ← conv(x, W) + b`.
    pub fn linear_into(&self, x: ArrayView2<f32>, z: ArrayViewMut2<f32>) {
        let bias = self
            .bias
            .as_ref()
            .map(|b| b.matrix().index_axis_move(Axis(0), 0));
        conv::forward(&self.geometry, x, self.weight.matrix(), bias, z);
    }
}

impl LayerOps for Conv2d {
    fn kind(&self) -> LayerKind {
        LayerKind::Conv2d
    }

    fn spec(&self) -> LayerSpec {
        let g = &self.geometry;
        LayerSpec::Conv2d {
            filters: g.filters,
            kernel_size: g.kernel,
            strides: g.strides,
            padding: self.padding,
            dilation: g.dilation,
            groups: g.groups,
            activation: self.activation,
            use_bias: self.bias.is_some(),
        }
    }

    fn push_params<'a>(&'a self, out: &mut Vec<&'a Param>) {
        out.push(&self.weight);
        out.extend(&self.bias);
    }

    fn push_params_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Param>) {
        out.push(&mut self.weight);
        out.extend(&mut self.bias);
    }

    fn has_params(&self) -> bool {
        true
    }

    fn kernels(&self) -> &[Param] {
        std::slice::from_ref(&self.weight)
    }

    fn kernels_mut(&mut self) -> &mut [Param] {
        std::slice::from_mut(&mut self.weight)
    }

    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f32>)> {
        let mut out = vec![("weight", self.weight.value().view())];
        if let Some(b) = &self.bias {
            out.push(("bias", flat(b.value().view())));
        }
        out
    }

    fn tensor_mut(&mut self, name: &str) -> Option<ArrayViewMutD<'_, f32>> {
        match name {
            "weight" => Some(self.weight.value_mut()),
            "bias" => self.bias.as_mut().map(|b| flat_mut(b.value_mut())),
            _ => None,
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let g = &self.geometry;
        let expected = Shape::new([g.channels, g.height, g.width]);
        if *input != expected {
            return Err(ShapeError::Mismatch {
                kind: LayerKind::Conv2d,
                expected,
                found: input.clone(),
            });
        }
        Ok(self.output())
    }

    /// The pre-activation `z`.
    fn scratch_shape(&self, input: &Shape) -> Result<Option<Shape>, ShapeError> {
        self.output_shape(input).map(Some)
    }

    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = Array2::zeros((x.nrows(), self.geometry.output_size()));
        self.linear_into(x, z.view_mut());
        activation::apply_inplace(self.activation, z.view_mut());
        z
    }

    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        mut scratch: ArrayViewMut2<f32>,
        out: ArrayViewMut2<f32>,
        _rng: &mut ChaCha8Rng,
    ) {
        self.linear_into(x, scratch.view_mut());
        activation::forward(self.activation, scratch.view(), out);
    }

    fn backward(&mut self, mut pass: BackwardPass<'_>) {
        if !pass.g_is_wrt_logits {
            activation::backward(
                self.activation,
                pass.scratch,
                pass.output,
                pass.g_out.view_mut(),
            );
        }
        let db = self
            .bias
            .as_mut()
            .map(|b| b.grad_matrix_mut().index_axis_move(Axis(0), 0));
        let (dw, w) = self.weight.grad_views();
        conv::backward(
            &self.geometry,
            pass.input,
            w,
            pass.g_out.view(),
            dw,
            db,
            pass.g_in,
        );
    }
}

/// A `[1, n]` bias seen as the `[n]` vector files store (standard layout: free).
pub(crate) fn flat(v: ArrayViewD<'_, f32>) -> ArrayViewD<'_, f32> {
    let n = v.len();
    v.into_shape_with_order(IxDyn(&[n]))
        .expect("a Param is standard layout")
}

pub(crate) fn flat_mut(v: ArrayViewMutD<'_, f32>) -> ArrayViewMutD<'_, f32> {
    let n = v.len();
    v.into_shape_with_order(IxDyn(&[n]))
        .expect("a Param is standard layout")
}
