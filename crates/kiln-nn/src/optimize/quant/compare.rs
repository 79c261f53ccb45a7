//! Calibration compared: the static int8 model under every calibration method at
//! several sample counts, since calibration is the usual cause of a bad int8 model.

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::calibrate::CalibrationMethod;
use super::qmodel::{QuantConfig, QuantError, QuantizedModel};
use crate::Sequential;
use crate::measure::evaluation::Evaluation;

/// `n` rows of `x` drawn without replacement by a fixed seed, so a class-sorted
/// file still calibrates on every class.
pub fn calibration_rows(x: ArrayView2<f32>, n: usize) -> Array2<f32> {
    let mut idx: Vec<usize> = (0..x.nrows()).collect();
    crate::train::batch::shuffle(&mut idx, &mut ChaCha8Rng::seed_from_u64(42));
    idx.truncate(n.clamp(1, x.nrows().max(1)));
    idx.sort_unstable();
    x.select(ndarray::Axis(0), &idx)
}

/// One calibration setting's result.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationResult {
    pub method: &'static str,
    pub samples: usize,
    pub main_metric: f64,
    pub loss: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Quant(#[from] QuantError),
}

/// Min–max, two percentiles and entropy, each on 100, 1000 and 5000 rows of `train_x`
/// (counts beyond the data are skipped, except the first), scored by `evaluate`.
pub fn compare_calibrations(
    model: &Sequential,
    cfg: &QuantConfig,
    float_layers: &[usize],
    train_x: ArrayView2<f32>,
    evaluate: &dyn Fn(&QuantizedModel) -> Evaluation,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<CalibrationResult>, CompareError> {
    let methods = [
        ("minmax", CalibrationMethod::MinMax),
        (
            "percentile_99.9",
            CalibrationMethod::Percentile { percentile: 99.9 },
        ),
        (
            "percentile_99.99",
            CalibrationMethod::Percentile { percentile: 99.99 },
        ),
        ("entropy", CalibrationMethod::Entropy),
    ];
    let mut out = Vec::new();
    for samples in [100usize, 1000, 5000] {
        if samples > train_x.nrows() && samples != 100 {
            continue;
        }
        let rows = calibration_rows(train_x, samples);
        for (name, m) in methods {
            if cancelled() {
                return Err(CompareError::Cancelled);
            }
            let q = QuantizedModel::build(model, cfg, float_layers, Some((rows.view(), m)))?;
            let ev = evaluate(&q);
            out.push(CalibrationResult {
                method: name,
                samples: rows.nrows(),
                main_metric: ev.main_metric(),
                loss: ev.loss,
            });
        }
    }
    Ok(out)
}
