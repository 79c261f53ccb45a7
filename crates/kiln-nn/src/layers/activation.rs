//! Activations: forward `a = f(z)` and the backward product `g ← g ⊙ f'(z)`.
//!
//! Conventions (documented because frameworks differ):
//! * `leaky_relu` uses PyTorch's negative slope **0.01** (Keras' `LeakyReLU` uses 0.3,
//!   `tf.nn.leaky_relu` 0.2).
//! * `gelu` is the **tanh approximation** `0.5·z·(1 + tanh(√(2/π)(z + 0.044715 z³)))`
//!   (PyTorch `approximate="tanh"`, Keras `approximate=True`).
//! * `gelu_erf` is the exact `z·Φ(z) = 0.5·z·(1 + erf(z/√2))` (PyTorch's and Keras'
//!   default `gelu`, ONNX `Gelu` with `approximate="none"`), so imported models keep
//!   their outputs to float precision.
//! * `relu6` is `min(max(z, 0), 6)` (PyTorch `ReLU6`, Keras `relu6`, ONNX `Clip(0, 6)`),
//!   the activation of MobileNet-style blocks; its gradient is 0 outside `(0, 6)`.
//! * `sigmoid` is evaluated without overflow for any finite input; `softmax` is
//!   row-wise and subtracts the row maximum first.

use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};

pub use crate::spec::Activation;

/// The upper bound of `relu6`.
pub const RELU6_CAP: f32 = 6.0;

/// Negative slope of `leaky_relu` (PyTorch's default).
pub const LEAKY_RELU_SLOPE: f32 = 0.01;
const GELU_C: f32 = 0.797_884_6; // √(2/π)
const GELU_K: f32 = 0.044_715;

#[inline]
pub fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[inline]
fn gelu(z: f32) -> f32 {
    let t = (GELU_C * (z + GELU_K * z * z * z)).tanh();
    0.5 * z * (1.0 + t)
}

#[inline]
fn gelu_grad(z: f32) -> f32 {
    let t = (GELU_C * (z + GELU_K * z * z * z)).tanh();
    0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_K * z * z)
}

#[inline]
fn gelu_erf(z: f32) -> f32 {
    0.5 * z * (1.0 + libm::erff(z * std::f32::consts::FRAC_1_SQRT_2))
}

/// `Φ(z) + z·φ(z)`.
#[inline]
fn gelu_erf_grad(z: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + libm::erff(z * std::f32::consts::FRAC_1_SQRT_2));
    cdf + z * INV_SQRT_2PI * (-0.5 * z * z).exp()
}

/// Scalar form of an element-wise activation (softmax is not element-wise: identity here).
#[inline]
pub fn scalar(act: Activation, z: f32) -> f32 {
    match act {
        Activation::Linear | Activation::Softmax => z,
        Activation::Relu => z.max(0.0),
        Activation::Relu6 => z.clamp(0.0, RELU6_CAP),
        Activation::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                LEAKY_RELU_SLOPE * z
            }
        }
        Activation::Sigmoid => sigmoid(z),
        Activation::Tanh => z.tanh(),
        Activation::Gelu => gelu(z),
        Activation::GeluErf => gelu_erf(z),
    }
}

/// Row-wise softmax in place.
pub fn softmax_rows(mut x: ArrayViewMut2<f32>) {
    for mut row in x.axis_iter_mut(Axis(0)) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0f32;
        row.map_inplace(|v| {
            *v = (*v - max).exp();
            sum += *v;
        });
        let inv = 1.0 / sum;
        row.map_inplace(|v| *v *= inv);
    }
}

/// `x ← f(x)` in place.
pub fn apply_inplace(act: Activation, mut x: ArrayViewMut2<f32>) {
    match act {
        Activation::Linear => {}
        Activation::Softmax => softmax_rows(x),
        _ => x.map_inplace(|v| *v = scalar(act, *v)),
    }
}

/// `a ← f(z)`; `z` and `a` have the same shape.
pub fn forward(act: Activation, z: ArrayView2<f32>, mut a: ArrayViewMut2<f32>) {
    match act {
        Activation::Linear => a.assign(&z),
        Activation::Softmax => {
            a.assign(&z);
            softmax_rows(a);
        }
        _ => Zip::from(&mut a)
            .and(&z)
            .for_each(|a, &z| *a = scalar(act, z)),
    }
}

