//! What every layer kind answers: its parameters, shapes and passes.
//!
//! [`super::Layer`] dispatches to this trait in one place, and `Sequential`,
//! `Workspace`, the optimizers and regularization only go through it, so a new
//! layer kind is one file implementing [`LayerOps`] plus one line in `Layer`.
//! Batches are `[n, shape.size()]` views (see [`crate::layers::shape`]).

use ndarray::{Array2, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD};
use rand_chacha::ChaCha8Rng;

use super::LayerKind;
use crate::layers::param::Param;
use crate::layers::shape::{Shape, ShapeError};
use crate::spec::LayerSpec;

/// The buffers of one layer's backward pass, for the first `n` rows of a batch.
pub struct BackwardPass<'a> {
    /// The layer's input in the forward pass.
    pub input: ArrayView2<'a, f32>,
    /// What [`LayerOps::forward_train`] left in the layer's scratch buffer.
    pub scratch: ArrayView2<'a, f32>,
    /// The layer's output in the forward pass.
    pub output: ArrayView2<'a, f32>,
    /// `∂L/∂output` on entry; a layer may use it as room for its own work.
    pub g_out: ArrayViewMut2<'a, f32>,
    /// Where `∂L/∂input` goes; `None` when no earlier layer needs it.
    pub g_in: Option<ArrayViewMut2<'a, f32>>,
    /// `g_out` already holds `∂L/∂logits` (the loss fused the head's activation).
    pub g_is_wrt_logits: bool,
}

pub trait LayerOps {
    fn kind(&self) -> LayerKind;

    /// The architecture entry this layer is built from.
    fn spec(&self) -> LayerSpec;

    /// Appends the trainable tensors, weights before biases.
    fn push_params<'a>(&'a self, out: &mut Vec<&'a Param>);

    /// Same order as [`Self::push_params`].
    fn push_params_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Param>);

    /// Whether the layer holds any trainable tensor.
    fn has_params(&self) -> bool;

    /// The weight tensors (not biases): what weight penalties, pruning and
    /// weight statistics apply to.
    fn kernels(&self) -> &[Param];

    /// Same as [`Self::kernels`], mutable.
    fn kernels_mut(&mut self) -> &mut [Param];

    /// What a model file stores for this layer, by name (`weight`, `bias`,
    /// `running_mean`…): parameters and state, biases as vectors. Dense layers
    /// keep their own path (CSR, int8) and return nothing here.
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f32>)> {
        Vec::new()
    }

    /// The tensor [`Self::tensors`] names `name`, to load into (same shape).
    fn tensor_mut(&mut self, _name: &str) -> Option<ArrayViewMutD<'_, f32>> {
        None
    }

    /// The output sample shape for `input`, or why the layer cannot take it.
    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError>;

    /// Per-sample shape of the scratch buffer [`Self::forward_train`] fills for
    /// [`Self::backward`] (a dense layer's pre-activation, a dropout mask); the
    /// head layer's scratch is the network's logits.
    fn scratch_shape(&self, input: &Shape) -> Result<Option<Shape>, ShapeError>;

    /// `true` for layers that pass their input through at inference (dropout):
    /// inference skips them and trailing ones are ignored altogether.
    fn is_identity_at_inference(&self) -> bool {
        false
    }

    /// Inference on `[n, in]` rows: a new `[n, out]` output.
    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32>;

    /// Inference returning `(logits, output)`, for the network's head.
    fn forward_logits(&self, x: ArrayView2<f32>) -> (Array2<f32>, Array2<f32>) {
        let y = self.forward(x);
        (y.clone(), y)
    }

    /// Training forward pass: fills `scratch` and writes `out`.
    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        scratch: ArrayViewMut2<f32>,
        out: ArrayViewMut2<f32>,
        rng: &mut ChaCha8Rng,
    );

    /// Writes the parameters' `grad` (overwriting) and `∂L/∂input` when asked.
    fn backward(&mut self, pass: BackwardPass<'_>);
}
