//! Weight initialisation.
//!
//! * Glorot (Xavier) uniform, `U(-√(6/(in+out)), √(6/(in+out)))`, for layers
//!   whose activation is linear, sigmoid, tanh or softmax (Keras' default).
//! * He (Kaiming) uniform, `U(-√(6/in), √(6/in))`, for relu, leaky_relu and
//!   gelu (PyTorch's `kaiming_uniform_` with gain √2).
//!
//! Biases start at zero. Draws come from a seeded ChaCha RNG in row-major
//! order, so the same seed gives the same weights on every machine.

use ndarray::Array2;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::spec::Activation;

/// Half-width of the uniform distribution for a `[fan_in, fan_out]` weight.
pub fn uniform_limit(activation: Activation, fan_in: usize, fan_out: usize) -> f32 {
    let fan_in = fan_in.max(1) as f64;
    let fan_out = fan_out.max(1) as f64;
    let limit = match activation {
        Activation::Relu
        | Activation::Relu6
        | Activation::LeakyRelu
        | Activation::Gelu
        | Activation::GeluErf => (6.0 / fan_in).sqrt(),
        Activation::Linear | Activation::Sigmoid | Activation::Tanh | Activation::Softmax => {
            (6.0 / (fan_in + fan_out)).sqrt()
        }
    };
    limit as f32
}

/// A `[fan_in, fan_out]` weight matrix for `activation`.
pub fn weight(
    activation: Activation,
    fan_in: usize,
    fan_out: usize,
    rng: &mut ChaCha8Rng,
) -> Array2<f32> {
    let limit = uniform_limit(activation, fan_in, fan_out);
    Array2::from_shape_simple_fn((fan_in, fan_out), || {
        (rng.random::<f32>() * 2.0 - 1.0) * limit
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn he_and_glorot_limits_follow_their_formulas_and_bound_the_draws() {
        assert!((uniform_limit(Activation::Relu, 6, 10) - 1.0).abs() < 1e-6);
        assert!((uniform_limit(Activation::Sigmoid, 2, 4) - 1.0).abs() < 1e-6);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let w = weight(Activation::Tanh, 100, 50, &mut rng);
        let limit = uniform_limit(Activation::Tanh, 100, 50);
        assert!(w.iter().all(|v| v.abs() <= limit));
        assert!(w.iter().any(|v| *v < -limit / 2.0) && w.iter().any(|v| *v > limit / 2.0));
    }
}
