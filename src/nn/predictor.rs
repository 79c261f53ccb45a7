//! [`Predictor`]: anything that maps a batch of inputs to network outputs — the
//! float [`Sequential`], a compiled sparse plan, an int8 network — so
//! evaluation and speed measurement run on the form a model is served in.

use ndarray::{Array2, ArrayView2};

use super::model::Sequential;

pub trait Predictor: Send + Sync {
    fn input_dim(&self) -> usize;
    fn output_dim(&self) -> usize;
    /// Outputs for `x` (`[rows, input_dim]`): probabilities for sigmoid/softmax heads.
    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32>;
}

impl Predictor for Sequential {
    fn input_dim(&self) -> usize {
        Sequential::input_dim(self)
    }

    fn output_dim(&self) -> usize {
        Sequential::output_dim(self)
    }

    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        Sequential::predict(self, x)
    }
}

impl Predictor for super::sparse::InferenceModel {
    fn input_dim(&self) -> usize {
        super::sparse::InferenceModel::input_dim(self)
    }

    fn output_dim(&self) -> usize {
        super::sparse::InferenceModel::output_dim(self)
    }

    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        super::sparse::InferenceModel::predict(self, x)
    }
}

impl Predictor for super::quant::qmodel::QuantizedModel {
    fn input_dim(&self) -> usize {
        super::quant::qmodel::QuantizedModel::input_dim(self)
    }

    fn output_dim(&self) -> usize {
        super::quant::qmodel::QuantizedModel::output_dim(self)
    }

    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        super::quant::qmodel::QuantizedModel::predict(self, x)
    }
}
