//! Fully connected layer: `z = x · W + b`, `a = act(z)`.
//!
//! Shapes: `x: [batch, in]`, `W: [in, units]`, `b: [1, units]`, `z, a: [batch, units]`.
//! `W` is stored `[in, out]` row-major, the layout of kiln's model files.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use rand_chacha::ChaCha8Rng;

use crate::kernels::gemm;
use crate::layers::activation::{self, Activation};
use crate::layers::init;
use crate::layers::param::Param;
use crate::layers::shape::{Shape, ShapeError};
use crate::layers::{BackwardPass, Init, LayerKind, LayerOps};
use crate::spec::LayerSpec;

/// Batches up to this many rows use the row-by-row product in [`Dense::linear_into`].
const SMALL_BATCH: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub weight: Param,
    pub bias: Option<Param>,
    pub activation: Activation,
}

impl Dense {
    /// A freshly initialised layer (Glorot/He uniform weights, zero bias; see [`init`]).
    pub fn new(
        inputs: usize,
        units: usize,
        activation: Activation,
        use_bias: bool,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let weight = Param::new(init::weight(activation, inputs, units, rng));
        let bias = use_bias.then(|| Param::new(Array2::zeros((1, units))));
        Self {
            weight,
            bias,
            activation,
        }
    }

    /// A layer started as `init` says: random ([`Self::new`]) or zeros.
    pub fn init(
        inputs: usize,
        units: usize,
        activation: Activation,
        use_bias: bool,
        init: &mut Init<'_>,
    ) -> Self {
        match init {
            Init::Random(rng) => Self::new(inputs, units, activation, use_bias, rng),
            Init::Zeros => Self {
                weight: Param::new(Array2::zeros((inputs, units))),
                bias: use_bias.then(|| Param::new(Array2::zeros((1, units)))),
                activation,
            },
        }
    }

    pub fn inputs(&self) -> usize {
        self.weight.matrix().nrows()
    }

    pub fn units(&self) -> usize {
        self.weight.matrix().ncols()
    }

    /// `z ← x · W + b` into a preallocated `z: [batch, units]`.
    pub fn linear_into(&self, x: ArrayView2<f32>, mut z: ArrayViewMut2<f32>) {
        self.matmul_into(x, z.view_mut());
        if let Some(b) = &self.bias {
            z += &b.matrix();
        }
    }

    /// `z ← x · W`. A few rows go through row-by-row AXPYs over the contiguous
    /// rows of `W` (the latency path of a single prediction); more through [`gemm`].
    fn matmul_into(&self, x: ArrayView2<f32>, mut z: ArrayViewMut2<f32>) {
        let w = &self.weight.matrix();
        if x.nrows() <= SMALL_BATCH {
            for (x_row, mut z_row) in x.axis_iter(Axis(0)).zip(z.axis_iter_mut(Axis(0))) {
                z_row.fill(0.0);
                if let Some(zs) = z_row.as_slice_mut() {
                    for (&xk, w_row) in x_row.iter().zip(w.axis_iter(Axis(0))) {
                        if xk == 0.0 {
                            continue;
                        }
                        match w_row.as_slice() {
                            Some(ws) => zs.iter_mut().zip(ws).for_each(|(z, &w)| *z += xk * w),
                            None => zs.iter_mut().zip(w_row).for_each(|(z, &w)| *z += xk * w),
                        }
                    }
                } else {
                    general_mat_mul(
                        1.0,
                        &x_row.insert_axis(Axis(0)),
                        w,
                        0.0,
                        &mut z_row.insert_axis(Axis(0)),
                    );
                }
            }
        } else {
            gemm::matmul(x, w.view(), z);
        }
    }

    /// `z ← x · W + b` and `a ← act(z)`, bias and activation fused in one pass.
    pub fn forward_into(
        &self,
        x: ArrayView2<f32>,
        mut z: ArrayViewMut2<f32>,
        mut a: ArrayViewMut2<f32>,
    ) {
        self.matmul_into(x, z.view_mut());
        let act = self.activation;
        match (&self.bias, act) {
            (Some(b), Activation::Softmax | Activation::Linear) => {
                z += &b.matrix();
                activation::forward(act, z.view(), a);
            }
            (Some(b), _) => {
                let b = b.matrix().index_axis_move(Axis(0), 0);
                for (mut z_row, mut a_row) in z.axis_iter_mut(Axis(0)).zip(a.axis_iter_mut(Axis(0)))
                {
                    Zip::from(&mut z_row)
                        .and(&mut a_row)
                        .and(&b)
                        .for_each(|z, a, &b| {
                            *z += b;
                            *a = activation::scalar(act, *z);
                        });
                }
            }
            (None, _) => activation::forward(act, z.view(), a),
        }
    }

    /// Inference: a new `[batch, units]` output.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = Array2::zeros((x.nrows(), self.units()));
        self.linear_into(x, z.view_mut());
        activation::apply_inplace(self.activation, z.view_mut());
        z
    }

    /// Given `dz = ∂L/∂z`, writes `∂L/∂W = xᵀ·dz`, `∂L/∂b = Σ_rows dz` into the
    /// parameters' `grad` (overwriting) and, when asked, `∂L/∂x = dz·Wᵀ` into `dx`.
    pub fn backward(
        &mut self,
        x: ArrayView2<f32>,
        dz: ArrayView2<f32>,
        dx: Option<ArrayViewMut2<f32>>,
    ) {
        gemm::matmul(x.t(), dz, self.weight.grad_matrix_mut());
        if let Some(b) = &mut self.bias {
            let mut gb = b.grad_matrix_mut().index_axis_move(Axis(0), 0);
            gb.fill(0.0);
            for row in dz.axis_iter(Axis(0)) {
                gb += &row;
            }
        }
        if let Some(dx) = dx {
            gemm::matmul_bt(dz, self.weight.matrix().view(), dx);
        }
    }
}

