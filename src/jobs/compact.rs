//! The compact job: the source document's "network compression" for dense
//! networks — remove dead units, merge duplicate units, factorize large layers at
//! low rank, fold adjacent linear layers — each step reported with what it
//! changed and what it cost on the evaluation data.
//!
//! Order: dead units, duplicates, low rank, then folding. Dead-unit and merge
//! steps keep layer indices, so `low_rank_layers` name layers of the input model;
//! they are factorized from the last to the first so earlier indices stay valid.

use serde_json::{Map, Value, json};

use super::derived::{meta_for, output};
use super::params::{RankTarget, ValidCompactParams, validate_compact};
use super::snapshot::{evaluation_data, score, snapshot, snapshot_scored};
use super::{JobContext, JobError, JobInputs, JobOutput};
use crate::formats::model_file::{self, ModelFile};
use crate::nn::Sequential;
use crate::nn::compact::{
    Action, CompactError, factorize, fold_linear_layers, max_useful_rank, merge_duplicate_units,
    rank_for_energy, remove_dead_units, singular_values,
};
use crate::nn::data::Dataset;

fn failed(e: CompactError) -> JobError {
    JobError::Failed(format!("compaction failed: {e}"))
}

/// Applies the steps `p` asks for, recording each action with the main metric after it.
struct Compactor<'a> {
    data: &'a Dataset,
    baseline: f64,
    model: Sequential,
    report: Vec<Value>,
}

impl Compactor<'_> {
    fn record(&mut self, model: Sequential, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        let metric = score(&model, self.data).main_metric();
        for a in actions {
            let mut v = serde_json::to_value(&a).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("metric_after".into(), json!(metric));
                m.insert("metric_cost".into(), json!(self.baseline - metric));
            }
            self.report.push(v);
        }
        self.model = model;
    }

    /// Rank for `layer` under `target`, or `None` when factorizing would not save parameters.
    fn rank(&self, layer: usize, target: RankTarget) -> Result<Option<usize>, JobError> {
        let Some(d) = self.model.layers().get(layer).and_then(|l| l.as_dense()) else {
            return Ok(None);
        };
        let useful = max_useful_rank(d.inputs(), d.units());
        if useful == 0 {
            return Ok(None);
        }
        match target {
            RankTarget::Energy(e) => {
                let s = singular_values(&self.model, layer).map_err(failed)?;
                let r = rank_for_energy(&s, e);
                Ok((r <= useful).then_some(r))
            }
            RankTarget::MaxAccuracyDrop(drop) => {
                // Smallest rank whose metric stays within `drop` of the input model's
                // (so the drops of several layers do not add up past it), by
                // bisection: the metric rises with the rank, up to noise.
                let floor = self.baseline - drop;
                let ok = |r: usize| -> Result<bool, JobError> {
                    let (m, _) = factorize(&self.model, layer, r).map_err(failed)?;
                    Ok(score(&m, self.data).main_metric() >= floor)
                };
                if !ok(useful)? {
                    return Ok(None);
                }
                let (mut lo, mut hi) = (1usize, useful);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if ok(mid)? {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                Ok(Some(hi))
            }
        }
    }

    fn run(
        &mut self,
        p: &ValidCompactParams,
        x: ndarray::ArrayView2<f32>,
        ctx: &dyn JobContext,
    ) -> Result<(), JobError> {
        if p.dead_units {
            let (m, a) =
                remove_dead_units(&self.model, x, p.dead_tolerance as f32).map_err(failed)?;
            self.record(m, a);
        }
        ctx.set_progress(0.3);
        if p.merge_duplicates {
            let (m, a) =
                merge_duplicate_units(&self.model, p.merge_tolerance as f32).map_err(failed)?;
            self.record(m, a);
        }
        ctx.set_progress(0.45);
        if ctx.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        if let Some(target) = p.low_rank {
            let mut layers: Vec<usize> = p
                .low_rank_layers
                .clone()
                .unwrap_or_else(|| self.model.dense_layers().map(|(i, _)| i).collect());
            layers.sort_unstable();
            layers.dedup();
            for layer in layers.into_iter().rev() {
                if ctx.is_cancelled() {
                    return Err(JobError::Cancelled);
                }
                if let Some(r) = self.rank(layer, target)? {
                    let (m, a) = factorize(&self.model, layer, r).map_err(failed)?;
                    self.record(m, vec![a]);
                }
            }
        }
        ctx.set_progress(0.75);
        if p.fold_linear {
            let (m, a) = fold_linear_layers(&self.model).map_err(failed)?;
            self.record(m, a);
        }
        Ok(())
    }
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    let p = inputs.validated(validate_compact)?;
    ctx.set_progress(0.0);
    let (data, evaluated_on) = evaluation_data(&inputs.dataset, inputs.eval_dataset.as_ref());
    let ev0 = score(&inputs.model.model, data);
    let before = snapshot_scored(&inputs.model.model, inputs.model_bytes, data, &ev0);
    let mut c = Compactor {
        data,
        baseline: ev0.main_metric(),
        model: inputs.model.model.clone(),
        report: Vec::new(),
    };
    c.run(&p, inputs.dataset.x.view(), ctx)?;
    let Compactor { model, report, .. } = c;

    let meta = meta_for(&model, &inputs);
    let file = ModelFile { model, meta };
    let bytes = model_file::encode(&file)
        .map_err(|e| JobError::Failed(format!("could not write the compacted model: {e}")))?;
    let mut metrics: Map<String, Value> = snapshot(&file.model, bytes.len(), data);
    metrics.insert("evaluated_on".into(), json!(evaluated_on));
    metrics.insert("actions".into(), Value::Array(report));
    metrics.insert(
        "architecture".into(),
        serde_json::to_value(file.model.architecture()).unwrap_or(Value::Null),
    );
    ctx.set_progress(1.0);
    Ok(output(
        "compacted",
        &inputs,
        &file,
        bytes,
        "f32",
        metrics,
        before,
    ))
}
