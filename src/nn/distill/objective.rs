//! Distillation as the trainer's objective.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

use super::teacher::TeacherTargets;
use crate::nn::trainer::Objective;

/// The trainer's [`Objective`] for distillation.
pub struct Distiller<'a> {
    targets: TeacherTargets<'a>,
}

impl<'a> Distiller<'a> {
    pub fn new(targets: TeacherTargets<'a>) -> Self {
        Self { targets }
    }

    pub fn targets(&self) -> &TeacherTargets<'a> {
        &self.targets
    }
}

impl Objective for Distiller<'_> {
    fn value_and_grad(
        &mut self,
        rows: &[usize],
        input: ArrayView2<f32>,
        y: ArrayView1<f32>,
        grad: ArrayViewMut2<f32>,
    ) -> f64 {
        let _ = rows;
        let loss = self.targets.loss();
        loss.value_and_grad(input, y, input, grad)
    }
}
