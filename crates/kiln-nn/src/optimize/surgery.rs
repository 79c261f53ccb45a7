//! Model surgery: rebuilding a network with layers or units taken out.
//!
//! Structured pruning and compaction both end here, so there is one place that
//! keeps the architecture, the weights and the next layer's fan-in consistent.

use ndarray::{Array2, Axis};

use crate::layers::dense::Dense;
use crate::layers::param::Param;
use crate::layers::{Layer, UnsupportedLayer};
use crate::model::Sequential;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SurgeryError {
    #[error("layer {0} is not a dense layer")]
    NotDense(usize),
    #[error(transparent)]
    Unsupported(#[from] UnsupportedLayer),
    #[error("layer {0} is the output layer: its units are the model's outputs")]
    OutputLayer(usize),
    #[error("layer {layer} would keep no units")]
    NoUnitsLeft { layer: usize },
    #[error("unit {unit} is out of range for layer {layer} ({units} units)")]
    UnitOutOfRange {
        layer: usize,
        unit: usize,
        units: usize,
    },
    #[error("layer {layer} takes {got} inputs; the layer before it has {expected} units")]
    Chain {
        layer: usize,
        got: usize,
        expected: usize,
    },
}

/// A network from a list of layers, checking that the dense layers chain. A
/// layer with parameters that is not dense is refused: its widths are not
/// checked here, so cutting around it could break the chain unseen.
pub fn rebuild(input_dim: usize, layers: Vec<Layer>) -> Result<Sequential, SurgeryError> {
    let mut width = input_dim;
    for (i, l) in layers.iter().enumerate() {
        if l.has_params() {
            let d = l.dense(i, "layer surgery")?;
            if d.inputs() != width {
                return Err(SurgeryError::Chain {
                    layer: i,
                    got: d.inputs(),
                    expected: width,
                });
            }
            width = d.units();
        }
    }
    Ok(Sequential::from_layers(input_dim, layers))
}

/// Index of the first dense layer after `layer`, if any.
pub fn next_dense(model: &Sequential, layer: usize) -> Option<usize> {
    model.dense_layers().map(|(i, _)| i).find(|&i| i > layer)
}

/// Keeps only the units `keep` (ascending, distinct) of dense layer `layer`, and
/// the matching rows of the next dense layer's weights. Masks are dropped.
///
/// `constant`, when given, is each unit's output if it were constant over the
/// data (e.g. 0 for a dead ReLU, `act(b_j)` for a unit whose incoming weights are
/// all zero): a removed unit's `constant[j] · W_next[j, :]` is added to the next
/// layer's bias, so removing it changes nothing downstream. The next layer gets
/// a bias if it had none and something non-zero is folded in.
pub fn remove_units(
    model: &Sequential,
    layer: usize,
    keep: &[usize],
    constant: Option<&[f32]>,
) -> Result<Sequential, SurgeryError> {
    let dense = model
        .layers()
        .get(layer)
        .and_then(Layer::as_dense)
        .ok_or(SurgeryError::NotDense(layer))?;
    let next = next_dense(model, layer).ok_or(SurgeryError::OutputLayer(layer))?;
    if keep.is_empty() {
        return Err(SurgeryError::NoUnitsLeft { layer });
    }
    let units = dense.units();
    if let Some(&unit) = keep.iter().find(|&&u| u >= units) {
        return Err(SurgeryError::UnitOutOfRange { layer, unit, units });
    }
    let mut layers: Vec<Layer> = model.layers().to_vec();

    let shrunk = Dense {
        weight: Param::new(dense.weight.matrix().select(Axis(1), keep)),
        bias: dense
            .bias
            .as_ref()
            .map(|b| Param::new(b.matrix().select(Axis(1), keep))),
        activation: dense.activation,
    };
    layers[layer] = Layer::Dense(shrunk);

    let Some(Layer::Dense(nd)) = model.layers().get(next) else {
        return Err(SurgeryError::NotDense(next));
    };
    let mut bias = nd.bias.as_ref().map(|b| b.matrix().to_owned());
    if let Some(c) = constant {
        let mut folded: Array2<f32> = Array2::zeros((1, nd.units()));
        let mut any = false;
        for j in (0..units).filter(|j| !keep.contains(j)) {
            let cj = c.get(j).copied().unwrap_or(0.0);
            if cj != 0.0 {
                any = true;
                folded.row_mut(0).scaled_add(cj, &nd.weight.matrix().row(j));
            }
        }
        if any {
            bias = Some(bias.map_or(folded.clone(), |b| b + &folded));
        }
    }
    layers[next] = Layer::Dense(Dense {
        weight: Param::new(nd.weight.matrix().select(Axis(0), keep)),
        bias: bias.map(Param::new),
        activation: nd.activation,
    });
    for l in &mut layers {
        if let Layer::Dense(d) = l {
            d.weight.clear_mask();
            if let Some(b) = &mut d.bias {
                b.clear_mask();
            }
        }
    }
    rebuild(model.input_dim(), layers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Architecture;
    use ndarray::s;

    fn arch() -> Architecture {
        serde_json::from_value(serde_json::json!({
            "input_dim": 3,
            "layers": [
                {"type": "dense", "units": 4, "activation": "sigmoid"},
                {"type": "dropout", "rate": 0.5},
                {"type": "dense", "units": 2, "activation": "linear"}
            ]
        }))
        .expect("architecture")
    }

    #[test]
    fn removing_units_with_their_constant_folded_keeps_outputs() {
        let mut model = Sequential::new(&arch(), 7);
        // Units 1 and 3 get zero incoming weights: their output is sigmoid(b_j) for every row.
        if let Some(d) = model.layers_mut()[0].as_dense_mut() {
            d.weight.matrix_mut().slice_mut(s![.., 1]).fill(0.0);
            d.weight.matrix_mut().slice_mut(s![.., 3]).fill(0.0);
            if let Some(b) = &mut d.bias {
                b.matrix_mut()[(0, 1)] = 0.7;
                b.matrix_mut()[(0, 3)] = -0.4;
            }
        }
        let consts: Vec<f32> = (0..4)
            .map(|j| {
                let b = model.layers()[0].as_dense().and_then(|d| d.bias.as_ref());
                crate::layers::activation::sigmoid(b.map_or(0.0, |b| b.matrix()[(0, j)]))
            })
            .collect();
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i as f32 - 2.0) * 0.4 + j as f32 * 0.3);
        let before = model.predict(x.view());
        let small = remove_units(&model, 0, &[0, 2], Some(&consts)).expect("removes");
        assert_eq!(small.architecture().layers.len(), 3);
        assert_eq!(small.param_count(), 3 * 2 + 2 + 2 * 2 + 2);
        let after = small.predict(x.view());
        for (a, b) in before.iter().zip(after.iter()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn the_output_layer_and_empty_keeps_are_refused() {
        let model = Sequential::new(&arch(), 1);
        assert_eq!(
            remove_units(&model, 2, &[0], None).unwrap_err(),
            SurgeryError::OutputLayer(2)
        );
        assert_eq!(
            remove_units(&model, 0, &[], None).unwrap_err(),
            SurgeryError::NoUnitsLeft { layer: 0 }
        );
        assert_eq!(
            remove_units(&model, 1, &[0], None).unwrap_err(),
            SurgeryError::NotDense(1)
        );
        assert!(matches!(
            remove_units(&model, 0, &[9], None),
            Err(SurgeryError::UnitOutOfRange { unit: 9, .. })
        ));
    }
}
