//! Compact parameters: [`validate_compact`] → [`ValidCompactParams`].
//!
//! ```json
//! {"dead_units": true,        // remove units constant over the dataset, folding their value into the next bias
//!  "dead_tolerance": 0,       // max − min of a unit's activation that still counts as constant
//!  "merge_duplicates": true,  // merge units with (near-)identical incoming weights
//!  "merge_tolerance": 0,      // max |difference| of weights and bias that still counts as identical
//!  "fold_linear": true,       // fold a dense layer with linear activation into the next one
//!  "low_rank": {"energy": 0.9} | {"max_accuracy_drop": 0.005},  // optional SVD factorization
//!  "low_rank_layers": [0]}    // layers to factorize; default every layer where it saves parameters
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Fields, non_negative_finite};
use super::train::check_compatibility;
use crate::{DatasetShape, JobLimits};
use kiln_nn::spec::{Architecture, LayerSpec};
use kiln_nn::validation::{Checker, Invalid};

/// How the rank of a low-rank factorization is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankTarget {
    /// Smallest rank keeping this fraction of Σσ².
    Energy(f64),
    /// Smallest rank whose main metric drops by at most this much on the evaluation data.
    MaxAccuracyDrop(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidCompactParams {
    pub dead_units: bool,
    pub dead_tolerance: f64,
    pub merge_duplicates: bool,
    pub merge_tolerance: f64,
    pub fold_linear: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_rank: Option<RankTarget>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_rank_layers: Option<Vec<usize>>,
}

pub fn validate_compact(
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    eval: Option<&DatasetShape>,
    _limits: &JobLimits,
) -> Result<ValidCompactParams, Invalid> {
    let mut c = Checker::new();
    let mut f = Fields::new(params, "params", &mut c);
    let dead_units = f.get("dead_units", &mut c).unwrap_or(true);
    let dead_tolerance: f64 = f.get("dead_tolerance", &mut c).unwrap_or(0.0);
    let merge_duplicates = f.get("merge_duplicates", &mut c).unwrap_or(true);
    let merge_tolerance: f64 = f.get("merge_tolerance", &mut c).unwrap_or(0.0);
    let fold_linear = f.get("fold_linear", &mut c).unwrap_or(true);
    let raw_low_rank = f.raw("low_rank");
    let low_rank_layers: Option<Vec<usize>> = f.get("low_rank_layers", &mut c);
    f.finish(&mut c);
    non_negative_finite(&mut c, "params.dead_tolerance".into(), dead_tolerance);
    non_negative_finite(&mut c, "params.merge_tolerance".into(), merge_tolerance);

    let low_rank = raw_low_rank.and_then(|v| {
        let mut f = Fields::new(v, "params.low_rank", &mut c);
        let energy: Option<f64> = f.get("energy", &mut c);
        let drop: Option<f64> = f.get("max_accuracy_drop", &mut c);
        f.finish(&mut c);
        match (energy, drop) {
            (Some(e), None) => {
                c.require(
                    e.is_finite() && e > 0.0 && e <= 1.0,
                    "params.low_rank.energy",
                    "must be a fraction in (0, 1]",
                );
                Some(RankTarget::Energy(e))
            }
            (None, Some(d)) => {
                non_negative_finite(&mut c, "params.low_rank.max_accuracy_drop".into(), d);
                Some(RankTarget::MaxAccuracyDrop(d))
            }
            _ => {
                c.push(
                    "params.low_rank",
                    "give exactly one of energy or max_accuracy_drop",
                );
                None
            }
        }
    });
    if let Some(layers) = &low_rank_layers {
        c.require(
            low_rank.is_some(),
            "params.low_rank_layers",
            "applies only with params.low_rank",
        );
        for (k, &i) in layers.iter().enumerate() {
            c.require(
                matches!(architecture.layers.get(i), Some(LayerSpec::Dense { .. })),
                format!("params.low_rank_layers[{k}]"),
                format!("layer {i} is not a dense layer of this model"),
            );
        }
    }
    check_compatibility(architecture, dataset, "dataset", &mut c);
    if let Some(e) = eval {
        check_compatibility(architecture, e, "eval_dataset", &mut c);
    }
    c.finish(ValidCompactParams {
        dead_units,
        dead_tolerance,
        merge_duplicates,
        merge_tolerance,
        fold_linear,
        low_rank,
        low_rank_layers,
    })
}
