//! `[C, H, W] → [C·H·W]`: batches are already rows in channels-first order,
//! so flattening only changes the shape a layer reports.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand_chacha::ChaCha8Rng;

use crate::layers::param::Param;
use crate::layers::shape::{Shape, ShapeError};
use crate::layers::{BackwardPass, LayerKind, LayerOps};
use crate::spec::LayerSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flatten;

impl LayerOps for Flatten {
    fn kind(&self) -> LayerKind {
        LayerKind::Flatten
    }

    fn spec(&self) -> LayerSpec {
        LayerSpec::Flatten
    }

    fn push_params<'a>(&'a self, _out: &mut Vec<&'a Param>) {}

    fn push_params_mut<'a>(&'a mut self, _out: &mut Vec<&'a mut Param>) {}

    fn has_params(&self) -> bool {
        false
    }

    fn kernels(&self) -> &[Param] {
        &[]
    }

    fn kernels_mut(&mut self) -> &mut [Param] {
        &mut []
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        Ok(Shape::features(input.size()))
    }

    fn scratch_shape(&self, _input: &Shape) -> Result<Option<Shape>, ShapeError> {
        Ok(None)
    }

    /// The data does not change, so inference need not copy it.
    fn is_identity_at_inference(&self) -> bool {
        true
    }

    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        x.to_owned()
    }

    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        _scratch: ArrayViewMut2<f32>,
        mut out: ArrayViewMut2<f32>,
        _rng: &mut ChaCha8Rng,
    ) {
        out.assign(&x);
    }

    fn backward(&mut self, pass: BackwardPass<'_>) {
        if let Some(mut g_in) = pass.g_in {
            g_in.assign(&pass.g_out);
        }
    }
}
