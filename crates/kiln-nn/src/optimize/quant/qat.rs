//! Quantization-aware training: fake-quantized weights with the straight-through
//! estimator, as a [`StepHook`] around [`crate::train::trainer::fit_with_hook`].
//!
//! The hook keeps a float "shadow" of each chosen dense layer's weight. Between
//! optimizer steps the model holds `fq(shadow)` (quantize → dequantize with the
//! shadow's own int8 parameters), so every forward and backward pass runs on the
//! weights the int8 network will have. Around each step the shadow is swapped
//! back in, so the optimizer applies the gradient taken at `fq(shadow)` to the
//! float weights: the straight-through estimator (`∂fq/∂w ≈ 1`). Small updates
//! accumulate in the shadow instead of being lost to rounding.
//!
//! Activations are not fake-quantized during training: a [`StepHook`] reaches the
//! model only between steps, not the activations inside the forward pass, and
//! their ranges are calibrated after fine-tuning on the final weights anyway (as
//! in static post-training quantization). Weight rounding is the error training
//! can cheaply adapt to; u8 activation rounding with calibrated ranges is small
//! and unbiased, so the fine-tuned network loses little to it.

use ndarray::Array2;

use super::scheme::{Granularity, Scheme, fake_quantize_weights_into};
use crate::model::Sequential;
use crate::train::trainer::StepHook;

/// Fake quantization of the weights of some dense layers (biases stay float:
/// the int8 network keeps them in i32 at the accumulator's scale).
#[derive(Debug, Clone)]
pub struct FakeQuantWeights {
    scheme: Scheme,
    granularity: Granularity,
    /// `(index into architecture.layers, float weights)`.
    shadows: Vec<(usize, Array2<f32>)>,
}

impl FakeQuantWeights {
    /// Copies the float weights of `layers` (indices into `architecture.layers`;
    /// indices that are not dense layers are ignored, duplicates count once).
    ///
    /// This only reads the model, so the first step's gradients are taken at the
    /// float weights; the fake-quantized ones are written at its `after_update`.
    /// [`Self::attach`] writes them at once, so that every step sees them.
    pub fn new(
        model: &Sequential,
        mut layers: Vec<usize>,
        scheme: Scheme,
        granularity: Granularity,
    ) -> Self {
        layers.sort_unstable();
        layers.dedup();
        let shadows = layers
            .into_iter()
            .filter_map(|i| {
                let d = model.layers().get(i)?.as_dense()?;
                Some((i, d.weight.matrix().to_owned()))
            })
            .collect();
        Self {
            scheme,
            granularity,
            shadows,
        }
    }

    /// [`Self::new`], then the model's weights set to `fq(shadow)`.
    pub fn attach(
        model: &mut Sequential,
        layers: Vec<usize>,
        scheme: Scheme,
        granularity: Granularity,
    ) -> Self {
        let hook = Self::new(model, layers, scheme, granularity);
        hook.write_fake_quantized(model);
        hook
    }

    /// The layers whose weights are fake-quantized, ascending.
    pub fn layers(&self) -> Vec<usize> {
        self.shadows.iter().map(|(i, _)| *i).collect()
    }

    /// The float weights of `layer` (None if it is not tracked).
    pub fn shadow(&self, layer: usize) -> Option<&Array2<f32>> {
        self.shadows
            .iter()
            .find(|(i, _)| *i == layer)
            .map(|(_, w)| w)
    }

    /// `weight.matrix() ← fq(shadow)` for every tracked layer.
    fn write_fake_quantized(&self, model: &mut Sequential) {
        for (i, shadow) in &self.shadows {
            if let Some(d) = model
                .layers_mut()
                .get_mut(*i)
                .and_then(|l| l.as_dense_mut())
            {
                fake_quantize_weights_into(
                    shadow.view(),
                    d.weight.matrix_mut(),
                    self.scheme,
                    self.granularity,
                );
            }
        }
    }

    /// Leaves `model` holding fake-quantized weights, exactly representable in
    /// int8 with the parameters their own ranges give.
    ///
    /// The weights are the model's current ones, fake-quantized: that is
    /// `fq(shadow)` after training, or the best epoch's weights when early
    /// stopping restored them (fake quantization maps grid weights to themselves).
    pub fn finish(self, model: &mut Sequential) {
        for (i, _) in &self.shadows {
            if let Some(d) = model
                .layers_mut()
                .get_mut(*i)
                .and_then(|l| l.as_dense_mut())
            {
                let current = d.weight.matrix().to_owned();
                fake_quantize_weights_into(
                    current.view(),
                    d.weight.matrix_mut(),
                    self.scheme,
                    self.granularity,
                );
            }
        }
    }
}

impl StepHook for FakeQuantWeights {
    /// The gradients were taken at `fq(shadow)`; the optimizer updates the shadow.
    fn before_update(&mut self, _step: u64, model: &mut Sequential) {
        for (i, shadow) in &self.shadows {
            if let Some(d) = model
                .layers_mut()
                .get_mut(*i)
                .and_then(|l| l.as_dense_mut())
                && d.weight.matrix().dim() == shadow.dim()
            {
                d.weight.matrix_mut().assign(shadow);
            }
        }
    }

    /// The updated (and masked) float weights become the shadow; the model gets
    /// their fake-quantized values for the next forward pass.
    fn after_update(&mut self, _step: u64, model: &mut Sequential) {
        for (i, shadow) in &mut self.shadows {
            if let Some(d) = model
                .layers_mut()
                .get_mut(*i)
                .and_then(|l| l.as_dense_mut())
                && d.weight.matrix().dim() == shadow.dim()
            {
                shadow.assign(&d.weight.matrix());
                fake_quantize_weights_into(
                    shadow.view(),
                    d.weight.matrix_mut(),
                    self.scheme,
                    self.granularity,
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "qat_tests.rs"]
mod tests;
