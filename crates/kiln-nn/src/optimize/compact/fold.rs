//! Folding linear layers: `(x·W1 + b1)·W2 + b2 = x·(W1·W2) + (b1·W2 + b2)`.
//!
//! A dense layer with linear activation followed by another dense layer (with
//! only dropout between them, the identity at inference) is one affine map, so
//! the pair becomes a single layer with the second one's activation. That only
//! pays when the product is not bigger than the factors: a narrow linear
//! bottleneck (`mid` small) is a low-rank factorization worth keeping, and such
//! pairs are skipped silently (no action is reported for them).

use ndarray::Array2;

use super::{Action, ActionKind, CompactError};
use crate::layers::Layer;
use crate::layers::activation::Activation;
use crate::layers::dense::Dense;
use crate::layers::param::Param;
use crate::model::Sequential;
use crate::optimize::surgery::{next_dense, rebuild};

/// Folds every linear dense layer into the next dense layer where that does not
/// increase the parameter count (`in·out + out ≤ in·mid + mid + mid·out + out`,
/// counting the biases that exist), repeatedly, front to back. Dropout layers
/// between a folded pair are dropped. Each action's `layer` is the index of the
/// pair's first layer, which is also where the folded layer sits; the layers after
/// the pair move down. Products are formed in f64, so `exact` holds up to one
/// f32 rounding. Pruning masks of the folded pair are dropped.
pub fn fold_linear_layers(model: &Sequential) -> Result<(Sequential, Vec<Action>), CompactError> {
    let mut current = model.clone();
    let mut actions = Vec::new();
    let mut i = 0;
    while i < current.layers().len() {
        match fold_at(&current, i)? {
            // The folded layer may be linear again: try it with its new successor.
            Some((folded, action)) => {
                current = folded;
                actions.push(action);
            }
            None => i += 1,
        }
    }
    Ok((current, actions))
}

/// Folds layer `i` into the next dense layer, if `i` is a linear dense layer and
/// folding does not add parameters.
fn fold_at(model: &Sequential, i: usize) -> Result<Option<(Sequential, Action)>, CompactError> {
    let Some(Layer::Dense(first)) = model.layers().get(i) else {
        return Ok(None);
    };
    if first.activation != Activation::Linear {
        return Ok(None);
    }
    let Some(j) = next_dense(model, i) else {
        return Ok(None);
    };
    let Some(Layer::Dense(second)) = model.layers().get(j) else {
        return Ok(None);
    };
    let (inputs, mid, outputs) = (first.inputs(), first.units(), second.units());
    let has_bias = first.bias.is_some() || second.bias.is_some();
    let before = (inputs * mid + mid * outputs) as u64
        + first.bias.as_ref().map_or(0, |_| mid as u64)
        + second.bias.as_ref().map_or(0, |_| outputs as u64);
    let after = (inputs * outputs) as u64 + if has_bias { outputs as u64 } else { 0 };
    if after > before {
        return Ok(None);
    }

    let w2 = second.weight.matrix().mapv(f64::from);
    let weight = first
        .weight
        .matrix()
        .mapv(f64::from)
        .dot(&w2)
        .mapv(|v| v as f32);
    let bias = has_bias.then(|| {
        let mut b: Array2<f64> = Array2::zeros((1, outputs));
        if let Some(b1) = &first.bias {
            b += &b1.matrix().mapv(f64::from).dot(&w2);
        }
        if let Some(b2) = &second.bias {
            b += &b2.matrix().mapv(f64::from);
        }
        Param::new(b.mapv(|v| v as f32))
    });
    let mut layers = model.layers()[..i].to_vec();
    layers.push(Layer::Dense(Dense {
        weight: Param::new(weight),
        bias,
        activation: second.activation,
    }));
    layers.extend_from_slice(&model.layers()[j + 1..]);
    let folded = rebuild(model.input_dim(), layers)?;
    let dropped = j - i - 1;
    let action = Action {
        kind: ActionKind::FoldedLayers,
        layer: i,
        units: Vec::new(),
        detail: format!(
            "layers {i} ({inputs}→{mid}, linear) and {j} ({mid}→{outputs}, {:?}) folded into one \
             {inputs}→{outputs} layer{}; the layers after {j} move down by {}",
            second.activation,
            match dropped {
                0 => String::new(),
                n => format!(", dropping {n} dropout layer(s) between them"),
            },
            j - i
        ),
        params_before: model.param_count(),
        params_after: folded.param_count(),
        exact: true,
    };
    Ok(Some((folded, action)))
}
