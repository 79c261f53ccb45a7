//! Quantize parameters: [`validate_quantize`] → [`ValidQuantizeParams`].
//!
//! ```json
//! {"mode": "static" | "dynamic" | "qat",        // default static
//!  "bits": 8,                                    // int8 only; fewer bits is weight sharing (compress)
//!  "granularity": "per_channel" | "per_tensor",  // weights; default per_channel
//!  "scheme": "symmetric" | "asymmetric",         // default symmetric weights, asymmetric activations
//!  "calibration": {"method": "minmax" | "percentile" | "entropy", "percentile": 99.99,
//!                  "samples": 1000, "compare": false},   // static and qat
//!  "max_accuracy_drop": 0.01,                    // keep the most sensitive layers in float until it fits
//!  "fine_tune": {…train params…}}                // qat only; default 1 epoch
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::fields::{Fields, choice, non_negative_finite};
use super::fine_tune::fine_tune;
use super::train::{ValidTrainParams, check_compatibility};
use crate::{DatasetShape, JobLimits};
use kiln_nn::spec::Architecture;
use kiln_nn::validation::{Checker, Invalid};

pub const DEFAULT_CALIBRATION_SAMPLES: usize = 1000;
pub const DEFAULT_PERCENTILE: f64 = 99.99;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantizeMode {
    Dynamic,
    Static,
    Qat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationChoice {
    Minmax,
    Percentile,
    Entropy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidCalibration {
    pub method: CalibrationChoice,
    pub percentile: f64,
    pub samples: usize,
    pub compare: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidQuantizeParams {
    pub mode: QuantizeMode,
    pub bits: u8,
    pub granularity: kiln_nn::optimize::quant::scheme::Granularity,
    pub scheme: kiln_nn::optimize::quant::scheme::Scheme,
    /// Static and qat only: dynamic quantization measures ranges per batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<ValidCalibration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_accuracy_drop: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fine_tune: Option<ValidTrainParams>,
}

pub fn validate_quantize(
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    eval: Option<&DatasetShape>,
    limits: &JobLimits,
) -> Result<ValidQuantizeParams, Invalid> {
    use kiln_nn::optimize::quant::scheme::{Granularity, Scheme};
    let mut c = Checker::new();
    let mut f = Fields::new(params, "params", &mut c);
    let mode = choice(
        f.get("mode", &mut c),
        "params.mode",
        &[
            ("dynamic", QuantizeMode::Dynamic),
            ("static", QuantizeMode::Static),
            ("qat", QuantizeMode::Qat),
        ],
        QuantizeMode::Static,
        &mut c,
    );
    let bits: i64 = f.get("bits", &mut c).unwrap_or(8);
    let granularity = choice(
        f.get("granularity", &mut c),
        "params.granularity",
        &[
            ("per_channel", Granularity::PerChannel),
            ("per_tensor", Granularity::PerTensor),
        ],
        Granularity::PerChannel,
        &mut c,
    );
    let scheme = choice(
        f.get("scheme", &mut c),
        "params.scheme",
        &[
            ("symmetric", Scheme::Symmetric),
            ("asymmetric", Scheme::Asymmetric),
        ],
        Scheme::Symmetric,
        &mut c,
    );
    let raw_calibration = f.raw("calibration");
    let max_accuracy_drop: Option<f64> = f.get("max_accuracy_drop", &mut c);
    let raw_fine_tune = f.raw("fine_tune");
    f.finish(&mut c);

    c.require(
        bits == 8,
        "params.bits",
        "kiln quantizes to 8-bit integers; for fewer bits per weight use a compress job (weight sharing)",
    );
    if let Some(d) = max_accuracy_drop {
        non_negative_finite(&mut c, "params.max_accuracy_drop".into(), d);
    }

    let mut calibration = ValidCalibration {
        method: CalibrationChoice::Minmax,
        percentile: DEFAULT_PERCENTILE,
        samples: DEFAULT_CALIBRATION_SAMPLES.min(dataset.rows.max(1)),
        compare: false,
    };
    if let Some(v) = raw_calibration {
        if mode == QuantizeMode::Dynamic {
            c.push(
                "params.calibration",
                "dynamic quantization measures activation ranges per batch; calibration applies to static and qat",
            );
        }
        let mut f = Fields::new(v, "params.calibration", &mut c);
        calibration.method = choice(
            f.get("method", &mut c),
            "params.calibration.method",
            &[
                ("minmax", CalibrationChoice::Minmax),
                ("percentile", CalibrationChoice::Percentile),
                ("entropy", CalibrationChoice::Entropy),
            ],
            CalibrationChoice::Minmax,
            &mut c,
        );
        if let Some(p) = f.get::<f64>("percentile", &mut c) {
            c.require(
                p.is_finite() && p > 50.0 && p <= 100.0,
                "params.calibration.percentile",
                "must be in (50, 100], e.g. 99.99",
            );
            calibration.percentile = p;
        }
        if let Some(n) = f.get::<i64>("samples", &mut c) {
            c.require(
                n >= 1 && n as usize <= dataset.rows,
                "params.calibration.samples",
                format!("must be between 1 and the dataset's {} rows", dataset.rows),
            );
            calibration.samples = n.clamp(1, i64::MAX) as usize;
        }
        calibration.compare = f.get("compare", &mut c).unwrap_or(false);
        f.finish(&mut c);
    }

    let fine_tune = match mode {
        QuantizeMode::Qat => {
            let default = json!({"epochs": 1});
            fine_tune(
                Some(raw_fine_tune.unwrap_or(&default)),
                architecture,
                dataset,
                eval,
                limits,
                &mut c,
            )
        }
        _ => {
            c.require(
                raw_fine_tune.is_none(),
                "params.fine_tune",
                "only mode qat fine-tunes (quantization-aware training)",
            );
            None
        }
    };
    check_compatibility(architecture, dataset, "dataset", &mut c);
    if let Some(e) = eval {
        check_compatibility(architecture, e, "eval_dataset", &mut c);
    }
    c.finish(ValidQuantizeParams {
        mode,
        bits: 8,
        granularity,
        scheme,
        calibration: (mode != QuantizeMode::Dynamic).then_some(calibration),
        max_accuracy_drop,
        fine_tune,
    })
}
