//! Pooling layers: `max_pool2d`, `avg_pool2d` and `global_avg_pool2d`, on the
//! kernels of [`crate::kernels::pool`]. None has parameters.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand_chacha::ChaCha8Rng;

use crate::kernels::conv::Conv2dGeometry;
use crate::kernels::pool;
use crate::layers::param::Param;
use crate::layers::shape::{Shape, ShapeError};
use crate::layers::{BackwardPass, LayerKind, LayerOps};
use crate::spec::{LayerSpec, Padding};

/// Which windowed pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub geometry: Conv2dGeometry,
    pub padding: Padding,
}

/// Refuses an input other than the one a windowed layer was built for.
fn expect_input(kind: LayerKind, g: &Conv2dGeometry, input: &Shape) -> Result<(), ShapeError> {
    let expected = Shape::new([g.channels, g.height, g.width]);
    if *input == expected {
        Ok(())
    } else {
        Err(ShapeError::Mismatch {
            kind,
            expected,
            found: input.clone(),
        })
    }
}

macro_rules! no_params {
    () => {
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
    };
}

impl LayerOps for Pool2d {
    fn kind(&self) -> LayerKind {
        match self.kind {
            PoolKind::Max => LayerKind::MaxPool2d,
            PoolKind::Avg => LayerKind::AvgPool2d,
        }
    }

    fn spec(&self) -> LayerSpec {
        let (pool_size, strides, padding) =
            (self.geometry.kernel, self.geometry.strides, self.padding);
        match self.kind {
            PoolKind::Max => LayerSpec::MaxPool2d {
                pool_size,
                strides,
                padding,
            },
            PoolKind::Avg => LayerSpec::AvgPool2d {
                pool_size,
                strides,
                padding,
            },
        }
    }

    no_params!();

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        expect_input(self.kind(), &self.geometry, input)?;
        Ok(Shape::new(self.geometry.output_dims()))
    }

    /// Max pooling keeps where each maximum came from.
    fn scratch_shape(&self, input: &Shape) -> Result<Option<Shape>, ShapeError> {
        let out = self.output_shape(input)?;
        Ok((self.kind == PoolKind::Max).then_some(out))
    }

    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = Array2::zeros((x.nrows(), self.geometry.output_size()));
        match self.kind {
            PoolKind::Max => pool::max_forward(&self.geometry, x, out.view_mut(), None),
            PoolKind::Avg => pool::avg_forward(&self.geometry, x, out.view_mut()),
        }
        out
    }

    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        scratch: ArrayViewMut2<f32>,
        out: ArrayViewMut2<f32>,
        _rng: &mut ChaCha8Rng,
    ) {
        match self.kind {
            PoolKind::Max => pool::max_forward(&self.geometry, x, out, Some(scratch)),
            PoolKind::Avg => pool::avg_forward(&self.geometry, x, out),
        }
    }

    fn backward(&mut self, pass: BackwardPass<'_>) {
        let Some(g_in) = pass.g_in else { return };
        match self.kind {
            PoolKind::Max => pool::max_backward(pass.scratch, pass.g_out.view(), g_in),
            PoolKind::Avg => pool::avg_backward(&self.geometry, pass.g_out.view(), g_in),
        }
    }
}

/// `[C, H, W] → [C]`, each channel's mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalAvgPool2d {
    /// The `[C, H, W]` input it was built for.
    pub input: Shape,
}

impl GlobalAvgPool2d {
    fn plane(&self) -> usize {
        self.input.dims()[1..].iter().product()
    }

    fn channels(&self) -> usize {
        self.input.dims()[0]
    }
}

impl LayerOps for GlobalAvgPool2d {
    fn kind(&self) -> LayerKind {
        LayerKind::GlobalAvgPool2d
    }

    fn spec(&self) -> LayerSpec {
        LayerSpec::GlobalAvgPool2d
    }

    no_params!();

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        if *input != self.input {
            return Err(ShapeError::Mismatch {
                kind: self.kind(),
                expected: self.input.clone(),
                found: input.clone(),
            });
        }
        Ok(Shape::features(self.channels()))
    }

    fn scratch_shape(&self, input: &Shape) -> Result<Option<Shape>, ShapeError> {
        self.output_shape(input).map(|_| None)
    }

    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = Array2::zeros((x.nrows(), self.channels()));
        pool::global_avg_forward(self.plane(), x, out.view_mut());
        out
    }

    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        _scratch: ArrayViewMut2<f32>,
        out: ArrayViewMut2<f32>,
        _rng: &mut ChaCha8Rng,
    ) {
        pool::global_avg_forward(self.plane(), x, out);
    }

    fn backward(&mut self, pass: BackwardPass<'_>) {
        if let Some(g_in) = pass.g_in {
            pool::global_avg_backward(self.plane(), pass.g_out.view(), g_in);
        }
    }
}
