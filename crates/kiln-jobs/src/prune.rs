//! The prune job: remove weights (magnitude) or whole units (neurons), optionally
//! along a gradual schedule while fine-tuning, and report before and after.
//!
//! Masks keep pruned weights at exactly zero through every optimizer step; the
//! produced file stores a layer as CSR when that is smaller, so the saving is real
//! on disk, and latency is measured with the sparse kernels where they are faster.
//! Neuron pruning rebuilds the layers smaller, giving a plain dense model.

use std::time::Instant;

use serde::Serialize;

use super::params::{PruneMethod, PruneScheduleParams, PruneScope, UnitRanking, ValidPruneParams};
use super::stage::{self, After, Encoding, OptimizationStage, Reported, StageContext, Transformed};
use super::tuning::fine_tune;
use super::{JobContext, JobError, JobInputs, JobOutput};
use kiln_nn::Sequential;
use kiln_nn::data::Dataset;
use kiln_nn::optimize::prune::{
    GradualMagnitude, GradualNeurons, MagnitudeConfig, NeuronConfig, PruneError, PruneSchedule,
    Scope, UnitCriterion, magnitude_masks, remove_units, select_units, set_masks,
};
use kiln_nn::train::trainer::NoHook;
use kiln_nn::validation::Invalid;

fn scope(s: PruneScope) -> Scope {
    match s {
        PruneScope::Global => Scope::Global,
        PruneScope::PerLayer => Scope::PerLayer,
    }
}

fn schedule(s: PruneScheduleParams) -> PruneSchedule {
    match s {
        PruneScheduleParams::OneShot => PruneSchedule::OneShot,
        PruneScheduleParams::Polynomial {
            initial_sparsity,
            begin_step,
            end_step,
            frequency,
        } => PruneSchedule::Polynomial {
            initial_sparsity: initial_sparsity as f32,
            begin_step,
            frequency,
            pruning_steps: (end_step.saturating_sub(begin_step) / frequency.max(1)).max(1),
        },
    }
}

fn prune_error(e: PruneError) -> JobError {
    JobError::Invalid(Invalid::one("params", e.to_string()))
}

/// What pruning did besides the model: `(step, sparsity)` events of a gradual schedule.
struct Pruned {
    model: Sequential,
    events: Vec<(u64, f32)>,
    fine_tune_epochs: u32,
}

fn prune(
    model: Sequential,
    p: &ValidPruneParams,
    data: &Dataset,
    ctx: &dyn JobContext,
    range: (f64, f64),
) -> Result<Pruned, JobError> {
    let overrides = p.layers.iter().map(|(&i, &s)| (i, s as f32)).collect();
    let sparsity = p.sparsity as f32;
    let sched = schedule(p.schedule);
    let gradual = matches!(sched, PruneSchedule::Polynomial { .. });
    let x = data.x.view();
    let mut model = model;
    let mut events = Vec::new();
    match p.method {
        PruneMethod::Magnitude => {
            let cfg = MagnitudeConfig {
                sparsity,
                scope: scope(p.scope),
                overrides,
            };
            match (&p.fine_tune, gradual) {
                (Some(ft), true) => {
                    let mut hook = GradualMagnitude::new(&model, cfg, sched)?;
                    fine_tune(&mut model, data, ft, &mut hook, ctx, range)?;
                    events = hook.events().to_vec();
                }
                (ft, _) => {
                    let masks = magnitude_masks(&model, &cfg)?;
                    set_masks(&mut model, &masks);
                    events.push((0, sparsity));
                    if let Some(ft) = ft {
                        fine_tune(&mut model, data, ft, &mut NoHook, ctx, range)?;
                    }
                }
            }
        }
        PruneMethod::Neurons => {
            let cfg = NeuronConfig {
                sparsity,
                scope: scope(p.scope),
                overrides,
                criterion: match p.criterion {
                    Some(UnitRanking::L1) => UnitCriterion::L1,
                    Some(UnitRanking::Activation) => UnitCriterion::Activation,
                    Some(UnitRanking::L2) | None => UnitCriterion::L2,
                },
            };
            match (&p.fine_tune, gradual) {
                (Some(ft), true) => {
                    let mut hook = GradualNeurons::new(&model, cfg, sched)?;
                    fine_tune(&mut model, data, ft, &mut hook, ctx, range)?;
                    events = hook.events().to_vec();
                    let keep = hook.kept_units(&model);
                    model = remove_units(&model, &keep).map_err(prune_error)?;
                }
                (ft, _) => {
                    let keep = select_units(&model, &cfg, x).map_err(prune_error)?;
                    model = remove_units(&model, &keep).map_err(prune_error)?;
                    events.push((0, sparsity));
                    if let Some(ft) = ft {
                        fine_tune(&mut model, data, ft, &mut NoHook, ctx, range)?;
                    }
                }
            }
        }
    }
    Ok(Pruned {
        model,
        events,
        fine_tune_epochs: p.fine_tune.as_ref().map_or(0, |f| f.epochs),
    })
}

/// The prune job as an [`OptimizationStage`].
pub struct PruneStage;

/// The prune job's own report fields.
#[derive(Serialize)]
pub struct PruneReport {
    method: PruneMethod,
    target_sparsity: f64,
    pruning_events: Vec<PruningEvent>,
    fine_tune_epochs: u32,
    prune_seconds: f64,
}

/// The sparsity a gradual schedule reached at a step.
#[derive(Serialize)]
struct PruningEvent {
    step: u64,
    sparsity: f32,
}