impl LayerOps for Dense {
    fn kind(&self) -> LayerKind {
        LayerKind::Dense
    }

    fn spec(&self) -> LayerSpec {
        LayerSpec::Dense {
            units: self.units(),
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

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        if input.dims() != [self.inputs()] {
            return Err(ShapeError::Mismatch {
                kind: LayerKind::Dense,
                expected: Shape::features(self.inputs()),
                found: input.clone(),
            });
        }
        Ok(Shape::features(self.units()))
    }

    /// The pre-activation `z`.
    fn scratch_shape(&self, input: &Shape) -> Result<Option<Shape>, ShapeError> {
        self.output_shape(input).map(Some)
    }

    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        Dense::forward(self, x)
    }

    fn forward_logits(&self, x: ArrayView2<f32>) -> (Array2<f32>, Array2<f32>) {
        let mut z = Array2::zeros((x.nrows(), self.units()));
        self.linear_into(x, z.view_mut());
        let logits = z.clone();
        activation::apply_inplace(self.activation, z.view_mut());
        (logits, z)
    }

    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        scratch: ArrayViewMut2<f32>,
        out: ArrayViewMut2<f32>,
        _rng: &mut ChaCha8Rng,
    ) {
        self.forward_into(x, scratch, out);
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
        Dense::backward(self, pass.input, pass.g_out.view(), pass.g_in);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;

    /// `L = Σ R ⊙ z` so that `∂L/∂z = R`; compare every gradient with central differences.
    #[test]
    fn dense_weight_bias_and_input_gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut layer = Dense::new(3, 2, Activation::Linear, true, &mut rng);
        layer
            .bias
            .as_mut()
            .expect("bias")
            .set_value(array![[0.1, -0.2]]);
        let x: Array2<f32> = array![[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]];
        let r: Array2<f32> = array![[0.9, -0.4], [0.2, 1.1]];
        let loss = |layer: &Dense, x: &Array2<f32>| -> f64 {
            let z = layer.forward(x.view());
            z.iter()
                .zip(r.iter())
                .map(|(z, r)| (*z as f64) * (*r as f64))
                .sum()
        };
        let mut dx = Array2::zeros(x.raw_dim());
        layer.backward(x.view(), r.view(), Some(dx.view_mut()));
        let eps = 1e-2f32;
        let tol = 1e-3;
        for i in 0..3 {
            for j in 0..2 {
                let mut p = layer.clone();
                p.weight.matrix_mut()[(i, j)] += eps;
                let mut m = layer.clone();
                m.weight.matrix_mut()[(i, j)] -= eps;
                let num = (loss(&p, &x) - loss(&m, &x)) / (2.0 * eps as f64);
                assert!(
                    (num - layer.weight.grad_matrix()[(i, j)] as f64).abs() < tol,
                    "W[{i},{j}]"
                );
            }
        }
        for j in 0..2 {
            let mut p = layer.clone();
            p.bias.as_mut().expect("bias").matrix_mut()[(0, j)] += eps;
            let mut m = layer.clone();
            m.bias.as_mut().expect("bias").matrix_mut()[(0, j)] -= eps;
            let num = (loss(&p, &x) - loss(&m, &x)) / (2.0 * eps as f64);
            let analytic = layer.bias.as_ref().expect("bias").grad_matrix()[(0, j)] as f64;
            assert!((num - analytic).abs() < tol, "b[{j}]");
        }
        for r_ in 0..2 {
            for c in 0..3 {
                let mut xp = x.clone();
                xp[(r_, c)] += eps;
                let mut xm = x.clone();
                xm[(r_, c)] -= eps;
                let num = (loss(&layer, &xp) - loss(&layer, &xm)) / (2.0 * eps as f64);
                assert!((num - dx[(r_, c)] as f64).abs() < tol, "x[{r_},{c}]");
            }
        }
    }

    #[test]
    fn the_small_batch_product_agrees_with_the_gemm_path() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let layer = Dense::new(37, 11, Activation::Linear, true, &mut rng);
        let x = Array2::from_shape_fn((9, 37), |(i, j)| ((i * 37 + j) % 13) as f32 * 0.1 - 0.6);
        let big = layer.forward(x.view()); // 9 rows: GEMM
        for r in 0..9 {
            let one = layer.forward(x.slice(ndarray::s![r..r + 1, ..])); // 1 row: AXPY path
            for (a, b) in one.row(0).iter().zip(big.row(r)) {
                assert!((a - b).abs() < 1e-5, "row {r}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn the_fused_forward_equals_linear_then_activation() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let layer = Dense::new(4, 3, Activation::Gelu, true, &mut rng);
        let x = Array2::from_shape_fn((5, 4), |(i, j)| (i as f32 - 2.0) * 0.3 + j as f32 * 0.1);
        let mut z = Array2::zeros((5, 3));
        let mut a = Array2::zeros((5, 3));
        layer.forward_into(x.view(), z.view_mut(), a.view_mut());
        assert_eq!(a, layer.forward(x.view()));
    }
}
