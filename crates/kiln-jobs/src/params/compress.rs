//! Compress parameters: [`validate_compress`] → [`ValidCompressParams`].
//!
//! ```json
//! {"bits": 5,                                   // codebook size 2^bits per layer, 1–8; default 5
//!  "init": "linear" | "density",                // centroid initialisation; default linear
//!  "coder": "auto" | "huffman" | "zstd" | "none", // entropy coder; auto keeps the smallest
//!  "fine_tune": {…train params…}}               // centroid fine-tuning; absent: none
//! ```
//! Linear initialisation is the default because Deep Compression found it keeps
//! the rare large weights that density initialisation under-represents.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::Fields;
use super::fine_tune::fine_tune;
use super::train::ValidTrainParams;
use crate::{DatasetShape, JobLimits};
use kiln_nn::spec::Architecture;
use kiln_nn::validation::{Checker, Invalid};

pub const DEFAULT_BITS: u8 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CentroidInit {
    Linear,
    Density,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoderChoice {
    Auto,
    Huffman,
    Zstd,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidCompressParams {
    pub bits: u8,
    pub init: CentroidInit,
    pub coder: CoderChoice,
    pub fine_tune: Option<ValidTrainParams>,
}

pub fn validate_compress(
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    eval: Option<&DatasetShape>,
    limits: &JobLimits,
) -> Result<ValidCompressParams, Invalid> {
    let mut c = Checker::new();
    let mut f = Fields::new(params, "params", &mut c);
    let bits: i64 = f.get("bits", &mut c).unwrap_or(DEFAULT_BITS as i64);
    let init: Option<String> = f.get("init", &mut c);
    let coder: Option<String> = f.get("coder", &mut c);
    let raw_fine_tune = f.raw("fine_tune");
    f.finish(&mut c);

    c.require(
        (1..=8).contains(&bits),
        "params.bits",
        "must be between 1 and 8 (a codebook of 2 to 256 shared values per layer)",
    );
    let init = match init.as_deref() {
        None | Some("linear") => CentroidInit::Linear,
        Some("density") => CentroidInit::Density,
        Some(other) => {
            c.push(
                "params.init",
                format!("unknown initialisation {other:?}; expected linear or density"),
            );
            CentroidInit::Linear
        }
    };
    let coder = match coder.as_deref() {
        None | Some("auto") => CoderChoice::Auto,
        Some("huffman") => CoderChoice::Huffman,
        Some("zstd") => CoderChoice::Zstd,
        Some("none") => CoderChoice::None,
        Some(other) => {
            c.push(
                "params.coder",
                format!("unknown coder {other:?}; expected auto, huffman, zstd or none"),
            );
            CoderChoice::Auto
        }
    };
    let fine_tune = fine_tune(raw_fine_tune, architecture, dataset, eval, limits, &mut c);
    if fine_tune.is_none() {
        // Without fine-tuning the dataset is still used to measure accuracy.
        super::train::check_compatibility(architecture, dataset, "dataset", &mut c);
    }
    c.finish(ValidCompressParams {
        bits: bits.clamp(1, 8) as u8,
        init,
        coder,
        fine_tune,
    })
}
