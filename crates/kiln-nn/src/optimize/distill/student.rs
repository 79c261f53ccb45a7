//! Deriving a student from a teacher, and measuring how closely it follows.

use ndarray::{ArrayView1, ArrayView2, Axis};

use super::error::DistillError;
use crate::data::Task;
use crate::layers::activation::Activation;
use crate::measure::evaluation::Head;
use crate::spec::{Architecture, LayerSpec};

/// A student derived from the teacher: every hidden dense layer's width × `factor` (rounded, at least 1);
/// input width, output layer, activations, biases and dropout layers unchanged.
pub fn shrink(teacher: &Architecture, factor: f64) -> Architecture {
    let last_dense = teacher
        .layers
        .iter()
        .rposition(|l| matches!(l, LayerSpec::Dense { .. }));
    let layers = teacher
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| match *layer {
            LayerSpec::Dense {
                units,
                activation,
                use_bias,
            } if Some(i) != last_dense => LayerSpec::Dense {
                // `as` saturates: NaN and negatives give 0, then 1.
                units: ((units as f64 * factor).round() as usize).max(1),
                activation,
                use_bias,
            },
            ref other => other.clone(),
        })
        .collect();
    Architecture {
        input_dim: teacher.input_dim,
        input_shape: teacher.input_shape.clone(),
        layers,
    }
}

/// `Err` naming the mismatch unless the student reads the teacher's inputs
/// and has the teacher's number of outputs (soft targets are per output).
pub fn check_pair(teacher: &Architecture, student: &Architecture) -> Result<(), DistillError> {
    if student.input_dim != teacher.input_dim {
        return Err(DistillError::InputWidth {
            teacher: teacher.input_dim,
            other: "student",
            found: student.input_dim,
        });
    }
    if student.output_dim() != teacher.output_dim() {
        return Err(DistillError::Outputs {
            teacher: teacher.output_dim(),
            student: student.output_dim(),
        });
    }
    Ok(())
}

/// How closely a student follows its teacher on the same inputs: for classification (`outputs` of the two
/// models, probabilities), the fraction of rows whose predicted class agrees (binary: both on the same side
/// of 0.5 for one output); for regression, the mean squared difference of outputs. Named in the report.
///
/// No rows give 0. Extra rows or columns of either side are ignored.
pub fn agreement(teacher: ArrayView2<f32>, student: ArrayView2<f32>, task: Task) -> f64 {
    let rows = teacher.nrows().min(student.nrows());
    let pairs = teacher.axis_iter(Axis(0)).zip(student.axis_iter(Axis(0)));
    match task {
        Task::Regression => {
            let cols = teacher.ncols().min(student.ncols());
            let sum: f64 = pairs
                .flat_map(|(t, s)| t.into_iter().zip(s))
                .map(|(&t, &s)| {
                    let d = t as f64 - s as f64;
                    d * d
                })
                .sum();
            sum / (rows * cols).max(1) as f64
        }
        Task::Binary | Task::Multiclass => {
            let agree = pairs
                .filter(|(t, s)| class_of(*t, task) == class_of(*s, task))
                .count();
            agree as f64 / rows.max(1) as f64
        }
    }
}

/// The predicted class of a row of probabilities: `p ≥ 0.5` for one output, else the arg-max
/// (the evaluation's [`Head`] reading of a sigmoid or softmax head).
fn class_of(row: ArrayView1<f32>, task: Task) -> usize {
    let activation = if row.len() == 1 {
        Activation::Sigmoid
    } else {
        Activation::Softmax
    };
    Head {
        task,
        activation,
        outputs: row.len(),
    }
    .predicted_class(row)
}
