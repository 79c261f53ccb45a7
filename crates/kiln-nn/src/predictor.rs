//! [`Predictor`]: anything that maps a batch of inputs to network outputs — the
//! float [`Sequential`], a compiled sparse plan, an int8 network — so
//! evaluation and speed measurement run on the form a model is served in.
//! Each form implements it beside its own type, so this file names none of them.

use ndarray::{Array2, ArrayView2};

pub trait Predictor: Send + Sync {
    fn input_dim(&self) -> usize;
    fn output_dim(&self) -> usize;
    /// Outputs for `x` (`[rows, input_dim]`): probabilities for sigmoid/softmax heads.
    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32>;
}