/// What the transform hands to the report.
pub struct PruneDone {
    events: Vec<(u64, f32)>,
    fine_tune_epochs: u32,
    seconds: f64,
}

impl OptimizationStage for PruneStage {
    type Params = ValidPruneParams;
    type Done = PruneDone;
    type Report = PruneReport;
    const PREFIX: &'static str = "pruned";
    const NOUN: &'static str = "pruned";

    fn transform(
        &self,
        p: &ValidPruneParams,
        cx: &StageContext<'_>,
    ) -> Result<Transformed<PruneDone>, JobError> {
        let started = Instant::now();
        let inputs = cx.inputs;
        let range = cx.progress_range((0.0, 1.0));
        let pruned = prune(
            inputs.model.model.clone(),
            p,
            &inputs.dataset,
            cx.ctx,
            range,
        )?;
        Ok(Transformed {
            model: pruned.model,
            encoding: Encoding::Float,
            done: PruneDone {
                events: pruned.events,
                fine_tune_epochs: pruned.fine_tune_epochs,
                seconds: started.elapsed().as_secs_f64(),
            },
        })
    }

    fn report(
        &self,
        p: &ValidPruneParams,
        done: PruneDone,
        _after: &After<'_>,
    ) -> Result<Reported<PruneReport>, JobError> {
        Ok(PruneReport {
            method: p.method,
            target_sparsity: p.sparsity,
            pruning_events: done
                .events
                .into_iter()
                .map(|(step, sparsity)| PruningEvent { step, sparsity })
                .collect(),
            fine_tune_epochs: done.fine_tune_epochs,
            prune_seconds: done.seconds,
        }
        .into())
    }
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    stage::run(&PruneStage, inputs, ctx)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use kiln_formats::model_file::{self, ModelFile};

    use super::*;
    use crate::JobKind;
    use crate::fixtures::{TestCtx, accepted, arch, blobs};

    fn inputs(params: Value) -> JobInputs {
        let a = arch(
            r#"{"input_dim": 4, "layers": [{"type": "dense", "units": 16, "activation": "relu"},
                {"type": "dropout", "rate": 0.1},
                {"type": "dense", "units": 8, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        );
        let model = ModelFile::untrained(&a, 5);
        let model_bytes = model_file::encode(&model).expect("encodes").len();
        accepted(
            JobKind::Prune,
            JobInputs {
                model,
                model_bytes,
                dataset: blobs(200, 4, 2),
                eval_dataset: Some(blobs(100, 4, 3)),
                params,
                model_id: uuid::Uuid::nil(),
                job_id: uuid::Uuid::nil(),
                models: Default::default(),
            },
        )
    }

    fn nonzero(layers: &Value, i: usize) -> u64 {
        layers[i]["nonzero"].as_u64().expect("nonzero")
    }

    #[test]
    fn per_layer_one_shot_pruning_zeroes_each_hidden_layer_and_the_file_keeps_it() {
        let out = run(
            inputs(json!({"sparsity": 0.75, "scope": "per_layer"})),
            &TestCtx::default(),
        )
        .expect("prunes");
        let layers = &out.metrics["layers"];
        assert_eq!(nonzero(layers, 0), 16);
        assert_eq!(nonzero(layers, 1), 32);
        assert_eq!(nonzero(layers, 2), 8, "the output layer stays dense");
        let before = out.before.expect("before");
        // A fresh model's biases are zero, so only weights count.
        assert_eq!(before["nonzero_params"], json!(4 * 16 + 16 * 8 + 8));
        let produced = out.model.expect("a model");
        assert_eq!(produced.nonzero_params, 16 + 32 + 8);
        assert_eq!(out.metrics["size_bytes"], json!(produced.file.len()));
        let back = kiln_formats::model::read(&produced.file).expect("decodes");
        assert_eq!(back.model.nonzero_params(), produced.nonzero_params);
        assert!(back.meta.extra.is_empty());
        assert!(back.meta.trained);
    }

    #[test]
    fn a_gradual_schedule_reaches_the_target_through_many_events_while_fine_tuning() {
        let out = run(
            inputs(
                json!({"sparsity": 0.5, "schedule": {"type": "polynomial", "frequency": 2},
                          "fine_tune": {"epochs": 4, "batch_size": 16}}),
            ),
            &TestCtx::default(),
        )
        .expect("prunes");
        let layers = &out.metrics["layers"];
        // Global scope: half of the 64 + 128 hidden weights, wherever they are.
        assert_eq!(nonzero(layers, 0) + nonzero(layers, 1), 96);
        let events = out.metrics["pruning_events"].as_array().expect("events");
        assert!(events.len() > 5, "{events:?}");
        let last = events.last().expect("an event")["sparsity"]
            .as_f64()
            .expect("s");
        assert!((last - 0.5).abs() < 1e-6, "{events:?}");
    }

    #[test]
    fn neuron_pruning_rebuilds_the_layers_smaller() {
        let out = run(
            inputs(json!({"method": "neurons", "sparsity": 0.5, "scope": "per_layer", "criterion": "activation"})),
            &TestCtx::default(),
        )
        .expect("prunes");
        let produced = out.model.expect("a model");
        let units = produced.architecture.dense_units();
        assert_eq!(units, vec![8, 4, 1]);
        assert_eq!(produced.params, 4 * 8 + 8 + 8 * 4 + 4 + 4 + 1);
    }
}
