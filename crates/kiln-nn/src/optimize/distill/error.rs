//! What can be wrong with a distillation set-up before training starts.

/// A distillation setting or a teacher/student pair that cannot work; the
/// messages name the field a client would fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistillError {
    #[error("temperature must be a finite number > 0, got {0}")]
    Temperature(f32),
    #[error("alpha must be a number in [0, 1], got {0}")]
    Alpha(f32),
    #[error("the teacher expects {teacher} input features; the {other} has {found}")]
    InputWidth {
        teacher: usize,
        other: &'static str,
        found: usize,
    },
    #[error("the teacher has {teacher} outputs; the student has {student}")]
    Outputs { teacher: usize, student: usize },
    #[error("cancelled while the teacher's soft targets were computed")]
    Cancelled,
}
