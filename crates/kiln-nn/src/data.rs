//! In-memory datasets: a feature matrix and one target per row.

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

/// What the targets mean; decides the default loss, the output layer and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Targets are 0 or 1; the model has one output (sigmoid or logit).
    Binary,
    /// Targets are class indices `0..classes`; the model has `classes` outputs.
    Multiclass,
    /// Targets are real numbers; the model has one output.
    Regression,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Binary => "binary",
            Task::Multiclass => "multiclass",
            Task::Regression => "regression",
        }
    }

    pub fn parse(s: &str) -> Option<Task> {
        match s {
            "binary" => Some(Task::Binary),
            "multiclass" => Some(Task::Multiclass),
            "regression" => Some(Task::Regression),
            _ => None,
        }
    }
}

/// Features `x: [rows, features]` and targets `y: [rows]`.
///
/// For classification `y` holds class indices stored as `f32` (exact for any
/// realistic class count), which keeps one target type for all three tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub x: Array2<f32>,
    pub y: Array1<f32>,
    pub task: Task,
    /// Number of classes (2 for binary, 0 for regression).
    pub classes: usize,
    /// `[channels, height, width]` of one example when the rows are images, each
    /// row flattened channels first; `None` for plain feature rows.
    pub input_shape: Option<Vec<usize>>,
}

impl Dataset {
    pub fn rows(&self) -> usize {
        self.x.nrows()
    }

    pub fn features(&self) -> usize {
        self.x.ncols()
    }
}
