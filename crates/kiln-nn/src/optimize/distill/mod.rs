//! Knowledge distillation (Hinton, Vinyals & Dean 2015): a small student
//! learns from a frozen teacher's softened outputs as well as from the labels.
//!
//! * [`DistillLoss`]: the blended hard/soft loss and its gradient.
//! * [`TeacherTargets`]: the teacher's soft targets, cached or per batch.
//! * [`Distiller`]: the trainer's [`crate::Objective`] that joins the two.
//! * [`shrink`] and [`agreement`]: derive a student, measure how well it follows.

mod error;
mod loss;
mod objective;
mod student;
mod teacher;

#[cfg(test)]
mod tests;

pub use error::DistillError;
pub use loss::{DistillLoss, loss_input};
pub use objective::Distiller;
pub use student::{agreement, check_pair, shrink};
pub use teacher::{TeacherPath, TeacherTargets};
