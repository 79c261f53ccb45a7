//! The compact job: the source document's "network compression" for dense
//! networks — remove dead units, merge duplicate units, factorize large layers at
//! low rank, fold adjacent linear layers — each step reported with what it
//! changed and what it cost on the evaluation data.
//!
//! Order: dead units, duplicates, low rank, then folding. Dead-unit and merge
//! steps keep layer indices, so `low_rank_layers` name layers of the input model;
//! they are factorized from the last to the first so earlier indices stay valid.

use serde::Serialize;
use serde_json::{Value, json};

use super::params::{RankTarget, ValidCompactParams};
use super::snapshot::score;
use super::stage::{self, After, Encoding, OptimizationStage, Reported, StageContext, Transformed};
use super::{JobContext, JobError, JobInputs, JobOutput};
use kiln_nn::Sequential;
use kiln_nn::data::Dataset;
use kiln_nn::optimize::compact::{
    Action, CompactError, factorize, fold_linear_layers, max_useful_rank, merge_duplicate_units,
    rank_for_energy, remove_dead_units, singular_values, smallest_passing_rank,
};
use kiln_nn::spec::Architecture;

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
                // (so the drops of several layers do not add up past it).
                let floor = self.baseline - drop;
                smallest_passing_rank(useful, |r| {
                    let (m, _) = factorize(&self.model, layer, r).map_err(failed)?;
                    Ok(score(&m, self.data).main_metric() >= floor)
                })
            }
        }
    }

    fn run(
        &mut self,
        p: &ValidCompactParams,
        x: ndarray::ArrayView2<f32>,
        ctx: &StageContext<'_>,
    ) -> Result<(), JobError> {
        if p.dead_units {
            let (m, a) =
                remove_dead_units(&self.model, x, p.dead_tolerance as f32).map_err(failed)?;
            self.record(m, a);
        }
        ctx.set_progress(0.25);
        if p.merge_duplicates {
            let (m, a) =
                merge_duplicate_units(&self.model, p.merge_tolerance as f32).map_err(failed)?;
            self.record(m, a);
        }
        ctx.set_progress(0.45);
        ctx.check_cancelled()?;
        if let Some(target) = p.low_rank {
            let mut layers: Vec<usize> = p
                .low_rank_layers
                .clone()
                .unwrap_or_else(|| self.model.dense_layers().map(|(i, _)| i).collect());
            layers.sort_unstable();
            layers.dedup();
            for layer in layers.into_iter().rev() {
                ctx.check_cancelled()?;
                if let Some(r) = self.rank(layer, target)? {
                    let (m, a) = factorize(&self.model, layer, r).map_err(failed)?;
                    self.record(m, vec![a]);
                }
            }
        }
        ctx.set_progress(0.8);
        if p.fold_linear {
            let (m, a) = fold_linear_layers(&self.model).map_err(failed)?;
            self.record(m, a);
        }
        Ok(())
    }
}

/// The compact job as an [`OptimizationStage`].
pub struct CompactStage;

/// The compact job's own report fields.
#[derive(Serialize)]
pub struct CompactReport {
    /// Each step's action with the main metric after it and its cost.
    actions: Vec<Value>,
    architecture: Architecture,
}

impl OptimizationStage for CompactStage {
    type Params = ValidCompactParams;
    type Done = Vec<Value>;
    type Report = CompactReport;
    const PREFIX: &'static str = "compacted";
    const NOUN: &'static str = "compacted";

    fn transform(
        &self,
        p: &ValidCompactParams,
        cx: &StageContext<'_>,
    ) -> Result<Transformed<Vec<Value>>, JobError> {
        let mut c = Compactor {
            data: cx.data,
            baseline: cx.before.main_metric(),
            model: cx.inputs.model.model.clone(),
            report: Vec::new(),
        };
        c.run(p, cx.inputs.dataset.x.view(), cx)?;
        Ok(Transformed {
            model: c.model,
            encoding: Encoding::Float,
            done: c.report,
        })
    }

    fn report(
        &self,
        _p: &ValidCompactParams,
        done: Vec<Value>,
        after: &After<'_>,
    ) -> Result<Reported<CompactReport>, JobError> {
        Ok(CompactReport {
            actions: done,
            architecture: after.file.model.architecture().clone(),
        }
        .into())
    }
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    stage::run(&CompactStage, inputs, ctx)
}
