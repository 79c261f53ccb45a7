//! Low-rank factorization: a dense layer `W [in, out]` becomes a linear
//! bottleneck `A [in, r]` followed by `B [r, out]`, from the truncated SVD.
//!
//! `W ≈ U_r·diag(s_r)·V_rᵀ` is the best rank-`r` approximation in Frobenius
//! norm (Eckart–Young), so the kept energy `Σ_{i<r} s_i² / Σ s_i²` says how much
//! of the layer survives. It only saves parameters when `r·(in + out) < in·out`
//! ([`max_useful_rank`]).

use super::svd::svd;
use super::{Action, ActionKind, CompactError, dense_at};
use crate::layers::Layer;
use crate::layers::activation::Activation;
use crate::layers::dense::Dense;
use crate::layers::param::Param;
use crate::model::Sequential;
use crate::optimize::surgery::rebuild;
use ndarray::Array2;

/// The smallest `r ≥ 1` whose leading singular values hold at least `energy`
/// (clamped to `[0, 1]`) of `Σ s_i²`; `s` is descending. A NaN `energy` keeps everything.
pub fn rank_for_energy(s: &[f64], energy: f64) -> usize {
    let total: f64 = s.iter().map(|x| x * x).sum();
    let target = energy.clamp(0.0, 1.0) * total;
    let mut acc = 0.0;
    for (i, x) in s.iter().enumerate() {
        acc += x * x;
        // Same summation order as `total`, so `energy = 1` stops at the last non-zero value.
        if acc >= target {
            return i + 1;
        }
    }
    s.len().max(1)
}

/// The largest rank whose factorization has fewer parameters than the `[inputs, outputs]`
/// weight: the largest `r` with `r·(inputs + outputs) < inputs·outputs` (0 if none).
pub fn max_useful_rank(inputs: usize, outputs: usize) -> usize {
    (inputs.saturating_mul(outputs).saturating_sub(1)) / (inputs + outputs).max(1)
}

/// Singular values of dense layer `layer`'s weight, descending.
pub fn singular_values(model: &Sequential, layer: usize) -> Result<Vec<f64>, CompactError> {
    Ok(svd(dense_at(model, layer)?.weight.matrix().view()).s)
}

/// Replaces dense layer `layer` (`W`, bias `b`, activation `f`) by two dense
/// layers: `A = U_r·diag(s_r)` (linear, no bias) at index `layer`, then
/// `B = V_rᵀ` with `b` and `f` at `layer + 1`. Every later layer's index moves up
/// by one. `rank` above `min(in, out)` is clamped to it; pruning masks of the
/// replaced layer are dropped (a factorization is dense anyway).
///
/// Exact when `rank` reaches the numerical rank of `W` (singular values above
/// `s_0 · max(in, out) · ε_f32`).
pub fn factorize(
    model: &Sequential,
    layer: usize,
    rank: usize,
) -> Result<(Sequential, Action), CompactError> {
    let dense = dense_at(model, layer)?;
    if rank == 0 {
        return Err(CompactError::ZeroRank);
    }
    let (inputs, outputs) = (dense.inputs(), dense.units());
    let d = svd(dense.weight.matrix().view());
    let r = rank.min(d.s.len());
    if r == 0 {
        return Err(CompactError::ZeroRank);
    }
    let a = Array2::from_shape_fn((inputs, r), |(i, c)| (d.u[(i, c)] * d.s[c]) as f32);
    let b = Array2::from_shape_fn((r, outputs), |(c, j)| d.vt[(c, j)] as f32);

    let mut layers = model.layers().to_vec();
    layers[layer] = Layer::Dense(Dense {
        weight: Param::new(b),
        bias: dense
            .bias
            .as_ref()
            .map(|b| Param::new(b.matrix().to_owned())),
        activation: dense.activation,
    });
    layers.insert(
        layer,
        Layer::Dense(Dense {
            weight: Param::new(a),
            bias: None,
            activation: Activation::Linear,
        }),
    );
    let factored = rebuild(model.input_dim(), layers)?;

    let total: f64 = d.s.iter().map(|x| x * x).sum();
    let kept: f64 = d.s[..r].iter().map(|x| x * x).sum();
    let energy = if total > 0.0 { kept / total } else { 1.0 };
    let cutoff = d.s[0] * inputs.max(outputs) as f64 * f64::from(f32::EPSILON);
    let numerical_rank = d.s.iter().filter(|&&x| x > cutoff).count();
    let action = Action {
        kind: ActionKind::LowRank,
        layer,
        units: Vec::new(),
        detail: format!(
            "layer {layer} [{inputs}×{outputs}] factored into [{inputs}×{r}]·[{r}×{outputs}] \
             (rank {r} of {}, numerical rank {numerical_rank}), keeping {:.4}% of Σσ²; \
             layers after {layer} move up by one index",
            d.s.len(),
            100.0 * energy
        ),
        params_before: model.param_count(),
        params_after: factored.param_count(),
        exact: r >= numerical_rank,
    };
    Ok((factored, action))
}