/// `g ← ∂L/∂z` given `g = ∂L/∂a`, the pre-activation `z` and the output `a = f(z)`.
pub fn backward(
    act: Activation,
    z: ArrayView2<f32>,
    a: ArrayView2<f32>,
    mut g: ArrayViewMut2<f32>,
) {
    match act {
        Activation::Linear => {}
        // Branch-free selects so the loops vectorise.
        Activation::Relu => Zip::from(&mut g)
            .and(&z)
            .for_each(|g, &z| *g = if z > 0.0 { *g } else { 0.0 }),
        Activation::Relu6 => Zip::from(&mut g)
            .and(&z)
            .for_each(|g, &z| *g = if z > 0.0 && z < RELU6_CAP { *g } else { 0.0 }),
        Activation::LeakyRelu => Zip::from(&mut g)
            .and(&z)
            .for_each(|g, &z| *g *= if z > 0.0 { 1.0 } else { LEAKY_RELU_SLOPE }),
        Activation::Sigmoid => Zip::from(&mut g)
            .and(&a)
            .for_each(|g, &a| *g *= a * (1.0 - a)),
        Activation::Tanh => Zip::from(&mut g)
            .and(&a)
            .for_each(|g, &a| *g *= 1.0 - a * a),
        Activation::Gelu => Zip::from(&mut g)
            .and(&z)
            .for_each(|g, &z| *g *= gelu_grad(z)),
        Activation::GeluErf => Zip::from(&mut g)
            .and(&z)
            .for_each(|g, &z| *g *= gelu_erf_grad(z)),
        Activation::Softmax => {
            // Jacobian-vector product: g_j ← a_j (g_j − Σ_k g_k a_k).
            for (mut g_row, a_row) in g.axis_iter_mut(Axis(0)).zip(a.axis_iter(Axis(0))) {
                let dot: f32 = g_row.iter().zip(a_row.iter()).map(|(g, a)| g * a).sum();
                Zip::from(&mut g_row)
                    .and(&a_row)
                    .for_each(|g, &a| *g = a * (*g - dot));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    const ALL: [Activation; 9] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Relu6,
        Activation::LeakyRelu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softmax,
        Activation::Gelu,
        Activation::GeluErf,
    ];

    /// Checks `backward` against central differences of `L = Σ w ⊙ f(z)` in f64.
    #[test]
    fn every_activation_backward_matches_finite_differences() {
        // Values kept away from relu's kink at 0 and relu6's at 6; one above 6.
        let z: Array2<f32> = array![[-1.3, 0.4, 2.1], [0.7, -0.2, 6.5]];
        let w: Array2<f32> = array![[0.3, -1.1, 0.8], [1.5, 0.2, -0.6]];
        for act in ALL {
            let mut a = Array2::zeros(z.raw_dim());
            forward(act, z.view(), a.view_mut());
            let mut g = w.clone();
            backward(act, z.view(), a.view(), g.view_mut());
            let loss = |z: &Array2<f32>| -> f64 {
                let mut a = Array2::zeros(z.raw_dim());
                forward(act, z.view(), a.view_mut());
                a.iter()
                    .zip(w.iter())
                    .map(|(a, w)| (*a as f64) * (*w as f64))
                    .sum()
            };
            let eps = 1e-2f32;
            for idx in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)] {
                let mut zp = z.clone();
                zp[idx] += eps;
                let mut zm = z.clone();
                zm[idx] -= eps;
                let numeric = (loss(&zp) - loss(&zm)) / (2.0 * eps as f64);
                let analytic = g[idx] as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "{act:?} at {idx:?}: numeric {numeric}, analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn sigmoid_and_softmax_stay_finite_for_huge_inputs() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        let mut x = array![[1000.0f32, 0.0, -1000.0]];
        softmax_rows(x.view_mut());
        assert!(x.iter().all(|v| v.is_finite()));
        assert!((x.sum() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn leaky_relu_uses_the_pytorch_slope_and_gelu_the_tanh_approximation() {
        assert!((scalar(Activation::LeakyRelu, -2.0) + 0.02).abs() < 1e-7);
        // PyTorch: F.gelu(torch.tensor(1.0), approximate="tanh") = 0.8411920
        assert!((scalar(Activation::Gelu, 1.0) - 0.841_192).abs() < 1e-5);
    }

    #[test]
    fn relu6_clamps_to_zero_and_six_and_passes_gradient_only_between() {
        let z = array![[-1.0f32, 0.5, 5.5, 6.0, 9.0]];
        let mut a = Array2::zeros(z.raw_dim());
        forward(Activation::Relu6, z.view(), a.view_mut());
        assert_eq!(a, array![[0.0, 0.5, 5.5, 6.0, 6.0]]);
        let mut g = Array2::from_elem(z.raw_dim(), 2.0f32);
        backward(Activation::Relu6, z.view(), a.view(), g.view_mut());
        assert_eq!(g, array![[0.0, 2.0, 2.0, 0.0, 0.0]]);
    }

    #[test]
    fn exact_gelu_matches_the_error_function_values() {
        // PyTorch: F.gelu(torch.tensor([1.0, -0.5, 3.0])) = [0.8413447, -0.1542687, 2.9959502]
        for (z, want) in [(1.0, 0.841_344_7), (-0.5, -0.154_268_7), (3.0, 2.995_950_2)] {
            let got = scalar(Activation::GeluErf, z);
            assert!(
                (got - want).abs() < 1e-6,
                "gelu_erf({z}) = {got}, want {want}"
            );
        }
    }
}
