//! Distillation as the trainer's objective.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, s};

use super::teacher::TeacherTargets;
use crate::train::trainer::Objective;

/// The trainer's [`Objective`] for distillation: soft targets of the batch rows from [`TeacherTargets`],
/// then [`super::DistillLoss::value_and_grad`]. Reuses one scratch buffer across batches.
///
/// The fit's `FitConfig::loss` must be the targets' `hard` loss: it decides
/// whether the trainer hands over logits or outputs.
pub struct Distiller<'a> {
    targets: TeacherTargets<'a>,
    /// Soft targets of the current batch, grown to the largest batch.
    soft: Array2<f32>,
}

impl<'a> Distiller<'a> {
    pub fn new(targets: TeacherTargets<'a>) -> Self {
        let soft = Array2::zeros((0, targets.outputs()));
        Self { targets, soft }
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
        let n = rows.len();
        if self.soft.nrows() < n {
            self.soft = Array2::zeros((n, self.targets.outputs()));
        }
        let mut soft = self.soft.slice_mut(s![..n, ..]);
        self.targets.gather(rows, soft.view_mut());
        self.targets
            .loss()
            .value_and_grad(input, y, soft.view(), grad)
    }
}
