//! Deriving a student from a teacher, and measuring how closely it follows.

use ndarray::ArrayView2;

use crate::nn::data::Task;
use crate::nn::spec::Architecture;

/// A student derived from the teacher by scaling hidden widths by `factor`.
pub fn shrink(teacher: &Architecture, factor: f64) -> Architecture {
    let _ = factor;
    teacher.clone()
}

/// How closely a student follows its teacher on the same inputs.
pub fn agreement(teacher: ArrayView2<f32>, student: ArrayView2<f32>, task: Task) -> f64 {
    let _ = (teacher, student, task);
    0.0
}
